"""Repository hygiene: ruff clean, every package directory installed, and the session-end checks of
tests/conftest.py shown to catch what they are there to catch. (ctypes declarations are checked by
tests/test_ptrace_ctypes.py for the whole package.)"""

from __future__ import annotations

import ctypes
import fnmatch
import os
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import stopped_descendants, stray_leftovers
from unitrace.system.leftovers import Leftover

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean() -> None:
    # the ruff installed beside this interpreter (the .venv's) first: that is the version pyproject asks for
    beside = Path(sys.executable).parent / "ruff"
    ruff = str(beside) if beside.exists() else shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e .[test])")
    proc = subprocess.run([ruff, "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _package_dirs() -> dict[str, Path]:
    """Every directory that is a Python package, by the dotted name it installs as."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    out = {}
    for top, rel in config["package-dir"].items():
        base = ROOT / rel
        for init in base.rglob("__init__.py"):
            if any(part.startswith((".", "_")) and part != "__init__.py" for part in init.relative_to(base).parts):
                continue
            sub = init.parent.relative_to(base).parts
            out[".".join((top, *sub))] = init.parent
    return out


def test_every_package_directory_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = _package_dirs()
    assert sorted(set(found) - listed) == [], "package directories missing from pyproject's packages"
    # and the other way: nothing listed that does not exist (data-only packages like probes have no
    # __init__.py, so check the directory)
    for name in listed:
        top = next(t for t in sorted(config["package-dir"], key=len, reverse=True)
                   if name == t or name.startswith(t + "."))
        rel = Path(config["package-dir"][top], *name[len(top):].split(".")[1:])
        assert (ROOT / rel).is_dir(), f"{name} is listed but {rel} does not exist"


def test_stray_leftovers_judges_owner_and_time() -> None:
    me = os.getpid()
    dead = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    now = [Leftover("instance", f"unitrace-{me}", me), Leftover("instance", f"unitrace-{dead}", dead),
           Leftover("instance", "unitrace-1", 1), Leftover("event", f"unitrace_{dead}/old", dead)]
    stray = stray_leftovers({f"event unitrace_{dead}/old"}, now, me)
    # ours and a dead owner's new ones count; a live other owner (PID 1) and what was there before do not
    assert [str(x) for x in stray] == [f"instance unitrace-{me}", f"instance unitrace-{dead}"]


PTRACE_SEIZE, PTRACE_INTERRUPT = 0x4206, 0x4207


def _ptrace() -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    fn = ctypes.CDLL(None, use_errno=True).ptrace
    fn.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    fn.restype = ctypes.c_long
    return fn


def test_stopped_descendants_finds_a_ptrace_stopped_child() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        ptrace = _ptrace()
        assert ptrace(PTRACE_SEIZE, child.pid, None, None) == 0, os.strerror(ctypes.get_errno())
        assert ptrace(PTRACE_INTERRUPT, child.pid, None, None) == 0, os.strerror(ctypes.get_errno())
        os.waitpid(child.pid, 0)  # the interrupt's stop
        assert stopped_descendants(os.getpid()) == [child.pid]
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert stopped_descendants(os.getpid()) == []


def _listed_package_dirs(config: dict) -> dict[str, Path]:
    out = {}
    for name in config["packages"]:
        top = next(t for t in sorted(config["package-dir"], key=len, reverse=True)
                   if name == t or name.startswith(t + "."))
        out[name] = ROOT / Path(config["package-dir"][top], *name[len(top):].split(".")[1:])
    return out


def test_every_data_file_in_a_package_is_installed() -> None:
    """A file the code opens beside itself (prototype tables, the BPF header, stylesheets) must be in
    package-data, or an installed (non-editable) unitrace fails at run time, not at build time."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]
    dirs = _listed_package_dirs(config)
    missing = []
    for name, directory in dirs.items():
        for path in directory.rglob("*"):
            rel = path.relative_to(directory)
            if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in rel.parts:
                continue
            if any((directory / part).joinpath("__init__.py").exists() for part in rel.parts[:1]) and len(rel.parts) > 1:
                continue  # belongs to a sub-package, judged under its own name
            if not any(fnmatch.fnmatch(str(rel), pattern) for pattern in patterns.get(name, [])):
                missing.append(f"{name}: {rel}")
    assert missing == [], f"data files not in pyproject's package-data: {missing}"
    for name, pats in patterns.items():
        for pattern in pats:
            assert list(dirs[name].glob(pattern)), f"package-data {name}: {pattern} matches nothing"
