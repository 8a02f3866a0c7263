"""What this machine can trace, measured rather than assumed, with the reason and the fix for every "no".

`detect()` is what `unitrace doctor` prints and what the planner decides from (cached per process). Checks
that can be tried cheaply are tried (a BPF program load, a perf breakpoint, the function tracer); the ones
that change kernel state do so in a private tracefs instance named `unitrace-doctor-PID`, removed on every
exit path. The slow one (a real bcc compile, seconds) runs only with `deep=True` (`doctor --deep`).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import gzip
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from unitrace.system import tracefs

YES, NO, REFUSED = "yes", "no", "refused"
MOUNT_FIX = "mount -t tracefs nodev /sys/kernel/tracing (scripts/setup.sh does it)"


@dataclass(frozen=True, slots=True)
class Capability:
    name: str
    available: bool
    reason: str = ""  # why not; for an available capability, a remark (where, which value)
    fix: str = ""  # what to do about a "no"
    state: str = ""  # YES, NO or REFUSED (the kernel offers it but refused when we tried)

    @property
    def status(self) -> str:
        return self.state or (YES if self.available else NO)


class Capabilities(dict[str, Capability]):
    """Capabilities by name, in the order they were checked (doctor's table order)."""

    def has(self, name: str) -> bool:
        cap = self.get(name)
        return cap is not None and cap.available

    def why_not(self, name: str) -> str:
        cap = self.get(name)
        return cap.reason if cap is not None else f"{name} was not checked"


def _yes(name: str, remark: str = "") -> Capability:
    return Capability(name, True, remark, "", YES)


def _no(name: str, reason: str, fix: str = "", state: str = NO) -> Capability:
    return Capability(name, False, reason, fix, state)


def parse_kernel_config(text: str) -> dict[str, str]:
    """CONFIG_X -> value ("y", "m", a string; "n" for `# CONFIG_X is not set`)."""
    out = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            k, _, v = line.partition("=")
            out[k] = v
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            out[line[2:].split()[0]] = "n"
    return out


@functools.cache
def kernel_config() -> dict[str, str]:
    """The running kernel's configuration (/proc/config.gz, else /boot/config-RELEASE), or {} if neither."""
    for path in ("/proc/config.gz", f"/boot/config-{os.uname().release}"):
        try:
            if path.endswith(".gz"):
                with gzip.open(path) as f:
                    raw = f.read()
            else:
                raw = Path(path).read_bytes()
        except OSError:
            continue
        return parse_kernel_config(raw.decode(errors="replace"))
    return {}


def _config_says(option: str) -> str:
    """A reason when the kernel config is known and lacks `option`, else ""."""
    cfg = kernel_config()
    if cfg and cfg.get(option, "n") == "n":
        return f"{option} is not set in this kernel"
    return ""


def _read(path: str | Path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace", opener=lambda p, f: os.open(p, f | os.O_CLOEXEC)) as f:
            return f.read()
    except OSError:
        return ""


def _libc_syscall(*argtypes: type) -> Callable[..., int]:
    """libc's syscall(2) declared for one call shape (each caller passes its own argument types)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.syscall
    fn.argtypes = [ctypes.c_long, *argtypes]
    fn.restype = ctypes.c_long
    return fn


# ---------------------------------------------------------------- privileges

_CAP_BITS = {"CAP_SYS_ADMIN": 21, "CAP_PERFMON": 38, "CAP_BPF": 39}


def effective_caps() -> int:
    for line in _read("/proc/self/status").splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def check_root() -> Capability:
    if os.geteuid() == 0:
        return _yes("root")
    return _no("root", f"running as uid {os.geteuid()}", "run as root (sudo) for the kernel backends")


def _check_cap(cap: str) -> Callable[[], Capability]:
    def check() -> Capability:
        name = cap.lower()
        if effective_caps() >> _CAP_BITS[cap] & 1:
            return _yes(name)
        return _no(name, f"{cap} is not in this process's effective capabilities", "run as root")
    return check


# ---------------------------------------------------------------- ptrace

def check_ptrace() -> Capability:
    for line in _read("/proc/self/status").splitlines():
        if line.startswith("TracerPid:") and line.split()[1] != "0":
            return _no("ptrace", f"unitrace itself is being traced (by PID {line.split()[1]}), and a traced "
                       "process cannot be seized by its own tracee's tracer", "run unitrace outside the "
                       "debugger or strace")
    scope = _read("/proc/sys/kernel/yama/ptrace_scope").strip()
    if scope == "3":
        return _no("ptrace", "kernel.yama.ptrace_scope=3 forbids ptrace until reboot", "reboot, then sysctl "
                   "kernel.yama.ptrace_scope=1")
    if scope == "2" and not effective_caps() >> 19 & 1:  # CAP_SYS_PTRACE
        return _no("ptrace", "kernel.yama.ptrace_scope=2 allows ptrace only with CAP_SYS_PTRACE", "run as root")
    if scope == "1" and os.geteuid() != 0:
        return _yes("ptrace", "kernel.yama.ptrace_scope=1: commands we start, not -p of other processes")
    return _yes("ptrace", f"kernel.yama.ptrace_scope={scope}" if scope else "no Yama")


# ---------------------------------------------------------------- tracefs

def check_tracefs() -> Capability:
    root = tracefs.find_tracefs()
    if root is None:
        if os.path.isdir(tracefs.CANDIDATES[0]):
            return _no("tracefs", "tracefs is not mounted", MOUNT_FIX)
        return _no("tracefs", "this kernel has no tracefs", "a kernel built with CONFIG_FTRACE")
    if not os.access(root, os.W_OK):
        return _no("tracefs", f"tracefs at {root} is not writable by this user", "run as root")
    return _yes("tracefs", f"mounted at {root}")


def _tracefs_entry(name: str, rel: str, missing: str, fix: str, config: str = "") -> Callable[[], Capability]:
    def check() -> Capability:
        root = tracefs.find_tracefs()
        if root is None:
            return _no(name, "tracefs is not mounted", MOUNT_FIX)
        if (root / rel).exists():
            return _yes(name)
        return _no(name, (_config_says(config) if config else "") or missing, fix)
    return check


@functools.cache
def _available_tracers() -> tuple[str, ...]:
    root = tracefs.find_tracefs()
    return tuple(_read(root / "available_tracers").split()) if root else ()


def try_tracer(tracer: str) -> Capability:
    """Set `tracer` as current_tracer of a private instance and back: some kernels list a tracer and refuse
    it with EPERM. Never touches the top-level instance; the instance goes on every exit path."""
    name = tracer if tracer == "function_graph" else f"{tracer}_tracer"
    root = tracefs.find_tracefs()
    if root is None:
        return _no(name, "tracefs is not mounted", MOUNT_FIX)
    option = "CONFIG_FUNCTION_GRAPH_TRACER" if tracer == "function_graph" else "CONFIG_FUNCTION_TRACER"
    if tracer not in _available_tracers():
        return _no(name, _config_says(option) or f"available_tracers does not list {tracer}",
                   f"a kernel with {option} (the QEMU guest stage has one)")
    inst = root / "instances" / f"unitrace-doctor-{os.getpid()}"
    try:
        os.mkdir(inst)
    except OSError as exc:
        return _no(name, f"cannot create tracefs instance {inst}: {exc.strerror}", "run as root")
    try:
        tracefs.write(inst / "current_tracer", tracer, truncate=True)
    except OSError as exc:
        if exc.errno == errno.EPERM:
            return _no(name, f"available_tracers lists {tracer}, but setting it as current_tracer fails with "
                       "EPERM (this kernel refuses it)", "use a kernel that allows it (the QEMU guest stage "
                       "boots one); syscall and tracepoint probes need no tracer", state=REFUSED)
        return _no(name, f"setting current_tracer to {tracer} failed: {exc.strerror}")
    else:
        return _yes(name)
    finally:
        remove_instance(inst)


def remove_instance(inst: Path) -> None:
    """rmdir the instance; back to nop first, and retry while the kernel still holds it busy."""
    try:
        tracefs.write(inst / "current_tracer", "nop", truncate=True)
    except OSError:
        pass
    for _ in range(50):
        try:
            os.rmdir(inst)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            time.sleep(0.02)
    os.rmdir(inst)  # still busy after a second: let the error show


# ---------------------------------------------------------------- BPF

_BPF_PROG_LOAD = 5
_BPF_PROG_TYPE_SOCKET_FILTER = 1
_NR = {"x86_64": {"bpf": 321, "perf_event_open": 298}, "aarch64": {"bpf": 280, "perf_event_open": 241}}


def _nr(call: str) -> int | None:
    return _NR.get(os.uname().machine, {}).get(call)


def check_bpf() -> Capability:
    """Load a two-instruction socket filter (r0 = 0; exit) through bpf(BPF_PROG_LOAD)."""
    nr = _nr("bpf")
    if nr is None:
        return _no("bpf", f"unitrace does not know the bpf() syscall number on {os.uname().machine}")
    insns = struct.pack("<BBhi", 0xB7, 0, 0, 0) + struct.pack("<BBhi", 0x95, 0, 0, 0)
    prog = ctypes.create_string_buffer(insns, len(insns))
    license_ = ctypes.create_string_buffer(b"GPL")
    attr = ctypes.create_string_buffer(128)  # union bpf_attr: prog_type, insn_cnt, insns, license
    struct.pack_into("<IIQQ", attr, 0, _BPF_PROG_TYPE_SOCKET_FILTER, 2, ctypes.addressof(prog),
                     ctypes.addressof(license_))
    bpf = _libc_syscall(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint)
    fd = bpf(nr, _BPF_PROG_LOAD, ctypes.addressof(attr), 128)
    if fd >= 0:
        os.close(fd)
        return _yes("bpf", "BPF_PROG_LOAD of a socket filter worked")
    err = ctypes.get_errno()
    unpriv = _read("/proc/sys/kernel/unprivileged_bpf_disabled").strip()
    if err == errno.EPERM and unpriv in ("1", "2"):
        return _no("bpf", f"kernel.unprivileged_bpf_disabled={unpriv}: BPF is for root (CAP_BPF) only", "run as root")
    return _no("bpf", f"bpf(BPF_PROG_LOAD) failed: {os.strerror(err)}",
               _config_says("CONFIG_BPF_SYSCALL") and "a kernel with CONFIG_BPF_SYSCALL")


def check_bpf_sysctl() -> Capability:
    """kernel.unprivileged_bpf_disabled: whether this user may use BPF, by the sysctl alone."""
    value = _read("/proc/sys/kernel/unprivileged_bpf_disabled").strip()
    if not value:
        return _no("bpf_sysctl", "no kernel.unprivileged_bpf_disabled (no BPF syscall)",
                   "a kernel with CONFIG_BPF_SYSCALL")
    if value == "0":
        return _yes("bpf_sysctl", "kernel.unprivileged_bpf_disabled=0: any user")
    if os.geteuid() == 0 or effective_caps() >> _CAP_BITS["CAP_BPF"] & 1:
        return _yes("bpf_sysctl", f"kernel.unprivileged_bpf_disabled={value}: root only, and we are")
    return _no("bpf_sysctl", f"kernel.unprivileged_bpf_disabled={value}: root only", "run as root")


def check_btf() -> Capability:
    if Path("/sys/kernel/btf/vmlinux").exists():
        return _yes("btf", "/sys/kernel/btf/vmlinux")
    return _no("btf", _config_says("CONFIG_DEBUG_INFO_BTF") or "no /sys/kernel/btf/vmlinux",
               "a kernel with CONFIG_DEBUG_INFO_BTF")


def kernel_headers() -> Path:
    return Path(f"/lib/modules/{os.uname().release}/build")


def _bcc_missing() -> str:
    """Why `import bcc` would fail, found without importing it ("" when it would work)."""
    import ctypes.util
    import importlib.util

    from unitrace.backends.bpf.session import DIST_PACKAGES

    if importlib.util.find_spec("bcc") is None and not os.path.isdir(os.path.join(DIST_PACKAGES, "bcc")):
        return "no bcc module (Debian's python3-bpfcc)"
    if ctypes.util.find_library("bcc") is None:
        return "no libbcc shared library"
    return ""


def check_bcc(deep: bool = False) -> Capability:
    """bcc importable (Debian's python3-bpfcc) and kernel headers for its run-time compiles; with `deep`,
    compile a trivial program for real (seconds)."""
    from unitrace.errors import UnitraceError

    if not deep:
        # importing bcc loads libbcc and LLVM (~0.3 s): the planner asks on every start, so look without
        # loading; `doctor --deep` imports and compiles for real
        missing = _bcc_missing()
        if missing:
            return _no("bcc", f"bcc is not importable: {missing}", "apt-get install python3-bpfcc (scripts/setup.sh)")
        bcc = None
    else:
        try:
            from unitrace.backends.bpf.session import import_bcc

            bcc = import_bcc()
        except (UnitraceError, ImportError, OSError) as exc:
            return _no("bcc", f"bcc is not importable: {exc}", "apt-get install python3-bpfcc (scripts/setup.sh)")
    build = kernel_headers()
    if not (build / "include").is_dir() and not Path("/sys/kernel/kheaders.tar.xz").exists():
        return _no("bcc", f"no kernel headers for {os.uname().release} ({build} is missing), so bcc cannot "
                   "compile", "apt-get install linux-headers-amd64 and link them there (scripts/setup.sh does it)")
    where = f"headers at {build.resolve()}"
    if bcc is None:
        return _yes("bcc", where + " (doctor --deep compiles a program)")
    try:
        prog = bcc.BPF(text="int unitrace_doctor(void *ctx) { return 0; }")
        prog.cleanup()
    except Exception as exc:  # bcc raises bare Exception on a failed compile
        return _no("bcc", f"bcc cannot compile a trivial program: {exc}", "check the kernel headers at "
                   f"{build} (scripts/setup.sh links Debian's)")
    return _yes("bcc", where + ", a trivial program compiled")


# ---------------------------------------------------------------- perf

def check_perf_paranoid() -> Capability:
    value = _read("/proc/sys/kernel/perf_event_paranoid").strip()
    if not value:
        return _no("perf_event_paranoid", "no kernel.perf_event_paranoid (no perf events)",
                   "a kernel with CONFIG_PERF_EVENTS")
    privileged = os.geteuid() == 0 or effective_caps() >> _CAP_BITS["CAP_PERFMON"] & 1
    if int(value) <= 2 or privileged:
        return _yes("perf_event_paranoid", f"kernel.perf_event_paranoid={value}"
                    + (" (root is exempt)" if privileged else ": user-space events of own processes"))
    return _no("perf_event_paranoid", f"kernel.perf_event_paranoid={value} forbids perf events for users",
               "run as root, or sysctl kernel.perf_event_paranoid=2")


def check_perf_breakpoints() -> Capability:
    """perf_event_open of a write breakpoint on a local variable of this thread, then close it."""
    nr = _nr("perf_event_open")
    if nr is None:
        return _no("perf_breakpoints", f"unitrace does not know perf_event_open on {os.uname().machine}")
    target = ctypes.c_long(0)
    # struct perf_event_attr: type u32 @0, size u32 @4, config u64 @8, flags u64 @40, bp_type u32 @52,
    # bp_addr u64 @56, bp_len u64 @64 (PERF_ATTR_SIZE_VER1 = 72 covers these)
    attr = ctypes.create_string_buffer(72)
    struct.pack_into("<IIQ", attr, 0, 5, 72, 0)  # PERF_TYPE_BREAKPOINT
    struct.pack_into("<Q", attr, 40, 1 | 1 << 5 | 1 << 6)  # disabled, exclude_kernel, exclude_hv
    struct.pack_into("<I", attr, 52, 2)  # HW_BREAKPOINT_W
    struct.pack_into("<QQ", attr, 56, ctypes.addressof(target), 8)
    perf_event_open = _libc_syscall(ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_ulong)
    fd = perf_event_open(nr, ctypes.addressof(attr), 0, -1, -1, 0)
    if fd >= 0:
        os.close(fd)
        return _yes("perf_breakpoints", "a write breakpoint on a local variable was accepted")
    err = ctypes.get_errno()
    paranoid = _read("/proc/sys/kernel/perf_event_paranoid").strip()
    fix = "a kernel with CONFIG_HAVE_HW_BREAKPOINT" if err in (errno.ENOENT, errno.EOPNOTSUPP) else \
        "run as root, or lower kernel.perf_event_paranoid"
    return _no("perf_breakpoints", f"perf_event_open(PERF_TYPE_BREAKPOINT) failed: {os.strerror(err)}"
               + (f" (kernel.perf_event_paranoid={paranoid})" if paranoid else ""), fix)


def checks(deep: bool = False) -> dict[str, Callable[[], Capability]]:
    """Every check by capability name, in doctor's order."""
    return {
        "root": check_root,
        "cap_sys_admin": _check_cap("CAP_SYS_ADMIN"),
        "cap_bpf": _check_cap("CAP_BPF"),
        "cap_perfmon": _check_cap("CAP_PERFMON"),
        "ptrace": check_ptrace,
        "tracefs": check_tracefs,
        "instances": _tracefs_entry("instances", "instances", "no tracefs instances directory",
                                    "a kernel newer than 4.0"),
        "syscall_events": _tracefs_entry("syscall_events", "events/syscalls", "no events/syscalls in tracefs",
                                         "a kernel with CONFIG_FTRACE_SYSCALLS", "CONFIG_FTRACE_SYSCALLS"),
        "tracepoints": _tracefs_entry("tracepoints", "events/sched/sched_process_exec", "no sched tracepoints "
                                      "in tracefs", "a kernel with CONFIG_TRACEPOINTS"),
        "uprobes": _tracefs_entry("uprobes", "uprobe_events", "no uprobe_events in tracefs",
                                  "a kernel with CONFIG_UPROBE_EVENTS", "CONFIG_UPROBE_EVENTS"),
        "kprobes": _tracefs_entry("kprobes", "kprobe_events", "no kprobe_events in tracefs",
                                  "a kernel with CONFIG_KPROBES and CONFIG_KPROBE_EVENTS (the QEMU guest stage "
                                  "has one)", "CONFIG_KPROBES"),
        "function_tracer": lambda: try_tracer("function"),
        "function_graph": lambda: try_tracer("function_graph"),
        "bpf": check_bpf,
        "bpf_sysctl": check_bpf_sysctl,
        "btf": check_btf,
        "bcc": lambda: check_bcc(deep),
        "perf_event_paranoid": check_perf_paranoid,
        "perf_breakpoints": check_perf_breakpoints,
    }


@functools.cache
def detect(deep: bool = False) -> Capabilities:
    """Every capability of this machine for this process (cached: the kernel does not change under us)."""
    out = Capabilities()
    for name, check in checks(deep).items():
        try:
            out[name] = check()
        except Exception as exc:  # a broken check says so in its own row instead of hiding the others
            out[name] = _no(name, f"the check itself failed: {exc!r}", "report this as a unitrace bug")
    return out
