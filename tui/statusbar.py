"""The status bar: backends, totals, events per second, loss, drops, what the view shows."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static


@dataclass(frozen=True, slots=True)
class StatusInfo:
    backends: tuple[str, ...]
    running: bool
    events: int
    rate: float
    lost: int
    dropped: int
    filtered: int
    shown: int
    view: int
    paused: bool
    follow: bool
    scanning: float | None  # progress of a re-filter, None when done
    error: str = ""


def status_text(s: StatusInfo) -> Text:
    t = Text()
    t.append(f" {'+'.join(s.backends) or '-'} ", "bold reverse")
    t.append(" ● running " if s.running else " ■ ended ", "green" if s.running else "dim")
    t.append(f"│ {s.events:,} events │ {s.rate:,.0f}/s │ ")
    t.append(f"lost {s.lost:,}", "bold red" if s.lost else "")
    t.append(" │ ")
    t.append(f"dropped {s.dropped:,}", "bold red" if s.dropped else "")
    t.append(f" │ filtered {s.filtered:,} │ view {s.view:,}")
    if s.scanning is not None:
        t.append(f" (filtering {s.scanning:.0%})", "yellow")
    if s.paused:
        t.append(f" │ PAUSED +{max(0, s.view - s.shown):,} new", "bold black on yellow")
    elif s.follow:
        t.append(" │ FOLLOW", "bold cyan")
    if s.error:
        t.append(f" │ {s.error}", "bold red")
    return t


class StatusBar(Static):
    def show(self, info: StatusInfo) -> None:
        self.update(status_text(info))
