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
    """A /dev/kmsg record as the line dmesg prints, `[  sec.usec] message`; None if it is not a record."""
    from unitrace.kmsg import parse_record

    rec = parse_record(record)
    if rec is None:
        return None
    return f"[{rec.ts_usec // 1_000_000:5d}.{rec.ts_usec % 1_000_000:06d}] {rec.message}"


class DevKmsgFeed:
    """Follows /dev/kmsg from its end. Unreadable (no permission, no device): `error` says why, no lines."""

    PATH = "/dev/kmsg"

    def __init__(self, path: str = PATH) -> None:
        from unitrace.errors import UnitraceError
        from unitrace.kmsg.live import open_kmsg

        self.error = ""
        self.path = path
        self._fd: int | None = None
        try:
            self._fd = open_kmsg(path)
        except UnitraceError as err:
            self.error = err.message

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
                self.error = f"reading {self.path}: {exc.strerror}"
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
