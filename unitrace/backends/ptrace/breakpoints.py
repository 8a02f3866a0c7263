"""Software breakpoints at function entries, for library and user-function calls on the ptrace backend.

How a call is caught, and why this way:
- **Arming.** At the exec stop only the executable and the dynamic loader are mapped, so an int3 goes on the
  executable's entry point (`e_entry`): when it is hit, the loader has mapped and relocated every library
  the program links against. Then, with the process at `_start`, we inject one `mmap` per module (the
  tracee executes a `syscall` instruction found in its own code, single-stepped, registers saved and
  restored) for a scratch page near the module, and put an int3 on every function entry asked for.
  Attaching (`-p`) arms at the first stop.
- **Entry, without a single-step.** The instruction an int3 displaces is copied into a scratch slot followed
  by an absolute jump back (`jmp *0(%rip)` + address), its RIP-relative displacement fixed up for the slot's
  address. A hit sets rip to the slot: the breakpoint is never removed, so another thread passing the same
  entry at the same moment is caught too, and no single-step is paid. Relative jumps are emulated; only
  instructions that cannot be displaced (calls, conditional branches, RIP-relative operands out of reach)
  fall back to remove/step/re-insert, which a concurrent thread may slip past (documented).
- **Return.** The return address at [rsp] is replaced with the scratch page's first byte, an int3 (the
  trampoline, as uretprobes do). Each thread keeps a stack of (rsp at entry, real return address): the
  trampoline hit pops the frames whose slot this `ret` consumed, reports their returns and writes the real
  address back into the slot; the trampoline's `lea -8(%rsp),%rsp; ret` then returns there (no SETREGS).
  Tail calls (a traced function entered with the trampoline already at [rsp]) share the slot;
  frames skipped by `longjmp` are dropped when a shallower return arrives.
- **Cost of a hit.** Entry: GETREGS, a read of the return address (and of string arguments), a write of
  the trampoline's address, SETREGS for rip unless the entry is `endbr64` (the int3 replaces its first
  byte; `0f 1e fa` left behind is a NOP, so the tracee goes on from there). Return: GETREGS and one write.
- **dlopen/dlclose.** An int3 on r_debug.r_brk (found through the executable's DT_DEBUG, else ld.so's
  `_r_debug`): when r_state is RT_CONSISTENT, /proc/PID/maps is read again, new modules get their
  breakpoints (the specs resolved against them), unmapped ones are forgotten. The new library is not
  relocated yet then, so an IFUNC of it gets a breakpoint on its resolver, whose return value (the
  implementation) gets the real one.
- **Leaving.** Every original byte and every hijacked return address is written back before detach; a thread
  caught on an int3 it has just executed is rewound. The scratch pages stay mapped (a thread may be inside a
  slot), anonymous and not part of any file's text.
- **IFUNCs** (strlen, memcpy...): the implementation the loader selected is read from the module's
  `R_X86_64_IRELATIVE` GOT slot whose addend is the resolver, or from the executable's GOT when it is already
  bound; an IFUNC resolved neither way is reported as not traced.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import fnmatch
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from unitrace.backends.ptrace import sys as px
from unitrace.backends.ptrace.memory import TraceeMemory
from unitrace.backends.ptrace.prototypes import Prototype, format_call, format_return, from_dwarf
from unitrace.events import Event, EventKind
from unitrace.system import procfs

PTRACE_POKEDATA = 5
PTRACE_SINGLESTEP = 9
PTRACE_SETREGS = 13
NR_MMAP = 9
PROT_READ, PROT_EXEC = 1, 4
MAP_PRIVATE, MAP_ANONYMOUS = 0x02, 0x20
R_X86_64_GLOB_DAT, R_X86_64_JUMP_SLOT, R_X86_64_IRELATIVE = 6, 7, 37
INT3 = b"\xcc"
# The return trampoline: a hit puts the real return address back where `ret` took ours from, and the
# tracee returns again by itself (`lea -8(%rsp),%rsp` leaves the flags alone; [rsp-8] is below the stack
# pointer but above the red zone a signal frame skips): no SETREGS on the way back.
TRAMPOLINE = b"\xcc\x48\x8d\x64\x24\xf8\xc3"
SLOT = 32
PAGE = 4096
_U64 = struct.Struct("<Q")
_I32 = struct.Struct("<i")
_REGS = px.USER_REGS
_R = px.REG
_ARG_REGS = tuple(_R[n] for n in ("rdi", "rsi", "rdx", "rcx", "r8", "r9"))
_RIP, _RSP, _RAX = _R["rip"], _R["rsp"], _R["rax"]
_RIP_OFF = 8 * _RIP
_ENDBR64 = b"\xf3\x0f\x1e\xfa"
# how a hit goes on past the displaced instruction
RESUME_SLOT = 0  # rip := resume_at (the out-of-line slot, or an emulated jump's target)
RESUME_NEXT = 1  # nothing to do: the int3 replaced endbr64's prefix and `0f 1e fa` is a NOP (no SETREGS)
RESUME_STEP = 2  # cannot be displaced: remove, single-step, re-insert
RESUME_RET = 3  # the function is a bare `ret`: emulated (rip := [rsp], rsp += 8)
RT_CONSISTENT = 0
DT_NULL, DT_DEBUG = 0, 21


@dataclass(frozen=True, slots=True)
class UserSpec:
    """Which functions to break on. `library` is a glob on a module's file name, "" for the executable
    itself, None for any library (not the executable); `imports` limits the names to what the executable
    imports (ltrace's default set). `from_main`: report only calls whose return address is in the
    executable (library calls the program makes, as ltrace shows them)."""

    symbol: str
    library: str | None = None
    from_main: bool = False
    probe: int = 0
    exclude: bool = False
    imports: bool = False
    site: str = "both"  # "entry", "return" or "both": which events to report


@dataclass(slots=True)
class Breakpoint:
    addr: int
    orig: bytes  # the displaced instruction's bytes (orig[0] is what the int3 replaced)
    name: str
    module: str
    probe: int
    from_main: bool
    site: str = "both"
    resume_at: int = 0  # the slot to run the displaced instruction from, or a jump's target
    step: bool = False  # cannot be displaced: remove, single-step, re-insert
    resume: int = RESUME_SLOT
    proto: Prototype | None = None  # looked up once, at insertion
    resolver_for: UserSpec | None = None  # an IFUNC resolver of a dlopened library: its return says where
    ret_probe: int = -1  # the probe of the return events, when not `probe` (an entry and a return probe)


@dataclass(slots=True)
class PendingCall:
    slot: int  # the stack address of the return slot we overwrote
    real_ret: int | None  # None: a tail call sharing an outer frame's slot
    bp: Breakpoint
    t0: int
    real_bytes: bytes = b""  # real_ret as it was read from the stack


@dataclass(slots=True)
class Space:
    """One address space (a process image)."""

    tgid: int
    fd: int
    exe: str = ""
    entry: int = 0  # runtime e_entry while not armed
    entry_byte: bytes = b""
    armed: bool = False
    bps: dict[int, Breakpoint] = field(default_factory=dict)
    tramp: int = 0
    main_lo: int = 0
    main_hi: int = 0
    syscall_insn: int = 0
    tramp_bytes: bytes = b""  # the trampoline's address, packed, as written over return addresses
    modules: dict[str, int] = field(default_factory=dict)  # path -> lowest address, of what is mapped
    scratch: dict[str, list[int]] = field(default_factory=dict)  # module -> [next free slot, end]
    r_debug: int = 0  # the loader's struct r_debug
    rbrk: int = 0  # r_debug.r_brk (_dl_debug_state), where the loader reports (un)loading
    rbrk_bp: Breakpoint | None = None


def _open_mem(pid: int) -> int:
    return os.open(f"/proc/{pid}/mem", os.O_RDWR | os.O_CLOEXEC)


@lru_cache(maxsize=32)
def _elf_relocs(path: str) -> tuple[tuple[int, int, int, str], ...]:
    """(type, r_offset, addend, symbol name) of every dynamic relocation of a file."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.relocation import RelocationSection

    out = []
    with open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_CLOEXEC)) as fh:
        elf = ELFFile(fh)
        for sec in elf.iter_sections():
            if not isinstance(sec, RelocationSection) or not sec.name.startswith(".rela"):
                continue
            symtab = elf.get_section(sec["sh_link"]) if sec["sh_link"] else None
            for r in sec.iter_relocations():
                name = ""
                if symtab is not None and r["r_info_sym"]:
                    name = symtab.get_symbol(r["r_info_sym"]).name.split("@", 1)[0]
                out.append((r["r_info_type"], r["r_offset"], r.entry.get("r_addend", 0), name))
    return tuple(out)


@lru_cache(maxsize=32)
def _elf_header(path: str) -> tuple[int, tuple[str, ...]]:
    """(e_entry, names of the functions the file imports) of an ELF file."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_CLOEXEC)) as fh:
        elf = ELFFile(fh)
        imports: list[str] = []
        dynsym = elf.get_section_by_name(".dynsym")
        if dynsym is not None:
            for s in dynsym.iter_symbols():
                if s["st_shndx"] == "SHN_UNDEF" and s["st_info"]["type"] in ("STT_FUNC", "STT_GNU_IFUNC",
                                                                             "STT_NOTYPE") and s.name:
                    imports.append(s.name.split("@", 1)[0])
        return elf.header["e_entry"], tuple(imports)


def _file_code(path: str, vaddr: int, n: int) -> bytes | None:
    """`n` bytes at link-time address `vaddr` of `path`, as the file holds them (its PT_LOAD segments)."""
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_CLOEXEC)) as fh:
            for seg in ELFFile(fh).iter_segments():
                if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= vaddr < seg["p_vaddr"] + seg["p_filesz"]:
                    fh.seek(seg["p_offset"] + vaddr - seg["p_vaddr"])
                    return fh.read(n)
    except (OSError, ValueError):
        return None
    return None


@lru_cache(maxsize=32)
def _elf_dynamic(path: str) -> int:
    """The link-time address of a file's dynamic section (PT_DYNAMIC), 0 without one."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_CLOEXEC)) as fh:
        for seg in ELFFile(fh).iter_segments():
            if seg["p_type"] == "PT_DYNAMIC":
                return int(seg["p_vaddr"])
    return 0


def _modules(pid: int) -> list[tuple[str, int, int, int]]:
    """(path, load bias, lowest, highest address) of each file mapped executable, in map order."""
    from unitrace.stack.unwind import Maps

    maps = Maps.of(pid)
    spans: dict[str, list[int]] = {}
    order: list[str] = []
    for m in maps.mappings:
        if not m.path.startswith("/") or m.path.startswith("/dev/") or m.path.endswith(" (deleted)"):
            continue
        if m.path not in spans:
            spans[m.path] = [m.start, m.end, 0]
            order.append(m.path)
        span = spans[m.path]
        span[0], span[1] = min(span[0], m.start), max(span[1], m.end)
        if m.executable:
            span[2] = 1
    out = []
    for path in order:
        lo, hi, exe = spans[path]
        if not exe:
            continue
        link = maps.link_address(lo)
        bias = lo - link[1] if link else lo
        out.append((path, bias, lo, hi))
    return out


class Breakpoints:
    """The breakpoint side of one ptrace session. Every method runs on the tracer thread, with the tracee
    it names in a ptrace-stop."""

    def __init__(self, specs: tuple[UserSpec, ...], protos: dict[str, Prototype], *, string_limit: int = 32,
                 notice: Callable[[int, str], None] = lambda pid, text: None) -> None:
        import capstone

        self.specs = specs
        self.protos = protos
        self.string_limit = string_limit
        self.notice = notice
        self.spaces: dict[int, Space] = {}  # tgid -> Space
        self.calls: dict[int, list[PendingCall]] = {}  # tid -> pending calls, innermost last
        self.events: list[Event] = []
        self.hits = 0
        self._regs = px.UserRegs()
        self._regs_addr = ctypes.addressof(self._regs)
        self._cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        self._cs.detail = True
        self._also: dict[tuple[int, int], list[UserSpec]] = {}  # (tgid, address) -> specs after the first

    # ---- raw access --------------------------------------------------------------------------------
    def _getregs(self, tid: int) -> list[int] | None:
        if px.raw_ptrace(px.PTRACE_GETREGS, tid, None, self._regs_addr) < 0:
            return None
        return list(_REGS.unpack_from(self._regs))

    def _setregs(self, tid: int, regs: list[int]) -> None:
        _REGS.pack_into(self._regs, 0, *regs)
        px.raw_ptrace(PTRACE_SETREGS, tid, None, self._regs_addr)

    @staticmethod
    def _read(sp: Space, addr: int, n: int) -> bytes:
        return os.pread(sp.fd, n, addr)

    @staticmethod
    def _write(sp: Space, addr: int, data: bytes) -> None:
        # /proc/PID/mem writes go through the kernel's ptrace access path: text pages are copied on write
        # (the file on disk and other processes mapping it are untouched), read-only pages are writable.
        os.pwrite(sp.fd, data, addr)

    # ---- address spaces ----------------------------------------------------------------------------
    def on_exec(self, tgid: int) -> None:
        """A new image: plant the arming int3 on its entry point (libraries are not mapped yet)."""
        self._drop_space(tgid)
        sp = Space(tgid, _open_mem(tgid))
        self.spaces[tgid] = sp
        try:
            sp.exe = os.path.realpath(f"/proc/{tgid}/exe")
            e_entry, _ = _elf_header(sp.exe)
            mods = _modules(tgid)
        except (OSError, Exception) as exc:  # an unreadable or non-ELF image: nothing to break on
            self.notice(tgid, f"cannot read {sp.exe or tgid}: {exc}; no library calls traced")
            return
        for path, bias, _lo, _hi in mods:
            if path == sp.exe:
                sp.entry = e_entry + bias
                break
        if not sp.entry:
            return
        sp.entry_byte = self._read(sp, sp.entry, 1)
        self._write(sp, sp.entry, INT3)

    def on_attach(self, tid: int, tgid: int) -> None:
        """A process attached mid-run: its libraries are mapped already; arm now."""
        if tgid in self.spaces:
            return
        sp = Space(tgid, _open_mem(tgid))
        sp.exe = os.path.realpath(f"/proc/{tgid}/exe")
        self.spaces[tgid] = sp
        self._arm(sp, tid)

    def on_fork(self, parent_tid: int, parent_tgid: int, child: int, thread: bool) -> None:
        if thread:
            self.calls[child] = []
            return
        sp = self.spaces.get(parent_tgid)
        if sp is None:
            return
        # the child is a copy of the parent's image, breakpoints and hijacked return slots included
        self.spaces[child] = dataclasses.replace(sp, tgid=child, fd=_open_mem(child), bps=dict(sp.bps),
                                                 modules=dict(sp.modules),
                                                 scratch={k: list(v) for k, v in sp.scratch.items()})
        self.calls[child] = [PendingCall(c.slot, c.real_ret, c.bp, c.t0, c.real_bytes)
                             for c in self.calls.get(parent_tid, ())]

    def on_exit(self, tid: int, tgid: int) -> None:
        self.calls.pop(tid, None)
        if tid == tgid:
            self._drop_space(tgid)

    def _drop_space(self, tgid: int) -> None:
        sp = self.spaces.pop(tgid, None)
        if sp is not None:
            os.close(sp.fd)

    # ---- arming --------------------------------------------------------------------------------------
    def _inject_mmap(self, sp: Space, tid: int, hint: int, size: int) -> int:
        """mmap(hint, size, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_ANONYMOUS) executed by the tracee."""
        saved = self._getregs(tid)
        if saved is None or not sp.syscall_insn:
            return 0
        regs = list(saved)
        regs[_R["rax"]] = NR_MMAP
        regs[_R["orig_rax"]] = (1 << 64) - 1  # no syscall restart on the way out of this stop
        regs[_R["rdi"]], regs[_R["rsi"]], regs[_R["rdx"]] = hint, size, PROT_READ | PROT_EXEC
        regs[_R["r10"]], regs[_R["r8"]], regs[_R["r9"]] = MAP_PRIVATE | MAP_ANONYMOUS, (1 << 64) - 1, 0
        regs[_R["rip"]] = sp.syscall_insn
        self._setregs(tid, regs)
        result = 0
        for _ in range(16):
            if px.raw_ptrace(PTRACE_SINGLESTEP, tid, None, None) < 0:
                return 0
            _, status = os.waitpid(tid, px.WALL)
            if not os.WIFSTOPPED(status):
                raise ProcessLookupError(tid)
            got = self._getregs(tid)
            if got is not None and got[_R["rip"]] == sp.syscall_insn + 2:
                rax = got[_R["rax"]]
                result = 0 if rax >= (1 << 64) - 4096 else rax
                break
            sig = os.WSTOPSIG(status)
            if (status >> 16) == 0 and sig != 5:  # a signal arrived meanwhile: queue it again for later
                px.tgkill(sp.tgid, tid, sig)
        self._setregs(tid, saved)
        return result

    def _find_syscall_insn(self, sp: Space, mods: list[tuple[str, int, int, int]]) -> int:
        from unitrace.stack.unwind import Maps

        # the loader's or libc's code first; a static executable has only its own (and the vDSO's): any
        # `0f 05` will do, since execution starts exactly there
        maps = [m for m in Maps.of(sp.tgid).mappings if m.executable and (m.path.startswith("/") or
                                                                           m.path == "[vdso]")]
        maps.sort(key=lambda m: (not ("ld-linux" in m.path or "libc" in m.path), m.path == "[vdso]"))
        for m in maps:
            try:
                code = self._read(sp, m.start, min(m.end - m.start, 1 << 20))
            except OSError:
                continue
            i = code.find(b"\x0f\x05")
            if i >= 0:
                return m.start + i
        del mods
        return 0

    def _arm(self, sp: Space, tid: int) -> None:
        mods = _modules(sp.tgid)
        sp.syscall_insn = self._find_syscall_insn(sp, mods)
        for path, _bias, lo, hi in mods:
            if path == sp.exe:
                sp.main_lo, sp.main_hi = lo, hi
        sp.modules = {path: lo for path, _b, lo, _h in mods}
        # a static(-PIE) executable applies its IRELATIVE relocations itself, after its entry point: its
        # IFUNCs are caught on their resolvers' returns, as a dlopened library's are
        static = [p for p, _b, _l, _h in mods] == [sp.exe]
        self._add_modules(sp, tid, mods, mods, late=static)
        self._watch_loader(sp, tid, mods)

    def _slot(self, sp: Space, tid: int, module: str, lo: int, count: int) -> int:
        """The first of `count` free scratch slots near `module` (mapped at `lo`), mapping a page if none
        is left: below the module, so that RIP-relative displacements reach. 0 when no page can be had."""
        free = sp.scratch.get(module)
        if free is None or free[0] + count * SLOT > free[1]:
            extra = 0 if sp.tramp else 16
            size = (count * SLOT + extra + PAGE - 1) // PAGE * PAGE
            base = self._inject_mmap(sp, tid, max(lo - size - 16 * PAGE, PAGE), size)
            if not base:
                return 0
            if not sp.tramp:  # the trampoline: the first byte of the first page
                sp.tramp = base
                sp.tramp_bytes = _U64.pack(base)
                self._write(sp, base, TRAMPOLINE)
            free = sp.scratch[module] = [base + extra, base + size]
        got = free[0]
        free[0] += count * SLOT
        return got

    def _add_modules(self, sp: Space, tid: int, new: list[tuple[str, int, int, int]],
                     mods: list[tuple[str, int, int, int]], late: bool) -> None:
        """Breakpoints on what the specs ask for in the modules `new` (all of `mods` mapped now). `late`:
        loaded by dlopen, before the loader relocated them (IFUNC slots are not filled in yet)."""
        self._also = {}
        wanted = self._select(sp, new, mods, late)
        by_module: dict[str, list[tuple[int, str, UserSpec, bool]]] = {}
        for addr, (name, spec, module, resolver) in wanted.items():
            if addr not in sp.bps:
                by_module.setdefault(module, []).append((addr, name, spec, resolver))
        for path, bias, lo, _hi in mods:
            entries = by_module.get(path)
            if not entries:
                continue
            cursor = self._slot(sp, tid, path, lo, len(entries))
            if not cursor:
                self.notice(sp.tgid, f"cannot map a scratch page in process {sp.tgid}; calls into "
                                     f"{os.path.basename(path)} are not traced")
                continue
            for addr, name, spec, resolver in sorted(entries, key=lambda e: e[0]):
                bp = self._insert(sp, addr, name, path, spec, cursor, bias=bias)
                if bp is not None and resolver:
                    bp.resolver_for, bp.from_main, bp.site = spec, False, "both"
                elif bp is not None:
                    for other in self._also.get((sp.tgid, addr), ()):
                        _merge(bp, other)
                cursor += SLOT

    # ---- the loader's rendezvous: libraries loaded and unloaded later --------------------------------
    def _watch_loader(self, sp: Space, tid: int, mods: list[tuple[str, int, int, int]]) -> None:
        """An int3 on r_debug.r_brk, the function the loader calls around every dlopen and dlclose, as
        debuggers do. r_debug is found through the executable's DT_DEBUG entry (the loader fills it in
        before the program runs), else through the loader's `_r_debug` symbol."""
        if sp.rbrk:
            return
        r_debug = 0
        for path, bias, _lo, _hi in mods:
            if path == sp.exe:
                dyn = _elf_dynamic(path)
                if dyn:
                    r_debug = self._dt_debug(sp, dyn + bias)
        if not r_debug:
            from unitrace.symbols.elf import elf_symbols

            for path, bias, _lo, _hi in mods:
                if os.path.basename(path).startswith("ld-"):
                    with contextlib.suppress(Exception):
                        sym = elf_symbols(path).lookup("_r_debug")
                        if sym is not None and sym.value:
                            r_debug = sym.value + bias
        if not r_debug:
            return
        try:
            rbrk = _U64.unpack(self._read(sp, r_debug + 16, 8))[0]
        except OSError:
            return
        owner = next(((p, lo) for p, _b, lo, hi in mods if lo <= rbrk < hi), None)
        if not rbrk or owner is None:
            return
        slot = self._slot(sp, tid, owner[0], owner[1], 1)
        if not slot:
            return
        bp = self._insert(sp, rbrk, "_dl_debug_state", owner[0], UserSpec("_dl_debug_state"), slot,
                          table=False)
        if bp is not None:
            sp.r_debug, sp.rbrk, sp.rbrk_bp = r_debug, rbrk, bp

    def _dt_debug(self, sp: Space, dynamic: int) -> int:
        try:
            data = self._read(sp, dynamic, 16 * 64)
        except OSError:
            return 0
        for tag, val in struct.iter_unpack("<qQ", data):
            if tag == DT_NULL:
                break
            if tag == DT_DEBUG:
                return val
        return 0

    def _on_rbrk(self, sp: Space, tid: int, regs: tuple[int, ...]) -> None:
        """The loader's rendezvous: when its list is consistent again, new modules get their breakpoints
        and those of unmapped ones are forgotten (their memory is gone: nothing to write back)."""
        try:
            state = _I32.unpack(self._read(sp, sp.r_debug + 24, 4))[0]
        except OSError:
            state = -1
        if state == RT_CONSISTENT:
            mods = _modules(sp.tgid)
            now = {path: lo for path, _b, lo, _h in mods}
            gone = {p for p, lo in sp.modules.items() if now.get(p) != lo}
            if gone:
                for addr in [a for a, bp in sp.bps.items() if bp.module in gone]:
                    del sp.bps[addr]
                for p in gone:
                    sp.scratch.pop(p, None)
            new = [m for m in mods if sp.modules.get(m[0]) != m[2]]
            sp.modules = now
            if new:
                self._add_modules(sp, tid, new, mods, late=True)
        bp = sp.rbrk_bp
        assert bp is not None
        self._resume_past(sp, tid, list(regs), bp)

    def _resume_past(self, sp: Space, tid: int, regs: list[int], bp: Breakpoint) -> None:
        """Go on past a breakpoint's displaced instruction, with `regs` as they were at the hit."""
        if bp.resume == RESUME_NEXT:
            if regs[_RIP] != bp.addr + 1:
                regs[_RIP] = bp.addr + 1
                self._setregs(tid, regs)
        elif bp.resume == RESUME_RET:
            regs[_RIP] = _U64.unpack(os.pread(sp.fd, 8, regs[_RSP]))[0]
            regs[_RSP] += 8
            self._setregs(tid, regs)
        elif bp.resume == RESUME_STEP:
            self._step_over(sp, tid, regs, bp)
        else:
            regs[_RIP] = bp.resume_at
            self._setregs(tid, regs)

    def _select(self, sp: Space, scan: list[tuple[str, int, int, int]], mods: list[tuple[str, int, int, int]],
                late: bool = False) -> dict[int, tuple[str, UserSpec, str, bool]]:
        """Runtime address -> (name, spec, module, is an IFUNC resolver) of every function entry the specs
        ask for in the modules `scan` (`mods`: every module mapped)."""
        from unitrace.symbols.elf import elf_symbols

        chosen: dict[int, tuple[str, UserSpec, str, bool]] = {}
        excluded: set[str] = {s.symbol for s in self.specs if s.exclude}
        imports: tuple[str, ...] = ()
        if any(s.imports for s in self.specs):
            imports = _elf_header(sp.exe)[1]
        for spec in self.specs:
            if spec.exclude or (late and spec.imports):
                continue  # the program's imports were all bound to the libraries it started with
            found = matched = False
            for path, bias, _lo, _hi in scan:
                is_main = path == sp.exe
                base = os.path.basename(path)
                if spec.library == "" and not is_main:
                    continue
                if spec.library is None and is_main:
                    continue
                if spec.library and "/" in spec.library:
                    if os.path.realpath(spec.library) != path:
                        continue
                elif spec.library and not (is_main and spec.library in ("MAIN", base)) and not (
                        fnmatch.fnmatch(base, spec.library) or fnmatch.fnmatch(base, spec.library + ".so*")
                        or base.startswith(spec.library + ".so") or path == spec.library):
                    continue
                matched = True
                try:
                    syms = elf_symbols(path)
                    names = syms.function_names()
                except Exception:
                    continue
                pool = [n for n in imports if n in set(names)] if spec.imports else names
                for name in (fnmatch.filter(pool, spec.symbol) if _is_glob(spec.symbol) else
                             [spec.symbol] if spec.symbol in pool else []):
                    if any(fnmatch.fnmatch(name, x) for x in excluded):
                        continue
                    sym = syms.lookup(name)
                    if sym is None or not sym.value:
                        continue
                    addr = sym.value + bias
                    resolver = False
                    if sym.kind == "ifunc":
                        impl = None if late else self._ifunc_target(sp, path, bias, sym.value, name, mods)
                        if impl is None and late:
                            resolver = True  # the loader calls it while relocating: its return value says
                        elif impl is None:
                            self.notice(sp.tgid, f"{name} is an IFUNC whose implementation is not bound "
                                                 "yet; not traced")
                            continue
                        else:
                            addr = impl
                    if addr in chosen and chosen[addr][1] is not spec and not resolver:
                        self._also.setdefault((sp.tgid, addr), []).append(spec)
                    if addr not in chosen:
                        owner = next((p for p, _b, lo, hi in mods if lo <= addr < hi), path)
                        chosen[addr] = (name, spec, owner, resolver)
                    found = True
                if found and spec.imports:
                    imports = tuple(n for n in imports if n not in {c[0] for c in chosen.values()})
            # a library not loaded yet may come with dlopen: only a miss where the file was looked at is said
            if not found and not _is_glob(spec.symbol) and not spec.imports and not late and (
                    spec.library == "" or (matched and spec.library and not _is_glob(spec.library))):
                self.notice(sp.tgid, f"no function {spec.symbol!r} in the modules of process {sp.tgid}")
        return chosen

    def _ifunc_target(self, sp: Space, path: str, bias: int, resolver: int, name: str,
                      mods: list[tuple[str, int, int, int]]) -> int | None:
        for kind, off, addend, _n in _elf_relocs(path):
            if kind == R_X86_64_IRELATIVE and addend == resolver:
                return _U64.unpack(self._read(sp, off + bias, 8))[0]
        for mpath, mbias, _lo, _hi in mods:  # a GOT that the loader has bound already
            for kind, off, _a, rname in _elf_relocs(mpath):
                if rname == name and kind in (R_X86_64_GLOB_DAT, R_X86_64_JUMP_SLOT):
                    value = _U64.unpack(self._read(sp, off + mbias, 8))[0]
                    if not (_lo <= value < _hi) and value:
                        return value
        return None

    def _prototype(self, name: str, module: str, addr: int, bias: int | None) -> Prototype | None:
        """The table's prototype; else, for a binary that carries its own DWARF (the user's code built with
        -g), its parameters' names and types. Separate debug files (libc6-dbg) are not parsed for this:
        the table covers those libraries, and their DWARF would cost seconds per library."""
        proto = self.protos.get(name)
        if proto is not None or bias is None:
            return proto
        from unitrace.symbols.lines import dwarf_lines

        try:
            lines = dwarf_lines(module)
        except OSError:
            return None
        if not lines.has_dwarf or lines.dwarf_path != module:
            return None
        return from_dwarf(name, module, addr - bias)

    def _insert(self, sp: Space, addr: int, name: str, module: str, spec: UserSpec, slot: int,
                table: bool = True, bias: int | None = None) -> Breakpoint | None:
        """An int3 at `addr`, its displaced instruction prepared to run from `slot`. `table`: a breakpoint
        of the specs (in sp.bps), not one of our own (the loader's rendezvous). `bias`: the module's load
        bias, to find the function's DWARF when the prototype table does not know it."""
        import capstone
        from capstone import x86

        try:
            code = self._read(sp, addr, 16)
        except OSError:
            return None
        if code[:1] == INT3:
            # An int3 we did not put there: another debugger's, or one /proc/PID/mem showed us at malloc's
            # entry on this project's VM under load (1 run in 15-50; the page's other bytes were right, the
            # cause is not understood). Taken as the instruction, it made the breakpoint a single-step of
            # an int3 and every call was lost; the file's bytes are the instruction the function starts
            # with (300 of 300 runs under the same load then showed every call).
            if bias is None:
                bias = next((b for p, b, _lo, _hi in _modules(sp.tgid) if p == module), None)
            disk = _file_code(module, addr - bias, 16) if bias is not None else None
            if disk is not None:
                code = disk
        insn = next(self._cs.disasm(code, addr, 1), None)
        if insn is None:
            return None
        orig = code[:insn.size]
        bp = Breakpoint(addr, orig, name, module, spec.probe, spec.from_main, spec.site,
                        proto=self._prototype(name, module, addr, bias))
        groups = set(insn.groups)
        rip_rel = any(op.type == x86.X86_OP_MEM and op.mem.base == x86.X86_REG_RIP for op in insn.operands)
        if orig == _ENDBR64:
            bp.resume = RESUME_NEXT  # after the int3 the CPU reads `0f 1e fa`: a NOP, and on it goes
        elif orig == b"\xc3":
            bp.resume = RESUME_RET
        elif insn.id == x86.X86_INS_JMP and insn.operands[0].type == x86.X86_OP_IMM:
            bp.resume_at = insn.operands[0].imm
        elif groups & {capstone.CS_GRP_JUMP, capstone.CS_GRP_CALL, capstone.CS_GRP_RET, capstone.CS_GRP_INT,
                       capstone.CS_GRP_IRET}:
            bp.step = True
        else:
            body = bytearray(orig)
            if rip_rel:
                disp = insn.disp_offset
                new = _I32.unpack_from(body, disp)[0] + addr - slot
                if not -(1 << 31) <= new < (1 << 31):
                    bp.step = True
                else:
                    _I32.pack_into(body, disp, new)
            if not bp.step:
                tail = b"\xff\x25\x00\x00\x00\x00" + _U64.pack(addr + insn.size)
                self._write(sp, slot, bytes(body) + tail)
                bp.resume_at = slot
        if bp.step:
            bp.resume = RESUME_STEP
        if table:
            sp.bps[addr] = bp
        self._write(sp, addr, INT3)
        return bp

    # ---- stops ---------------------------------------------------------------------------------------
    # The hit path is kept to: GETREGS, one read of the return address (plus what the arguments' strings
    # need), one write of the trampoline's address, and SETREGS only when rip must move (not at an
    # endbr64). Everything a hit needs (prototype, packed trampoline address) was prepared at insertion.
    def on_trap(self, tid: int, tgid: int, mem: TraceeMemory, comm: str) -> bool:
        """A SIGTRAP stop: True when it was one of ours (handled; resume without a signal)."""
        sp = self.spaces.get(tgid)
        if sp is None:
            return False
        if px.raw_ptrace(px.PTRACE_GETREGS, tid, None, self._regs_addr) < 0:
            return False
        regs = _REGS.unpack_from(self._regs)
        pc = regs[_RIP] - 1
        bp = sp.bps.get(pc)
        if bp is not None:
            self.hits += 1
            self._enter(sp, tid, regs, bp, mem, comm)
            return True
        if pc == sp.tramp and sp.tramp:
            return self._return(sp, tid, regs, comm)
        if pc == sp.rbrk and sp.rbrk:
            self._on_rbrk(sp, tid, regs)
            return True
        if not sp.armed and pc == sp.entry and sp.entry:
            self._write(sp, sp.entry, sp.entry_byte)
            self._set_rip(tid, pc)
            sp.armed = True
            self._arm(sp, tid)
            return True
        return False

    def _set_rip(self, tid: int, rip: int) -> None:
        """rip := `rip`, the other registers as the last GETREGS read them."""
        _U64.pack_into(self._regs, _RIP_OFF, rip)
        px.raw_ptrace(PTRACE_SETREGS, tid, None, self._regs_addr)

    def _enter(self, sp: Space, tid: int, regs: tuple[int, ...], bp: Breakpoint, mem: TraceeMemory,
               comm: str) -> None:
        rsp = regs[_RSP]
        ret_bytes = os.pread(sp.fd, 8, rsp)
        ret_addr = _U64.unpack(ret_bytes)[0]
        stack = self.calls.get(tid)
        if stack is None:
            stack = self.calls[tid] = []
        caller = ret_addr
        tramp = sp.tramp
        if ret_addr == tramp and stack:
            caller = next((c.real_ret for c in reversed(stack) if c.real_ret is not None), 0) or 0
        if bp.resolver_for is not None:
            if ret_addr != tramp:  # ours alone: its return value is where the IFUNC's calls will go
                os.pwrite(sp.fd, sp.tramp_bytes, rsp)
                stack.append(PendingCall(rsp, ret_addr, bp, 0, ret_bytes))
        elif bp.resume == RESUME_RET:  # `ret` at once: both ends reported now, no trampoline
            if not bp.from_main or sp.main_lo <= caller < sp.main_hi:
                self._bare_return(sp, tid, regs, bp, mem, comm, caller, len(stack))
            regs = list(regs)
            regs[_RIP] = ret_addr
            regs[_RSP] += 8
            self._setregs(tid, regs)
            return
        elif not bp.from_main or sp.main_lo <= caller < sp.main_hi:
            if bp.site != "return":
                raw = (regs[_ARG_REGS[0]], regs[_ARG_REGS[1]], regs[_ARG_REGS[2]], regs[_ARG_REGS[3]],
                       regs[_ARG_REGS[4]], regs[_ARG_REGS[5]])
                args = format_call(bp.proto, raw, mem, self.string_limit)
                self.events.append(Event(EventKind.CALL, time.time_ns(), sp.tgid, tid, bp.name, probe=bp.probe,
                                         comm=comm, args=args, raw_args=raw,
                                         fields={"depth": len(stack), "module": bp.module, "caller": caller}))
            if ret_addr == tramp:
                stack.append(PendingCall(rsp, None, bp, time.monotonic_ns()))
            else:
                os.pwrite(sp.fd, sp.tramp_bytes, rsp)
                stack.append(PendingCall(rsp, ret_addr, bp, time.monotonic_ns(), ret_bytes))
        resume = bp.resume
        if resume == RESUME_SLOT:
            self._set_rip(tid, bp.resume_at)
        elif resume == RESUME_STEP:
            self._step_over(sp, tid, list(regs), bp)

    def _bare_return(self, sp: Space, tid: int, regs: tuple[int, ...], bp: Breakpoint, mem: TraceeMemory,
                     comm: str, caller: int, depth: int) -> None:
        raw = tuple(regs[i] for i in _ARG_REGS)
        wall = time.time_ns()
        if bp.site != "return":
            self.events.append(Event(EventKind.CALL, wall, sp.tgid, tid, bp.name, probe=bp.probe, comm=comm,
                                     args=format_call(bp.proto, raw, mem, self.string_limit), raw_args=raw,
                                     fields={"depth": depth, "module": bp.module, "caller": caller}))
        if bp.site != "entry":
            rax = regs[_RAX]
            self.events.append(Event(EventKind.RETURN, wall, sp.tgid, tid, bp.name,
                                     probe=bp.probe if bp.ret_probe < 0 else bp.ret_probe, comm=comm,
                                     ret=rax, ret_text=format_return(bp.proto, rax), duration_ns=0,
                                     fields={"depth": depth}))

    def _resolved(self, sp: Space, tid: int, bp: Breakpoint, impl: int) -> None:
        """An IFUNC resolver of a dlopened library returned `impl`: break there instead, from now on."""
        spec = bp.resolver_for
        assert spec is not None
        if sp.bps.get(bp.addr) is bp:
            del sp.bps[bp.addr]
            with contextlib.suppress(OSError):
                self._write(sp, bp.addr, bp.orig[:1])
        if impl in sp.bps or not impl:
            return
        mods = _modules(sp.tgid)
        owner = next(((p, lo) for p, _b, lo, hi in mods if lo <= impl < hi), None)
        if owner is None:
            return
        slot = self._slot(sp, tid, owner[0], owner[1], 1)
        if slot:
            self._insert(sp, impl, bp.name, owner[0], spec, slot)

    def _step_over(self, sp: Space, tid: int, regs: list[int], bp: Breakpoint) -> None:
        self._write(sp, bp.addr, bp.orig[:1])
        regs[_R["rip"]] = bp.addr
        self._setregs(tid, regs)
        try:
            while True:
                if px.raw_ptrace(PTRACE_SINGLESTEP, tid, None, None) < 0:
                    return
                _, status = os.waitpid(tid, px.WALL)
                if not os.WIFSTOPPED(status):
                    return
                sig = os.WSTOPSIG(status)
                if (status >> 16) == 0 and sig != 5:
                    px.tgkill(sp.tgid, tid, sig)  # delivered at the next resume
                    continue
                break
        finally:
            if sp.tgid in self.spaces:
                self._write(sp, bp.addr, INT3)

    def _return(self, sp: Space, tid: int, regs: tuple[int, ...] | list[int], comm: str,
                report: bool = True) -> bool:
        slot = regs[_RSP] - 8  # `ret` popped our trampoline address from here
        stack = self.calls.get(tid) or []
        while stack and stack[-1].slot < slot:
            stack.pop()  # frames left by longjmp: they never return
        real = None
        now = time.monotonic_ns()
        wall = time.time_ns()
        rax = regs[_RAX]
        while stack and stack[-1].slot == slot:
            c = stack.pop()
            bp = c.bp
            if bp.resolver_for is not None:
                os.pwrite(sp.fd, c.real_bytes, slot)
                if report:  # (not while leaving)
                    self._resolved(sp, tid, bp, rax)
                return True
            if bp.site != "entry" and report:
                self.events.append(Event(EventKind.RETURN, wall, sp.tgid, tid, bp.name,
                                         probe=bp.probe if bp.ret_probe < 0 else bp.ret_probe,
                                         comm=comm, ret=rax, ret_text=format_return(bp.proto, rax),
                                         duration_ns=now - c.t0, fields={"depth": len(stack)}))
            if c.real_ret is not None:
                real = c.real_bytes
                break
        if real is None:
            self.notice(sp.tgid, f"thread {tid} returned through the trampoline with no call recorded")
            return False
        os.pwrite(sp.fd, real, slot)  # the trampoline's `lea -8(%rsp),%rsp; ret` returns there
        return True

    # ---- leaving ---------------------------------------------------------------------------------------
    def rewind(self, tid: int, tgid: int) -> None:
        """Before detach: a thread stopped just after one of our int3s is put back where it belongs."""
        sp = self.spaces.get(tgid)
        regs = self._getregs(tid) if sp is not None else None
        if sp is None or regs is None:
            return
        pc = regs[_R["rip"]] - 1
        if pc in sp.bps or (not sp.armed and pc == sp.entry) or (pc == sp.rbrk and sp.rbrk):
            regs[_R["rip"]] = pc
            self._setregs(tid, regs)
        elif pc == sp.tramp and sp.tramp:
            self._return(sp, tid, regs, "", report=False)

    def remove_all(self) -> None:
        """Write back every displaced byte and hijacked return address, in every address space."""
        for tgid, sp in list(self.spaces.items()):
            try:
                if not sp.armed and sp.entry and sp.entry_byte:
                    self._write(sp, sp.entry, sp.entry_byte)
                for bp in sp.bps.values():
                    self._write(sp, bp.addr, bp.orig[:1])
                if sp.rbrk_bp is not None:
                    self._write(sp, sp.rbrk, sp.rbrk_bp.orig[:1])
                for tid, stack in self.calls.items():
                    if procfs.tgid_of(tid) != tgid:
                        continue
                    for c in stack:
                        if c.real_ret is not None:
                            self._write(sp, c.slot, _U64.pack(c.real_ret))
            except OSError as exc:
                if exc.errno not in (errno.ESRCH, errno.EIO):
                    raise
            finally:
                self._drop_space(tgid)
        self.calls.clear()

    def take_events(self) -> list[Event]:
        out, self.events = self.events, []
        return out


def _merge(bp: Breakpoint, spec: UserSpec) -> None:
    """A second spec on the same function: an entry probe and a return probe share one breakpoint."""
    if spec.site == bp.site or bp.site == "both":
        return
    if spec.site == "return" and bp.site == "entry":
        bp.ret_probe = spec.probe
    elif spec.site == "entry" and bp.site == "return":
        bp.ret_probe, bp.probe = bp.probe, spec.probe
    bp.site = "both"
    bp.from_main = bp.from_main and spec.from_main


def tgid_of(sp: Space) -> int:
    return sp.tgid


def _is_glob(s: str) -> bool:
    return any(c in s for c in "*?[")
