"""The detail pane: every field of the selected event, raw values, and its stacks with guessed frames
marked `?` and dimmed, as the kernel prints them, with a legend."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static
from unitrace.tui.columns import errno_name, format_duration, format_time, probe_text, result_text, task_text

from unitrace.events import Event, Frame

LEGEND = "? = unreliable frame: found by scanning the stack, may be a stale return address"


def _frame_text(i: int, frame: Frame) -> Text:
    text = Text()
    if frame.reliable:
        text.append(f"#{i:<2} ", "dim")
        text.append("  ")
    else:
        text.append(f"#{i:<2} ", "dim")
        text.append("? ", "bold yellow")
    where = f"{frame.symbol}+0x{frame.offset:x}" if frame.symbol else f"0x{frame.address:x}"
    text.append(where, "dim" if not frame.reliable else "bold")
    text.append(f"  0x{frame.address:x}", "dim")
    if frame.module:
        text.append(f"  ({frame.module})", "dim")
    if frame.file:
        text.append(f"  at {frame.file}:{frame.line}", "dim" if not frame.reliable else "cyan")
    if frame.how:
        text.append(f"  [{frame.how}]", "dim")
    if frame.inlined:
        text.append("  (inlined)", "dim")
    if not frame.reliable:
        text.stylize("dim")
    return text


def render_stack(title: str, frames: list[Frame]) -> list[Text]:
    lines = [Text(title, "bold underline")]
    lines.extend(_frame_text(i, f) for i, f in enumerate(frames))
    if any(not f.reliable for f in frames):
        lines.append(Text(LEGEND, "italic yellow"))
    return lines


def describe(ev: Event, probe_names: dict[int, str] | None = None) -> Group:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    rows: list[tuple[str, str | Text]] = [
        ("kind", ev.kind.name.lower()),
        ("time", f"{format_time(ev.ts_ns)}  ({ev.ts_ns} ns)"),
        ("task", f"{task_text(ev)}  pid {ev.pid} tid {ev.tid}" + (f"  cpu {ev.cpu}" if ev.cpu >= 0 else "")),
        ("event", probe_text(ev)),
    ]
    if ev.probe >= 0:
        name = (probe_names or {}).get(ev.probe, "")
        rows.append(("probe", f"#{ev.probe} {name}".rstrip()))
    for i, arg in enumerate(ev.args):
        raw = f"  raw 0x{ev.raw_args[i]:x}" if i < len(ev.raw_args) else ""
        rows.append((f"arg{i}", Text(arg) + Text(raw, "dim")))
    for i in range(len(ev.args), len(ev.raw_args)):
        rows.append((f"arg{i}", Text(f"raw 0x{ev.raw_args[i]:x}", "dim")))
    if ev.ret is not None or ev.ret_text:
        ret = Text(ev.ret_text or result_text(ev), "bold red" if ev.errno else "green")
        if ev.ret is not None:
            ret.append(f"  raw {ev.ret}", "dim")
        rows.append(("result", ret))
    if ev.errno:
        rows.append(("errno", Text(f"{ev.errno} {errno_name(ev.errno)}", "bold red")))
    if ev.duration_ns is not None:
        rows.append(("duration", f"{format_duration(ev.duration_ns)}  ({ev.duration_ns} ns)"))
    for key, value in ev.fields.items():
        rows.append((key, str(value)))
    if ev.text:
        rows.append(("text", ev.text))
    for key, value in rows:
        table.add_row(key, value)
    parts: list[object] = [table]
    if ev.stack:
        parts.append(Text(""))
        parts.extend(render_stack("user stack", ev.stack))
    if ev.kstack:
        parts.append(Text(""))
        parts.extend(render_stack("kernel stack", ev.kstack))
    return Group(*parts)  # type: ignore[arg-type]


class DetailPane(VerticalScroll):
    """Shows one event; `show(None)` says nothing is selected."""

    def compose(self):
        yield Static(id="detail-body")

    def show(self, ev: Event | None, probe_names: dict[int, str] | None = None) -> None:
        body = self.query_one("#detail-body", Static)
        if ev is None:
            body.update(Text("no event selected", "dim italic"))
        else:
            body.update(describe(ev, probe_names))
