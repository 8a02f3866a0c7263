"""Every ctypes foreign function in the unitrace package declares argtypes and restype (STYLE: bcc's
libbcc.py). Walks every module of the package, imports it, and inspects module-level objects and the
attributes of module-level classes.

ctypes keeps no record of whether restype was assigned (an unassigned one reads as c_int), so restype is
checked in the module's source: an assignment `NAME.restype = ...` to the name the function is bound to.
"""

from __future__ import annotations

import ast
import ctypes
import importlib
import inspect
import pkgutil

import unitrace

# modules that need an optional system package (bcc) import only where it is installed
_OPTIONAL = ("bcc",)


def _modules() -> tuple[list[object], list[str]]:
    mods, skipped = [], []
    for info in pkgutil.walk_packages(unitrace.__path__, "unitrace."):
        if info.name.endswith(".__main__"):
            continue  # runs the CLI when imported
        try:
            mods.append(importlib.import_module(info.name))
        except ImportError as exc:
            if exc.name and exc.name.split(".")[0] in _OPTIONAL:
                skipped.append(f"{info.name} ({exc.name} missing)")
                continue
            raise
    return mods, skipped


def _restype_assignments(mod: object) -> set[str]:
    """Dotted names X with `X.restype = ...` in the module's source (X, or Class.X inside a class)."""
    try:
        tree = ast.parse(inspect.getsource(mod))  # type: ignore[arg-type]
    except (OSError, TypeError):
        return set()
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr == "restype":
                    out.add(ast.unparse(target.value))
    return out


def _foreign_functions() -> list[tuple[str, str, ctypes._CFuncPtr, set[str]]]:  # type: ignore[name-defined]
    """(where, local name, function, restype assignments in its module)."""
    found = []
    mods, skipped = _modules()
    if skipped:
        print("not importable here:", ", ".join(skipped))
    for mod in mods:
        assigned = _restype_assignments(mod)
        for name, obj in vars(mod).items():
            if isinstance(obj, ctypes._CFuncPtr):  # type: ignore[attr-defined]
                found.append((f"{mod.__name__}.{name}", name, obj, assigned))
            elif isinstance(obj, type) and obj.__module__ == mod.__name__:
                for attr, value in vars(obj).items():
                    if isinstance(value, ctypes._CFuncPtr):  # type: ignore[attr-defined]
                        found.append((f"{mod.__name__}.{name}.{attr}", attr, value, assigned))
    return found


def _problems(where: str, local: str, fn: object, assigned: set[str]) -> list[str]:
    out = []
    if fn.argtypes is None:  # type: ignore[attr-defined]
        out.append(f"{where}: no argtypes")
    if not ({local, f"self.{local}", f"cls.{local}"} & assigned):
        out.append(f"{where}: no restype")
    return out


def test_every_foreign_function_is_declared() -> None:
    funcs = _foreign_functions()
    assert any(where == "unitrace.backends.ptrace.sys.raw_ptrace" for where, *_ in funcs)  # the walk finds them
    missing = [p for where, local, fn, assigned in funcs for p in _problems(where, local, fn, assigned)]
    assert not missing, "\n".join(missing)


def test_the_check_catches_an_undeclared_function() -> None:
    bare = ctypes.CDLL(None).getpid
    assert _problems("getpid", "bare", bare, set()) == ["getpid: no argtypes", "getpid: no restype"]
    bare.argtypes = []
    assert _problems("getpid", "bare", bare, {"bare"}) == []
