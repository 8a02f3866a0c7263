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


# ---- aggregations in the kernel (hist triggers): this host's kernel has none, the guest's 6.1 has them ----

WORKLOAD_C = r"""
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    char buf[4096];
    for (int i = 0; i < n; i++) getppid();
    for (int i = 0; i < n / 10; i++) {
        int fd = open(i % 3 ? "/etc/hostname" : "/nonexistent", O_RDONLY);
        if (fd >= 0) { while (read(fd, buf, i % 2 ? 7 : sizeof buf) > 0) {} close(fd); }
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> str:
    import subprocess

    d = tmp_path_factory.mktemp("hist")
    (d / "w.c").write_text(WORKLOAD_C)
    subprocess.run(["gcc", "-O1", "-o", str(d / "w"), str(d / "w.c")], check=True)
    return str(d / "w")


def _run_program(text: list[str], command: tuple[str, ...], **backend_options: object):  # type: ignore[no-untyped-def]
    from unitrace.lang import parse_probe_args
    from unitrace.runner import RunOptions, resolve_program, run
    from unitrace.sinks.aggregate import AggregateSink

    program = resolve_program(parse_probe_args(text))
    sink = AggregateSink(program)
    stats: list = []

    class Stats:
        def feed(self, batch: list) -> None:
            pass

        def close(self, s) -> None:  # type: ignore[no-untyped-def]
            stats.append(s)

    rc = run(program, TraceTarget(command=command), [sink, Stats()],
             RunOptions(backend="ftrace", backend_options=dict(backend_options), handle_signals=False))
    return rc, sink, stats[0]


def test_hist_triggers_count_what_user_space_counts(workload: str) -> None:
    """The same probe twice in one run, on the same records: once aggregated by hist triggers, once by the
    user-space engine. The printed results are the same text."""
    aggs = ("@{p}_sw[prev_comm] = count()",)
    sys_aggs = ("@{p}_sum[tid, func] = sum(ret)", "@{p}_hist = hist(ret)", "@{p}_lin = lhist(ret, 0, 4096, 512)",
                "@{p}_cnt[func] = count()", "@{p}_avg[pid] = avg(ret)")
    text = []
    for p in ("k", "u"):
        text.append("tracepoint:sched:sched_switch { " + "; ".join(a.format(p=p) for a in aggs) + " }")
        text.append("syscall:openat,read,close { " + "; ".join(a.format(p=p) for a in sys_aggs) + " }")
    rc, sink, stats = _run_program(text, (workload, "2000"), kernel_aggregates=[0, 1])
    assert rc == 0
    assert set(sink.kernel_slots) == {(0, 0)} | {(1, i) for i in range(len(sys_aggs))}
    kernel = [a for a in sink.all if a.probe in (0, 1)]
    user = [a for a in sink.all if a.probe in (2, 3)]
    assert len(kernel) == len(user) == 1 + len(sys_aggs)
    for k, u in zip(kernel, user, strict=True):
        assert k.render() == [line.replace("@u_", "@k_") for line in u.render()], k.title
    counts = {key[0]: k.value(key) for k in kernel if k.title == "@k_cnt" for key in k.cells}
    assert counts["openat"] >= 200 and counts["read"] > counts["close"] > 0
    assert stats.lost == 0
    assert _leftovers() == []


def test_kernel_only_probe_streams_nothing_and_removes_its_triggers(workload: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from unitrace.backends.ftrace import session as session_mod

    seen: dict[str, str] = {}
    original = session_mod._remove_instance

    def remove_instance(fs, rel):  # type: ignore[no-untyped-def]
        for ev in ("syscalls/sys_exit_getppid", "syscalls/sys_exit_openat"):
            seen[ev] = fs.read(f"{rel}/events/{ev}/trigger")
        return original(fs, rel)

    monkeypatch.setattr(session_mod, "_remove_instance", remove_instance)
    rc, sink, stats = _run_program(["syscall:getppid { @n = count(); @r[pid] = sum(ret) }",
                                    "kernel:do_sys_openat2%return { @o = hist(ret) }"], (workload, "1000"))
    assert rc == 0
    assert sink.all[0].value(()) == 1000
    ((_key, cell),) = sink.all[1].cells.items()
    assert cell.total == 1000 * os.getpid()  # getppid() in the child returns our pid
    assert sum(sink.all[2].buckets[()].values()) >= 100  # every open, the failed ones in (..., 0)
    assert sink.all[2].buckets[()].get(0, 0) >= 30
    assert stats.events == 0  # nothing went through the ring buffer: the kernel counted it all
    assert seen and all("hist:" not in line for text in seen.values() for line in text.splitlines()
                        if not line.startswith("#")), seen
    assert _leftovers() == []
