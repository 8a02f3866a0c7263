"""The bar where filters (the predicate language) and searches (plain text) are typed. A filter mistake is
shown under the input with a caret at its column."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, Static
from unitrace.tui.filtering import FilterProblem

PROMPTS = {"filter": "filter ", "search": "search "}


class FilterBar(Vertical):
    BINDINGS = [Binding("escape", "cancel", "Close", show=False)]

    @dataclass
    class Submitted(Message):
        mode: str  # "filter" or "search"
        text: str

    @dataclass
    class Cancelled(Message):
        mode: str

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.mode = "filter"

    def compose(self) -> ComposeResult:
        with Horizontal(id="filter-row"):
            yield Label(PROMPTS["filter"], id="filter-prompt")
            yield Input(placeholder='comm == "demo" && errno == ENOENT', id="filter-input")
        yield Static(id="filter-error")

    def open(self, mode: str, text: str) -> None:
        self.mode = mode
        self.query_one("#filter-prompt", Label).update(PROMPTS[mode])
        inp = self.query_one("#filter-input", Input)
        inp.placeholder = ('comm == "demo" && errno == ENOENT' if mode == "filter"
                           else "text to find (n: next, N: previous)")
        inp.value = text
        inp.cursor_position = len(text)
        self.show_problem(None)
        self.remove_class("hidden")
        inp.focus()

    def close(self) -> None:
        self.add_class("hidden")

    def show_problem(self, problem: FilterProblem | None) -> None:
        out = self.query_one("#filter-error", Static)
        if problem is None:
            out.update("")
            out.add_class("hidden")
            return
        # The input's text starts after the prompt and the input's own left padding and border.
        indent = len(PROMPTS[self.mode]) + 2
        text = Text()
        marker = problem.marker(indent)
        if marker:
            text.append(marker + "\n", "bold red")
        text.append(" " * indent + f"error: {problem.message}", "red")
        if problem.col:
            text.append(f" (column {problem.col})", "red")
        if problem.hint:
            text.append("\n" + " " * indent + f"hint: {problem.hint}", "yellow")
        out.update(text)
        out.remove_class("hidden")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Submitted(self.mode, event.value.strip()))

    def action_cancel(self) -> None:
        self.close()
        self.post_message(self.Cancelled(self.mode))
