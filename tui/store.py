"""Every event the session delivered, and the filtered view of them the log shows.

Nothing is ever thrown away: filters, process selection and hidden probes only change which indices the
view holds. Re-filtering after a change is done in slices (`advance`) so a million retained events never
freeze the UI; events that arrive meanwhile are queued behind the scan and judged in order.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

from unitrace.events import Event

Predicate = Callable[[Event], bool]


@dataclass(frozen=True)
class Filter:
    """What the log shows: a compiled predicate (with its text), one process, hidden probes."""

    text: str = ""
    predicate: Predicate | None = None
    pid: int | None = None
    hidden_probes: frozenset[int] = field(default_factory=frozenset)

    @property
    def active(self) -> bool:
        return self.predicate is not None or self.pid is not None or bool(self.hidden_probes)

    def accepts(self, ev: Event) -> bool:
        if self.pid is not None and ev.pid != self.pid:
            return False
        if self.hidden_probes and ev.probe in self.hidden_probes:
            return False
        if self.predicate is not None:
            try:
                return bool(self.predicate(ev))
            except (TypeError, ValueError, KeyError, AttributeError):
                # A predicate that does not apply to this event (a field it lacks) does not match it.
                return False
        return True


class EventStore:
    SCAN_SLICE = 100_000  # events judged per frame while re-filtering

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.filter = Filter()
        self._indices = array("q")  # positions in `events` that pass the filter (when a filter is active)
        self._scanned = 0  # how far the filter has judged `events`

    # ---- the session side --------------------------------------------------------------------------

    def extend(self, batch: list[Event]) -> None:
        self.events.extend(batch)
        if self.filter.active and self._scanned == len(self.events) - len(batch):
            self._judge(len(self.events))
        elif not self.filter.active:
            self._scanned = len(self.events)

    # ---- the view side -----------------------------------------------------------------------------

    def set_filter(self, flt: Filter) -> None:
        self.filter = flt
        self._indices = array("q")
        self._scanned = 0 if flt.active else len(self.events)

    @property
    def scanning(self) -> bool:
        return self._scanned < len(self.events)

    @property
    def scan_progress(self) -> float:
        return self._scanned / len(self.events) if self.events else 1.0

    def advance(self, budget: int | None = None) -> bool:
        """Judge up to `budget` more events against the filter; True when the view changed."""
        if not self.scanning:
            return False
        end = min(len(self.events), self._scanned + (budget or self.SCAN_SLICE))
        before = len(self._indices)
        self._judge(end)
        return len(self._indices) != before

    def _judge(self, end: int) -> None:
        accepts = self.filter.accepts
        events = self.events
        append = self._indices.append
        for i in range(self._scanned, end):
            if accepts(events[i]):
                append(i)
        self._scanned = end

    def __len__(self) -> int:
        return len(self._indices) if self.filter.active else len(self.events)

    def index_of_row(self, row: int) -> int:
        """Position in `events` of the view's row."""
        return self._indices[row] if self.filter.active else row

    def row(self, row: int) -> Event:
        return self.events[self.index_of_row(row)]

    def row_of_index(self, index: int) -> int | None:
        """The view row showing events[index], or None when the filter hides it."""
        if not self.filter.active:
            return index if index < len(self.events) else None
        from bisect import bisect_left

        pos = bisect_left(self._indices, index)
        if pos < len(self._indices) and self._indices[pos] == index:
            return pos
        return None

    def nearest_row(self, index: int) -> int:
        """The view row at or just before events[index] (to keep the selection when the filter changes)."""
        if not self.filter.active:
            return min(index, len(self.events) - 1)
        from bisect import bisect_right

        return max(0, bisect_right(self._indices, index) - 1)

    def visible_events(self, limit: int | None = None) -> list[Event]:
        n = len(self) if limit is None else min(limit, len(self))
        return [self.row(r) for r in range(n)]
