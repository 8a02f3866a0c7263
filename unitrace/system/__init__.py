"""What this machine can trace (`unitrace doctor`, the planner) and the tracefs helpers every backend uses."""

from unitrace.system.caps import Capabilities, Capability, detect

__all__ = ["Capabilities", "Capability", "detect"]
