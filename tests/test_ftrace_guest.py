"""kprobes, kretprobes and the function tracer: run inside the QEMU guest (tests/test_guest_stage.py),
because this host's kernel has no kprobes and refuses the function tracer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.guest_support import guest_only
from unitrace.backends.base import TraceTarget
from unitrace.backends.ftrace.backend import FtraceBackend
from unitrace.events import EventKind
from unitrace.model.probe import KernelTarget, Probe, ProbePoint, Site

pytestmark = guest_only


def _leftovers() -> list[str]:
    root = Path("/sys/kernel/tracing")
    inst = [p.name for p in (root / "instances").iterdir() if p.name.startswith("unitrace-")]
    dyn = [line for line in (root / "dynamic_events").read_text().splitlines() if "unitrace_" in line]
    return inst + dyn


def _trace(probes: list[Probe], command: tuple[str, ...]) -> tuple[int, list]:
    backend = FtraceBackend()
    got: list = []
    with backend.start(backend.compile(probes, {}), TraceTarget(command=command), got.extend, {}) as s:
        rc = s.run()
    return rc, got


def test_kprobe_and_kretprobe_on_openat() -> None:
    entry = Probe((ProbePoint("kernel", KernelTarget("do_sys_openat2")),))
    ret = Probe((ProbePoint("kernel", KernelTarget("do_sys_openat2"), Site.RETURN),))
    rc, events = _trace([entry, ret], ("cat", "/etc/hostname"))
    assert rc == 0
    calls = [e for e in events if e.kind is EventKind.CALL and e.name == "do_sys_openat2"]
    rets = [e for e in events if e.kind is EventKind.RETURN and e.name == "do_sys_openat2"]
    assert calls and rets
    assert all(e.comm == "cat" for e in calls)
    # the last open is /etc/hostname, which succeeds with the first free descriptor
    assert rets[-1].ret == 3
    # dfd (first argument) is AT_FDCWD, -100, as the 32-bit int the kernel received
    assert calls[-1].raw_args[0] & 0xFFFFFFFF == 0xFFFFFF9C
    assert _leftovers() == []


def test_function_tracer_glob_in_instance() -> None:
    probe = Probe((ProbePoint("kernel", KernelTarget("vfs_read*")),))
    rc, events = _trace([probe], ("cat", "/etc/hostname"))
    assert rc == 0
    calls = [e for e in events if e.kind is EventKind.CALL]
    assert calls, "the function tracer delivered nothing"
    assert all(e.name.startswith("vfs_read") for e in calls)
    assert any(e.comm == "cat" for e in calls)
    top = Path("/sys/kernel/tracing/current_tracer").read_text().strip()
    assert top == "nop"  # the top-level instance was never touched
    assert _leftovers() == []


def test_bad_kprobe_symbol_is_refused_cleanly() -> None:
    from unitrace.errors import UnitraceError

    probe = Probe((ProbePoint("kernel", KernelTarget("no_such_function_xyz")),))
    with pytest.raises(UnitraceError) as info:
        _trace([probe], ("true",))
    assert "no_such_function_xyz" in info.value.message
    assert _leftovers() == []
