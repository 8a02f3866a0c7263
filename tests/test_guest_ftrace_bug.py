"""The kernel-log decoder, live, on a genuine ftrace_bug: inside the QEMU guest a test module rewrites its own
function's ftrace NOP with other valid bytes (tests/guest/ftrace_bug_module), and enabling the function
tracer on it makes ftrace call ftrace_bug(). `unitrace decode --follow` must catch and explain it.

ftrace stays disabled until reboot after this, so it runs in a boot of its own
(tests/test_guest_stage.py::test_guest_ftrace_bug_stage). Never load that module on the host.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.guest_support import IN_GUEST

pytestmark = [pytest.mark.guest_ftrace_bug,
              pytest.mark.skipif(not IN_GUEST, reason="loads a test module that breaks ftrace: guest only")]
ROOT = Path(__file__).resolve().parent.parent


def test_follow_catches_a_real_ftrace_bug() -> None:
    module = os.environ["UNITRACE_FTRACE_BUG_KO"]
    follower = subprocess.Popen([sys.executable, "-m", "unitrace", "decode", "--follow", "--json"], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert follower.stderr is not None
        assert b"following /dev/kmsg" in follower.stderr.readline()
        subprocess.run(["insmod", module], check=True)
        inst = Path("/sys/kernel/tracing/instances/unitrace-ftrace-bug-test")
        inst.mkdir()
        try:
            (inst / "set_ftrace_filter").write_text("unitrace_victim\n")
            try:
                (inst / "current_tracer").write_text("function\n")
            except OSError:
                pass  # ftrace refuses once it has hit the bug; the splat is what we wait for
        finally:
            try:
                (inst / "current_tracer").write_text("nop\n")
            except OSError:
                pass
            inst.rmdir()
        deadline = time.monotonic() + 60
        reports = []
        assert follower.stdout is not None
        fd = follower.stdout.fileno()
        buf = b""
        while time.monotonic() < deadline and not any(r.get("ftrace") for r in reports):
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            reports.extend(json.loads(ln) for ln in lines if ln.strip())
    finally:
        follower.terminate()
        follower.wait(timeout=10)
    bug = next((r["ftrace"] for r in reports if r.get("ftrace")), None)
    assert bug is not None, f"no ftrace_bug report decoded; got {reports}"
    assert bug["variant"] == "failed to modify"
    assert (bug["symbol"], bug["module"]) == ("unitrace_victim", "ut_ftrace_bug")
    assert bug["actual"]["data"] == "0f:1f:44:00:08"
    assert bug["expected"]["data"] == "0f:1f:44:00:00"
    assert bug["actual_insns"][0]["mnemonic"] == "nop"
    report = next(r for r in reports if r.get("ftrace"))
    assert report["causes"], "the decoder must explain the likely cause"
