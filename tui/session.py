"""Everything the UI knows about the running session, without any Textual in it: the source, the pump
between its thread and the UI, the retained events and their view, statistics, the process tree, pause
state and the rate meter. The app calls `frame()` at a fixed rate; tests and benchmarks can call it too."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from unitrace.tui.processes import ProcessTable
from unitrace.tui.pump import DEFAULT_CAPACITY, EventPump
from unitrace.tui.source import EventSource
from unitrace.tui.stats import Stats
from unitrace.tui.statusbar import StatusInfo
from unitrace.tui.store import EventStore, Filter

from unitrace.events import Event, EventKind


@dataclass(frozen=True, slots=True)
class FrameResult:
    new_events: int
    view_changed: bool
    tree_changed: bool


class RateMeter:
    """Events per second over the last `window` seconds of wall time (clock injectable for tests)."""

    def __init__(self, clock: Callable[[], float], window: float = 1.0) -> None:
        self.clock = clock
        self.window = window
        self.samples: deque[tuple[float, int]] = deque()

    def sample(self, total: int) -> float:
        now = self.clock()
        self.samples.append((now, total))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window:
            self.samples.popleft()
        t0, n0 = self.samples[0]
        return (total - n0) / (now - t0) if now > t0 else 0.0


class TuiSession:
    def __init__(self, source: EventSource, *, capacity: int = DEFAULT_CAPACITY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.pump = EventPump(capacity)
        self.store = EventStore()
        self.stats = Stats()
        self.processes = ProcessTable()
        self.rate = RateMeter(clock)
        self.paused = False
        self.shown = 0  # rows of the view on screen (frozen while paused)
        self.last_rate = 0.0
        self.lost_events = 0  # from LOST events in the stream
        self.started = False

    def start(self) -> None:
        if not self.started:
            self.started = True
            self.source.start(self.pump.put)

    def stop(self) -> None:
        self.source.stop()

    def frame(self) -> FrameResult:
        """Take what the tracer handed over since the last frame; advance a running re-filter."""
        new = 0
        tree_version = self.processes.version
        for batch in self.pump.drain():
            self.store.extend(batch)
            self.stats.add(batch)
            self.processes.add(batch)
            for ev in batch:
                if ev.kind is EventKind.LOST:
                    self.lost_events += ev.ret or 0
            new += len(batch)
        view_changed = self.store.advance() or new > 0
        if not self.paused:
            self.shown = len(self.store)
        self.last_rate = self.rate.sample(self.pump.received)
        return FrameResult(new, view_changed, self.processes.version != tree_version)

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        if not paused:
            self.shown = len(self.store)

    def set_filter(self, flt: Filter) -> None:
        self.store.set_filter(flt)
        # The first slice right away, so a small session shows its result in the same frame.
        self.store.advance()
        self.shown = len(self.store)

    def status(self) -> StatusInfo:
        src = self.source.status()
        store = self.store
        return StatusInfo(
            backends=src.backends,
            running=src.running,
            events=len(store.events),
            rate=self.last_rate,
            lost=src.lost + self.lost_events,
            dropped=src.dropped + self.pump.dropped,
            filtered=src.filtered,
            shown=self.shown,
            view=len(store),
            paused=self.paused,
            follow=False,
            scanning=store.scan_progress if store.scanning else None,
            error=src.error,
        )

    def probe_names(self) -> dict[int, str]:
        return {p.id: p.text for p in self.source.probes()}

    def visible(self) -> list[Event]:
        """The events of the view as on screen (what Save writes)."""
        return self.store.visible_events(self.shown)
