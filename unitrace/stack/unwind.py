"""The user-space stack walker: DWARF CFI first, the signal trampoline, frame pointers, then scanning.

Every frame says how it was found. A frame is `reliable` only when the chain that led to it was proven:
CFI rows, a signal frame read from the kernel's ucontext, or a frame-pointer link whose return address
follows a call instruction. A return address that points nowhere executable ends the proven chain (that
frame is printed, marked). Frames found by scanning the stack for code addresses are always guesses and are
printed with `?`, as the kernel prints its own guesses; scanning runs only when asked and only where the
proven chain broke.

Entry point (used by the ptrace engine for `strace -k` and by the bpf backend):
    frames = symbolize(Unwinder(mem, Maps.of(pid)).unwind(regs), maps)
with `regs` a dict of DWARF register number -> value (RIP = 16, RSP = 7, RBP = 6, ...).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from unitrace.decode.api import Memory
from unitrace.events import Frame
from unitrace.stack.cfi import Row, cfi_for
from unitrace.stack.dwarf_expr import eval_expr
from unitrace.stack.maps import Mapping, Maps
from unitrace.stack.symbolize import symbolize

__all__ = ["RBP", "RIP", "RSP", "Mapping", "Maps", "Unwinder", "Walk", "after_call", "symbolize"]

# DWARF register numbers on x86_64 (System V psABI, figure 3.36)
RAX, RDX, RCX, RBX, RSI, RDI, RBP, RSP = range(8)
RIP = 16
# glibc's __restore_rt: mov $__NR_rt_sigreturn, %rax; syscall
SIGRETURN_CODE = bytes.fromhex("48c7c00f0000000f05")
# offset of uc_mcontext.gregs in struct ucontext_t, and the order of gregs (sys/ucontext.h, x86_64)
UC_GREGS = 40
GREGS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx", "rdx", "rax",
         "rcx", "rsp", "rip")
_GREG_TO_DWARF = {"rax": RAX, "rdx": RDX, "rcx": RCX, "rbx": RBX, "rsi": RSI, "rdi": RDI, "rbp": RBP,
                  "rsp": RSP, "rip": RIP, **{f"r{n}": n for n in range(8, 16)}}
_U64 = struct.Struct("<Q")


@dataclass(slots=True)
class Walk:
    """One unwind: the frames, and for each the stack slot its return address was read from (None for the
    first frame, whose pc came from the registers), and why the proven chain stopped."""

    frames: list[Frame] = field(default_factory=list)
    slots: list[int | None] = field(default_factory=list)
    stop: str = ""  # "end", "no-unwind-info", "bad-return-address", "loop", "max-frames", "unreadable"
    sp: int = 0  # the stack pointer the proven chain ended at (scanning starts there)


def after_call(mem: Memory, ra: int) -> bool:
    """Does `ra` follow a call instruction? (e8 rel32; ff /2 in its register and memory forms)"""
    data = mem.read(ra - 7, 7)
    if data is None:
        return False
    if data[2] == 0xE8:  # call rel32: 5 bytes
        return True
    for back in (2, 3, 4, 6, 7):  # ff /2 forms: reg, [reg], [reg+d8], [reg+d32], sib variants
        i = 7 - back
        if data[i] == 0xFF and (data[i + 1] >> 3) & 7 == 2:
            return True
        if i > 0 and data[i - 1] in (0x41, 0x43) and data[i] == 0xFF and (data[i + 1] >> 3) & 7 == 2:
            return True
    return False


class Unwinder:
    def __init__(self, mem: Memory, maps: Maps, *, scan: bool = False, max_frames: int = 256,
                 scan_words: int = 512) -> None:
        self.mem = mem
        self.maps = maps
        self.scan = scan
        self.max_frames = max_frames
        self.scan_words = scan_words

    def _word(self, addr: int) -> int | None:
        data = self.mem.read(addr, 8)
        return None if data is None else _U64.unpack(data)[0]

    def _row(self, ip: int, exact: bool) -> Row | None:
        # a return address is the instruction after the call; the call itself (ip-1) is what belongs to
        # the caller, which matters when the call was the function's last instruction (noreturn callees)
        where = self.maps.link_address(ip if exact else ip - 1)
        if where is None:
            return None
        index = cfi_for(where[0])
        return index.row_for(where[1]) if index is not None else None

    def _step_cfi(self, row: Row, regs: dict[int, int]) -> tuple[dict[int, int], int | None] | None:
        if row.cfa_expr is not None:
            cfa = eval_expr(row.cfa_expr, regs, self.mem)
        elif row.cfa_reg is not None and row.cfa_reg in regs:
            cfa = regs[row.cfa_reg] + row.cfa_offset
        else:
            return None
        if cfa is None:
            return None
        new = {k: v for k, v in regs.items() if k not in (RIP, RSP)}
        new[RSP] = cfa
        slot = None
        for reg, rule in row.regs:
            kind = rule[0]
            if kind == "offset":
                value = self._word(cfa + rule[1])
                if value is None:
                    return None
                new[reg] = value
                if reg == RIP:
                    slot = cfa + rule[1]
            elif kind == "val_offset":
                new[reg] = cfa + rule[1]
            elif kind == "register" and rule[1] in regs:
                new[reg] = regs[rule[1]]
            elif kind in ("expression", "val_expression"):
                addr = eval_expr(rule[1], regs, self.mem, push_cfa=cfa)
                if addr is None:
                    return None
                if kind == "expression":
                    value = self._word(addr)
                    if value is None:
                        return None
                    new[reg] = value
                    if reg == RIP:
                        slot = addr
                else:
                    new[reg] = addr
            elif kind == "undefined":
                new.pop(reg, None)
        return new, slot

    def _signal_frame(self, regs: dict[int, int]) -> tuple[dict[int, int], int] | None:
        """At glibc's __restore_rt the kernel's ucontext sits at the stack pointer."""
        ip, sp = regs.get(RIP), regs.get(RSP)
        if ip is None or sp is None or self.mem.read(ip, len(SIGRETURN_CODE)) != SIGRETURN_CODE:
            return None
        data = self.mem.read(sp + UC_GREGS, 8 * len(GREGS))
        if data is None:
            return None
        values = struct.unpack(f"<{len(GREGS)}Q", data)
        regs = {_GREG_TO_DWARF[name]: v for name, v in zip(GREGS, values, strict=True)}
        return regs, sp + UC_GREGS + 8 * GREGS.index("rip")

    def _step_fp(self, regs: dict[int, int]) -> tuple[dict[int, int], int] | None:
        bp, sp = regs.get(RBP), regs.get(RSP, 0)
        if not bp or bp < sp or bp & 7:
            return None
        saved_bp, ra = self._word(bp), self._word(bp + 8)
        if ra is None or saved_bp is None:
            return None
        m = self.maps.find(ra)
        if m is None or not m.executable:
            return None
        return {**regs, RIP: ra, RSP: bp + 16, RBP: saved_bp}, bp + 8

    def walk(self, regs: dict[int, int]) -> Walk:
        """Follow the proven chain from `regs`; then, if asked and the chain broke, scan."""
        out = Walk()
        regs = dict(regs)
        how, reliable, exact, slot = "regs", True, True, None
        seen: set[tuple[int, int]] = set()
        while True:
            ip = regs.get(RIP)
            out.sp = regs.get(RSP, 0)
            if not ip:
                out.stop = "end"  # the outermost frame's CFI leaves the return address undefined
                break
            if len(out.frames) >= self.max_frames:
                out.stop = "max-frames"
                break
            m = self.maps.find(ip)
            good = m is not None and m.executable
            out.frames.append(Frame(ip, reliable=reliable and good, how=how))
            out.slots.append(slot)
            if not good:
                out.stop = "bad-return-address"
                break
            key = (ip, regs.get(RSP, 0))
            if key in seen:
                out.frames[-1].reliable = False
                out.stop = "loop"
                break
            seen.add(key)
            sig = self._signal_frame(regs)
            if sig is not None:
                regs, slot = sig
                how, exact = "signal", True  # the interrupted pc is exact: it did not call anything
                continue
            row = self._row(ip, exact)
            stepped = self._step_cfi(row, regs) if row is not None else None
            if stepped is not None and stepped[0].get(RSP, 0) >= regs.get(RSP, 0):
                regs, slot = stepped
                how, exact = "cfi", row.signal_frame if row else False
                continue
            fp = self._step_fp(regs)
            if fp is not None:
                # frame pointers prove nothing in the innermost frame (it may not have pushed its own yet)
                # nor after a failed CFI step; a link is kept as proven only if it returns after a call
                ra = fp[0][RIP]
                # the kernel, not a call, put the signal trampoline's address there
                returns = after_call(self.mem, ra) or self.mem.read(ra, len(SIGRETURN_CODE)) == SIGRETURN_CODE
                proven = how not in ("regs", "signal") and row is None and returns
                regs, slot = fp
                how, exact, reliable = "fp", False, reliable and proven
                continue
            out.stop = "no-unwind-info" if row is None else "unreadable"
            break
        if self.scan and out.stop != "end":
            out.frames.extend(self._scan(out.sp))
        return out

    def unwind(self, regs: dict[int, int]) -> list[Frame]:
        """The frames of `regs`' stack, innermost first (see module docstring)."""
        return self.walk(regs).frames

    def _read_stack(self, sp: int, words: int) -> bytes | None:
        m = self.maps.find(sp)
        if m is not None:
            words = max(0, min(words, (m.end - sp) // 8))
        data = self.mem.read(sp, words * 8) if words else None
        while data is None and words > 8:
            words //= 2
            data = self.mem.read(sp, words * 8)
        return data

    def _scan(self, sp: int) -> list[Frame]:
        """Stack words above `sp` that point just after a call instruction in code. Always guesses."""
        if not sp:
            return []
        data = self._read_stack(sp, self.scan_words)
        if data is None:
            return []
        out = []
        for (value,) in struct.iter_unpack("<Q", data):
            m = self.maps.find(value)
            if m is not None and m.executable and after_call(self.mem, value):
                out.append(Frame(value, reliable=False, how="scan"))
        return out
