"""Assertions built from the model dataclasses (no parser), then the same through the parser."""

from __future__ import annotations

from unitrace.assertions import AssertionCollector, render_report, value_of
from unitrace.errors import Span
from unitrace.events import Event, EventKind, SessionStats
from unitrace.lang import parse_program, resolve
from unitrace.model.expr import Binary, Call, Duration, Index, Int, Name, PointRef, Str
from unitrace.model.probe import Assertion, Probe, ProbePoint, ProbeProgram, SyscallTarget

S = Span(1, 1)


def write(comm: str, n: int, duration: int, path: str = "/tmp/log") -> Event:
    return Event(EventKind.SYSCALL, 0, 10, 10, "write", probe=0, comm=comm, args=(f"3<{path}>", '"x"', str(n)),
                 raw_args=(3, 0, n), ret=n, duration_ns=duration)


EVENTS = [write("cc1", 100, 1_000), write("cc1", 300, 2_000), write("ld", 50, 9_000_000, "/tmp/a.out"),
          write("cc1", 10, 3_000), Event(EventKind.SYSCALL_ENTER, 0, 10, 10, "write", probe=0, comm="cc1")]


def collector_for(*assertions: Assertion) -> AssertionCollector:
    point = ProbePoint("syscall", SyscallTarget(("write",), ("write",)))
    program = ProbeProgram((Probe((point,)),), assertions)
    c = AssertionCollector(program, {"syscall:write": 0})
    c.feed(EVENTS)
    c.close(SessionStats())
    return c


def test_queries_from_dataclasses() -> None:
    w = PointRef(S, "syscall:write")
    count = Assertion(Binary(S, "<=", Call(S, "count", (w,)), Int(S, 3)), "count(syscall:write) <= 3")
    total = Assertion(Binary(S, "<", Call(S, "sum", (Name(S, "ret"), w)), Int(S, 1000)), "sum(ret, syscall:write) < 1000")
    p50 = Assertion(Binary(S, "<", Call(S, "p50", (Call(S, "duration", (w,)),)), Duration(S, 1_000_000, "1ms")),
                    "p50(duration(syscall:write)) < 1ms")
    p99 = Assertion(Binary(S, "<", Call(S, "p99", (Call(S, "duration", (w,)),)), Duration(S, 1_000_000, "1ms")),
                    "p99(duration(syscall:write)) < 1ms")
    by = Assertion(Binary(S, "==", Call(S, "by", (Call(S, "count", (w,)), Index(S, Name(S, "comm"), Str(S, "cc*")))),
                          Int(S, 3)), 'count(syscall:write) by comm["cc*"] == 3')
    results = collector_for(count, total, p50, p99, by).results()
    got = [(r.passed, r.measured, r.limit) for r in results]
    assert got == [(False, 4, 3), (True, 460, 1000), (True, 2_000, 1_000_000),
                   (False, 9_000_000, 1_000_000), (True, 3, 3)]
    report = render_report(results)
    assert "FAIL  count(syscall:write) <= 3\n      measured 4, limit <= 3" in report
    assert "measured 9ms, limit < 1ms" in report
    assert "top files: /tmp/log (3), /tmp/a.out (1)" in report
    assert "top processes: cc1 (3), ld (1)" in report
    assert report.rstrip().endswith("5 assertions: 3 passed, 2 failed")
    # sums weigh contributors by the value summed
    assert "top processes: cc1 (410), ld (50)" in report


def test_through_the_parser_and_missing_values() -> None:
    text = ("syscall:write\nassert max(duration(syscall:write)) < 10ms\nassert avg(ret, syscall:write) > 100\n"
            "assert min(duration(syscall:read)) < 1ms\n")
    program = resolve(parse_program(text, "ci.ut"))
    from unitrace.assertions import implicit_probes

    prog, index = implicit_probes(program)
    c = AssertionCollector(prog, index)
    routed = [Event(**{s: getattr(e, s) for s in Event.__slots__ if s != "probe"}, probe=index["syscall:write"])
              for e in EVENTS]
    c.feed(routed)
    results = c.results()
    assert [r.passed for r in results] == [True, True, False]
    assert results[1].measured == 115  # (100 + 300 + 50 + 10) / 4
    assert results[2].measured is None and "no values measured for syscall:read" in results[2].note
    q, data = results[0].queries[0]
    assert value_of(q, data) == 9_000_000 and data.values.n == 4
