"""The event log: a Line-API view that renders only the rows on screen, so scrolling stays smooth with
millions of retained events. It shows `length` rows of the store's view; the app decides that length
(frozen while paused)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from unitrace.tui.columns import RIGHT_ALIGNED, cells, fit, header_text, widths
from unitrace.tui.store import EventStore

from unitrace.events import EventKind

_LIFECYCLE = {EventKind.EXIT, EventKind.EXEC, EventKind.FORK, EventKind.NOTICE}


class EventLog(ScrollView, can_focus=True):
    COMPONENT_CLASSES = {
        "eventlog--cursor",
        "eventlog--time",
        "eventlog--task",
        "eventlog--probe",
        "eventlog--result",
        "eventlog--duration",
        "eventlog--error",
        "eventlog--error-row",
        "eventlog--lifecycle",
        "eventlog--signal",
        "eventlog--lost",
        "eventlog--match",
    }
    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last + follow", show=False),
    ]

    @dataclass
    class Selected(Message):
        """The cursor moved to a row (None: the view is empty)."""

        row: int | None

    @dataclass
    class FollowChanged(Message):
        follow: bool

    @dataclass
    class Resized(Message):
        """The log's width changed: the column header must be laid out again."""

        width: int

    def __init__(self, store: EventStore, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.store = store
        self.length = 0  # rows shown (the app freezes this while paused)
        self.cursor: int | None = None
        self.follow = True
        self.search_row: int | None = None  # last search hit, highlighted

    # ---- state from the app ------------------------------------------------------------------------

    def set_length(self, length: int) -> None:
        """Show `length` rows of the view; in follow mode keep the newest one selected and in sight."""
        changed = length != self.length
        self.length = length
        self.virtual_size = Size(self.scrollable_content_region.width, length)
        if length == 0:
            self._move_to(None)
        elif self.follow:
            self._move_to(length - 1)
        elif self.cursor is None or self.cursor >= length:
            self._move_to(min(self.cursor or 0, length - 1))
        if changed:
            self.refresh()

    def set_follow(self, follow: bool) -> None:
        if follow != self.follow:
            self.follow = follow
            self.post_message(self.FollowChanged(follow))
        if follow and self.length:
            self._move_to(self.length - 1)

    def select_row(self, row: int | None, *, center: bool = False) -> None:
        if row is not None and self.length:
            row = max(0, min(row, self.length - 1))
            if row != self.length - 1:
                self.set_follow(False)
        self._move_to(row, center=center)

    def _move_to(self, row: int | None, *, center: bool = False) -> None:
        old = self.cursor
        self.cursor = row
        if row is not None:
            self._scroll_into_view(row, center=center)
        if old != row:
            self.refresh()
            self.post_message(self.Selected(row))

    def on_resize(self, _event: events.Resize) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, self.length)
        if self.cursor is not None:
            self._scroll_into_view(self.cursor)
        self.post_message(self.Resized(self.scrollable_content_region.width))

    # ---- keys and mouse ----------------------------------------------------------------------------

    def _scroll_into_view(self, row: int, *, center: bool = False) -> None:
        height = self.scrollable_content_region.height
        if not height:
            return  # not laid out yet; on_resize comes back here
        top = int(self.scroll_y)
        if center:
            self.scroll_to(y=max(0, row - height // 2), animate=False, immediate=True, force=True)
        elif row < top:
            self.scroll_to(y=row, animate=False, immediate=True, force=True)
        elif row >= top + height:
            self.scroll_to(y=row - height + 1, animate=False, immediate=True, force=True)

    def action_cursor(self, delta: int) -> None:
        if not self.length:
            return
        start = self.cursor if self.cursor is not None else self.length - 1
        self.select_row(start + delta)

    def action_page(self, direction: int) -> None:
        self.action_cursor(direction * max(1, self.scrollable_content_region.height - 1))

    def action_first(self) -> None:
        self.select_row(0)

    def action_last(self) -> None:
        self.set_follow(True)

    def on_click(self, event: events.Click) -> None:
        row = int(self.scroll_y) + event.y
        if 0 <= row < self.length:
            self.select_row(row)

    def on_mouse_scroll_up(self, _event: events.MouseScrollUp) -> None:
        # Scrolling back means the user wants to read: stop following.
        self.set_follow(False)

    # ---- rendering ---------------------------------------------------------------------------------

    def header(self) -> str:
        return header_text(self.scrollable_content_region.width)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        row = int(self.scroll_y) + y
        base = self.rich_style
        if row >= self.length or row >= len(self.store):
            return Strip.blank(width, base)
        ev = self.store.row(row)
        style = self.get_component_rich_style
        texts = cells(ev)
        col_styles: list[Style] = [style("eventlog--time"), style("eventlog--task"), style("eventlog--probe"),
                                   Style(), style("eventlog--result"), style("eventlog--duration")]
        row_style = Style()
        if ev.errno:
            row_style = style("eventlog--error-row")
            col_styles[4] = style("eventlog--error")
        elif ev.kind is EventKind.SIGNAL:
            row_style = style("eventlog--signal")
        elif ev.kind is EventKind.LOST:
            row_style = style("eventlog--lost")
        elif ev.kind in _LIFECYCLE:
            row_style = style("eventlog--lifecycle")
        segments: list[Segment] = []
        for i, (text, w, right) in enumerate(zip(texts, widths(width), RIGHT_ALIGNED, strict=True)):
            if i:
                segments.append(Segment(" "))
            segments.append(Segment(fit(text, w, right), col_styles[i]))
        strip = Strip(segments).adjust_cell_length(width)
        strip = strip.apply_style(base + row_style)
        if row == self.cursor:
            strip = strip.apply_style(style("eventlog--cursor"))
        elif row == self.search_row:
            strip = strip.apply_style(style("eventlog--match"))
        return strip
