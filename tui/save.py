"""Saving what the log shows: JSON lines (one event per line) or a Chrome/Perfetto trace (`.json`).
Files are written to a temporary name and renamed, so a failed save never leaves half a file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from unitrace.errors import UnitraceError
from unitrace.events import Event, EventKind
from unitrace.sinks.jsonl import event_to_dict

FORMATS = {"jsonl": "JSON lines", "chrome": "Chrome/Perfetto trace"}


def format_for(path: str) -> str:
    return "chrome" if path.endswith(".json") else "jsonl"


def event_record(ev: Event, probe_names: dict[int, str]) -> dict[str, object]:
    """The JSON-lines schema every sink writes (unitrace.sinks.jsonl), with the probe named."""
    rec = event_to_dict(ev)
    if ev.probe >= 0:
        rec["probe"] = probe_names.get(ev.probe, ev.probe)
    return rec


def chrome_record(ev: Event) -> dict[str, object]:
    """A complete ("X") slice for events with a duration (ts is their start), an instant ("i") otherwise."""
    args: dict[str, object] = {}
    if ev.args:
        args["args"] = ", ".join(ev.args)
    if ev.ret_text or ev.ret is not None:
        args["ret"] = ev.ret_text or ev.ret
    if ev.text:
        args["text"] = ev.text
    name = ev.name or ev.kind.name.lower()
    if ev.duration_ns is not None and ev.kind is not EventKind.CALL:
        return {"name": name, "cat": ev.kind.name.lower(), "ph": "X", "pid": ev.pid, "tid": ev.tid,
                "ts": (ev.ts_ns - ev.duration_ns) / 1000 if ev.kind is EventKind.RETURN else ev.ts_ns / 1000,
                "dur": ev.duration_ns / 1000, "args": args}
    return {"name": name, "cat": ev.kind.name.lower(), "ph": "i", "s": "t", "pid": ev.pid, "tid": ev.tid,
            "ts": ev.ts_ns / 1000, "args": args}


def save(path: str, events: Iterable[Event], probe_names: dict[int, str], fmt: str | None = None) -> int:
    """Write the events to `path`; returns how many were written. Raises UnitraceError on I/O problems."""
    fmt = fmt or format_for(path)
    if fmt not in FORMATS:
        raise UnitraceError(f"unknown format {fmt!r}", hint=f"choose one of: {', '.join(FORMATS)}")
    path = os.path.expanduser(path)
    tmp = f"{path}.unitrace-tmp-{os.getpid()}"
    count = 0
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            if fmt == "jsonl":
                for ev in events:
                    out.write(json.dumps(event_record(ev, probe_names), separators=(",", ":")) + "\n")
                    count += 1
            else:
                out.write('{"displayTimeUnit":"ns","traceEvents":[\n')
                for ev in events:
                    out.write(("," if count else "") + json.dumps(chrome_record(ev), separators=(",", ":")) + "\n")
                    count += 1
                out.write("]}\n")
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise UnitraceError(f"cannot save to {path}: {exc.strerror}") from exc
    return count
