"""Raw log text -> LogLines: strip what transports added around the kernel's message.

Handles `[   12.345678]` timestamps and `[  T650]` caller ids, syslog and journal prefixes, `<4>`
priorities, raw /dev/kmsg records (`4,123,456,-;msg`), `dmesg -T` dates, mail quoting (`> `, `| `),
quoted-printable soft breaks (`=` at line end), lines wrapped by mail clients (a timestamp-less
tail after a long timestamped line), and lines printed twice (same timestamp and text).
"""

from __future__ import annotations

import re

from unitrace.kmsg.model import LogLine

_QUOTE = re.compile(r"^[ \t]*(?:[>|][ \t]?)+")
_PRIORITY = re.compile(r"^<\d{1,3}>")
_KMSG_RECORD = re.compile(r"^\d{1,3},\d+,(\d+),[^;]*;")
_SYSLOG = re.compile(
    r"^(?:[A-Z][a-z]{2}\s+\d{1,2}\s+\d\d:\d\d:\d\d"  # "Jan  5 12:00:01"
    r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)"  # ISO 8601 (rsyslog, journal -o short-iso)
    r"\s+\S+\s+kernel:\s?")
_KERNEL_TAG = re.compile(r"^kernel:\s")
_DMESG_T = re.compile(r"^\[(?:[A-Z][a-z]{2} ){2}[ \d]\d \d\d:\d\d:\d\d \d{4}\]\s?")
_TIMESTAMP = re.compile(r"^\[\s*(\d+\.\d+)\]\s?")
_CALLER = re.compile(r"^\[\s*([TC]\d+)\]\s?")
_QP_ESCAPE = re.compile(r"=([0-9A-F]{2})")

# Mail clients wrap at 72-80 columns; a kernel line that short rarely needs a wrap.
_WRAP_MIN_WIDTH = 60
_WRAP_COLUMN = 71  # a word that would have reached column 72 was moved to the next line


def strip_transport(raw: str) -> tuple[str, float | None, str]:
    text = raw.replace("\r", "")
    text = _QUOTE.sub("", text, count=1)
    ts: float | None = None
    caller = ""
    for _ in range(4):  # prefixes nest: syslog around a priority around a timestamp
        before = text
        lead = text.lstrip(" \t")
        if lead.startswith(("[", "<")) or _SYSLOG.match(lead) or _KMSG_RECORD.match(lead):
            text = lead
        m = _KMSG_RECORD.match(text)
        if m:
            ts = int(m.group(1)) / 1e6
            text = text[m.end():]
        text = _SYSLOG.sub("", text, count=1)
        text = _KERNEL_TAG.sub("", text, count=1)
        text = _PRIORITY.sub("", text, count=1)
        text = _DMESG_T.sub("", text, count=1)
        m = _TIMESTAMP.match(text)
        if m:
            ts = float(m.group(1))
            text = text[m.end():]
        m = _CALLER.match(text)
        if m:
            caller = m.group(1)
            text = text[m.end():]
        if text == before:
            break
    return text, ts, caller


def _is_quoted_printable(raw_lines: list[str]) -> bool:
    soft = sum(1 for r in raw_lines if r.rstrip("\r").endswith("=") and not r.rstrip().endswith("=="))
    escapes = sum(1 for r in raw_lines if "=3D" in r or "=20" in r)
    return soft > 0 and escapes > 0


def normalise(text: str) -> list[LogLine]:
    raw_lines = text.split("\n")
    qp = _is_quoted_printable(raw_lines)
    out: list[LogLine] = []
    pending = ""  # a quoted-printable soft-broken head waiting for its tail
    pending_meta: tuple[int, float | None, str] | None = None
    # does this log stamp its lines? (then a stamp-less line after a long one is a wrapped tail)
    stamped_doc = sum(1 for r in raw_lines if strip_transport(r)[1] is not None) * 2 >= \
        sum(1 for r in raw_lines if r.strip())
    seen: set[tuple[float, str, str]] = set()
    for lineno, raw in enumerate(raw_lines, 1):
        msg, ts, caller = strip_transport(raw)
        if qp:
            soft = msg.endswith("=")
            if pending:
                # the tail of a soft break carries its own quote prefix but no timestamp
                msg = pending + msg.lstrip(" \t") if ts is None else pending + msg
                assert pending_meta is not None
                lineno, ts, caller = pending_meta
                pending, pending_meta = "", None
            if soft:
                pending, pending_meta = msg[:-1], (lineno, ts, caller)
                continue
            msg = _QP_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), msg)
        body = msg.expandtabs(8)
        stripped = body.strip()
        indent = len(body) - len(body.lstrip(" "))
        if ts is not None:
            key = (ts, caller, stripped)
            if key in seen:
                continue  # the same record reached us twice (console and syslog, dmesg twice)
            seen.add(key)
        elif out and stripped and stamped_doc and _is_wrapped_tail(
                out[-1], raw_lines[out[-1].lineno - 1], stripped.split()[0]):
            prev = out[-1]
            prev.text = f"{prev.text} {stripped}"
            continue
        out.append(LogLine(stripped, lineno, ts, caller, indent))
    if pending and pending_meta is not None:
        out.append(LogLine(pending.strip(), pending_meta[0], pending_meta[1], pending_meta[2]))
    return out


def _is_wrapped_tail(prev: LogLine, prev_raw: str, next_word: str) -> bool:
    """A line without a timestamp, right after a long stamped one (in a log that stamps its lines)."""
    if prev.ts is None or prev.text.endswith(":") or next_word.startswith(("...", "#", "[", "<", "--")):
        return False
    width = len(prev_raw.rstrip())
    return width >= _WRAP_MIN_WIDTH or width + 1 + len(next_word) > _WRAP_COLUMN
