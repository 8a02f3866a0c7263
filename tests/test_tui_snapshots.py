"""Snapshots of every screen against the recorded session (pytest-textual-snapshot). Regenerate after an
intended change with `pytest tests/test_tui_snapshots.py --snapshot-update` and review the SVG diff."""

from __future__ import annotations

import pytest
from textual.widgets import Input
from unitrace.tui.app import UnitraceApp
from unitrace.tui.kernel import RecordedKernelFeed
from unitrace.tui.recorded import recorded_session
from unitrace.tui.recorded_source import RecordedSource

from tests.tui_support import SIZE, idle, settle, use_utc, wait_until


@pytest.fixture(autouse=True)
def _utc():
    use_utc()


def _app() -> UnitraceApp:
    return UnitraceApp(RecordedSource(recorded_session(600)), kernel=RecordedKernelFeed(), clock=lambda: 0.0)


async def _still(pilot) -> None:
    """Make what is on screen independent of how long the screenshot takes: a focused Input's cursor
    blinks every half second (on a loaded machine the screenshot may come before or after a blink), so
    it is made steady; then wait until the app has nothing left to do."""
    for inp in pilot.app.screen.query(Input):
        inp.cursor_blink = False
    await idle(pilot)


async def _settled(pilot) -> None:
    await settle(pilot, pilot.app)
    await _still(pilot)


def _keys_then(*keys: str):
    async def run_before(pilot) -> None:
        await settle(pilot, pilot.app)
        await pilot.press(*keys)
        # a pushed screen focuses its widget on mount; styles follow focus
        await wait_until(pilot, lambda: pilot.app.screen.focused is not None,
                         f"nothing has the focus after {keys}")
        await _still(pilot)

    return run_before


def test_main_screen_following(snap_compare):
    assert snap_compare(_app(), terminal_size=SIZE, run_before=_settled)


def test_main_screen_error_with_stack_selected(snap_compare):
    # home, then down to the first openat that failed (it carries a stack with scanned frames)
    app = _app()
    row = next(i for i, e in enumerate(app.session.source._route(recorded_session(600))) if e.errno and e.stack)
    assert snap_compare(app, terminal_size=SIZE, run_before=_keys_then("home", *["down"] * row))


def test_main_screen_paused(snap_compare):
    assert snap_compare(_app(), terminal_size=SIZE, run_before=_keys_then("space", "up", "up"))


def test_search_bar(snap_compare):
    assert snap_compare(_app(), terminal_size=SIZE, run_before=_keys_then("slash", *"ENOENT"))


def test_stats_screen(snap_compare):
    assert snap_compare(_app(), terminal_size=SIZE, run_before=_keys_then("s"))


def test_process_screen(snap_compare):
    assert snap_compare(_app(), terminal_size=SIZE, run_before=_keys_then("t", "down", "down"))


def test_kernel_screen(snap_compare):
    assert snap_compare(_app(), terminal_size=SIZE, run_before=_keys_then("K"))


def test_probes_screen(snap_compare):
    assert snap_compare(_app(), terminal_size=SIZE, run_before=_keys_then("p", "a", *"syscall:nanosleep"))


def test_help_screen(snap_compare):
    assert snap_compare(_app(), terminal_size=SIZE, run_before=_keys_then("question_mark"))


def test_save_dialog(snap_compare):
    assert snap_compare(_app(), terminal_size=SIZE, run_before=_keys_then("w"))
