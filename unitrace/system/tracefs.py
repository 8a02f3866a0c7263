"""Finding, mounting, reading and writing tracefs: the one owner of these helpers for every tracefs user (the
ftrace backend, doctor, the leftover reaper, tests).

tracefs control files refuse seeks, so Python's "a" mode fails with EINVAL; every write here goes through
`os.open(O_WRONLY | O_APPEND | O_CLOEXEC)`. The kernel explains a refused write only in `error_log` (an
instance has its own), which `read_error_log` returns and `Tracefs.write` turns into a readable error with a
caret under the offending part of what was written.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path

from unitrace.errors import UnitraceError

# Where tracefs lives: its own mount point since 4.1, under debugfs before that.
CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


def _open_cloexec(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_CLOEXEC)


def tracefs_mounts(mounts_text: str) -> list[Path]:
    """Mount points of tracefs in /proc/mounts text, in the order listed (octal escapes undone)."""
    out = []
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[2] == "tracefs":
            # /proc/mounts escapes space, tab, newline and backslash as \ooo
            out.append(Path(parts[1].encode().decode("unicode_escape")))
    return out


def _proc_mounts() -> str:
    try:
        with open("/proc/mounts", encoding="utf-8", errors="replace", opener=_open_cloexec) as f:
            return f.read()
    except OSError:
        return ""


def find_tracefs() -> Path | None:
    """The tracefs mount point: a tracefs entry of /proc/mounts (the canonical one first), or None.

    The debugfs path counts too: mounting debugfs auto-mounts tracefs at /sys/kernel/debug/tracing."""
    mounts = tracefs_mounts(_proc_mounts())
    for cand in CANDIDATES:
        if Path(cand) in mounts:
            return Path(cand)
    if mounts:
        return mounts[0]
    # /proc/mounts unreadable (odd containers): trust a directory that looks like tracefs
    for cand in CANDIDATES:
        if os.path.exists(os.path.join(cand, "trace")) and os.path.isdir(os.path.join(cand, "events")):
            return Path(cand)
    return None


def _libc_mount() -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    libc = ctypes.CDLL(None, use_errno=True)
    mount = libc.mount
    mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    mount.restype = ctypes.c_int
    return mount


def mount_tracefs(target: str = CANDIDATES[0]) -> Path:
    """Mount tracefs at `target` unless it is mounted somewhere already; return where it is.

    Raises UnitraceError with the reason when it cannot (not root, no tracefs in this kernel)."""
    found = find_tracefs()
    if found is not None:
        return found
    if not os.path.isdir(target):
        raise UnitraceError(f"cannot mount tracefs: {target} does not exist (this kernel has no tracefs)",
                            hint="a kernel built with CONFIG_FTRACE")
    rc = _libc_mount(b"nodev", target.encode(), b"tracefs", 0, None)
    if rc != 0:
        err = ctypes.get_errno()
        if err == errno.EBUSY:  # mounted by someone else between our look and our mount
            found = find_tracefs()
            if found is not None:
                return found
        hint = "run as root" if err == errno.EPERM else f"mount -t tracefs nodev {target}"
        raise UnitraceError(f"cannot mount tracefs at {target}: {os.strerror(err)}", hint=hint)
    return Path(target)


def write(path: str | os.PathLike[str], text: str, *, truncate: bool = False) -> None:
    """Write `text` to a tracefs control file in one write(2); OSError as the kernel returned it.

    Appends by default (adding an event keeps the others); `truncate=True` replaces the file's content."""
    flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_TRUNC if truncate else os.O_APPEND)
    fd = os.open(path, flags)
    try:
        data = text.encode()
        written = os.write(fd, data)
        if written != len(data):  # tracefs parses each write on its own: a split write would be a different command
            raise OSError(errno.EIO, f"short write to {path}: {written} of {len(data)} bytes")
    finally:
        os.close(fd)


def read(path: str | os.PathLike[str]) -> str:
    """A whole tracefs file (they report a size of 0, so read until EOF)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")
    finally:
        os.close(fd)


def read_error_log(root: str | os.PathLike[str]) -> str:
    """The kernel's explanations of refused tracefs writes (`error_log`, 5.4+), or "" when there is none."""
    try:
        return read(Path(root) / "error_log")
    except OSError:
        return ""


def clear_error_log(root: str | os.PathLike[str]) -> None:
    """Empty `error_log` so that the next entry read back is about our own write."""
    try:
        fd = os.open(Path(root) / "error_log", os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError:
        return
    os.close(fd)


# ---- the kernel's refusals, explained ---------------------------------------------------------------------

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


def instances(root: str | os.PathLike[str], prefix: str = "") -> list[str]:
    """Names of the tracefs instances under `root` whose name starts with `prefix`, sorted."""
    try:
        return sorted(n for n in os.listdir(Path(root) / "instances") if n.startswith(prefix))
    except OSError:
        return []


def dynamic_events(root: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """(group, event) of every dynamic event (`p:GROUP/EVENT ...`, `u:...`, `r...:...` lines)."""
    try:
        text = read(Path(root) / "dynamic_events")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        head = line.split(maxsplit=1)[0] if line.strip() else ""
        _, colon, rest = head.partition(":")
        group, slash, event = rest.partition("/")
        if colon and slash:
            out.append((group, event))
    return out


class Tracefs:
    """tracefs at `root`, addressed by paths relative to it; writes that the kernel refuses raise
    UnitraceError with the kernel's own reason (from the error_log of the instance written to)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, rel: str) -> Path:
        return self.root / rel

    def read(self, rel: str) -> str:
        return read(self.root / rel)

    def write(self, rel: str, text: str, *, append: bool = False, what: str = "") -> None:
        """Write `text` to a control file (replacing its content unless `append`); on refusal raise
        UnitraceError with the kernel's reason."""
        if append:
            clear_error_log(self.root / self._error_log_dir(rel))  # so the refusal read back is ours
        try:
            write(self.root / rel, text, truncate=not append)
        except OSError as exc:
            raise self._refusal(rel, text, exc, what) from exc

    def _error_log_dir(self, rel: str) -> str:
        """The directory whose error_log explains a write to `rel`: an instance has its own."""
        parts = rel.split("/")
        if len(parts) > 2 and parts[0] == "instances" and (self.root / parts[0] / parts[1] / "error_log").exists():
            return f"instances/{parts[1]}"
        return ""

    def _refusal(self, rel: str, text: str, exc: OSError, what: str) -> UnitraceError:
        subject = what or f"{text.strip()!r} -> {rel}"
        refusal = None
        if exc.errno in (errno.EINVAL, errno.ENOENT, errno.E2BIG, errno.EEXIST):
            refusal = parse_error_log(read_error_log(self.root / self._error_log_dir(rel)))
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
