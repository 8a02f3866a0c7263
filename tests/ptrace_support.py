"""Helpers for the ptrace engine's tests: build the C programs in tests/progs/ptrace, run a session through
the backend's Python API and keep every event it emits."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from unitrace.backends.base import CompiledProgram, TraceTarget
from unitrace.backends.ptrace.backend import PtraceBackend
from unitrace.decode.api import FormatOptions
from unitrace.decode.table import get_table
from unitrace.events import Event, EventKind
from unitrace.model.probe import Probe, ProbePoint, SyscallTarget

PROGS = Path(__file__).parent / "progs" / "ptrace"
RUNNER = [sys.executable, str(PROGS / "tracer_main.py")]


def build(name: str, outdir: Path) -> str:
    gcc = shutil.which("gcc")
    assert gcc is not None, "gcc is part of the supported environment"
    exe = outdir / name
    if not exe.exists():
        subprocess.run([gcc, "-O1", "-Wall", "-pthread", "-o", str(exe), str(PROGS / f"{name}.c")], check=True)
    return str(exe)


def compile_for(names: Iterable[str] | None = None) -> CompiledProgram:
    table = get_table()
    wanted = tuple(sorted(names)) if names is not None else tuple(sorted(table.by_name))
    probes = (Probe(points=(ProbePoint("syscall", SyscallTarget(wanted, wanted)),)),)
    return PtraceBackend().compile(probes, {})


@dataclass
class Result:
    status: int
    events: list[Event] = field(default_factory=list)

    def of(self, kind: EventKind, name: str | None = None) -> list[Event]:
        return [e for e in self.events if e.kind is kind and (name is None or e.name == name)]

    def lines(self) -> list[str]:
        """Completed syscalls as `name(args) = ret`, the part every mode must agree on."""
        return [f"{e.name}({', '.join(e.args)}) = {e.ret_text}" for e in self.of(EventKind.SYSCALL)]


def trace(command: list[str] | None = None, *, pids: tuple[int, ...] = (), names: Iterable[str] | None = None,
          on_batch: Callable[[list[Event]], None] | None = None, ready: Callable[[object], None] | None = None,
          **options: object) -> Result:
    """Run one session to its end on this thread. `ready(session)` runs after start, before run()."""
    program = compile_for(names)
    opts: Mapping[str, object] = {"follow_forks": True, "format_options": FormatOptions(), **options}
    result = Result(0)

    def emit(batch: list[Event]) -> None:
        result.events.extend(batch)
        if on_batch is not None:
            on_batch(batch)

    target = TraceTarget(command=tuple(command or ()), pids=pids, follow_forks=bool(opts["follow_forks"]))
    with PtraceBackend().start(program, target, emit, opts) as session:
        if ready is not None:
            ready(session)
        result.status = session.run()
    return result


def later(fn: Callable[[], object]) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


def proc_state(pid: int) -> tuple[str, int]:
    """(State letter, TracerPid) from /proc/PID/status; ("", 0) when gone."""
    state, tracer = "", 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("State:"):
                    state = line.split()[1]
                elif line.startswith("TracerPid:"):
                    tracer = int(line.split()[1])
    except OSError:
        pass
    return state, tracer
