"""Writing output files so that a crash, SIGKILL or ^C never leaves a half-written file behind.

A regular file is written to a temporary sibling (`.NAME.unitrace-PID.tmp`, O_CLOEXEC, respecting the
umask) and renamed over the target only when the run completes; on an exception the temporary file is
removed and the target is untouched. A SIGKILLed writer leaves only its temporary file, which
`reap_stale_temporaries` removes later (its PID is gone). `-` is standard output; character devices and
FIFOs (/dev/null, a pipe) are written directly.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import sys
from collections.abc import Iterator
from typing import TextIO

_TMP = re.compile(r"^\.(?P<name>.+)\.unitrace-(?P<pid>\d+)\.tmp$")


def _tmp_name(path: str) -> str:
    d, base = os.path.split(os.path.abspath(path))
    return os.path.join(d, f".{base}.unitrace-{os.getpid()}.tmp")


def reap_stale_temporaries(directory: str) -> list[str]:
    """Remove temporary files of writers that died (their PID no longer exists)."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = _TMP.match(name)
        if m and not os.path.exists(f"/proc/{m.group('pid')}"):
            try:
                os.unlink(os.path.join(directory, name))
                removed.append(name)
            except OSError:
                pass
    return removed


@contextlib.contextmanager
def atomic_output(path: str, *, binary: bool = False) -> Iterator[TextIO]:
    if path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    try:
        st = os.stat(path)
        direct = not stat.S_ISREG(st.st_mode)
    except FileNotFoundError:
        direct = False
    if direct:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            yield f  # type: ignore[misc]
        return
    directory = os.path.dirname(os.path.abspath(path))
    reap_stale_temporaries(directory)
    tmp = _tmp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    ok = False
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            yield f  # type: ignore[misc]
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        ok = True
    finally:
        if not ok:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
