"""Reading a stopped tracee's memory: process_vm_readv, falling back to PTRACE_PEEKDATA.

Strings are read page by page, so one that ends just before an unmapped page (a guard page) is still
read whole: a single read crossing into the unmapped page would fail as a whole. A string that runs into
an unreadable page before its NUL (and before the display limit) is reported unreadable, as strace prints
the address of such a string rather than its readable head. process_vm_readv can be
refused where ptrace is not (some LSMs, old kernels): then PEEKDATA, one word at a time, decides.
"""

from __future__ import annotations

import ctypes
import errno

from unitrace.backends.ptrace import sys as S

PAGE = 4096
_WORD = 8
_MASK64 = (1 << 64) - 1


class TraceeMemory:
    """decode.api.Memory for one tracee (tid); `pid` may be switched as stops move between tracees."""

    __slots__ = ("_buf", "_buf_size", "_local", "_remote", "pid", "vm_ok")

    def __init__(self, pid: int, use_vm_readv: bool = True) -> None:
        self.pid = pid
        self.vm_ok = use_vm_readv
        self._buf_size = PAGE
        self._buf = ctypes.create_string_buffer(PAGE)
        self._local = S.Iovec()
        self._remote = S.Iovec()

    def _vm_read(self, addr: int, size: int) -> int:
        """Bytes read into self._buf (may be short), or -1 with the errno of the failure."""
        if size > self._buf_size:
            self._buf_size = size
            self._buf = ctypes.create_string_buffer(size)
        self._local.iov_base = ctypes.addressof(self._buf)
        self._local.iov_len = size
        self._remote.iov_base = addr
        self._remote.iov_len = size
        return S.process_vm_readv(self.pid, ctypes.addressof(self._local), 1,
                                  ctypes.addressof(self._remote), 1, 0)

    def read(self, addr: int, size: int) -> bytes | None:
        if addr <= 0 or size < 0 or addr + size > _MASK64:
            return None
        if size == 0:
            return b""
        if self.vm_ok:
            got = self._vm_read(addr, size)
            if got == size:
                return self._buf.raw[:size]
            if got < 0 and S.get_errno() in (errno.ENOSYS, errno.EPERM):
                self.vm_ok = False  # refused for this tracee, not a bad address
            elif got >= 0:
                return None  # partially unmapped
            else:
                # EFAULT: unmapped. PEEKDATA would say the same, but one word costs little and covers
                # mappings process_vm_readv cannot read (PROT_NONE is unreadable to both).
                pass
        return self._peek(addr, size)

    def _peek(self, addr: int, size: int) -> bytes | None:
        start = addr & ~(_WORD - 1)
        end = addr + size
        out = bytearray()
        a = start
        peek = S.raw_ptrace
        while a < end:
            S.set_errno(0)
            word = peek(S.PTRACE_PEEKDATA, self.pid, a, None)
            if word == -1 and S.get_errno():
                return None
            out += (word & _MASK64).to_bytes(_WORD, "little")
            a += _WORD
        off = addr - start
        return bytes(out[off:off + size])

    def read_cstr(self, addr: int, limit: int) -> bytes | None:
        if addr <= 0:
            return None
        out = b""
        want = limit + 1
        a = addr
        while len(out) < want:
            chunk_len = min(PAGE - (a % PAGE), want - len(out))
            chunk = self.read(a, chunk_len)
            if chunk is None:
                # the chunk lies within one page, and that page is unreadable: the string ends in a hole
                # before its NUL and before the limit. strace prints the address then, not a string.
                return None
            nul = chunk.find(b"\0")
            if nul >= 0:
                return out + chunk[:nul]
            out += chunk
            a += chunk_len
        return out[:want]
