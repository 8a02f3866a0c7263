"""Chrome trace-event JSON, as Perfetto's UI (ui.perfetto.dev) and chrome://tracing open it.

- system calls and function calls with a duration: complete slices ("ph": "X") on their thread;
- a call whose return was not seen, tracepoints, watchpoint hits: instant events on the thread;
- signals, execs and exits: instant events ("i"), process-scoped for exits and execs;
- process and thread names: metadata events ("M") from the comm each pid/tid was last seen with;
- aggregates (when given an AggregateSink): counter events ("C") with their final values;
- lost events: a global instant event, so the gap shows on the timeline.

Events are written as they arrive (the file is a JSON object whose traceEvents array is streamed), so a
long trace is never held in memory; the names and counters follow at the end. Times are microseconds
(the format's unit) since the first event, with the nanoseconds kept as fractions.
"""

from __future__ import annotations

import json
from typing import TextIO

from unitrace.events import Event, EventKind, SessionStats

_SLICE_KINDS = (EventKind.SYSCALL, EventKind.SYSCALL_RESUMED, EventKind.RETURN)


class ChromeTraceSink:
    def __init__(self, out: TextIO, aggregates: object | None = None) -> None:
        self.out = out
        self.aggregates = aggregates
        self.t0: int | None = None
        self.last_us = 0.0
        self.first = True
        self.process_names: dict[int, str] = {}
        self.thread_names: dict[tuple[int, int], str] = {}
        out.write('{"displayTimeUnit": "ns", "otherData": {"producer": "unitrace"}, "traceEvents": [\n')

    def _us(self, ts_ns: int) -> float:
        if self.t0 is None:
            self.t0 = ts_ns
        us = (ts_ns - self.t0) / 1000
        self.last_us = max(self.last_us, us)
        return us

    def _emit(self, record: dict[str, object]) -> None:
        self.out.write(("" if self.first else ",\n") + json.dumps(record, separators=(",", ":")))
        self.first = False

    def record(self, ev: Event) -> dict[str, object] | None:
        """The trace event for one of our events (None for those with no place on a timeline)."""
        kind = ev.kind
        base: dict[str, object] = {"pid": ev.pid, "tid": ev.tid}
        if kind in _SLICE_KINDS and ev.duration_ns is not None:
            # a syscall's timestamp is its entry; a function return's is the return
            start = ev.ts_ns if kind is EventKind.SYSCALL else ev.ts_ns - ev.duration_ns
            args: dict[str, object] = {"args": ", ".join(ev.args)} if ev.args else {}
            args["ret"] = ev.ret_text or ev.ret
            cat = "syscall" if kind is not EventKind.RETURN else "call"
            return {**base, "name": ev.name, "cat": cat, "ph": "X", "ts": self._us(start),
                    "dur": ev.duration_ns / 1000, "args": args}
        if kind in (EventKind.SYSCALL, EventKind.SYSCALL_RESUMED, EventKind.CALL, EventKind.TRACEPOINT,
                    EventKind.WATCH):
            args = {"args": ", ".join(ev.args)} if ev.args else {}
            args.update({k: v if isinstance(v, (int, float, str)) else str(v) for k, v in ev.fields.items()})
            return {**base, "name": ev.name, "cat": kind.name.lower(), "ph": "i", "s": "t",
                    "ts": self._us(ev.ts_ns), "args": args}
        if kind is EventKind.SIGNAL:
            return {**base, "name": ev.name or "signal", "cat": "signal", "ph": "i", "s": "t",
                    "ts": self._us(ev.ts_ns), "args": {"siginfo": str(ev.fields.get("siginfo", ""))}}
        if kind is EventKind.EXIT:
            how = (f"killed by {ev.fields['signal']}" if "signal" in ev.fields else f"exited with {ev.ret}")
            scope = "p" if ev.pid == ev.tid else "t"  # a thread's exit is not its process's
            return {**base, "name": how, "cat": "exit", "ph": "i", "s": scope, "ts": self._us(ev.ts_ns)}
        if kind is EventKind.EXEC:
            return {**base, "name": "exec", "cat": "exec", "ph": "i", "s": "p", "ts": self._us(ev.ts_ns),
                    "args": {"filename": str(ev.fields.get("filename", ""))}}
        if kind is EventKind.LOST:
            return {**base, "name": f"lost {ev.ret} events", "cat": "lost", "ph": "i", "s": "g",
                    "ts": self._us(ev.ts_ns)}
        return None

    def feed(self, batch: list[Event]) -> None:
        for ev in batch:
            if ev.comm:
                self.thread_names[(ev.pid, ev.tid)] = ev.comm
                if ev.pid == ev.tid or ev.pid not in self.process_names:
                    self.process_names[ev.pid] = ev.comm
            rec = self.record(ev)
            if rec is not None:
                self._emit(rec)

    def _counters(self) -> None:
        for agg in getattr(self.aggregates, "all", ()):
            values: dict[str, object] = {}
            for key, cell in agg.cells.items():
                label = ",".join(str(k) for k in key) or agg.action.func
                values[label] = {"count": cell.count, "sum": cell.total, "min": cell.minimum,
                                 "max": cell.maximum, "avg": cell.total / cell.count if cell.count else 0,
                                 }[agg.action.func]
            for key, buckets in agg.buckets.items():
                values[",".join(str(k) for k in key) or "count"] = sum(buckets.values())
            if values:
                self._emit({"name": agg.title, "ph": "C", "pid": 0, "ts": self.last_us, "args": values})

    def close(self, stats: SessionStats) -> None:
        for pid, name in sorted(self.process_names.items()):
            self._emit({"name": "process_name", "ph": "M", "pid": pid, "tid": pid, "args": {"name": name}})
        for (pid, tid), name in sorted(self.thread_names.items()):
            self._emit({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}})
        self._counters()
        self.out.write("\n]}\n")
        self.out.flush()
