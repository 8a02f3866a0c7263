"""Finding, mounting and writing tracefs: the helpers every tracefs user (ftrace backend, doctor, tests) needs.

tracefs control files refuse seeks, so Python's "a" mode fails with EINVAL; every write here goes through
`os.open(O_WRONLY | O_APPEND | O_CLOEXEC)`. The kernel explains a refused write only in `error_log`, which
`read_error_log` returns.
"""

from __future__ import annotations

import ctypes
import errno
import os
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
