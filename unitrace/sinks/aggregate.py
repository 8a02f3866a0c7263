"""The aggregation engine any backend can feed: keyed count/sum/min/max/avg, log2 and linear histograms,
exact percentiles, and per-probe counts and durations.

Events arrive in batches already routed to their probe (event.probe). Each batch is grouped by probe once;
then every aggregation counts its (key, value) pairs with `collections.Counter` (a C loop) and updates its
cells once per *distinct* pair, so the per-event cost is a few C-level calls and no Python frame.

Backends that aggregate in the kernel (BPF maps, ftrace hist triggers) hand their rows over through
`merge_kernel_rows` / `merge_cells` / `merge_buckets`; `mark_in_kernel` keeps the same events from being
counted twice. The result prints in bpftrace's style (`@name[key]: value`, histograms as bars).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from operator import attrgetter
from typing import TextIO

from unitrace.events import Event, EventKind, SessionStats
from unitrace.model.probe import AggregateAction, ProbeProgram
from unitrace.sinks.hist import draw, linear_bucket, linear_label, log2_bucket, log2_label

HIT_KINDS = frozenset({EventKind.SYSCALL, EventKind.SYSCALL_RESUMED, EventKind.CALL, EventKind.RETURN,
                       EventKind.TRACEPOINT, EventKind.WATCH})
Key = tuple[object, ...]
_duration = attrgetter("duration_ns")


@dataclass
class Cell:
    """count/sum/min/max of one key; avg is total // count, as bpftrace prints it."""

    count: int = 0
    total: int = 0
    minimum: int | None = None
    maximum: int | None = None

    def add(self, v: int, n: int = 1) -> None:
        self.count += n
        self.total += v * n
        if self.minimum is None or v < self.minimum:
            self.minimum = v
        if self.maximum is None or v > self.maximum:
            self.maximum = v

    def merge(self, other: Cell) -> None:
        self.count += other.count
        self.total += other.total
        for attr, better in (("minimum", min), ("maximum", max)):
            theirs = getattr(other, attr)
            if theirs is not None:
                mine = getattr(self, attr)
                setattr(self, attr, theirs if mine is None else better(mine, theirs))


class Distribution:
    """Every value seen, exactly, as value -> occurrences.

    Memory grows with the number of *distinct* values (about 100 bytes each), not with the number of events:
    syscall return values and sizes repeat a lot; nanosecond durations mostly do not, so a million distinct
    durations cost about 100 MB. Percentiles are exact (nearest rank)."""

    __slots__ = ("_sorted", "counts", "maximum", "minimum", "n", "total")

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.n = 0
        self.total = 0
        self.minimum: int | None = None
        self.maximum: int | None = None
        self._sorted: list[int] | None = None

    def add(self, v: int, n: int = 1) -> None:
        self.counts[v] += n
        self.n += n
        self.total += v * n
        if self.minimum is None or v < self.minimum:
            self.minimum = v
        if self.maximum is None or v > self.maximum:
            self.maximum = v
        self._sorted = None

    def add_values(self, values: Iterable[object]) -> None:
        """Add many values at C speed; anything that is not an int (a missing value) is skipped."""
        for v, n in Counter(values).items():
            if type(v) is int:
                self.add(v, n)
            elif type(v) is bool:
                self.add(int(v), n)

    def __len__(self) -> int:
        return self.n

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    def percentile(self, p: float) -> int | None:
        """The nearest-rank percentile: the smallest value with at least p% of the values at or below it."""
        if not self.n:
            return None
        if not 0 <= p <= 100:
            raise ValueError(f"percentile {p} is not between 0 and 100")
        rank = max(1, math.ceil(Fraction(str(p)) * self.n / 100))  # exact: 99.9% of 5000 is 4995, not 4996
        if self._sorted is None:
            self._sorted = sorted(self.counts)
        seen = 0
        for v in self._sorted:
            seen += self.counts[v]
            if seen >= rank:
                return v
        return self._sorted[-1]


@dataclass
class PointStats:
    """What assertions ask of a probe whatever its actions: how often it fired and how long it took."""

    count: int = 0
    durations: Distribution = field(default_factory=Distribution)


def _hashable(v: object) -> object:
    if isinstance(v, list | tuple):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict | set):
        return repr(v)
    return v


@dataclass
class Aggregation:
    probe: int
    slot: int
    action: AggregateAction
    title: str
    key_fns: tuple[Callable[[Event], object], ...]
    value_fn: Callable[[Event], object] | None
    cells: dict[Key, Cell] = field(default_factory=dict)
    buckets: dict[Key, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    keep_values: bool = False  # exact distributions per key, for percentiles
    values: dict[Key, Distribution] = field(default_factory=dict)

    @property
    def is_hist(self) -> bool:
        return self.action.func in ("hist", "lhist")

    def bucket_of(self, v: int) -> int:
        if self.action.func == "hist":
            return log2_bucket(v)
        lo, hi, step = self.action.params
        return linear_bucket(v, lo, hi, step)

    def add(self, key: Key, value: int, n: int = 1, bucket: int | None = None) -> None:
        """Record `value` n times under `key` (a histogram row may arrive as a ready bucket)."""
        if self.keep_values and bucket is None:  # a ready bucket from the kernel carries no value
            dist = self.values.get(key)
            if dist is None:
                dist = self.values[key] = Distribution()
            dist.add(value, n)
        if self.is_hist:
            b = self.buckets[key]
            if bucket is None:
                bucket = self.bucket_of(value)
            b[bucket] = b.get(bucket, 0) + n
            return
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = Cell()
        cell.add(value, n)

    def pairs(self, events: list[Event]) -> Mapping[object, int]:
        """(key, value) -> occurrences in `events`, counted in C. Keys are bare for one key expression,
        tuples for several, () for none; values are absent for count()."""
        kfs, vf = self.key_fns, self.value_fn
        try:
            if vf is None:
                if not kfs:
                    return {(): len(events)}
                if len(kfs) == 1:
                    return Counter(map(kfs[0], events))
                return Counter(zip(*(map(f, events) for f in kfs), strict=True))
            if not kfs:
                return Counter(map(vf, events))
            if len(kfs) == 1:
                return Counter(zip(map(kfs[0], events), map(vf, events), strict=True))
            return Counter(zip(zip(*(map(f, events) for f in kfs), strict=True), map(vf, events), strict=True))
        except TypeError:  # a key that cannot be hashed (a list field): the slow, careful way
            return self._pairs_slowly(events)

    def _pairs_slowly(self, events: list[Event]) -> Mapping[object, int]:
        out: Counter[object] = Counter()
        kfs, vf = self.key_fns, self.value_fn
        for ev in events:
            keys = tuple(_hashable(f(ev)) for f in kfs)
            k: object = keys[0] if len(kfs) == 1 else keys
            out[(k if kfs else (), vf(ev)) if vf is not None else k] += 1
        if vf is not None and not kfs:
            return Counter({v: n for (_, v), n in out.items()})
        return out

    def feed(self, events: list[Event]) -> None:
        one_key = len(self.key_fns) == 1
        if self.value_fn is None:
            for k, n in self.pairs(events).items():
                self.add((k,) if one_key else k, 1, n)  # type: ignore[arg-type]
            return
        no_key = not self.key_fns
        if self.is_hist and not self.keep_values:
            self._feed_buckets(events, no_key, one_key)
            return
        for kv, n in self.pairs(events).items():
            if no_key:
                key: Key = ()
                v = kv
            else:
                k, v = kv  # type: ignore[misc]
                key = (k,) if one_key else k  # type: ignore[assignment]
            if type(v) is not int:
                if type(v) is not bool:
                    continue  # no value on this event (an argument it lacks, a duration not measured)
                v = int(v)
            self.add(key, v, n)  # type: ignore[arg-type]

    def _feed_buckets(self, events: list[Event], no_key: bool, one_key: bool) -> None:
        """Histograms need only the bucket of each distinct value: no cells, no distributions."""
        bucket_of = self.bucket_of
        buckets = self.buckets
        row: dict[int, int] | None = buckets[()] if no_key else None
        for kv, n in self.pairs(events).items():
            if no_key:
                v = kv
            else:
                k, v = kv  # type: ignore[misc]
                row = buckets[(k,) if one_key else k]  # type: ignore[index]
            if type(v) is not int:
                if type(v) is not bool:
                    continue
                v = int(v)
            b = bucket_of(v)  # type: ignore[arg-type]
            row[b] = row.get(b, 0) + n  # type: ignore[union-attr]

    def value(self, key: Key) -> int | None:
        """The scalar result for `key` as bpftrace prints it (avg truncated to an integer)."""
        cell = self.cells.get(key)
        if cell is None:
            return None
        func = self.action.func
        if func == "count":
            return cell.count
        if func == "sum":
            return cell.total
        if func == "min":
            return cell.minimum
        if func == "max":
            return cell.maximum
        if func == "avg":
            return int(cell.total / cell.count) if cell.count else 0  # toward zero, as bpftrace divides
        raise ValueError(f"{func} has no scalar value")

    def percentile(self, key: Key, p: float) -> int | None:
        dist = self.values.get(key)
        if dist is None:
            if not self.keep_values:
                raise ValueError(f"{self.title} does not keep its values (keep_values=False)")
            return None
        return dist.percentile(p)

    def label(self) -> Callable[[int], str]:
        if self.action.func == "hist":
            return log2_label
        lo, hi, step = self.action.params
        return lambda b: linear_label(b, lo, hi, step)

    def render(self) -> list[str]:
        lines: list[str] = []
        if self.is_hist:
            label = self.label()
            for key in sorted(self.buckets, key=_sort_key):
                if not any(self.buckets[key].values()):
                    continue
                lines.append(f"{self.title}{_keytext(key)}:")
                lines.extend(draw(self.buckets[key], label))
                lines.append("")
            return lines
        rows = [(self.value(key), key) for key in self.cells]
        rows.sort(key=lambda r: (r[0] if r[0] is not None else 0, _sort_key(r[1])))  # ascending, as bpftrace
        for value, key in rows:
            lines.append(f"{self.title}{_keytext(key)}: {value}")
        if rows:
            lines.append("")
        return lines


def _keytext(key: Key) -> str:
    return "[" + ", ".join(str(k) for k in key) + "]" if key else ""


def _sort_key(key: Key) -> tuple[tuple[int, object], ...]:
    # numbers in numeric order, then everything else by its text; never compares an int with a str
    return tuple((0, k) if type(k) is int else (1, str(k)) for k in key)


def _titles(program: ProbeProgram) -> dict[tuple[int, int], str]:
    """`@name` for named maps; a lone unnamed aggregation is `@`, as in bpftrace; several unnamed ones are
    told apart the way assertions name them: `@count(syscall:read)`, `@sum(arg2, syscall:write)`."""
    from unitrace.lang.format import format_expr

    unnamed = [(i, s) for i, p in enumerate(program.probes)
               for s, a in enumerate(x for x in p.actions if isinstance(x, AggregateAction)) if not a.name]
    out: dict[tuple[int, int], str] = {}
    for index, probe in enumerate(program.probes):
        aggs = [a for a in probe.actions if isinstance(a, AggregateAction)]
        for slot, action in enumerate(aggs):
            if action.name:
                out[(index, slot)] = f"@{action.name}"
            elif len(unnamed) == 1:
                out[(index, slot)] = "@"
            else:
                value = format_expr(action.value) + ", " if action.value is not None else ""
                out[(index, slot)] = f"@{action.func}({value}{probe.name})"
    return out


class AggregateSink:
    """A sink (feed/close) computing every AggregateAction of `program`.

    `keep_values` keeps exact distributions for percentiles; `point_stats` names probes whose count and
    durations are tracked whatever their actions (what assertions measure)."""

    def __init__(self, program: ProbeProgram, out: TextIO | None = None, *, keep_values: bool = False,
                 point_stats: Iterable[int] = ()) -> None:
        from unitrace.model.evaluate import compile_expr

        self.program = program
        self.out = out
        self.by_probe: dict[int, list[Aggregation]] = defaultdict(list)
        self.all: list[Aggregation] = []
        titles = _titles(program)
        names = [p.name for p in program.probes]
        for index, probe in enumerate(program.probes):
            aggs = [a for a in probe.actions if isinstance(a, AggregateAction)]
            for slot, action in enumerate(aggs):
                def compiled(e):  # type: ignore[no-untyped-def]
                    return compile_expr(e, text=program.text, probe_names=names)

                agg = Aggregation(index, slot, action, titles[(index, slot)],
                                  tuple(compiled(k) for k in action.keys),
                                  compiled(action.value) if action.value is not None else None,
                                  keep_values=keep_values)
                self.by_probe[index].append(agg)
                self.all.append(agg)
        self.points: dict[int, PointStats] = {i: PointStats() for i in point_stats}
        self.kernel_slots: set[tuple[int, int]] = set()
        self._active: dict[int, list[Aggregation]] = dict(self.by_probe)

    def mark_in_kernel(self, slots: Sequence[tuple[int, int]]) -> None:
        """These (probe, slot) aggregations are computed in the kernel: events must not count twice."""
        self.kernel_slots.update(slots)
        self._active = {p: [a for a in aggs if (a.probe, a.slot) not in self.kernel_slots]
                        for p, aggs in self.by_probe.items()}
        self._active = {p: aggs for p, aggs in self._active.items() if aggs}

    def _groups(self, batch: list[Event]) -> dict[int, list[Event]]:
        wanted = self._active.keys() | self.points.keys()
        hit = HIT_KINDS
        if len(wanted) == 1:
            (p,) = wanted
            return {p: [ev for ev in batch if ev.probe == p and ev.kind in hit]}
        groups: dict[int, list[Event]] = {}
        for ev in batch:
            p = ev.probe
            if p in wanted and ev.kind in hit:
                g = groups.get(p)
                if g is None:
                    groups[p] = [ev]
                else:
                    g.append(ev)
        return groups

    def feed(self, batch: list[Event]) -> None:
        if not self._active and not self.points:
            return
        for p, events in self._groups(batch).items():
            if not events:
                continue
            for agg in self._active.get(p, ()):
                agg.feed(events)
            stats = self.points.get(p)
            if stats is not None:
                stats.count += len(events)
                stats.durations.add_values(map(_duration, events))

    # ---- results computed elsewhere (in the kernel) ---------------------------------------------------

    def aggregation(self, probe: int, slot: int) -> Aggregation:
        for agg in self.by_probe.get(probe, ()):
            if agg.slot == slot:
                return agg
        raise KeyError(f"probe {probe} has no aggregation {slot}")

    def merge_cells(self, probe: int, slot: int, cells: Mapping[Key, Cell]) -> None:
        """Add count/sum/min/max rows computed elsewhere (a BPF hash map, an ftrace hist trigger)."""
        agg = self.aggregation(probe, slot)
        for key, cell in cells.items():
            mine = agg.cells.get(key)
            if mine is None:
                mine = agg.cells[key] = Cell()
            mine.merge(cell)

    def merge_buckets(self, probe: int, slot: int, buckets: Mapping[Key, Mapping[int, int]]) -> None:
        """Add histogram buckets computed elsewhere; bucket numbers as in unitrace.sinks.hist."""
        agg = self.aggregation(probe, slot)
        for key, counts in buckets.items():
            mine = agg.buckets[key]
            for b, n in counts.items():
                mine[b] = mine.get(b, 0) + n

    def merge_kernel_rows(self, rows: Sequence[object]) -> None:
        """Rows read from BPF maps (unitrace.backends.bpf.session.AggRow)."""
        for row in rows:
            spec = row.spec  # type: ignore[attr-defined]
            key = tuple(row.keys)  # type: ignore[attr-defined]
            try:
                agg = self.aggregation(spec.probe, spec.slot)
            except KeyError:
                continue
            if agg.is_hist:
                self.merge_buckets(spec.probe, spec.slot, {key: {row.bucket: row.count}})  # type: ignore[attr-defined]
            else:
                self.merge_cells(spec.probe, spec.slot, {key: Cell(
                    row.count, row.total, row.minimum, row.maximum)})  # type: ignore[attr-defined]

    def interim_text(self, kernel_rows: Sequence[object] | None = None) -> str:
        """What the aggregations hold now, with a snapshot of the in-kernel rows added to a copy (the kernel
        keeps counting; the final merge at the end must not count those rows twice): for `--interval`."""
        import copy

        twin = copy.copy(self)
        twin.by_probe = defaultdict(list)
        twin.all = []
        for agg in self.all:
            clone = copy.deepcopy(agg)
            twin.by_probe[agg.probe].append(clone)
            twin.all.append(clone)
        if kernel_rows:
            twin.merge_kernel_rows(kernel_rows)
        return twin.render()

    # ---- output -----------------------------------------------------------------------------------

    def render(self) -> str:
        lines: list[str] = []
        for agg in self.all:
            lines.extend(agg.render())
        return "\n".join(lines)

    def close(self, stats: SessionStats) -> None:
        if self.out is None:
            return
        text = self.render()
        if text.strip():
            self.out.write("\n" + text + ("\n" if not text.endswith("\n") else ""))
        self.out.flush()
