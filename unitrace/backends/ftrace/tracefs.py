"""tracefs for the ftrace backend: the helpers live in unitrace.system.tracefs (shared with doctor and the
leftover reaper); this module names the ones the backend uses."""

from __future__ import annotations

from unitrace.system.tracefs import (
    CANDIDATES,
    KernelRefusal,
    Tracefs,
    dynamic_events,
    find_tracefs,
    instances,
    parse_error_log,
)

__all__ = ["CANDIDATES", "KernelRefusal", "Tracefs", "dynamic_events", "find_tracefs", "instances",
           "parse_error_log"]
