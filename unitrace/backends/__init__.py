"""Backend registry. Backends are imported lazily: a machine without bcc must still run ptrace."""

from __future__ import annotations

import importlib

from unitrace.backends.base import Backend

# name -> "module:Class". Order is the order `unitrace doctor` and the planner's messages use.
BACKENDS: dict[str, str] = {
    "bpf": "unitrace.backends.bpf.backend:BpfBackend",
    "ftrace": "unitrace.backends.ftrace.backend:FtraceBackend",
    "ptrace": "unitrace.backends.ptrace.backend:PtraceBackend",
}


class BackendMissing(Exception):
    """The backend's code is not part of this build (as opposed to unusable on this machine)."""


def load_backend(name: str) -> Backend:
    spec = BACKENDS[name]
    modname, _, clsname = spec.partition(":")
    try:
        mod = importlib.import_module(modname)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (exc.name == modname or modname.startswith(exc.name + ".")):
            raise BackendMissing(f"the {name} backend is not part of this build yet") from exc
        raise
    return getattr(mod, clsname)()
