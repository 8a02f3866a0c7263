"""Unwinding from a copy: the registers and the top of the user stack taken at the event, in the kernel
(bpf) or by any other means, walked later in user space when the thread has moved on, as
`perf record --call-graph=dwarf` does.

The unwinder reads two kinds of memory: stack words (return addresses, saved registers, CFA expressions)
and code bytes (is this a return address just after a call? is this the signal trampoline?). The first come
from the copy; the second from the mapped files on disk, which hold the same bytes as the process's
executable mappings. Anything else (the heap, a writable mapping, the stack beyond the copy) is unreadable,
so the walk ends there ("unreadable") rather than guessing: no frame is called reliable on memory we did
not see.
"""

from __future__ import annotations

import os

from unitrace.stack.maps import Maps


class SnapshotMemory:
    """decode.api.Memory over a stack copy starting at `base`, and the read-only file mappings of `maps`."""

    def __init__(self, base: int, stack: bytes, maps: Maps) -> None:
        self.base = base
        self.stack = stack
        self.maps = maps
        self._files: dict[str, int | None] = {}

    def read(self, addr: int, size: int) -> bytes | None:
        if size < 0 or addr <= 0:
            return None
        off = addr - self.base
        if off >= 0 and off + size <= len(self.stack):
            return self.stack[off:off + size]
        m = self.maps.find(addr)
        # code is the file's bytes; data is not (relocations, RELRO, writes since): only code is served
        if m is None or not m.executable or "w" in m.perms or not m.path.startswith("/") or addr + size > m.end:
            return None
        fd = self._fd(m.path)
        if fd is None:
            return None
        try:
            data = os.pread(fd, size, m.offset + (addr - m.start))
        except OSError:
            return None
        return data if len(data) == size else None

    def read_cstr(self, addr: int, limit: int) -> bytes | None:
        data = self.read(addr, limit + 1)
        return None if data is None else data.split(b"\0", 1)[0]

    def _fd(self, path: str) -> int | None:
        if path not in self._files:
            try:
                self._files[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                self._files[path] = None
        return self._files[path]

    def close(self) -> None:
        for fd in self._files.values():
            if fd is not None:
                os.close(fd)
        self._files.clear()

    def __enter__(self) -> SnapshotMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
