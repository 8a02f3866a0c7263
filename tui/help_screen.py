"""The help screen: every key binding of every screen, generated from the bindings themselves so it can
never fall out of date."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static


def binding_rows(owner: type) -> list[tuple[str, str]]:
    rows = []
    for b in getattr(owner, "BINDINGS", []):
        if isinstance(b, Binding):
            keys = ", ".join(_key_name(k) for k in b.key.split(","))
            rows.append((keys, b.description or b.action))
    return rows


def _key_name(key: str) -> str:
    return {"slash": "/", "question_mark": "?", "space": "space", "escape": "esc"}.get(key, key)


class HelpScreen(Screen):
    CSS_PATH = "help_screen.tcss"
    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "Back")]

    def __init__(self, sections: list[tuple[str, type]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        yield Static("Key bindings (the mouse works too: click a row, scroll, click a tab in the footer)",
                     id="help-title")
        with VerticalScroll(id="help-body"):
            yield Static(self._table(), id="help-table")
        yield Footer()

    def _table(self) -> Table:
        table = Table(show_header=True, header_style="bold", expand=True, box=None, pad_edge=False)
        table.add_column("where", style="cyan", no_wrap=True)
        table.add_column("keys", style="bold", no_wrap=True)
        table.add_column("does")
        for title, owner in self.sections:
            rows = binding_rows(owner)
            for i, (keys, does) in enumerate(rows):
                table.add_row(title if i == 0 else "", keys, does)
            if rows:
                table.add_row(Text(""), "", "")
        return table
