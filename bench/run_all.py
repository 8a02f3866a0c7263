"""Run every benchmark workload module `bench/<area>_<what>.py` in turn, each as its own process.

    python bench/run_all.py [RUNS] [NAME ...]

RUNS is passed to each module as its first argument; NAMEs (module names without .py) choose a subset.
A module that fails is reported and the others still run; the exit code is 1 if any failed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOT_WORKLOADS = {"run_all", "harness"}


def discover() -> list[Path]:
    return sorted(p for p in HERE.glob("*_*.py") if p.stem not in NOT_WORKLOADS and not p.stem.startswith("_"))


def main(argv: list[str]) -> int:
    runs = argv[0] if argv and argv[0].isdigit() else None
    wanted = set(argv[1:] if runs else argv)
    failed = []
    for module in discover():
        if wanted and module.stem not in wanted:
            continue
        print(f"\n######## {module.stem}", flush=True)
        start = time.perf_counter()
        rc = subprocess.run([sys.executable, str(module), *([runs] if runs else [])], cwd=HERE.parent,
                            check=False).returncode
        print(f"######## {module.stem}: exit {rc} after {time.perf_counter() - start:.1f} s", flush=True)
        if rc != 0:
            failed.append(module.stem)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
