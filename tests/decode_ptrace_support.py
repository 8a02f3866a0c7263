"""A minimal x86_64 ptrace loop for decoder differential tests: runs a program, feeds each syscall's
raw registers and live memory to StraceDecoder, and returns strace-style lines. Not the tracing
engine (that is unitrace.backends.ptrace); just enough to compare decoder output with strace's."""

from __future__ import annotations

import ctypes
import os
import signal

from unitrace.decode.api import FormatOptions
from unitrace.decode.syscall import StraceDecoder

PTRACE_TRACEME, PTRACE_GETREGS, PTRACE_SETOPTIONS, PTRACE_SYSCALL = 0, 12, 0x4200, 24
PTRACE_O_TRACESYSGOOD, PTRACE_O_EXITKILL = 1, 0x100000

_libc = ctypes.CDLL(None, use_errno=True)
_ptrace = _libc.ptrace
_ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
_ptrace.restype = ctypes.c_long


class _Regs(ctypes.Structure):
    _fields_ = [(n, ctypes.c_ulonglong) for n in (
        "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi", "rdi",
        "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs")]


class ProcMemory:
    def __init__(self, pid: int) -> None:
        self.fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.fd)

    def read(self, addr: int, size: int) -> bytes | None:
        try:
            data = os.pread(self.fd, size, addr)
        except OSError:
            return None
        return data if len(data) == size else None

    def read_cstr(self, addr: int, limit: int) -> bytes | None:
        out = b""
        while len(out) <= limit:
            try:
                chunk = os.pread(self.fd, 256, addr + len(out))
            except OSError:
                chunk = b""
            if not chunk:
                return out if out else None
            nul = chunk.find(b"\0")
            if nul >= 0:
                return (out + chunk[:nul])[: limit + 1]
            out += chunk
        return out[: limit + 1]


def trace_lines(argv: list[str], options: FormatOptions) -> list[str]:
    """Lines `name(args) = ret` for every syscall after the initial execve of argv[0]."""
    pid = os.fork()
    if pid == 0:  # child: become a tracee, then exec
        try:
            _ptrace(PTRACE_TRACEME, 0, None, None)
            os.kill(os.getpid(), signal.SIGSTOP)
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    os.waitpid(pid, 0)
    _ptrace(PTRACE_SETOPTIONS, pid, None, ctypes.c_void_p(PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL))
    dec = StraceDecoder(options)
    mem = ProcMemory(pid)
    regs = _Regs()
    lines: list[str] = []
    call = None
    try:
        while True:
            _ptrace(PTRACE_SYSCALL, pid, None, None)
            _, status = os.waitpid(pid, 0)
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                break
            if not (os.WIFSTOPPED(status) and os.WSTOPSIG(status) == (signal.SIGTRAP | 0x80)):
                continue
            _ptrace(PTRACE_GETREGS, pid, None, ctypes.byref(regs))
            if call is None:
                args = (regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9)
                call = dec.enter(pid, regs.orig_rax, args, mem)
                if call.info is not None and call.info.name in ("exit_group", "exit"):
                    lines.append(f"{call.info.name}({', '.join(call.entry_args())}) = ?")
            else:
                texts, ret, _ = dec.exit(call, regs.rax, mem)
                name = call.info.name if call.info else "?"
                lines.append(f"{name}({', '.join(texts)}) = {ret}")
                call = None
                if name in ("execve", "execveat"):  # the new image has new memory
                    mem.close()
                    mem = ProcMemory(pid)
    finally:
        mem.close()
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    return lines
