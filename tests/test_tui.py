"""The TUI's model (store, pump, sources, statistics, process tree, saving) and its interactions through
Textual's pilot, driven by the deterministic recorded session of the demo program."""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import replace

import pytest
from unitrace.tui.app import UnitraceApp
from unitrace.tui.columns import row_text, search_text
from unitrace.tui.detail import LEGEND
from unitrace.tui.kernel import DevKmsgFeed, RecordedKernelFeed, kmsg_record_to_line
from unitrace.tui.processes import ProcessTable
from unitrace.tui.pump import EventPump
from unitrace.tui.recorded import ROOT_PID, recorded_session
from unitrace.tui.recorded_source import RecordedSource
from unitrace.tui.save import save
from unitrace.tui.stats import Stats, log2_bucket
from unitrace.tui.store import EventStore, Filter

from tests.tui_support import (
    SIZE,
    ManualSource,
    idle,
    pilot_test,
    screen_text,
    settle,
    use_utc,
    wait_for_frames,
    wait_until,
)
from unitrace.events import Event, EventKind


@pytest.fixture(autouse=True)
def _utc():
    use_utc()


def _app(events=None, **kw) -> UnitraceApp:
    return UnitraceApp(RecordedSource(events, **kw), kernel=RecordedKernelFeed(), clock=lambda: 0.0)


# ---- the recorded session ---------------------------------------------------------------------------


def test_recorded_session_is_deterministic_and_covers_every_kind():
    a, b = recorded_session(400), recorded_session(400)
    assert [row_text(e) for e in a] == [row_text(e) for e in b]
    kinds = {e.kind for e in a}
    assert {EventKind.SYSCALL, EventKind.SIGNAL, EventKind.FORK, EventKind.EXEC, EventKind.EXIT,
            EventKind.CALL, EventKind.RETURN, EventKind.NOTICE} <= kinds
    assert any(e.errno == 2 for e in a)
    stacks = [e.stack for e in a if e.stack]
    assert stacks and all(any(not f.reliable for f in s) and any(f.reliable for f in s) for s in stacks)
    assert all(x.ts_ns <= y.ts_ns for x, y in itertools.pairwise(a))


# ---- store, pump, stats, processes ------------------------------------------------------------------


def test_store_refilters_in_slices_and_keeps_new_events_in_order():
    events = recorded_session(2000)
    store = EventStore()
    store.extend(events[:1500])
    store.SCAN_SLICE = 500
    store.set_filter(Filter("errors", lambda e: e.errno != 0))
    assert store.scanning and len(store) == 0
    store.advance()
    assert store.scanning
    store.extend(events[1500:])  # arrives mid-scan: judged after what came before
    while store.scanning:
        store.advance()
    want = [i for i, e in enumerate(events) if e.errno]
    assert [store.index_of_row(r) for r in range(len(store))] == want
    assert store.row_of_index(want[3]) == 3 and store.row_of_index(want[3] + 1) is None
    assert store.nearest_row(want[3] + 1) == 3
    store.set_filter(Filter())
    assert len(store) == len(events) and store.row(10) is events[10]


def test_filter_by_process_and_hidden_probe():
    events = recorded_session(600)
    flt = Filter(pid=ROOT_PID + 1)
    assert {e.pid for e in events if flt.accepts(e)} == {ROOT_PID + 1}
    hidden = Filter(hidden_probes=frozenset({3}))
    assert not hidden.accepts(replace(events[0], probe=3)) and hidden.accepts(replace(events[0], probe=2))


def test_pump_never_blocks_and_counts_what_it_drops():
    pump = EventPump(capacity=10)
    ev = Event(EventKind.SYSCALL, 1, 1, 1, "read")
    pump.put([ev] * 6)
    pump.put([ev] * 6)  # would exceed the capacity: dropped whole, counted
    pump.put([ev] * 4)
    assert (pump.received, pump.dropped, pump.pending) == (16, 6, 10)
    assert [len(b) for b in pump.drain()] == [6, 4]
    assert pump.pending == 0 and pump.drain() == []


def test_stats_count_probes_processes_errors_and_latency():
    events = recorded_session(1000)
    stats = Stats()
    stats.add(events)
    reads = [e for e in events if e.kind is EventKind.SYSCALL and e.name == "read"]
    assert stats.probes["read"] == len(reads)
    assert stats.errors["openat ENOENT"] == sum(1 for e in events if e.name == "openat" and e.errno == 2)
    hist = stats.latency["read"]
    assert hist.count == len(reads) and sum(hist.buckets.values()) == len(reads)
    assert hist.max_ns == max(e.duration_ns for e in reads)
    assert log2_bucket(0) == 0 and log2_bucket(1023) == 9 and log2_bucket(1024) == 10
    assert sum(stats.rate_series()) == len(events)


def test_process_tree_from_forks_execs_and_exits():
    table = ProcessTable()
    table.add(recorded_session(600))
    root = table.nodes[ROOT_PID]
    assert table.roots == [ROOT_PID] and root.children[:3] == [ROOT_PID + 1, ROOT_PID + 2, ROOT_PID + 3]
    gzip = table.nodes[ROOT_PID + 3]
    assert gzip.comm == "gzip" and gzip.argv == ("gzip", "-1", "/tmp/demo.out") and gzip.exit_status == 0
    assert any(table.nodes[c].exit_status == 1 for c in root.children)  # a worker whose data file is missing


def test_kmsg_records_become_log_lines():
    assert kmsg_record_to_line(b"4,812,812114210,-;WARNING: CPU: 1 PID: 4242 at x.c:1 f+0x1/0x2\n") == \
        "[  812.114210] WARNING: CPU: 1 PID: 4242 at x.c:1 f+0x1/0x2"
    assert kmsg_record_to_line(b"not a record") is None


def test_save_jsonl_and_chrome_round_trip(tmp_path):
    events = recorded_session(300)
    n = save(str(tmp_path / "out.jsonl"), events, {0: "syscall:openat"})
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert n == len(events) == len(lines)
    first_err = next(json.loads(line) for line in lines if '"errno"' in line)
    assert first_err["errno"] == "ENOENT" and first_err["ret_text"].startswith("-1 ENOENT")  # the jsonl schema
    with_stack = next(json.loads(line) for line in lines if '"stack"' in line)
    assert any(f["reliable"] is False for f in with_stack["stack"])
    save(str(tmp_path / "out.json"), events, {})
    trace = json.loads((tmp_path / "out.json").read_text())
    slices = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len(trace["traceEvents"]) == len(events)
    assert slices and all(e["dur"] > 0 for e in slices)
    assert not list(tmp_path.glob("*.unitrace-tmp-*"))


# ---- the app, through the pilot ---------------------------------------------------------------------


@pilot_test
async def test_log_shows_every_event_and_follows_the_newest():
    app = _app(recorded_session(800))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        src = app.session.source
        log = app.main.log_view
        assert len(app.session.store.events) == src.delivered > 0
        assert log.length == src.delivered and log.follow
        assert log.cursor == log.length - 1
        assert log.scroll_y == log.max_scroll_y > 0


@pilot_test
async def test_selecting_a_row_shows_its_fields_and_marked_stack():
    app = _app(recorded_session(400))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        store = app.session.store
        target = next(r for r in range(len(store)) if store.row(r).stack)
        log = app.main.log_view
        await pilot.press("home")
        assert log.cursor == 0 and not log.follow
        for _ in range(target):
            await pilot.press("down")
        await pilot.pause()
        body = screen_text(app.screen.query_one("#detail-body"))
        ev = store.row(target)
        assert ev.args[0] in body and "user stack" in body and LEGEND in body
        unreliable = [f for f in ev.stack if not f.reliable]
        assert f"? {unreliable[0].symbol}+0x{unreliable[0].offset:x}" in body
        assert "demo/demo.c:" in body


@pilot_test
async def test_pause_keeps_counting_and_resume_shows_everything():
    src = ManualSource()
    app = UnitraceApp(src, clock=lambda: 0.0)
    events = recorded_session(300)
    async with app.run_test(size=SIZE) as pilot:
        src.push(events[:100])
        await settle(pilot, app, expect=100)
        await pilot.press("space")
        assert app.session.paused
        src.push(events[100:250])
        await wait_until(pilot, lambda: app.session.pump.pending == 0, "the pushed events were not drained")
        await wait_for_frames(pilot, app)
        await idle(pilot)
        log = app.main.log_view
        assert len(app.session.store.events) == 250 and app.session.stats.events == 250
        assert log.length == 100
        status = screen_text(app.screen.query_one("#status"))
        assert "PAUSED +150 new" in status and "250 events" in status
        await pilot.press("space")
        await idle(pilot)
        assert log.length == 250 and not app.session.paused


@pilot_test
async def test_choosing_a_process_filters_the_log():
    app = _app(recorded_session(600))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("t")
        tree = app.screen.query_one("#proc-tree")
        await pilot.press("down", "down")  # root -> demo [4242] -> its first child
        pid = tree.cursor_node.data
        assert pid == ROOT_PID + 1
        await pilot.press("enter")
        await idle(pilot)
        store = app.session.store
        assert app.screen is app.main and len(store) > 0
        assert {store.row(r).pid for r in range(len(store))} == {pid}
        await pilot.press("c")
        assert len(store) == len(store.events)


@pilot_test
async def test_search_finds_next_and_previous():
    app = _app(recorded_session(600))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        store = app.session.store
        hits = [r for r in range(len(store)) if "enoent" in search_text(store.row(r)).lower()]
        assert len(hits) >= 3
        await pilot.press("home", "slash")
        await pilot.press(*"ENOENT", "enter")
        log = app.main.log_view
        assert log.cursor == hits[0]
        await pilot.press("n")
        assert log.cursor == hits[1]
        await pilot.press("N")
        assert log.cursor == hits[0]


@pilot_test
async def test_disabling_a_probe_stops_its_events():
    events = recorded_session(1000)
    gate = threading.Event()

    def gated():
        gate.wait(60)  # the replay starts only once the probe has been disabled through the panel
        yield from events

    src = RecordedSource(gated(), rate=None)
    src.set_enabled(1, False)
    app = UnitraceApp(src, clock=lambda: 0.0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("p")
        table = app.screen.query_one("#probes-table")
        assert table.row_count == 2
        await pilot.press("space")  # the cursor is on probe #0 (the syscalls): disable it
        assert [p.enabled for p in src.probes()] == [False, False]
        assert "off" in str(table.get_row_at(0)[1])
        gate.set()
        await settle(pilot, app)
        kept = app.session.store.events
    hits = [e for e in events if e.kind in (EventKind.SYSCALL, EventKind.CALL, EventKind.RETURN)]
    assert kept and all(e.probe == -1 for e in kept)
    assert len(kept) == len(events) - len(hits) and src.status().filtered == len(hits)


@pilot_test
async def test_every_binding_is_on_the_help_screen():
    from unitrace.tui.app import help_sections
    from unitrace.tui.help_screen import binding_rows

    app = _app(recorded_session(100))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        text = screen_text(app.screen.query_one("#help-table"))
        for _title, owner in help_sections():
            for keys, does in binding_rows(owner):
                assert does in text, (keys, does)


@pilot_test
async def test_save_writes_what_the_log_shows(tmp_path):
    app = _app(recorded_session(300))
    path = tmp_path / "view.jsonl"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("t", "down", "down", "enter")  # one process only
        await pilot.press("w")
        inp = app.screen.query_one("#save-path")
        inp.value = str(path)
        await pilot.press("enter")
        await wait_until(pilot, path.exists, "the save dialog wrote nothing")
        shown = len(app.session.store)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == shown and {r["pid"] for r in records} == {ROOT_PID + 1}


def test_dev_kmsg_feed_sees_a_new_kernel_warning_line():
    import os

    if not os.access("/dev/kmsg", os.W_OK):
        pytest.skip("/dev/kmsg is not writable here (needs root)")
    feed = DevKmsgFeed()
    assert feed.error == ""
    try:
        marker = f"unitrace-tui-test {os.getpid()}"
        with open("/dev/kmsg", "w") as kmsg:
            kmsg.write(f"<4>{marker}\n")
        lines = feed.poll()
    finally:
        feed.close()
    assert any(line.endswith(marker) for line in lines)


@pilot_test
async def test_kernel_panel_decodes_the_recorded_warning():
    app = _app(recorded_session(100))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await pilot.press("K")
        await idle(pilot)
        text = screen_text(app.screen.query_one("#kernel-reports"))
    assert "WARNING" in text and "at kernel/trace/ftrace.c:2178" in text and "task demo pid 4242" in text
    assert "? __pfx_ftrace_modify_all_code+0x10" in text and LEGEND in text


# ---- frames at awkward moments ----------------------------------------------------------------------


@pilot_test
async def test_a_frame_while_a_pushed_screen_is_not_yet_composed():
    app = _app(recorded_session(300))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        app.action_open("stats")  # pushed; composed and mounted later, by the app's message loop
        stats = app.screen
        assert stats is not app.main and not stats.is_mounted
        for _ in range(8):  # whatever the frame count, the side screen's refresh comes in one of these
            app.frame()
        await idle(pilot)
        assert stats.is_mounted
        assert "top probes" in screen_text(stats.query_one("#top-probes"))


@pilot_test
async def test_a_frame_while_the_app_takes_the_screens_down():
    # run_test's teardown (and App.exit) remove the screens' widgets while the frame timer still runs.
    # A widget of the main screen runs a frame from its own unmount, once the status bar is gone: the
    # very moment a timer tick can come at.
    import asyncio

    from textual.widget import Widget

    seen: list[str] = []

    class FrameOnUnmount(Widget):
        async def on_unmount(self) -> None:
            for _ in range(500):
                if not app.main.query("#status"):
                    break
                await asyncio.sleep(0.01)
            seen.append("status gone" if not app.main.query("#status") else "status still there")
            for _ in range(4):  # the status bar is refreshed every few frames
                app.frame()

    app = _app(recorded_session(100))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        await app.main.mount(FrameOnUnmount())
    assert seen == ["status gone"]


@pilot_test
async def test_events_that_came_while_a_side_screen_was_open_are_in_the_log_after_it():
    src = ManualSource()
    app = UnitraceApp(src, clock=lambda: 0.0)
    events = recorded_session(300)
    async with app.run_test(size=SIZE) as pilot:
        src.push(events[:100])
        await settle(pilot, app, expect=100)
        await pilot.press("s")
        await wait_until(pilot, lambda: app.screen is not app.main and app.screen.is_mounted,
                         "the statistics screen did not open")
        src.push(events[100:])
        await wait_until(pilot, lambda: app.session.pump.pending == 0, "the pushed events were not drained")
        await wait_for_frames(pilot, app)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is app.main, "the statistics screen did not close")
        await wait_for_frames(pilot, app)
        await idle(pilot)
        log = app.main.log_view
        assert log.length == len(events) and log.cursor == len(events) - 1
        assert f"view {len(events):,}" in screen_text(app.main.query_one("#status"))


def test_the_terminal_not_a_stale_environment_sizes_the_screen(monkeypatch):
    # GNU readline exports COLUMNS/LINES (80x24 without a terminal) to every process started after it;
    # Textual's driver would believe them over the terminal.
    import fcntl
    import os
    import pty
    import struct
    import termios

    from textual.drivers.linux_driver import LinuxDriver
    from unitrace.tui.terminal import terminal_size

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "24")
    master, slave = pty.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 150, 0, 0))
        assert terminal_size(None, master) in ((150, 40), None)  # the master side may not report it
        assert terminal_size(None, slave) == (150, 40)
        driver_class = _app().driver_class
        assert issubclass(driver_class, LinuxDriver)
        driver = object.__new__(driver_class)  # as the app makes it, without taking over this terminal
        driver._file, driver.fileno = None, slave
        assert driver._get_terminal_size() == (150, 40)
        with open(os.devnull, "w") as devnull:  # no terminal at all: the environment is all there is
            driver._file, driver.fileno = devnull, devnull.fileno()
            assert driver._get_terminal_size() == (80, 24)
    finally:
        os.close(master)
        os.close(slave)
