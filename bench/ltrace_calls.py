"""What a traced library call costs: `unitrace ltrace` next to ltrace and to uprobes, same calls.

Workloads (C, built here): `strtol_loop N` calls libc's strtol N times in a tight loop (one string
argument to read per call); `malloc_churn N` does N malloc(32)+free pairs (2N calls). Variants: untraced;
`ltrace -e FUNC`; `unitrace ltrace -e FUNC` (ptrace breakpoints); the same function through uprobes,
`unitrace trace --backend ftrace 'user:libc:FUNC'` and bpftrace's `uprobe:LIBC:FUNC { @ = count(); }`
(these need root and a kernel with uprobes; left out otherwise). Every variant runs twice per round, with
N calls and with none, alternating with the others (bench/harness.py), so the per-call cost is
`(median(N) - median(0)) / calls` minus the untraced program's own: start-up costs (Python's import,
bpftrace's compile) cancel out. Printed: that cost in microseconds and its ratio to ltrace's. No
thresholds: read the numbers.

    python bench/ltrace_calls.py [RUNS] [N] [WORKLOAD ...]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD = HERE / "_build"
sys.path.insert(0, str(HERE.parent))
LIBC = "/lib/x86_64-linux-gnu/libc.so.6"

C_SOURCES = {
    "strtol_loop": (r"""
#include <stdlib.h>
int main(int argc, char **argv) {
    int n = (int)strtol(argv[1], 0, 10);
    long s = 0;
    for (int i = 0; i < n; i++) s += strtol("7", 0, 10);
    return s == 7L * n ? 0 : 1;
}
""", ("strtol",), 1),
    "malloc_churn": (r"""
#include <stdlib.h>
int main(int argc, char **argv) {
    int n = (int)strtol(argv[1], 0, 10);
    for (int i = 0; i < n; i++) { void *volatile p = malloc(32); free(p); }
    return 0;
}
""", ("malloc", "free"), 2),
}


def build() -> dict[str, tuple[str, tuple[str, ...], int]]:
    """name -> (binary, functions traced, calls per iteration)."""
    BUILD.mkdir(exist_ok=True)
    gcc = shutil.which("gcc")
    if gcc is None:
        raise SystemExit("gcc is needed to build the benchmark workloads")
    out = {}
    for name, (src, funcs, per) in C_SOURCES.items():
        c = BUILD / f"ltrace_{name}.c"
        exe = BUILD / f"ltrace_{name}"
        if not exe.exists() or not c.exists() or c.read_text() != src:
            c.write_text(src)
            subprocess.run([gcc, "-O2", "-o", str(exe), str(c)], check=True)
        out[name] = (str(exe), funcs, per)
    return out


def _libc() -> str:
    """The libc the workloads link against (what uprobes must be placed on)."""
    try:
        ldd = subprocess.run(["ldd", "/bin/true"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return LIBC
    for line in ldd.splitlines():
        if "libc.so" in line and "=>" in line:
            return line.split("=>", 1)[1].split()[0]
    return LIBC


def variants(exe: str, funcs: tuple[str, ...], n: int) -> dict[str, list[str]]:
    argv = [exe, str(n)]
    ut = [sys.executable, "-m", "unitrace"]
    out = {
        "untraced": argv,
        "ltrace": ["ltrace", "-e", "+".join(funcs), "-o", "/dev/null", *argv],
        "unitrace ltrace": [*ut, "ltrace", "-e", "+".join(funcs), "-o", "/dev/null", *argv],
    }
    if os.geteuid() == 0 and os.path.exists("/sys/kernel/tracing/uprobe_events"):
        out["uprobe (unitrace ftrace)"] = [*ut, "trace", "--backend", "ftrace", "-o", "/dev/null",
                                           *(f"user:libc:{f}" for f in funcs), "--", *argv]
        if shutil.which("bpftrace"):
            probes = ",".join(f"uprobe:{_libc()}:{f}" for f in funcs)
            out["uprobe (bpftrace)"] = ["bpftrace", "-q", "-e", probes + " { @ = count(); } END { clear(@); }",
                                        "-c", " ".join(argv)]
    if shutil.which("ltrace") is None:
        del out["ltrace"]
    return out


def _per_call(result: object, variant: str, calls: int) -> float:
    """Microseconds a call costs in `variant`: the run with N calls less the run with none."""
    med = result.median  # type: ignore[attr-defined]
    return (med(f"{variant} @N", "wall_s") - med(f"{variant} @0", "wall_s")) / calls * 1e6


def main() -> None:
    from bench.harness import compare

    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    wanted = sys.argv[3:]
    workloads = build()
    ltrace_v = subprocess.run(["ltrace", "-V"], capture_output=True, text=True, check=False).stdout.splitlines()
    print(f"ltrace: {ltrace_v[0] if ltrace_v else 'not installed'}")
    print(f"kernel: {os.uname().release}, cpus: {os.cpu_count()}, runs per variant: {runs}, N = {n}")
    for name, (exe, funcs, per) in workloads.items():
        if wanted and name not in wanted:
            continue
        calls = n * per
        big, small = variants(exe, funcs, n), variants(exe, funcs, 0)
        # one compare, so that every variant at N and at 0 alternates with all the others
        both = {**{f"{k} @N": v for k, v in big.items()}, **{f"{k} @0": v for k, v in small.items()}}
        result = compare(name, both, runs=runs)
        print(f"\n== {name}: {calls} calls of {'+'.join(funcs)} (N = {n}) ==")
        for variant, why in result.failures.items():
            print(f"  {variant} FAILED: {why}")

        base = _per_call(result, "untraced", calls)
        added = {v: _per_call(result, v, calls) - base for v in big if v != "untraced"}
        ref = added.get("ltrace")
        print(f"  {'variant':<26} {'wall @N':>9} {'wall @0':>9} {'us/call added':>14} {'x ltrace':>9}")
        print(f"  {'untraced':<26} {result.median('untraced @N', 'wall_s') * 1e3:>7.1f}ms "
              f"{result.median('untraced @0', 'wall_s') * 1e3:>7.1f}ms {base:>14.3f} {'':>9}")
        for v, us in added.items():
            ratio = f"{us / ref:>9.2f}" if ref else f"{'-':>9}"
            print(f"  {v:<26} {result.median(f'{v} @N', 'wall_s') * 1e3:>7.1f}ms "
                  f"{result.median(f'{v} @0', 'wall_s') * 1e3:>7.1f}ms {us:>14.2f} {ratio}")


if __name__ == "__main__":
    main()
