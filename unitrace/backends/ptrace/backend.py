"""The ptrace backend: no privileges needed; strace-exact syscall lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from unitrace.backends.base import Artifact, CompiledProgram, EmitFn, TraceTarget
from unitrace.backends.ptrace import seccomp
from unitrace.backends.ptrace.session import PtraceSession
from unitrace.model.probe import Probe, ProbePoint, SyscallTarget


def _syscalls(probes: Sequence[Probe]) -> frozenset[str]:
    names: set[str] = set()
    for probe in probes:
        for point in probe.points:
            if isinstance(point.target, SyscallTarget):
                names.update(point.target.names)
    return frozenset(names)


class PtraceBackend:
    name = "ptrace"
    kinds = {"syscall": _syscalls}

    def unsupported_reason(self, point: ProbePoint) -> str | None:
        if point.kind == "syscall":
            return None
        if point.kind in ("kernel", "tracepoint"):
            return "ptrace sees a process from outside: kernel functions and tracepoints need ftrace or bpf"
        return f"{point.kind} probes on the ptrace backend are not implemented yet (library calls and watchpoints)"

    def compile(self, probes: Sequence[Probe], options: Mapping[str, object]) -> CompiledProgram:
        from unitrace.decode.table import get_table

        table = get_table()
        wanted = options.get("syscalls")
        names = frozenset(wanted) if isinstance(wanted, frozenset | set) else _syscalls(probes)  # type: ignore[arg-type]
        if not names:  # probes not resolved to names (or none given): every syscall, as strace with no -e
            names = frozenset(table.by_name)
        every = names >= frozenset(table.by_name)
        nrs = sorted(table.by_name[n].nr for n in names if n in table.by_name)
        prog = seccomp.build(nrs)
        listing = seccomp.disassemble(prog, {nr: table.by_nr[nr].name for nr in nrs if nr in table.by_nr})
        arts = (
            Artifact("syscalls stopped at", "every syscall" if every else " ".join(sorted(names))),
            Artifact("seccomp filter (installed in the child before exec; with -f and a subset only)", listing),
        )
        data: dict[str, object] = {"syscalls": None if every else names, "seccomp_filter": seccomp.encode(prog)}
        return CompiledProgram("ptrace", tuple(probes), arts, data)

    def start(self, program: CompiledProgram, target: TraceTarget, emit: EmitFn,
              options: Mapping[str, object]) -> PtraceSession:
        return PtraceSession(program, target, emit, options)
