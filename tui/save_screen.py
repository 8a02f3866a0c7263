"""The save dialog: a path; the extension picks the format (.jsonl JSON lines, .json Chrome trace)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static
from unitrace.tui.save import FORMATS, format_for


class SaveScreen(ModalScreen[str | None]):
    CSS_PATH = "save_screen.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, count: int, default_path: str = "unitrace-events.jsonl") -> None:
        super().__init__()
        self.count = count
        self.default_path = default_path

    def compose(self) -> ComposeResult:
        with Vertical(id="save-dialog"):
            yield Static(Text(f"Save the {self.count:,} events of the log view", "bold"))
            yield Input(value=self.default_path, id="save-path")
            yield Static(id="save-format")
            yield Static(Text("enter: save   esc: cancel", "dim"))

    def on_mount(self) -> None:
        self._show_format(self.default_path)
        self.query_one(Input).focus()

    def _show_format(self, path: str) -> None:
        self.query_one("#save-format", Static).update(
            Text(f"as {FORMATS[format_for(path)]}  (.jsonl: JSON lines, .json: Chrome/Perfetto trace)"))

    def on_input_changed(self, event: Input.Changed) -> None:
        self._show_format(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
