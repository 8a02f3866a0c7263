"""The process tree of the traced command; choosing a process filters the log to it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static, Tree
from unitrace.tui.processes import ProcessTable


class ProcessScreen(Screen[int | None]):
    """Dismisses with the chosen pid, or None to show every process."""

    CSS_PATH = "process_screen.tcss"
    BINDINGS = [
        Binding("escape,t", "app.pop_screen", "Back"),
        Binding("a", "show_all", "All processes"),
    ]

    def __init__(self, table: ProcessTable) -> None:
        super().__init__()
        self.table = table
        self._version = -1

    def compose(self) -> ComposeResult:
        yield Static("Processes (enter: show only this process in the log, a: all)", id="proc-title")
        yield Tree("traced processes", id="proc-tree")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_data()
        self.query_one(Tree).focus()

    def refresh_data(self) -> None:
        if self.table.version == self._version:
            return
        self._version = self.table.version
        tree: Tree[int] = self.query_one("#proc-tree", Tree)
        selected = tree.cursor_node.data if tree.cursor_node is not None else None
        tree.clear()
        tree.root.expand()

        def add(parent, pid: int) -> None:
            node = self.table.nodes[pid]
            label = node.label() + f"  ({node.events:,} events)"
            if node.children:
                branch = parent.add(label, data=pid, expand=True)
                for child in node.children:
                    add(branch, child)
            else:
                parent.add_leaf(label, data=pid)

        for pid in self.table.roots:
            add(tree.root, pid)
        if selected is not None:
            for node in tree.root.children:
                if node.data == selected:
                    tree.move_cursor(node)

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        if event.node.data is not None:
            self.dismiss(event.node.data)

    def action_show_all(self) -> None:
        self.dismiss(None)
