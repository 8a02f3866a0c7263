"""The one interface the UI reads events through, whatever produced them: a recorded session (tests,
`--demo`) or a live session planned and started by `unitrace.runner`.

A source delivers batches from its own thread by calling `deliver`; the app hands that to the bounded
pump, so a source never waits for the screen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from unitrace.events import Event

Deliver = Callable[[list[Event]], None]


@dataclass(frozen=True, slots=True)
class ProbeInfo:
    """One probe as the probes panel shows it."""

    id: int
    text: str
    backend: str
    why: str
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class SourceStatus:
    backends: tuple[str, ...]
    running: bool
    lost: int = 0  # the kernel or the backend's transport lost them
    dropped: int = 0  # the backend dropped them (its own bounded queues)
    filtered: int = 0  # a predicate or a disabled probe said no before the UI saw them
    exit_status: int | None = None
    error: str = ""  # why the session ended early, for the status bar


class EventSource(Protocol):
    title: str  # what is traced, for the header: "demo (recorded)", "make -j4"

    def start(self, deliver: Deliver) -> None:
        """Begin delivering batches from a background thread; returns at once."""

    def stop(self) -> None:
        """Ask the session to end and wait for its thread; idempotent."""

    def status(self) -> SourceStatus: ...

    def probes(self) -> list[ProbeInfo]: ...

    def add_probe(self, text: str) -> ProbeInfo:
        """Parse, plan and start one more probe; raises UnitraceError with the reason it cannot."""

    def set_enabled(self, probe_id: int, enabled: bool) -> None: ...

    def remove_probe(self, probe_id: int) -> None: ...
