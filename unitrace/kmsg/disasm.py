"""The bytes ftrace printed, disassembled for the report's architecture (capstone), with the target of
a call or branch worked out from the site address (or relative to the site when it is unknown)."""

from __future__ import annotations

import capstone

from unitrace.kmsg.model import Instruction

_MODES: dict[str, tuple[int, int, int]] = {  # arch -> (capstone arch, mode, address bits)
    "x86_64": (capstone.CS_ARCH_X86, capstone.CS_MODE_64, 64),
    "i386": (capstone.CS_ARCH_X86, capstone.CS_MODE_32, 32),
    "arm64": (capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM, 64),
    "arm": (capstone.CS_ARCH_ARM, capstone.CS_MODE_ARM, 32),
    "thumb2": (capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB, 32),
    "ppc64le": (capstone.CS_ARCH_PPC, capstone.CS_MODE_64 | capstone.CS_MODE_LITTLE_ENDIAN, 64),
    "ppc64": (capstone.CS_ARCH_PPC, capstone.CS_MODE_64 | capstone.CS_MODE_BIG_ENDIAN, 64),
    "riscv64": (capstone.CS_ARCH_RISCV, capstone.CS_MODE_RISCV64 | capstone.CS_MODE_RISCVC, 64),
}
_BRANCHES = {"call", "jmp", "b", "bl", "blx", "ba", "bla", "jal", "j", "callq", "jmpq"}


def supported(arch: str) -> bool:
    return arch in _MODES


def disassemble(code: bytes, arch: str, address: int | None) -> list[Instruction]:
    """Instructions in `code`; bytes capstone cannot decode end the list with a `.byte` entry."""
    if arch not in _MODES or not code:
        return []
    cs_arch, mode, bits = _MODES[arch]
    md = capstone.Cs(cs_arch, mode)
    md.detail = True
    base = address if address is not None else 0
    mask = (1 << bits) - 1
    out: list[Instruction] = []
    consumed = 0
    for insn in md.disasm(code, base):
        consumed = insn.address - base + insn.size
        ins = Instruction(address if address is None else insn.address, insn.address - base, insn.size,
                          insn.mnemonic, insn.op_str)
        if address is None:
            ins.address = None
        target = _direct_target(insn)
        if target is not None:
            rel = (target - insn.address) & mask
            if rel >= 1 << (bits - 1):
                rel -= 1 << bits
            ins.target_offset = ins.offset + rel
            if address is not None:
                ins.target = (base + ins.target_offset) & mask
        out.append(ins)
    if consumed < len(code):
        rest = code[consumed:]
        out.append(Instruction(None if address is None else base + consumed, consumed, len(rest), ".byte",
                               ", ".join(f"0x{b:02x}" for b in rest)))
    if arch == "riscv64":
        _riscv_auipc_jalr(out, code, address)
    return out


def _direct_target(insn: capstone.CsInsn) -> int | None:
    name = insn.mnemonic.split(".")[0]
    conditional_arm = len(name) == 3 and name[0] == "b" and name[1:] not in ("ic", "fi", "fm", "fc")
    if name not in _BRANCHES and not (name.startswith("j") and len(name) <= 4) and not conditional_arm:
        return None
    for op in insn.operands:
        if op.type == capstone.CS_OP_IMM:
            return int(op.imm)
    return None


def _riscv_auipc_jalr(out: list[Instruction], code: bytes, address: int | None) -> None:
    """ftrace on RISC-V patches `auipc rd, hi20; jalr rd, lo12(rd)`: the pair is one call."""
    for i in range(len(out) - 1):
        a, b = out[i], out[i + 1]
        if a.mnemonic != "auipc" or b.mnemonic != "jalr" or a.size != 4 or b.size != 4:
            continue
        w1 = int.from_bytes(code[a.offset:a.offset + 4], "little")
        w2 = int.from_bytes(code[b.offset:b.offset + 4], "little")
        if (w1 >> 7) & 0x1F != (w2 >> 15) & 0x1F:
            continue  # jalr does not use the register auipc set
        hi = w1 & 0xFFFFF000
        hi = hi - (1 << 32) if hi & 0x80000000 else hi
        lo = w2 >> 20
        lo = lo - (1 << 12) if lo & 0x800 else lo
        b.target_offset = a.offset + hi + lo
        if address is not None:
            b.target = (address + b.target_offset) & ((1 << 64) - 1)


def is_breakpoint(ins: Instruction) -> bool:
    return ins.mnemonic in ("int3", "ebreak", "c.ebreak", "brk", "bkpt", "trap", "udf") or (
        ins.mnemonic == "tw" and ins.op_str.startswith("31"))


def is_nop(ins: Instruction) -> bool:
    return ins.mnemonic in ("nop", "nopl", "nopw", "c.nop", "hint") or (
        ins.mnemonic in ("ori", "addi") and ins.op_str in ("r0, r0, 0", "zero, zero, 0")) or (
        ins.mnemonic == "mov" and ins.op_str in ("r0, r0", "r8, r8"))
