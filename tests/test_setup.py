"""scripts/setup.sh and .ci/run: CI runs exactly the documented test command; a second setup run is silent
and changes nothing; a failure names its step; the venv sees Debian's bcc and nothing else of
dist-packages."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUP = ROOT / "scripts" / "setup.sh"
VENV_PY = ROOT / ".venv" / "bin" / "python"
STAMP = ROOT / ".venv" / ".unitrace-setup-stamp"


def _doc_commands(doc: str) -> list[str]:
    text = (ROOT / doc).read_text()
    return re.findall(r"^\s*(\./scripts/setup\.sh && .+)$", text, flags=re.M)


@pytest.mark.parametrize("doc", ["README.md", "docs/setup.md"])
def test_docs_give_the_two_commands_and_ci_runs_the_test_one(doc: str) -> None:
    commands = _doc_commands(doc)
    assert len(commands) == 2, commands
    demo, tests = commands
    assert "demo/_build/demo" in demo
    assert tests == "./scripts/setup.sh && .venv/bin/python -m pytest"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in ci
    # the last line of .ci/run is the README's command, character for character
    assert ci.rstrip("\n").splitlines()[-1] == tests


@pytest.mark.parametrize("script", ["scripts/setup.sh", ".ci/run"])
def test_scripts_parse_and_are_executable(script: str) -> None:
    path = ROOT / script
    assert os.access(path, os.X_OK)
    subprocess.run(["bash", "-n", str(path)], check=True)


def _set_up() -> bool:
    return VENV_PY.exists() and STAMP.exists()


@pytest.mark.skipif(not _set_up(), reason="this checkout has no .venv yet: run scripts/setup.sh first")
def test_second_run_is_silent_and_changes_nothing() -> None:
    before = STAMP.stat().st_mtime_ns, STAMP.read_text()
    proc = subprocess.run([str(SETUP)], capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    assert (STAMP.stat().st_mtime_ns, STAMP.read_text()) == before


@pytest.mark.skipif(not _set_up(), reason="this checkout has no .venv yet: run scripts/setup.sh first")
def test_failure_names_the_step() -> None:
    env = {**os.environ, "UNITRACE_PYTHON": "/nonexistent/python3"}
    proc = subprocess.run([str(SETUP)], capture_output=True, text=True, env=env, check=False, timeout=600)
    assert proc.returncode == 1
    assert "setup.sh: FAILED: /nonexistent/python3 not found" in proc.stderr


def test_unknown_argument_is_refused() -> None:
    proc = subprocess.run([str(SETUP), "--bogus"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "unknown argument: --bogus" in proc.stderr


@pytest.mark.skipif(not _set_up(), reason="this checkout has no .venv yet: run scripts/setup.sh first")
def test_venv_imports_debian_bcc_without_dist_packages() -> None:
    if not Path("/usr/lib/python3/dist-packages/bcc").is_dir():
        pytest.skip("python3-bpfcc is not installed")
    code = ("import sys, bcc; print(bcc.__file__); "
            "print(any(p.rstrip('/') == '/usr/lib/python3/dist-packages' for p in sys.path))")
    out = subprocess.run([str(VENV_PY), "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == str(ROOT / ".venv" / "debian-bcc" / "bcc" / "__init__.py")
    assert out[1] == "False"


def test_kernel_headers_for_bcc_are_in_place() -> None:
    build = Path(f"/lib/modules/{os.uname().release}/build")
    if not build.exists() and not Path("/sys/kernel/kheaders.tar.xz").exists():
        pytest.fail(f"{build} is missing: scripts/setup.sh links Debian's headers there")
    if build.exists():
        assert (build / "include").is_dir()
        assert (build.parent / "source").exists()
