"""The hand-over between the tracer thread and the UI: a bounded queue the UI drains once per frame.

The tracer side (`put`) never blocks and never waits for the UI: when the queue already holds `capacity`
events the batch is dropped and counted, and the status bar shows the count. The UI side (`drain`) takes
everything queued in one swap, so the lock is held for a few instructions on either side.
"""

from __future__ import annotations

import threading
from collections import deque

from unitrace.events import Event

DEFAULT_CAPACITY = 2_000_000


class EventPump:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._batches: deque[list[Event]] = deque()
        self._pending = 0
        self.received = 0  # events offered by the tracer, kept or not
        self.dropped = 0  # events refused because the UI had fallen `capacity` events behind
        self.high_water = 0  # the most events ever waiting at once

    def put(self, batch: list[Event]) -> None:
        n = len(batch)
        if not n:
            return
        with self._lock:
            self.received += n
            if self._pending + n > self.capacity:
                self.dropped += n
                return
            self._batches.append(batch)
            self._pending += n
            if self._pending > self.high_water:
                self.high_water = self._pending

    def drain(self) -> list[list[Event]]:
        with self._lock:
            if not self._batches:
                return []
            batches = list(self._batches)
            self._batches.clear()
            self._pending = 0
        return batches

    @property
    def pending(self) -> int:
        return self._pending
