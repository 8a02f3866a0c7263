"""The `-c`/`-C` summary table, laid out exactly as strace 6.1 lays it out.

    % time     seconds  usecs/call     calls    errors syscall
    ------ ----------- ----------- --------- --------- ----------------
     76.95    0.000187           5        34        17 openat
    ------ ----------- ----------- --------- --------- ----------------
    100.00    0.000243           4        53        17 total

Measured against strace 6.1: the syscall column is at least 16 wide and one wider than the longest name;
numeric columns widen when a number does not fit; usecs/call is truncated, not rounded; an error count of
zero prints as blanks; rows with equal keys keep syscall-number order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TextIO

from unitrace.events import Event, EventKind, SessionStats

SORT_KEYS = ("time", "calls", "errors", "name", "nothing")
# strace's own spellings of the -S keys
SORT_ALIASES = {
    "time": "time", "time_total": "time", "total_time": "time",
    "calls": "calls", "count": "calls",
    "errors": "errors", "error": "errors",
    "name": "name", "syscall": "name", "syscall_name": "name",
    "nothing": "nothing", "none": "nothing",
}


@dataclass(slots=True)
class CallStats:
    calls: int = 0
    errors: int = 0
    time_ns: int = 0


def normalise_sort_key(key: str) -> str | None:
    return SORT_ALIASES.get(key)


class SummarySink:
    """Counts completed syscalls per name; `render()` gives the table.

    Time per call is the event's duration (entry stop to exit stop). strace 6.1 without -w charges the
    tracee's system CPU time instead, which it samples in clock ticks; see docs/strace.md.
    """

    def __init__(self, out: TextIO, *, sort_by: str = "time",
                 syscall_number: Callable[[str], int] | None = None) -> None:
        self.out = out
        self.sort_by = sort_by
        self.syscall_number = syscall_number or (lambda _name: 0)
        self.stats: dict[str, CallStats] = {}
        # strace counts a call when its exit is seen: remember entries of unfinished ones
        self._pending: dict[int, str] = {}

    def feed(self, batch: list[Event]) -> None:
        stats = self.stats
        for ev in batch:
            kind = ev.kind
            if kind is EventKind.SYSCALL or kind is EventKind.SYSCALL_RESUMED:
                if ev.ret is None:
                    continue  # exit_group, a successful execve's twin: no return seen, not counted
                st = stats.get(ev.name)
                if st is None:
                    st = stats[ev.name] = CallStats()
                st.calls += 1
                if ev.errno:
                    st.errors += 1
                if ev.duration_ns:
                    st.time_ns += ev.duration_ns

    def render(self) -> str:
        return render_table(self.stats, self.sort_by, self.syscall_number)

    def close(self, stats: SessionStats) -> None:
        self.out.write(self.render())
        self.out.flush()


def _order(stats: Mapping[str, CallStats], sort_by: str, nr: Callable[[str], int]) -> list[str]:
    names = sorted(stats, key=lambda n: (nr(n), n))  # ties keep syscall-number order, as strace's do
    if sort_by == "time":
        names.sort(key=lambda n: -stats[n].time_ns)
    elif sort_by == "calls":
        names.sort(key=lambda n: -stats[n].calls)
    elif sort_by == "errors":
        names.sort(key=lambda n: -stats[n].errors)
    elif sort_by == "name":
        names.sort()
    return names


def _secs(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{(ns // 1000) % 1_000_000:06d}"


def render_table(stats: Mapping[str, CallStats], sort_by: str = "time",
                 nr: Callable[[str], int] = lambda _n: 0) -> str:
    """The whole table, or "" when nothing was counted (strace prints nothing then either)."""
    if not stats:
        return ""
    names = _order(stats, sort_by, nr)
    total_ns = sum(s.time_ns for s in stats.values())
    total_calls = sum(s.calls for s in stats.values())
    total_errors = sum(s.errors for s in stats.values())

    rows: list[tuple[str, str, str, str, str, str]] = []
    for name in names:
        s = stats[name]
        pct = 100.0 * s.time_ns / total_ns if total_ns else 0.0
        per_call = (s.time_ns // 1000) // s.calls if s.calls else 0
        rows.append((f"{pct:.2f}", _secs(s.time_ns), str(per_call), str(s.calls),
                     str(s.errors) if s.errors else "", name))
    total_per_call = (total_ns // 1000) // total_calls if total_calls else 0
    total = ("100.00", _secs(total_ns), str(total_per_call), str(total_calls),
             str(total_errors) if total_errors else "", "total")

    header = ("% time", "seconds", "usecs/call", "calls", "errors", "syscall")
    widths = [6, 11, 11, 9, 9, max(16, max(len(n) for n in names) + 1)]
    for row in (*rows, total):
        for i in range(5):
            widths[i] = max(widths[i], len(row[i]))

    def line(cells: tuple[str, ...]) -> str:
        nums = " ".join(cell.rjust(widths[i]) for i, cell in enumerate(cells[:5]))
        return f"{nums} {cells[5]}\n"

    dashes = " ".join("-" * w for w in widths) + "\n"
    parts = [line(header), dashes, *(line(r) for r in rows), dashes, line(total)]
    return "".join(parts)
