"""Kernel addresses -> symbols, from /proc/kallsyms (modules included), loaded once and bisected."""

from __future__ import annotations

import bisect
import os
from functools import lru_cache

from unitrace.events import Frame


@lru_cache(maxsize=1)
def _table(path: str = "/proc/kallsyms") -> tuple[list[int], list[tuple[str, str]]]:
    addrs: list[int] = []
    names: list[tuple[str, str]] = []
    try:
        with open(path, encoding="utf-8", errors="replace",
                  opener=lambda p, f: os.open(p, f | os.O_CLOEXEC)) as f:
            rows = []
            for line in f:
                parts = line.split()
                if len(parts) < 3 or parts[1] not in "tTwW":
                    continue
                addr = int(parts[0], 16)
                if addr == 0:
                    continue  # kptr_restrict hides addresses from us
                module = parts[3].strip("[]") if len(parts) > 3 else ""
                rows.append((addr, parts[2], module))
    except OSError:
        return [], []
    rows.sort()
    for addr, name, module in rows:
        addrs.append(addr)
        names.append((name, module))
    return addrs, names


def kernel_symbolize(address: int, path: str = "/proc/kallsyms") -> Frame:
    addrs, names = _table(path)
    i = bisect.bisect_right(addrs, address) - 1
    if i < 0:
        return Frame(address, how="kernel")
    name, module = names[i]
    return Frame(address, name, address - addrs[i], module, how="kernel")
