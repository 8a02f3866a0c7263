"""Statistics: top probes, processes and errors; a log2 latency histogram per probe; events per second."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Sparkline, Static
from unitrace.tui.columns import format_duration
from unitrace.tui.stats import Histogram, Stats

TOP = 10
BAR_WIDTH = 30


def top_table(title: str, counts: dict[str, int], total: int) -> Table:
    table = Table(title=title, title_style="bold", expand=True, show_edge=False, pad_edge=False)
    table.add_column("name", ratio=1, no_wrap=True)
    table.add_column("count", justify="right")
    table.add_column("%", justify="right")
    for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]:
        table.add_row(name, f"{n:,}", f"{100 * n / total:.1f}" if total else "-")
    if not counts:
        table.add_row(Text("none", "dim"), "", "")
    return table


def bucket_label(k: int) -> str:
    return format_duration(1 << k) if k else "0"


def histogram_text(name: str, hist: Histogram) -> Text:
    """A bpftrace-style log2 histogram with block bars, one line per bucket from the lowest used."""
    text = Text()
    text.append(f"{name}", "bold")
    avg = hist.total_ns // hist.count if hist.count else 0
    text.append(f"  n={hist.count:,}  avg={format_duration(avg)}  max={format_duration(hist.max_ns)}\n", "dim")
    lo, hi = min(hist.buckets), max(hist.buckets)
    peak = max(hist.buckets.values())
    for k in range(lo, hi + 1):
        n = hist.buckets.get(k, 0)
        cells = BAR_WIDTH * n / peak
        bar = "█" * int(cells) + (" ▏▎▍▌▋▊▉"[int((cells % 1) * 8)] if cells % 1 else "")
        text.append(f"[{bucket_label(k):>8}, {bucket_label(k + 1):>8}) ", "dim")
        text.append(f"{n:>8,} ")
        text.append(f"{bar:<{BAR_WIDTH + 1}}", "cyan")
        text.append("\n")
    return text


class StatsScreen(Screen):
    CSS_PATH = "stats_screen.tcss"
    BINDINGS = [Binding("escape,s", "app.pop_screen", "Back")]

    def __init__(self, stats: Stats) -> None:
        super().__init__()
        self.stats = stats
        self._seen = -1

    def compose(self) -> ComposeResult:
        yield Static("Statistics (all events received, whatever the filter)", id="stats-title")
        with Horizontal(id="tops"):
            yield Static(id="top-probes", classes="top")
            yield Static(id="top-processes", classes="top")
            yield Static(id="top-errors", classes="top")
        yield Static(id="rate-title")
        yield Sparkline([], id="rate")
        with VerticalScroll(id="hists"):
            yield Static(id="histograms")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_data()

    def refresh_data(self) -> None:
        s = self.stats
        if s.events == self._seen:
            return
        self._seen = s.events
        hits = sum(s.probes.values())
        self.query_one("#top-probes", Static).update(top_table("top probes", s.probes, hits))
        self.query_one("#top-processes", Static).update(top_table("top processes", s.processes, hits))
        self.query_one("#top-errors", Static).update(top_table("top errors", s.errors, sum(s.errors.values())))
        series = s.rate_series()
        peak = max(series, default=0)
        self.query_one("#rate-title", Static).update(
            Text(f"events per second of trace time (last {len(series)} s, peak {peak:,}/s)", "bold"))
        self.query_one("#rate", Sparkline).data = [float(x) for x in series] or [0.0]
        parts = [histogram_text(name, hist) for name, hist in
                 sorted(s.latency.items(), key=lambda kv: (-kv[1].count, kv[0]))]
        self.query_one("#histograms", Static).update(
            Group(Text("latency per probe (log2 buckets)", "bold underline"), *parts) if parts
            else Text("no durations yet", "dim"))
