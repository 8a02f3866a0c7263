"""The main screen: filter bar, the event log with its header, the detail pane, the status bar."""

from __future__ import annotations

from dataclasses import replace

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static
from unitrace.tui.columns import search_text
from unitrace.tui.detail import DetailPane
from unitrace.tui.eventlog import EventLog
from unitrace.tui.filterbar import FilterBar
from unitrace.tui.filtering import FilterProblem, compile_filter
from unitrace.tui.session import TuiSession
from unitrace.tui.statusbar import StatusBar
from unitrace.tui.store import Filter

SEARCH_SLICE = 200_000  # rows one n/N press looks through, so a key is answered at once


class MainScreen(Screen):
    CSS_PATH = "main_screen.tcss"
    BINDINGS = [
        Binding("f", "open_bar('filter')", "Filter"),
        Binding("slash", "open_bar('search')", "Search"),
        Binding("n", "search(1)", "Next", show=False),
        Binding("N", "search(-1)", "Previous", show=False),
        Binding("space", "toggle_pause", "Pause"),
        Binding("F", "toggle_follow", "Follow"),
        Binding("c", "clear_filter", "Clear filter", show=False),
        Binding("d", "toggle_detail", "Detail", show=False),
    ]

    def __init__(self, session: TuiSession) -> None:
        super().__init__()
        self.session = session
        self.search = ""
        self.ready = False  # composed and mounted: the app may refresh it
        # The widgets the app refreshes every frame are kept, not looked up: a frame needs no DOM query
        # and cannot fail on one while the screen is being composed or taken down.
        self._event_log = EventLog(session.store, id="log")
        self._log_header = Static(id="log-header")
        self._status_bar = StatusBar(id="status")

    def compose(self) -> ComposeResult:
        yield Static(self.session.source.title, id="title")
        yield FilterBar(id="filterbar", classes="hidden")
        with Horizontal(id="body"):
            with Vertical(id="log-column"):
                yield self._log_header
                yield self._event_log
            yield DetailPane(id="detail")
        yield Static(id="notice", classes="hidden")
        yield self._status_bar
        yield Footer()

    def on_mount(self) -> None:
        self.log_view.focus()
        self.ready = True
        self.refresh_view()

    def on_unmount(self) -> None:
        self.ready = False

    @property
    def log_view(self) -> EventLog:
        return self._event_log

    # ---- called by the app every frame -------------------------------------------------------------

    def refresh_view(self) -> None:
        log = self.log_view
        log.set_length(self.session.shown)
        self._log_header.update(log.header() if log.size.width else "")
        self.refresh_status()

    def refresh_status(self) -> None:
        self._status_bar.show(replace(self.session.status(), follow=self.log_view.follow))

    def say(self, text: str) -> None:
        """A one-line notice above the status bar (search results, saved files, errors)."""
        notice = self.query_one("#notice", Static)
        notice.update(text)
        notice.set_class(not text, "hidden")

    # ---- selection ---------------------------------------------------------------------------------

    def on_event_log_selected(self, message: EventLog.Selected) -> None:
        detail = self.query_one("#detail", DetailPane)
        if message.row is None or message.row >= len(self.session.store):
            detail.show(None)
        else:
            detail.show(self.session.store.row(message.row), self.session.probe_names())

    def on_event_log_resized(self, _message: EventLog.Resized) -> None:
        self.refresh_view()

    def on_event_log_follow_changed(self, _message: EventLog.FollowChanged) -> None:
        self.refresh_status()

    # ---- filter and search -------------------------------------------------------------------------

    def action_open_bar(self, mode: str) -> None:
        text = self.session.store.filter.text if mode == "filter" else self.search
        self.query_one(FilterBar).open(mode, text)

    def on_filter_bar_submitted(self, message: FilterBar.Submitted) -> None:
        bar = self.query_one(FilterBar)
        if message.mode == "search":
            self.search = message.text
            bar.close()
            self.log_view.focus()
            self.action_search(1)
            return
        problem = self.apply_filter(message.text)
        if problem is not None:
            bar.show_problem(problem)
            return
        bar.close()
        self.log_view.focus()

    def on_filter_bar_cancelled(self, _message: FilterBar.Cancelled) -> None:
        self.log_view.focus()

    def apply_filter(self, text: str, pid: int | None = -1) -> FilterProblem | None:
        """Filter the log by predicate text (and keep or set the process); None when it was applied."""
        current = self.session.store.filter
        pid = current.pid if pid == -1 else pid
        pred = None
        if text:
            compiled = compile_filter(text)
            if isinstance(compiled, FilterProblem):
                return compiled
            pred = compiled
        self._refilter(Filter(text, pred, pid, current.hidden_probes))
        return None

    def filter_process(self, pid: int | None) -> None:
        current = self.session.store.filter
        self._refilter(Filter(current.text, current.predicate, pid, current.hidden_probes))
        self.say(f"showing process {pid} only (c: show all)" if pid is not None else "")

    def _refilter(self, flt: Filter) -> None:
        log = self.log_view
        keep = (self.session.store.index_of_row(log.cursor)
                if log.cursor is not None and log.cursor < len(self.session.store) else None)
        self.session.set_filter(flt)
        log.search_row = None
        log.set_length(self.session.shown)
        if keep is not None and not log.follow and len(self.session.store):
            log.select_row(self.session.store.nearest_row(keep), center=True)
        self.refresh_status()

    def action_clear_filter(self) -> None:
        self._refilter(Filter(hidden_probes=self.session.store.filter.hidden_probes))
        self.say("")

    def action_search(self, direction: int) -> None:
        if not self.search:
            self.action_open_bar("search")
            return
        log = self.log_view
        store = self.session.store
        n = log.length
        if not n:
            return
        start = log.cursor if log.cursor is not None else (n - 1 if direction > 0 else 0)
        needle = self.search.lower()
        row = start
        for _ in range(min(n, SEARCH_SLICE)):
            row = (row + direction) % n
            if needle in search_text(store.row(row)).lower():
                log.search_row = row
                log.select_row(row, center=True)
                self.say(f"/{self.search}: row {row + 1:,} of {n:,}")
                return
            if row == start:
                break
        self.say(f"/{self.search}: not found" + (f" in {SEARCH_SLICE:,} rows (n: look further)"
                                                   if n > SEARCH_SLICE else ""))
        if n > SEARCH_SLICE:
            log.select_row(row)

    # ---- pause, follow, panes ----------------------------------------------------------------------

    def action_toggle_pause(self) -> None:
        self.session.set_paused(not self.session.paused)
        self.refresh_view()

    def action_toggle_follow(self) -> None:
        self.log_view.set_follow(not self.log_view.follow)
        self.refresh_status()

    def action_toggle_detail(self) -> None:
        self.query_one("#detail", DetailPane).toggle_class("hidden")
