"""Project-wide hygiene: ruff clean, every package listed in pyproject, every ctypes function declared.

tests/test_ptrace_ctypes.py imports every module and inspects the foreign functions bound at module level.
This file adds the source-level view, which also sees functions looked up inside a function body (e.g.
`libc.syscall` in unitrace.system.caps): every `LIB.NAME` of a library handle must get both `argtypes`
and `restype` assigned, on the name it is bound to or on `LIB.NAME` itself.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("unitrace", "tui", "probes")
_LOADERS = {"CDLL", "PyDLL", "LoadLibrary"}
_NOT_FUNCTIONS = {"LoadLibrary", "argtypes", "restype", "errcheck"}


def _is_library_handle(node: ast.expr) -> bool:
    """ctypes.CDLL(...), CDLL(...), ctypes.cdll.LoadLibrary(...)"""
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    return (isinstance(f, ast.Attribute) and f.attr in _LOADERS) or (isinstance(f, ast.Name) and f.id in _LOADERS)


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (base := _dotted(node.value)):
        return f"{base}.{node.attr}"
    return None


def undeclared_ctypes_functions(source: str, filename: str = "<src>") -> list[str]:
    """`file:line: LIB.NAME` for every foreign function used without both argtypes and restype."""
    tree = ast.parse(source, filename)
    libs = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _is_library_handle(node.value):
            libs.update(d for t in node.targets if (d := _dotted(t)))
    declared: dict[str, set[str]] = {}  # bound name or LIB.NAME -> {"argtypes", "restype"}
    bindings: dict[str, tuple[str, int]] = {}  # bound name -> (LIB.NAME, line)
    uses: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                owner = _dotted(target.value) if isinstance(target, ast.Attribute) else None
                if owner is not None and target.attr in ("argtypes", "restype"):
                    declared.setdefault(owner, set()).add(target.attr)
            value = node.value
            name = _dotted(node.targets[0]) if len(node.targets) == 1 else None
            if isinstance(value, ast.Attribute) and _dotted(value.value) in libs and name is not None:
                bindings[name] = (f"{_dotted(value.value)}.{value.attr}", node.lineno)
        if isinstance(node, ast.Attribute) and _dotted(node.value) in libs and node.attr not in _NOT_FUNCTIONS:
            uses.append((f"{_dotted(node.value)}.{node.attr}", node.lineno))
    bound_funcs = {func for func, _ in bindings.values()}
    bad = []
    for name, (func, line) in bindings.items():
        have = declared.get(name, set()) | declared.get(func, set())
        if have != {"argtypes", "restype"}:
            bad.append(f"{filename}:{line}: {func} (bound to {name}) lacks {' and '.join(sorted({'argtypes', 'restype'} - have))}")
    for func, line in uses:
        if func in bound_funcs:
            continue
        have = declared.get(func, set())
        if have != {"argtypes", "restype"}:
            bad.append(f"{filename}:{line}: {func} lacks {' and '.join(sorted({'argtypes', 'restype'} - have))}")
    return sorted(set(bad))


def _python_files() -> list[Path]:
    return sorted(p for d in SOURCE_DIRS if (PROJECT / d).is_dir() for p in (PROJECT / d).rglob("*.py"))


def test_ctypes_check_catches_what_it_must() -> None:
    bad = """
import ctypes
libc = ctypes.CDLL(None)
def f():
    lib = ctypes.CDLL("libx.so")
    g = lib.frob
    g.argtypes = [ctypes.c_int]
    return g(1) + libc.getpid()
"""
    found = undeclared_ctypes_functions(bad)
    assert any("lib.frob" in b and "restype" in b for b in found), found
    assert any("libc.getpid" in b for b in found), found
    good = """
import ctypes
def f():
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.syscall
    fn.argtypes = [ctypes.c_long]
    fn.restype = ctypes.c_long
    libc.getpid.argtypes = []
    libc.getpid.restype = ctypes.c_int
    return fn(39) + libc.getpid()
"""
    assert undeclared_ctypes_functions(good) == []


def test_every_ctypes_function_declares_argtypes_and_restype() -> None:
    bad = []
    for path in _python_files():
        bad += undeclared_ctypes_functions(path.read_text(), str(path.relative_to(PROJECT)))
    assert bad == [], "\n".join(bad)


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed (pip install -e .[test] installs it)")
    proc = subprocess.run([ruff, "check", "--no-cache", "."], cwd=PROJECT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_package_directory_is_listed_in_pyproject() -> None:
    """A package missing from pyproject's `packages` works editable and vanishes from a real install."""
    tool = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    dirs = {name: PROJECT / path for name, path in tool.get("package-dir", {}).items()}
    found = set()
    for name, root in dirs.items():
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root)
            if any(part in ("__pycache__", "_build") or part.startswith(".") for part in rel.parts):
                continue
            found.add(".".join([name, *rel.parts]))
    assert "unitrace" in found
    assert found - listed == set(), f"packages missing from pyproject.toml: {sorted(found - listed)}"
    assert listed - found == set(), f"pyproject.toml lists packages that do not exist: {sorted(listed - found)}"
