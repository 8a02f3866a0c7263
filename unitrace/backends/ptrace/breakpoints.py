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
  trampoline hit pops the frames whose slot this `ret` consumed, reports their returns and jumps to the real
  address. Tail calls (a traced function entered with the trampoline already at [rsp]) share the slot;
  frames skipped by `longjmp` are dropped when a shallower return arrives.
- **Leaving.** Every original byte and every hijacked return address is written back before detach; a thread
  caught on an int3 it has just executed is rewound. The scratch pages stay mapped (a thread may be inside a
  slot), anonymous and not part of any file's text.
- **IFUNCs** (strlen, memcpy...): the implementation the loader selected is read from the module's
  `R_X86_64_IRELATIVE` GOT slot whose addend is the resolver, or from the executable's GOT when it is already
  bound; an IFUNC resolved neither way is reported as not traced.
"""

from __future__ import annotations

import ctypes
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
from unitrace.backends.ptrace.prototypes import Prototype, format_call, format_return
from unitrace.events import Event, EventKind

PTRACE_POKEDATA = 5
PTRACE_SINGLESTEP = 9
PTRACE_SETREGS = 13
NR_MMAP = 9
PROT_READ, PROT_EXEC = 1, 4
MAP_PRIVATE, MAP_ANONYMOUS = 0x02, 0x20
R_X86_64_GLOB_DAT, R_X86_64_JUMP_SLOT, R_X86_64_IRELATIVE = 6, 7, 37
INT3 = b"\xcc"
SLOT = 32
PAGE = 4096
_U64 = struct.Struct("<Q")
_I32 = struct.Struct("<i")
_REGS = px.USER_REGS
_R = px.REG
_ARG_REGS = tuple(_R[n] for n in ("rdi", "rsi", "rdx", "rcx", "r8", "r9"))


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


@dataclass(slots=True)
class PendingCall:
    slot: int  # the stack address of the return slot we overwrote
    real_ret: int | None  # None: a tail call sharing an outer frame's slot
    bp: Breakpoint
    t0: int


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
        self.spaces[child] = Space(child, _open_mem(child), sp.exe, sp.entry, sp.entry_byte, sp.armed, sp.bps,
                                   sp.tramp, sp.main_lo, sp.main_hi, sp.syscall_insn)
        self.calls[child] = [PendingCall(c.slot, c.real_ret, c.bp, c.t0)
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

        for m in Maps.of(sp.tgid).mappings:
            if m.executable and m.path.startswith("/") and ("ld-linux" in m.path or "libc" in m.path):
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
        wanted = self._select(sp, mods)
        # a scratch page per module, mapped just below it so RIP-relative displacements reach
        by_module: dict[str, list[tuple[int, str, UserSpec]]] = {}
        for addr, (name, spec, module) in wanted.items():
            by_module.setdefault(module, []).append((addr, name, spec))
        first = True
        for path, _bias, lo, _hi in mods:
            entries = by_module.get(path)
            if not entries:
                continue
            size = (len(entries) * SLOT + (1 if first else 0) + PAGE - 1) // PAGE * PAGE
            base = self._inject_mmap(sp, tid, max(lo - size - 16 * PAGE, PAGE), size)
            if not base:
                self.notice(sp.tgid, f"cannot map a scratch page in process {sp.tgid}; calls into "
                                     f"{os.path.basename(path)} are not traced")
                continue
            cursor = base
            if first:
                sp.tramp = base
                self._write(sp, base, INT3)
                cursor += 1
                first = False
            for addr, name, spec in sorted(entries):
                self._insert(sp, addr, name, path, spec, cursor)
                cursor += SLOT

    def _select(self, sp: Space, mods: list[tuple[str, int, int, int]]) -> dict[int, tuple[str, UserSpec, str]]:
        """Runtime address -> (name, spec, module) of every function entry the specs ask for."""
        from unitrace.symbols.elf import elf_symbols

        chosen: dict[int, tuple[str, UserSpec, str]] = {}
        excluded: set[str] = {s.symbol for s in self.specs if s.exclude}
        imports: tuple[str, ...] = ()
        if any(s.imports for s in self.specs):
            imports = _elf_header(sp.exe)[1]
        for spec in self.specs:
            if spec.exclude:
                continue
            found = False
            for path, bias, _lo, _hi in mods:
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
                    if sym.kind == "ifunc":
                        impl = self._ifunc_target(sp, path, bias, sym.value, name, mods)
                        if impl is None:
                            self.notice(sp.tgid, f"{name} is an IFUNC whose implementation is not bound "
                                                 "yet; not traced")
                            continue
                        addr = impl
                    if addr not in chosen and not any(chosen.get(addr, ("",))[0] == name for _ in (0,)):
                        owner = next((p for p, _b, lo, hi in mods if lo <= addr < hi), path)
                        chosen[addr] = (name, spec, owner)
                    found = True
                if found and spec.imports:
                    imports = tuple(n for n in imports if n not in {c[0] for c in chosen.values()})
            if not found and not _is_glob(spec.symbol) and not spec.imports:
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

    def _insert(self, sp: Space, addr: int, name: str, module: str, spec: UserSpec, slot: int) -> None:
        import capstone
        from capstone import x86

        try:
            code = self._read(sp, addr, 16)
        except OSError:
            return
        insn = next(self._cs.disasm(code, addr, 1), None)
        if insn is None:
            return
        orig = code[:insn.size]
        bp = Breakpoint(addr, orig, name, module, spec.probe, spec.from_main, spec.site)
        groups = set(insn.groups)
        rip_rel = any(op.type == x86.X86_OP_MEM and op.mem.base == x86.X86_REG_RIP for op in insn.operands)
        if insn.id == x86.X86_INS_JMP and insn.operands[0].type == x86.X86_OP_IMM:
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
        sp.bps[addr] = bp
        self._write(sp, addr, INT3)

    # ---- stops ---------------------------------------------------------------------------------------
    def on_trap(self, tid: int, tgid: int, mem: TraceeMemory, comm: str) -> bool:
        """A SIGTRAP stop: True when it was one of ours (handled; resume without a signal)."""
        sp = self.spaces.get(tgid)
        if sp is None:
            return False
        regs = self._getregs(tid)
        if regs is None:
            return False
        pc = regs[_R["rip"]] - 1
        bp = sp.bps.get(pc)
        if bp is not None:
            self.hits += 1
            self._enter(sp, tid, regs, bp, mem, comm)
            return True
        if pc == sp.tramp and sp.tramp:
            return self._return(sp, tid, regs, comm)
        if not sp.armed and pc == sp.entry and sp.entry:
            self._write(sp, sp.entry, sp.entry_byte)
            regs[_R["rip"]] = pc
            self._setregs(tid, regs)
            sp.armed = True
            self._arm(sp, tid)
            return True
        return False

    def _enter(self, sp: Space, tid: int, regs: list[int], bp: Breakpoint, mem: TraceeMemory, comm: str) -> None:
        rsp = regs[_R["rsp"]]
        ret_addr = _U64.unpack(self._read(sp, rsp, 8))[0]
        stack = self.calls.setdefault(tid, [])
        caller = ret_addr
        if ret_addr == sp.tramp and stack:
            caller = next((c.real_ret for c in reversed(stack) if c.real_ret is not None), 0) or 0
        if not bp.from_main or sp.main_lo <= caller < sp.main_hi:
            raw = tuple(regs[i] for i in _ARG_REGS)
            proto = self.protos.get(bp.name)
            args = format_call(proto, raw, mem, self.string_limit)
            if bp.site != "return":
                self.events.append(Event(EventKind.CALL, time.time_ns(), tgid_of(sp), tid, bp.name, probe=bp.probe,
                                         comm=comm, args=args, raw_args=raw,
                                         fields={"depth": len(stack), "module": bp.module, "caller": caller}))
            if ret_addr == sp.tramp:
                stack.append(PendingCall(rsp, None, bp, time.monotonic_ns()))
            else:
                self._write(sp, rsp, _U64.pack(sp.tramp))
                stack.append(PendingCall(rsp, ret_addr, bp, time.monotonic_ns()))
        if bp.step:
            self._step_over(sp, tid, regs, bp)
        else:
            regs[_R["rip"]] = bp.resume_at
            self._setregs(tid, regs)

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

    def _return(self, sp: Space, tid: int, regs: list[int], comm: str) -> bool:
        rsp = regs[_R["rsp"]]
        slot = rsp - 8  # `ret` popped our trampoline address from here
        stack = self.calls.get(tid) or []
        while stack and stack[-1].slot < slot:
            stack.pop()  # frames left by longjmp: they never return
        real = None
        now = time.monotonic_ns()
        wall = time.time_ns()
        rax = regs[_R["rax"]]
        while stack and stack[-1].slot == slot:
            c = stack.pop()
            proto = self.protos.get(c.bp.name)
            if c.bp.site != "entry":
                self.events.append(Event(EventKind.RETURN, wall, tgid_of(sp), tid, c.bp.name, probe=c.bp.probe,
                                         comm=comm, ret=rax, ret_text=format_return(proto, rax),
                                         duration_ns=now - c.t0, fields={"depth": len(stack)}))
            if c.real_ret is not None:
                real = c.real_ret
                break
        if real is None:
            self.notice(sp.tgid, f"thread {tid} returned through the trampoline with no call recorded")
            return False
        regs[_R["rip"]] = real
        self._setregs(tid, regs)
        return True

    # ---- leaving ---------------------------------------------------------------------------------------
    def rewind(self, tid: int, tgid: int) -> None:
        """Before detach: a thread stopped just after one of our int3s is put back where it belongs."""
        sp = self.spaces.get(tgid)
        regs = self._getregs(tid) if sp is not None else None
        if sp is None or regs is None:
            return
        pc = regs[_R["rip"]] - 1
        if pc in sp.bps or (not sp.armed and pc == sp.entry):
            regs[_R["rip"]] = pc
            self._setregs(tid, regs)
        elif pc == sp.tramp and sp.tramp:
            self._return(sp, tid, regs, "")
            self.events.clear()

    def remove_all(self) -> None:
        """Write back every displaced byte and hijacked return address, in every address space."""
        for tgid, sp in list(self.spaces.items()):
            try:
                if not sp.armed and sp.entry and sp.entry_byte:
                    self._write(sp, sp.entry, sp.entry_byte)
                for bp in sp.bps.values():
                    self._write(sp, bp.addr, bp.orig[:1])
                for tid, stack in self.calls.items():
                    if tgid_of_tid(tid) != tgid:
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


def tgid_of(sp: Space) -> int:
    return sp.tgid


def tgid_of_tid(tid: int) -> int:
    try:
        with open(f"/proc/{tid}/status", "rb", opener=lambda p, f: os.open(p, f | os.O_CLOEXEC)) as f:
            for line in f:
                if line.startswith(b"Tgid:"):
                    return int(line[5:])
    except OSError:
        pass
    return tid


def _is_glob(s: str) -> bool:
    return any(c in s for c in "*?[")
