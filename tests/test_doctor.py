"""Capability detection and `unitrace doctor`: each answer checked against an independent look at the
kernel (bpftool, our own tries in a separately named instance, /proc), both as root and as an unprivileged
user, and the CLI's table and JSON."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from unitrace.system import caps as caps_mod
from unitrace.system import detect
from unitrace.system import tracefs as tfs
from unitrace.system.leftovers import find_leftovers, owner_of, parse_dynamic_events

ROOT = Path(__file__).resolve().parents[1]
NAMES = list(caps_mod.checks())


def _cli(*args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "unitrace.cli.main", *args]
    if user:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--inh-caps=-all", *argv]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd="/", check=False, timeout=120)


def test_every_capability_has_a_state_and_every_no_a_reason(tracefs: Path) -> None:
    found = detect()
    assert list(found) == NAMES
    for cap in found.values():
        assert cap.status in ("yes", "no", "refused")
        assert cap.available == (cap.status == "yes")
        if not cap.available:
            assert cap.reason, cap
            assert "check itself failed" not in cap.reason, cap


def test_tracefs_entries_match_the_mounted_tree(tracefs: Path) -> None:
    found = detect()
    assert found.has("tracefs") and str(tracefs) in found["tracefs"].reason
    assert found.has("kprobes") == (tracefs / "kprobe_events").exists()
    assert found.has("uprobes") == (tracefs / "uprobe_events").exists()
    assert found.has("syscall_events") == (tracefs / "events/syscalls").is_dir()
    if not found.has("kprobes") and caps_mod.kernel_config():
        assert caps_mod.kernel_config().get("CONFIG_KPROBES", "n") == "n"
        assert "CONFIG_KPROBES" in found["kprobes"].reason


@pytest.mark.parametrize("tracer", ["function", "function_graph"])
def test_tracer_state_matches_our_own_try(tracefs: Path, tracer: str) -> None:
    """An independent try in an instance of the test's own; the top-level instance is never touched."""
    name = "function_tracer" if tracer == "function" else tracer
    cap = detect()[name]
    listed = tracer in (tracefs / "available_tracers").read_text().split()
    if not listed:
        assert cap.status == "no"
        return
    inst = tracefs / "instances" / f"unitrace-test-{os.getpid()}"
    inst.mkdir()
    try:
        try:
            tracefs_helpers_write(inst / "current_tracer", tracer)
            expected = "yes"
        except OSError as exc:
            expected = "refused" if exc.errno == errno.EPERM else "no"
        tracefs_helpers_write(inst / "current_tracer", "nop")
    finally:
        inst.rmdir()
    assert cap.status == expected, cap
    if expected == "refused":
        assert "EPERM" in cap.reason


def tracefs_helpers_write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def test_detect_leaves_no_instance_behind(tracefs: Path) -> None:
    caps_mod.try_tracer("function")
    caps_mod.try_tracer("function_graph")
    assert not (tracefs / "instances" / f"unitrace-doctor-{os.getpid()}").exists()


@pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool is not installed")
def test_bpf_matches_bpftool() -> None:
    probe = subprocess.run(["bpftool", "feature", "probe", "kernel"], capture_output=True, text=True, check=False)
    bpftool_says = "bpf() syscall is available" in probe.stdout
    unpriv_ok = Path("/proc/sys/kernel/unprivileged_bpf_disabled").read_text().strip() == "0"
    assert detect().has("bpf") == (bpftool_says and (os.geteuid() == 0 or unpriv_ok))


def test_privileges_from_capeff() -> None:
    capeff = next(int(line.split()[1], 16) for line in Path("/proc/self/status").read_text().splitlines()
                  if line.startswith("CapEff:"))
    found = detect()
    assert found.has("root") == (os.geteuid() == 0)
    assert found.has("cap_sys_admin") == bool(capeff >> 21 & 1)
    assert found.has("cap_bpf") == bool(capeff >> 39 & 1)


def test_perf_breakpoint_check_really_opens_one() -> None:
    """Same call the check makes, but on a bogus length: the kernel must refuse it, so the check is not a
    constant answer."""
    assert caps_mod.check_perf_breakpoints().available
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.syscall
    fn.argtypes = [ctypes.c_long, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_ulong]
    fn.restype = ctypes.c_long
    import struct

    target = ctypes.c_long(0)
    attr = ctypes.create_string_buffer(72)
    struct.pack_into("<IIQ", attr, 0, 5, 72, 0)
    struct.pack_into("<I", attr, 52, 2)
    struct.pack_into("<QQ", attr, 56, ctypes.addressof(target), 3)  # length 3 is not a breakpoint length
    assert fn(298, ctypes.addressof(attr), 0, -1, -1, 0) == -1


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_unprivileged_user_gets_reasons_and_fixes(tracefs: Path) -> None:
    probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                            f"import sys; sys.path.insert(0, {str(ROOT)!r}); import unitrace"],
                           capture_output=True, text=True, cwd="/", check=False)
    if probe.returncode != 0:
        pytest.skip(f"user 65534 cannot run this interpreter or read the checkout: {probe.stderr.strip()[-200:]}")
    proc = _cli("doctor", "--json", user="65534")
    assert proc.returncode == 0, proc.stderr
    caps = json.loads(proc.stdout)["capabilities"]
    assert caps["root"]["status"] == "no" and "uid 65534" in caps["root"]["reason"]
    unpriv = Path("/proc/sys/kernel/unprivileged_bpf_disabled").read_text().strip()
    if unpriv != "0":
        assert caps["bpf"]["status"] == "no"
        assert f"unprivileged_bpf_disabled={unpriv}" in caps["bpf"]["reason"]
        assert caps["bpf"]["fix"] == "run as root"
    assert caps["tracefs"]["status"] == "no" and "not writable" in caps["tracefs"]["reason"]
    assert caps["ptrace"]["status"] == "yes"  # tracing the commands it starts needs no privilege


def test_doctor_table_and_json_agree(tracefs: Path) -> None:
    table = _cli("doctor")
    assert table.returncode == 0, table.stderr
    data = json.loads(_cli("doctor", "--json").stdout)
    assert list(data["capabilities"]) == NAMES
    rows = {line.split()[0]: line.split()[1] for line in table.stdout.splitlines()[3:]
            if line[:1].strip() and line.split()[0] in NAMES}
    assert rows == {n: c["status"] for n, c in data["capabilities"].items()}
    missing = [n for n, c in data["capabilities"].items() if not c["available"]]
    assert table.stdout.rstrip().splitlines()[-1] == (
        "not available: " + ", ".join(f"{n} ({data['capabilities'][n]['status']})" for n in missing)
        if missing else "everything unitrace can use is available")


def test_doctor_cleanup_removes_a_dead_sessions_instance(tracefs: Path) -> None:
    # a PID that is certainly not running: above pid_max
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    inst = tracefs / "instances" / f"unitrace-{pid_max + 1}"
    inst.mkdir()
    try:
        proc = _cli("doctor", "--cleanup")
        assert proc.returncode == 0, proc.stderr
        assert f"removed instance unitrace-{pid_max + 1}" in proc.stdout
        assert not inst.exists()
    finally:
        if inst.exists():
            inst.rmdir()


def test_kernel_config_parser() -> None:
    cfg = caps_mod.parse_kernel_config("CONFIG_A=y\n# CONFIG_KPROBES is not set\nCONFIG_S=\"x y\"\n# comment\n")
    assert cfg == {"CONFIG_A": "y", "CONFIG_KPROBES": "n", "CONFIG_S": '"x y"'}


def test_tracefs_mounts_parser() -> None:
    text = ("sysfs /sys sysfs rw 0 0\n"
            "tracefs /sys/kernel/tracing tracefs rw,nosuid 0 0\n"
            "nodev /mnt/with\\040space tracefs rw 0 0\n")
    assert tfs.tracefs_mounts(text) == [Path("/sys/kernel/tracing"), Path("/mnt/with space")]


def test_write_appends_and_error_log_explains(tracefs: Path) -> None:
    inst = tracefs / "instances" / f"unitrace-test-{os.getpid()}"
    inst.mkdir()
    try:
        tfs.write(inst / "set_event", "sched:sched_process_exec")
        tfs.write(inst / "set_event", "sched:sched_process_exit")
        assert tfs.read(inst / "set_event").split() == ["sched:sched_process_exec", "sched:sched_process_exit"]
        tfs.write(inst / "set_event", "", truncate=True)
        assert tfs.read(inst / "set_event").strip() == ""
    finally:
        inst.rmdir()
    tfs.clear_error_log(tracefs)
    bad = f"p:unitrace_{os.getpid()}/bad /nonexistent/unitrace-file:0x10"
    with pytest.raises(OSError):
        tfs.write(tracefs / "uprobe_events", bad)
    log = tfs.read_error_log(tracefs)
    assert "trace_uprobe: error:" in log and "/nonexistent/unitrace-file" in log


def test_leftover_names() -> None:
    assert owner_of("unitrace-1234") == 1234
    assert owner_of("unitrace-doctor-77") == 77
    assert owner_of("unitrace_55_2") == 55
    assert owner_of("unitrace-x") is None
    assert parse_dynamic_events("p:unitrace_5/open do_sys_open\nu:uprobes/x /bin/true:0x10\n") == [
        ("unitrace_5", "open"), ("uprobes", "x")]


def test_find_leftovers_sees_an_instance(tracefs: Path) -> None:
    inst = tracefs / "instances" / f"unitrace-test-{os.getpid()}"
    inst.mkdir()
    try:
        assert any(x.name == inst.name and x.owner_pid == os.getpid() for x in find_leftovers())
    finally:
        inst.rmdir()


def test_detection_for_the_planner_does_not_load_bcc() -> None:
    """Importing bcc loads LLVM (~0.3 s); every `unitrace trace` start asks the planner, so the quick
    detection must find bcc without importing it (doctor --deep imports and compiles)."""
    import subprocess
    import sys

    code = ("import sys; from unitrace.system import detect; caps = detect(); "
            "print(caps['bcc'].available, 'bcc' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1] == "False"
