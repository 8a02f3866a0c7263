"""Stack walking cost: microseconds per unwound stack, cold (nothing of the binaries loaded yet) and warm
(tables cached, as a tracer is after its first few stacks), with and without symbolisation; and the memory
that loading one binary's tables costs (libc: its CFI index, symbols, and the DWARF of one address).

    python bench/stack_unwind.py [RUNS]

No thresholds: numbers and ratios to read. The stopped process is tests/progs/stack/recurse.c at -O2
(47 frames: 40 of recursion, libc above and below) and cxx.cc (inlined C++ frames).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.stack_support import build, stopped
from unitrace.stack import cfi
from unitrace.stack.unwind import Maps, Unwinder, symbolize
from unitrace.symbols import debuginfo, elf, lines


def clear_caches() -> None:
    for fn in (cfi._cached, elf._cached, lines._lines, debuginfo._find):
        fn.cache_clear()


def timed(fn, runs: int, cold: bool) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(runs):
        if cold:
            clear_caches()
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def main(argv: list[str]) -> int:
    runs = int(argv[0]) if argv else 5
    with tempfile.TemporaryDirectory() as tmp:
        for program in ("recurse", "cxx"):
            exe = build(program, "O2-nofp", Path(tmp))
            with stopped(exe) as s:
                unwinder = Unwinder(s.mem, s.maps)

                def walk(u: Unwinder = unwinder, regs: dict[int, int] = s.regs) -> list:
                    return u.unwind(regs)

                def walk_sym(u: Unwinder = unwinder, regs: dict[int, int] = s.regs, maps: Maps = s.maps) -> list:
                    return symbolize(u.unwind(regs), maps)

                depth = len(walk())
                print(f"{program}-O2-nofp: {depth} frames ({len(walk_sym())} with inlined calls)")
                cold_u, warm_u = timed(walk, runs, True), timed(walk, runs * 20, False)
                cold_s, warm_s = timed(walk_sym, runs, True), timed(walk_sym, runs * 20, False)
                print(f"  unwind only        cold {cold_u:10.0f} us   warm {warm_u:8.0f} us "
                      f"({warm_u / depth:5.1f} us/frame)   cold/warm {cold_u / warm_u:6.1f}x")
                print(f"  unwind + symbolize cold {cold_s:10.0f} us   warm {warm_s:8.0f} us "
                      f"({warm_s / depth:5.1f} us/frame)   cold/warm {cold_s / warm_s:6.1f}x")

    libc = "/usr/lib/x86_64-linux-gnu/libc.so.6"
    clear_caches()
    tracemalloc.start()
    index = cfi.cfi_for(libc)
    after_cfi = tracemalloc.get_traced_memory()[0]
    syms = elf.elf_symbols(debuginfo.debug_file(libc))
    syms.symbolize(0x8AEEC)
    after_syms = tracemalloc.get_traced_memory()[0]
    dl = lines.dwarf_lines(libc)
    dl.lookup(0x8AEEC)
    dl.scopes_at(0x8AEEC)
    after_lines = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert index is not None
    size = Path(libc).stat().st_size + Path(debuginfo.debug_file(libc)).stat().st_size
    print(f"libc ({size / 1e6:.1f} MB with its debug file): CFI index {after_cfi / 1e3:.0f} kB, "
          f"symbols {(after_syms - after_cfi) / 1e3:.0f} kB, DWARF of one address "
          f"{(after_lines - after_syms) / 1e3:.0f} kB (Python heap, tracemalloc)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
