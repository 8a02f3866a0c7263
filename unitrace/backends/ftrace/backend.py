"""The ftrace backend: tracefs only, no compiler, no headers."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from unitrace.backends.base import CompiledProgram, EmitFn, TraceTarget
from unitrace.backends.ftrace.compile import compile_probes
from unitrace.backends.ftrace.formats import EventFormat, read_format
from unitrace.backends.ftrace.hist import HistFeatures
from unitrace.backends.ftrace.session import FtraceSession
from unitrace.backends.ftrace.tracefs import find_tracefs
from unitrace.model.probe import Probe, ProbePoint


def _format_lookup(system: str, event: str) -> EventFormat | None:
    root = find_tracefs()
    if root is None:
        return None
    try:
        return read_format(root, system, event)
    except OSError:
        return None


def hist_features() -> HistFeatures:
    """What this kernel's hist triggers accept (nothing, without tracefs or CONFIG_HIST_TRIGGERS)."""
    root = find_tracefs()
    if root is None:
        return HistFeatures()
    try:
        return HistFeatures.from_readme((root / "README").read_text())
    except OSError:
        return HistFeatures()


class FtraceBackend:
    name = "ftrace"
    kinds = {"syscall": compile_probes, "tracepoint": compile_probes, "user": compile_probes,
             "kernel": compile_probes}

    def unsupported_reason(self, point: ProbePoint) -> str | None:
        if point.kind == "watch":
            return "hardware watchpoints are not a tracefs feature (use the ptrace or bpf backend)"
        return None

    def compile(self, probes: Sequence[Probe], options: Mapping[str, object]) -> CompiledProgram:
        pid = options.get("pid")
        allowed = options.get("kernel_aggregates", os.environ.get("UNITRACE_FTRACE_HIST", "1") != "0")
        features = options.get("hist_features")
        plan = compile_probes(probes, _format_lookup, pid=pid if isinstance(pid, int) else None,
                              hist=features if isinstance(features, HistFeatures) else hist_features(),
                              kernel_aggregates=allowed if isinstance(allowed, bool | list | tuple | set | frozenset)
                              else True)
        residuals: dict[int, object] = {i: None for i in range(len(probes))}
        for ev in plan.events:
            if ev.residual is not None:
                residuals[ev.probe] = ev.residual
        return CompiledProgram("ftrace", tuple(probes), plan.artifacts(),
                               {"plan": plan, "residuals": residuals, "kernel_aggregates": plan.kernel_aggregates})

    def start(self, program: CompiledProgram, target: TraceTarget, emit: EmitFn,
              options: Mapping[str, object]) -> FtraceSession:
        return FtraceSession(program, target, emit, dict(options))
