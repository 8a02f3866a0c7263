"""The aggregation engine: bpftrace's buckets and text (compared with bpftrace itself), keyed maps, exact
percentiles, merging kernel results, batch-size independence."""

from __future__ import annotations

import io
import random
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unitrace.errors import Span
from unitrace.events import Event, EventKind, SessionStats
from unitrace.lang import parse_program, resolve
from unitrace.model.expr import Name
from unitrace.model.probe import AggregateAction, Probe, ProbePoint, ProbeProgram, SyscallTarget
from unitrace.sinks.aggregate import AggregateSink, Cell, Distribution
from unitrace.sinks.hist import draw, draw_blocks, linear_bucket, linear_label, log2_bucket, log2_label

S = Span(1, 1)


def program(text: str) -> ProbeProgram:
    return resolve(parse_program(text, "t.ut"))


def read(n: int, *, comm: str = "app", pid: int = 10, probe: int = 0, kind: EventKind = EventKind.SYSCALL,
         duration: int | None = 1000) -> Event:
    return Event(kind, 0, pid, pid, "read", probe=probe, comm=comm, raw_args=(3, 0x1000, n), ret=n,
                 duration_ns=duration)


def run(text: str, events: list[Event], **kw: object) -> tuple[AggregateSink, str]:
    out = io.StringIO()
    sink = AggregateSink(program(text), out, **kw)  # type: ignore[arg-type]
    sink.feed(events)
    sink.close(SessionStats())
    return sink, out.getvalue()


# ---- buckets and labels -----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "label"), [
    (-5, "(..., 0)"), (0, "[0]"), (1, "[1]"), (2, "[2, 4)"), (3, "[2, 4)"), (4, "[4, 8)"), (1023, "[512, 1K)"),
    (1024, "[1K, 2K)"), (3 << 20, "[2M, 4M)"), (1 << 30, "[1G, 2G)"), ((1 << 40) + 1, "[1T, 2T)"),
])
def test_log2_buckets(value: int, label: str) -> None:
    assert log2_label(log2_bucket(value)) == label


@pytest.mark.parametrize(("value", "label"), [
    (-1, "(..., 0)"), (0, "[0, 10)"), (9, "[0, 10)"), (10, "[10, 20)"), (99, "[90, 100)"), (100, "[100, ...)"),
    (10**9, "[100, ...)"),
])
def test_linear_buckets(value: int, label: str) -> None:
    assert linear_label(linear_bucket(value, 0, 100, 10), 0, 100, 10) == label


def test_bars_scale_to_the_largest_bucket_and_span_empty_buckets() -> None:
    lines = draw({log2_bucket(1): 2, log2_bucket(5): 1}, log2_label)
    assert lines == [
        "[1]                    2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|",
        "[2, 4)                 0 |                                                    |",
        "[4, 8)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |",
    ]
    blocks = draw_blocks({2: 8, 3: 3}, log2_label, width=4)
    assert blocks == ["[1]    8 │████│", "[2, 4) 3 │█▌  │"]
    assert draw({}, log2_label) == [] and draw({5: 0}, log2_label) == []


# ---- against bpftrace itself --------------------------------------------------------------------------


def _bpftrace(script: str) -> str:
    done = subprocess.run(["bpftrace", "-e", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _section(text: str, name: str) -> list[str]:
    """The rows under `@name:` (bpftrace ends that header with a space, we do not)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.rstrip() == f"@{name}:")
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        rows.append(line)
    return rows


@pytest.mark.requires("bpf")
def test_same_text_as_bpftrace() -> None:
    if shutil.which("bpftrace") is None:
        pytest.skip("bpftrace is not installed")
    rng = random.Random(7)
    values = [0, 1, 1, -3, 1500, 3 << 20, *(rng.randrange(0, 70_000) for _ in range(40))]
    linear = [-5, 0, 5, 35, 99, 100, 150, *(rng.randrange(-20, 130) for _ in range(30))]
    script = "BEGIN { " + "".join(f"@h = hist({v}); " for v in values)
    script += "".join(f"@l = lhist({v}, 0, 100, 10); " for v in linear)
    script += "".join(f'@c["k{v % 3}"] = count(); @s["k{v % 3}"] = sum({v}); @m["k{v % 3}"] = max({v}); '
                      f'@a["k{v % 3}"] = avg({v}); ' for v in linear[:12] if v >= 0)
    script += "exit(); }"
    theirs = _bpftrace(script)

    events = [Event(EventKind.SYSCALL, 0, 1, 1, "read", probe=0, raw_args=(0, 0, v)) for v in values]
    events += [Event(EventKind.SYSCALL, 0, 1, 1, "read", probe=1, raw_args=(0, 0, v)) for v in linear]
    events += [Event(EventKind.SYSCALL, 0, 1, 1, "read", probe=2, comm=f"k{v % 3}", raw_args=(0, 0, v))
               for v in linear[:12] if v >= 0]
    text = ("syscall:read { @h= hist(arg2) }\nsyscall:read { @l= lhist(arg2, 0, 100, 10) }\n"
            "syscall:read { @c[comm] = count(); @s[comm] = sum(arg2); @m[comm] = max(arg2); @a[comm] = avg(arg2) }")
    _, ours = run(text, events)
    for name in ("h", "l"):
        assert _section(ours, name) == _section(theirs, name), (ours, theirs)
    for name in ("c", "s", "m", "a"):
        def rows(t: str, n: str = name) -> list[str]:
            return re.findall(rf"^@{n}\[\w+\]: -?\d+$", t, re.M)
        assert sorted(rows(ours)) == sorted(rows(theirs)), (ours, theirs)  # ties: bpftrace's order is its hash's
        values = [int(r.rsplit(" ", 1)[1]) for r in rows(ours)]
        assert values == sorted(values)


# ---- keyed maps -----------------------------------------------------------------------------------


def test_scalar_maps_by_key() -> None:
    events = [read(n, comm=c, pid=p) for n, c, p in
              [(10, "a", 1), (30, "a", 1), (5, "b", 2), (7, "b", 3), (-2, "a", 1)]]
    text = ("syscall:read { @c[comm] = count(); @s[comm] = sum(ret); @lo[comm] = min(ret); @hi[comm] = max(ret); "
            "@avg[comm] = avg(ret); @pc[pid, comm] = count() }")
    sink, out = run(text, events)
    assert "@c[b]: 2\n@c[a]: 3\n" in out  # ascending by value, as bpftrace prints
    assert "@s[b]: 12\n@s[a]: 38\n" in out
    assert "@lo[a]: -2\n@lo[b]: 5\n" in out and "@hi[b]: 7\n@hi[a]: 30\n" in out
    assert "@avg[b]: 6\n@avg[a]: 12\n" in out  # 38 / 3 truncated
    assert "@pc[2, b]: 1\n@pc[3, b]: 1\n@pc[1, a]: 3\n" in out
    c = sink.all[0]
    assert c.cells[("a",)] == Cell(3, 3, 1, 1) and c.value(("b",)) == 2


def test_unnamed_aggregations_are_titled_like_assertion_queries() -> None:
    _, one = run("syscall:read { count() }", [read(1), read(2)])
    assert one.strip() == "@: 2"
    _, two = run("syscall:read { count(); sum(ret) by comm }", [read(1), read(2)])
    assert "@count(syscall:read): 2" in two and "@sum(ret, syscall:read)[app]: 3" in two


def test_only_hits_of_the_probe_count_and_missing_values_are_skipped() -> None:
    events = [read(1), read(2, probe=1), read(3, kind=EventKind.SYSCALL_ENTER),
              Event(EventKind.EXIT, 0, 10, 10, "", probe=0, ret=0), read(4, duration=None)]
    sink, out = run("syscall:read { @n= count(); @d= sum(duration); @h= hist(duration) }", events)
    assert "@n: 2" in out and "@d: 1000" in out
    assert sum(sink.all[2].buckets[()].values()) == 1


def test_unhashable_keys_fall_back_and_bools_count_as_numbers() -> None:
    events = [Event(EventKind.TRACEPOINT, 0, 1, 1, "x:y", probe=0, fields={"argv": ["ls", "-l"], "ok": True}),
              Event(EventKind.TRACEPOINT, 0, 1, 1, "x:y", probe=0, fields={"argv": ["ls", "-l"], "ok": False})]
    probe = Probe((ProbePoint("tracepoint", SyscallTarget(("x",), ("x",))),),
                  actions=(AggregateAction("sum", Name(S, "ok"), (Name(S, "argv"),), "ok"),))
    sink = AggregateSink(ProbeProgram((probe,)), io.StringIO())
    sink.feed(events)
    assert sink.render().strip() == "@ok[('ls', '-l')]: 1"


def test_percentiles_are_exact() -> None:
    rng = random.Random(3)
    values = [rng.choice([1, 2, 3, 500, 10_000, rng.randrange(1, 1 << 40)]) for _ in range(5000)]
    sink, _ = run("syscall:read { @h= hist(ret) }", [read(v) for v in values], keep_values=True)
    ordered = sorted(values)
    for p in (1, 50, 90, 99, 99.9, 100):
        # nearest rank: the first value with at least p% of all values at or below it
        at = next(i for i in range(len(ordered)) if (i + 1) * 100 >= Fraction(str(p)) * len(ordered))
        assert sink.all[0].percentile((), p) == ordered[at]
    assert sink.all[0].percentile(("nope",), 50) is None
    d = Distribution()
    assert d.percentile(50) is None and d.mean is None
    d.add_values([5, None, True, "x", 7])
    assert (d.n, d.total, d.minimum, d.maximum, d.percentile(50)) == (3, 13, 1, 7, 5)
    with pytest.raises(ValueError):
        d.percentile(101)


def test_point_stats_count_and_durations_whatever_the_actions() -> None:
    p = program("syscall:read\nsyscall:write { count() }")
    sink = AggregateSink(p, None, point_stats=[0, 1])
    sink.feed([read(1, duration=d) for d in (100, 200, 300, None)] + [read(1, probe=1)])
    assert sink.points[0].count == 4 and sink.points[0].durations.percentile(50) == 200
    assert sink.points[1].count == 1 and sink.all[0].value(()) == 1


# ---- kernel results ---------------------------------------------------------------------------------


@dataclass
class Spec:
    probe: int
    slot: int


@dataclass
class Row:
    spec: Spec
    keys: tuple[object, ...]
    bucket: int
    count: int
    total: int
    minimum: int
    maximum: int


def test_kernel_rows_merge_and_in_kernel_slots_are_not_counted_twice() -> None:
    sink = AggregateSink(program("syscall:read { @n[comm] = count(); @h= hist(ret); @s= sum(ret) }"), io.StringIO())
    sink.mark_in_kernel([(0, 0), (0, 1)])
    sink.feed([read(8), read(9)])
    sink.merge_kernel_rows([Row(Spec(0, 0), ("cc1",), 0, 5, 5, 1, 1), Row(Spec(0, 1), (), log2_bucket(8), 2, 0, 0, 0),
                            Row(Spec(0, 2), (), 0, 1, 100, 100, 100), Row(Spec(7, 0), (), 0, 1, 1, 1, 1)])
    sink.merge_cells(0, 0, {("cc1",): Cell(1, 1, 1, 1)})
    sink.merge_buckets(0, 1, {(): {log2_bucket(8): 1, log2_bucket(1): 3}})
    out = sink.render()
    assert "@n[cc1]: 6" in out and "app" not in out
    assert "@s: 117" in out  # 100 from the kernel + 8 + 9 seen here (this slot was not in the kernel)
    assert re.search(r"^\[8, 16\)\s+3 \|", out, re.M) and re.search(r"^\[1\]\s+3 \|", out, re.M)
    with pytest.raises(KeyError):
        sink.merge_cells(0, 9, {})


# ---- batches ----------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(-5, 5000), st.integers(0, 2)),
                max_size=80),
       st.lists(st.integers(1, 20), min_size=1, max_size=10))
def test_any_batching_gives_what_a_naive_count_gives(rows: list[tuple[str, int, int]], cuts: list[int]) -> None:
    text = ("syscall:read { @c[comm] = count(); @s[comm, pid] = sum(ret); @lo= min(ret); @h[comm]= hist(ret); "
            "@l= lhist(ret, 0, 1000, 100) }\nsyscall:read { @n= count() }")
    events = [read(n, comm=c, probe=p, pid=p) for c, n, p in rows]
    sink = AggregateSink(program(text), io.StringIO(), keep_values=True)
    i = 0
    for cut in cuts * 10:
        sink.feed(events[i:i + cut])
        i += cut
    sink.feed(events[i:])
    mine = [e for e in events if e.probe == 0]
    c, s, lo, h, lh = sink.all[:5]
    assert {k[0]: cell.count for k, cell in c.cells.items()} == Counter(e.comm for e in mine)
    sums: Counter[tuple[str, int]] = Counter()
    for e in mine:
        sums[(e.comm, e.pid)] += e.ret or 0
    assert {k: cell.total for k, cell in s.cells.items()} == {k: v for k, v in sums.items()}
    assert lo.value(()) == (min(e.ret for e in mine if e.ret is not None) if mine else None)
    for comm in "abc":
        expect = Counter(log2_bucket(e.ret) for e in mine if e.comm == comm and e.ret is not None)
        assert h.buckets.get((comm,), {}) == dict(expect)
    assert sum(lh.buckets.get((), {}).values()) == len(mine)
    assert sink.all[5].value(()) == (sum(1 for e in events if e.probe == 1) or None)
