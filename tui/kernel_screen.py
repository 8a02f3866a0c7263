"""The kernel panel: warnings the kernel logged while tracing (ftrace_bug, WARNING, Oops, BUG), decoded
by `unitrace.kmsg` when that decoder is present, else shown as logged."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static
from unitrace.tui.detail import LEGEND

from unitrace.events import Frame


class KernelLog:
    """Accumulated kernel lines and their decoded reports (re-decoded when lines arrive)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.reports: list[object] = []
        self.decoder_error = ""
        self.version = 0

    def add(self, lines: list[str]) -> None:
        if not lines:
            return
        self.lines.extend(lines)
        self.version += 1
        try:
            from unitrace.kmsg import decode_text
        except ImportError:
            self.decoder_error = "the kernel log decoder (unitrace.kmsg) is not available in this build"
            return
        self.reports = list(decode_text("\n".join(self.lines)))


def _frame_line(frame: Frame) -> Text:
    text = Text("  ")
    text.append("? " if not frame.reliable else "  ", "bold yellow")
    where = f"{frame.symbol}+0x{frame.offset:x}" if frame.symbol else f"0x{frame.address:x}"
    text.append(where, "dim" if not frame.reliable else "")
    if frame.module:
        text.append(f" [{frame.module}]", "dim")
    if frame.file:
        text.append(f" at {frame.file}:{frame.line}", "cyan")
    return text


def render_report(report: object) -> Group:
    get = lambda name, default="": getattr(report, name, default)  # noqa: E731
    parts: list[object] = []
    head = Text()
    head.append(f" {str(get('kind')).upper()} ", "bold reverse red")
    head.append(f" {get('title')}", "bold")
    parts.append(head)
    facts = []
    if get("comm") or get("pid") is not None:
        facts.append(f"task {get('comm')} pid {get('pid')}")
    if get("cpu") is not None:
        facts.append(f"cpu {get('cpu')}")
    if get("location"):
        facts.append(f"at {get('location')}")
    if get("function"):
        facts.append(f"in {get('function')}")
    if get("kernel_version"):
        facts.append(f"kernel {get('kernel_version')}")
    if facts:
        parts.append(Text("  " + ", ".join(facts), "dim"))
    ftrace = get("ftrace", None)
    if ftrace is not None:
        parts.append(Text(f"  ftrace_bug: {ftrace.variant} {ftrace.symbol} ({ftrace.bug_type or '?'})"))
    unreliable = False
    for trace in get("traces", []) or []:
        parts.append(Text(f"  {trace.header or 'Call Trace:'}", "bold"))
        for entry in trace.entries:
            if isinstance(entry, Frame):
                unreliable |= not entry.reliable
                parts.append(_frame_line(entry))
            else:
                parts.append(Text(f"    {entry}", "dim"))
    for cause in get("causes", []) or []:
        parts.append(Text(f"  likely cause ({cause.confidence}): {cause.title}", "yellow"))
    if unreliable:
        parts.append(Text("  " + LEGEND, "italic yellow"))
    parts.append(Text(""))
    return Group(*parts)  # type: ignore[arg-type]


class KernelScreen(Screen):
    CSS_PATH = "kernel_screen.tcss"
    BINDINGS = [Binding("escape,K", "app.pop_screen", "Back")]

    def __init__(self, log: KernelLog, feed_error: str = "") -> None:
        super().__init__()
        self.log_data = log
        self.feed_error = feed_error
        self._version = -1

    def compose(self) -> ComposeResult:
        yield Static("Kernel warnings logged while tracing", id="kernel-title")
        with VerticalScroll(id="kernel-body"):
            yield Static(id="kernel-reports")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_data()

    def refresh_data(self) -> None:
        log = self.log_data
        if log.version == self._version:
            return
        self._version = log.version
        parts: list[object] = []
        if self.feed_error:
            parts.append(Text(self.feed_error, "red"))
        if log.reports:
            parts.extend(render_report(r) for r in log.reports)
        elif log.lines and log.decoder_error:
            parts.append(Text(log.decoder_error, "yellow"))
            parts.append(Text("\n".join(log.lines)))
        else:
            other = f" ({len(log.lines):,} other kernel log lines)" if log.lines else ""
            parts.append(Text(f"no kernel warnings since tracing started{other}", "dim italic"))
        self.query_one("#kernel-reports", Static).update(Group(*parts))  # type: ignore[arg-type]
