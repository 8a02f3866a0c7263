"""The benchmark harness every `bench/*_*.py` workload uses: run variants of a command in alternation, report
medians and ratios. No thresholds: benchmarks print numbers, people judge them.

    result = compare("getppid_loop", {"untraced": [exe], "strace -f": ["strace", "-f", ..., exe]},
                     runs=5, events=200_000)
    report([result], baseline="untraced")

Variants run A B C A B C ... (after one unmeasured warm-up round), so a machine that gets busier or quieter
during the benchmark (2 shared cores here) shifts every variant alike instead of one of them. Each run is
accounted the way `/usr/bin/time` does it: wall time around fork/exec/wait, user and system CPU and peak RSS
from `wait4`'s rusage, which covers the command and every descendant it waited for.

Peak RSS caveat: the kernel folds the pre-exec memory of the forked child (a copy of this Python process)
into ru_maxrss, so no command measures below the harness's own floor; the report prints that floor
(measured with /bin/true), and a value at the floor means "at most this".
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Sample:
    wall: float  # seconds
    user: float  # seconds of user CPU, the command and its waited-for descendants
    sys: float  # seconds of system CPU, likewise
    maxrss_kib: int  # peak resident set of the largest single process among them
    status: int  # exit code, or -signal


@dataclass(slots=True)
class Variant:
    name: str
    argv: list[str]
    samples: list[Sample] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(s, attr) for s in self.samples)

    @property
    def failures(self) -> list[int]:
        return [s.status for s in self.samples if s.status != 0]


@dataclass(slots=True)
class Result:
    name: str
    variants: dict[str, Variant]
    runs: int
    events: int | None = None  # events the workload produces (syscalls, probe hits), for µs per event
    rss_floor_kib: int = 0  # peak RSS of /bin/true run the same way: what the harness itself adds (see below)


def run_once(argv: Sequence[str], *, stdin: int | None = None) -> Sample:
    """fork + exec `argv` with stdout/stderr to /dev/null; wall time, rusage and exit status.

    Raises FileNotFoundError (with the program's name) when the program cannot be executed at all."""
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)  # the child reports a failed exec through this pipe
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child: only async-signal-safe work until exec
        try:
            os.dup2(stdin if stdin is not None else devnull, 0)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.execvp(argv[0], list(argv))
        except OSError as exc:
            os.write(err_w, str(exc.errno).encode())
        finally:
            os._exit(127)
    os.close(err_w)
    try:
        _, status, rusage = os.wait4(pid, 0)
        wall = time.monotonic() - start
        failed = os.read(err_r, 32)
    finally:
        os.close(err_r)
        os.close(devnull)
    if failed:
        raise FileNotFoundError(int(failed), f"cannot execute {argv[0]}: {os.strerror(int(failed))}", argv[0])
    code = os.waitstatus_to_exitcode(status)
    return Sample(wall, rusage.ru_utime, rusage.ru_stime, rusage.ru_maxrss, code)


def compare(name: str, variants: dict[str, list[str]], runs: int = 5, events: int | None = None,
            warmup: int = 1, progress: bool = True) -> Result:
    """Run every variant `runs` times, in alternation, after `warmup` unmeasured rounds."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    result = Result(name, {k: Variant(k, list(v)) for k, v in variants.items()}, runs, events)
    result.rss_floor_kib = run_once(["true"]).maxrss_kib
    for round_ in range(warmup + runs):
        for variant in result.variants.values():
            sample = run_once(variant.argv)
            if round_ >= warmup:
                variant.samples.append(sample)
        if progress and sys.stderr.isatty():
            print(f"\r{name}: round {round_ + 1}/{warmup + runs}", end="", file=sys.stderr, flush=True)
    if progress and sys.stderr.isatty():
        print("\r\033[K", end="", file=sys.stderr, flush=True)
    return result


def _fmt_time(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 10 else f"{seconds:.2f} s"


def format_result(result: Result, baseline: str = "untraced") -> str:
    """One table: median wall/user/sys, spread of wall, peak RSS, wall ratio and µs added per event."""
    base = result.variants.get(baseline)
    base_wall = base.median("wall") if base and base.samples else None
    header = ["variant", "wall", "(min-max)", "user", "sys", "max RSS", f"x {baseline}"]
    if result.events:
        header.append("µs/event added")
    rows = [header]
    notes = []
    for v in result.variants.values():
        wall = v.median("wall")
        walls = [s.wall for s in v.samples]
        row = [v.name, _fmt_time(wall), f"{_fmt_time(min(walls))}-{_fmt_time(max(walls))}",
               _fmt_time(v.median("user")), _fmt_time(v.median("sys")),
               f"{statistics.median(s.maxrss_kib for s in v.samples) / 1024:.1f} MiB",
               f"{wall / base_wall:.2f}" if base_wall else "-"]
        if result.events:
            row.append(f"{(wall - base_wall) / result.events * 1e6:.2f}" if base_wall and v is not base else "-")
        rows.append(row)
        if v.failures:
            notes.append(f"  note: {v.name} exited non-zero in {len(v.failures)} of {len(v.samples)} runs "
                         f"(statuses {sorted(set(v.failures))}): its times may not be comparable")
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [f"{result.name}: median of {result.runs} alternating runs"
             + (f", {result.events} events" if result.events else "")]
    for r in rows:
        lines.append("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                                      enumerate(zip(r, widths, strict=True))).rstrip())
    if result.rss_floor_kib:
        notes.append(f"  max RSS floor of the harness: {result.rss_floor_kib / 1024:.1f} MiB (values at it mean at most that)")
    if base is None:
        notes.append(f"  note: no variant named {baseline!r}: no ratios")
    return "\n".join(lines + notes)


def report(results: Sequence[Result], baseline: str = "untraced") -> None:
    for result in results:
        print(format_result(result, baseline))
