"""New kernel log lines for the kernel panel: recorded (the demo's) or followed live from /dev/kmsg,
starting at the end so only warnings raised while tracing are shown."""

from __future__ import annotations

import errno
import os
from typing import Protocol

from unitrace.tui.recorded import KERNEL_LOG


class KernelFeed(Protocol):
    def poll(self) -> list[str]:
        """Lines logged since the last call (never blocks)."""

    def close(self) -> None: ...


class RecordedKernelFeed:
    """The kernel log recorded with the demo session, delivered on the first poll."""

    def __init__(self, text: str = KERNEL_LOG) -> None:
        self._lines = text.splitlines()

    def poll(self) -> list[str]:
        lines, self._lines = self._lines, []
        return lines

    def close(self) -> None:
        self._lines = []


def kmsg_record_to_line(record: bytes) -> str | None:
    """`pri,seq,usec,flags[,...];message` -> `[  sec.usec] message`; None for continuation key=value lines."""
    text = record.decode("utf-8", "replace").rstrip("\n")
    if text.startswith(" "):
        return None  # dictionary lines (SUBSYSTEM=..., DEVICE=...)
    head, sep, message = text.partition(";")
    if not sep:
        return text
    fields = head.split(",")
    try:
        usec = int(fields[2])
    except (IndexError, ValueError):
        return message
    return f"[{usec // 1_000_000:5d}.{usec % 1_000_000:06d}] {message}"


class DevKmsgFeed:
    """Follows /dev/kmsg from its end. Unreadable (no permission, no device): `error` says why, no lines."""

    PATH = "/dev/kmsg"

    def __init__(self, path: str = PATH) -> None:
        self.error = ""
        self._fd: int | None = None
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            os.lseek(self._fd, 0, os.SEEK_END)
        except OSError as exc:
            self.error = f"cannot read {path}: {exc.strerror}"
            self.close()

    def poll(self) -> list[str]:
        lines: list[str] = []
        while self._fd is not None:
            try:
                record = os.read(self._fd, 8192)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    continue  # the ring buffer overwrote records we had not read; go on with the next
                self.error = f"reading {self.PATH}: {exc.strerror}"
                self.close()
                break
            if not record:
                break
            line = kmsg_record_to_line(record)
            if line is not None:
                lines.append(line)
        return lines

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
