"""Signal names and strace's rendering of a siginfo_t (`--- SIGCHLD {...} ---` lines).

Numbers are the x86_64/arm64 ones of the uapi <asm/signal.h> (identical on both for 1..31).
Real-time signals are named as strace names them: SIGRTMIN for 32, SIGRT_<n> for 32+n.
si_code names are those of <asm-generic/siginfo.h>.
"""

from __future__ import annotations

import struct

_CLASSIC = (
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL",
    "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT",
    "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF",
    "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
)
SIGRTMIN = 32
NSIG = 64

SIGNAL_NAMES: dict[int, str] = {i + 1: n for i, n in enumerate(_CLASSIC)}
SIGNAL_NAMES[SIGRTMIN] = "SIGRTMIN"
SIGNAL_NAMES.update({SIGRTMIN + k: f"SIGRT_{k}" for k in range(1, NSIG - SIGRTMIN + 1)})
SIGNAL_BY_NAME: dict[str, int] = {n: s for s, n in SIGNAL_NAMES.items()}
SIGNAL_BY_NAME.update({"SIGIOT": 6, "SIGPOLL": 29, "SIGUNUSED": 31, "SIGRTMAX": NSIG})


def signal_name(sig: int) -> str:
    """`SIGTERM`; a number strace does not know is printed as a number."""
    return SIGNAL_NAMES.get(sig) or str(sig)


# si_code values common to every signal (negative: sent by a process; 0x80: by the kernel).
_SI_COMMON = {
    0: "SI_USER", 0x80: "SI_KERNEL", -1: "SI_QUEUE", -2: "SI_TIMER", -3: "SI_MESGQ",
    -4: "SI_ASYNCIO", -5: "SI_SIGIO", -6: "SI_TKILL", -7: "SI_DETHREAD", -60: "SI_ASYNCNL",
}
_SI_PER_SIGNAL = {
    "SIGILL": ("ILL_ILLOPC", "ILL_ILLOPN", "ILL_ILLADR", "ILL_ILLTRP", "ILL_PRVOPC", "ILL_PRVREG",
               "ILL_COPROC", "ILL_BADSTK", "ILL_BADIADDR"),
    "SIGFPE": ("FPE_INTDIV", "FPE_INTOVF", "FPE_FLTDIV", "FPE_FLTOVF", "FPE_FLTUND", "FPE_FLTRES",
               "FPE_FLTINV", "FPE_FLTSUB", "FPE_DECOVF", "FPE_DECDIV", "FPE_DECERR", "FPE_INVASC",
               "FPE_INVDEC", "FPE_FLTUNK", "FPE_CONDTRAP"),
    "SIGSEGV": ("SEGV_MAPERR", "SEGV_ACCERR", "SEGV_BNDERR", "SEGV_PKUERR", "SEGV_ACCADI",
                "SEGV_ADIDERR", "SEGV_ADIPERR", "SEGV_MTEAERR", "SEGV_MTESERR", "SEGV_CPERR"),
    "SIGBUS": ("BUS_ADRALN", "BUS_ADRERR", "BUS_OBJERR", "BUS_MCEERR_AR", "BUS_MCEERR_AO"),
    "SIGTRAP": ("TRAP_BRKPT", "TRAP_TRACE", "TRAP_BRANCH", "TRAP_HWBKPT", "TRAP_UNK", "TRAP_PERF"),
    "SIGCHLD": ("CLD_EXITED", "CLD_KILLED", "CLD_DUMPED", "CLD_TRAPPED", "CLD_STOPPED", "CLD_CONTINUED"),
    "SIGIO": ("POLL_IN", "POLL_OUT", "POLL_MSG", "POLL_ERR", "POLL_PRI", "POLL_HUP"),
    "SIGSYS": ("SYS_SECCOMP", "SYS_USER_DISPATCH"),
}
_FAULTS = frozenset({"SIGILL", "SIGFPE", "SIGSEGV", "SIGBUS"})
_AUDIT_ARCH = {0xC000003E: "AUDIT_ARCH_X86_64", 0x40000003: "AUDIT_ARCH_I386", 0xC00000B7: "AUDIT_ARCH_AARCH64"}
CLOCK_TICKS = 100  # sysconf(_SC_CLK_TCK) on Linux; si_utime/si_stime are in these ticks


def si_code_name(signame: str, code: int) -> str:
    per = _SI_PER_SIGNAL.get(signame)
    if per is not None and 1 <= code <= len(per):
        return per[code - 1]
    return _SI_COMMON.get(code) or str(code)


def _ptr(v: int) -> str:
    return "NULL" if v == 0 else f"{v:#x}"


def _ticks(t: int) -> str:
    # strace adds the seconds as a comment when the tick count is not zero
    return f"{t} /* {t / CLOCK_TICKS:.2f} s */" if t else "0"


def format_siginfo(raw: bytes, syscall_name=None) -> str:
    """The `{si_signo=..., ...}` part of a strace signal line, from a raw x86_64/arm64 siginfo_t
    (at least 48 bytes). `syscall_name(nr)` names si_syscall for SIGSYS (default: the number)."""
    signo, errno_, code = struct.unpack_from("<iii", raw, 0)
    name = signal_name(signo)
    parts = [f"si_signo={name}"]
    if errno_:
        from unitrace.decode.errnos import ERRNO_NAMES
        parts.append(f"si_errno={ERRNO_NAMES.get(errno_, errno_)}")
    parts.append(f"si_code={si_code_name(name, code)}")
    if code <= 0 or (code == 0x80 and name not in _FAULTS):
        # sent by a process (SI_USER, SI_QUEUE, SI_TKILL...) or by the kernel on its behalf
        if code == -2:  # SI_TIMER
            tid, overrun, val = struct.unpack_from("<iiQ", raw, 16)
            parts += [f"si_timerid={tid:#x}", f"si_overrun={overrun}",
                      f"si_int={val & 0xFFFFFFFF:d}", f"si_ptr={_ptr(val)}"]
        elif code != 0x80:
            pid, uid = struct.unpack_from("<iI", raw, 16)
            parts += [f"si_pid={pid}", f"si_uid={uid}"]
            if code in (-1, -3):  # SI_QUEUE, SI_MESGQ carry a sigval
                (val,) = struct.unpack_from("<Q", raw, 24)
                sival_int = struct.unpack_from("<i", raw, 24)[0]
                parts += [f"si_int={sival_int}", f"si_ptr={_ptr(val)}"]
    elif name == "SIGCHLD":
        pid, uid, status, utime, stime = struct.unpack_from("<iIi4xqq", raw, 16)
        st = signal_name(status) if code in (2, 3, 4, 5) else str(status)  # killed/dumped/trapped/stopped
        parts += [f"si_pid={pid}", f"si_uid={uid}", f"si_status={st}",
                  f"si_utime={_ticks(utime)}", f"si_stime={_ticks(stime)}"]
    elif name in _FAULTS or code == 0x80:
        (addr,) = struct.unpack_from("<Q", raw, 16)
        parts.append(f"si_addr={_ptr(addr)}")
    elif name == "SIGIO":
        band, fd = struct.unpack_from("<qi", raw, 16)
        parts += [f"si_band={band}", f"si_fd={fd}"]
    elif name == "SIGSYS":
        addr, nr, arch = struct.unpack_from("<QiI", raw, 16)
        sc = syscall_name(nr) if syscall_name else str(nr)
        parts += [f"si_call_addr={_ptr(addr)}", f"si_syscall={sc}",
                  f"si_arch={_AUDIT_ARCH.get(arch, f'{arch:#x}')}"]
    elif name == "SIGTRAP":
        (addr,) = struct.unpack_from("<Q", raw, 16)
        parts.append(f"si_addr={_ptr(addr)}")
    return "{" + ", ".join(parts) + "}"


def signal_text(sig: int, xlat: str) -> str:
    """A signal number as strace's printsignal under -X (raw: the number; verbose: number and name)."""
    if xlat == "raw":
        return str(sig)
    name = signal_name(sig)
    return f"{sig} /* {name} */" if xlat == "verbose" and not name.isdigit() else name
