"""The bpf backend: bcc-compiled programs, predicates and aggregations in the kernel."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from unitrace.backends.base import Artifact, CompiledProgram, EmitFn, TraceTarget
from unitrace.backends.bpf import record
from unitrace.backends.bpf.program import generate, ringbuf_supported
from unitrace.backends.bpf.session import BpfSession
from unitrace.errors import UnitraceError
from unitrace.model.probe import Probe, ProbePoint


def _tracepoint_fields(probes: Sequence[Probe]) -> dict[tuple[str, str], tuple[str, ...]]:
    from unitrace.backends.ftrace.formats import read_format
    from unitrace.backends.ftrace.tracefs import find_tracefs
    from unitrace.model.probe import TracepointTarget

    root = find_tracefs()
    out: dict[tuple[str, str], tuple[str, ...]] = {}
    for probe in probes:
        for point in probe.points:
            if isinstance(point.target, TracepointTarget) and root is not None:
                key = (point.target.subsystem, point.target.event)
                try:
                    fmt = read_format(root, *key)
                except OSError:
                    continue
                out[key] = tuple(f.name for f in fmt.fields if not f.is_string and f.array_len == 0)
    return out


class BpfBackend:
    name = "bpf"
    kinds = {"syscall": generate, "tracepoint": generate, "kernel": generate, "user": generate}

    def unsupported_reason(self, point: ProbePoint) -> str | None:
        if point.kind == "watch":
            return "hardware watchpoints through perf events are not implemented in the bpf backend yet"
        if point.kind == "kernel" and any(c in getattr(point.target, "function", "") for c in "*?["):
            return "globs over kernel functions need the function tracer (ftrace backend)"
        return None

    def compile(self, probes: Sequence[Probe], options: Mapping[str, object]) -> CompiledProgram:
        scoped = not bool(options.get("system_wide", False))
        # options: follow_forks (default on, as the CLI's), strace (signal, exit and fork records)
        # transport: the BPF ring buffer where the kernel has it (5.8+), else perf buffers; `transport` in the
        # options or UNITRACE_BPF_TRANSPORT=perf forces one (the tests use it to cover the fallback here)
        transport = str(options.get("transport") or os.environ.get("UNITRACE_BPF_TRANSPORT") or
                        ("ringbuf" if ringbuf_supported() else "perf"))
        if transport not in ("ringbuf", "perf"):
            raise UnitraceError(f"unknown bpf transport {transport!r}", hint="ringbuf or perf")
        ustack_bytes = _ustack_bytes(options)
        plan = generate(probes, scoped=scoped, tracepoint_fields=_tracepoint_fields(probes),
                        follow=bool(options.get("follow_forks", True)), lifecycle=bool(options.get("strace")),
                        transport=transport, ustack_bytes=ustack_bytes)
        arts = [Artifact("transport", "BPF ring buffer" if transport == "ringbuf" else
                         "perf buffers (no BPF ring buffer: kernel before 5.8, or forced)"),
                Artifact("bcc C program (#include \"unitrace_bpf.h\": unitrace/backends/bpf/unitrace_bpf.h)",
                         plan.source)]
        for a in plan.attach:
            arts.append(Artifact(f"attach {a.kind}", f"{a.target}:{a.symbol} -> {a.fn_name}"))
        if plan.sysmask:
            arts.append(Artifact("syscall numbers traced (ut_sysmask)",
                                 " ".join(f"{nr}:{bits:#x}" for nr, bits in sorted(plan.sysmask.items()))))
        residuals = {i: plan.residuals.get(i) for i in range(len(probes))}
        kernel_aggs = tuple((a.probe, a.slot) for a in plan.aggregates if a.in_kernel)
        return CompiledProgram("bpf", tuple(probes), tuple(arts),
                               {"plan": plan, "residuals": residuals, "kernel_aggregates": kernel_aggs})

    def start(self, program: CompiledProgram, target: TraceTarget, emit: EmitFn,
              options: Mapping[str, object]) -> BpfSession:
        return BpfSession(program, target, emit, dict(options))


def _ustack_bytes(options: Mapping[str, object]) -> int:
    """User stacks: `dwarf` (default; registers and a copy of the top of the user stack, unwound in user
    space) or `fp` (the kernel's frame-pointer walk, a stack id): the backend option `ustack` or
    UNITRACE_BPF_USTACK. The copy's size: `ustack_bytes` or UNITRACE_BPF_USTACK_BYTES (default 8192,
    at most record.USNAP_MAX). Returns the bytes to copy, 0 for frame pointers."""
    mode = str(options.get("ustack") or os.environ.get("UNITRACE_BPF_USTACK") or "dwarf")
    if mode == "fp":
        return 0
    if mode != "dwarf":
        raise UnitraceError(f"unknown bpf user-stack mode {mode!r}", hint="dwarf or fp")
    raw = options.get("ustack_bytes") or os.environ.get("UNITRACE_BPF_USTACK_BYTES") or record.USNAP_DEFAULT
    try:
        n = int(str(raw))
    except ValueError:
        raise UnitraceError(f"bad user-stack size {raw!r}", hint="a number of bytes") from None
    if not 64 <= n <= record.USNAP_MAX:
        raise UnitraceError(f"user-stack size {n} out of range", hint=f"64 to {record.USNAP_MAX} bytes")
    return n
