"""An EventSource that traces for real: plans with the planner, runs `unitrace.runner.run` in a worker
thread, and hands every routed batch to the UI's pump. The UI never learns which backend ran.

Disabling or removing a probe drops its events in this sink (they are counted as filtered); the kernel
side keeps running until the session ends. Adding a probe starts one more session on the processes
traced so far (following their forks), planned on its own, so it can run on a different backend.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

from unitrace.tui.source import Deliver, ProbeInfo, SourceStatus

from unitrace.backends.base import TraceTarget
from unitrace.errors import UnitraceError
from unitrace.events import Event, EventKind, SessionStats
from unitrace.model.probe import Probe, ProbeProgram


@dataclass
class _Run:
    """One runner session and the probe ids its router's indices map to."""

    ids: list[int]
    backend: str
    thread: threading.Thread | None = None
    stats: SessionStats = field(default_factory=SessionStats)
    status: int | None = None
    error: str = ""


class _Forward:
    """The runner's sink for one session: renumber probes, drop disabled ones, pass the rest on."""

    def __init__(self, owner: LiveSource, run: _Run) -> None:
        self.owner = owner
        self.run = run

    def feed(self, batch: list[Event]) -> None:
        owner = self.owner
        ids = self.run.ids
        off = owner._off
        out: list[Event] = []
        for ev in batch:
            if ev.kind is EventKind.FORK or ev.kind is EventKind.EXEC:
                owner._pids.add(ev.pid)
                child = ev.fields.get("child")
                if isinstance(child, int):
                    owner._pids.add(child)
            elif ev.kind is EventKind.EXIT:
                owner._pids.discard(ev.pid)
            else:
                owner._pids.add(ev.pid)
            if ev.probe >= 0:
                pid = ids[ev.probe] if ev.probe < len(ids) else ev.probe
                if pid in off:
                    owner._filtered += 1
                    continue
                ev.probe = pid
            out.append(ev)
        if out:
            owner._deliver(out)

    def close(self, stats: SessionStats) -> None:
        self.run.stats = stats


class LiveSource:
    def __init__(self, program: ProbeProgram, target: TraceTarget, *, backend: str = "auto",
                 backend_options: dict[str, object] | None = None) -> None:
        from unitrace.runner import make_plan, resolve_program

        self.target = target
        self.backend = backend
        self.backend_options = dict(backend_options or {})
        self.title = " ".join(target.command) or ", ".join(f"pid {p}" for p in target.pids) or "system"
        program = resolve_program(program)
        plan = make_plan(program, target, backend)  # a probe no backend can run fails here, before the UI
        self._program = program
        self._lock = threading.Lock()
        self._infos: list[ProbeInfo] = [ProbeInfo(i, a.probe.name, a.backend, a.why)
                                        for i, a in enumerate(plan.assignments)]
        self._runs: list[_Run] = []
        self._first = _Run(list(range(len(self._infos))), ",".join(plan.backends))
        self._off: set[int] = set()
        self._removed: set[int] = set()
        self._pids: set[int] = set(target.pids)
        self._filtered = 0
        self._deliver: Deliver = lambda _batch: None
        self._stop = threading.Event()

    # ---- EventSource -------------------------------------------------------------------------------

    def start(self, deliver: Deliver) -> None:
        if self._runs:
            return
        self._deliver = deliver
        self._launch(self._first, self._program, self.target)

    def _launch(self, run: _Run, program: ProbeProgram, target: TraceTarget) -> None:
        from unitrace.runner import RunOptions
        from unitrace.runner import run as run_session

        options = RunOptions(self.backend, self.backend_options, handle_signals=False)

        def work() -> None:
            try:
                run.status = run_session(program, target, [_Forward(self, run)], options,
                                         stop_event=self._stop)
            except UnitraceError as err:
                run.error = err.message
            except Exception as exc:
                run.error = f"internal error: {exc!r}"

        run.thread = threading.Thread(target=work, name="unitrace-session", daemon=True)
        self._runs.append(run)
        run.thread.start()

    def stop(self) -> None:
        self._stop.set()
        for run in self._runs:
            if run.thread is not None and run.thread is not threading.current_thread():
                run.thread.join(timeout=10)

    def status(self) -> SourceStatus:
        backends: dict[str, None] = {}
        for info in self._infos:
            if info.id not in self._removed:
                backends.setdefault(info.backend)
        running = any(r.thread is not None and r.thread.is_alive() for r in self._runs)
        errors = [r.error for r in self._runs if r.error]
        first = self._runs[0] if self._runs else None
        return SourceStatus(
            tuple(backends), running,
            lost=sum(r.stats.lost for r in self._runs),
            dropped=sum(r.stats.dropped for r in self._runs),
            filtered=self._filtered + sum(r.stats.filtered for r in self._runs),
            exit_status=first.status if first is not None else None,
            error=errors[0] if errors else "",
        )

    def probes(self) -> list[ProbeInfo]:
        with self._lock:
            return [i for i in self._infos if i.id not in self._removed]

    def add_probe(self, text: str) -> ProbeInfo:
        from unitrace.tui.probe_text import parse_probes

        from unitrace.runner import make_plan, resolve_program

        probes: tuple[Probe, ...] = parse_probes(text)
        pids = tuple(sorted(p for p in self._pids if p > 0))
        if not pids and not self.target.system_wide:
            raise UnitraceError("no traced process is running to add a probe to")
        target = TraceTarget(pids=pids, system_wide=self.target.system_wide, follow_forks=True)
        program = resolve_program(ProbeProgram(probes, source="<probes panel>", text=text))
        plan = make_plan(program, target, self.backend)
        with self._lock:
            base = len(self._infos)
            infos = [ProbeInfo(base + i, a.probe.name if len(probes) > 1 else text.strip(), a.backend,
                               a.why + f"; a new session on pids {', '.join(map(str, pids))}")
                     for i, a in enumerate(plan.assignments)]
            self._infos.extend(infos)
        self._launch(_Run([i.id for i in infos], ",".join(plan.backends)), program, target)
        return infos[0]

    def _find(self, probe_id: int) -> int:
        for pos, info in enumerate(self._infos):
            if info.id == probe_id and probe_id not in self._removed:
                return pos
        raise UnitraceError(f"no probe #{probe_id}")

    def set_enabled(self, probe_id: int, enabled: bool) -> None:
        with self._lock:
            pos = self._find(probe_id)
            self._infos[pos] = replace(self._infos[pos], enabled=enabled)
            (self._off.discard if enabled else self._off.add)(probe_id)

    def remove_probe(self, probe_id: int) -> None:
        with self._lock:
            self._find(probe_id)
            self._off.add(probe_id)
            self._removed.add(probe_id)
