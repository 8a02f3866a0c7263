"""Chrome trace-event export: the structure Perfetto and chrome://tracing read, from a real trace."""

from __future__ import annotations

import io
import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.run_support import build_demo, unitrace
from unitrace.events import Event, EventKind, SessionStats
from unitrace.sinks.chrome import ChromeTraceSink

PHASES = {"X", "i", "M", "C"}


@pytest.fixture(scope="module")
def demo(build_c: Callable[..., Path]) -> Path:
    return build_demo(build_c)


def check_structure(doc: dict) -> list[dict]:  # type: ignore[type-arg]
    """What the trace-event format requires of each phase we write."""
    assert doc["displayTimeUnit"] == "ns"
    events = doc["traceEvents"]
    for e in events:
        assert e["ph"] in PHASES, e
        assert isinstance(e["name"], str) and e["name"], e
        assert isinstance(e["pid"], int), e
        if e["ph"] in ("X", "i", "C"):
            assert isinstance(e["ts"], (int, float)), e
        if e["ph"] == "X":
            assert isinstance(e["dur"], (int, float)) and e["dur"] >= 0 and isinstance(e["tid"], int), e
        if e["ph"] == "i":
            assert e["s"] in ("t", "p", "g"), e
        if e["ph"] == "M":
            assert e["name"] in ("process_name", "thread_name") and e["args"]["name"], e
        if e["ph"] == "C":
            assert all(isinstance(v, (int, float)) for v in e["args"].values()), e
    return events


def test_return_slices_start_at_their_entry() -> None:
    out = io.StringIO()
    sink = ChromeTraceSink(out)
    sink.feed([Event(EventKind.SYSCALL, 1_000_000, 5, 6, "read", comm="app", args=("3", '""', "1"), ret=0,
                     duration_ns=2_000),
               Event(EventKind.RETURN, 1_010_000, 5, 6, "parse", comm="app", ret=7, duration_ns=4_000),
               Event(EventKind.EXIT, 1_020_000, 5, 6, ret=0)])
    sink.close(SessionStats())
    events = check_structure(json.loads(out.getvalue()))
    read, parse, exit_ = events[:3]
    assert (read["ts"], read["dur"], read["args"]["ret"]) == (0.0, 2.0, 0)
    assert (parse["ts"], parse["dur"], parse["cat"]) == (6.0, 4.0, "call")  # 10 us - 4 us
    assert exit_["s"] == "t"  # tid 6 is a thread of 5: its exit is not the process's


def test_trace_of_the_demo(demo: Path, tmp_path: Path) -> None:
    proc = unitrace("trace", "syscall:openat,write,clock_nanosleep { count() by comm }", "--backend", "ptrace",
                    "--chrome", "t.json", "--", str(demo), tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    events = check_structure(json.loads((tmp_path / "t.json").read_text()))
    slices = [e for e in events if e["ph"] == "X"]
    names = {e["name"] for e in slices}
    assert names == {"openat", "write", "clock_nanosleep"}
    sleep = next(e for e in slices if e["name"] == "clock_nanosleep")
    assert sleep["dur"] >= 20_000  # the demo sleeps 20 ms: the slice covers it
    # the demo's two threads each write one line to the log: one slice on each thread
    main_pid = sleep["pid"]
    log_writes = [e for e in slices if e["name"] == "write" and e["args"]["args"].startswith("3, \"thread")]
    assert len({e["tid"] for e in log_writes}) == 2 and all(e["tid"] != main_pid for e in log_writes)
    # no two slices overlap on one thread (a thread makes one system call at a time)
    by_tid: dict[int, list[tuple[float, float]]] = {}
    for e in slices:
        by_tid.setdefault(e["tid"], []).append((e["ts"], e["ts"] + e["dur"]))
    for spans in by_tid.values():
        spans.sort()
        assert all(a[1] <= b[0] + 1 for a, b in itertools.pairwise(spans)), spans
    names_of = {(e["name"], e["tid"]): e["args"]["name"] for e in events if e["ph"] == "M"}
    assert names_of[("process_name", main_pid)].startswith("demo")
    assert sum(1 for (kind, _tid) in names_of if kind == "thread_name") >= 4  # main, 2 threads, the child
    instants = {(e["cat"], e["name"]) for e in events if e["ph"] == "i"}
    assert ("signal", "SIGCHLD") in instants and ("exit", "exited with 0") in instants
    [counter] = [e for e in events if e["ph"] == "C"]
    # the counter holds the same numbers the text output printed
    printed = dict(re.findall(r"^@\[(.+)\]: (\d+)$", proc.stdout, re.M))
    assert {k: str(v) for k, v in counter["args"].items()} == printed
