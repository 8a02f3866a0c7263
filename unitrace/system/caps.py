"""What this machine can trace, measured rather than assumed, with the reason and the fix for every "no".

`detect()` is what `unitrace doctor` prints and what the planner decides from. Each probe is cheap; the ones
that change kernel state (the function tracer) do so in a private tracefs instance they remove at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import gzip
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from unitrace.backends.ftrace.tracefs import find_tracefs


@dataclass(frozen=True, slots=True)
class Capability:
    name: str
    available: bool
    reason: str = ""  # why not (or a remark when available)
    fix: str = ""
    state: str = ""  # "yes", "no", "refused"

    @property
    def status(self) -> str:
        return self.state or ("yes" if self.available else "no")


def _yes(name: str, remark: str = "") -> Capability:
    return Capability(name, True, remark, "", "yes")


def _no(name: str, reason: str, fix: str = "", state: str = "no") -> Capability:
    return Capability(name, False, reason, fix, state)


@functools.cache
def kernel_config() -> dict[str, str]:
    for path in ("/proc/config.gz", f"/boot/config-{os.uname().release}"):
        try:
            if path.endswith(".gz"):
                with gzip.open(path) as f:
                    raw = f.read()
            else:
                raw = Path(path).read_bytes()
        except OSError:
            continue
        out = {}
        for line in raw.decode(errors="replace").splitlines():
            if line.startswith("CONFIG_") and "=" in line:
                k, _, v = line.partition("=")
                out[k] = v
            elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
                out[line[2:].split()[0]] = "n"
        return out
    return {}


def _config_says(option: str) -> str:
    cfg = kernel_config()
    if not cfg:
        return ""
    value = cfg.get(option, "n")
    return f"{option} is not set in this kernel" if value == "n" else ""


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace", opener=lambda p, f: os.open(p, f | os.O_CLOEXEC)) as f:
            return f.read()
    except OSError:
        return ""


def check_root() -> Capability:
    if os.geteuid() == 0:
        return _yes("root")
    return _no("root", f"running as uid {os.geteuid()}", "run as root (sudo) for the kernel backends")


def check_ptrace() -> Capability:
    status = _read("/proc/self/status")
    for line in status.splitlines():
        if line.startswith("TracerPid:") and line.split()[1] != "0":
            return _no("ptrace", f"unitrace itself is being traced (by PID {line.split()[1]}): a traced process "
                       "cannot trace", "run unitrace outside the debugger")
    scope = _read("/proc/sys/kernel/yama/ptrace_scope").strip()
    if scope == "3":
        return _no("ptrace", "kernel.yama.ptrace_scope=3 forbids ptrace entirely", "reboot with ptrace_scope < 3")
    if scope in ("1", "2") and os.geteuid() != 0:
        return _yes("ptrace", f"kernel.yama.ptrace_scope={scope}: started commands only; -p needs root")
    return _yes("ptrace")


def check_tracefs() -> Capability:
    root = find_tracefs()
    if root is None:
        if os.path.isdir("/sys/kernel/tracing"):
            return _no("tracefs", "tracefs is not mounted", "mount -t tracefs nodev /sys/kernel/tracing "
                       "(scripts/setup.sh does it)")
        return _no("tracefs", "this kernel has no tracefs (CONFIG_TRACING)", "a kernel built with CONFIG_FTRACE")
    if not os.access(root / "instances", os.W_OK):
        return _no("tracefs", f"{root} is not writable by this user", "run as root")
    return _yes("tracefs", str(root))


def _tracefs_file(name: str, rel: str, missing: str, fix: str, config: str = "") -> Capability:
    root = find_tracefs()
    if root is None:
        return _no(name, "tracefs is not mounted", "mount -t tracefs nodev /sys/kernel/tracing")
    if (root / rel).exists():
        return _yes(name)
    why = _config_says(config) if config else ""
    return _no(name, why or missing, fix)


def check_function_tracer() -> Capability:
    """Really try, in an instance of our own: some kernels list the tracer and refuse it (EPERM)."""
    root = find_tracefs()
    if root is None:
        return _no("function_tracer", "tracefs is not mounted", "mount -t tracefs nodev /sys/kernel/tracing")
    if "function" not in _read(str(root / "available_tracers")).split():
        return _no("function_tracer", _config_says("CONFIG_FUNCTION_TRACER") or "the function tracer is not built",
                   "a kernel with CONFIG_FUNCTION_TRACER")
    if os.geteuid() != 0:
        return _no("function_tracer", "needs root to try", "run as root")
    inst = root / "instances" / f"unitrace-doctor-{os.getpid()}"
    try:
        os.mkdir(inst)
    except OSError as exc:
        return _no("function_tracer", f"cannot create a tracefs instance: {exc.strerror}", "run as root")
    try:
        fd = os.open(inst / "current_tracer", os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            os.write(fd, b"function")
        finally:
            os.close(fd)
        with contextlib.suppress(OSError):
            fd = os.open(inst / "current_tracer", os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
            os.write(fd, b"nop")
            os.close(fd)
        return _yes("function_tracer")
    except OSError as exc:
        if exc.errno == errno.EPERM:
            return _no("function_tracer", "the kernel lists it but refuses it: writing current_tracer fails with "
                       "EPERM (a locked-down or virtualised kernel)", "use kprobes or the bpf backend for single "
                       "functions; the QEMU guest stage tests the function tracer", state="refused")
        return _no("function_tracer", f"writing current_tracer failed: {exc.strerror}", "")
    finally:
        for _ in range(50):
            try:
                os.rmdir(inst)
                break
            except OSError:
                import time

                time.sleep(0.02)


_BPF_PROG_LOAD = 5
_BPF_PROG_TYPE_SOCKET_FILTER = 1
_NR_BPF = {"x86_64": 321, "aarch64": 280}


def check_bpf() -> Capability:
    """Load a two-instruction socket filter (r0 = 0; exit) through the bpf() syscall."""
    libc = ctypes.CDLL(None, use_errno=True)
    syscall = libc.syscall
    syscall.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint]
    syscall.restype = ctypes.c_long
    insns = struct.pack("<BBhi", 0xB7, 0, 0, 0) + struct.pack("<BBhi", 0x95, 0, 0, 0)
    prog = ctypes.create_string_buffer(insns)
    license_ = ctypes.create_string_buffer(b"GPL")
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("<IIQQ", attr, 0, _BPF_PROG_TYPE_SOCKET_FILTER, 2, ctypes.addressof(prog),
                     ctypes.addressof(license_))
    nr = _NR_BPF.get(os.uname().machine)
    if nr is None:
        return _no("bpf", f"unknown bpf() syscall number on {os.uname().machine}")
    fd = syscall(nr, _BPF_PROG_LOAD, ctypes.addressof(attr), 128)
    if fd >= 0:
        os.close(fd)
        return _yes("bpf")
    err = ctypes.get_errno()
    unpriv = _read("/proc/sys/kernel/unprivileged_bpf_disabled").strip()
    if err == errno.EPERM and unpriv in ("1", "2") and os.geteuid() != 0:
        return _no("bpf", f"kernel.unprivileged_bpf_disabled={unpriv}: BPF is root-only here", "run as root")
    return _no("bpf", f"bpf(BPF_PROG_LOAD) failed: {os.strerror(err)}",
               _config_says("CONFIG_BPF_SYSCALL") or "a kernel with CONFIG_BPF_SYSCALL")


def check_bcc() -> Capability:
    from unitrace.errors import UnitraceError

    try:
        from unitrace.backends.bpf.session import import_bcc

        import_bcc()
    except (UnitraceError, ImportError, OSError) as exc:
        return _no("bcc", f"bcc is not importable: {exc}", "apt-get install python3-bpfcc (scripts/setup.sh)")
    build = Path(f"/lib/modules/{os.uname().release}/build")
    if not (build / "include").exists() and not Path("/sys/kernel/kheaders.tar.xz").exists():
        return _no("bcc", f"no kernel headers for {os.uname().release} ({build} is missing)",
                   "apt-get install linux-headers-amd64 and link them (scripts/setup.sh does it)")
    return _yes("bcc", f"headers at {build.resolve()}")


def check_perf_breakpoints() -> Capability:
    """perf_event_open of a PERF_TYPE_BREAKPOINT on a local variable, for this thread."""
    libc = ctypes.CDLL(None, use_errno=True)
    syscall = libc.syscall
    syscall.argtypes = [ctypes.c_long, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_ulong]
    syscall.restype = ctypes.c_long
    target = ctypes.c_long(0)
    attr = ctypes.create_string_buffer(128)
    # type=PERF_TYPE_BREAKPOINT(5), size, config=0, sample_period, ..., bp_type at 0x48? use the documented
    # layout: type u32 @0, size u32 @4, config u64 @8, sample_period @16, sample_type @24, read_format @32,
    # flags u64 @40, wakeup @48 u32, bp_type u32 @52, bp_addr u64 @56, bp_len u64 @64
    struct.pack_into("<IIQ", attr, 0, 5, 128, 0)
    struct.pack_into("<Q", attr, 40, 1 | (1 << 5) | (1 << 6))  # disabled, exclude_kernel, exclude_hv
    struct.pack_into("<I", attr, 52, 2)  # HW_BREAKPOINT_W
    struct.pack_into("<QQ", attr, 56, ctypes.addressof(target), 8)
    nr = {"x86_64": 298, "aarch64": 241}.get(os.uname().machine, -1)
    fd = syscall(nr, ctypes.addressof(attr), 0, -1, -1, 0)
    if fd >= 0:
        os.close(fd)
        return _yes("perf_breakpoints")
    err = ctypes.get_errno()
    paranoid = _read("/proc/sys/kernel/perf_event_paranoid").strip()
    return _no("perf_breakpoints", f"perf_event_open(PERF_TYPE_BREAKPOINT) failed: {os.strerror(err)}"
               + (f" (perf_event_paranoid={paranoid})" if paranoid else ""), "run as root, or lower "
               "kernel.perf_event_paranoid")


CHECKS: dict[str, Callable[[], Capability]] = {
    "root": check_root,
    "ptrace": check_ptrace,
    "tracefs": check_tracefs,
    "instances": lambda: _tracefs_file("instances", "instances", "no tracefs instances", "a newer kernel"),
    "syscall_events": lambda: _tracefs_file("syscall_events", "events/syscalls", "no syscall trace events",
                                            "a kernel with CONFIG_FTRACE_SYSCALLS", "CONFIG_FTRACE_SYSCALLS"),
    "tracepoints": lambda: _tracefs_file("tracepoints", "events/sched/sched_process_exec", "no tracepoints",
                                         "a kernel with CONFIG_TRACEPOINTS"),
    "uprobes": lambda: _tracefs_file("uprobes", "uprobe_events", "no uprobe_events",
                                     "a kernel with CONFIG_UPROBE_EVENTS", "CONFIG_UPROBE_EVENTS"),
    "kprobes": lambda: _tracefs_file("kprobes", "kprobe_events", "no kprobe_events in tracefs",
                                     "a kernel with CONFIG_KPROBES and CONFIG_KPROBE_EVENTS (the QEMU guest stage "
                                     "has one)", "CONFIG_KPROBES"),
    "function_tracer": check_function_tracer,
    "bpf": check_bpf,
    "btf": lambda: _yes("btf") if Path("/sys/kernel/btf/vmlinux").exists() else _no(
        "btf", "no /sys/kernel/btf/vmlinux", "a kernel with CONFIG_DEBUG_INFO_BTF"),
    "bcc": check_bcc,
    "perf_breakpoints": check_perf_breakpoints,
}


@functools.cache
def detect() -> dict[str, Capability]:
    out: dict[str, Capability] = {}
    for name, check in CHECKS.items():
        try:
            out[name] = check()
        except Exception as exc:  # a check that breaks says so instead of hiding the others
            out[name] = _no(name, f"the check itself failed: {exc!r}")
    return out
