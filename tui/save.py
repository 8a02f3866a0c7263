"""Saving what the log shows: JSON lines (one event per line) or a Chrome/Perfetto trace (`.json`).
Files are written to a temporary name and renamed, so a failed save never leaves half a file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from unitrace.errors import UnitraceError
from unitrace.events import Event, EventKind, Frame

FORMATS = {"jsonl": "JSON lines", "chrome": "Chrome/Perfetto trace"}


def format_for(path: str) -> str:
    return "chrome" if path.endswith(".json") else "jsonl"


def _frame(f: Frame) -> dict[str, object]:
    out: dict[str, object] = {"address": f.address, "reliable": f.reliable}
    for key in ("symbol", "offset", "module", "file", "line", "how"):
        value = getattr(f, key)
        if value:
            out[key] = value
    return out


def event_record(ev: Event, probe_names: dict[int, str]) -> dict[str, object]:
    rec: dict[str, object] = {"ts_ns": ev.ts_ns, "kind": ev.kind.name.lower(), "pid": ev.pid, "tid": ev.tid,
                              "comm": ev.comm, "name": ev.name}
    if ev.probe >= 0:
        rec["probe"] = probe_names.get(ev.probe, ev.probe)
    if ev.cpu >= 0:
        rec["cpu"] = ev.cpu
    if ev.args:
        rec["args"] = list(ev.args)
    if ev.raw_args:
        rec["raw_args"] = list(ev.raw_args)
    if ev.ret is not None:
        rec["ret"] = ev.ret
    if ev.ret_text:
        rec["ret_text"] = ev.ret_text
    if ev.errno:
        rec["errno"] = ev.errno
    if ev.duration_ns is not None:
        rec["duration_ns"] = ev.duration_ns
    if ev.stack:
        rec["stack"] = [_frame(f) for f in ev.stack]
    if ev.kstack:
        rec["kstack"] = [_frame(f) for f in ev.kstack]
    if ev.fields:
        rec["fields"] = {k: v if isinstance(v, (int, float, str, bool, list)) else str(v)
                         for k, v in ev.fields.items()}
    if ev.text:
        rec["text"] = ev.text
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
