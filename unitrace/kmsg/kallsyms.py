"""/proc/kallsyms (or a saved copy) both ways: address -> symbol+offset and symbol -> address.

Used only when the report comes from the machine (and boot) the table describes; addresses are
meaningless across boots with KASLR. Reading is lazy, one pass, cached per (path, mtime, size).
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field
from functools import lru_cache

from unitrace.errors import UnitraceError


@dataclass(slots=True)
class Kallsyms:
    path: str
    addrs: list[int] = field(default_factory=list)
    names: list[tuple[str, str]] = field(default_factory=list)  # (symbol, module)
    by_name: dict[str, int] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return bool(self.addrs)

    def lookup(self, address: int) -> str:
        """`sym+0x1a [mod]`, or "" when the address is below every symbol or far past the last."""
        i = bisect.bisect_right(self.addrs, address) - 1
        if i < 0:
            return ""
        name, module = self.names[i]
        off = address - self.addrs[i]
        if off > 1 << 24:
            return ""
        return f"{name}+0x{off:x}" + (f" [{module}]" if module else "")

    def address_of(self, symbol: str) -> int | None:
        return self.by_name.get(symbol)


def load(path: str = "/proc/kallsyms") -> Kallsyms:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UnitraceError(f"cannot read kallsyms file {path}: {exc.strerror}") from exc
    return _load(path, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=4)
def _load(path: str, _mtime: int, _size: int) -> Kallsyms:
    table = Kallsyms(path)
    rows = []
    try:
        with open(path, encoding="utf-8", errors="replace",
                  opener=lambda p, f: os.open(p, f | os.O_CLOEXEC)) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3 or parts[1] not in "tTwW":
                    continue
                try:
                    addr = int(parts[0], 16)
                except ValueError:
                    continue
                if addr == 0:
                    continue  # kptr_restrict: this reader may not see addresses
                module = parts[3].strip("[]") if len(parts) > 3 else ""
                rows.append((addr, parts[2], module))
    except OSError as exc:
        raise UnitraceError(f"cannot read kallsyms file {path}: {exc.strerror}") from exc
    rows.sort()
    for addr, name, module in rows:
        table.addrs.append(addr)
        table.names.append((name, module))
        table.by_name.setdefault(name, addr)
    return table
