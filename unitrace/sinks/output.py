"""Writing output files so that a crash, SIGKILL or ^C never leaves a half-written file behind.

A regular file is written to a temporary sibling (`.NAME.unitrace-PID.tmp`, O_CLOEXEC, mode 0666 less the
umask, or the mode of the file it replaces) and renamed over the target only when the run completes; on an
exception, KeyboardInterrupt included, the temporary file is removed and the target is untouched. A
SIGKILLed writer leaves only its temporary file; the next writer into the same directory removes it
(`reap_stale_temporaries`: the PID in its name no longer exists). `-` is standard output; character
devices, FIFOs and sockets (/dev/null, a pipe) are written directly, as they cannot be renamed over. A
symbolic link is followed: the file it points to is replaced, the link stays.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import sys
from collections.abc import Iterator
from typing import IO, Any

from unitrace.errors import UnitraceError

_TMP = re.compile(r"^\.(?P<name>.+)\.unitrace-(?P<pid>\d+)\.tmp$")


def temporary_name(path: str, pid: int | None = None) -> str:
    d, base = os.path.split(os.path.abspath(path))
    return os.path.join(d, f".{base}.unitrace-{os.getpid() if pid is None else pid}.tmp")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale_temporaries(directory: str) -> list[str]:
    """Remove temporary files of writers that died (the PID in the name no longer exists)."""
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = _TMP.match(name)
        if m and int(m.group("pid")) != os.getpid() and not _pid_alive(int(m.group("pid"))):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))
                removed.append(name)
    return removed


class AtomicFile:
    """An output file that appears complete or not at all: `commit()` renames it into place, `abort()`
    removes it. For callers that cannot use the `atomic_output` context manager (one file per traced
    process, opened and closed as processes come and go)."""

    def __init__(self, path: str, *, binary: bool = False) -> None:
        self.path = path
        self.direct = False
        self.tmp: str | None = None
        self.done = False
        mode = "wb" if binary else "w"
        encoding = None if binary else "utf-8"
        if path == "-":
            self.direct = True
            self.file: IO[Any] = sys.stdout.buffer if binary else sys.stdout
            return
        target = os.path.realpath(path)
        try:
            st: os.stat_result | None = os.stat(target)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise UnitraceError(f"cannot write {path}: {exc.strerror}") from None
        try:
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise UnitraceError(f"cannot write {path}: it is a directory")
            if st is not None and not stat.S_ISREG(st.st_mode):
                self.direct = True
                fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
            else:
                reap_stale_temporaries(os.path.dirname(target))
                self.target = target
                self.tmp = temporary_name(target)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.tmp)  # our own PID's leftover: a previous writer in this process died
                fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
                if st is not None:
                    os.fchmod(fd, stat.S_IMODE(st.st_mode))  # replacing a file keeps its permissions
        except OSError as exc:
            raise UnitraceError(f"cannot write {path}: {exc.strerror}") from None
        self.file = os.fdopen(fd, mode, encoding=encoding)

    def commit(self) -> None:
        if self.done:
            return
        self.done = True
        if self.path == "-":
            self.file.flush()
            return
        if self.direct:
            self.file.close()
            return
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.tmp, self.target)  # type: ignore[arg-type]
        except BaseException:
            self.abort(force=True)
            raise

    def abort(self, *, force: bool = False) -> None:
        if self.done and not force:
            return
        self.done = True
        if self.path == "-":
            with contextlib.suppress(OSError, ValueError):
                self.file.flush()
            return
        with contextlib.suppress(OSError, ValueError):
            self.file.close()
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)


@contextlib.contextmanager
def atomic_output(path: str, *, binary: bool = False) -> Iterator[Any]:
    """`with atomic_output(path) as f:` — f is a text file (bytes with binary=True) that replaces `path`
    only if the block completes."""
    out = AtomicFile(path, binary=binary)
    try:
        yield out.file
    except BaseException:
        out.abort()
        raise
    out.commit()
