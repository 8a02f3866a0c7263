"""errno numbers, names and the messages strace prints after them.

Names come from tables/errnos.json (generated from the uapi and kernel errno headers by
scripts/gen_syscall_tables.py). Messages are the C library's strerror() texts, as strace prints
them, except for the kernel-internal codes (512 and up) that no libc knows: for those strace prints
its own wording, reproduced here.
"""

from __future__ import annotations

import functools
import json
import os
from importlib import resources

# strace's texts for kernel-internal errnos that a tracer can see (signal-interrupted syscalls).
_KERNEL_MESSAGES = {
    "ERESTARTSYS": "To be restarted if SA_RESTART is set",
    "ERESTARTNOINTR": "To be restarted",
    "ERESTARTNOHAND": "To be restarted if no handler",
    "ERESTART_RESTARTBLOCK": "Interrupted by signal",
}


@functools.cache
def _rows() -> tuple[tuple[int, str, str], ...]:
    raw = json.loads(resources.files("unitrace.decode").joinpath("tables/errnos.json").read_text())
    return tuple((n, name, comment) for n, name, comment in raw["errnos"])


class _LazyMap(dict):
    """A dict filled from the generated table on first access, so importing costs nothing."""

    def __init__(self, fill) -> None:
        super().__init__()
        self._fill = fill
        self._filled = False

    def _ensure(self) -> None:
        if not self._filled:
            self._filled = True
            self.update(self._fill())

    def __getitem__(self, k):
        self._ensure()
        return super().__getitem__(k)

    def __contains__(self, k) -> bool:
        self._ensure()
        return super().__contains__(k)

    def get(self, k, default=None):
        self._ensure()
        return super().get(k, default)

    def __iter__(self):
        self._ensure()
        return super().__iter__()

    def __len__(self) -> int:
        self._ensure()
        return super().__len__()

    def items(self):
        self._ensure()
        return super().items()

    def keys(self):
        self._ensure()
        return super().keys()

    def values(self):
        self._ensure()
        return super().values()


ERRNO_NAMES: dict[int, str] = _LazyMap(lambda: {n: name for n, name, _ in _rows()})
ERRNO_BY_NAME: dict[str, int] = _LazyMap(
    lambda: {
        **{name: n for n, name, _ in _rows()},
        # aliases the table folds into their first name
        "EWOULDBLOCK": 11, "EDEADLOCK": 35, "ENOTSUP": 95,
    }
)


@functools.cache
def strerror(n: int) -> str:
    name = ERRNO_NAMES.get(n)
    if name in _KERNEL_MESSAGES:
        return _KERNEL_MESSAGES[name]
    if n >= 512:
        comment = next((c for k, _, c in _rows() if k == n), "")
        return comment or f"Unknown error {n}"
    return os.strerror(n)


@functools.cache
def errno_text(n: int) -> str:
    """`ENOENT (No such file or directory)`: what follows `= -1 ` in a strace line."""
    name = ERRNO_NAMES.get(n)
    if name is None:
        return f"{n}"
    return f"{name} ({strerror(n)})"
