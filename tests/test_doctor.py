"""unitrace.system capability detection and `unitrace doctor`, checked against what the kernel shows directly."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unitrace.system import caps as capsmod
from unitrace.system import detect
from unitrace.system import tracefs as tfs
from unitrace.system.leftovers import find_leftovers, owner_of, parse_dynamic_events

PLANNER_KEYS = {"ptrace", "root", "tracefs", "syscall_events", "tracepoints", "uprobes", "kprobes",
                "function_tracer", "bpf", "bcc", "perf_breakpoints"}


def _doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "unitrace", "doctor", *args], capture_output=True, text=True,
                          timeout=120)


def _dead_pid() -> int:
    """A PID that belonged to a process which has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------- pure parsing

def test_kernel_config_parsing() -> None:
    cfg = capsmod.parse_kernel_config("CONFIG_A=y\n# CONFIG_KPROBES is not set\nCONFIG_S=\"x y\"\n# comment\n")
    assert cfg == {"CONFIG_A": "y", "CONFIG_KPROBES": "n", "CONFIG_S": '"x y"'}


def test_tracefs_mounts_parsing_unescapes_and_keeps_order() -> None:
    text = ("sysfs /sys sysfs rw 0 0\n"
            "nodev /sys/kernel/tracing tracefs rw 0 0\n"
            "nodev /mnt/my\\040trace tracefs rw 0 0\n"
            "debugfs /sys/kernel/debug debugfs rw 0 0\n")
    assert tfs.tracefs_mounts(text) == [Path("/sys/kernel/tracing"), Path("/mnt/my trace")]
    assert tfs.tracefs_mounts("proc /proc proc rw 0 0\n") == []


def test_dynamic_events_and_owner_parsing() -> None:
    text = "p:unitrace_12_2/open do_sys_openat2 dfd=%di\nu:uprobes/x /bin/true:0x10\nr:kp/ret f\n\n"
    assert parse_dynamic_events(text) == [("unitrace_12_2", "open"), ("uprobes", "x"), ("kp", "ret")]
    assert owner_of("unitrace-1234") == 1234
    assert owner_of("unitrace-doctor-99") == 99
    assert owner_of("unitrace_77_3") == 77
    assert owner_of("unitrace-test") is None


# ---------------------------------------------------------------- detection against the kernel's own view

def test_detect_has_every_planner_key_with_a_reason_for_each_no() -> None:
    caps = detect()
    assert set(caps) >= PLANNER_KEYS
    assert detect() is caps  # cached per process
    for name, cap in caps.items():
        assert cap.name == name
        assert cap.status in ("yes", "no", "refused")
        assert cap.available == (cap.status == "yes")
        if not cap.available:
            assert cap.reason, f"{name} says no without a reason"
            assert "check itself failed" not in cap.reason, cap.reason


def test_root_and_tracefs_agree_with_the_kernel() -> None:
    caps = detect()
    assert caps["root"].available == (os.geteuid() == 0)
    mounted = tfs.tracefs_mounts(Path("/proc/mounts").read_text())
    assert caps["tracefs"].available == (bool(mounted) and os.access(mounted[0], os.W_OK))
    assert tfs.find_tracefs() in (mounted[0] if mounted else None, *mounted)


def test_tracefs_entries_agree_with_the_files(tracefs: Path) -> None:
    caps = detect()
    assert caps["uprobes"].available == (tracefs / "uprobe_events").exists()
    assert caps["kprobes"].available == (tracefs / "kprobe_events").exists()
    assert caps["syscall_events"].available == (tracefs / "events/syscalls").is_dir()
    assert caps["instances"].available == (tracefs / "instances").is_dir()
    if not caps["kprobes"].available and capsmod.kernel_config().get("CONFIG_KPROBES", "n") == "n":
        assert "CONFIG_KPROBES" in caps["kprobes"].reason


def test_function_tracer_verdict_matches_a_real_attempt(tracefs: Path) -> None:
    """Try it ourselves in our own instance: doctor must say what the kernel says."""
    cap = detect()["function_tracer"]
    if "function" not in tracefs.joinpath("available_tracers").read_text().split():
        assert cap.status == "no"
        return
    inst = tracefs / "instances" / f"unitrace-test-{os.getpid()}"
    os.mkdir(inst)
    try:
        try:
            tfs.write(inst / "current_tracer", "function", truncate=True)
            expected = "yes"
        except OSError as exc:
            expected = "refused" if exc.errno == errno.EPERM else "no"
    finally:
        capsmod.remove_instance(inst)
    assert cap.status == expected, cap
    if expected == "refused":
        assert "EPERM" in cap.reason


def test_a_bpf_program_loads_where_doctor_says_bpf() -> None:
    """Cross-check with bpftool, an independent loader (when installed)."""
    cap = detect()["bpf"]
    if os.geteuid() != 0:
        pytest.skip("bpftool feature probing needs root")
    proc = subprocess.run(["bpftool", "feature", "probe", "kernel"], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"bpftool is not usable here: {proc.stderr.strip()[:200]}")
    assert ("bpf() syscall is available" in proc.stdout) == cap.available, (cap, proc.stdout[:400])


def test_detection_leaves_no_instance_behind(tracefs: Path) -> None:
    capsmod.try_tracer("function")
    capsmod.try_tracer("function_graph")
    mine = [i for i in find_leftovers(tracefs) if i.owner_pid == os.getpid()]
    assert mine == []


# ---------------------------------------------------------------- tracefs helpers

def test_write_appends_where_python_append_mode_fails(tracefs: Path) -> None:
    inst = tracefs / "instances" / f"unitrace-test-{os.getpid()}"
    os.mkdir(inst)
    try:
        set_event = inst / "set_event"
        with pytest.raises(OSError), open(set_event, "a") as f:  # the pitfall: "a" seeks, tracefs refuses
            f.write("sched:sched_process_exec\n")
        tfs.write(set_event, "sched:sched_process_exec")
        tfs.write(set_event, "sched:sched_process_exit")
        assert set(tfs.read(set_event).split()) == {"sched:sched_process_exec", "sched:sched_process_exit"}
        tfs.write(set_event, "", truncate=True)
        assert tfs.read(set_event).split() == []
    finally:
        capsmod.remove_instance(inst)


def test_error_log_explains_a_refused_write(tracefs: Path) -> None:
    if not (tracefs / "error_log").exists():
        pytest.skip("this kernel has no tracefs error_log (5.4+)")
    if not (tracefs / "uprobe_events").exists():
        pytest.skip("no uprobe_events to provoke an error with")
    command = f"p:unitrace_{os.getpid()}/bad /nonexistent/unitrace-file:0x10"
    tfs.clear_error_log(tracefs)
    with pytest.raises(OSError):
        tfs.write(tracefs / "uprobe_events", command)
    log = tfs.read_error_log(tracefs)
    assert f"Command: {command}" in log, log  # the kernel's explanation, with our command quoted


# ---------------------------------------------------------------- the command

def test_doctor_json_is_the_detection() -> None:
    proc = _doctor("--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["kernel"] == os.uname().release
    got = data["capabilities"]
    assert set(got) >= PLANNER_KEYS
    here = detect()
    for name, entry in got.items():
        assert set(entry) == {"available", "status", "reason", "fix"}
        assert entry["status"] == here[name].status, name  # the same machine: the same answer


def test_doctor_table_has_a_row_per_capability_and_exits_0() -> None:
    proc = _doctor()
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1].split()[:3] == ["capability", "state", "reason"]
    for name, cap in detect().items():
        row = [ln for ln in lines if ln.split()[:1] == [name]]
        assert len(row) == 1, name
        assert row[0].split()[1] == cap.status, row
    assert lines[-1].startswith(("not available:", "everything"))


def test_doctor_cleanup_removes_instances_of_dead_sessions(tracefs: Path) -> None:
    dead = _dead_pid()
    stale = [tracefs / "instances" / f"unitrace-{dead}", tracefs / "instances" / f"unitrace-doctor-{dead}"]
    for inst in stale:
        os.mkdir(inst)
    try:
        proc = _doctor("--cleanup")
        assert proc.returncode == 0, proc.stderr
        for inst in stale:
            assert not inst.exists(), proc.stdout
            assert f"removed instance {inst.name}" in proc.stdout
    finally:
        for inst in stale:
            if inst.exists():
                capsmod.remove_instance(inst)
