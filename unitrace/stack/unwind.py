"""The user-space stack walker: DWARF CFI first, the signal trampoline, frame pointers, then scanning.

Every frame says how it was found. A frame is `reliable` only when the chain that led to it was proven:
CFI rows, a signal frame read from the kernel's ucontext, or a frame-pointer link whose return address
follows a call instruction. Frames found by scanning the stack for code addresses are always guesses and
are printed with `?`, as the kernel prints its own guesses.
"""

from __future__ import annotations

import bisect
import os
import struct
from dataclasses import dataclass

from unitrace.decode.api import Memory
from unitrace.events import Frame
from unitrace.stack.cfi import Row, cfi_for

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


@dataclass(frozen=True, slots=True)
class Mapping:
    start: int
    end: int
    offset: int
    perms: str
    path: str

    @property
    def executable(self) -> bool:
        return "x" in self.perms


class Maps:
    """A process's memory map (/proc/PID/maps), with the load bias of every file."""

    def __init__(self, mappings: list[Mapping]) -> None:
        self.mappings = sorted(mappings, key=lambda m: m.start)
        self._starts = [m.start for m in self.mappings]
        self._bias: dict[str, int] = {}

    @classmethod
    def of(cls, pid: int) -> Maps:
        rows = []
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace",
                  opener=lambda p, f: os.open(p, f | os.O_CLOEXEC)) as fh:
            for line in fh:
                parts = line.split(maxsplit=5)
                if len(parts) < 5:
                    continue
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                rows.append(Mapping(lo, hi, int(parts[2], 16), parts[1], parts[5].strip() if len(parts) > 5 else ""))
        return cls(rows)

    def find(self, addr: int) -> Mapping | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr < self.mappings[i].end:
            return self.mappings[i]
        return None

    def link_address(self, addr: int) -> tuple[str, int] | None:
        """(file, link-time address) for a runtime address in a file-backed mapping."""
        m = self.find(addr)
        if m is None or not m.path.startswith("/"):
            return None
        bias = self._bias.get(m.path)
        if bias is None:
            bias = self._load_bias(m)
            self._bias[m.path] = bias
        return m.path, addr - bias

    def _load_bias(self, m: Mapping) -> int:
        from unitrace.symbols.elf import elf_symbols

        try:
            segs = elf_symbols(m.path).segments
        except Exception:
            return m.start - m.offset
        for seg in segs:
            if seg.offset <= m.offset < seg.offset + max(seg.filesz, 1):
                return m.start - (seg.vaddr + (m.offset - seg.offset))
        return m.start - m.offset


def _eval_expr(expr: bytes, regs: dict[int, int], mem: Memory, push_cfa: int | None = None) -> int | None:
    """The subset of DWARF expressions unwind tables use (PLT entries, signal frames)."""
    stack: list[int] = [] if push_cfa is None else [push_cfa]
    pos = 0

    def uleb() -> int:
        nonlocal pos
        result = shift = 0
        while True:
            b = expr[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    def sleb() -> int:
        nonlocal pos
        result = shift = 0
        while True:
            b = expr[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                if b & 0x40:
                    result -= 1 << shift
                return result

    mask = (1 << 64) - 1
    try:
        while pos < len(expr):
            op = expr[pos]
            pos += 1
            if 0x70 <= op <= 0x8F:  # DW_OP_breg0..31
                reg = op - 0x70
                if reg not in regs:
                    return None
                stack.append((regs[reg] + sleb()) & mask)
            elif 0x30 <= op <= 0x4F:  # DW_OP_lit0..31
                stack.append(op - 0x30)
            elif op == 0x08:  # const1u
                stack.append(expr[pos])
                pos += 1
            elif op == 0x10:  # constu
                stack.append(uleb())
            elif op == 0x11:  # consts
                stack.append(sleb() & mask)
            elif op == 0x06:  # deref
                data = mem.read(stack.pop(), 8)
                if data is None:
                    return None
                stack.append(_U64.unpack(data)[0])
            elif op == 0x12:  # dup
                stack.append(stack[-1])
            elif op == 0x1A:  # and
                b, a = stack.pop(), stack.pop()
                stack.append(a & b)
            elif op == 0x22:  # plus
                b, a = stack.pop(), stack.pop()
                stack.append((a + b) & mask)
            elif op == 0x23:  # plus_uconst
                stack.append((stack.pop() + uleb()) & mask)
            elif op == 0x1C:  # minus
                b, a = stack.pop(), stack.pop()
                stack.append((a - b) & mask)
            elif op == 0x24:  # shl
                b, a = stack.pop(), stack.pop()
                stack.append((a << b) & mask)
            elif op in (0x29, 0x2A, 0x2B, 0x2C, 0x2D, 0x2E):  # eq ge gt le lt ne (signed)
                b, a = stack.pop(), stack.pop()
                sa, sb = (a - (1 << 64) if a >> 63 else a), (b - (1 << 64) if b >> 63 else b)
                result = {0x29: sa == sb, 0x2A: sa >= sb, 0x2B: sa > sb, 0x2C: sa <= sb, 0x2D: sa < sb,
                          0x2E: sa != sb}[op]
                stack.append(int(result))
            else:
                return None
    except (IndexError, struct.error):
        return None
    return stack[-1] if stack else None


def _after_call(mem: Memory, ra: int) -> bool:
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
    def __init__(self, mem: Memory, maps: Maps, *, scan: bool = True, max_frames: int = 128) -> None:
        self.mem = mem
        self.maps = maps
        self.scan = scan
        self.max_frames = max_frames

    def _word(self, addr: int) -> int | None:
        data = self.mem.read(addr, 8)
        return None if data is None else _U64.unpack(data)[0]

    def _row(self, ip: int, is_first: bool) -> Row | None:
        where = self.maps.link_address(ip if is_first else ip - 1)
        if where is None:
            return None
        index = cfi_for(where[0])
        return index.row_for(where[1]) if index is not None else None

    def _step_cfi(self, row: Row, regs: dict[int, int]) -> dict[int, int] | None:
        if row.cfa_expr is not None:
            cfa = _eval_expr(row.cfa_expr, regs, self.mem)
        elif row.cfa_reg is not None and row.cfa_reg in regs:
            cfa = regs[row.cfa_reg] + row.cfa_offset
        else:
            return None
        if cfa is None:
            return None
        new = {k: v for k, v in regs.items() if k not in (RIP, RSP)}
        new[RSP] = cfa
        for reg, rule in row.regs:
            kind = rule[0]
            if kind == "offset":
                value = self._word(cfa + rule[1])
                if value is None:
                    return None
                new[reg] = value
            elif kind == "val_offset":
                new[reg] = cfa + rule[1]
            elif kind == "register" and rule[1] in regs:
                new[reg] = regs[rule[1]]
            elif kind in ("expression", "val_expression"):
                addr = _eval_expr(rule[1], regs, self.mem, push_cfa=cfa)
                if addr is None:
                    return None
                if kind == "expression":
                    value = self._word(addr)
                    if value is None:
                        return None
                    new[reg] = value
                else:
                    new[reg] = addr
            elif kind == "undefined":
                new.pop(reg, None)
        if RIP not in new:
            return None
        return new

    def _signal_frame(self, regs: dict[int, int]) -> dict[int, int] | None:
        """At glibc's __restore_rt the kernel's ucontext sits at the stack pointer."""
        ip, sp = regs.get(RIP), regs.get(RSP)
        if ip is None or sp is None or self.mem.read(ip, len(SIGRETURN_CODE)) != SIGRETURN_CODE:
            return None
        data = self.mem.read(sp + UC_GREGS, 8 * len(GREGS))
        if data is None:
            return None
        values = struct.unpack(f"<{len(GREGS)}Q", data)
        return {_GREG_TO_DWARF[name]: v for name, v in zip(GREGS, values, strict=True)}

    def unwind(self, regs: dict[int, int]) -> list[Frame]:
        frames: list[Frame] = []
        regs = dict(regs)
        how = "regs"
        reliable = True
        first = True
        seen: set[tuple[int, int]] = set()
        while len(frames) < self.max_frames:
            ip = regs.get(RIP)
            if not ip:
                break
            frames.append(Frame(ip, reliable=reliable, how=how))
            key = (ip, regs.get(RSP, 0))
            if key in seen:
                break
            seen.add(key)
            sig = self._signal_frame(regs)
            if sig is not None:
                frames[-1].symbol = "<signal handler called>"
                regs, how, reliable, first = sig, "signal", reliable, True
                continue
            row = self._row(ip, first)
            new = self._step_cfi(row, regs) if row is not None else None
            if new is not None and new.get(RSP, 0) > regs.get(RSP, 0) - 1:
                regs, how, first = new, "cfi", row.signal_frame if row else False
                continue
            new = self._step_fp(regs)
            if new is not None:
                regs, how, first = new, "fp", False
                reliable = reliable and _after_call(self.mem, new[RIP])
                continue
            break
        if self.scan:
            frames.extend(self._scan(regs))
        return frames

    def _step_fp(self, regs: dict[int, int]) -> dict[int, int] | None:
        bp, sp = regs.get(RBP), regs.get(RSP, 0)
        if not bp or bp < sp or bp & 7:
            return None
        saved_bp, ra = self._word(bp), self._word(bp + 8)
        if ra is None or saved_bp is None:
            return None
        m = self.maps.find(ra)
        if m is None or not m.executable:
            return None
        return {**regs, RIP: ra, RSP: bp + 16, RBP: saved_bp}

    def _scan(self, regs: dict[int, int], words: int = 256) -> list[Frame]:
        """After the proven chain ends: stack words that point just after a call instruction in code.
        Always guesses (`?`)."""
        sp = regs.get(RSP)
        if not sp:
            return []
        data = self.mem.read(sp, words * 8)
        while data is None and words > 8:
            words //= 2
            data = self.mem.read(sp, words * 8)
        if data is None:
            return []
        out = []
        for (value,) in struct.iter_unpack("<Q", data):
            m = self.maps.find(value)
            if m is not None and m.executable and _after_call(self.mem, value):
                out.append(Frame(value, reliable=False, how="scan"))
        return out


def symbolize(frames: list[Frame], maps: Maps) -> list[Frame]:
    """Fill symbol, offset, module (and file:line where DWARF says) for each frame, in place."""
    from unitrace.symbols.elf import elf_symbols

    for f in frames:
        where = maps.link_address(f.address if f.how in ("regs", "signal") else f.address - 1)
        if where is None:
            continue
        path, link = where
        f.module = os.path.basename(path)
        try:
            hit = elf_symbols(path).symbolize(link)
        except Exception:
            hit = None
        if hit is not None:
            sym, off = hit
            f.symbol = sym.name
            f.offset = off + (0 if f.how in ("regs", "signal") else 1)
        try:
            from unitrace.symbols.lines import line_for

            loc = line_for(path, link)
        except Exception:
            loc = None
        if loc is not None:
            f.file, f.line = loc
    return frames
