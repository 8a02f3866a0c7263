"""How one event becomes one row of the log: the columns, their widths, and the plain text of a row
(search matches against what the user sees)."""

from __future__ import annotations

import errno as _errno
import time
from dataclasses import dataclass

from unitrace.events import Event, EventKind


def errno_name(n: int) -> str:
    return _errno.errorcode.get(abs(n), f"E{abs(n)}")


def format_time(ts_ns: int) -> str:
    """Local time of day with microseconds, as `strace -tt` prints it."""
    secs, ns = divmod(ts_ns, 1_000_000_000)
    return time.strftime("%H:%M:%S", time.localtime(secs)) + f".{ns // 1000:06d}"


def format_duration(ns: int | None) -> str:
    if ns is None:
        return ""
    if ns < 1_000_000:
        return f"{ns / 1000:.1f}µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.2f}ms"
    return f"{ns / 1_000_000_000:.3f}s"


@dataclass(frozen=True, slots=True)
class Column:
    title: str
    width: int  # 0: takes what is left


COLUMNS = (
    Column("TIME", 15),
    Column("TASK", 16),
    Column("PROBE", 16),
    Column("ARGUMENTS", 0),
    Column("RESULT", 12),
    Column("DURATION", 9),
)
MIN_ARGS_WIDTH = 10


def task_text(ev: Event) -> str:
    who = f"{ev.pid}" if ev.tid in (ev.pid, 0) else f"{ev.pid}/{ev.tid}"
    return f"{ev.comm} {who}" if ev.comm else who


def probe_text(ev: Event) -> str:
    match ev.kind:
        case EventKind.CALL:
            return f"{ev.name}()"
        case EventKind.RETURN:
            return f"{ev.name}() ret"
        case EventKind.SIGNAL:
            return "signal"
        case EventKind.EXIT:
            return "exit"
        case EventKind.EXEC:
            return "exec"
        case EventKind.FORK:
            return "fork"
        case EventKind.NOTICE:
            return "notice"
        case EventKind.LOST:
            return "LOST"
        case EventKind.SYSCALL_ENTER:
            return f"{ev.name} …"
        case EventKind.SYSCALL_RESUMED:
            return f"… {ev.name}"
    return ev.name


def args_text(ev: Event) -> str:
    match ev.kind:
        case EventKind.SIGNAL | EventKind.EXIT | EventKind.NOTICE if ev.text:
            return ev.text
        case EventKind.SIGNAL:
            return str(ev.fields.get("signal", ev.name))
        case EventKind.FORK:
            return f"child {ev.fields.get('child', '?')}"
        case EventKind.EXEC:
            argv = ev.fields.get("argv")
            shown = " ".join(str(a) for a in argv) if isinstance(argv, (list, tuple)) else ""
            return f"{ev.fields.get('filename', '')}  {shown}".rstrip()
        case EventKind.LOST:
            return f"{ev.ret} events lost" + (f" on cpu {ev.cpu}" if ev.cpu >= 0 else "")
        case EventKind.RETURN:
            return ""
    if ev.text and not ev.args:
        return ev.text
    return ", ".join(ev.args)


def result_text(ev: Event) -> str:
    if ev.kind is EventKind.EXIT:
        sig = ev.fields.get("signal")
        return f"killed {sig}" if sig else (str(ev.ret) if ev.ret is not None else "")
    if ev.errno:
        return f"-1 {errno_name(ev.errno)}"
    if ev.ret_text:
        return ev.ret_text
    return "" if ev.ret is None else str(ev.ret)


def cells(ev: Event) -> tuple[str, str, str, str, str, str]:
    return (format_time(ev.ts_ns), task_text(ev), probe_text(ev), args_text(ev), result_text(ev),
            format_duration(ev.duration_ns))


def widths(total: int) -> list[int]:
    """Column widths for a row `total` cells wide (one space between columns)."""
    fixed = sum(c.width for c in COLUMNS if c.width) + len(COLUMNS) - 1
    rest = max(MIN_ARGS_WIDTH, total - fixed)
    return [c.width or rest for c in COLUMNS]


def fit(text: str, width: int, right: bool = False) -> str:
    if len(text) > width:
        return text[: max(0, width - 1)] + "…"
    return text.rjust(width) if right else text.ljust(width)


RIGHT_ALIGNED = (False, False, False, False, False, True)


def row_text(ev: Event, total: int = 200) -> str:
    return " ".join(fit(t, w, r) for t, w, r in zip(cells(ev), widths(total), RIGHT_ALIGNED, strict=True))


def header_text(total: int) -> str:
    return " ".join(fit(c.title, w, r) for c, w, r in zip(COLUMNS, widths(total), RIGHT_ALIGNED, strict=True))


def search_text(ev: Event) -> str:
    """What a text search looks in: every cell, untruncated."""
    return " ".join(cells(ev))
