"""Descriptor tables rebuilt from syscall events, and the `--fd-leaks` report built on them.

For every process we keep fd -> (path, close-on-exec, who opened it and with which call), updated from
open/dup/pipe/socket/fcntl/close events; a fork copies the parent's table, a thread shares its process's.
At every execve we list what the new program inherits without O_CLOEXEC and check that list against
/proc/PID/fdinfo, which is the kernel's own answer (read while the tracee is still at its exec stop when the
backend delivers the event there; otherwise some of the new program's own descriptors may show up too, and
are reported as such).

Only the event texts are needed (the decoded arguments strace prints), so this works for any backend whose
events carry them; raw register values are used when present.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TextIO

from unitrace.events import Event, EventKind, SessionStats

O_CLOEXEC = 0o2000000
_FD_ARRAY = re.compile(r"\[(-?\d+)[<,\s]?[^\],]*,\s*(-?\d+)")
_LEADING_INT = re.compile(r"\s*(-?\d+)")

# syscall -> index of the argument whose text carries the flags that may say CLOEXEC
_FLAG_ARG = {
    "open": 1, "openat": 2, "openat2": 2, "creat": -1, "dup": -1, "dup2": -1, "dup3": 2, "pipe": -1,
    "pipe2": 1, "socket": 1, "socketpair": 1, "accept": -1, "accept4": 3, "eventfd": -1, "eventfd2": 1,
    "epoll_create": -1, "epoll_create1": 0, "inotify_init": -1, "inotify_init1": 0, "signalfd": -1,
    "signalfd4": 3, "timerfd_create": 1, "memfd_create": 1, "pidfd_open": 1, "userfaultfd": 0,
    "fanotify_init": 0, "perf_event_open": 4, "open_by_handle_at": 2, "fsopen": 1, "fsmount": 1,
    "open_tree": 2, "pidfd_getfd": 2, "memfd_secret": 0, "io_uring_setup": -1, "bpf": -1,
}
# every call the tables follow, for a backend told to stop only at some syscalls
TRACKED_SYSCALLS = frozenset({*_FLAG_ARG, "close", "close_range", "fcntl", "execve", "execveat"})
_PATH_ARG = {"open": 0, "openat": 1, "openat2": 1, "creat": 0, "memfd_create": 0, "open_tree": 1}


def unquote(text: str) -> str:
    """A strace string literal ("a\\nb"...) back to text; anything else comes back unchanged."""
    if len(text) < 2 or not text.startswith('"'):
        return text
    body = text[1:text.rfind('"')] if text.rfind('"') > 0 else text[1:]
    if "\\" not in body:
        return body
    out = bytearray()
    i = 0
    simple = {"n": 10, "t": 9, "r": 13, "v": 11, "f": 12, "\\": 92, '"': 34, "a": 7, "b": 8}
    while i < len(body):
        c = body[i]
        if c != "\\" or i + 1 >= len(body):
            out += c.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = body[i + 1]
        if nxt == "x":
            out.append(int(body[i + 2:i + 4], 16))
            i += 4
        elif nxt.isdigit():
            j = i + 1
            while j < len(body) and j < i + 4 and body[j] in "01234567":
                j += 1
            out.append(int(body[i + 1:j], 8) & 0xFF)
            i = j
        else:
            out.append(simple.get(nxt, ord(nxt)))
            i += 2
    return out.decode("utf-8", "surrogateescape")


def leading_int(text: str) -> int | None:
    """3 from "3", "3</etc/passwd>" or "3<socket:[123]>"."""
    m = _LEADING_INT.match(text)
    return int(m.group(1)) if m else None


@dataclass(frozen=True, slots=True)
class FdEntry:
    fd: int
    path: str  # what we know it refers to: a path, "pipe", "socket", or "" when unknown
    cloexec: bool
    pid: int  # the process that created it
    how: str  # the syscall line that created it, e.g. `openat(AT_FDCWD, "/x", O_RDONLY) = 3`


@dataclass(slots=True)
class Leak:
    fd: int
    entry: FdEntry | None  # None: open before tracing began (known only from /proc)
    proc_path: str  # /proc/PID/fd/N at exec time ("" when it could not be read)
    verified: str  # "yes" (/proc agrees), "no: ..." (it does not), "unchecked"


@dataclass(slots=True)
class ExecReport:
    pid: int
    filename: str
    leaks: list[Leak] = field(default_factory=list)


def _line(ev: Event) -> str:
    ret = ev.ret_text or ("?" if ev.ret is None else str(ev.ret))
    return f"{ev.name}({', '.join(ev.args)}) = {ret}"


def _cloexec_in(ev: Event, index: int) -> bool:
    if index < 0:
        return False
    if index < len(ev.args) and "CLOEXEC" in ev.args[index]:
        return True
    if ev.name in ("open", "openat") and index < len(ev.raw_args):
        return bool(ev.raw_args[index] & O_CLOEXEC)
    return False


class FdTracker:
    """Per-process descriptor tables from events. `tables[pid][fd] -> FdEntry`."""

    def __init__(self) -> None:
        self.tables: dict[int, dict[int, FdEntry]] = {}
        self._forked: dict[int, dict[int, FdEntry]] = {}  # child -> copy of its parent's table at fork

    def table(self, pid: int) -> dict[int, FdEntry]:
        t = self.tables.get(pid)
        if t is None:
            t = self.tables[pid] = self._forked.pop(pid, {})
        return t

    def path_of(self, pid: int, fd: int) -> str | None:
        entry = self.tables.get(pid, {}).get(fd)
        return entry.path if entry is not None else None

    def fork(self, parent: int, child: int) -> None:
        if child != parent:
            self._forked[child] = dict(self.table(parent))

    def exec(self, pid: int) -> list[FdEntry]:
        """Drop close-on-exec descriptors; return those that survive, lowest first."""
        t = self.table(pid)
        for fd in [fd for fd, e in t.items() if e.cloexec]:
            del t[fd]
        return sorted(t.values(), key=lambda e: e.fd)

    def exit(self, pid: int) -> None:
        self.tables.pop(pid, None)
        self._forked.pop(pid, None)

    def feed(self, batch: list[Event]) -> None:
        """Follow every table through a batch (for users that only need fd -> path, such as -P)."""
        for ev in batch:
            kind = ev.kind
            if kind is EventKind.SYSCALL or kind is EventKind.SYSCALL_RESUMED:
                if ev.name in ("execve", "execveat"):
                    if ev.ret == 0:
                        self.exec(ev.pid)
                else:
                    self.syscall(ev)
            elif kind is EventKind.FORK:
                child = ev.fields.get("child")
                if isinstance(child, int) and not ev.fields.get("thread"):
                    self.fork(ev.pid, child)
            elif kind is EventKind.EXIT and ev.tid == ev.pid:
                self.exit(ev.pid)

    def syscall(self, ev: Event) -> None:
        """Update the table of ev.pid from one completed syscall."""
        if ev.ret is None or ev.errno or ev.ret < 0:
            return
        name, args, pid = ev.name, ev.args, ev.pid
        t = self.table(pid)
        ret = ev.ret
        if name == "close":
            fd = leading_int(args[0]) if args else None
            if fd is not None:
                t.pop(fd, None)
            return
        if name == "close_range":
            lo = leading_int(args[0]) if args else None
            hi = leading_int(args[1]) if len(args) > 1 else None
            hi = hi if hi is not None and hi >= 0 else 1 << 31  # ~0U prints as 4294967295 or -1
            if lo is None:
                return
            cloexec_only = len(args) > 2 and "CLOSE_RANGE_CLOEXEC" in args[2]
            for fd in [fd for fd in t if lo <= fd <= hi]:
                if cloexec_only:
                    t[fd] = replace(t[fd], cloexec=True)
                else:
                    del t[fd]
            return
        if name in ("dup", "dup2", "dup3"):
            old = leading_int(args[0]) if args else None
            src = t.get(old) if old is not None else None
            t[ret] = FdEntry(ret, src.path if src else "", name == "dup3" and _cloexec_in(ev, 2), pid, _line(ev))
            return
        if name == "fcntl" and len(args) >= 2:
            fd = leading_int(args[0])
            cmd = args[1]
            if fd is None:
                return
            if cmd.startswith("F_DUPFD"):
                src = t.get(fd)
                t[ret] = FdEntry(ret, src.path if src else "", cmd == "F_DUPFD_CLOEXEC", pid, _line(ev))
            elif cmd == "F_SETFD" and fd in t and len(args) > 2:
                t[fd] = replace(t[fd], cloexec="FD_CLOEXEC" in args[2] or args[2].strip() == "1")
            return
        if name in ("pipe", "pipe2", "socketpair"):
            arr = args[0] if name != "socketpair" else (args[3] if len(args) > 3 else "")
            m = _FD_ARRAY.search(arr)
            if m:
                cloexec = _cloexec_in(ev, _FLAG_ARG[name])
                kind = "pipe" if name.startswith("pipe") else "socket"
                for fd in (int(m.group(1)), int(m.group(2))):
                    t[fd] = FdEntry(fd, kind, cloexec, pid, _line(ev))
            return
        flag_index = _FLAG_ARG.get(name)
        if flag_index is None:
            return
        path_index = _PATH_ARG.get(name)
        if path_index is not None and path_index < len(args):
            path = unquote(args[path_index])
        elif name.startswith(("socket", "accept")):
            path = "socket"
        else:
            path = name
        cloexec = _cloexec_in(ev, flag_index)
        t[ret] = FdEntry(ret, path, cloexec, pid, _line(ev))


def _proc_fdinfo(pid: int) -> dict[int, tuple[bool, str]] | None:
    """fd -> (close-on-exec, target) as the kernel says, or None when the process is gone."""
    base = f"/proc/{pid}"
    try:
        names = os.listdir(f"{base}/fdinfo")
    except OSError:
        return None
    out: dict[int, tuple[bool, str]] = {}
    for name in names:
        fd = int(name)
        try:
            with open(f"{base}/fdinfo/{name}", encoding="ascii", errors="replace",
                      opener=lambda p, f: os.open(p, f | os.O_CLOEXEC)) as f:
                info = f.read()
            target = os.readlink(f"{base}/fd/{name}")
        except OSError:
            continue
        m = re.search(r"^flags:\s*([0-7]+)", info, re.M)
        flags = int(m.group(1), 8) if m else 0
        out[fd] = (bool(flags & O_CLOEXEC), target)
    return out


def _exe_of(pid: int) -> str:
    """The program a process runs now (at its exec stop: the new one)."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return "?"


class FdLeakSink:
    """Collects, for every execve, the inherited descriptors above 2 without O_CLOEXEC; prints the report
    at the end."""

    def __init__(self, out: TextIO, *, check_proc: bool = True) -> None:
        self.out = out
        self.tracker = FdTracker()
        self.check_proc = check_proc
        self.reports: list[ExecReport] = []
        self._exec_seen: set[int] = set()

    def feed(self, batch: list[Event]) -> None:
        tracker = self.tracker
        for ev in batch:
            kind = ev.kind
            if kind is EventKind.SYSCALL or kind is EventKind.SYSCALL_RESUMED:
                if ev.name in ("execve", "execveat"):
                    if ev.ret == 0 and ev.pid not in self._exec_seen:
                        self._on_exec(ev.pid, unquote(ev.args[0]) if ev.args else "")
                    self._exec_seen.discard(ev.pid)
                else:
                    tracker.syscall(ev)
            elif kind is EventKind.EXEC:
                filename = ev.fields.get("filename") or _exe_of(ev.pid)
                self._exec_seen.add(ev.pid)
                self._on_exec(ev.pid, str(filename))
            elif kind is EventKind.FORK:
                child = ev.fields.get("child")
                if isinstance(child, int) and not ev.fields.get("thread"):
                    tracker.fork(ev.pid, child)
            elif kind is EventKind.EXIT and ev.tid == ev.pid:
                tracker.exit(ev.pid)

    def _on_exec(self, pid: int, filename: str) -> None:
        surviving = {e.fd: e for e in self.tracker.exec(pid) if e.fd > 2}
        proc = _proc_fdinfo(pid) if self.check_proc else None
        report = ExecReport(pid, filename)
        fds: Iterable[int] = sorted(set(surviving) | ({fd for fd in proc if fd > 2} if proc else set()))
        for fd in fds:
            entry = surviving.get(fd)
            if proc is None:
                report.leaks.append(Leak(fd, entry, "", "unchecked"))
                continue
            seen = proc.get(fd)
            if seen is None:
                report.leaks.append(Leak(fd, entry, "", "no: not open in /proc after exec"))
            elif seen[0]:
                continue  # the new program already set CLOEXEC on something of its own
            elif entry is None:
                report.leaks.append(Leak(fd, None, seen[1], "yes"))
            else:
                report.leaks.append(Leak(fd, entry, seen[1], "yes"))
        self.reports.append(report)

    def render(self) -> str:
        lines = ["fd leaks: descriptors inherited across execve without O_CLOEXEC"]
        total = 0
        for rep in self.reports:
            if not rep.leaks:
                continue
            lines.append(f"  pid {rep.pid} execve(\"{rep.filename}\") inherits:")
            for leak in rep.leaks:
                total += 1
                what = leak.proc_path or (leak.entry.path if leak.entry else "?")
                if leak.entry is not None:
                    origin = f"opened by pid {leak.entry.pid} with {leak.entry.how}"
                else:
                    origin = "opened before tracing began"
                lines.append(f"    fd {leak.fd} -> {what}: {origin} [/proc: {leak.verified}]")
        lines.append(f"  {len(self.reports)} execve checked, {total} descriptor(s) inherited without O_CLOEXEC")
        return "\n".join(lines) + "\n"

    def close(self, stats: SessionStats | None = None) -> None:
        self.out.write(self.render())
        self.out.flush()
