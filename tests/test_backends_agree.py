"""The same probe on every backend gives the same events: cases where the kernel's view differs from
ptrace's by construction (calls that never return, the started command's wait before its exec)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.run_support import build_demo, unitrace

BACKENDS = ("ptrace", "ftrace", "bpf")


@pytest.mark.parametrize("backend", BACKENDS)
def test_calls_that_never_return(backend: str, build_c, tmp_path: Path) -> None:
    """The demo and the /bin/true it runs end with exit_group(0); its two threads with exit(0). No exit record
    ever comes for these: the kernel backends report them from the entry, as strace does, `= ?`."""
    demo = build_demo(build_c)
    proc = unitrace("trace", "--backend", backend, "syscall:exit_group, syscall:exit", "--", str(demo),
                    tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert len(re.findall(r"\] exit_group\(0\) += \?$", out, re.M)) == 2, out
    assert len(re.findall(r"\] exit\(0\) += \?$", out, re.M)) == 2, out

    counted = unitrace("trace", "--backend", backend, "syscall:exit_group { count() }", "--", str(demo),
                       tmp=tmp_path)
    assert counted.returncode == 0, counted.stderr
    assert re.search(r"^@: 2$", counted.stdout + counted.stderr, re.M), counted.stdout + counted.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_call_before_the_commands_exec(backend: str, tmp_path: Path) -> None:
    """A started command waits for the tracer before its exec; that wait is the tracer's, not the
    command's: no read of ours, and nothing `resumed` without its start."""
    proc = unitrace("trace", "--backend", backend, "syscall:read", "--", "sh", "-c", "cat /etc/hostname",
                    tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "read" in ln]
    assert lines and not [ln for ln in lines if "resumed" in ln or ln.startswith(("unitrace", "python"))], lines
    assert {ln.split("[", 1)[0] for ln in lines if "[" in ln} <= {"sh", "cat"}, lines
