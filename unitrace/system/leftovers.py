"""Kernel state left behind by unitrace: tracefs instances `unitrace*` and dynamic events in `unitrace*` groups.

Used by `doctor --cleanup` (to show what is there) and by the test suite's session-end check (nothing of
ours may remain)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from unitrace.system import tracefs

PREFIX = "unitrace"


@dataclass(frozen=True, slots=True)
class Leftover:
    kind: str  # "instance" or "event"
    name: str  # instance name, or GROUP/EVENT
    owner_pid: int | None  # the PID the name carries (unitrace-PID, unitrace_PID), if any

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


def owner_of(name: str) -> int | None:
    """`unitrace-1234`, `unitrace-doctor-1234`, `unitrace_1234_2` -> 1234; None when no PID is in the name."""
    for part in name[len(PREFIX):].replace("-", "_").split("_"):
        if part.isdigit():
            return int(part)
    return None


def parse_dynamic_events(text: str) -> list[tuple[str, str]]:
    """(group, event) of every line of `dynamic_events` (`p:GROUP/EVENT ...`, `u:...`, `r...:...`)."""
    out = []
    for line in text.splitlines():
        head = line.split(maxsplit=1)[0] if line.strip() else ""
        _, colon, rest = head.partition(":")
        group, slash, event = rest.partition("/")
        if colon and slash:
            out.append((group, event))
    return out


def find_leftovers(root: Path | None = None) -> list[Leftover]:
    """Every unitrace instance and dynamic event in tracefs now (empty when tracefs is not mounted)."""
    root = root or tracefs.find_tracefs()
    if root is None:
        return []
    found = []
    try:
        names = sorted(os.listdir(root / "instances"))
    except OSError:
        names = []
    for name in names:
        if name.startswith(PREFIX):
            found.append(Leftover("instance", name, owner_of(name)))
    try:
        dyn = tracefs.read(root / "dynamic_events")
    except OSError:
        dyn = ""
    for group, event in parse_dynamic_events(dyn):
        if group.startswith(PREFIX):
            found.append(Leftover("event", f"{group}/{event}", owner_of(group)))
    return found
