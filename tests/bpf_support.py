"""Which BPF programs loaded in the kernel are ours, for the tests that check nothing is left behind."""

from __future__ import annotations

import json
import subprocess
import time

# the names bcc gives our functions (bpftool shows 15 characters of them)
OUR_PROGRAMS = ("ut_probe", "tracepoint__raw", "tracepoint__sch", "tracepoint__sig", "raw_tracepoint")


def loaded_now() -> list[str]:
    out = subprocess.run(["bpftool", "prog", "list", "--json"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"bpftool failed: {out.stderr}")
    return [p.get("name", "") for p in json.loads(out.stdout or "[]") if p.get("name", "").startswith(OUR_PROGRAMS)]


def our_programs() -> list[str]:
    """Our programs still loaded. The kernel frees a detached raw-tracepoint program after an RCU grace
    period, not at close(): one still listed is a leftover only if it is still there three seconds later."""
    found = loaded_now()
    for _ in range(30):
        if not found:
            break
        time.sleep(0.1)
        found = loaded_now()
    return found
