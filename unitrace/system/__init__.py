"""Capability detection: what this machine can trace (`unitrace doctor`, the planner)."""

from unitrace.system.caps import Capability, detect

__all__ = ["Capability", "detect"]
