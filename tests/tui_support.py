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


async def settle(pilot, app, *, expect: int | None = None) -> None:
    """Wait until the recorded source has finished and every event it delivered is in the store and on
    screen (a few frames), or until `expect` events are shown."""
    session = app.session
    for _ in range(400):
        await pilot.pause(0.02)
        src = session.source
        done = (not src.status().running and session.pump.pending == 0
                and (not isinstance(src, RecordedSource) or len(session.store.events) == src.delivered))
        if expect is not None:
            done = session.shown >= expect and session.pump.pending == 0
        if done and not session.store.scanning:
            break
    else:
        raise AssertionError("the app did not take in the source's events")
    await pilot.pause(0.1)  # let the last frame render


def screen_text(static, width: int = 200) -> str:
    """The plain text a Static shows (its Rich content rendered without styles)."""
    import io

    from rich.console import Console

    console = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
    console.print(static.content)
    return console.file.getvalue()
