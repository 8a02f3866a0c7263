"""A process's memory map (/proc/PID/maps) and the load bias of every file mapped in it."""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Mapping:
    start: int
    end: int
    offset: int
    perms: str
    path: str

    @property
    def executable(self) -> bool:
        return "x" in self.perms


class Maps:
    """A process's memory map (/proc/PID/maps), with the load bias of every file."""

    def __init__(self, mappings: list[Mapping]) -> None:
        self.mappings = sorted(mappings, key=lambda m: m.start)
        self._starts = [m.start for m in self.mappings]
        self._bias: dict[str, int] = {}

    @classmethod
    def of(cls, pid: int) -> Maps:
        rows = []
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace",
                  opener=lambda p, f: os.open(p, f | os.O_CLOEXEC)) as fh:
            for line in fh:
                parts = line.split(maxsplit=5)
                if len(parts) < 5:
                    continue
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                rows.append(Mapping(lo, hi, int(parts[2], 16), parts[1], parts[5].strip() if len(parts) > 5 else ""))
        return cls(rows)

    def find(self, addr: int) -> Mapping | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr < self.mappings[i].end:
            return self.mappings[i]
        return None

    def link_address(self, addr: int) -> tuple[str, int] | None:
        """(file, link-time address) for a runtime address in a file-backed mapping."""
        m = self.find(addr)
        if m is None or not m.path.startswith("/"):
            return None
        bias = self._bias.get(m.path)
        if bias is None:
            bias = self._load_bias(m)
            self._bias[m.path] = bias
        return m.path, addr - bias

    def _load_bias(self, m: Mapping) -> int:
        from unitrace.symbols.elf import elf_symbols

        try:
            segs = elf_symbols(m.path).segments
        except Exception:
            return m.start - m.offset
        for seg in segs:
            if seg.offset <= m.offset < seg.offset + max(seg.filesz, 1):
                return m.start - (seg.vaddr + (m.offset - seg.offset))
        return m.start - m.offset
