"""Hardware watchpoints (`watch:` probes) on the ptrace backend: the x86 debug registers of every thread.

How a watch is set, caught and taken away, and why this way:
- **Per thread.** DR0-DR3 (addresses) and DR7 (enable, R/W and LEN bits) belong to a thread, and a new
  thread starts with none (the kernel clears them in copy_thread), so every thread of a watched process is
  programmed at its first ptrace-stop: the attach stop (`-p`), the exec stop (a started command), the
  first stop of a thread cloned later, before it has run an instruction. Written through
  PTRACE_POKEUSER at offsetof(struct user, u_debugreg); the kernel checks every value (a kernel address
  or bad DR7 bits come back as EINVAL).
- **Which process.** The started command once it has exec'd (its symbols are the new image's) and every
  `-p` PID; with -f their forked children too (fork gives a child no debug registers: it is armed at its
  first stop), each re-resolved when it execs.
- **Symbols.** `&counter` is looked up in the ELF symbol table of the process's executable, plus the load
  bias /proc/PID/maps gives (as `user:` probes resolve functions). Checked before anything starts: the
  command's file (when it is ELF) or the `-p` process, and the address must be aligned to the length.
- **A hit.** A data breakpoint traps *after* the access: the thread stops with SIGTRAP, si_code
  TRAP_HWBKPT, and DR6 names the registers that fired (read, then cleared, with PEEKUSER/POKEUSER). The
  access was made by the instruction that ends at rip: found by disassembling (capstone) from the start of
  the function containing rip-1 up to rip; where no symbol says where the function starts, by a vote of
  the decodings from each of the 64 bytes before rip (x86 decoding resynchronises within a few
  instructions), and the event then says `ip_exact: false`. The SIGTRAP is never delivered.
- **Values.** The watched bytes are read when armed and after every hit: `old` is the value we saw last,
  `new` the one after the access. A `rw` hit with an unchanged value is a read (or a write of the same
  value: the debug registers do not say which).
- **Leaving.** DR7 and DR0-DR3 are zeroed in every stopped thread before it is detached, on every exit
  path of the session, so a process we attached to runs on without watchpoints.
"""

from __future__ import annotations

import collections
import ctypes
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from unitrace.backends.ptrace import sys as px
from unitrace.errors import TargetError, UnitraceError
from unitrace.events import Event, EventKind, Frame

# DR7 fields (Intel SDM vol. 3, 18.2.4): R/W 01 write, 11 read or write; LEN 00 1 byte, 01 2, 11 4, 10 8
RW_BITS = {"w": 0b01, "rw": 0b11}
LEN_BITS = {1: 0b00, 2: 0b01, 4: 0b11, 8: 0b10}
USER_TOP = 0x0000_8000_0000_0000  # x86_64 user addresses lie below
_REGS = px.USER_REGS.unpack_from
_RIP = px.REG["rip"]
SCAN_BACK = 64  # bytes before rip voted on when no symbol gives the function's start
MAX_FUNCTION = 1 << 20  # longer "functions" are not disassembled from their start


@dataclass(frozen=True, slots=True)
class WatchSpec:
    """One watch point: what the probe asked for. `where` is its text (`&counter`, `0x7ffd1234`)."""

    probe: int
    where: str
    symbol: str | None
    address: int | None
    length: int
    access: str  # "w" or "rw"
    stack: bool = False  # the probe has a `stack` action: walk the thread's stack at each hit


def dr7_value(count: int, specs: Sequence[WatchSpec]) -> int:
    """DR7 with DR0..DR{count-1} locally enabled for `specs` (in register order)."""
    value = 0
    for i, spec in enumerate(specs[:count]):
        value |= 1 << (2 * i)  # L0..L3
        value |= (RW_BITS[spec.access] | LEN_BITS[spec.length] << 2) << (16 + 4 * i)
    return value


def describe(specs: Sequence[WatchSpec]) -> str:
    """What `unitrace compile` shows: one line per debug register, then DR7."""
    lines = []
    for i, s in enumerate(specs):
        at = (f"&{s.symbol} (the executable's symbol table + its load bias, resolved at exec or attach)"
              if s.symbol else f"{s.address:#x}")
        lines.append(f"DR{i} = {at}, {s.length} byte{'s' if s.length > 1 else ''}, "
                     f"R/W={RW_BITS[s.access]:02b} ({'write' if s.access == 'w' else 'read or write'}), "
                     f"LEN={LEN_BITS[s.length]:02b}")
    lines.append(f"DR7 = {dr7_value(len(specs), specs):#x} (local enables L0-L{len(specs) - 1}), set in every "
                 "thread (threads cloned later at their first stop); cleared in every thread on detach")
    return "\n".join(lines)


def check_count(specs: Sequence[WatchSpec], names: Sequence[str]) -> None:
    """x86 has four address registers: a fifth watch point is an error naming its probe."""
    if len(specs) > px.DR_COUNT:
        extra = specs[px.DR_COUNT]
        raise UnitraceError(
            f"too many watchpoints: {names[extra.probe]} would be number {px.DR_COUNT + 1}, and x86 has "
            f"{px.DR_COUNT} debug address registers (DR0-DR3); {len(specs)} watch points asked for",
            hint="watch at most 4 addresses per run (a watch of 8 aligned bytes covers neighbours too)")


def _exe_symbol(path: str, symbol: str) -> tuple[int, int] | None:
    """(link-time address, size) of `symbol` in an ELF file's symbol table (its debug file's too)."""
    from unitrace.symbols.debuginfo import debug_file
    from unitrace.symbols.elf import elf_symbols

    for candidate in dict.fromkeys((path, debug_file(path))):
        try:
            sym = elf_symbols(candidate).lookup(symbol)
        except UnitraceError:
            continue
        if sym is not None and sym.value:
            return sym.value, sym.size
    return None


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb", opener=lambda p, f: os.open(p, f | os.O_CLOEXEC)) as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def check_file(specs: Sequence[WatchSpec], path: str) -> None:
    """Before a command starts: its symbols exist and are aligned (an ELF file only: a script execs
    something else, checked when it does)."""
    if not _is_elf(path):
        return
    for s in specs:
        if s.symbol is None:
            continue
        found = _exe_symbol(path, s.symbol)
        if found is None:
            raise TargetError(f"watch:{s.where}:{s.length}:{s.access}: no symbol {s.symbol!r} in {path}",
                              hint="a global or static variable of the program (nm shows it), or an address")
        if found[0] % s.length:
            raise TargetError(f"watch:{s.where}:{s.length}:{s.access}: {s.symbol} is at {found[0]:#x}, not "
                              f"aligned to {s.length}", hint="watch fewer bytes, or the aligned word around it")


@dataclass(slots=True)
class _Process:
    tgid: int
    addrs: tuple[int, ...]
    dr7: int
    values: list[bytes | None]
    armed: set[int] = field(default_factory=set)
    maps: object = None  # unitrace.stack.maps.Maps, read on the first hit
    # rip after the access -> (accessing instruction, proven by a function start?, its symbolised frames):
    # a loop hitting the same store pays for the disassembly and the symbol lookups once
    sites: dict[int, tuple[int, bool, list[Frame]]] = field(default_factory=dict)
    # (pc, how) of a stack frame -> its symbolised frames (more than one where DWARF records inlined calls)
    names: dict[tuple[int, str], list[Frame]] = field(default_factory=dict)


class Watchpoints:
    """The watchpoint side of one ptrace session; every method runs on the tracer thread, with the thread
    it names in a ptrace-stop."""

    def __init__(self, specs: tuple[WatchSpec, ...], notice: Callable[[int, str], None]) -> None:
        import capstone

        self.specs = specs
        self.notice = notice
        self.roots: set[int] = set()  # processes to watch (the command after exec, -p PIDs, their forks)
        self.forked: set[int] = set()  # of those, the forked children: quietly unwatched when they exec
        self.procs: dict[int, _Process] = {}
        self.events: list[Event] = []
        self.hits = 0
        self._regs = px.UserRegs()
        self._regs_addr = ctypes.addressof(self._regs)
        self._cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)

    # ---- addresses ------------------------------------------------------------------------------
    def _name(self, s: WatchSpec) -> str:
        return f"watch:{s.where}:{s.length}:{s.access}"

    def resolve(self, tgid: int) -> tuple[int, ...]:
        """Runtime address of every spec in process `tgid`; TargetError when one cannot be watched."""
        from unitrace.backends.ptrace.breakpoints import _modules

        exe = ""
        mods: list[tuple[str, int, int, int]] = []
        if any(s.symbol for s in self.specs):
            try:
                exe = os.readlink(f"/proc/{tgid}/exe")
                mods = _modules(tgid)
            except OSError as exc:
                raise TargetError(f"cannot read the executable of process {tgid}: {exc.strerror}") from exc
        out = []
        for s in self.specs:
            if s.symbol is None:
                addr = s.address or 0
            else:
                found = _exe_symbol(exe, s.symbol)
                if found is None:
                    raise TargetError(f"{self._name(s)}: no symbol {s.symbol!r} in {exe} (process {tgid})",
                                      hint="a global or static variable of the program (nm shows it), "
                                           "or an address")
                bias = next((b for path, b, _lo, _hi in mods if path == exe), 0)
                addr = found[0] + bias
            if addr % s.length:
                raise TargetError(f"{self._name(s)}: {addr:#x} is not aligned to {s.length} bytes",
                                  hint="x86 debug registers watch aligned 1, 2, 4 or 8 bytes")
            if not 0 < addr < USER_TOP:
                raise TargetError(f"{self._name(s)}: {addr:#x} is not a user-space address")
            out.append(addr)
        return tuple(out)

    def watch_process(self, tgid: int, mem: object) -> None:
        """Resolve the specs in `tgid` (raises TargetError) and remember the watched bytes' values."""
        addrs = self.resolve(tgid)
        values = [mem.read(a, s.length) for a, s in zip(addrs, self.specs, strict=True)]  # type: ignore[attr-defined]
        self.procs[tgid] = _Process(tgid, addrs, dr7_value(len(addrs), self.specs), values)

    # ---- threads --------------------------------------------------------------------------------
    def wants(self, tid: int, tgid: int) -> bool:
        p = self.procs.get(tgid)
        return p is not None and tid not in p.armed

    def arm(self, tid: int, tgid: int) -> None:
        """Program the debug registers of thread `tid` (stopped); TargetError if the kernel refuses."""
        p = self.procs[tgid]
        for i, addr in enumerate(p.addrs):
            err = px.poke_debugreg(tid, i, addr)
            if err < 0:
                self._refused(tid, self.specs[i], addr, err)
                return
        err = px.poke_debugreg(tid, px.DR_CONTROL, p.dr7)
        if err < 0:
            self._refused(tid, self.specs[0], p.addrs[0], err)
            return
        p.armed.add(tid)

    def _refused(self, tid: int, spec: WatchSpec, addr: int, err: int) -> None:
        import errno

        if err == -errno.ESRCH:
            return  # the thread is gone; waitpid says how
        self.disarm(tid)
        raise TargetError(f"{self._name(spec)}: the kernel refused a watchpoint at {addr:#x} in thread {tid}: "
                          f"{os.strerror(-err)}")

    def disarm(self, tid: int) -> None:
        """DR7 first (nothing enabled), then the addresses and the status."""
        px.poke_debugreg(tid, px.DR_CONTROL, 0)
        for i in range(px.DR_COUNT):
            px.poke_debugreg(tid, i, 0)
        px.poke_debugreg(tid, px.DR_STATUS, 0)
        for p in self.procs.values():
            p.armed.discard(tid)

    def on_exec(self, tgid: int, mem: object) -> bool:
        """A watched process exec'd: the old image's addresses are gone (and the kernel cleared the
        registers). Resolve against the new one; False (and a notice) when it cannot be watched."""
        self.procs.pop(tgid, None)
        try:
            self.watch_process(tgid, mem)
        except TargetError as exc:
            if tgid not in self.forked:  # a child running another program (sh, ls) is no news
                self.notice(tgid, f"not watching process {tgid}: {exc.message}")
            return False
        return True

    def inherit(self, parent: int, child: int) -> bool:
        """A watched process forked (traced with -f): the child's copy of the memory is watched too, from
        its first stop (fork gives it no debug registers)."""
        p = self.procs.get(parent)
        if p is None:
            return False
        self.procs[child] = _Process(child, p.addrs, p.dr7, list(p.values))
        self.roots.add(child)
        self.forked.add(child)
        return True

    def on_exit(self, tid: int, tgid: int) -> None:
        p = self.procs.get(tgid)
        if p is not None:
            p.armed.discard(tid)
            if tid == tgid:
                self.procs.pop(tgid, None)
                self.roots.discard(tgid)
                self.forked.discard(tgid)

    # ---- hits -----------------------------------------------------------------------------------
    def on_trap(self, tid: int, tgid: int, si_code: int, mem: object, comm: str) -> bool:
        """A SIGTRAP stop: True when one of our watchpoints fired (the event is in self.events)."""
        if si_code != px.TRAP_HWBKPT:
            return False
        p = self.procs.get(tgid)
        dr6 = px.peek_debugreg(tid, px.DR_STATUS)
        if p is None or dr6 is None:
            return False
        fired = [i for i in range(len(p.addrs)) if dr6 >> i & 1]
        if not fired:
            return False
        # the values first: the process's other threads keep running while this one is decoded (the first
        # hit in a library loads its symbols and line tables, milliseconds), and may write meanwhile
        values = {i: mem.read(p.addrs[i], self.specs[i].length) for i in fired}
        px.poke_debugreg(tid, px.DR_STATUS, 0)
        if px.raw_ptrace(px.PTRACE_GETREGS, tid, None, self._regs_addr) < 0:
            return True
        regs = _REGS(self._regs)
        rip = regs[_RIP]
        site = p.sites.get(rip)
        if site is None:
            from unitrace.stack.symbolize import symbolize

            maps = self._maps(p, rip)
            ip, exact = self._writer(rip, maps, mem)
            site = p.sites[rip] = (ip, exact, symbolize([Frame(ip, how="regs")], maps))
        now = time.time_ns()
        for i in fired:
            self.hits += 1
            self.events.append(self._event(p, i, tid, comm, now, regs, site, mem, values[i]))
        return True

    def _maps(self, p: _Process, rip: int):  # type: ignore[no-untyped-def]
        from unitrace.stack.maps import Maps

        if p.maps is None or p.maps.find(rip) is None:  # type: ignore[attr-defined]
            try:
                p.maps = Maps.of(p.tgid)
            except OSError:
                p.maps = Maps([])
            p.sites.clear()  # code may have moved (dlclose, dlopen)
            p.names.clear()
        return p.maps

    def _writer(self, rip: int, maps, mem) -> tuple[int, bool]:  # type: ignore[no-untyped-def]
        """The address of the instruction that ends at `rip`, and whether a function start proved it."""
        from unitrace.stack.symbolize import _symbol

        where = maps.link_address(rip - 1)
        if where is not None:
            hit = _symbol(where[0], where[1])
            if hit is not None:
                start = rip - 1 - hit[1]
                code = mem.read(start, rip - start) if 0 < rip - start <= MAX_FUNCTION else None
                if code:
                    last = None
                    for addr, size, _m, _o in self._cs.disasm_lite(code, start):
                        if addr + size == rip:
                            last = addr
                    if last is not None:
                        return last, True
        code = None
        back = SCAN_BACK
        while code is None and back >= 16:  # near a mapping's start, fewer bytes are there
            code = mem.read(rip - back, back)
            back //= 2
        if not code:
            return rip, False
        votes: collections.Counter[int] = collections.Counter()
        for k in range(len(code), 0, -1):
            last = None
            for addr, size, _m, _o in self._cs.disasm_lite(code[len(code) - k:], rip - k):
                if addr + size == rip:
                    last = addr
                if addr + size >= rip:
                    break
            if last is not None:
                votes[last] += 1
        return (votes.most_common(1)[0][0], False) if votes else (rip, False)

    def _event(self, p: _Process, i: int, tid: int, comm: str, now: int, regs: tuple[int, ...],
               site: tuple[int, bool, list[Frame]], mem, raw_new: bytes | None) -> Event:  # type: ignore[no-untyped-def]
        ip, exact, frames = site
        spec, addr = self.specs[i], p.addrs[i]
        raw_old = p.values[i]
        p.values[i] = raw_new
        new = int.from_bytes(raw_new, "little") if raw_new is not None else None
        old = int.from_bytes(raw_old, "little") if raw_old is not None else None
        top, site = frames[0], frames
        fields: dict[str, object] = {"address": f"{addr:#x}", "length": spec.length, "access": spec.access,
                                     "old": old, "new": new, "ip": f"{ip:#x}", "ip_exact": exact,
                                     "function": top.symbol, "offset": site[-1].offset,
                                     "module": site[-1].module, "file": top.file, "line": top.line}
        stack = None
        if spec.stack:
            stack = self._stack(p, regs, ip, self._maps(p, regs[_RIP]), mem)
        changed = old != new
        what = f"{_num(old)} -> {_num(new)}" if changed or spec.access == "w" else f"read {_num(new)}"
        by = f"{top.symbol}+{site[-1].offset:#x}" if top.symbol else f"{ip:#x}"
        if top.inlined:
            by = f"{top.symbol} [inlined in {site[-1].symbol}+{site[-1].offset:#x}]"
        mod = f" ({site[-1].module})" if site[-1].module else ""
        src = f" at {top.file}:{top.line}" if top.file else ""
        guess = "" if exact else " (instruction found by decoding backwards)"
        text = f"{what} ({spec.length} bytes at {addr:#x}) by {by}{mod}{src}{guess}"
        return Event(EventKind.WATCH, now, p.tgid, tid, spec.where, probe=spec.probe, comm=comm,
                     fields=fields, text=text, stack=stack)

    def _stack(self, p: _Process, regs: tuple[int, ...], ip: int, maps, mem) -> list[Frame]:  # type: ignore[no-untyped-def]
        """The thread's stack, its first frame at the accessing instruction (not at rip after it); each
        pc's names looked up once per process."""
        from unitrace.backends.ptrace.stacks import DWARF_REGS
        from unitrace.stack.symbolize import symbolize
        from unitrace.stack.unwind import Unwinder

        frames = Unwinder(mem, maps).unwind({d: regs[r] for d, r in DWARF_REGS})
        if frames:
            frames[0].address = ip
        out: list[Frame] = []
        for f in frames:
            named = p.names.get((f.address, f.how))
            if named is None:
                named = p.names[(f.address, f.how)] = symbolize([f], maps)
            out.extend(replace(n, reliable=f.reliable) for n in named)
        return out

    def take_events(self) -> list[Event]:
        out, self.events = self.events, []
        return out


def _num(value: int | None) -> str:
    if value is None:
        return "?"
    return str(value) if value < 1 << 32 else f"{value:#x}"
