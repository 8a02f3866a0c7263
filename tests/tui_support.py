"""Helpers for the TUI tests: a source the test feeds by hand, and waiting until the app has shown
everything a source delivered."""

from __future__ import annotations

import asyncio
import functools
import os
import time

from unitrace.tui.recorded_source import RecordedSource
from unitrace.tui.source import Deliver, ProbeInfo, SourceStatus

from unitrace.events import Event

SIZE = (150, 40)


def pilot_test(fn):
    """Run an async pilot test on its own event loop (no asyncio pytest plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


def use_utc() -> None:
    """Times are shown in local time; screens compared across machines need one zone."""
    os.environ["TZ"] = "UTC"
    time.tzset()


class ManualSource:
    """An EventSource whose batches the test pushes, as a tracer thread would."""

    title = "manual"

    def __init__(self) -> None:
        self.deliver: Deliver | None = None
        self.running = True
        self.enabled: dict[int, bool] = {0: True}

    def start(self, deliver: Deliver) -> None:
        self.deliver = deliver

    def push(self, batch: list[Event]) -> None:
        assert self.deliver is not None, "app not started"
        self.deliver(batch)

    def stop(self) -> None:
        self.running = False

    def status(self) -> SourceStatus:
        return SourceStatus(("manual",), self.running)

    def probes(self) -> list[ProbeInfo]:
        return [ProbeInfo(i, "syscall:*", "manual", "test", on) for i, on in self.enabled.items()]

    def add_probe(self, text: str) -> ProbeInfo:
        raise NotImplementedError

    def set_enabled(self, probe_id: int, enabled: bool) -> None:
        self.enabled[probe_id] = enabled

    def remove_probe(self, probe_id: int) -> None:
        del self.enabled[probe_id]


# How long a wait for the app may take before the test gives up. Generous on purpose: on a loaded CI
# machine (two cores shared with the whole suite) a frame can take a second; the tests never fail on
# how fast the app was, only on what it showed.
DEADLINE = 60.0


async def wait_until(pilot, predicate, what: str, *, timeout: float = DEADLINE) -> None:
    """Let the app run until `predicate()` is true; fail saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} (waited {timeout:.0f} s)")
        await pilot.pause(0.02)


async def wait_for_frames(pilot, app, n: int = 2) -> None:
    """Let `n` frames of the app run: whatever was in the store before is then drained and shown."""
    target = app.frames + n
    await wait_until(pilot, lambda: app.frames >= target, f"the app did not run {n} frames")


async def settle(pilot, app, *, expect: int | None = None) -> None:
    """Wait until the recorded source has finished and every event it delivered is in the store and on
    screen, or until `expect` events are shown; then until the screen has taken it in."""
    session = app.session

    def done() -> bool:
        if session.store.scanning or session.pump.pending:
            return False
        if expect is not None:
            return session.shown >= expect
        src = session.source
        return not src.status().running and (
            not isinstance(src, RecordedSource) or len(session.store.events) == src.delivered)

    await wait_until(pilot, done, "the app did not take in the source's events")
    await wait_for_frames(pilot, app)  # the frames after: the view and status bar show all of it
    await idle(pilot)


async def idle(pilot) -> None:
    """Wait until the app has handled every pending message and finished every animation."""
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


def screen_text(static, width: int = 200) -> str:
    """The plain text a Static shows (its Rich content rendered without styles)."""
    import io

    from rich.console import Console

    console = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
    console.print(static.content)
    return console.file.getvalue()
