"""The seccomp prefilter: a classic-BPF program that makes the kernel stop the tracee only at the syscalls
being traced (SECCOMP_RET_TRACE) and lets every other one run at full speed (SECCOMP_RET_ALLOW).

Numbers are grouped into ranges and the ranges bisected, so a large set stays short and fast; any other architecture (a 32-bit process) and
x32 numbers are sent to the tracer rather than guessed about.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

# <linux/filter.h>, <linux/seccomp.h>, <linux/audit.h>
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_JGE_K = 0x35
BPF_JGT_K = 0x25
BPF_RET_K = 0x06
BPF_JA = 0x05
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_TRACE = 0x7FF00000
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_SYSCALL_BIT = 0x40000000
OFF_NR = 0
OFF_ARCH = 4


def ranges(numbers: Iterable[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for n in sorted(set(numbers)):
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


Insn = tuple[int, int, int, int]  # (code, jt, jf, k); jumps count from the next instruction
_LEAF = 4  # ranges tested one after another; above that the set is bisected


def _leaf(spans: list[tuple[int, int]]) -> list[Insn]:
    body: list[Insn] = []
    for lo, hi in spans:
        if lo == hi:
            body.append((BPF_JEQ_K, -1, 0, lo))  # hit -> TRACE (patched below)
        else:
            body.append((BPF_JGE_K, 0, 1, lo))  # below lo: skip the JGT
            body.append((BPF_JGT_K, 0, -1, hi))  # lo <= nr <= hi -> TRACE
    trace_at = len(body) + 1  # body, RET ALLOW, RET TRACE
    out = [(code, trace_at - i - 1 if jt == -1 else jt, trace_at - i - 1 if jf == -1 else jf, k)
           for i, (code, jt, jf, k) in enumerate(body)]
    return [*out, (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW), (BPF_RET_K, 0, 0, SECCOMP_RET_TRACE)]


def _tree(spans: list[tuple[int, int]]) -> list[Insn]:
    """A binary search over sorted ranges: each subtree ends in its own RETs, so jumps stay short."""
    if len(spans) <= _LEAF:
        return _leaf(spans)
    mid = len(spans) // 2
    left, right = _tree(spans[:mid]), _tree(spans[mid:])
    pivot = spans[mid][0]
    if len(left) < 256:
        return [(BPF_JGE_K, len(left), 0, pivot), *left, *right]
    # a conditional jump reaches 255 instructions at most; JA reaches anywhere
    return [(BPF_JGE_K, 0, 1, pivot), (BPF_JA, 0, 0, len(left)), *left, *right]


def build(numbers: Iterable[int], arch: str = "x86_64") -> list[Insn]:
    """The filter for a syscall-number set: TRACE for the set, ALLOW for the rest."""
    audit = AUDIT_ARCH_X86_64 if arch == "x86_64" else AUDIT_ARCH_AARCH64
    prog: list[Insn] = [
        (BPF_LD_W_ABS, 0, 0, OFF_ARCH),
        (BPF_JEQ_K, 1, 0, audit),  # our architecture: go on
        (BPF_RET_K, 0, 0, SECCOMP_RET_TRACE),  # another ABI (a 32-bit process): the tracer decides
        (BPF_LD_W_ABS, 0, 0, OFF_NR),
    ]
    if arch == "x86_64":
        prog += [(BPF_JGE_K, 0, 1, X32_SYSCALL_BIT), (BPF_RET_K, 0, 0, SECCOMP_RET_TRACE)]
    prog += _tree(ranges(numbers))
    if len(prog) > 4096:
        raise ValueError("seccomp filter longer than the kernel's 4096 instructions")
    for _code, jt, jf, _ in prog:
        if not (0 <= jt < 256 and 0 <= jf < 256):
            raise ValueError("seccomp jump out of range")
    return prog


def encode(prog: list[Insn]) -> bytes:
    return b"".join(struct.pack("<HBBI", *ins) for ins in prog)


def disassemble(prog: list[Insn], names: dict[int, str] | None = None) -> str:
    """Readable listing, in the style of `seccomp-tools dump` / bpf_dbg."""
    names = names or {}
    lines = []
    for i, (code, jt, jf, k) in enumerate(prog):
        if code == BPF_LD_W_ABS:
            what = {OFF_NR: "nr", OFF_ARCH: "arch"}.get(k, str(k))
            text = f"ld  [{k}]\t\t\t; {what}"
        elif code == BPF_RET_K:
            text = "ret " + {SECCOMP_RET_ALLOW: "ALLOW", SECCOMP_RET_TRACE: "TRACE"}.get(k, hex(k))
        elif code == BPF_JA:
            text = f"ja  {i + 1 + k}"
        else:
            op = {BPF_JEQ_K: "jeq", BPF_JGE_K: "jge", BPF_JGT_K: "jgt"}[code]
            label = names.get(k, "")
            text = f"{op} #{k:#x}, {i + 1 + jt}, {i + 1 + jf}" + (f"\t; {label}" if label else "")
        lines.append(f"{i:04d}: {text}")
    return "\n".join(lines)


def run_filter(prog: list[Insn], nr: int, arch: int = AUDIT_ARCH_X86_64) -> int:
    """Interpret the program for one (arch, nr): the action the kernel would take (for tests)."""
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = prog[pc]
        pc += 1
        if code == BPF_LD_W_ABS:
            acc = arch if k == OFF_ARCH else nr & 0xFFFFFFFF
        elif code == BPF_RET_K:
            return k
        elif code == BPF_JA:
            pc += k
        else:
            hit = {BPF_JEQ_K: acc == k, BPF_JGE_K: acc >= k, BPF_JGT_K: acc > k}[code]
            pc += jt if hit else jf
