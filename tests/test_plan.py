"""The planner: one backend per probe from capabilities, privileges and --backend; clear refusals."""

from __future__ import annotations

import pytest

from unitrace.backends.base import TraceTarget
from unitrace.errors import PlanError
from unitrace.lang import parse_probe_args, resolve
from unitrace.plan.planner import Facts, plan

EVERYTHING = Facts(frozenset({"ptrace", "root", "tracefs", "syscall_events", "tracepoints", "uprobes", "kprobes",
                              "function_tracer", "bpf", "bcc", "perf_breakpoints"}))
THIS_HOST = Facts(EVERYTHING.available - {"kprobes", "function_tracer"},
                  {"kprobes": "CONFIG_KPROBES is not set in this kernel",
                   "function_tracer": "writing current_tracer is refused (EPERM)"})
NO_ROOT = Facts(frozenset({"ptrace", "tracefs", "syscall_events", "tracepoints"}),
                {"root": "not running as root", "bpf": "kernel.unprivileged_bpf_disabled=2",
                 "bcc": "bcc needs root here"})
CMD = TraceTarget(command=("true",))


def backends(text: str, facts: Facts, requested: str = "auto", target: TraceTarget = CMD) -> list[str]:
    program = resolve(parse_probe_args([text]))
    return [a.backend for a in plan(program, target, facts, requested).assignments]


def test_auto_prefers_in_kernel_backends_when_root() -> None:
    assert backends("syscall:openat", EVERYTHING) == ["bpf"]
    assert backends("tracepoint:sched:sched_process_exec", EVERYTHING) == ["bpf"]
    # watchpoints prefer ptrace (every thread's debug registers, old values); bpf refuses them with a reason
    assert backends("watch:&counter:8:w", EVERYTHING) == ["ptrace"]
    with pytest.raises(PlanError) as info:
        backends("watch:&counter:8:w", EVERYTHING, "bpf")
    assert "hardware watchpoints" in info.value.message


def test_without_root_ptrace_does_the_job() -> None:
    assert backends("syscall:openat", NO_ROOT) == ["ptrace"]


def test_requested_backend_is_used_or_refused_with_reasons() -> None:
    assert backends("syscall:openat", EVERYTHING, "ftrace") == ["ftrace"]
    with pytest.raises(PlanError) as info:
        backends("kernel:do_sys_openat2", THIS_HOST, "ftrace")
    assert "CONFIG_KPROBES is not set" in info.value.message


def test_every_backend_explains_itself_when_none_can() -> None:
    with pytest.raises(PlanError) as info:
        backends("kernel:do_sys_openat2", NO_ROOT)
    msg = info.value.message
    assert "cannot trace kernel:do_sys_openat2" in msg
    assert "bpf: not running as root" in msg
    assert "ftrace: not running as root" in msg


def test_ptrace_cannot_trace_the_whole_system() -> None:
    with pytest.raises(PlanError) as info:
        backends("syscall:openat", NO_ROOT, target=TraceTarget(system_wide=True))
    assert "ptrace traces processes, not the whole system" in info.value.message


def test_unknown_backend_name() -> None:
    with pytest.raises(PlanError) as info:
        backends("syscall:openat", EVERYTHING, "dtrace")
    assert "unknown backend 'dtrace'" in info.value.message
