"""`strace -k` for the ptrace engine: the user stack of a thread stopped at a syscall.

At the stop the thread's registers are read (PTRACE_GETREGS) and handed to unitrace.stack's walker, which
tries DWARF CFI first, then the signal trampoline, then frame pointers; every frame it could not prove is
`reliable=False` and printed with `?`. Frames are named as strace names them, without file:line: strace -k
prints `path(function+0xoff) [0xaddr]`, so only the ELF symbol is looked up (the separate debug file's
.symtab when installed, as unitrace.stack.symbolize does), never the DWARF line tables, which would cost
megabytes and milliseconds per library for text nobody prints.

What is cached, per process (tgid): its /proc/PID/maps (re-read after execve, after a call that changes
the mappings — strace's "memory mapping change" set — and once whenever an address falls in no known
mapping, for the mmaps a seccomp filter kept us from seeing), and the name of every pc already seen. CFI
tables and symbol tables are cached by file identity in unitrace.stack / unitrace.symbols, load biases
with the maps.

`[0x...]` is the address relative to the module's link-time base (what libdw's
dwfl_module_relocate_address gives strace): the runtime address minus the load bias.
"""

from __future__ import annotations

import ctypes

from unitrace.backends.ptrace import sys as px
from unitrace.decode.api import Memory
from unitrace.events import Frame
from unitrace.stack.unwind import SIGRETURN_CODE

# strace's MEMORY_MAPPING_CHANGE calls (the "SI" flag of its x86_64 syscall table), plus the ones that can
# map code without it; after one of them the next stack re-reads the maps
MAPPING_CHANGES = frozenset({
    "mmap", "mprotect", "munmap", "mremap", "brk", "shmat", "shmdt", "remap_file_pages", "pkey_mprotect",
    "execve", "execveat",
})
# calls captured at entry (strace's STACKTRACE_CAPTURE_ON_ENTER): after them the stack is gone or replaced
CAPTURE_AT_ENTRY = frozenset({"execve", "execveat", "exit", "exit_group"})

_REGS = px.USER_REGS.unpack_from
_R = px.REG
# DWARF register number -> index in struct user_regs_struct (x86_64 psABI numbering)
_DWARF = ((0, _R["rax"]), (1, _R["rdx"]), (2, _R["rcx"]), (3, _R["rbx"]), (4, _R["rsi"]), (5, _R["rdi"]),
          (6, _R["rbp"]), (7, _R["rsp"]), (8, _R["r8"]), (9, _R["r9"]), (10, _R["r10"]), (11, _R["r11"]),
          (12, _R["r12"]), (13, _R["r13"]), (14, _R["r14"]), (15, _R["r15"]), (16, _R["rip"]))
DWARF_REGS = _DWARF  # for the other stack walkers of the backend (watchpoints)


class _Process:
    __slots__ = ("maps", "names")

    def __init__(self) -> None:
        self.maps = None  # unitrace.stack.maps.Maps, read on first use
        self.names: dict[int, tuple[str, str, int, int]] = {}  # pc -> (module, symbol, offset, rel. address)


class StackTracer:
    """Captures and names user stacks; one per session, used from the tracer thread only."""

    def __init__(self) -> None:
        from unitrace.stack.unwind import Unwinder

        self._unwinder_cls = Unwinder
        self._procs: dict[int, _Process] = {}
        self._regs = px.UserRegs()
        self._regs_addr = ctypes.addressof(self._regs)
        self.captures = 0
        self.map_reads = 0

    # ---- cache invalidation ----------------------------------------------------------------------
    def changed(self, tgid: int) -> None:
        """The process's mappings may have changed (mmap, munmap...): re-read them, and name pcs again,
        next time."""
        p = self._procs.get(tgid)
        if p is not None:
            p.maps = None

    def forget(self, tgid: int) -> None:
        """execve or exit: nothing of the old image applies any more."""
        self._procs.pop(tgid, None)

    # ---- capture --------------------------------------------------------------------------------
    def _maps(self, p: _Process, tgid: int):  # type: ignore[no-untyped-def]
        from unitrace.stack.maps import Maps

        self.map_reads += 1
        p.names.clear()  # a pc may now lie in another file
        try:
            p.maps = Maps.of(tgid)
        except OSError:
            p.maps = None
        return p.maps

    def capture(self, tid: int, tgid: int, mem: Memory) -> tuple[list[Frame], tuple[int, ...]] | None:
        """The stack of `tid` (stopped), innermost first, with each frame's module-relative address; None
        when the thread is gone or its maps are unreadable."""
        if px.raw_ptrace(px.PTRACE_GETREGS, tid, None, self._regs_addr) < 0:
            return None
        r = _REGS(self._regs)
        regs = {d: r[i] for d, i in _DWARF}
        p = self._procs.get(tgid)
        if p is None:
            p = self._procs[tgid] = _Process()
        maps = p.maps
        fresh = maps is None
        if maps is None:
            maps = self._maps(p, tgid)
            if maps is None:
                return None
        frames = self._unwinder_cls(mem, maps).unwind(regs)
        if not fresh and any(maps.find(f.address) is None for f in frames):
            # an address in no mapping we know: code mapped since (a dlopen we did not stop at), or a
            # smashed stack. Read the maps once more and walk again.
            maps = self._maps(p, tgid)
            if maps is None:
                return None
            frames = self._unwinder_cls(mem, maps).unwind(regs)
        self.captures += 1
        return self._name(frames, maps, p.names, mem)

    def _name(self, frames: list[Frame], maps, cache: dict, mem: Memory) -> tuple[list[Frame], tuple[int, ...]]:  # type: ignore[no-untyped-def]
        rel: list[int] = []
        for f in frames:
            hit = cache.get(f.address)
            if hit is None:
                hit = cache[f.address] = _describe(f, maps, mem)
            f.module, f.symbol, f.offset = hit[0], hit[1], hit[2]
            rel.append(hit[3])
        return frames, tuple(rel)


def _describe(f: Frame, maps, mem: Memory) -> tuple[str, str, int, int]:  # type: ignore[no-untyped-def]
    """(module path, symbol, offset from the symbol, module-relative address) of one frame's pc.

    A return address is looked up at pc-1 (the call belongs to the caller even when it was the function's
    last instruction); offsets are printed from the pc itself, as strace prints them. The exception is a
    signal handler's return address: the kernel put it there, it is the first instruction of the signal
    trampoline (glibc's __restore_rt), and pc-1 is the end of another function."""
    exact = f.how in ("regs", "signal", "") or mem.read(f.address, len(SIGRETURN_CODE)) == SIGRETURN_CODE
    look = f.address if exact else f.address - 1
    m = maps.find(look)
    if m is None:
        return "", "", 0, f.address
    where = maps.link_address(look)
    if where is None:  # [vdso], [stack], an anonymous mapping: relative to the mapping
        return m.path, "", 0, f.address - m.start
    path, link = where
    rel = link + (f.address - look)
    hit = _symbol(path, link)
    if hit is None:
        return path, "", 0, rel
    return path, hit[0], hit[1] + (f.address - look), rel


def _symbol(path: str, link: int) -> tuple[str, int] | None:
    from unitrace.symbols.debuginfo import debug_file
    from unitrace.symbols.demangle import demangle
    from unitrace.symbols.elf import elf_symbols

    for candidate in dict.fromkeys((debug_file(path), path)):
        try:
            hit = elf_symbols(candidate).symbolize(link)
        except Exception:  # an unreadable or odd file: no name, not a failed trace
            hit = None
        if hit is not None:
            return demangle(hit[0].name), hit[1]
    return None
