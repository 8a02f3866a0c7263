"""What /proc says about a process or thread: its status fields, thread group, tracer, state and name.

One place for these reads, because every backend needs them and each read has the same rules: opened
close-on-exec (a traced child must never inherit our descriptors), and a process that is gone answers with a
default instead of an exception (it may exit between any two of our steps).
"""

from __future__ import annotations

import os
from typing import BinaryIO


def _open(path: str) -> BinaryIO:
    return open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_CLOEXEC))


def status_fields(pid: int, *keys: str) -> dict[str, str]:
    """The named lines of /proc/PID/status (`Tgid`, `Name`, `TracerPid`, `Uid`...), their text after the
    colon; the file is read only until all of them are found. Empty when the process is gone."""
    want = {k.encode() + b":": k for k in keys}
    out: dict[str, str] = {}
    try:
        with _open(f"/proc/{pid}/status") as f:
            for line in f:
                key = want.get(line.split(b"\t", 1)[0].split(b" ", 1)[0])
                if key is not None:
                    out[key] = line.split(b":", 1)[1].strip().decode("utf-8", "replace")
                    if len(out) == len(want):
                        break
    except OSError:
        pass
    return out


def status_int(pid: int, key: str) -> int | None:
    """The first number of a status line (`Uid` gives the real uid), or None."""
    text = status_fields(pid, key).get(key)
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None


def tgid_of(tid: int) -> int:
    """The thread group (process) of a thread; the thread itself when /proc no longer knows it."""
    tgid = status_int(tid, "Tgid")
    return tgid if tgid is not None else tid


def tracer_of(pid: int) -> int:
    """The pid tracing `pid` with ptrace, 0 for none (or gone)."""
    return status_int(pid, "TracerPid") or 0


def comm_of(tid: int) -> str:
    """The thread's name (/proc/TID/comm), "" when it is gone."""
    try:
        with _open(f"/proc/{tid}/comm") as f:
            return f.read().strip().decode("utf-8", "replace")
    except OSError:
        return ""


def state_of(pid: int) -> str:
    """The one-letter state of /proc/PID/stat (`R`, `S`, `T`, `t`, `Z`...), "" when it is gone. Read after
    the last `)`: the name before it may hold spaces and parentheses."""
    try:
        with _open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(b")")[2].split()[0].decode()
    except (OSError, IndexError):
        return ""
