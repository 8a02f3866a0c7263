"""The probes panel: every probe with the backend it runs on and why; add, disable and remove while the
session runs."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static
from unitrace.tui.source import EventSource

from unitrace.errors import UnitraceError


class ProbesScreen(Screen):
    CSS_PATH = "probes_screen.tcss"
    BINDINGS = [
        Binding("escape,p", "back", "Back"),
        Binding("a", "focus_add", "Add probe"),
        Binding("space,e", "toggle", "Enable/disable"),
        Binding("delete,x", "remove", "Remove"),
    ]

    def __init__(self, source: EventSource) -> None:
        super().__init__()
        self.source = source
        self._shown: list[object] | None = None

    def compose(self) -> ComposeResult:
        yield Static("Probes (a: add, space: enable/disable, x: remove)", id="probes-title")
        yield DataTable(id="probes-table", cursor_type="row", zebra_stripes=True)
        yield Input(placeholder="add a probe: syscall:nanosleep   user:libc:malloc   syscall:openat /errno != 0/",
                    id="probe-input")
        yield Static(id="probe-message")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("#", "state", "probe", "backend", "why")
        self.refresh_data()
        table.focus()

    def refresh_data(self) -> None:
        probes = self.source.probes()
        if probes == self._shown:
            return  # redraw only on change: clearing the table would reset hover and scroll
        self._shown = list(probes)
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for info in probes:
            state = Text("on", "bold green") if info.enabled else Text("off", "dim")
            table.add_row(str(info.id), state, info.text, info.backend, info.why, key=str(info.id))
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))

    def _selected_id(self) -> int | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key
        return int(key.value) if key.value is not None else None

    def say(self, text: str, style: str = "") -> None:
        self.query_one("#probe-message", Static).update(Text(text, style))

    def action_back(self) -> None:
        if self.focused is self.query_one(Input):
            self.query_one(DataTable).focus()
            return
        self.app.pop_screen()

    def action_focus_add(self) -> None:
        self.query_one(Input).focus()

    def action_toggle(self) -> None:
        pid = self._selected_id()
        if pid is None:
            return
        info = next(p for p in self.source.probes() if p.id == pid)
        self.source.set_enabled(pid, not info.enabled)
        self.say(f"probe #{pid} {'disabled' if info.enabled else 'enabled'}")
        self.refresh_data()

    def action_remove(self) -> None:
        pid = self._selected_id()
        if pid is None:
            return
        self.source.remove_probe(pid)
        self.say(f"probe #{pid} removed")
        self.refresh_data()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        try:
            info = self.source.add_probe(text)
        except UnitraceError as err:
            self.say(err.render().removeprefix("unitrace: "), "bold red")
            return
        event.input.value = ""
        self.say(f"probe #{info.id} added: {info.text} on {info.backend} ({info.why})", "green")
        self.refresh_data()
        self.query_one(DataTable).focus()
