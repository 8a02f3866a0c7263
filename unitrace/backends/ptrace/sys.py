"""Every raw kernel interface the ptrace backend uses, declared once (x86_64).

All foreign functions come from libc through ctypes with `use_errno=True` and full argtypes/restype;
structures the kernel fills are read with precompiled `struct.Struct`s from preallocated buffers so a
stop costs no allocation beyond the tuple the caller keeps.
"""

from __future__ import annotations

import ctypes
import os
import struct

c_int, c_long, c_ulong, c_void_p = ctypes.c_int, ctypes.c_long, ctypes.c_ulong, ctypes.c_void_p

# ---- ptrace requests (include/uapi/linux/ptrace.h) ------------------------------------------------
PTRACE_PEEKDATA = 2
PTRACE_PEEKUSER = 3
PTRACE_POKEUSER = 6
PTRACE_CONT = 7
PTRACE_KILL = 8
PTRACE_GETREGS = 12
PTRACE_DETACH = 17
PTRACE_SYSCALL = 24
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETEVENTMSG = 0x4201
PTRACE_GETSIGINFO = 0x4202
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_LISTEN = 0x4208
PTRACE_GET_SYSCALL_INFO = 0x420E

PTRACE_O_TRACESYSGOOD = 0x1
PTRACE_O_TRACEFORK = 0x2
PTRACE_O_TRACEVFORK = 0x4
PTRACE_O_TRACECLONE = 0x8
PTRACE_O_TRACEEXEC = 0x10
PTRACE_O_TRACEVFORKDONE = 0x20
PTRACE_O_TRACEEXIT = 0x40
PTRACE_O_TRACESECCOMP = 0x80
PTRACE_O_EXITKILL = 0x100000

PTRACE_EVENT_FORK = 1
PTRACE_EVENT_VFORK = 2
PTRACE_EVENT_CLONE = 3
PTRACE_EVENT_EXEC = 4
PTRACE_EVENT_VFORK_DONE = 5
PTRACE_EVENT_EXIT = 6
PTRACE_EVENT_SECCOMP = 7
PTRACE_EVENT_STOP = 128

PTRACE_SYSCALL_INFO_NONE = 0
PTRACE_SYSCALL_INFO_ENTRY = 1
PTRACE_SYSCALL_INFO_EXIT = 2
PTRACE_SYSCALL_INFO_SECCOMP = 3

# ---- x86 debug registers (arch/x86/include/asm/user_64.h, debugreg.h) -------------------------------
# offsetof(struct user, u_debugreg): DR0-DR3 hold addresses, DR6 says which fired, DR7 enables them
DEBUGREG_OFFSET = 848
DR_STATUS, DR_CONTROL = 6, 7
DR_COUNT = 4  # DR0-DR3
TRAP_HWBKPT = 4  # si_code of a SIGTRAP from a hardware breakpoint (include/uapi/asm-generic/siginfo.h)

# ---- wait ------------------------------------------------------------------------------------------
WNOHANG = 1
WUNTRACED = 2
WALL = 0x40000000  # __WALL: threads and clone children too

# ---- prctl / seccomp (include/uapi/linux/prctl.h, seccomp.h, audit.h) ------------------------------
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_TRACE = 0x7FF00000
AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

# x86_64 syscall numbers the engine itself must recognise
NR_EXECVE = 59
NR_EXECVEAT = 322
NR_EXIT = 60
NR_EXIT_GROUP = 231

_libc = ctypes.CDLL(None, use_errno=True)

raw_ptrace = _libc.ptrace
raw_ptrace.argtypes = [c_long, c_int, c_void_p, c_void_p]
raw_ptrace.restype = c_long

wait4 = _libc.wait4
wait4.argtypes = [c_int, c_void_p, c_int, c_void_p]
wait4.restype = c_int

process_vm_readv = _libc.process_vm_readv
process_vm_readv.argtypes = [c_int, c_void_p, c_ulong, c_void_p, c_ulong, c_ulong]
process_vm_readv.restype = ctypes.c_ssize_t

prctl = _libc.prctl
prctl.argtypes = [c_int, c_ulong, c_void_p, c_ulong, c_ulong]
prctl.restype = c_int

kill = _libc.kill
kill.argtypes = [c_int, c_int]
kill.restype = c_int

tgkill = _libc.tgkill
tgkill.argtypes = [c_int, c_int, c_int]
tgkill.restype = c_int

# signal(2), for the child between fork and exec (Python's signal.signal works on the main thread only)
libc_signal = _libc.signal
libc_signal.argtypes = [c_int, c_void_p]
libc_signal.restype = c_void_p
SIG_DFL = None

get_errno = ctypes.get_errno
set_errno = ctypes.set_errno


class Iovec(ctypes.Structure):
    _fields_ = [("iov_base", c_void_p), ("iov_len", ctypes.c_size_t)]


class SockFilter(ctypes.Structure):
    """struct sock_filter: one classic-BPF instruction."""

    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class SockFprog(ctypes.Structure):
    """struct sock_fprog: the seccomp filter handed to prctl(PR_SET_SECCOMP)."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


# struct ptrace_syscall_info: op, pad[3], arch, ip, sp, then a union of entry/exit/seccomp
SYSCALL_INFO_SIZE = 88
SYSCALL_INFO = struct.Struct("<B3xIQQ7Q")  # op, arch, ip, sp, nr|rval, args[6] (|is_error)
SYSCALL_INFO_EXIT = struct.Struct("<B3xIQQqB")  # op, arch, ip, sp, rval, is_error

# struct user_regs_struct (27 unsigned longs)
USER_REGS_FIELDS = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx",
                    "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base",
                    "ds", "es", "fs", "gs")
USER_REGS_SIZE = 27 * 8


class UserRegs(ctypes.Structure):
    """struct user_regs_struct, for PTRACE_GETREGS where PTRACE_GET_SYSCALL_INFO is missing."""

    _fields_ = [(name, ctypes.c_ulonglong) for name in USER_REGS_FIELDS]

USER_REGS = struct.Struct("<27Q")
REG = {name: i for i, name in enumerate(USER_REGS_FIELDS)}

SIGINFO_SIZE = 128


def ptrace(req: int, pid: int, addr: object = None, data: object = None) -> int:
    """ptrace(2) that raises OSError on failure (not for PEEK requests, whose -1 can be data)."""
    ret = raw_ptrace(req, pid, addr, data)
    if ret == -1:
        err = get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def ptrace_quiet(req: int, pid: int, addr: object = None, data: object = None) -> int:
    """ptrace(2) returning -errno on failure: a tracee may vanish (ESRCH) at any moment."""
    ret = raw_ptrace(req, pid, addr, data)
    return -get_errno() if ret == -1 else ret


def peek_debugreg(tid: int, index: int) -> int | None:
    """DR`index` of a stopped thread, None on failure (PEEKUSER returns data: errno tells)."""
    set_errno(0)
    ret = raw_ptrace(PTRACE_PEEKUSER, tid, DEBUGREG_OFFSET + 8 * index, None)
    if ret == -1 and get_errno():
        return None
    return ret & 0xFFFFFFFFFFFFFFFF


def poke_debugreg(tid: int, index: int, value: int) -> int:
    """DR`index` := value in a stopped thread; 0 or -errno (the kernel refuses bad addresses or DR7 bits)."""
    return ptrace_quiet(PTRACE_POKEUSER, tid, DEBUGREG_OFFSET + 8 * index, value)


def errno_error(what: str) -> OSError:
    err = get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def stop_kind(status: int) -> tuple[int, int]:
    """(stop signal, ptrace event) of a WIFSTOPPED status."""
    return (status >> 8) & 0xFF, (status >> 16) & 0xFFFF
