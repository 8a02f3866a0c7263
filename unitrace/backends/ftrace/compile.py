"""Probes -> what the ftrace backend writes into tracefs. Pure: text and plans only, nothing is written.

`unitrace compile --backend ftrace` prints the result; the session (session.py) carries it out. Dynamic
events are named in the group `unitrace_<PID>` of the session that creates them; compile cannot know that
PID, so it renders the group as GROUP_PLACEHOLDER.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace

from unitrace.backends.base import Artifact, only_calls_that_never_return
from unitrace.backends.ftrace.filters import COMMON_FIELDS, errno_to_ret, split_predicate
from unitrace.backends.ftrace.formats import EventFormat
from unitrace.backends.ftrace.hist import AggregatePlacement, EventView, HistFeatures, plan_aggregates
from unitrace.errors import UnitraceError
from unitrace.model.expr import Expr
from unitrace.model.probe import (
    KernelTarget,
    Probe,
    ProbePoint,
    Site,
    SyscallTarget,
    TracepointTarget,
    UserTarget,
)

GROUP_PLACEHOLDER = "unitrace_<PID>"
# Above this many syscalls, two raw_syscalls events filtered on the number beat hundreds of per-syscall ones.
RAW_SYSCALLS_THRESHOLD = 48
# Function arguments by position, per the platform ABI; fetched as u64 and interpreted in user space.
ABI_ARGS = {
    "x86_64": ("%di", "%si", "%dx", "%cx", "%r8", "%r9"),
    "aarch64": ("%x0", "%x1", "%x2", "%x3", "%x4", "%x5", "%x6", "%x7"),
}

FormatLookup = Callable[[str, str], EventFormat | None]


@dataclass(frozen=True, slots=True)
class DynamicEvent:
    """One kprobe/uprobe definition, rendered into kprobe_events/uprobe_events syntax."""

    probe_type: str  # "kprobe" or "uprobe"
    is_return: bool
    name: str
    location: str  # "do_sys_openat2" or "/usr/lib/.../libc.so.6:0x98930"
    fetch: tuple[str, ...]

    def line(self, group: str) -> str:
        letter = "r" if self.is_return else "p"
        return " ".join((f"{letter}:{group}/{self.name}", self.location, *self.fetch))

    @property
    def control_file(self) -> str:
        return "kprobe_events" if self.probe_type == "kprobe" else "uprobe_events"


@dataclass(frozen=True, slots=True)
class EventPlan:
    """One tracefs event the session enables, with its filter and what its records mean."""

    system: str  # "syscalls", "raw_syscalls", a tracepoint subsystem, or GROUP_PLACEHOLDER
    event: str
    role: str  # "enter", "exit", "tracepoint", "call", "return"
    probe: int
    filter: str = ""
    residual: Expr | None = None  # what user space still has to check
    syscalls: tuple[str, ...] = ()  # the syscall(s) this event stands for
    stacktrace: bool = False
    stream: bool = True  # False: only the kernel's hist triggers see it (enable stays 0, the triggers fire)
    symbol: str = ""  # the function a kprobe or uprobe event stands for (its event name is made unique)
    user: bool = False  # a uprobe: its arguments are decoded by the library prototype table

    def path(self, group: str) -> str:
        system = group if self.system == GROUP_PLACEHOLDER else self.system
        return f"events/{system}/{self.event}"


@dataclass(frozen=True, slots=True)
class FunctionPlan:
    """Entries of many kernel functions at once: the function tracer in our instance, not one kprobe each."""

    filters: tuple[str, ...]  # set_ftrace_filter globs
    probe: int


@dataclass(frozen=True, slots=True)
class FtracePlan:
    events: tuple[EventPlan, ...]
    dynamic: tuple[DynamicEvent, ...]
    functions: FunctionPlan | None = None
    user_stacks: bool = False  # options/userstacktrace in the instance (the kernel's frame-pointer walk)
    aggregates: tuple[AggregatePlacement, ...] = ()

    @property
    def kernel_aggregates(self) -> tuple[tuple[int, int], ...]:
        return tuple((a.probe, a.slot) for a in self.aggregates if a.in_kernel)

    def artifacts(self) -> tuple[Artifact, ...]:
        out: list[Artifact] = []
        if self.user_stacks:
            out.append(Artifact("user stacks", "instances/unitrace-<PID>/options/userstacktrace: 1"))
        if self.functions is not None:
            where = "instances/unitrace-<PID>"
            out.append(Artifact(f"probe {self.functions.probe}: function tracer", "\n".join(
                [f"{where}/set_ftrace_filter: {g}" for g in self.functions.filters]
                + [f"{where}/current_tracer: function"])))
        for dyn in self.dynamic:
            out.append(Artifact(dyn.control_file, dyn.line(GROUP_PLACEHOLDER)))
        for ev in self.events:
            where = f"instances/unitrace-<PID>/{ev.path(GROUP_PLACEHOLDER)}"
            lines = [f"{where}/enable: 1" if ev.stream else
                     f"{where}/enable: 0 (only its hist triggers see it: no records reach user space)"]
            if ev.filter:
                lines.append(f"{where}/filter: {ev.filter}")
            if ev.stacktrace:
                lines.append(f"{where}/trigger: stacktrace")
            if ev.residual is not None:
                from unitrace.lang import format_expr

                lines.append(f"(user space) {format_expr(ev.residual)}")
            out.append(Artifact(f"probe {ev.probe}: {ev.role}", "\n".join(lines)))
        for agg in self.aggregates:
            if agg.in_kernel:
                lines = [f"instances/unitrace-<PID>/{t.path}/trigger: {t.command(GROUP_PLACEHOLDER)}"
                         for t in agg.triggers]
                out.append(Artifact(f"probe {agg.probe}: {agg.text} in the kernel (hist trigger)",
                                    "\n".join(lines)))
            else:
                out.append(Artifact(f"probe {agg.probe}: {agg.text} in user space", f"(user space) {agg.reason}"))
        return tuple(out)


def event_name(text: str) -> str:
    """A tracefs event name from arbitrary text (symbols may hold `.` or `@`)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return name if not name[:1].isdigit() else "_" + name


def _wants_stack(probe: Probe) -> bool:
    from unitrace.model.probe import StackAction

    return any(isinstance(a, StackAction) and a.which in ("kernel", "both") for a in probe.actions)


def _syscall_field(name: str, params: Sequence[str], role: str) -> str | None:
    if name in COMMON_FIELDS:
        return COMMON_FIELDS[name]
    if role == "exit":
        return "ret" if name == "ret" else None
    if name.startswith("arg") and name[3:].isdigit():
        i = int(name[3:])
        return params[i] if i < len(params) else None
    return name if name in params else None


def _compile_syscalls(index: int, probe: Probe, point: ProbePoint, arch: str) -> list[EventPlan]:
    from unitrace.decode.table import get_table

    assert isinstance(point.target, SyscallTarget)
    table = get_table(arch)
    names = point.target.names
    stack = _wants_stack(probe)
    plans: list[EventPlan] = []
    pred = probe.predicate
    if len(names) > RAW_SYSCALLS_THRESHOLD:
        nrs = sorted(table.by_name[n].nr for n in names if n in table.by_name)
        all_of_them = len(nrs) >= len(table.by_nr)
        idf = "" if all_of_them else " || ".join(f"id == {nr}" for nr in nrs)
        for role in ("enter", "exit"):
            kfilter, residual = split_predicate(
                errno_to_ret(pred) if (pred is not None and role == "exit") else pred,
                lambda n, r=role: COMMON_FIELDS.get(n) if r == "enter" else
                ("ret" if n == "ret" else COMMON_FIELDS.get(n)))
            full = " && ".join(f"({p})" for p in (idf, kfilter) if p)
            plans.append(EventPlan("raw_syscalls", f"sys_{role}", role, index, full, pred if residual else None,
                                   names, stack and role == "enter"))
        return plans
    for name in names:
        info = table.by_name.get(name)
        params = tuple(p.name for p in info.params) if info else ()
        for role in ("enter", "exit"):
            kpred = errno_to_ret(pred) if (pred is not None and role == "exit") else pred
            kfilter, residual = split_predicate(kpred, lambda n, r=role, ps=params: _syscall_field(n, ps, r))
            # The residual is checked on the joined event, so keep the user's own predicate there.
            plans.append(EventPlan("syscalls", f"sys_{role}_{name}", role, index, kfilter,
                                   pred if residual is not None else None, (name,), stack and role == "enter"))
    return plans


def _compile_tracepoint(index: int, probe: Probe, point: ProbePoint, formats: FormatLookup) -> EventPlan:
    assert isinstance(point.target, TracepointTarget)
    t = point.target
    fmt = formats(t.subsystem, t.event)
    if fmt is None:
        raise UnitraceError(f"{point.span}: no tracepoint {t.subsystem}:{t.event} in this kernel",
                            hint="unitrace list tracepoints PATTERN")
    fields = {f.name for f in fmt.fields}

    def field_of(n: str) -> str | None:
        if n in COMMON_FIELDS:
            return COMMON_FIELDS[n]
        return n if n in fields else None

    kfilter, residual = split_predicate(probe.predicate, field_of)
    return EventPlan(t.subsystem, t.event, "tracepoint", index, kfilter, residual, (), _wants_stack(probe))


def _compile_dynamic(index: int, probe: Probe, point: ProbePoint, arch: str,
                     pid: int | None) -> tuple[DynamicEvent, EventPlan]:
    regs = ABI_ARGS.get(arch, ABI_ARGS["x86_64"])
    is_return = point.site is Site.RETURN
    if isinstance(point.target, KernelTarget):
        func = point.target.function
        name = event_name(func + ("__return" if is_return else ""))
        fetch = ("ret=$retval:s64",) if is_return else tuple(f"arg{i}={r}:u64" for i, r in enumerate(regs))
        dyn = DynamicEvent("kprobe", is_return, name, func, fetch)
        role = "return" if is_return else "call"
    else:
        assert isinstance(point.target, UserTarget)
        from unitrace.symbols.elf import elf_symbols, resolve_function

        t = point.target
        path, sym = resolve_function(t.binary, t.symbol, pid, where=str(point.span))
        syms = elf_symbols(path)
        offset = syms.file_offset(sym.value)
        base = event_name(f"{path.rsplit('/', 1)[-1].split('.so')[0]}_{t.symbol}")
        name = base + ("__return" if is_return else "")
        fetch = ("ret=$retval:s64",) if is_return else tuple(f"arg{i}={r}:u64" for i, r in enumerate(regs))
        if not is_return:
            # the strings a known library function takes are read by the kernel at the probe (`ustring`):
            # afterwards the tracee's memory is not ours to read
            from unitrace.backends.ptrace.prototypes import builtin

            proto = builtin().get(t.symbol)
            kinds = proto.params if proto is not None else ()
            fetch += tuple(f"str{i}=+0({regs[i]}):ustring" for i, k in enumerate(kinds[: len(regs)])
                           if k in ("string", "format"))
        dyn = DynamicEvent("uprobe", is_return, name, f"{path}:0x{offset:x}", fetch)
        role = "return" if is_return else "call"

    def field_of(n: str) -> str | None:
        if n in COMMON_FIELDS:
            return COMMON_FIELDS[n]
        if is_return:
            return "ret" if n == "ret" else None
        return n if re.fullmatch(r"arg[0-9]", n) and int(n[3:]) < len(regs) else None

    kfilter, residual = split_predicate(probe.predicate, field_of)
    is_user = isinstance(point.target, UserTarget)
    symbol = point.target.symbol if is_user else point.target.function  # type: ignore[union-attr]
    plan = EventPlan(GROUP_PLACEHOLDER, dyn.name, role, index, kfilter, residual, (), _wants_stack(probe),
                     symbol=symbol, user=is_user)
    return dyn, plan


def _views(probe: Probe, plans: Sequence[EventPlan], formats: FormatLookup,
           dynamic: dict[str, DynamicEvent]) -> tuple[list[EventView] | None, str]:
    """The events a probe's aggregations would be counted on in the kernel, and why not (if not)."""
    from unitrace.lang import format_expr

    views: list[EventView] = []
    residual = ""
    for ev in plans:
        if ev.role == "enter":
            continue
        if ev.residual is not None:
            residual = f"the predicate needs user space ({format_expr(ev.residual)})"
        path = ev.path(GROUP_PLACEHOLDER)
        if ev.role == "exit":
            role = "raw_exit" if ev.system == "raw_syscalls" else "exit"
            views.append(EventView(path, role, None, ev.filter, ev.syscalls[0] if len(ev.syscalls) == 1 else ""))
        elif ev.role == "tracepoint":
            views.append(EventView(path, "tracepoint", formats(ev.system, ev.event), ev.filter,
                                   f"{ev.system}:{ev.event}"))
        else:
            dyn = dynamic.get(ev.event)
            views.append(EventView(path, ev.role, None, ev.filter, ev.event.removesuffix("__return"),
                                   len(dyn.fetch) if dyn is not None and ev.role == "call" else 0))
    return views, residual


def compile_probes(probes: Sequence[Probe], formats: FormatLookup, arch: str | None = None,
                   pid: int | None = None, hist: HistFeatures | None = None,
                   kernel_aggregates: bool | Collection[int] = True) -> FtracePlan:
    """`hist`: what this kernel's hist triggers accept (none: aggregations stay in user space);
    `kernel_aggregates`: False, or the probe indexes allowed to aggregate in the kernel."""
    arch = arch or platform.machine()
    events: list[EventPlan] = []
    dynamic: list[DynamicEvent] = []
    seen_dyn: set[str] = set()
    functions: FunctionPlan | None = None
    for index, probe in enumerate(probes):
        for point in probe.points:
            if isinstance(point.target, KernelTarget) and any(c in point.target.function for c in "*?["):
                if point.site is Site.RETURN:
                    raise UnitraceError(f"{point.span}: returns of many functions at once need "
                                        "function_graph, which unitrace does not drive yet",
                                        hint="name one function for a kretprobe")
                if functions is not None and functions.probe != index:
                    raise UnitraceError(f"{point.span}: one session has one function tracer; "
                                        "put every glob in the same probe")
                globs = (functions.filters if functions else ()) + (point.target.function,)
                functions = FunctionPlan(globs, index)
                continue
            if point.kind == "syscall":
                events.extend(_compile_syscalls(index, probe, point, arch))
            elif point.kind == "tracepoint":
                events.append(_compile_tracepoint(index, probe, point, formats))
            elif point.kind in ("kernel", "user"):
                dyn, plan = _compile_dynamic(index, probe, point, arch, pid)
                if dyn.name not in seen_dyn:
                    seen_dyn.add(dyn.name)
                    dynamic.append(dyn)
                events.append(plan)
            else:
                raise UnitraceError(f"{point.span}: the ftrace backend cannot trace {point.kind} probes")
    from unitrace.model.probe import AggregateAction, StackAction

    features = hist or HistFeatures()
    by_name = {d.name: d for d in dynamic}
    placements: list[AggregatePlacement] = []
    quiet: set[int] = set()
    for index, probe in enumerate(probes):
        if not any(isinstance(a, AggregateAction) for a in probe.actions):
            continue
        allowed = kernel_aggregates if isinstance(kernel_aggregates, bool) else index in kernel_aggregates
        mine = [ev for ev in events if ev.probe == index]
        views, residual = _views(probe, mine, formats, by_name)
        if functions is not None and functions.probe == index:
            views = None  # the function tracer's records carry no triggers
        if not allowed:
            residual = "kernel aggregation turned off for this probe"
        elif only_calls_that_never_return(probe):
            residual = "exit and exit_group have no exit record: their events are made from the entry"
        probe_aggs = plan_aggregates(index, probe, views, residual, features)
        placements.extend(probe_aggs)
        if all(a.in_kernel for a in probe_aggs) and all(isinstance(a, AggregateAction) for a in probe.actions):
            quiet.add(index)
    # An event is streamed if any probe on it still needs its records in user space.
    streamed_paths = {ev.path(GROUP_PLACEHOLDER) for ev in events if ev.probe not in quiet}
    events = [ev if ev.path(GROUP_PLACEHOLDER) in streamed_paths else replace(ev, stream=False) for ev in events]
    ustack = any(isinstance(a, StackAction) and a.which in ("user", "both") for p in probes for a in p.actions)
    return FtracePlan(tuple(events), tuple(dynamic), functions, ustack, tuple(placements))

