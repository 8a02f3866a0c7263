"""The terminal driver: Textual's own, except that the size comes from the terminal itself.

Textual's Linux driver sizes the screen with `shutil.get_terminal_size()`, which prefers the COLUMNS and
LINES environment variables over the terminal. Those are often stale: GNU readline (loaded by an
interactive Python, pdb, pytest, ...) exports its idea of the size (80x24 when it has no terminal) into
the environment of every process started after it. A `unitrace tui` started that way drew an 80x24 screen
into a larger terminal, cut the status bar and the log columns off and kept doing so after every resize.
Here the terminal answers first (TIOCGWINSZ on the driver's output, then its input); the environment is
used only when neither is a terminal."""

from __future__ import annotations

import os
from typing import Any


def terminal_size(*files: Any) -> tuple[int, int] | None:
    """(columns, lines) of the first of `files` that is a terminal reporting a size, else None."""
    for f in files:
        try:
            size = os.get_terminal_size(f if isinstance(f, int) else f.fileno())
        except (AttributeError, OSError, ValueError):
            continue
        if size.columns > 0 and size.lines > 0:
            return size.columns, size.lines
    return None


def tty_sized(driver_class: type) -> type:
    """A subclass of Textual's Linux driver `driver_class` that asks the terminal for its size."""

    class TtySizedDriver(driver_class):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if self._size is None:  # what the app assumes until the first resize event
                self._size = terminal_size(getattr(self, "_file", None), getattr(self, "fileno", None))

        def _get_terminal_size(self) -> tuple[int, int]:
            return (terminal_size(getattr(self, "_file", None), getattr(self, "fileno", None))
                    or super()._get_terminal_size())

    TtySizedDriver.__name__ = TtySizedDriver.__qualname__ = f"TtySized{driver_class.__name__}"
    return TtySizedDriver
