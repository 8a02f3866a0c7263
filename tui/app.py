"""The Textual application: a thin shell that owns the session, drains it at a fixed frame rate and
switches between screens. What is shown lives in the screens and widgets; what is known lives in
TuiSession."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.app import App
from textual.binding import Binding
from textual.driver import Driver
from unitrace.tui.eventlog import EventLog
from unitrace.tui.filterbar import FilterBar
from unitrace.tui.help_screen import HelpScreen
from unitrace.tui.kernel import KernelFeed
from unitrace.tui.kernel_screen import KernelLog, KernelScreen
from unitrace.tui.main_screen import MainScreen
from unitrace.tui.probes_screen import ProbesScreen
from unitrace.tui.process_screen import ProcessScreen
from unitrace.tui.save import save
from unitrace.tui.save_screen import SaveScreen
from unitrace.tui.session import TuiSession
from unitrace.tui.source import EventSource
from unitrace.tui.stats_screen import StatsScreen
from unitrace.tui.terminal import tty_sized

from unitrace.errors import UnitraceError

FPS = 30  # frames per second: how often the pump is drained and the screen refreshed
SIDE_SCREEN_EVERY = 8  # frames between refreshes of the heavier statistics / tree / kernel screens


class UnitraceApp(App):
    TITLE = "unitrace"
    CSS_PATH = ["eventlog.tcss", "detail.tcss", "statusbar.tcss", "filterbar.tcss"]
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("s", "open('stats')", "Stats"),
        Binding("t", "open('processes')", "Processes"),
        Binding("K", "open('kernel')", "Kernel"),
        Binding("p", "open('probes')", "Probes"),
        Binding("ctrl+s,w", "open('save')", "Save"),
        Binding("question_mark,f1", "open('help')", "Help"),
    ]

    def __init__(self, source: EventSource, *, kernel: KernelFeed | None = None,
                 clock: Callable[[], float] = time.monotonic, capacity: int | None = None,
                 fps: int = FPS) -> None:
        super().__init__()
        kwargs = {"capacity": capacity} if capacity else {}
        self.session = TuiSession(source, clock=clock, **kwargs)
        self.kernel_feed = kernel
        self.kernel_log = KernelLog()
        self.fps = fps
        self.frames = 0
        self.main = MainScreen(self.session)
        self._main_stale = False  # the view changed while the main screen was not shown

    def get_driver_class(self) -> type[Driver]:
        driver = super().get_driver_class()
        try:
            from textual.drivers.linux_driver import LinuxDriver
        except ImportError:  # no termios: not a terminal this module knows how to size
            return driver
        return tty_sized(driver) if driver is LinuxDriver else driver

    async def on_mount(self) -> None:
        await self.push_screen(self.main)
        self.session.start()
        self.set_interval(1 / self.fps, self.frame)

    def on_unmount(self) -> None:
        self.session.stop()
        if self.kernel_feed is not None:
            self.kernel_feed.close()

    def frame(self) -> None:
        """Drain what the tracer handed over and show it. Runs FPS times a second.

        The timer runs in its own task, so a frame can come at any point of the app's life: while a
        pushed screen is still being composed, or while the app is shutting down and removing the
        screens' widgets (run_test's teardown does that with the timers still running). Only a screen
        that is mounted, in an app that is running, is refreshed."""
        if not self.is_running:
            return
        result = self.session.frame()
        self.frames += 1
        if self.kernel_feed is not None:
            self.kernel_log.add(self.kernel_feed.poll())
        self._main_stale |= result.view_changed
        screen = self.screen
        if screen is self.main:
            if not self.main.ready:
                return
            if self._main_stale:
                self._main_stale = False
                self.main.refresh_view()
            elif self.frames % 4 == 0:
                self.main.refresh_status()  # the rate and the source's state change without events
        elif (self.frames % SIDE_SCREEN_EVERY == 0 and screen.is_mounted and screen.is_attached
              and hasattr(screen, "refresh_data")):
            screen.refresh_data()

    # ---- screens -----------------------------------------------------------------------------------

    def action_open(self, which: str) -> None:
        if self.screen is not self.main:
            if type(self.screen).__name__.lower().startswith(which[:4]):
                return
            self.pop_screen()
        match which:
            case "stats":
                self.push_screen(StatsScreen(self.session.stats))
            case "processes":
                self.push_screen(ProcessScreen(self.session.processes), self._process_chosen)
            case "kernel":
                error = getattr(self.kernel_feed, "error", "")
                self.push_screen(KernelScreen(self.kernel_log, error))
            case "probes":
                self.push_screen(ProbesScreen(self.session.source), lambda _r: self._probes_changed())
            case "save":
                self.push_screen(SaveScreen(len(self.session.visible())), self._save_chosen)
            case "help":
                self.push_screen(HelpScreen(help_sections()))

    def _process_chosen(self, pid: int | None) -> None:
        self.main.filter_process(pid)

    def _probes_changed(self) -> None:
        self.main.refresh_view()

    def _save_chosen(self, path: str | None) -> None:
        if not path:
            return
        try:
            n = save(path, self.session.visible(), self.session.probe_names())
        except UnitraceError as err:
            self.main.say(err.render())
            return
        self.main.say(f"saved {n:,} events to {path}")


def help_sections() -> list[tuple[str, type]]:
    return [
        ("everywhere", UnitraceApp),
        ("event log", MainScreen),
        ("event log", EventLog),
        ("filter bar", FilterBar),
        ("statistics", StatsScreen),
        ("processes", ProcessScreen),
        ("kernel", KernelScreen),
        ("probes", ProbesScreen),
        ("save", SaveScreen),
        ("help", HelpScreen),
    ]
