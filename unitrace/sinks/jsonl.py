"""JSON lines: one object per event, schema version 1 (docs/json-schema.md)."""

from __future__ import annotations

import json
from typing import TextIO

from unitrace.events import Event, Frame, SessionStats

SCHEMA_VERSION = 1
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


def _frames(frames: list[Frame] | None) -> list[dict[str, object]] | None:
    if frames is None:
        return None
    return [{"addr": f"0x{f.address:x}", "sym": f.symbol, "off": f.offset, "module": f.module,
             "file": f.file, "line": f.line, "reliable": f.reliable, "how": f.how} for f in frames]


def event_to_dict(ev: Event) -> dict[str, object]:
    out: dict[str, object] = {"v": SCHEMA_VERSION, "kind": ev.kind.name.lower(), "ts": ev.ts_ns, "pid": ev.pid,
                              "tid": ev.tid, "comm": ev.comm, "name": ev.name}
    if ev.probe >= 0:
        out["probe"] = ev.probe
    if ev.cpu >= 0:
        out["cpu"] = ev.cpu
    if ev.args:
        out["args"] = list(ev.args)
    if ev.raw_args:
        out["raw_args"] = list(ev.raw_args)
    if ev.ret is not None:
        out["ret"] = ev.ret
    if ev.ret_text:
        out["ret_text"] = ev.ret_text
    if ev.errno:
        from unitrace.decode.errnos import ERRNO_NAMES

        out["errno"] = ERRNO_NAMES.get(ev.errno, ev.errno)
    if ev.duration_ns is not None:
        out["duration_ns"] = ev.duration_ns
    if ev.stack:
        out["stack"] = _frames(ev.stack)
    if ev.kstack:
        out["kstack"] = _frames(ev.kstack)
    if ev.fields:
        out["fields"] = ev.fields
    if ev.text:
        out["text"] = ev.text
    return out


class JsonLinesSink:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def feed(self, batch: list[Event]) -> None:
        self.out.write("".join(_dumps(event_to_dict(ev)) + "\n" for ev in batch))

    def close(self, stats: SessionStats) -> None:
        self.out.write(_dumps({"v": SCHEMA_VERSION, "kind": "stats", "events": stats.events, "lost": stats.lost,
                               "dropped": stats.dropped, "filtered": stats.filtered,
                               "lost_per_cpu": stats.lost_per_cpu}) + "\n")
        self.out.flush()
