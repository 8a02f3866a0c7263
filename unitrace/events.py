"""The one event type every backend produces and every sink consumes.

Backends hand events over in batches (lists). Fields a backend cannot know stay at their defaults;
sinks never ask which backend produced an event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class EventKind(IntEnum):
    SYSCALL = 1  # a completed syscall: args, ret, duration (strace's one line)
    SYSCALL_ENTER = 2  # entry seen, exit not yet (printed as "<unfinished ...>" when interleaved)
    SYSCALL_RESUMED = 3  # the exit of an unfinished one ("<... read resumed>")
    CALL = 4  # a function/library call or kprobe entry
    RETURN = 5  # a function return (duration when the entry was seen)
    TRACEPOINT = 6  # a static tracepoint or other kernel event with named fields
    SIGNAL = 7  # signal delivered to the tracee (info in `fields`)
    EXIT = 8  # process/thread exited (ret = exit status) or was killed (fields["signal"])
    EXEC = 9  # execve completed (fields: filename, argv, old_tid)
    FORK = 10  # new child traced (fields: child)
    WATCH = 11  # hardware watchpoint hit (fields: address, old, new, ip)
    NOTICE = 12  # a message for the user ("Process 12 attached", "detached") in `text`
    LOST = 13  # the backend lost events; count in `ret`, cpu in `cpu`


@dataclass(slots=True)
class Frame:
    """One stack frame. `reliable` is False for frames that were guessed (printed with `?`)."""

    address: int
    symbol: str = ""
    offset: int = 0
    module: str = ""
    file: str = ""
    line: int = 0
    reliable: bool = True
    how: str = ""  # "cfi", "fp", "scan", "kernel"
    inlined: bool = False

    def __str__(self) -> str:
        mark = "" if self.reliable else "? "
        where = f"{self.symbol}+0x{self.offset:x}" if self.symbol else f"0x{self.address:x}"
        if self.inlined and self.symbol:
            where = f"{self.symbol} [inlined]"  # no code of its own: it lives inside the frame below it
        mod = f" ({self.module})" if self.module else ""
        src = f" at {self.file}:{self.line}" if self.file else ""
        return f"{mark}{where}{mod}{src}"


@dataclass(slots=True)
class Event:
    kind: EventKind
    ts_ns: int  # CLOCK_REALTIME ns for display; backends keep their own monotonic clocks internally
    pid: int
    tid: int
    name: str = ""  # syscall / function / tracepoint name
    probe: int = -1  # index of the Probe in the ProbeProgram (-1: not from a probe, e.g. a notice)
    cpu: int = -1
    comm: str = ""
    args: tuple[str, ...] = ()  # decoded, display-ready argument texts
    raw_args: tuple[int, ...] = ()
    ret: int | None = None
    ret_text: str = ""  # display-ready return text, e.g. "-1 ENOENT (No such file or directory)"
    errno: int = 0
    duration_ns: int | None = None
    stack: list[Frame] | None = None
    kstack: list[Frame] | None = None
    fields: dict[str, object] = field(default_factory=dict)  # named values (tracepoint fields, paths)
    text: str = ""  # for NOTICE: the message; for others: an optional pre-formatted line

    @property
    def is_error(self) -> bool:
        return self.errno != 0


@dataclass(slots=True)
class SessionStats:
    events: int = 0
    lost: int = 0  # the kernel or the transport dropped them
    dropped: int = 0  # we dropped them (a slow sink behind a bounded queue)
    filtered: int = 0  # predicate said no in user space
    lost_per_cpu: dict[int, int] = field(default_factory=dict)
