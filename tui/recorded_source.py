"""An EventSource that replays a recorded session: the tests' and `--demo`'s backend.

The recording holds every syscall the program made; the probes decide which of them are delivered,
exactly as the live router does, so adding `syscall:nanosleep` while replaying makes nanosleep calls
appear from then on, and disabling a probe stops its events (they are counted as filtered).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace

from unitrace.tui.probe_text import ProbeMatcher, parse_probes
from unitrace.tui.recorded import DEMO_PATH, iter_rounds, recorded_session
from unitrace.tui.source import Deliver, ProbeInfo, SourceStatus

from unitrace.errors import UnitraceError
from unitrace.events import Event, EventKind
from unitrace.model.probe import Probe, ProbePoint, Site, SyscallTarget, UserTarget

BACKEND = "recorded"
WHY = "replaying a recorded session of the demo program"

# What the recording was made with; the rest of its syscalls are there for probes added later.
DEMO_SYSCALLS = ("openat", "read", "write", "close", "execve", "clone", "exit_group", "wait4", "pselect6")


def demo_probes() -> tuple[Probe, ...]:
    return (
        Probe((ProbePoint("syscall", SyscallTarget((",".join(DEMO_SYSCALLS),), DEMO_SYSCALLS)),), id=0),
        Probe((ProbePoint("user", UserTarget(DEMO_PATH, "parse_config")),
               ProbePoint("user", UserTarget(DEMO_PATH, "parse_config"), Site.RETURN)), id=1),
    )


class RecordedSource:
    """`rate`: events per second of wall time, or None to deliver everything as fast as possible."""

    BATCH = 4096

    def __init__(self, events: Iterable[Event] | None = None, *, rate: float | None = None,
                 probes: Iterable[Probe] | None = None, title: str = "demo (recorded)") -> None:
        self.title = title
        self._events = events if events is not None else recorded_session()
        self.rate = rate
        self._lock = threading.Lock()
        self._probes: list[tuple[ProbeInfo, ProbeMatcher]] = []
        for probe in probes if probes is not None else demo_probes():
            self._append(probe, probe.name)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = False
        self._filtered = 0
        self.delivered = 0

    @classmethod
    def endless(cls, rate: float | None, seed: int = 7,
                probes: Iterable[Probe] | None = None) -> RecordedSource:
        """The demo program's worker loop, forever (for `--demo` and benchmarks)."""
        return cls(itertools.chain.from_iterable(iter_rounds(seed)), rate=rate, probes=probes)

    def _append(self, probe: Probe, text: str) -> ProbeInfo:
        info = ProbeInfo(len(self._probes), text, BACKEND, WHY)
        self._probes.append((info, ProbeMatcher(probe)))
        return info

    # ---- EventSource -------------------------------------------------------------------------------

    def start(self, deliver: Deliver) -> None:
        if self._thread is not None:
            return
        self._running = True
        self._thread = threading.Thread(target=self._replay, args=(deliver,), name="unitrace-replay",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def status(self) -> SourceStatus:
        return SourceStatus((BACKEND,), self._running, filtered=self._filtered,
                            exit_status=None if self._running else 0)

    def probes(self) -> list[ProbeInfo]:
        with self._lock:
            return [info for info, _ in self._probes]

    def add_probe(self, text: str) -> ProbeInfo:
        probes = parse_probes(text)
        if len(probes) != 1:
            raise UnitraceError(f"add one probe at a time (got {len(probes)})")
        with self._lock:
            return self._append(probes[0], text.strip())

    def set_enabled(self, probe_id: int, enabled: bool) -> None:
        with self._lock:
            for i, (info, matcher) in enumerate(self._probes):
                if info.id == probe_id:
                    self._probes[i] = (replace(info, enabled=enabled), matcher)
                    return
        raise UnitraceError(f"no probe #{probe_id}")

    def remove_probe(self, probe_id: int) -> None:
        with self._lock:
            before = len(self._probes)
            self._probes = [(i, m) for i, m in self._probes if i.id != probe_id]
            if len(self._probes) == before:
                raise UnitraceError(f"no probe #{probe_id}")

    # ---- the replay thread -------------------------------------------------------------------------

    def _route(self, recorded: list[Event]) -> list[Event]:
        with self._lock:
            active = [(info.id, m) for info, m in self._probes if info.enabled]
        out: list[Event] = []
        for ev in recorded:
            if ev.kind in (EventKind.SIGNAL, EventKind.EXIT, EventKind.EXEC, EventKind.FORK,
                           EventKind.NOTICE, EventKind.LOST):
                out.append(replace(ev))
                continue
            for probe_id, matcher in active:
                if matcher.matches(ev):
                    out.append(replace(ev, probe=probe_id))
                    break
            else:
                self._filtered += 1
        return out

    def _chunks(self) -> Iterator[list[Event]]:
        it = iter(self._events)
        while True:
            chunk = list(itertools.islice(it, self.BATCH))
            if not chunk:
                return
            yield chunk

    def _replay(self, deliver: Deliver) -> None:
        try:
            if self.rate is None:
                for chunk in self._chunks():
                    if self._stop.is_set():
                        return
                    self._send(deliver, chunk)
                return
            self._paced(deliver)
        finally:
            self._running = False

    def _send(self, deliver: Deliver, chunk: list[Event]) -> None:
        routed = self._route(chunk)
        self.delivered += len(routed)
        if routed:
            deliver(routed)

    def _paced(self, deliver: Deliver) -> None:
        # Deliver in small steps so the stream looks like a live one: every 5 ms, what is due by now.
        assert self.rate is not None
        it = iter(self._events)
        started = time.monotonic()
        sent = 0
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * self.rate) - sent
            if due > 0:
                chunk = list(itertools.islice(it, due))
                if not chunk:
                    return
                sent += len(chunk)
                self._send(deliver, chunk)
            self._stop.wait(0.005)
