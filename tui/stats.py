"""Running statistics over every event delivered (not only the filtered view): top probes, processes and
errors, log2 latency histograms per probe, and events per second of trace time."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from unitrace.events import Event, EventKind

_COUNTED = {EventKind.SYSCALL, EventKind.SYSCALL_RESUMED, EventKind.CALL, EventKind.RETURN,
            EventKind.TRACEPOINT, EventKind.WATCH}


def event_label(ev: Event) -> str:
    """The name a probe hit is counted under: `openat`, `parse_config()`, `SIGCHLD`."""
    if ev.kind in (EventKind.CALL, EventKind.RETURN):
        return f"{ev.name}()"
    return ev.name or ev.kind.name.lower()


def log2_bucket(ns: int) -> int:
    """Bucket k holds durations in [2^k, 2^(k+1)) ns; bucket 0 also holds 0."""
    return max(0, int(ns).bit_length() - 1)


@dataclass
class Histogram:
    buckets: Counter[int] = field(default_factory=Counter)
    count: int = 0
    total_ns: int = 0
    max_ns: int = 0

    def add(self, ns: int) -> None:
        self.buckets[log2_bucket(ns)] += 1
        self.count += 1
        self.total_ns += ns
        if ns > self.max_ns:
            self.max_ns = ns


@dataclass
class Stats:
    events: int = 0
    probes: Counter[str] = field(default_factory=Counter)
    processes: Counter[str] = field(default_factory=Counter)  # "comm[pid]"
    errors: Counter[str] = field(default_factory=Counter)  # "openat ENOENT"
    latency: dict[str, Histogram] = field(default_factory=dict)
    per_second: Counter[int] = field(default_factory=Counter)  # trace-time second -> events
    first_ts: int | None = None
    last_ts: int = 0

    def add(self, batch: list[Event]) -> None:
        from unitrace.tui.columns import errno_name

        self.events += len(batch)
        probes, processes, errors, per_second = self.probes, self.processes, self.errors, self.per_second
        for ev in batch:
            if self.first_ts is None:
                self.first_ts = ev.ts_ns
            self.last_ts = ev.ts_ns
            per_second[ev.ts_ns // 1_000_000_000] += 1
            if ev.kind not in _COUNTED:
                continue
            label = event_label(ev)
            probes[label] += 1
            processes[f"{ev.comm}[{ev.pid}]"] += 1
            if ev.errno:
                errors[f"{label} {errno_name(ev.errno)}"] += 1
            if ev.duration_ns is not None and ev.kind is not EventKind.CALL:
                hist = self.latency.get(label)
                if hist is None:
                    hist = self.latency[label] = Histogram()
                hist.add(ev.duration_ns)

    def rate_series(self, seconds: int = 60) -> list[int]:
        """Events per second for the last `seconds` seconds of trace time, oldest first."""
        if self.first_ts is None:
            return []
        last = self.last_ts // 1_000_000_000
        first = max(self.first_ts // 1_000_000_000, last - seconds + 1)
        return [self.per_second.get(s, 0) for s in range(first, last + 1)]
