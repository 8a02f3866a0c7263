"""The Python API: `unitrace.trace(...)` yields events; `unitrace.measure(...)` counts them.

    import unitrace
    with unitrace.trace("syscall:openat", command=["cat", "/etc/hostname"]) as events:
        for ev in events:
            print(ev.name, ev.args, ev.ret)
    print(events.status)          # the command's exit status

The session runs in a background thread (ptrace requires every request to come from the thread that
attached, so the whole session lives there); events cross to the caller through a bounded queue.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from unitrace.backends.base import TraceTarget
from unitrace.events import Event, EventKind, SessionStats

_DONE = object()


class EventStream:
    """Iterable of events from a running session; `status` and `stats` are set when it has ended."""

    def __init__(self, probes: str | Sequence[str], target: TraceTarget, backend: str,
                 max_queued: int = 1 << 16) -> None:
        from unitrace.lang import parse_probe_args

        self.program = parse_probe_args([probes] if isinstance(probes, str) else list(probes))
        self.target = target
        self.backend = backend
        self.status: int | None = None
        self.stats = SessionStats()
        self._queue: queue.Queue[object] = queue.Queue(max_queued)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="unitrace-session", daemon=True)

    # the sink interface, called on the session thread
    def feed(self, batch: list[Event]) -> None:
        for ev in batch:
            while not self._stop.is_set():
                try:
                    self._queue.put(ev, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def close(self, stats: SessionStats) -> None:
        self.stats = stats

    def _run(self) -> None:
        from unitrace.runner import RunOptions, run

        try:
            self.status = run(self.program, self.target, [self], RunOptions(
                backend=self.backend, handle_signals=False,
                backend_options={"follow_forks": self.target.follow_forks}), stop_event=self._stop)
        except BaseException as exc:
            self._error = exc
        finally:
            self._queue.put(_DONE)

    def start(self) -> EventStream:
        self._thread.start()
        return self

    def __iter__(self) -> Iterator[Event]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                self._queue.put(_DONE)  # a second iteration ends at once
                if self._error is not None:
                    raise self._error
                return
            yield item  # type: ignore[misc]

    def stop(self) -> None:
        self._stop.set()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        # drain so a session blocked on a full queue can finish
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                pass
        self._thread.join()


def trace(probes: str | Sequence[str], *, command: Sequence[str] | None = None, pid: int | None = None,
          system_wide: bool = False, follow_forks: bool = True, backend: str = "auto") -> EventStream:
    """Start tracing `probes` (probe-language one-liners) on a command, a PID or the whole system."""
    target = TraceTarget(command=tuple(command or ()), pids=(pid,) if pid else (), system_wide=system_wide,
                         follow_forks=follow_forks)
    return EventStream(probes, target, backend).start()


@dataclass
class Measurement:
    """What a measured run did: events per probe name and per syscall/function, with durations."""

    status: int | None
    events: list[Event] = field(default_factory=list)
    probe_names: tuple[str, ...] = ()

    def count(self, what: str) -> int:
        """Events of a probe (`syscall:openat`, as written) or of one syscall/function name (`openat`)."""
        if what in self.probe_names:
            index = self.probe_names.index(what)
            return sum(1 for e in self.events if e.probe == index and e.kind is not EventKind.SYSCALL_ENTER)
        name = what.split(":")[-1]
        return sum(1 for e in self.events if e.name == name and e.kind in (EventKind.SYSCALL, EventKind.CALL))

    def by_name(self) -> Counter[str]:
        return Counter(e.name for e in self.events if e.kind in (EventKind.SYSCALL, EventKind.CALL))

    def report(self) -> str:
        lines = [f"{n:>8}  {name}" for name, n in self.by_name().most_common()]
        return "counted:\n" + "\n".join(lines) + f"\nexit status: {self.status}"


def measure(command: Sequence[str], probes: str | Sequence[str], *, backend: str = "auto") -> Measurement:
    """Run `command` to completion under `probes` and return what was counted."""
    stream = trace(probes, command=command, backend=backend)
    with stream:
        events = list(stream)
    return Measurement(stream.status, events, tuple(p.name for p in stream.program.probes))
