"""Kernel aggregation with ftrace hist triggers, without a kernel: planning, the `hist` file parser (on
real files from Debian's 6.1 kernel, tests/fixtures/ftrace/hist/README.md) and the merge into the
user-space engine. The live comparison runs in the QEMU guest (tests/test_ftrace_guest.py): this host's
kernel has no hist triggers."""

from __future__ import annotations

from pathlib import Path

from unitrace.backends.ftrace.compile import compile_probes
from unitrace.backends.ftrace.formats import parse_format
from unitrace.backends.ftrace.hist import (
    HistFeatures,
    HistKey,
    HistTrigger,
    parse_hist,
    parse_hist_tables,
    rows_for,
    trigger_name,
)
from unitrace.events import Event, EventKind
from unitrace.lang import parse_probe_args
from unitrace.runner import resolve_program
from unitrace.sinks.aggregate import AggregateSink

FIX = Path(__file__).parent / "fixtures" / "ftrace" / "hist"
EXEC_FIX = Path(__file__).parent / "fixtures" / "ftrace" / "exec_openat"
ALL = HistFeatures(True, True, True)


def _formats(system: str, event: str):  # type: ignore[no-untyped-def]
    path = EXEC_FIX / f"{system}.{event}.format"
    if path.exists():
        return parse_format(path.read_text(), system)
    if (system, event) == ("sched", "sched_switch"):
        return parse_format(SCHED_SWITCH_FORMAT, "sched")
    return None


SCHED_SWITCH_FORMAT = """name: sched_switch
ID: 316
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:int prev_prio;\toffset:28;\tsize:4;\tsigned:1;
\tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;
\tfield:char next_comm[16];\toffset:40;\tsize:16;\tsigned:0;
\tfield:pid_t next_pid;\toffset:56;\tsize:4;\tsigned:1;
\tfield:int next_prio;\toffset:60;\tsize:4;\tsigned:1;

print fmt: "prev_comm=%s"
"""


def _plan(*texts: str, features: HistFeatures = ALL, **kw):  # type: ignore[no-untyped-def]
    program = resolve_program(parse_probe_args(list(texts)))
    return program, compile_probes(program.probes, _formats, arch="x86_64", hist=features, **kw)


# ---- the parser, on real files ------------------------------------------------------------------------

def test_two_tables_on_one_event_are_told_apart_by_name() -> None:
    text = (FIX / "sched_switch.hist").read_text()
    keys = {"unitrace_77_p0s0e0": (("prev_comm",), frozenset({0})),
            "unitrace_77_p1s0e0": (("prev_comm", "prev_pid"), frozenset({0}))}
    tables = parse_hist_tables(text, lambda info: keys.get(trigger_name(info)))
    assert [trigger_name(t.trigger) for t in tables] == ["unitrace_77_p0s0e0", "unitrace_77_p1s0e0"]
    one, two = tables
    assert (one.hits, one.entries, one.dropped) == (1265, 11, 0)
    assert sum(r.hitcount for r in one.rows) == one.hits
    counts = {r.keys[0]: r.hitcount for r in one.rows}
    assert counts["swapper/0"] == 457 and counts["kworker/u2:1"] == 1
    # a thread named `a b, prev_pid: x` (15 bytes kept): spaces, a comma and the next key's name
    assert counts["a b, prev_pid:"] == 30
    rows = {(r.keys[0], r.keys[1]): (r.hitcount, r.values) for r in two.rows}
    assert rows[("a b, prev_pid:", 140)] == (30, {"prev_prio": 3600})
    assert rows[("python3", 140)] == (480, {"prev_prio": 57600})
    assert sum(r.hitcount for r in two.rows) == two.hits
    # a table nobody asked for is skipped
    assert len(parse_hist_tables(text, lambda info: None)) == 0


def test_negative_keys_and_sums_come_back_signed() -> None:
    text = (FIX / "sys_exit_openat.hist").read_text()
    trig = HistTrigger(0, 0, "sum", "events/syscalls/sys_exit_openat", "p2s0e0", ("common_pid", "ret"),
                       ("common_pid", "ret"), frozenset(), frozenset({0, 1}),
                       (HistKey("field", 1),), "ret", True)
    (table, _buckets) = parse_hist_tables(text, lambda info: ((("common_pid", "ret"), frozenset()))
                                          if "p2s0e0" in info else (("ret",), frozenset()))
    rows = rows_for(trig, table, lambda tid: tid, str)
    by_ret: dict[object, tuple[int, int]] = {}
    for r in rows:
        n, t = by_ret.get(r.keys[0], (0, 0))
        by_ret[r.keys[0]] = (n + r.count, t + r.total)
    assert by_ret[-2] == (8, -16)  # ENOENT, eight times
    assert by_ret[3] == (2 + 3 + 3 + 3 + 31, 3 * 42)


def test_bucket_modifier_rows_map_onto_linear_buckets() -> None:
    from unitrace.sinks.hist import linear_bucket

    text = (FIX / "sys_exit_openat.hist").read_text()
    trig = HistTrigger(0, 0, "lhist", "events/syscalls/sys_exit_openat", "p2s1e0", ("ret.buckets=512",),
                       ("ret",), frozenset(), frozenset({0}), (), None, False, 0, (0, 4096, 512))
    tables = parse_hist_tables(text, lambda info: (("ret",), frozenset()) if "p2s1e0" in info else None)
    (row,) = rows_for(trig, tables[0], lambda tid: tid, str)
    assert (row.bucket, row.count) == (linear_bucket(0, 0, 4096, 512), 45)


def test_execname_and_log2_modifiers_parse() -> None:
    (table,) = parse_hist((FIX / "sys_enter_read_execname.hist").read_text(), ("common_pid", "count"))
    assert table.hits == 85 and len(table.rows) == table.entries == 48
    assert (156, 8192) in {r.keys for r in table.rows}
    (log2,) = parse_hist((FIX / "sys_exit_write_log2.hist").read_text(), ("ret",))
    assert {r.keys[0] for r in log2.rows} == {0, 1, 2, 3, 4, 5, 6, 7, 8, 11}
    assert sum(r.hitcount for r in log2.rows) == log2.hits == 123


# ---- planning -----------------------------------------------------------------------------------------

def test_what_runs_where() -> None:
    _, plan = _plan('tracepoint:sched:sched_switch { count() by prev_comm }',
                    'syscall:openat%return /ret >= 0/ { @n[pid] = sum(ret); hist(ret); lhist(ret, 0, 4096, 512); '
                    'max(ret); @c[comm] = count(); @f[flags] = count() }',
                    'syscall:openat /filename == "/etc/passwd"/ { count() }')
    where = {(a.probe, a.slot): a for a in plan.aggregates}
    assert where[(0, 0)].in_kernel
    (t,) = where[(0, 0)].triggers
    assert t.command("unitrace_9") == ("hist:name=unitrace_9_p0s0e0:keys=prev_comm:vals=hitcount:sort=hitcount:"
                                       "size=16384")
    assert where[(1, 0)].triggers[0].command("g").startswith("hist:name=g_p1s0e0:keys=common_pid:vals=hitcount,ret:")
    assert where[(1, 0)].triggers[0].command("g").endswith(" if ret >= 0")
    assert where[(1, 1)].triggers[0].kernel_keys == ("ret",)  # raw values, bucketed in user space
    assert where[(1, 2)].triggers[0].kernel_keys == ("ret.buckets=512",)
    assert "only sum" in where[(1, 3)].reason
    assert "comm" in where[(1, 4)].reason
    assert "entry record" in where[(1, 5)].reason
    assert "predicate" in where[(2, 0)].reason  # a string compare on a pointer argument: user space
    # probe 0 is all kernel: its event is not enabled; probe 1 still streams (max, comm, flags)
    stream = {(e.probe, e.event): e.stream for e in plan.events}
    assert stream[(0, "sched_switch")] is False
    assert stream[(1, "sys_exit_openat")] is True
    text = "\n".join(f"{a.title}\n{a.text}" for a in plan.artifacts())
    assert "count() by prev_comm in the kernel (hist trigger)" in text
    assert "sched_switch/enable: 0" in text
    assert "max(ret) in user space\n(user space) max(): hist triggers only sum" in text


def test_no_hist_triggers_or_turned_off_keeps_everything_in_user_space() -> None:
    _, plan = _plan('tracepoint:sched:sched_switch { count() by prev_comm }', features=HistFeatures())
    assert not plan.kernel_aggregates and all(e.stream for e in plan.events)
    assert "CONFIG_HIST_TRIGGERS" in plan.aggregates[0].reason
    _, plan = _plan('tracepoint:sched:sched_switch { count() by prev_comm }',
                    'tracepoint:sched:sched_switch { count() by prev_comm }', kernel_aggregates=[0])
    assert plan.kernel_aggregates == ((0, 0),)
    assert all(e.stream for e in plan.events)  # probe 1 needs the records


def test_many_syscalls_key_by_number_and_come_back_named() -> None:
    from unitrace.decode.table import get_table

    _, plan = _plan('syscall:* { count() by func }')
    (agg,) = plan.aggregates
    (t,) = agg.triggers
    assert t.path == "events/raw_syscalls/sys_exit" and t.kernel_keys == ("id",)
    table = parse_hist("# trigger info: x\n{ id:          0 } hitcount:          7\n"
                       "{ id:         39 } hitcount:          2\n", ("id",))[0]
    names = {nr: info.name for nr, info in get_table("x86_64").by_nr.items()}
    rows = rows_for(t, table, lambda tid: tid, lambda nr: names[nr])
    assert {r.keys: r.count for r in rows} == {("read",): 7, ("getpid",): 2}


# ---- merged output is the user-space engine's output ---------------------------------------------------

def test_kernel_rows_print_like_the_user_space_engine() -> None:
    """The same values through both paths: rows from a hist table (keys tid and raw ret) merged into one
    sink, the events themselves fed to another; the printed text is the same."""
    program, plan = _plan('syscall:openat%return { @s[tid] = sum(ret); @h = hist(ret); @l = lhist(ret, 0, 8, 2); '
                          '@a[tid] = avg(ret); @n = count() }')
    text = (FIX / "sys_exit_openat.hist").read_text()
    (table, _) = parse_hist_tables(text, lambda info: (("common_pid", "ret"), frozenset()) if "p2s0e0" in info
                                   else (("ret",), frozenset()))
    events = []
    for row in table.rows:
        tid, ret = row.keys
        ret = ret - (1 << 64) if ret >= 1 << 63 else ret
        events += [Event(EventKind.SYSCALL, 0, tid, tid, "openat", 0, ret=ret)] * row.hitcount
    user = AggregateSink(program)
    user.feed(events)
    kernel = AggregateSink(program)
    kernel.mark_in_kernel(plan.kernel_aggregates)
    assert len(plan.kernel_aggregates) == 5
    kernel.feed(events)  # ignored: every slot is the kernel's
    for agg in plan.aggregates:
        (t,) = agg.triggers
        # the table was asked for with (common_pid, ret) keys: re-key it the way each trigger asked
        rekeyed = type(table)(table.trigger)
        for row in table.rows:
            values = {t.value: row.keys[1] * row.hitcount} if t.value else {}
            keys = tuple(row.keys[1] if k.startswith("ret") else row.keys[0] for k in t.kernel_keys)
            if t.kernel_keys == ("ret.buckets=2",):
                keys = ((keys[0] // 2) * 2,) if keys[0] < 1 << 63 else keys
            rekeyed.rows.append(type(row)(keys, row.hitcount, values))
        kernel.merge_kernel_rows(rows_for(t, rekeyed, lambda tid: tid, str))
    assert kernel.render() == user.render()
    assert "@h:" in kernel.render() and "(..., 0)" in kernel.render()
