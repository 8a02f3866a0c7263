"""What every backend provides: a pure compile step and an effectful start step.

compile(): probes -> CompiledProgram, text artifacts only (golden-testable, shown by `unitrace compile`).
start():   CompiledProgram + TraceTarget -> Session, a context manager whose close() is idempotent and
           runs on every exit path. Sessions deliver events in batches to an `emit` callback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from unitrace.events import Event, SessionStats
from unitrace.model.probe import Probe, ProbePoint, SyscallTarget

# syscalls whose exit is never reported: the thread or the process is gone. Kernel backends make their
# event from the entry (`exit_group(0) = ?`, as strace prints it).
NO_RETURN_SYSCALLS = frozenset({"exit", "exit_group"})


def only_calls_that_never_return(probe: Probe) -> bool:
    """A probe on exit/exit_group alone: its events are made at the entry, so kernel backends aggregate it
    in user space (a kernel aggregation counts at the exit, which never comes)."""
    names = {n for pt in probe.points if isinstance(pt.target, SyscallTarget) for n in pt.target.names}
    return bool(names) and names <= NO_RETURN_SYSCALLS

EmitFn = Callable[[list[Event]], None]


@dataclass(frozen=True, slots=True)
class TraceTarget:
    """What to trace: a command to start, running processes, or the whole system."""

    command: tuple[str, ...] = ()
    pids: tuple[int, ...] = ()
    system_wide: bool = False
    follow_forks: bool = False


@dataclass(frozen=True, slots=True)
class Artifact:
    """One thing a backend would load into the kernel or install, as text (`unitrace compile`)."""

    title: str  # e.g. "seccomp filter", "uprobe_events", "filter: events/syscalls/sys_enter_openat"
    text: str


@dataclass(frozen=True, slots=True)
class CompiledProgram:
    backend: str
    probes: tuple[Probe, ...]
    artifacts: tuple[Artifact, ...] = ()
    # Backend-private, immutable plan data the session needs (e.g. the syscall number set).
    data: Mapping[str, object] = field(default_factory=dict)


class Session(Protocol):
    stats: SessionStats

    def run(self) -> int:
        """Trace until the target is gone or stop() is called; return the exit status to mirror."""

    def stop(self) -> None:
        """Ask run() to finish soon; safe to call from a signal handler."""

    def close(self) -> None:
        """Remove everything this session created. Idempotent; runs on every exit path."""

    def __enter__(self) -> Session: ...

    def __exit__(self, *exc: object) -> None: ...


class Backend(Protocol):
    name: str
    # probe kind -> the function that compiles one point of that kind (pure)
    kinds: Mapping[str, Callable[..., object]]

    def unsupported_reason(self, point: ProbePoint) -> str | None:
        """None when this backend can compile `point`, else why not (for the planner's message)."""

    def compile(self, probes: Sequence[Probe], options: Mapping[str, object]) -> CompiledProgram: ...

    def start(
        self, program: CompiledProgram, target: TraceTarget, emit: EmitFn, options: Mapping[str, object]
    ) -> Session: ...
