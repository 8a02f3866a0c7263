"""Cost of bpf user stacks per event: a loop of N one-byte writes to /dev/null, 4 calls deep (-O2, no frame
pointers), traced by `unitrace trace --backend bpf` with `{ print }`, `{ print; ustack }` (DWARF: registers
and an 8 KiB stack copy, unwound here) and the same with UNITRACE_BPF_USTACK=fp.

    python bench/bpf_ustack.py [N]

Prints, per variant: the loop's own time per call (what the tracer adds inside the traced program), the
wall time of the whole run (start-up included) and the events per second the consumer delivered
(N / (wall - start-up), start-up measured by a run with N = 1)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROBE = 'syscall:write /comm == "bpf_ustack"/ {%s}'


def run(exe: Path, n: int, action: str | None, env: dict[str, str]) -> tuple[float, float]:
    cmd = [str(exe), str(n)]
    if action is not None:
        cmd = [sys.executable, "-m", "unitrace", "trace", "--backend", "bpf", PROBE % action, "--", *cmd]
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       env=dict(os.environ, **env), check=True)
    wall = time.monotonic() - t0
    m = re.search(r"loop [\d.]+ ms ([\d.]+) us/call", p.stderr)
    assert m, p.stderr
    return float(m.group(1)), wall


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as d:
        exe = Path(d) / "bpf_ustack"
        subprocess.run(["gcc", "-O2", "-fomit-frame-pointer", "-g", "-o", str(exe), str(HERE / "bpf_ustack.c")],
                       check=True)
        base, _ = run(exe, n, None, {})
        print(f"untraced: {base:.3f} us/call")
        for name, action, env in (("print", " print ", {}), ("print; ustack (dwarf, 8 KiB)", " print; ustack ", {}),
                                  ("print; ustack (fp)", " print; ustack ", {"UNITRACE_BPF_USTACK": "fp"})):
            _, start = run(exe, 1, action, env)
            loop, wall = run(exe, n, action, env)
            rate = n / max(wall - start, 1e-9)
            print(f"{name}: in loop {loop:.3f} us/call (+{loop - base:.3f}), wall {wall:.2f} s "
                  f"(start-up {start:.2f} s), {rate:,.0f} events/s = {1e6 / rate:.1f} us/event end to end")


if __name__ == "__main__":
    main()
