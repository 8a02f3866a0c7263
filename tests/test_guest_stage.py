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
                         if "guest_only" in p.read_text())
    assert guest_tests, "no test module uses guest_only"
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "guest", "-p", "no:cacheprovider", *guest_tests]
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(HERE / "guest" / "guest.py"), "--timeout", "900", "--", *cmd],
                          capture_output=True, text=True, cwd=PROJECT)
    took = time.monotonic() - start
    print(f"guest stage: {took:.1f}s\n{proc.stdout}\n{proc.stderr}")
    assert proc.returncode == 0, f"guest tests failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    assert " passed" in proc.stdout and " skipped" not in proc.stdout, proc.stdout
