"""The planner: which backend runs each probe, or why none can.

Inputs are the probe program, what the machine can do (capabilities), what the user asked for
(`--backend`), and what is traced (a started command, PIDs, the whole system). The output is one backend per
probe, or a PlanError that says, per probe, which backends could not and why each could not.

The planner is pure: capabilities come in as `Facts`, so every decision is testable without a kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from unitrace.backends import BACKENDS, BackendMissing, load_backend
from unitrace.backends.base import TraceTarget
from unitrace.errors import PlanError
from unitrace.model.probe import Probe, ProbePoint, ProbeProgram

# Preference per probe kind under `--backend auto`: in-kernel filtering and aggregation first (cheapest per
# event), tracefs next (no compiler, no headers), ptrace last (no privileges). Watchpoints prefer ptrace:
# it programs every thread's debug registers and can read the old value.
PREFERENCE: dict[str, tuple[str, ...]] = {
    "syscall": ("bpf", "ftrace", "ptrace"),
    "kernel": ("bpf", "ftrace"),
    "tracepoint": ("bpf", "ftrace"),
    "user": ("bpf", "ftrace", "ptrace"),
    "watch": ("ptrace", "bpf"),
}


@dataclass(frozen=True, slots=True)
class Facts:
    """What the planner needs to know about the machine. `missing[cap]` holds the reason a cap is absent."""

    available: frozenset[str]
    missing: Mapping[str, str] = field(default_factory=dict)

    def has(self, cap: str) -> bool:
        return cap in self.available

    def why_not(self, cap: str) -> str:
        return self.missing.get(cap, f"{cap} is not available")


# What each backend needs from the machine, per probe kind (any kind not listed needs only the base).
BASE_NEEDS: dict[str, tuple[str, ...]] = {
    "ptrace": ("ptrace",),
    "ftrace": ("root", "tracefs"),
    "bpf": ("root", "bpf", "bcc"),
}
KIND_NEEDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("ftrace", "syscall"): ("syscall_events",),
    ("ftrace", "tracepoint"): ("tracepoints",),
    ("ftrace", "user"): ("uprobes",),
    ("ftrace", "kernel"): ("kprobes",),
    ("bpf", "kernel"): ("kprobes",),
    ("bpf", "user"): ("uprobes",),
    ("bpf", "watch"): ("perf_breakpoints",),
    ("ptrace", "watch"): ("perf_breakpoints",),
}


@dataclass(frozen=True, slots=True)
class Assignment:
    probe: Probe
    backend: str
    why: str  # one line: why this backend (shown by `compile` and the TUI's probes panel)


@dataclass(frozen=True, slots=True)
class Plan:
    assignments: tuple[Assignment, ...]

    @property
    def backends(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for a in self.assignments:
            seen.setdefault(a.backend)
        return tuple(seen)

    def probes_for(self, backend: str) -> tuple[Probe, ...]:
        return tuple(a.probe for a in self.assignments if a.backend == backend)


BackendLoader = Callable[[str], object]


def _backend_refusal(name: str, point: ProbePoint, target: TraceTarget, facts: Facts,
                     loader: BackendLoader) -> str | None:
    """None if backend `name` can run `point` here, else the reason it cannot."""
    try:
        backend = loader(name)
    except BackendMissing as exc:
        return str(exc)
    reason = backend.unsupported_reason(point)  # type: ignore[attr-defined]
    if reason:
        return reason
    for cap in BASE_NEEDS[name] + KIND_NEEDS.get((name, point.kind), ()):
        if not facts.has(cap):
            return facts.why_not(cap)
    if name == "ptrace" and target.system_wide:
        return "ptrace traces processes, not the whole system (-a)"
    return None


def plan(program: ProbeProgram, target: TraceTarget, facts: Facts, requested: str = "auto",
         loader: BackendLoader = load_backend) -> Plan:
    if requested != "auto" and requested not in BACKENDS:
        raise PlanError(f"unknown backend {requested!r}",
                        hint=f"choose one of: auto, {', '.join(BACKENDS)}")
    assignments: list[Assignment] = []
    failures: list[str] = []
    for probe in program.probes:
        chosen: str | None = None
        refusals: dict[str, str] = {}
        candidates = PREFERENCE[probe.points[0].kind] if requested == "auto" else (requested,)
        for name in candidates:
            reason = None
            for point in probe.points:
                reason = _backend_refusal(name, point, target, facts, loader)
                if reason:
                    break
            if reason is None:
                chosen = name
                break
            refusals[name] = reason
        if chosen is None:
            if requested != "auto" and requested not in PREFERENCE[probe.points[0].kind]:
                refusals = {requested: f"the {requested} backend cannot trace {probe.points[0].kind} probes"}
            lines = "\n".join(f"  {b}: {why}" for b, why in refusals.items())
            failures.append(f"{probe.span}: cannot trace {probe.name}:\n{lines}")
            continue
        skipped = "; ".join(f"{b}: {r}" for b, r in refusals.items())
        why = "requested with --backend" if requested != "auto" else (
            f"preferred for {probe.points[0].kind} probes" + (f" (skipped {skipped})" if skipped else ""))
        assignments.append(Assignment(probe, chosen, why))
    if failures:
        raise PlanError("\n".join(failures))
    return Plan(tuple(assignments))


def facts_from_system() -> Facts:
    """Capabilities of this machine, as detected by unitrace.system (cached there)."""
    from unitrace.system import detect

    caps = detect()
    available: set[str] = set()
    missing: dict[str, str] = {}
    for name, cap in caps.items():
        if cap.available:
            available.add(name)
        else:
            missing[name] = cap.reason
    return Facts(frozenset(available), missing)
