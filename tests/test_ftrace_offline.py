"""ftrace backend pieces that need no privileges: ring-buffer pages, formats, filters, dynamic-event lines.

The replay fixture in tests/fixtures/ftrace/exec_openat holds raw pages read from this machine's
`per_cpu/cpuN/trace_pipe_raw` while `cat /etc/hostname` ran with sched_process_exec and the openat syscall
events enabled, with the format files the kernel gave for them.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from unitrace.backends.ftrace.compile import DynamicEvent, event_name
from unitrace.backends.ftrace.filters import errno_to_ret, split_predicate
from unitrace.backends.ftrace.formats import RecordDecoder, parse_format
from unitrace.backends.ftrace.ringbuf import MISSED_EVENTS, PageLayout, parse_page
from unitrace.backends.ftrace.tracefs import parse_error_log
from unitrace.errors import Span
from unitrace.model.expr import Binary, Duration, Int, Name, Str

FIX = Path(__file__).parent / "fixtures" / "ftrace" / "exec_openat"
S = Span(1, 1)


def _decoders() -> dict[int, RecordDecoder]:
    decs = {}
    for f in FIX.glob("*.format"):
        system = f.name.split(".")[0]
        fmt = parse_format(f.read_text(), system)
        decs[fmt.id] = RecordDecoder(fmt)
    return decs


def _replay() -> list[tuple[int, int, str, dict[str, object]]]:
    layout = PageLayout.parse((FIX / "header_page").read_text())
    decs = _decoders()
    out = []
    for page_file in sorted(FIX.glob("cpu*.page*.bin")):
        page = page_file.read_bytes()
        _, records = parse_page(page, layout)
        for ts, off, _length in records:
            etype, _, _, pid = struct.unpack_from("<HBBi", page, off)
            dec = decs.get(etype)
            if dec is not None:
                out.append((ts, pid, dec.fmt.name, dec.decode(page, off)))
    return out


def test_replay_exec_and_openat_pairs() -> None:
    meta = json.loads((FIX / "meta.json").read_text())
    records = [r for r in _replay() if r[1] == meta["pid"]]
    names = [r[2] for r in records]
    assert names[0] == "sched_process_exec"
    assert records[0][3]["filename"] == "/usr/bin/cat"
    assert records[0][3]["pid"] == meta["pid"]
    # every enter is followed by its exit on the same thread, and the last open (of /etc/hostname) got fd 3
    opens = names[1:]
    assert opens and all(a == "sys_enter_openat" and b == "sys_exit_openat"
                         for a, b in zip(opens[::2], opens[1::2], strict=True))
    assert records[-1][3]["ret"] == 3
    assert all(r[3]["__syscall_nr"] == 257 for r in records[1:])
    stamps = [r[0] for r in records]
    assert stamps == sorted(stamps)
    # AT_FDCWD as the kernel stores the 32-bit int in a 64-bit slot
    assert records[1][3]["dfd"] == 0xFFFFFF9C


def _event(type_len: int, delta: int, payload: bytes) -> bytes:
    return struct.pack("<I", (delta << 5) | type_len) + payload


def test_page_parser_handles_every_record_type() -> None:
    body = b"".join([
        _event(2, 10, b"A" * 8),  # small data record, 8 bytes
        _event(30, 5, struct.pack("<I", 1)),  # time extend: delta = (1 << 27) | 5
        _event(0, 3, struct.pack("<I", 4 + 120) + b"B" * 120),  # long record, length word first
        _event(29, 7, struct.pack("<I", 12) + b"\0" * 8),  # discarded record: length counts its own word
        _event(1, 2, b"CCCC"),
    ])
    page = struct.pack("<QQ", 1000, len(body) | MISSED_EVENTS) + body
    page += b"\0" * (4096 - len(page))
    info, records = parse_page(page)
    assert info.missed == -1
    assert [(ts, length) for ts, _off, length in records] == [
        (1010, 8), (1010 + (1 << 27) + 5 + 3, 120), (1010 + (1 << 27) + 5 + 3 + 2, 4)]
    assert page[records[1][1]: records[1][1] + 120] == b"B" * 120


def test_header_page_layout_parses() -> None:
    layout = PageLayout.parse((FIX / "header_page").read_text())
    assert (layout.commit_offset, layout.commit_size, layout.data_offset) == (8, 8, 16)


def test_format_parser_fields() -> None:
    fmt = parse_format((FIX / "sched.sched_process_exec.format").read_text(), "sched")
    f = fmt.field("filename")
    assert f is not None and f.data_loc and f.is_string
    assert [x.name for x in fmt.fields] == ["filename", "pid", "old_pid"]
    assert all(c.name.startswith("common_") for c in fmt.common)


def _fields(names: dict[str, str]):  # our name -> event field
    return lambda n: names.get(n)


@pytest.mark.parametrize(("expr", "kernel", "residual"), [
    (Binary(S, "==", Name(S, "comm"), Str(S, "cat")), 'comm == "cat"', False),
    (Binary(S, "==", Name(S, "comm"), Str(S, "ba*")), 'comm ~ "ba*"', False),
    (Binary(S, "!=", Name(S, "comm"), Str(S, "ba*")), '!(comm ~ "ba*")', False),
    (Binary(S, ">", Int(S, 1000), Name(S, "arg0")), "arg0 < 1000", False),
    (Binary(S, "&&", Binary(S, "==", Name(S, "tid"), Int(S, 7)), Binary(S, ">", Name(S, "duration"),
                                                                        Duration(S, 1000, "1us"))),
     "common_pid == 7", True),
    (Binary(S, "||", Binary(S, "==", Name(S, "tid"), Int(S, 7)), Binary(S, "==", Name(S, "pid"), Int(S, 7))),
     "", True),
])
def test_filter_lowering(expr, kernel: str, residual: bool) -> None:
    text, rest = split_predicate(expr, _fields({"comm": "comm", "tid": "common_pid", "arg0": "arg0"}))
    assert text == kernel
    assert (rest is not None) is residual


def test_errno_becomes_negative_ret_on_exit() -> None:
    expr = errno_to_ret(Binary(S, "==", Name(S, "errno"), Int(S, 2)))
    text, rest = split_predicate(expr, _fields({"ret": "ret"}))
    assert (text, rest) == ("ret == -2", None)


def test_string_quoting_in_filters() -> None:
    text, _ = split_predicate(Binary(S, "==", Name(S, "filename"), Str(S, 'a"b\\c')),
                              _fields({"filename": "filename"}))
    assert text == 'filename == "a\\"b\\\\c"'


def test_dynamic_event_lines() -> None:
    up = DynamicEvent("uprobe", False, "libc_malloc", "/lib/x86_64-linux-gnu/libc.so.6:0x98930",
                      ("arg0=%di:u64",))
    assert up.line("unitrace_42") == "p:unitrace_42/libc_malloc /lib/x86_64-linux-gnu/libc.so.6:0x98930 arg0=%di:u64"
    assert up.control_file == "uprobe_events"
    kr = DynamicEvent("kprobe", True, "do_sys_openat2__return", "do_sys_openat2", ("ret=$retval:s64",))
    assert kr.line("unitrace_42") == "r:unitrace_42/do_sys_openat2__return do_sys_openat2 ret=$retval:s64"
    assert kr.control_file == "kprobe_events"
    assert event_name("foo.cold@GLIBC") == "foo_cold_GLIBC"
    assert event_name("9lives") == "_9lives"


def test_error_log_parsing() -> None:
    # As this kernel printed it for `p:unitrace_1/bad /bin/true:0x10 arg0=%zz`.
    log = ("[ 2361.972337] trace_uprobe: error: Invalid register name\n"
           "  Command: p:unitrace_1/bad /bin/true:0x10 arg0=%zz\n"
           "                                                ^\n")
    r = parse_error_log(log)
    assert r is not None
    assert r.reason == "Invalid register name"
    assert r.command == "p:unitrace_1/bad /bin/true:0x10 arg0=%zz"
    assert r.command[r.caret:].startswith("%zz")


def test_fast_page_decoder_agrees_with_the_reference_parser() -> None:
    from unitrace.backends.ftrace.ringbuf import decode_page

    layout = PageLayout.parse((FIX / "header_page").read_text())
    decs = _decoders()
    unpackers = {i: d.fast for i, d in decs.items()}
    for page_file in sorted(FIX.glob("cpu*.page*.bin")):
        page = page_file.read_bytes()
        fast: list = []
        decode_page(page, layout, unpackers, fast)
        _, records = parse_page(page, layout)
        slow = [(ts, off) for ts, off, _ in records if struct.unpack_from("<H", page, off)[0] in decs]
        assert [(ts, off) for ts, _, off, _ in fast] == slow
        for _ts, event_id, off, values in fast:
            dec = decs[event_id]
            full = dec.decode(page, off)
            assert values[3] == struct.unpack_from("<i", page, off + 4)[0]  # common_pid
            assert dict(zip(dec.fast_names, values[4:], strict=True)) == {
                k: v for k, v in full.items() if k in dec.fast_names}
