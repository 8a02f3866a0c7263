"""The ptrace backend: no privileges needed; strace-exact syscall lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from unitrace.backends.base import Artifact, CompiledProgram, EmitFn, TraceTarget
from unitrace.backends.ptrace import seccomp
from unitrace.backends.ptrace.session import PtraceSession
from unitrace.model.probe import Probe, ProbePoint, Site, StackAction, SyscallTarget, UserTarget, WatchTarget


def _syscalls(probes: Sequence[Probe]) -> frozenset[str]:
    names: set[str] = set()
    for probe in probes:
        for point in probe.points:
            if isinstance(point.target, SyscallTarget):
                names.update(point.target.names)
    return frozenset(names)


def _user_specs(probes: Sequence[Probe]) -> tuple[object, ...]:
    """Breakpoint specs of the `user:` points: the binary "" is the traced program, a short name a
    library glob (`libc` matches libc.so.6), a path that file."""
    if not any(isinstance(pt.target, UserTarget) for p in probes for pt in p.points):
        return ()  # the breakpoint engine stays unimported: strace's start-up
    from unitrace.backends.ptrace.breakpoints import UserSpec

    specs = []
    for i, probe in enumerate(probes):
        for point in probe.points:
            if isinstance(point.target, UserTarget):
                binary = point.target.binary
                site = "return" if point.site is Site.RETURN else "entry"
                specs.append(UserSpec(point.target.symbol, binary, probe=i, site=site))
    return tuple(specs)


def _watch_specs(probes: Sequence[Probe]) -> tuple[object, ...]:
    """Debug-register specs of the `watch:` points, in register order (DR0 first); more than x86's four
    is an error naming the fifth point's probe."""
    if not any(isinstance(pt.target, WatchTarget) for p in probes for pt in p.points):
        return ()
    from unitrace.backends.ptrace.watchpoints import WatchSpec, check_count

    specs = []
    for i, probe in enumerate(probes):
        stack = any(isinstance(a, StackAction) and a.which in ("user", "both") for a in probe.actions)
        for point in probe.points:
            t = point.target
            if isinstance(t, WatchTarget):
                where = f"&{t.symbol}" if t.symbol else f"{t.address:#x}"
                specs.append(WatchSpec(i, where, t.symbol, t.address, t.length, t.access, stack))
    check_count(specs, [p.name for p in probes])
    return tuple(specs)


class PtraceBackend:
    name = "ptrace"
    kinds = {"syscall": _syscalls, "user": _user_specs, "watch": _watch_specs}

    def unsupported_reason(self, point: ProbePoint) -> str | None:
        if point.kind in ("syscall", "user", "watch"):
            return None
        if point.kind in ("kernel", "tracepoint"):
            return "ptrace sees a process from outside: kernel functions and tracepoints need ftrace or bpf"
        return f"{point.kind} probes are not supported by the ptrace backend"

    def compile(self, probes: Sequence[Probe], options: Mapping[str, object]) -> CompiledProgram:
        from unitrace.decode.table import get_table

        table = get_table()
        user = options.get("user_specs") or _user_specs(probes)
        wanted = options.get("syscalls")
        names = frozenset(wanted) if isinstance(wanted, frozenset | set) else _syscalls(probes)  # type: ignore[arg-type]
        watch = _watch_specs(probes)
        syscall_stops = True
        if not names and (user or watch) and not any(p.kind == "syscall" for pr in probes for p in pr.points):
            syscall_stops = False  # library calls and watchpoints only: the tracee runs between traps
        elif not names:  # probes not resolved to names (or none given): every syscall, as strace with no -e
            names = frozenset(table.by_name)
        every = names >= frozenset(table.by_name)
        nrs = sorted(table.by_name[n].nr for n in names if n in table.by_name)
        prog = seccomp.build(nrs)
        listing = seccomp.disassemble(prog, {nr: table.by_nr[nr].name for nr in nrs if nr in table.by_nr})
        arts = (
            Artifact("syscalls stopped at", "every syscall" if every else " ".join(sorted(names))),
            Artifact("seccomp filter (installed in the child before exec; with -f and a subset only)", listing),
        ) if syscall_stops else (
            Artifact("syscalls stopped at", "none (the tracee runs between breakpoint and watchpoint traps)"),)
        data: dict[str, object] = {"syscalls": None if every else names, "seccomp_filter": seccomp.encode(prog),
                                   "syscall_stops": syscall_stops}
        # `ustack` on syscall probes: the stack at those syscalls' stops (what strace -k shows)
        stacked = frozenset(n for pr in probes
                            if any(isinstance(a, StackAction) and a.which in ("user", "both") for a in pr.actions)
                            for pt in pr.points if isinstance(pt.target, SyscallTarget) for n in pt.target.names)
        if stacked:
            data["stack_syscalls"] = stacked
            arts = (*arts, Artifact("user stacks at", " ".join(sorted(stacked))))
        if user:
            data["user_specs"] = tuple(user)  # type: ignore[arg-type]
            arts = (*arts, Artifact("breakpoints (function entries; return-address trampoline)",
                                    "\n".join(_describe(s) for s in user)))
        if watch:
            from unitrace.backends.ptrace.watchpoints import describe

            data["watch_specs"] = watch
            arts = (*arts, Artifact("hardware watchpoints (x86 debug registers, PTRACE_POKEUSER)",
                                    describe(watch)))  # type: ignore[arg-type]
        return CompiledProgram("ptrace", tuple(probes), arts, data)

    def start(self, program: CompiledProgram, target: TraceTarget, emit: EmitFn,
              options: Mapping[str, object]) -> PtraceSession:
        return PtraceSession(program, target, emit, options)


def _describe(spec: object) -> str:
    lib = getattr(spec, "library", None)
    where = "the executable" if lib == "" else "any library" if lib is None else lib
    return f"{getattr(spec, 'symbol', '?')} in {where} ({getattr(spec, 'site', 'both')})"
