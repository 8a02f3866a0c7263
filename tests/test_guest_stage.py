"""The guest stage: boot Debian's kernel under QEMU once and run every `guest`-marked test inside it.

The host kernel lacks kprobes and refuses the function tracer; those tests count only if they run, so this
stage is part of the normal test command. It skips (with the reason) only where QEMU or the guest kernel is
not installed, which scripts/setup.sh provides.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.guest_support import IN_GUEST

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent


def _missing() -> str | None:
    if IN_GUEST:
        return "already inside the guest"
    if os.geteuid() != 0:
        return "booting the guest needs root (9p export of /)"
    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86 is not installed (scripts/setup.sh installs it)"
    if not list(Path("/boot").glob("vmlinuz-*-amd64")):
        return "no Debian guest kernel in /boot (scripts/setup.sh installs linux-image-amd64)"
    if not list(HERE.glob("test_*.py")):
        return "no guest tests"
    return None


@pytest.mark.skipif(_missing() is not None, reason=_missing() or "")
def test_guest_stage() -> None:
    guest_tests = sorted(str(p.relative_to(PROJECT)) for p in HERE.glob("test_*.py")
                         if "guest_only" in p.read_text() and p.name != Path(__file__).name)
    assert guest_tests, "no test module uses guest_only"
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "guest", "-p", "no:cacheprovider", *guest_tests]
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(HERE / "guest" / "guest.py"), "--timeout", "900", "--", *cmd],
                          capture_output=True, text=True, cwd=PROJECT)
    took = time.monotonic() - start
    print(f"guest stage: {took:.1f}s\n{proc.stdout}\n{proc.stderr}")
    assert proc.returncode == 0, f"guest tests failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    assert " passed" in proc.stdout and " skipped" not in proc.stdout, proc.stdout


def _build_module(out: Path) -> Path:
    """The ftrace_bug test module, built on the host against the guest kernel's headers (kbuild)."""
    kver = max(Path("/boot").glob("vmlinuz-*-amd64")).name.removeprefix("vmlinuz-")
    build = Path(f"/lib/modules/{kver}/build")
    if not build.exists():
        pytest.fail(f"no kernel headers for the guest kernel at {build} (scripts/setup.sh installs them)")
    src = HERE / "guest" / "ftrace_bug_module"
    out.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        (out / f.name).write_bytes(f.read_bytes())
    subprocess.run(["make", "-s", "-C", str(build), f"M={out}", "modules"], check=True, capture_output=True)
    return out / "ut_ftrace_bug.ko"


@pytest.mark.skipif(_missing() is not None, reason=_missing() or "")
def test_guest_ftrace_bug_stage() -> None:
    """A boot of its own: after ftrace_bug() the guest's ftrace stays disabled until reboot."""
    module = _build_module(PROJECT / "tests" / "_build" / "ftrace_bug_module")
    cmd = ["env", f"UNITRACE_FTRACE_BUG_KO={module}", sys.executable, "-m", "pytest", "-q", "-m",
           "guest_ftrace_bug", "-p", "no:cacheprovider", "tests/test_guest_ftrace_bug.py"]
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(HERE / "guest" / "guest.py"), "--timeout", "600", "--", *cmd],
                          capture_output=True, text=True, cwd=PROJECT)
    print(f"guest ftrace_bug stage: {time.monotonic() - start:.1f}s\n{proc.stdout}\n{proc.stderr}")
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    assert "1 passed" in proc.stdout, proc.stdout
