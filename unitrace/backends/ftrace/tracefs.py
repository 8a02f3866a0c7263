"""Writing to tracefs the way the kernel expects, and turning its refusals into readable errors.

tracefs control files reject seeks (Python's "a" mode fails with EINVAL) and report why a write failed only
in `error_log`. Every write here goes through os.open with O_CLOEXEC, and a refused write is reported with
the kernel's own reason and a caret under the offending part of what we wrote.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path

from unitrace.errors import UnitraceError

CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


def find_tracefs() -> Path | None:
    """Where tracefs is mounted (from /proc/mounts), or None."""
    try:
        with open("/proc/mounts", encoding="utf-8", opener=lambda p, f: os.open(p, f | os.O_CLOEXEC)) as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and parts[2] == "tracefs":
                    return Path(parts[1])
    except OSError:
        pass
    for cand in CANDIDATES:
        if os.path.exists(os.path.join(cand, "trace")):
            return Path(cand)
    return None


@dataclass(frozen=True, slots=True)
class KernelRefusal:
    reason: str
    command: str
    caret: int  # 0-based column in `command`, -1 when the log had none


_LOG_HEAD = re.compile(r"^\[\s*[\d.]+\]\s+(?P<src>[\w-]+):\s+error:\s+(?P<reason>.*)$")


def parse_error_log(text: str) -> KernelRefusal | None:
    """The last entry of tracefs `error_log` (three lines: reason, `Command: ...`, caret line)."""
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        m = _LOG_HEAD.match(lines[i])
        if not m:
            continue
        command, caret = "", -1
        if i + 1 < len(lines) and lines[i + 1].lstrip().startswith("Command:"):
            cmd_line = lines[i + 1]
            prefix = cmd_line.index("Command:") + len("Command: ")
            command = cmd_line[prefix:]
            if i + 2 < len(lines) and "^" in lines[i + 2]:
                caret = lines[i + 2].index("^") - prefix
        return KernelRefusal(m.group("reason").strip(), command, caret)
    return None


class Tracefs:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, rel: str) -> Path:
        return self.root / rel

    def read(self, rel: str) -> str:
        fd = os.open(self.root / rel, os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks = []
            while True:
                b = os.read(fd, 65536)
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks).decode("utf-8", "replace")
        finally:
            os.close(fd)

    def write(self, rel: str, text: str, *, append: bool = False, what: str = "") -> None:
        """Write `text` to a control file; on refusal raise UnitraceError with the kernel's reason."""
        flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
        if append:
            # Clear the log first so the refusal we read back is ours.
            try:
                self._clear_error_log(rel)
            except OSError:
                pass
        try:
            fd = os.open(self.root / rel, flags)
        except OSError as exc:
            raise self._refusal(rel, text, exc, what) from exc
        try:
            os.write(fd, text.encode())
        except OSError as exc:
            raise self._refusal(rel, text, exc, what) from exc
        finally:
            os.close(fd)

    def _error_log(self, rel: str) -> str:
        """The error_log the kernel explains a write to `rel` in: an instance has its own."""
        parts = rel.split("/")
        if len(parts) > 2 and parts[0] == "instances" and (self.root / parts[0] / parts[1] / "error_log").exists():
            return f"instances/{parts[1]}/error_log"
        return "error_log"

    def _clear_error_log(self, rel: str = "") -> None:
        fd = os.open(self.root / self._error_log(rel), os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        os.close(fd)

    def _refusal(self, rel: str, text: str, exc: OSError, what: str) -> UnitraceError:
        subject = what or f"{text.strip()!r} -> {rel}"
        refusal = None
        if exc.errno in (errno.EINVAL, errno.ENOENT, errno.E2BIG, errno.EEXIST):
            try:
                refusal = parse_error_log(self.read(self._error_log(rel)))
            except OSError:
                refusal = None
        if refusal is not None:
            msg = f"the kernel refused {subject}: {refusal.reason}"
            if refusal.command and refusal.caret >= 0:
                msg += f"\n  {refusal.command}\n  {' ' * refusal.caret}^"
            return UnitraceError(msg)
        hint = None
        if exc.errno == errno.EPERM:
            hint = "this kernel does not allow it (lockdown, or a feature refused for this instance)"
        elif exc.errno == errno.EBUSY:
            hint = "another tracer holds this event or file"
        return UnitraceError(f"the kernel refused {subject}: {exc.strerror}", hint=hint)
