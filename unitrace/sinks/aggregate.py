"""The aggregation engine any backend can feed: keyed count/sum/min/max/avg, log2 and linear histograms.

Backends that aggregate in the kernel (bpf maps) hand their rows to `merge_kernel_rows`; everything else
arrives as events routed to probes (event.probe). Printed at the end in bpftrace's style.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from unitrace.events import Event, EventKind, SessionStats
from unitrace.model.probe import AggregateAction, ProbeProgram
from unitrace.sinks.hist import draw, linear_bucket, linear_label, log2_bucket, log2_label

HIT_KINDS = frozenset({EventKind.SYSCALL, EventKind.SYSCALL_RESUMED, EventKind.CALL, EventKind.RETURN,
                       EventKind.TRACEPOINT, EventKind.WATCH})


@dataclass
class Cell:
    count: int = 0
    total: int = 0
    minimum: int | None = None
    maximum: int | None = None

    def add(self, v: int, n: int = 1) -> None:
        self.count += n
        self.total += v
        if self.minimum is None or v < self.minimum:
            self.minimum = v
        if self.maximum is None or v > self.maximum:
            self.maximum = v


@dataclass
class Aggregation:
    probe: int
    slot: int
    action: AggregateAction
    title: str
    key_fns: tuple[Callable[[Event], object], ...]
    value_fn: Callable[[Event], object] | None
    cells: dict[tuple[object, ...], Cell] = field(default_factory=dict)
    buckets: dict[tuple[object, ...], dict[int, int]] = field(default_factory=lambda: defaultdict(dict))

    def add(self, key: tuple[object, ...], value: int, n: int = 1, bucket: int | None = None) -> None:
        func = self.action.func
        if func in ("hist", "lhist"):
            if bucket is None:
                if func == "hist":
                    bucket = log2_bucket(value)
                else:
                    lo, hi, step = self.action.params
                    bucket = linear_bucket(value, lo, hi, step)
            b = self.buckets[key]
            b[bucket] = b.get(bucket, 0) + n
            return
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = Cell()
        cell.add(value, n)

    def render(self) -> list[str]:
        func = self.action.func
        lines: list[str] = []

        def keytext(key: tuple[object, ...]) -> str:
            return "[" + ", ".join(str(k) for k in key) + "]" if key else ""

        if func in ("hist", "lhist"):
            if func == "hist":
                def label(b: int) -> str:
                    return log2_label(b)
            else:
                lo, hi, step = self.action.params

                def label(b: int) -> str:
                    return linear_label(b, lo, hi, step)
            for key in sorted(self.buckets, key=str):
                lines.append(f"{self.title}{keytext(key)}:")
                lines.extend(draw(self.buckets[key], label))
                lines.append("")
            return lines
        rows = []
        for key, cell in self.cells.items():
            value = {"count": cell.count, "sum": cell.total, "min": cell.minimum, "max": cell.maximum,
                     "avg": cell.total // cell.count if cell.count else 0}[func]
            rows.append((value, key))
        rows.sort(key=lambda r: (r[0] if isinstance(r[0], int) else 0))  # ascending, as bpftrace prints
        for value, key in rows:
            lines.append(f"{self.title}{keytext(key)}: {value}")
        if rows:
            lines.append("")
        return lines


def _as_int(v: object) -> int | None:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    return None


class AggregateSink:
    def __init__(self, program: ProbeProgram, out: TextIO) -> None:
        from unitrace.model.evaluate import compile_expr

        self.program = program
        self.out = out
        self.by_probe: dict[int, list[Aggregation]] = defaultdict(list)
        self.all: list[Aggregation] = []
        for index, probe in enumerate(program.probes):
            slot = 0
            for action in probe.actions:
                if not isinstance(action, AggregateAction):
                    continue
                title = f"@{action.name}" if action.name else f"@{action.func}({probe.name})" if len(
                    program.probes) > 1 else "@"
                agg = Aggregation(index, slot, action, title, tuple(compile_expr(k) for k in action.keys),
                                  compile_expr(action.value) if action.value is not None else None)
                self.by_probe[index].append(agg)
                self.all.append(agg)
                slot += 1
        self.kernel_slots: set[tuple[int, int]] = set()

    def mark_in_kernel(self, slots: Sequence[tuple[int, int]]) -> None:
        """These (probe, slot) aggregations are computed in the kernel: events must not count twice."""
        self.kernel_slots.update(slots)

    def feed(self, batch: list[Event]) -> None:
        by_probe = self.by_probe
        kernel = self.kernel_slots
        for ev in batch:
            aggs = by_probe.get(ev.probe)
            if not aggs or ev.kind not in HIT_KINDS:
                continue
            for agg in aggs:
                if (agg.probe, agg.slot) in kernel:
                    continue
                key = tuple(f(ev) for f in agg.key_fns)
                if agg.value_fn is None:
                    agg.add(key, 1)
                    continue
                v = _as_int(agg.value_fn(ev))
                if v is not None:
                    agg.add(key, v)

    def merge_kernel_rows(self, rows: Sequence[object]) -> None:
        """Rows read from BPF maps (unitrace.backends.bpf.session.AggRow)."""
        for row in rows:
            spec = row.spec  # type: ignore[attr-defined]
            for agg in self.by_probe.get(spec.probe, []):
                if agg.slot != spec.slot:
                    continue
                if agg.action.func in ("hist", "lhist"):
                    agg.add(tuple(row.keys), 0, row.count, bucket=row.bucket)  # type: ignore[attr-defined]
                else:
                    key = tuple(row.keys)  # type: ignore[attr-defined]
                    cell = agg.cells.setdefault(key, Cell())
                    cell.count += row.count  # type: ignore[attr-defined]
                    cell.total += row.total  # type: ignore[attr-defined]
                    for attr, better in (("minimum", min), ("maximum", max)):
                        v = getattr(row, attr)
                        cur = getattr(cell, attr)
                        setattr(cell, attr, v if cur is None else better(cur, v))

    def render(self) -> str:
        lines: list[str] = []
        for agg in self.all:
            lines.extend(agg.render())
        return "\n".join(lines)

    def close(self, stats: SessionStats) -> None:
        text = self.render()
        if text.strip():
            self.out.write("\n" + text + ("\n" if not text.endswith("\n") else ""))
        self.out.flush()
