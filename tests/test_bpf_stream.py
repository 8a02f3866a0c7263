"""Streaming every call of a tight syscall loop through the bpf backend loses nothing (issue 6).

Before variable-size records, the 200k-getppid loop lost about 90% of its records: every record was a fixed
1.4 KB and the 4 MiB ring buffer filled faster than the Python consumer emptied it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.run_support import ROOT

LOOPS = 200_000
GETPPID_LOOP = f"""
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {{ for (int i = 0; i < {LOOPS}; i++) syscall(SYS_getppid); return 0; }}
"""


@pytest.mark.parametrize("transport", ["ringbuf", "perf"])
def test_every_getppid_of_a_200k_loop_arrives(tmp_path: Path, build_c, transport: str) -> None:  # type: ignore[no-untyped-def]
    exe = str(build_c(GETPPID_LOOP, name="getppid_loop", flags=("-O2",)))
    out = tmp_path / "events.jsonl"
    proc = subprocess.run([sys.executable, "-m", "unitrace", "trace", "syscall:getppid { print }", "--backend", "bpf",
                           "--json", "-o", str(out), "--", exe], capture_output=True, text=True, timeout=300,
                          check=False, cwd=tmp_path,
                          env={"TMPDIR": str(tmp_path), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                               "PYTHONPATH": str(ROOT), "UNITRACE_BPF_TRANSPORT": transport})
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text().splitlines()
    stats = json.loads(lines[-1])
    events = [json.loads(line) for line in lines[:-1]]
    calls = [e for e in events if e["kind"] == "syscall" and e["name"] == "getppid"]
    assert stats["kind"] == "stats" and stats["lost"] == 0 and stats["lost_per_cpu"] == {}, stats
    assert len(calls) == LOOPS, f"{LOOPS - len(calls)} of {LOOPS} getppid calls missing; stats {stats}"
    assert stats["events"] == len(events)
    # decoded, in order, from the one traced process
    assert {e["pid"] for e in calls} == {calls[0]["pid"]} and all(e["ret"] > 0 for e in calls)
    assert [e["ts"] for e in calls] == sorted(e["ts"] for e in calls)
