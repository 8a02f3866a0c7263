"""The -c table against strace 6.1's exact layout (tables recorded from strace 6.1 on this machine)."""

from __future__ import annotations

import io

from unitrace.events import Event
from unitrace.events import EventKind as K
from unitrace.sinks.summary import CallStats, SummarySink, render_table

NR = {"read": 0, "close": 3, "mmap": 9, "openat": 257, "getppid": 110, "sched_get_priority_max": 146,
      "sched_getaffinity": 204}.__getitem__


def test_layout_matches_strace_6_1() -> None:
    # strace -c -e trace=close,openat cat /nonexist  (strace 6.1)
    stats = {"openat": CallStats(34, 17, 187_000), "close": CallStats(19, 0, 56_000)}
    assert render_table(stats, "time", NR) == (
        "% time     seconds  usecs/call     calls    errors syscall\n"
        "------ ----------- ----------- --------- --------- ----------------\n"
        " 76.95    0.000187           5        34        17 openat\n"
        " 23.05    0.000056           2        19           close\n"
        "------ ----------- ----------- --------- --------- ----------------\n"
        "100.00    0.000243           4        53        17 total\n")


def test_name_column_is_one_wider_than_the_longest_name() -> None:
    # strace -c -e trace=sched_getaffinity python3 ...: 17 characters -> 18 dashes
    table = render_table({"sched_getaffinity": CallStats(1, 0, 4_000)}, "time", NR)
    assert table.splitlines()[1].split(" ")[-1] == "-" * 18
    assert table.splitlines()[2] == "100.00    0.000004           4         1           sched_getaffinity"


def test_wide_numbers_widen_their_column_and_zero_time_prints_zero_percent() -> None:
    table = render_table({"getppid": CallStats(12_345_678_901, 0, 0)}, "time", NR)
    lines = table.splitlines()
    assert lines[0] == "% time     seconds  usecs/call       calls    errors syscall"
    assert lines[2] == "  0.00    0.000000           0 12345678901           getppid"
    assert lines[4].startswith("100.00")


def test_sort_keys_and_ties_in_syscall_number_order() -> None:
    stats = {"openat": CallStats(1, 1, 0), "close": CallStats(5, 0, 0), "read": CallStats(5, 2, 0)}
    names = lambda key: [ln.split()[-1] for ln in render_table(stats, key, NR).splitlines()[2:-2]]  # noqa: E731
    assert names("time") == ["read", "close", "openat"]  # all zero: syscall numbers decide
    assert names("calls") == ["read", "close", "openat"]
    assert names("errors") == ["read", "openat", "close"]
    assert names("name") == ["close", "openat", "read"]
    assert names("nothing") == ["read", "close", "openat"]


def test_sink_counts_completed_calls_and_errors_and_skips_calls_that_never_returned() -> None:
    out = io.StringIO()
    sink = SummarySink(out, syscall_number=NR)
    sink.feed([
        Event(K.SYSCALL, 0, 1, 1, "close", ret=0, duration_ns=3_000),
        Event(K.SYSCALL, 0, 1, 1, "close", ret=-1, errno=9, duration_ns=1_000),
        Event(K.SYSCALL_ENTER, 0, 1, 1, "read"),
        Event(K.SYSCALL_RESUMED, 0, 1, 1, "read", ret=5, duration_ns=6_000),
        Event(K.SYSCALL, 0, 1, 1, "exit_group", ret=None),
    ])
    sink.close(None)  # type: ignore[arg-type]
    assert out.getvalue().splitlines()[2:4] == [
        " 60.00    0.000006           6         1           read",
        " 40.00    0.000004           2         2         1 close"]
    assert "exit_group" not in out.getvalue()


def test_nothing_counted_prints_nothing() -> None:
    assert render_table({}) == ""
