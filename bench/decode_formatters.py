"""Decoder cost: microseconds spent in StraceDecoder.enter + exit per syscall, measured inside a real
ptrace run (tests/decode_ptrace_support.py) of the decode test programs and of `ip addr` (netlink dumps).
Prints µs/syscall per workload (median of runs); no thresholds. Run: python3 bench/decode_formatters.py"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tests.decode_ptrace_support as support  # noqa: E402
from unitrace.decode.api import FormatOptions  # noqa: E402
from unitrace.decode.syscall import StraceDecoder  # noqa: E402


class TimedDecoder(StraceDecoder):
    spent = 0.0
    calls = 0

    def enter(self, pid, nr, args, mem):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        call = super().enter(pid, nr, args, mem)
        TimedDecoder.spent += time.perf_counter() - t
        return call

    def exit(self, call, ret, mem):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        out = super().exit(call, ret, mem)
        TimedDecoder.spent += time.perf_counter() - t
        TimedDecoder.calls += 1
        return out


def measure(argv: list[str], options: FormatOptions, runs: int = 5) -> tuple[float, int]:
    per_call = []
    for _ in range(runs):
        TimedDecoder.spent, TimedDecoder.calls = 0.0, 0
        support.trace_lines(argv, options)
        per_call.append(TimedDecoder.spent / max(TimedDecoder.calls, 1) * 1e6)
    return statistics.median(per_call), TimedDecoder.calls


def main() -> None:
    support.StraceDecoder = TimedDecoder  # the support loop builds its decoder by this name
    with tempfile.TemporaryDirectory(prefix="unitrace-bench-") as tmp:
        workloads = {}
        for prog in ("calls", "io"):
            exe = Path(tmp) / prog
            subprocess.run(["gcc", "-O0", "-o", str(exe), str(ROOT / "tests/progs/decode" / f"{prog}.c")], check=True)
            workloads[prog] = [str(exe)]
        ip = shutil.which("ip")
        if ip:
            workloads["ip addr (netlink)"] = [ip, "addr"]
        print(f"{'workload':<20} {'options':<10} {'syscalls':>8} {'us/syscall':>10}")
        for name, argv in workloads.items():
            for label, opts in (("default", FormatOptions()), ("-yy -v", FormatOptions(decode_fds=2, verbose=True)),
                                ("-c (raw)", FormatOptions(decode=False))):
                us, n = measure(argv, opts)
                print(f"{name:<20} {label:<10} {n:>8} {us:>10.1f}")


if __name__ == "__main__":
    main()
