"""pytest plugin (entry point `pytest11`, active once unitrace is installed): performance tests that count
what code does instead of timing it.

    def test_startup_opens_few_files(unitrace_measure):
        m = unitrace_measure(["./app", "--version"], "syscall:openat")
        assert m.count("openat") <= 40, m.report()

    def test_parser_writes_once(unitrace_python):          # Python code, in a helper interpreter
        m = unitrace_python("import json; json.dump({}, open('/tmp/x', 'w'))", "syscall:write")
        assert m.count("write") == 1, m.report()

    def test_cache_hit_does_no_io(unitrace_block):         # this very process: a kernel backend, root
        with unitrace_block("syscall:openat,read") as m:
            cache.get("key")
        assert m.count("openat") == 0, m.report()

Where the code runs decides how it can be traced. ptrace cannot trace the process it runs in (a tracer
cannot stop itself), so `unitrace_measure` and `unitrace_python` run a command, or a snippet in a new
interpreter, under whichever backend the planner picks (ptrace without root). `unitrace_block` traces the
test process itself with a kernel backend (bpf by default, ftrace possible; both need root) and keeps the
events of the calling thread between two marker calls (getppid) that bracket the block, so the tracer's own
threads and pytest's work before and after do not count.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from unitrace.events import Event, EventKind

HIT_KINDS = frozenset({EventKind.SYSCALL, EventKind.SYSCALL_RESUMED, EventKind.CALL, EventKind.RETURN,
                       EventKind.TRACEPOINT, EventKind.WATCH})
MARKER = "getppid"  # a call nothing under test is likely to make, cheap, and traceable by every backend
READY_TIMEOUT_S = 60.0  # compiling a bpf program on a loaded machine can take tens of seconds


def _names(what: str) -> frozenset[str]:
    """`openat`, `syscall:openat`, `syscall:openat,read`, `user:libc:malloc` -> the event names."""
    kind, _, rest = what.partition(":")
    if not rest:
        return frozenset(what.split(","))
    if kind in ("user", "u", "uprobe", "uretprobe"):
        rest = rest.rsplit(":", 1)[-1]
    return frozenset(n.removesuffix("%return") for n in rest.split(","))


@dataclass
class Measured:
    """What a measured run did. Methods take a syscall/function name, a probe point or a comma list."""

    events: list[Event] = field(default_factory=list, repr=False)
    status: int | None = None
    what: str = ""

    def hits(self, what: str) -> list[Event]:
        names = _names(what)
        return [e for e in self.events if e.kind in HIT_KINDS and e.name in names]

    def count(self, what: str) -> int:
        return len(self.hits(what))

    def bytes(self, what: str) -> int:
        """Sum of the positive return values (bytes read or written by read/write-like calls)."""
        return sum(e.ret for e in self.hits(what) if e.ret is not None and e.ret > 0)

    def files(self, what: str) -> Counter[str]:
        from unitrace.assertions import files_of

        return Counter(f for e in self.hits(what) for f in files_of(e))

    def by_name(self) -> Counter[str]:
        return Counter(e.name for e in self.events if e.kind in HIT_KINDS)

    def report(self) -> str:
        """A failure message: what ran, every count, and the files behind them."""
        lines = [f"unitrace counted in {self.what}" + (f" (exit status {self.status})" if self.status else "")
                 + ":"]
        counts = self.by_name()
        if not counts:
            lines.append("    nothing: no event of the probes happened")
        for name, n in counts.most_common():
            files = self.files(name)
            top = ", ".join(f"{f} ({k})" for f, k in files.most_common(5))
            lines.append(f"    {n:6d}  {name}" + (f"   files: {top}" if top else ""))
        return "\n".join(lines)


def measure_command(command: Sequence[str], probes: str | Sequence[str], backend: str = "auto") -> Measured:
    """Run `command` to completion under `probes`; its own exit status is kept, not checked."""
    from unitrace.api import trace

    stream = trace(probes, command=list(command), backend=backend)
    with stream:
        events = list(stream)
    return Measured(events, stream.status, " ".join(command))


@contextmanager
def measure_block(probes: str | Sequence[str], backend: str = "bpf") -> Iterator[Measured]:
    """Trace this process with a kernel backend; the result holds the calling thread's events inside the
    with-block (filled in when the block ends)."""
    from unitrace.api import trace
    from unitrace.errors import UnitraceError

    if backend == "ptrace":
        raise UnitraceError("ptrace cannot trace the process it runs in",
                            hint="use unitrace_measure/unitrace_python (a helper process), or backend bpf/ftrace")
    wanted = [probes] if isinstance(probes, str) else list(probes)
    stream = trace([*wanted, f"syscall:{MARKER}"], pid=os.getpid(), backend=backend)
    got: list[Event] = []
    seen = threading.Condition()

    def pump() -> None:
        for ev in stream:
            with seen:
                got.append(ev)
                seen.notify_all()
        with seen:
            seen.notify_all()

    def markers() -> int:
        return sum(1 for e in got if e.name == MARKER and e.tid == me)

    def mark_and_wait(deadline: float, repeat: bool) -> int:
        """Make marker calls until one is seen; returns the index in `got` just after it."""
        with seen:
            before = markers()
        while True:
            os.getppid()
            with seen:
                seen.wait_for(lambda: markers() > before or not pump_thread.is_alive(), timeout=0.05)
                if markers() > before:
                    return max(i for i, e in enumerate(got) if e.name == MARKER and e.tid == me) + 1
            if not pump_thread.is_alive():
                stream.stop()
                list(stream)  # re-raises the session's error, if it ended with one
                raise UnitraceError("the tracing session ended before the block could be measured")
            if not repeat or time.monotonic() > deadline:
                raise UnitraceError(f"the {backend} session did not start within {READY_TIMEOUT_S:.0f} s")

    me = threading.get_native_id()
    result = Measured(what="the with-block")
    pump_thread = threading.Thread(target=pump, name="unitrace-block", daemon=True)
    with stream:
        pump_thread.start()
        mark_and_wait(time.monotonic() + READY_TIMEOUT_S, repeat=True)  # the session is live
        start = mark_and_wait(time.monotonic() + READY_TIMEOUT_S, repeat=True)  # nothing in flight before
        yield result
        end = mark_and_wait(time.monotonic() + READY_TIMEOUT_S, repeat=True) - 1
        stream.stop()
    pump_thread.join(timeout=10)
    with seen:
        result.events = [e for e in got[start:end] if e.tid == me and e.name != MARKER]


@pytest.fixture
def unitrace_measure() -> Callable[..., Measured]:
    """`unitrace_measure(command, probes, backend="auto") -> Measured`: run a command under tracing."""
    return measure_command


@pytest.fixture
def unitrace_python() -> Callable[..., Measured]:
    """`unitrace_python(code, probes, backend="auto") -> Measured`: run Python code in a helper interpreter
    (the same one pytest runs on) under tracing; counts include that interpreter's own start-up."""

    def run(code: str, probes: str | Sequence[str], backend: str = "auto") -> Measured:
        m = measure_command([sys.executable, "-c", code], probes, backend)
        m.what = f"python -c {code!r}"
        return m

    return run


@pytest.fixture
def unitrace_block() -> Callable[..., object]:
    """`with unitrace_block(probes, backend="bpf") as m:` trace this thread inside the block (root)."""
    return measure_block
