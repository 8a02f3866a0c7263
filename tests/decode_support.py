"""A fake tracee memory for decoder tests: byte blobs placed at addresses."""

from __future__ import annotations


class FakeMemory:
    def __init__(self) -> None:
        self.blobs: dict[int, bytes] = {}
        self._next = 0x7FFD0000

    def put(self, data: bytes, addr: int | None = None) -> int:
        if addr is None:
            addr = self._next
            self._next += (len(data) + 0x100) & ~0xFF
        self.blobs[addr] = data
        return addr

    def read(self, addr: int, size: int) -> bytes | None:
        for base, data in self.blobs.items():
            if base <= addr and addr + size <= base + len(data):
                return data[addr - base:addr - base + size]
        return None

    def read_cstr(self, addr: int, limit: int) -> bytes | None:
        for base, data in self.blobs.items():
            if base <= addr < base + len(data):
                tail = data[addr - base:]
                return tail.split(b"\0", 1)[0][: limit + 1]
        return None
