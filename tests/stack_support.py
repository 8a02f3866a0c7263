"""Helpers for the stack tests: build the corpus in tests/progs/stack, stop a program at its SIGSTOP, take its
registers and memory through ptrace (as the ptrace engine does), and ask gdb for its own backtrace of the
same stop so the two can be compared frame by frame.

Both runs disable address-space randomisation (gdb does by default; we run the program under `setarch -R`),
so code addresses agree between gdb's run and ours and frames can be compared by pc.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from unitrace.stack.unwind import Maps

PROGS = Path(__file__).parent / "progs" / "stack"
GDB_SCRIPT = PROGS / "gdb_frames.py"

PTRACE_GETREGS = 12
PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207

_libc = ctypes.CDLL(None, use_errno=True)
_ptrace = _libc.ptrace
_ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
_ptrace.restype = ctypes.c_long


class UserRegs(ctypes.Structure):
    """struct user_regs_struct (x86_64, sys/user.h)."""

    _fields_ = [(n, ctypes.c_ulonglong) for n in (
        "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx", "rsi",
        "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs")]


# user_regs_struct field -> DWARF register number (System V psABI figure 3.36)
DWARF_REGS = {"rax": 0, "rdx": 1, "rcx": 2, "rbx": 3, "rsi": 4, "rdi": 5, "rbp": 6, "rsp": 7,
              **{f"r{n}": n for n in range(8, 16)}, "rip": 16}

# (name, compiler, flags): the grid every corpus program is built with
VARIANTS: list[tuple[str, tuple[str, ...]]] = [
    ("O0-fp", ("-O0", "-fno-omit-frame-pointer")),
    ("O2-fp", ("-O2", "-fno-omit-frame-pointer")),
    ("O2-nofp", ("-O2", "-fomit-frame-pointer")),
    ("O3-nofp", ("-O3", "-fomit-frame-pointer")),
    # no unwind tables at all: only the frame-pointer chain can say who called whom
    ("O2-fp-nocfi", ("-O2", "-fno-omit-frame-pointer", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables")),
]
C_PROGRAMS = ("signal", "recurse", "alloca", "tailcall", "noreturn", "inline", "smash")
CXX_PROGRAMS = ("cxx",)


def build(name: str, variant: str, outdir: Path) -> Path:
    flags = dict(VARIANTS)[variant]
    src = PROGS / (f"{name}.cc" if name in CXX_PROGRAMS else f"{name}.c")
    compiler = "g++" if src.suffix == ".cc" else "gcc"
    exe = outdir / f"{name}-{variant}"
    if not exe.exists():
        # smash.c must reach its stop with the damage in place: no stack protector to abort first
        subprocess.run([compiler, "-g", *flags, "-fno-stack-protector", "-o", str(exe), str(src)], check=True,
                       capture_output=True)
    return exe


class ProcMem:
    """decode.api.Memory over /proc/PID/mem (the tracee is ptrace-stopped, so we may read it)."""

    def __init__(self, pid: int) -> None:
        self._fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)

    def read(self, addr: int, size: int) -> bytes | None:
        if addr <= 0 or size < 0 or addr + size >= 1 << 64:
            return None
        try:
            data = os.pread(self._fd, size, addr)
        except OSError:
            return None
        return data if len(data) == size else None

    def read_cstr(self, addr: int, limit: int) -> bytes | None:
        data = self.read(addr, limit + 1)
        return None if data is None else data.split(b"\0", 1)[0]

    def close(self) -> None:
        os.close(self._fd)


@dataclass
class Stopped:
    pid: int
    regs: dict[int, int]
    mem: ProcMem
    maps: Maps


@contextlib.contextmanager
def stopped(exe: Path, *args: str) -> Iterator[Stopped]:
    """Run `exe` (no ASLR) until it stops itself with SIGSTOP; seize it so its registers can be read."""
    setarch = shutil.which("setarch")
    assert setarch is not None, "setarch (util-linux) is part of the supported environment"
    proc = subprocess.Popen([setarch, "-R", str(exe), *args], stdin=subprocess.DEVNULL)
    try:
        _, status = os.waitpid(proc.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), f"{exe.name} ended before its stop (status {status:#x})"
        assert _ptrace(PTRACE_SEIZE, proc.pid, None, None) == 0, os.strerror(ctypes.get_errno())
        assert _ptrace(PTRACE_INTERRUPT, proc.pid, None, None) == 0, os.strerror(ctypes.get_errno())
        os.waitpid(proc.pid, 0)
        raw = UserRegs()
        assert _ptrace(PTRACE_GETREGS, proc.pid, None, ctypes.byref(raw)) == 0, os.strerror(ctypes.get_errno())
        regs = {num: getattr(raw, name) for name, num in DWARF_REGS.items()}
        mem = ProcMem(proc.pid)
        try:
            yield Stopped(proc.pid, regs, mem, Maps.of(proc.pid))
        finally:
            mem.close()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        _ptrace(PTRACE_DETACH, proc.pid, None, None)
        proc.wait()


@dataclass(frozen=True)
class GdbFrame:
    pc: int
    name: str
    inline: bool
    sigtramp: bool
    tailcall: bool
    file: str
    line: int


def gdb_frames(exe: Path, *args: str) -> tuple[list[GdbFrame], bool]:
    """gdb's backtrace at the program's SIGSTOP, and whether gdb's own walk ended in an error."""
    out = subprocess.run(["gdb", "-batch", "-nx", "-x", str(GDB_SCRIPT), "--args", str(exe), *args],
                         capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL).stdout
    frames = [GdbFrame(**json.loads(line[6:])) for line in out.splitlines() if line.startswith("FRAME ")]
    assert frames, f"gdb printed no frames for {exe.name}:\n{out}"
    return frames, "FRAME-ERROR" in out


def base_name(name: str) -> str:
    """The bare function name, so gdb's DWARF spelling and our demangled symbol compare:
    `std::function<int (int)>::operator()(int) const` -> `operator()`."""
    out, depth = [], 0
    for ch in name.replace("operator()", "operator\x00"):
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    bare = "".join(out).replace(" const", "").strip()
    bare = re.sub(r"\.(constprop|isra|part|cold|lto_priv)(\.\d+)?", "", bare)  # gcc's clone suffixes
    return bare.rsplit("::", 1)[-1].replace("\x00", "()")


@dataclass
class Agreement:
    reliable: int = 0  # our frames marked reliable
    matched: int = 0  # of those, frames equal to gdb's at the same depth (pc, inline-ness, name in the program)
    unreliable: int = 0  # frames we printed with `?`
    gdb_frames: int = 0  # gdb's frames, without the tail-call frames it synthesises from call-site DWARF
    gdb_tailcall: int = 0
    mismatches: list[str] = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.mismatches = self.mismatches or []


def agreement(ours: list, theirs: list[GdbFrame], program: str) -> Agreement:
    """Compare our symbolised frames with gdb's, depth by depth, up to our first unproven frame (after it
    the depths of the two lists need not correspond)."""
    gdb = [f for f in theirs if not f.tailcall]
    result = Agreement(gdb_frames=len(gdb), gdb_tailcall=len(theirs) - len(gdb))
    aligned = True
    for i, f in enumerate(ours):
        if not f.reliable:
            result.unreliable += 1
            aligned = False
            continue
        result.reliable += 1
        if not aligned:
            result.mismatches.append(f"#{i} {f}: reliable after an unproven frame")
            continue
        g = gdb[i] if i < len(gdb) else None
        same = (g is not None and g.pc == f.address and g.inline == f.inlined
                and (f.module != program or base_name(g.name) == base_name(f.symbol)))
        if same:
            result.matched += 1
        else:
            theirs_text = f"0x{g.pc:x} {g.name}{' [inline]' if g.inline else ''}" if g else "nothing"
            result.mismatches.append(f"#{i} ours 0x{f.address:x} {f} | gdb {theirs_text}")
    return result
