"""Turning probe text typed in the UI into resolved probes, and deciding which probe a recorded event
belongs to (the same rules the live router applies: syscalls by name, calls by symbol, tracepoints by
`subsystem:event`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from unitrace.errors import UnitraceError
from unitrace.events import Event, EventKind
from unitrace.model.probe import Probe, SyscallTarget, TracepointTarget, UserTarget


def parse_probes(text: str) -> tuple[Probe, ...]:
    """Probe one-liners as on the command line (`syscall:openat /errno != 0/`), resolved."""
    try:
        from unitrace.lang import parse_probe_args, resolve
    except ImportError as exc:
        raise UnitraceError("the probe language is not available in this build") from exc
    import shlex

    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise UnitraceError(f"probe text: {exc}") from exc
    if not words:
        raise UnitraceError("type a probe, e.g. syscall:openat")
    program = resolve(parse_probe_args(words))
    return program.probes


def compile_predicate(probe: Probe) -> Callable[[Event], bool] | None:
    if probe.predicate is None:
        return None
    from unitrace.model.evaluate import predicate

    return predicate(probe.predicate)


_SYSCALL_KINDS = (EventKind.SYSCALL, EventKind.SYSCALL_ENTER, EventKind.SYSCALL_RESUMED)
_CALL_KINDS = (EventKind.CALL, EventKind.RETURN)


@dataclass
class ProbeMatcher:
    """Does an event (as recorded, before routing) belong to this probe?"""

    probe: Probe
    pred: Callable[[Event], bool] | None = None

    def __post_init__(self) -> None:
        if self.pred is None:
            self.pred = compile_predicate(self.probe)
        self._names: set[str] = set()
        self._patterns: list[str] = []
        self._symbols: set[str] = set()
        self._tracepoints: set[str] = set()
        for point in self.probe.points:
            t = point.target
            if isinstance(t, SyscallTarget):
                if t.names:
                    self._names.update(t.names)
                else:
                    self._patterns.extend(t.patterns)
            elif isinstance(t, UserTarget):
                self._symbols.add(t.symbol)
            elif isinstance(t, TracepointTarget):
                self._tracepoints.add(f"{t.subsystem}:{t.event}")

    def matches(self, ev: Event) -> bool:
        if ev.kind in _SYSCALL_KINDS:
            hit = ev.name in self._names or any(fnmatchcase(ev.name, p) for p in self._patterns)
        elif ev.kind in _CALL_KINDS:
            hit = ev.name in self._symbols
        elif ev.kind is EventKind.TRACEPOINT:
            hit = ev.name in self._tracepoints
        else:
            return False
        if not hit:
            return False
        if self.pred is None or ev.kind is EventKind.SYSCALL_ENTER:
            return True
        try:
            return bool(self.pred(ev))
        except (TypeError, ValueError, KeyError, AttributeError):
            return False
