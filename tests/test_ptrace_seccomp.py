"""The seccomp prefilter as a pure program: what it returns for every number, how it is laid out, and
what `unitrace compile --backend ptrace` shows of it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.ptrace_support import compile_for
from unitrace.backends.ptrace import seccomp
from unitrace.decode.table import get_table

TRACE, ALLOW = seccomp.SECCOMP_RET_TRACE, seccomp.SECCOMP_RET_ALLOW


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(0, 500)))
def test_filter_traces_exactly_the_set(numbers: set[int]) -> None:
    prog = seccomp.build(numbers)
    for nr in range(0, 520):
        assert seccomp.run_filter(prog, nr) == (TRACE if nr in numbers else ALLOW), nr


def test_other_architectures_and_x32_go_to_the_tracer() -> None:
    prog = seccomp.build({1})
    assert seccomp.run_filter(prog, 2, arch=0x40000003) == TRACE  # i386 ABI: numbers mean other calls
    assert seccomp.run_filter(prog, 2 | seccomp.X32_SYSCALL_BIT) == TRACE
    assert seccomp.run_filter(prog, 2) == ALLOW


def test_large_sparse_sets_are_bisected_with_short_jumps() -> None:
    numbers = set(range(0, 460, 2))  # 230 separate ranges: a linear list would need jumps over 255
    prog = seccomp.build(numbers)
    assert len(seccomp.encode(prog)) == 8 * len(prog) and len(prog) < 1000
    huge = set(range(0, 3000, 2))  # subtrees longer than a conditional jump reaches: JA bridges them
    big = seccomp.build(huge)
    assert any(code == seccomp.BPF_JA for code, *_ in big)
    assert all(seccomp.run_filter(big, nr) == (TRACE if nr in huge else ALLOW) for nr in range(0, 3010, 7))
    depth = 0  # a lookup runs O(log n) comparisons, not n
    for nr in (0, 229, 458, 459):
        pc, steps = 0, 0
        while prog[pc][0] != seccomp.BPF_RET_K:
            code, jt, jf, k = prog[pc]
            steps += 1
            if code == seccomp.BPF_LD_W_ABS:
                acc = 0xC000003E if k == seccomp.OFF_ARCH else nr
                pc += 1
            elif code == seccomp.BPF_JA:
                pc += 1 + k
            else:
                hit = {seccomp.BPF_JEQ_K: acc == k, seccomp.BPF_JGE_K: acc >= k, seccomp.BPF_JGT_K: acc > k}[code]
                pc += 1 + (jt if hit else jf)
        depth = max(depth, steps)
    assert depth < 40


def test_disassembly_golden() -> None:
    prog = seccomp.build({0, 1, 2, 59})
    assert seccomp.disassemble(prog, {0: "read", 1: "write", 2: "open", 59: "execve"}) == "\n".join([
        "0000: ld  [4]\t\t\t; arch",
        "0001: jeq #0xc000003e, 3, 2",
        "0002: ret TRACE",
        "0003: ld  [0]\t\t\t; nr",
        "0004: jge #0x40000000, 5, 6",
        "0005: ret TRACE",
        "0006: jge #0x0, 7, 8\t; read",
        "0007: jgt #0x2, 8, 10\t; open",
        "0008: jeq #0x3b, 10, 9\t; execve",
        "0009: ret ALLOW",
        "0010: ret TRACE",
    ])


def test_compile_artifacts() -> None:
    table = get_table()
    prog = compile_for({"openat", "read"})
    titles = [a.title for a in prog.artifacts]
    assert titles[0] == "syscalls stopped at" and prog.artifacts[0].text == "openat read"
    assert "seccomp filter" in titles[1] and "; read" in prog.artifacts[1].text
    assert prog.data["syscalls"] == frozenset({"openat", "read"})
    filt = prog.data["seccomp_filter"]
    assert isinstance(filt, bytes) and len(filt) % 8 == 0
    every = compile_for(None)
    assert every.data["syscalls"] is None and len(table.by_name) > 300
