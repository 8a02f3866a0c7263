"""bpf backend pieces that need no kernel: the record layout, C lowering of predicates, C literals."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from unitrace.backends.bpf import record
from unitrace.backends.bpf.cgen import NotInKernel, Scope, c_int, c_string, lower, split
from unitrace.errors import Span
from unitrace.model.expr import Binary, Duration, Int, Name, Str, Unary

S = Span(1, 1)
SCOPE = Scope(names={"pid": "tgid", "ret": "ret", "duration": "(now - f->ts)", "arg0": "f->args[0]"},
              strings={"comm": "comm"})


def test_record_offsets_match_the_c_compiler(tmp_path: Path) -> None:
    """The C struct and the Python decoder come from one declaration; gcc confirms every offset."""
    fields = [name for name, _, _ in record.RECORD_FIELDS]
    prints = "\n".join(f'    printf("{n} %zu\\n", offsetof(struct ut_record, {n}));' for n in fields)
    src = textwrap.dedent("""
        #include <stddef.h>
        #include <stdio.h>
        #include <stdint.h>
        typedef uint64_t u64; typedef int64_t s64; typedef uint32_t u32; typedef int32_t s32;
    """) + record.c_struct() + f"\nint main(void) {{\n{prints}\n    printf(\"size %zu\\n\", sizeof(struct ut_record));\n}}\n"
    (tmp_path / "r.c").write_text(src)
    subprocess.run(["gcc", "-o", str(tmp_path / "r"), str(tmp_path / "r.c")], check=True)
    out = subprocess.run([str(tmp_path / "r")], capture_output=True, text=True, check=True).stdout
    c_offsets = {line.split()[0]: int(line.split()[1]) for line in out.splitlines()}
    assert c_offsets.pop("size") == record.RECORD.size
    assert c_offsets == record.python_offsets()


def test_record_round_trip() -> None:
    """A variable-size record: the header, then only the captured parts, in record.py's order."""
    raw = record.pack({"ts": 2, "probe": 5, "args": (0, 1, 2, 3, 4, 5), "comm": b"comm", "kind": record.KIND_SYSCALL,
                       "str_len": (4, -1), "str_addr": (0x1000, 0), "ibuf_len": 3, "ibuf_addr": 0x2000,
                       "buf_len": 5, "parts": (b"abc\0", b"xyz", b"hello")})
    assert len(raw) == record.HEADER_SIZE + 12
    rec = record.Record(raw)
    assert rec.args == (0, 1, 2, 3, 4, 5)
    assert rec.ts == 2 and rec.probe == 5 and rec.comm.startswith(b"comm")
    assert rec.strs == (b"abc\0", b"") and rec.ibuf == b"xyz" and rec.buf == b"hello"
    bare = record.Record(record.pack({"str_len": (-1, -1), "buf_len": -1, "ibuf_len": -1}))
    assert bare.strs == (b"", b"") and bare.ibuf == b"" and bare.buf == b""
    assert record.HEADER_SIZE <= 160  # a syscall without strings or buffers


@pytest.mark.parametrize(("text", "literal"), [
    ("cat", '"cat"'),
    ('a"b', '"a\\"b"'),
    ("back\\slash", '"back\\\\slash"'),
    ("nl\n", '"nl\\012"'),
    ("??=", '"\\077\\077="'),  # no trigraphs
    ("é", '"\\303\\251"'),
])
def test_c_string_literals(text: str, literal: str) -> None:
    assert c_string(text) == literal


def test_c_int_literals() -> None:
    assert c_int(5) == "5LL"
    assert c_int(-2) == "(-2LL)"
    assert c_int(1 << 63) == f"{1 << 63}ULL"


def test_lowering_predicates() -> None:
    expr = Binary(S, "&&", Binary(S, "==", Name(S, "comm"), Str(S, "cat")),
                  Binary(S, ">", Name(S, "duration"), Duration(S, 2_000_000, "2ms")))
    assert lower(expr, SCOPE) == ('(ut_str_eq(comm, "cat", 4) && (((s64)((now - f->ts))) > 2000000LL))')
    assert lower(Binary(S, "!=", Name(S, "comm"), Str(S, "ba*")), SCOPE) == '!ut_str_eq(comm, "ba", 2)'
    assert lower(Unary(S, "!", Binary(S, "<", Name(S, "ret"), Int(S, 0))), SCOPE) == "(!(((s64)(ret)) < 0LL))"
    # division by zero cannot happen in the kernel: it yields 0 (ut_sdiv checks)
    assert lower(Binary(S, "/", Name(S, "arg0"), Name(S, "ret")), SCOPE) == \
        "ut_sdiv(((s64)(f->args[0])), ((s64)(ret)))"


def test_division_is_never_signed_bpf_division() -> None:
    """LLVM refuses BPF `sdiv` before ISA v4: `/` and `%` on values never negative are unsigned divisions,
    anything else goes through ut_sdiv/ut_smod (magnitudes, then the sign, as C truncates)."""
    us = Binary(S, "/", Name(S, "duration"), Int(S, 1000))
    assert lower(us, SCOPE) == "(1000LL ? (s64)((u64)((s64)((now - f->ts))) / (u64)1000LL) : 0)"
    assert lower(Binary(S, "%", Name(S, "pid"), Int(S, 7)), SCOPE) == \
        "(7LL ? (s64)((u64)((s64)(tgid)) % (u64)7LL) : 0)"
    assert lower(Binary(S, "%", Name(S, "ret"), Int(S, 7)), SCOPE) == "ut_smod(((s64)(ret)), 7LL)"
    assert lower(Binary(S, "/", Name(S, "duration"), Unary(S, "-", Int(S, 2))), SCOPE) == \
        "ut_sdiv(((s64)((now - f->ts))), (-2LL))"
    # nested: (duration / 1000) / 10 stays unsigned, (duration - 5) / 10 does not
    assert "ut_sdiv" not in lower(Binary(S, "/", us, Int(S, 10)), SCOPE)
    assert lower(Binary(S, "/", Binary(S, "-", Name(S, "duration"), Int(S, 5)), Int(S, 10)), SCOPE) \
        .startswith("ut_sdiv(")


def test_signed_division_helpers_match_c(tmp_path: Path) -> None:
    """ut_sdiv/ut_smod from unitrace_bpf.h, compiled by gcc, against C's own `/` and `%`."""
    header = (Path(__file__).parent.parent / "unitrace/backends/bpf/unitrace_bpf.h").read_text()
    helpers = header[header.index("static __always_inline s64 ut_sdiv"):header.index("/* Linear histogram")]
    pairs = [(a, b) for a in (-9, -8, -1, 0, 1, 7, 9, -(1 << 62)) for b in (-4, -3, -1, 1, 2, 3, 1 << 40)]
    checks = "\n".join(f"    if (ut_sdiv({a}LL, {b}LL) != {a}LL / {b}LL || ut_smod({a}LL, {b}LL) != {a}LL % {b}LL) "
                       f'{{ printf("bad {a} {b}\\n"); return 1; }}' for a, b in pairs)
    src = ("#include <stdio.h>\n#include <stdint.h>\n#define __always_inline inline\n"
           "typedef uint64_t u64; typedef int64_t s64;\n" + helpers +
           f"\nint main(void) {{\n{checks}\n    return ut_sdiv(5, 0) | ut_smod(5, 0);\n}}\n")
    (tmp_path / "d.c").write_text(src)
    subprocess.run(["gcc", "-O1", "-o", str(tmp_path / "d"), str(tmp_path / "d.c")], check=True)
    proc = subprocess.run([str(tmp_path / "d")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_what_the_kernel_cannot_do_stays_in_user_space() -> None:
    inner_glob = Binary(S, "==", Name(S, "comm"), Str(S, "*sh"))
    with pytest.raises(NotInKernel):
        lower(inner_glob, SCOPE)
    cond, residual = split(Binary(S, "&&", Binary(S, "==", Name(S, "pid"), Int(S, 7)), inner_glob), SCOPE)
    assert cond == "(((s64)(tgid)) == 7LL)"
    assert residual is inner_glob
    cond, residual = split(Binary(S, "==", Name(S, "nosuch"), Int(S, 1)), SCOPE)
    assert cond == "1" and residual is not None


def test_perf_buffer_transport_is_chosen_by_kernel_release() -> None:
    from unitrace.backends.bpf.program import generate, ringbuf_supported
    from unitrace.model.probe import Probe, ProbePoint, SyscallTarget

    assert not ringbuf_supported("5.4.0-150-generic") and ringbuf_supported("5.8.0") and ringbuf_supported("6.18.4")
    probe = Probe((ProbePoint("syscall", SyscallTarget(("openat",), ("openat",))),))
    perf = generate([probe], scoped=True, arch="x86_64", lifecycle=True, transport="perf")
    ring = generate([probe], scoped=True, arch="x86_64", lifecycle=True)
    assert "ringbuf" not in perf.source and "BPF_PERF_OUTPUT(ut_events);" in perf.source
    assert perf.source.count("perf_submit(ctx, r, size)") == ring.source.count("ringbuf_output(r, size, flags)") == 1
    assert perf.source.count("ut_emit(ctx, r,") == ring.source.count("ut_emit(ctx, r,") > 3


def test_buffer_sized_from_the_plan() -> None:
    from unitrace.backends.bpf import program
    from unitrace.decode.table import get_table
    from unitrace.model.probe import (
        AggregateAction,
        PrintAction,
        Probe,
        ProbePoint,
        SyscallTarget,
        TracepointTarget,
    )

    every = tuple(sorted(get_table("x86_64").by_name))
    def plan(names: tuple[str, ...], action: object, transport: str = "ringbuf") -> program.BpfPlan:
        probe = Probe((ProbePoint("syscall", SyscallTarget(names, names)),), actions=(action,))
        return program.generate([probe], scoped=True, arch="x86_64", transport=transport, ncpus=2)

    p = plan(every, PrintAction(()))
    assert p.buffer_pages == program.RINGBUF_PAGES_SYSCALLS
    assert f"BPF_RINGBUF_OUTPUT(ut_events, {program.RINGBUF_PAGES_SYSCALLS});" in p.source
    assert f"#define UT_WAKE_BYTES {program.RINGBUF_PAGES_SYSCALLS * 4096 // 4 // 2}" in p.source
    assert plan(("getppid",), PrintAction(())).buffer_pages == program.RINGBUF_PAGES_SYSCALLS
    assert plan(every, AggregateAction("count", None)).buffer_pages == program.RINGBUF_PAGES_NONE
    assert plan(every, PrintAction(()), "perf").buffer_pages == program.RINGBUF_PAGES_SYSCALLS // 2  # 2 CPUs
    assert program.buffer_pages("perf", {0}, {39: 1}, ncpus=6) == program.RINGBUF_PAGES_SYSCALLS // 8
    assert program.buffer_pages("perf", set(), {39: 1}, ncpus=64) == program.PERF_PAGES_MIN
    tp = Probe((ProbePoint("tracepoint", TracepointTarget("sched", "sched_process_exec")),))
    assert program.generate([tp], scoped=True, arch="x86_64").buffer_pages == program.RINGBUF_PAGES_OTHER


def _ring_file(size: int, records: list[tuple[bytes, int]], start: int) -> tuple[int, int]:
    """A memfd laid out as the kernel maps a BPF ring buffer (consumer page, producer page, the data twice),
    holding `records` ((data, header flags)) written from position `start`; (fd, end position)."""
    import mmap
    import os
    import struct

    from unitrace.backends.bpf import ringbuf

    page = mmap.PAGESIZE
    data = bytearray(size)
    pos = start
    for payload, flags in records:
        hdr = struct.pack("<II", len(payload) | flags, 0)
        chunk = hdr + payload + b"\0" * (-(len(payload) + ringbuf.HDR_SZ) % 8)
        for i, b in enumerate(chunk):
            data[(pos + i) % size] = b
        pos += len(chunk)
    fd = os.memfd_create("ringbuf")
    os.write(fd, struct.pack("<Q", start).ljust(page, b"\0") + struct.pack("<Q", pos).ljust(page, b"\0")
             + bytes(data) * 2)
    return fd, pos


def test_ring_buffer_read_from_its_pages() -> None:
    """Records are sliced out in order, across the wrap-around, skipping discarded ones and stopping at one
    still being written; the consumer position moves past what was read, and only that."""
    import os
    import struct

    from unitrace.backends.bpf import ringbuf

    size = 4096
    recs = [(b"a" * 160, 0), (b"b" * 13, ringbuf.DISCARD_BIT), (b"c" * 200, 0), (b"d" * 8, ringbuf.BUSY_BIT),
            (b"e" * 8, 0)]
    start = size * 3 - 100  # positions only grow; the first record wraps around the end of the data
    fd, _end = _ring_file(size, recs, start=start)
    try:
        reader = ringbuf.RingBufReader(fd, size)
        out: list[bytes] = []
        assert reader.read(out) == 2
        assert out == [b"a" * 160, b"c" * 200]
        busy_at = start + 168 + 24 + 208
        assert struct.unpack("<Q", os.pread(fd, 8, 0))[0] == busy_at
        assert reader.read(out) == 0 and len(out) == 2  # still busy: nothing more
        reader.close()
    finally:
        os.close(fd)


def test_records_replayed_through_the_session_decoder() -> None:
    """Header-only records take the fast path, records with parts the general one; both decode alike."""
    from unitrace.backends.base import TraceTarget
    from unitrace.backends.bpf.backend import BpfBackend
    from unitrace.decode.table import get_table
    from unitrace.model.probe import Probe, ProbePoint, SyscallTarget

    nr = {n: get_table("x86_64").by_name[n].nr for n in ("getppid", "openat")}
    probe = Probe((ProbePoint("syscall", SyscallTarget(("getppid", "openat"), ("getppid", "openat"))),))
    backend = BpfBackend()
    got: list = []
    session = backend.start(backend.compile([probe], {}), TraceTarget(pids=(1,)), got.extend, {})
    session._drain = lambda: None  # type: ignore[method-assign]
    common = {"kind": record.KIND_SYSCALL, "pid": 7, "tid": 8, "comm": b"loop\0", "str_len": (-1, -1),
              "buf_len": -1, "ibuf_len": -1, "ts": 1000, "dur": 50, "kstack": -1, "ustack": -1}
    bare = record.pack({**common, "nr": nr["getppid"], "ret": 42})
    path = b"/etc/hostname\0"
    opened = record.pack({**common, "nr": nr["openat"], "ret": 3, "args": (0xFFFFFF9C, 0x1000, 0, 0, 0, 0),
                          "str_addr": (0x1000, 0), "str_len": (len(path), -1), "parts": (path,)})
    assert len(bare) == record.HEADER_SIZE and len(opened) == record.HEADER_SIZE + len(path)
    session._raw = [bare, opened]
    session._decode_pending()
    session._flush()
    getppid, openat = got
    assert (getppid.name, getppid.pid, getppid.tid, getppid.comm, getppid.ret, getppid.ret_text,
            getppid.duration_ns, getppid.args) == ("getppid", 7, 8, "loop", 42, "42", 50, ())
    assert openat.name == "openat" and openat.args[:2] == ("AT_FDCWD", '"/etc/hostname"') and openat.ret == 3
    assert getppid.ts_ns - 1000 == openat.ts_ns - 1000 == session._clock_offset


def test_records_drained_while_decoding_are_all_decoded() -> None:
    """Records the drain between two chunks brings in are decoded too, whether the chunk before was full or
    short (a short first chunk once made the loop skip what the drain appended)."""
    from unitrace.backends.base import TraceTarget
    from unitrace.backends.bpf import session as bpf_session
    from unitrace.backends.bpf.backend import BpfBackend
    from unitrace.decode.table import get_table
    from unitrace.model.probe import Probe, ProbePoint, SyscallTarget

    nr = get_table("x86_64").by_name["getppid"].nr
    probe = Probe((ProbePoint("syscall", SyscallTarget(("getppid",), ("getppid",))),))
    backend = BpfBackend()
    got: list = []
    session = backend.start(backend.compile([probe], {}), TraceTarget(pids=(1,)), got.extend, {})
    rec = record.pack({"kind": record.KIND_SYSCALL, "nr": nr, "pid": 7, "tid": 7, "str_len": (-1, -1),
                       "buf_len": -1, "ibuf_len": -1, "kstack": -1, "ustack": -1})
    arrivals = [[rec] * 3, [rec] * (bpf_session.DECODE_CHUNK - 3), [rec] * (2 * bpf_session.DECODE_CHUNK + 5), []]
    session._drain = lambda: session._raw.extend(arrivals.pop(0) if arrivals else [])  # type: ignore[method-assign]
    session._raw = [rec, rec]
    session._decode_pending()
    session._flush()
    assert len(got) == 2 + 3 + (bpf_session.DECODE_CHUNK - 3) + 2 * bpf_session.DECODE_CHUNK + 5
