"""Run every benchmark workload module `bench/<area>_<what>.py`, each in its own process, one after another.

    python -m bench.run_all                 every workload, each with its own default number of runs
    python -m bench.run_all 5               pass "5" (runs per variant) to every workload
    python -m bench.run_all -k ptrace 5     only workloads whose module name contains "ptrace"

Run from the repository root (the modules import `bench.harness`). Prints each workload's own report; exits
non-zero if any workload failed, after running the rest.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOT_WORKLOADS = {"harness", "run_all"}


def discover(pattern: str = "") -> list[str]:
    """Module names of the workloads: bench/*_*.py, minus the harness itself, sorted."""
    return sorted(p.stem for p in HERE.glob("*_*.py")
                  if p.stem not in NOT_WORKLOADS and not p.stem.startswith("_") and pattern in p.stem)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__.splitlines()[0])
    ap.add_argument("-k", default="", help="only workloads whose module name contains this")
    ap.add_argument("args", nargs="*", help="passed to every workload (usually the runs per variant)")
    ns = ap.parse_args(argv)
    names = discover(ns.k)
    if not names:
        print(f"no workload module matches {ns.k!r} in {HERE}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"\n######## bench.{name} {' '.join(ns.args)}".rstrip(), flush=True)
        start = time.monotonic()
        rc = subprocess.run([sys.executable, "-m", f"bench.{name}", *ns.args], cwd=HERE.parent).returncode
        print(f"######## bench.{name}: exit {rc}, {time.monotonic() - start:.1f} s", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
