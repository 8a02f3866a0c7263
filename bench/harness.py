"""Benchmark harness: run variants of one workload in alternation and report medians and ratios.

    from bench.harness import compare, report
    r = compare("getppid", {"untraced": [prog], "strace": ["strace", "-f", "-o", "/dev/null", prog]},
                runs=5, events=200_000)
    report([r], baseline="untraced")

Variants run A B C A B C ... (after one untimed warm-up round), so drifting machine load hits them alike.
Each run is accounted like /usr/bin/time: wall clock around the child, user and system CPU and peak RSS
from wait4's rusage (the child plus every descendant it waited for). No thresholds: the report prints
numbers and ratios for people to read.

Peak RSS needs care: the kernel carries the forking process's high-water mark into the child's `maxrss`
at exec, so a child forked straight from Python would never report less than Python's ~15 MB. The runs
therefore go through a tiny C launcher (built once with gcc into bench/_build) that forks, execs, wait4s
and reports the rusage; without gcc, Python's os.wait4 is used and the report says RSS is floored.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Sample:
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_kb: int  # peak resident set of the largest process in the waited-for tree
    exit_code: int  # negative: killed by that signal


@dataclass(slots=True)
class Result:
    name: str
    variants: dict[str, list[str]]
    events: int | None = None  # events one run of the workload produces, for µs per event
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # variant -> stderr tail of a failed run

    def median(self, variant: str, metric: str) -> float:
        return statistics.median(getattr(s, metric) for s in self.samples[variant])

    def spread(self, variant: str) -> float:
        """(max - min) / median of wall time: how much to trust the median."""
        walls = [s.wall_s for s in self.samples[variant]]
        mid = statistics.median(walls)
        return (max(walls) - min(walls)) / mid if mid else 0.0


LAUNCHER_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
/* launch FD ARGV...: run ARGV, then write "wall_ns utime_us stime_us maxrss_kb wait_status" to FD */
int main(int argc, char **argv)
{
    if (argc < 3) return 127;
    int fd = atoi(argv[1]);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t pid = fork();
    if (pid == 0) { close(fd); execvp(argv[2], argv + 2); _exit(127); }
    int status; struct rusage ru;
    if (pid < 0 || wait4(pid, &status, 0, &ru) < 0) return 127;
    clock_gettime(CLOCK_MONOTONIC, &b);
    dprintf(fd, "%lld %lld %lld %ld %d\n", (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec),
            (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
            (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec, ru.ru_maxrss, status);
    return 0;
}
"""
_launcher_path: list[str | None] = []


def launcher() -> str | None:
    """The launcher binary, built on first use (None without gcc)."""
    if not _launcher_path:
        build = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_build")
        binary = os.path.join(build, "launch")
        src = binary + ".c"
        os.makedirs(build, exist_ok=True)
        if not os.path.exists(src) or Path(src).read_text() != LAUNCHER_C:
            Path(src).write_text(LAUNCHER_C)
            if os.path.exists(binary):
                os.unlink(binary)
        if not os.path.exists(binary):
            ok = subprocess.run(["gcc", "-O2", "-o", binary, src], capture_output=True, check=False).returncode == 0 \
                if shutil.which("gcc") else False
            if not ok:
                binary = None  # type: ignore[assignment]
        _launcher_path.append(binary)
    return _launcher_path[0]


def measure(argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | None = None) -> tuple[Sample, str]:
    """Run argv once with stdout discarded; its Sample and the tail of its stderr."""
    launch = launcher()
    if launch is not None:
        return _measure_launched(launch, argv, env=env, cwd=cwd)
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait for it again
        err.seek(0)
        tail = err.read()[-2000:].decode(errors="replace")
    sample = Sample(wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss, proc.returncode)
    return sample, tail


def _measure_launched(launch: str, argv: Sequence[str], *, env: dict[str, str] | None,
                      cwd: str | None) -> tuple[Sample, str]:
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen([launch, str(w), *argv], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=err, env=env, cwd=cwd, pass_fds=(w,))
            os.close(w)
            w = -1
            with os.fdopen(r, "r", closefd=False) as f:
                line = f.read()
            proc.wait()
            err.seek(0)
            tail = err.read()[-2000:].decode(errors="replace")
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    if proc.returncode != 0 or not line.strip():
        return Sample(0.0, 0.0, 0.0, 0, 127), f"launcher failed: {tail}"
    wall_ns, ut, st, rss, status = (int(x) for x in line.split())
    return Sample(wall_ns / 1e9, ut / 1e6, st / 1e6, rss, os.waitstatus_to_exitcode(status)), tail


def compare(name: str, variants: dict[str, list[str]], runs: int = 5, events: int | None = None,
            warmup: int = 1, env: dict[str, str] | None = None, cwd: str | None = None) -> Result:
    """Each variant `runs` times, interleaved, after `warmup` untimed rounds. A variant whose run fails is
    recorded in `failures` (its samples are still kept, and the report marks it)."""
    result = Result(name, dict(variants), events, {v: [] for v in variants})
    for round_ in range(warmup + runs):
        for variant, argv in variants.items():
            sample, tail = measure(argv, env=env, cwd=cwd)
            if sample.exit_code != 0:
                result.failures.setdefault(variant, f"exit {sample.exit_code}: {tail.strip()[-500:]}")
            if round_ >= warmup:
                result.samples[variant].append(sample)
    return result


def _fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.2f} s"


def format_report(results: Sequence[Result], baseline: str = "untraced") -> str:
    lines = []
    for r in results:
        runs = min((len(s) for s in r.samples.values()), default=0)
        head = f"{r.name}: median of {runs} alternating runs"
        if r.events:
            head += f", {r.events} events per run"
        lines.append(head)
        has_base = baseline in r.samples and r.samples[baseline]
        base_wall = r.median(baseline, "wall_s") if has_base else None
        width = max(len("variant"), *(len(v) for v in r.samples))
        cols = f"  {'variant':<{width}}  {'wall':>10}  {'user':>10}  {'sys':>10}  {'peak RSS':>9}  {'spread':>6}"
        cols += f"  {'x ' + baseline:>12}" if base_wall else ""
        cols += f"  {'us/event':>9}" if base_wall and r.events else ""
        lines.append(cols)
        for variant, samples in r.samples.items():
            if not samples:
                continue
            wall = r.median(variant, "wall_s")
            row = (f"  {variant:<{width}}  {_fmt_s(wall):>10}  {_fmt_s(r.median(variant, 'user_s')):>10}  "
                   f"{_fmt_s(r.median(variant, 'sys_s')):>10}  "
                   f"{r.median(variant, 'maxrss_kb') / 1024:>6.1f} MB  {r.spread(variant) * 100:>5.0f}%")
            if base_wall:
                row += f"  {wall / base_wall:>11.2f}x"
                if r.events:
                    added = (wall - base_wall) / r.events * 1e6
                    row += f"  {added:>9.2f}" if variant != baseline else f"  {'-':>9}"
            if variant in r.failures:
                row += "  FAILED"
            lines.append(row)
        for variant, why in r.failures.items():
            lines.append(f"  {variant} failed: {why}")
        if not has_base and baseline:
            lines.append(f"  (no '{baseline}' variant: no ratios)")
    return "\n".join(lines)


def report(results: Sequence[Result], baseline: str = "untraced", file: object = None) -> None:
    print(format_report(results, baseline), file=file or sys.stdout)  # type: ignore[arg-type]
