"""JSON lines: every Event field in the documented schema, hand-built text equal to json.dumps's."""

from __future__ import annotations

import io
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from unitrace.events import Event, EventKind, Frame, SessionStats
from unitrace.sinks.jsonl import SCHEMA_VERSION, JsonLinesSink, _dumps, event_line, event_to_dict

FULL = Event(EventKind.SYSCALL, 1_700_000_000_123_456_789, 40, 41, "openat", probe=0, cpu=1, comm="cat",
             args=("AT_FDCWD", '"/etc/passwd"', "O_RDONLY"), raw_args=(4294967196, 140737488355328, 0), ret=-1,
             ret_text="-1 ENOENT (No such file or directory)", errno=2, duration_ns=2500,
             stack=[Frame(0x401136, "main", 0x16, "/usr/bin/cat", "cat.c", 12, True, "cfi"),
                    Frame(0x7F0000001000, "", 0, "", "", 0, False, "scan")],
             kstack=[Frame(0xFFFFFFFF81000000, "do_sys_openat2", 0x40, how="kernel")],
             fields={"filename": "/etc/passwd", "raw": b"\xff\x00ok", "argv": ["a", "b"]}, text="pre-formatted")


def test_every_field_of_an_event() -> None:
    out = io.StringIO()
    sink = JsonLinesSink(out, probe_names=["syscall:openat"])
    sink.feed([FULL, Event(EventKind.NOTICE, 5, 40, 40, text="Process 40 attached")])
    sink.close(SessionStats(events=2, lost=3, lost_per_cpu={1: 3}))
    first, notice, stats = (json.loads(line) for line in out.getvalue().splitlines())
    assert first == {
        "v": SCHEMA_VERSION, "kind": "syscall", "ts": 1_700_000_000_123_456_789, "pid": 40, "tid": 41,
        "comm": "cat", "name": "openat", "probe": 0, "probe_name": "syscall:openat", "cpu": 1,
        "args": ["AT_FDCWD", '"/etc/passwd"', "O_RDONLY"], "raw_args": [4294967196, 140737488355328, 0],
        "ret": -1, "ret_text": "-1 ENOENT (No such file or directory)", "errno": "ENOENT", "errno_nr": 2,
        "duration_ns": 2500,
        "stack": [{"addr": "0x401136", "reliable": True, "sym": "main", "off": 22, "module": "/usr/bin/cat",
                   "file": "cat.c", "line": 12, "how": "cfi"},
                  {"addr": "0x7f0000001000", "reliable": False, "how": "scan"}],
        "kstack": [{"addr": "0xffffffff81000000", "reliable": True, "sym": "do_sys_openat2", "off": 64,
                    "how": "kernel"}],
        "fields": {"filename": "/etc/passwd", "raw": "\\xff\x00ok", "argv": ["a", "b"]},
        "text": "pre-formatted"}
    assert notice == {"v": 1, "kind": "notice", "ts": 5, "pid": 40, "tid": 40, "comm": "", "name": "",
                      "text": "Process 40 attached"}
    assert stats == {"v": 1, "kind": "stats", "events": 2, "lost": 3, "dropped": 0, "filtered": 0,
                     "lost_per_cpu": {"1": 3}}


def test_unknown_errno_and_empty_stack() -> None:
    d = json.loads(event_line(Event(EventKind.SYSCALL, 0, 1, 1, "x", errno=4000, stack=[])))
    assert d["errno"] == "4000" and d["errno_nr"] == 4000 and d["stack"] == []


text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(list(EventKind)), st.integers(0, 2**63), st.integers(-1, 5), text, text,
       st.lists(text, max_size=4), st.lists(st.integers(0, 2**64 - 1), max_size=6),
       st.one_of(st.none(), st.integers(-4095, 2**63)), st.integers(0, 140), text,
       st.dictionaries(text, st.one_of(st.integers(), text, st.binary(max_size=5)), max_size=3))
def test_hand_built_line_equals_json_dumps(kind: EventKind, ts: int, probe: int, comm: str, name: str,
                                           args: list[str], raw: list[int], ret: int | None, errno: int,
                                           txt: str, fields: dict[str, object]) -> None:
    ev = Event(kind, ts, 7, 8, name, probe=probe, comm=comm, args=tuple(args), raw_args=tuple(raw), ret=ret,
               errno=errno, fields=fields, text=txt, duration_ns=ret)
    line = event_line(ev, ["p0", "p1"])
    assert line == _dumps(event_to_dict(ev, ["p0", "p1"])) + "\n"
    assert json.loads(line)["name"] == name
