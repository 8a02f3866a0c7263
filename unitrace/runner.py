"""Plan, compile, start, route, stop: the one path every entry point (CLI, probe files, Python API, TUI)
uses to turn a ProbeProgram into events delivered to sinks.

Backends emit events that say *what* happened (a syscall named openat); the router decides which probes
they belong to, applies the predicates a backend could not apply itself, and hands each sink its batch.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import Protocol

from unitrace.backends import load_backend
from unitrace.backends.base import CompiledProgram, Session, TraceTarget
from unitrace.errors import PlanError, UnitraceError
from unitrace.events import Event, EventKind, SessionStats
from unitrace.model.probe import Probe, ProbeProgram, Site, SyscallTarget
from unitrace.plan.planner import Facts, Plan, facts_from_system, plan


class Sink(Protocol):
    def feed(self, batch: list[Event]) -> None: ...

    def close(self, stats: SessionStats) -> None: ...


@dataclass
class RunOptions:
    backend: str = "auto"
    # Passed to every backend's compile() and start(); keys are documented by each backend.
    backend_options: dict[str, object] = field(default_factory=dict)
    handle_signals: bool = True  # False when not on the main thread (Python API, TUI worker)


# Event kinds that are not probe hits but the life of the traced processes: every text sink shows them.
LIFECYCLE = frozenset({EventKind.SIGNAL, EventKind.EXIT, EventKind.EXEC, EventKind.FORK, EventKind.NOTICE,
                       EventKind.LOST})
_HIT_KINDS = {EventKind.SYSCALL, EventKind.SYSCALL_ENTER, EventKind.SYSCALL_RESUMED}


class ProbeRouter:
    """Assigns each event to the first probe it matches (event.probe) and drops what no probe wants.

    Syscall events carry both entry and return data, as strace's line does, so `syscall:X` and
    `syscall:X%return` both match them. An event that matches several probes is delivered once per probe.
    """

    def __init__(self, probes: Sequence[Probe], residuals: Mapping[int, object] | None = None) -> None:
        """`residuals`: per probe, the part of its predicate the backend left to user space (None: all of
        it was applied in the kernel). Without the mapping, every predicate is applied here."""
        from unitrace.model.evaluate import predicate as compile_predicate

        self.by_name: dict[str, list[tuple[int, Callable[[Event], bool] | None]]] = {}
        self.others: list[tuple[int, Probe, Callable[[Event], bool] | None]] = []
        self.preds: dict[int, Callable[[Event], bool]] = {}
        for index, probe in enumerate(probes):
            expr = probe.predicate if residuals is None else residuals.get(index)
            pred = compile_predicate(expr) if expr is not None else None  # type: ignore[arg-type]
            if pred is not None:
                self.preds[index] = pred
            for point in probe.points:
                if isinstance(point.target, SyscallTarget):
                    for name in point.target.names:
                        slot = self.by_name.setdefault(name, [])
                        if all(i != index for i, _ in slot):
                            slot.append((index, pred))
                else:
                    self.others.append((index, probe, pred))
        self.filtered = 0

    def route(self, batch: Iterable[Event]) -> list[Event]:
        out: list[Event] = []
        by_name = self.by_name
        for ev in batch:
            if ev.kind not in _HIT_KINDS:
                if ev.probe < 0 and ev.kind in LIFECYCLE:
                    out.append(ev)
                    continue
                if ev.probe >= 0:
                    # the backend already knows the probe (kprobes, uprobes, tracepoints)
                    pred = self.preds.get(ev.probe)
                    if pred is None or pred(ev):
                        out.append(ev)
                    else:
                        self.filtered += 1
                    continue
            if ev.probe >= 0:
                # The backend matched the event to its probe (bpf and ftrace emit one record per probe):
                # fanning it out again would deliver it twice to every other probe on the same syscall.
                pred = self.preds.get(ev.probe)
                if pred is None or ev.kind is EventKind.SYSCALL_ENTER or pred(ev):
                    out.append(ev)
                else:
                    self.filtered += 1
                continue
            targets = by_name.get(ev.name)
            if not targets:
                self.filtered += 1
                continue
            first = True
            for index, pred in targets:
                # An unfinished entry cannot be judged on ret/errno yet: pass it, the exit decides.
                if pred is not None and ev.kind is not EventKind.SYSCALL_ENTER and not pred(ev):
                    self.filtered += 1
                    continue
                if first:
                    ev.probe = index
                    out.append(ev)
                    first = False
                else:
                    out.append(replace(ev, probe=index))
        return out


def resolve_program(program: ProbeProgram) -> ProbeProgram:
    from unitrace.lang import resolve

    return resolve(program)


def make_plan(program: ProbeProgram, target: TraceTarget, requested: str,
              facts: Facts | None = None) -> Plan:
    return plan(program, target, facts if facts is not None else facts_from_system(), requested)


def compile_plan(the_plan: Plan, options: Mapping[str, object]) -> list[CompiledProgram]:
    compiled = []
    for name in the_plan.backends:
        backend = load_backend(name)
        compiled.append(backend.compile(the_plan.probes_for(name), options))
    return compiled


class _StopOnSignal:
    """SIGINT/SIGTERM/SIGHUP ask every session to stop; the first signal is remembered for the exit code."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, sessions: list[Session]) -> None:
        self.sessions = sessions
        self.received: int | None = None
        self.saved: dict[int, object] = {}

    def __enter__(self) -> _StopOnSignal:
        for sig in self.SIGNALS:
            self.saved[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        if self.received is None:
            self.received = signum
        for s in self.sessions:
            s.stop()

    def __exit__(self, *exc: object) -> None:
        for sig, old in self.saved.items():
            signal.signal(sig, old)  # type: ignore[arg-type]


def run(program: ProbeProgram, target: TraceTarget, sinks: Sequence[Sink], options: RunOptions,
        *, stop_event: threading.Event | None = None, duration: float | None = None,
        interval: float | None = None) -> int:
    """Trace until the target exits or a stop is requested; returns the exit status to mirror. `duration`:
    seconds of tracing, counted from when the session is attached (not from start-up: bcc's compile alone
    takes a second or more), after which `stop_event` (when given) is set and the session stopped.
    `interval`: every so many seconds the aggregation sinks print what they hold so far (in-kernel rows
    included), as bpftrace's `interval:s:N { print(@) }` does; the final print at the end stays."""
    program = resolve_program(program)
    the_plan = make_plan(program, target, options.backend)
    if len(the_plan.backends) > 1:
        detail = ", ".join(f"{a.probe.name} -> {a.backend}" for a in the_plan.assignments)
        raise PlanError(f"this version runs one backend per session, and these probes need several: {detail}",
                        hint="choose one with --backend, or split the probes into separate runs")
    backend_name = the_plan.backends[0]
    backend = load_backend(backend_name)
    probes = the_plan.probes_for(backend_name)
    compiled = backend.compile(probes, {**options.backend_options, "system_wide": target.system_wide})
    residuals = compiled.data.get("residuals")
    router = ProbeRouter(probes, residuals if isinstance(residuals, Mapping) else None)
    in_kernel = compiled.data.get("kernel_aggregates", ())
    for sink in sinks:
        if in_kernel and hasattr(sink, "mark_in_kernel"):
            sink.mark_in_kernel(in_kernel)

    feeding = threading.Lock()  # the interval printer reads the sinks from another thread

    def emit(batch: list[Event]) -> None:
        routed = router.route(batch)
        if routed:
            with feeding:
                for sink in sinks:
                    sink.feed(routed)

    status = 0
    stats = SessionStats()
    with ExitStack() as stack:
        session = backend.start(compiled, target, emit, options.backend_options)
        stack.enter_context(session)
        stopper = stack.enter_context(_StopOnSignal([session])) if options.handle_signals else None
        if stop_event is not None:
            watcher = threading.Thread(target=lambda: (stop_event.wait(), session.stop()), daemon=True)
            watcher.start()
        if duration is not None:
            expire = stop_event.set if stop_event is not None else session.stop
            timer = threading.Timer(duration, expire)
            timer.daemon = True
            timer.start()
            stack.callback(timer.cancel)
        ticker: threading.Thread | None = None
        done = threading.Event()
        if interval is not None:
            printers = [s for s in sinks if hasattr(s, "interim_text") and getattr(s, "out", None) is not None]
            if printers:
                stack.callback(done.set)
                ticker = threading.Thread(target=_print_every, daemon=True,
                                          args=(interval, session, printers, feeding, bool(in_kernel), done))
                ticker.start()
        status = session.run()
        if ticker is not None:  # no interim print once the kernel's rows are merged for the final one
            done.set()
            ticker.join()
        stats = session.stats
        rows = getattr(session, "aggregates", None)
        if rows:
            for sink in sinks:
                if hasattr(sink, "merge_kernel_rows"):
                    sink.merge_kernel_rows(rows)
        stats.filtered += router.filtered
        if stopper is not None and stopper.received is not None:
            status = 128 + stopper.received
    for sink in sinks:
        sink.close(stats)
    return status


def _print_every(interval: float, session: object, printers: Sequence[object], feeding: threading.Lock,
                 in_kernel: bool, done: threading.Event) -> None:
    import time

    start = time.monotonic()
    while not done.wait(interval):
        try:
            rows = session.read_aggregates() if in_kernel and hasattr(session, "read_aggregates") else None  # type: ignore[attr-defined]
        except Exception:  # a session tearing down: this print is skipped, the final one stays
            continue
        stamp = time.strftime("%H:%M:%S")
        with feeding:
            for sink in printers:
                text = sink.interim_text(rows)  # type: ignore[attr-defined]
                out = sink.out  # type: ignore[attr-defined]
                out.write(f"\n{stamp} (+{time.monotonic() - start:.1f} s)\n{text.rstrip()}\n")
                out.flush()


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, UnitraceError):
        return exc.render()
    return f"unitrace: internal error: {exc!r}"


__all__ = [
    "LIFECYCLE",
    "ProbeRouter",
    "RunOptions",
    "Sink",
    "Site",
    "compile_plan",
    "make_plan",
    "resolve_program",
    "run",
]
