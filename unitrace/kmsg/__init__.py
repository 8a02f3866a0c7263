"""Kernel log decoding: WARNING/BUG/Oops reports, ftrace_bug splats and Call Traces.

API for other parts of unitrace (the TUI's kernel panel):
  decode_text(text) -> list[Report]            decode a log held in memory
  decode_records(records) -> Iterator[Report]  decode a stream of /dev/kmsg records (the live hook)
  follow(callback) / iter_follow()             watch /dev/kmsg and report new warnings as they happen
"""

from __future__ import annotations

from unitrace.kmsg.decode import decode_text
from unitrace.kmsg.live import KmsgRecord, decode_records, follow, iter_follow, parse_record
from unitrace.kmsg.model import CallTrace, Cause, FtraceBug, RegisterDump, Report

__all__ = ["CallTrace", "Cause", "FtraceBug", "KmsgRecord", "RegisterDump", "Report", "decode_records",
           "decode_text", "follow", "iter_follow", "parse_record"]
