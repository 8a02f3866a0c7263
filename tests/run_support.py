"""Helpers for the `unitrace run` tests: the demo program and the CLI run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_demo(build_c: Callable[..., Path]) -> Path:
    """The bundled demo, compiled from demo/demo.c the way setup.sh builds it."""
    return build_c(ROOT / "demo" / "demo.c", name="demo", flags=("-O1", "-g", "-Wall"))


def unitrace(*args: str, tmp: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`unitrace ARGS` in a subprocess (the demo writes its log into `tmp`)."""
    return subprocess.run([sys.executable, "-m", "unitrace", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=tmp,
                          env={"TMPDIR": str(tmp), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(ROOT)})
