"""The subset of DWARF expressions (DWARF 5, section 2.5) that unwind tables use: PLT entries compute the
CFA from the pc, signal frames read registers out of the kernel's ucontext."""

from __future__ import annotations

import struct

from unitrace.decode.api import Memory

_U64 = struct.Struct("<Q")


def eval_expr(expr: bytes, regs: dict[int, int], mem: Memory, push_cfa: int | None = None) -> int | None:
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
