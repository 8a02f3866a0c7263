"""/dev/kmsg: records in, decoded reports out, as they happen.

Each read() of /dev/kmsg returns one record, `PRI,SEQ,TS_USEC,FLAGS[,...];MESSAGE` followed by
` KEY=VALUE` lines; non-printable bytes come escaped as `\\xNN`. A reader too slow for the ring buffer
gets EPIPE once, then continues at the oldest record still held (the skipped ones are lost and
counted). Reports are emitted when they are complete: after their `---[ end trace` plus a few lines
(old kernels print the ftrace_bug details after it), after a pause in the log, or at the end.
"""

from __future__ import annotations

import errno
import os
import re
import select
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from unitrace.errors import UnitraceError
from unitrace.kmsg.blocks import classify
from unitrace.kmsg.decode import decode_lines
from unitrace.kmsg.kallsyms import Kallsyms
from unitrace.kmsg.lines import strip_transport
from unitrace.kmsg.model import LogLine, Report

_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")
_CALLER = re.compile(r"^caller=([TC]\d+)")
TAIL_AFTER_END = 8  # lines after `---[ end trace` that may still belong to the report (old ftrace_bug)
PAUSE_USEC = 1_000_000  # a gap this long between records ends whatever report was being printed
MAX_IDLE_LINES = 200
QUIET_FORCE_SECONDS = 3.0


@dataclass(slots=True)
class KmsgRecord:
    level: int
    facility: int
    seq: int
    ts_usec: int
    message: str
    caller: str = ""
    fields: dict[str, str] = field(default_factory=dict)


def parse_record(raw: bytes | str) -> KmsgRecord | None:
    """One /dev/kmsg record; None for anything else."""
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    head, sep, rest = data.partition(b";")
    if not sep:
        return None
    parts = head.split(b",")
    try:
        pri, seq, ts = int(parts[0]), int(parts[1]), int(parts[2])
    except (ValueError, IndexError):
        return None
    caller = ""
    for extra in parts[4:]:
        m = _CALLER.match(extra.decode("ascii", "replace"))
        if m:
            caller = m.group(1)
    body, *props = rest.split(b"\n")
    message = _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), body).decode("utf-8", "replace")
    fields = {}
    for p in props:
        key, eq, value = p.strip().partition(b"=")
        if eq:
            fields[key.decode("ascii", "replace")] = value.decode("utf-8", "replace")
    return KmsgRecord(pri & 7, pri >> 3, seq, ts, message, caller, fields)


class StreamDecoder:
    """Accumulates records and hands back reports once they are complete."""

    def __init__(self, *, kallsyms: str | Kallsyms | None = None, local: bool | None = None) -> None:
        self.kallsyms = kallsyms
        self.local = local
        self.lines: list[LogLine] = []
        self.last_ts: int | None = None
        self.since_end: int | None = None  # lines seen since the last end marker
        self.open_report = False
        self.lost = 0

    def feed(self, rec: KmsgRecord) -> list[Report]:
        out: list[Report] = []
        if self.last_ts is not None and rec.ts_usec - self.last_ts > PAUSE_USEC:
            out += self.flush()
        self.last_ts = rec.ts_usec
        for part in rec.message.split("\n"):
            # a console capture (a QEMU guest's serial log) may still carry `<4>` or a timestamp
            text, _, caller = strip_transport(part)
            text = text.strip()
            self.lines.append(LogLine(text, len(self.lines) + 1, rec.ts_usec / 1e6, rec.caller or caller))
            kind = classify(text)
            if kind == "end":
                self.since_end = 0
            elif kind:
                self.open_report = True
                if self.since_end is not None and kind != "ftrace_detail":
                    self.since_end = None
                    out += self._flush_before(len(self.lines) - 1)
            elif self.since_end is not None:
                self.since_end += 1
        if self.since_end is not None and self.since_end >= TAIL_AFTER_END:
            out += self.flush()
        elif not self.open_report and len(self.lines) > MAX_IDLE_LINES:
            self.lines = self.lines[-MAX_IDLE_LINES // 2:]  # keep some context ("Freeing unused ...")
            self._renumber()
        return out

    def _flush_before(self, index: int) -> list[Report]:
        """Decode lines[:index] (a finished report), keep lines[index:] (the next one's start)."""
        head, tail = self.lines[:index], self.lines[index:]
        reports = decode_lines(head, kallsyms=self.kallsyms, local=self.local)
        self.lines = tail
        self._renumber()
        return reports

    def flush(self, *, force: bool = True) -> list[Report]:
        """Decode what is buffered. Without force, a report still missing its end stays buffered."""
        if not self.open_report:
            return []
        reports = decode_lines(self.lines, kallsyms=self.kallsyms, local=self.local)
        if not force:
            pending = next((r for r in reports if r.truncated), None)
            if pending is not None:
                keep = pending.first_line - 1
                done = [r for r in reports if r.last_line <= keep]
                self.lines = self.lines[keep:]
                self._renumber()
                return done
        self.lines = self.lines[-20:] if not reports else []
        self._renumber()
        self.since_end = None
        self.open_report = False
        return reports

    def _renumber(self) -> None:
        for i, ln in enumerate(self.lines, 1):
            ln.lineno = i


def decode_records(records: Iterable[KmsgRecord | bytes | str], *, kallsyms: str | Kallsyms | None = None,
                   local: bool | None = None) -> Iterator[Report]:
    """The hook for a live source (a QEMU guest's console, a saved /dev/kmsg dump): reports in order."""
    dec = StreamDecoder(kallsyms=kallsyms, local=local)
    for rec in records:
        parsed = rec if isinstance(rec, KmsgRecord) else parse_record(rec)
        if parsed is not None:
            yield from dec.feed(parsed)
    yield from dec.flush()


def open_kmsg(path: str = "/dev/kmsg", *, from_start: bool = False) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        hint = "reading the kernel log needs root (or CAP_SYSLOG) when kernel.dmesg_restrict=1" \
            if exc.errno in (errno.EPERM, errno.EACCES) else None
        raise UnitraceError(f"cannot open {path}: {exc.strerror}", hint=hint) from exc
    if not from_start:
        os.lseek(fd, 0, os.SEEK_END)  # only what happens from now on
    return fd


def iter_follow(*, path: str = "/dev/kmsg", kallsyms: str | Kallsyms | None = None,
                stop: threading.Event | None = None, idle: float = 0.5, from_start: bool = False,
                on_lost: Callable[[int], None] | None = None,
                ready: threading.Event | None = None,
                on_open: Callable[[], None] | None = None) -> Iterator[Report]:
    """Reports from the live kernel log until `stop` is set; waits at most `idle` seconds per step.
    `ready` is set (and `on_open` called) once the log is open and positioned: records written after
    that are seen."""
    fd = open_kmsg(path, from_start=from_start)
    if ready is not None:
        ready.set()
    if on_open is not None:
        on_open()
    dec = StreamDecoder(kallsyms=kallsyms, local=True)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    quiet = 0
    try:
        while stop is None or not stop.is_set():
            if not poller.poll(int(idle * 1000)):
                # the log went quiet: finished reports go out now; one still missing its end waits a
                # while longer (a busy machine can pause a printing task) before it is shown cut short
                quiet += 1
                yield from dec.flush(force=quiet * idle >= QUIET_FORCE_SECONDS)
                continue
            quiet = 0
            while True:
                try:
                    raw = os.read(fd, 16384)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno == errno.EPIPE:
                        dec.lost += 1  # overwritten before we read them; reading continues after the gap
                        if on_lost is not None:
                            on_lost(dec.lost)
                        continue
                    if exc.errno == errno.EINTR:
                        continue
                    raise UnitraceError(f"reading {path} failed: {exc.strerror}") from exc
                if not raw:
                    break
                rec = parse_record(raw)
                if rec is not None:
                    yield from dec.feed(rec)
        yield from dec.flush()
    finally:
        os.close(fd)


def follow(callback: Callable[[Report], None], **kwargs: object) -> None:
    """Call `callback` with each new report from the live kernel log until kwargs['stop'] is set."""
    for report in iter_follow(**kwargs):  # type: ignore[arg-type]
        callback(report)
