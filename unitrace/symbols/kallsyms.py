"""/proc/kallsyms (or a saved copy) both ways: address -> symbol+offset [module] and symbol -> address.

The one kernel symboliser: kernel stacks from the ftrace `stacktrace` trigger and bpf stack maps, and the
addresses in kernel-printed reports (unitrace.kmsg), all resolve here. A saved table is only meaningful
for the machine and boot it came from (KASLR moves everything per boot). Reading is lazy, one pass, cached
per (path, mtime, size); a table read without the right to see addresses (kptr_restrict) is empty.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field
from functools import lru_cache

from unitrace.errors import UnitraceError
from unitrace.events import Frame

# past this distance from the last symbol below it an address belongs to something kallsyms does not list
MAX_OFFSET = 1 << 24


@dataclass(slots=True)
class Kallsyms:
    path: str
    addrs: list[int] = field(default_factory=list)
    names: list[tuple[str, str]] = field(default_factory=list)  # (symbol, module)
    by_name: dict[str, int] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return bool(self.addrs)

    def resolve(self, address: int) -> tuple[str, int, str] | None:
        """(symbol, offset, module) of a kernel text address, or None."""
        i = bisect.bisect_right(self.addrs, address) - 1
        if i < 0:
            return None
        off = address - self.addrs[i]
        if off > MAX_OFFSET:
            return None
        name, module = self.names[i]
        return name, off, module

    def lookup(self, address: int) -> str:
        """`sym+0x1a [mod]`, or "" when the address is below every symbol or far past the last."""
        hit = self.resolve(address)
        if hit is None:
            return ""
        name, off, module = hit
        return f"{name}+0x{off:x}" + (f" [{module}]" if module else "")

    def frame(self, address: int, *, reliable: bool = True) -> Frame:
        """A kernel stack frame (`how="kernel"`); unnamed when the table has nothing for it."""
        hit = self.resolve(address)
        if hit is None:
            return Frame(address, reliable=reliable, how="kernel")
        name, off, module = hit
        return Frame(address, name, off, module, reliable=reliable, how="kernel")

    def address_of(self, symbol: str) -> int | None:
        return self.by_name.get(symbol)


def load(path: str = "/proc/kallsyms") -> Kallsyms:
    """The table in `path`; a UnitraceError names the file when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UnitraceError(f"cannot read kallsyms file {path}: {exc.strerror}") from exc
    return _load(path, st.st_mtime_ns, st.st_size)


def parse(lines: list[str] | object, path: str = "<text>") -> Kallsyms:
    """A table from kallsyms-format lines: `ffffffff81000000 T _stext [module]`, text symbols only."""
    table = Kallsyms(path)
    rows = []
    for line in lines:  # type: ignore[attr-defined]
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
    rows.sort()
    for addr, name, module in rows:
        table.addrs.append(addr)
        table.names.append((name, module))
        table.by_name.setdefault(name, addr)
    return table


@lru_cache(maxsize=4)
def _load(path: str, _mtime: int, _size: int) -> Kallsyms:
    try:
        with open(path, encoding="utf-8", errors="replace",
                  opener=lambda p, f: os.open(p, f | os.O_CLOEXEC)) as f:
            return parse(f, path)
    except OSError as exc:
        raise UnitraceError(f"cannot read kallsyms file {path}: {exc.strerror}") from exc


def kernel_symbolize(address: int, path: str = "/proc/kallsyms") -> Frame:
    """One kernel address as a Frame; an unreadable table leaves it unnamed rather than failing a trace."""
    try:
        return load(path).frame(address)
    except UnitraceError:
        return Frame(address, how="kernel")


def kernel_stack(addresses: list[int], path: str = "/proc/kallsyms") -> list[Frame]:
    """Frames for a kernel stack (ftrace `stacktrace`, bpf stack map), zeros and -1 padding dropped."""
    try:
        table = load(path)
    except UnitraceError:
        table = Kallsyms(path)
    return [table.frame(a) for a in addresses if a and a != (1 << 64) - 1]
