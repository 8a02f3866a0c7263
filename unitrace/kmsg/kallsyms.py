"""/proc/kallsyms for the kernel-log decoder: the one implementation lives in unitrace.symbols.kallsyms
(shared with the kernel stacks of the ftrace and bpf backends); this module keeps kmsg's names."""

from __future__ import annotations

from unitrace.symbols.kallsyms import Kallsyms, load

__all__ = ["Kallsyms", "load"]
