"""DWARF user stacks from the bpf backend: registers and a copy of the top of the user stack taken in the
kernel, unwound in user space (unitrace.stack.snapshot), against the ptrace backend's stacks and the
kernel's frame-pointer walk. BPF is present here and in CI: no skips."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from unitrace.backends.bpf import record
from unitrace.backends.bpf.backend import _ustack_bytes
from unitrace.errors import UnitraceError

# -O2 -fomit-frame-pointer: the frame-pointer walk cannot get past write(); CFI must. The pause after the
# write keeps the process alive until its maps are read (a process that exits first is printed with `?`:
# see docs/bpf.md, "User stacks").
PROG = textwrap.dedent("""
    #include <time.h>
    #include <unistd.h>
    #define KEEP __asm__ volatile("" ::: "memory")
    __attribute__((noinline)) int d(int x) { char m[2] = {'a' + x % 26, '\\n'}; int r = write(1, m, 2); KEEP; return r + 1; }
    __attribute__((noinline)) int c(int x) { int r = d(x + 1); KEEP; return r * 3; }
    __attribute__((noinline)) int b(int x) { int r = c(x + 2); KEEP; return r - 1; }
    __attribute__((noinline)) int a(int x) { int r = b(x + 3); KEEP; return r ^ 5; }
    int main(int argc, char **argv) {
        (void)argv;
        int r = a(argc);
        struct timespec t = {0, 300000000};
        nanosleep(&t, 0);
        return r == 12345;
    }
""")
EXPECTED = ["write", "d", "c", "b", "a", "main", "__libc_start_call_main"]
FRAME = re.compile(r"^    (\? )?(\S+?)(?:\+0x([0-9a-f]+))?(?: \((\S+)\))?(?: at \S+)?$")


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bpfstack")
    (d / "deepw.c").write_text(PROG)
    subprocess.run(["gcc", "-O2", "-fomit-frame-pointer", "-g", "-o", str(d / "deepw"), str(d / "deepw.c")],
                   check=True)
    return d / "deepw"


def _run(argv: list[str], env: dict[str, str] | None = None) -> str:
    e = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), **(env or {}))
    p = subprocess.run([sys.executable, "-m", "unitrace", *argv], capture_output=True, text=True, env=e,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout + p.stderr


def _frames(out: str) -> list[tuple[bool, str, str]]:
    """(reliable, symbol+offset, module) of each frame line under the event (bcc's own format for the
    frame-pointer walk, `sym [module]+0x0`, is kept whole)."""
    rows = []
    for line in out.splitlines():
        if not line.startswith("    "):
            continue
        m = FRAME.match(line)
        if m:
            rows.append((m.group(1) is None, f"{m.group(2)}+0x{m.group(3) or '0'}", m.group(4) or ""))
        else:
            rows.append((not line.startswith("    ? "), line.strip(), ""))
    return rows


def _bpf(prog: Path, **env: str) -> list[tuple[bool, str, str]]:
    return _frames(_run(["trace", "--backend", "bpf", 'syscall:write /comm == "deepw"/ { print; ustack }',
                         "--", str(prog)], env))


def test_dwarf_stack_is_whole_and_reliable(prog: Path) -> None:
    frames = _bpf(prog)
    names = [f[1].split("+")[0] for f in frames]
    assert names[:len(EXPECTED)] == EXPECTED, frames
    assert all(f[0] for f in frames[:len(EXPECTED)]), frames
    assert [f[2] for f in frames[1:6]] == ["deepw"] * 5


def test_dwarf_stack_equals_ptrace(prog: Path) -> None:
    """`unitrace strace -k` (ptrace, at the syscall stop) prints `module(sym+off)`: the same frames."""
    ours = [(f[2], f[1]) for f in _bpf(prog)]
    out = _run(["strace", "-k", "-e", "trace=write", "--", str(prog)])
    theirs = [(os.path.basename(m.group(1)), m.group(2))
              for m in re.finditer(r"^ > (\S+)\((\S+)\) \[", out, re.M)]
    assert theirs and ours == theirs, (ours, theirs)


def test_dwarf_stack_at_a_uprobe(prog: Path) -> None:
    """At a uprobe on c's entry: the pc is c+0x0, then its callers."""
    frames = _frames(_run(["trace", "--backend", "bpf", f"user:{prog}:c {{ print; ustack }}", "--", str(prog)]))
    assert [f[1] for f in frames[:4]] == ["c+0x0", "b+0xc", "a+0xc", frames[3][1]] and frames[3][1].startswith("main+")
    assert all(f[0] for f in frames[:5]), frames


def test_frame_pointer_fallback_is_not_better(prog: Path) -> None:
    """UNITRACE_BPF_USTACK=fp: the kernel's frame-pointer walk. Here it stops at write() (libc and the
    program have no frame pointers: `__GI_write [libc.so.6]+0x0`, and `? 0x...` when the process exited
    before bcc named it); only its first frame (the pc) is called reliable. Never more reliable frames
    than the DWARF walk."""
    fp = _bpf(prog, UNITRACE_BPF_USTACK="fp")
    dwarf = _bpf(prog)
    assert len(fp) >= 1 and sum(f[0] for f in fp) <= 1 < sum(f[0] for f in dwarf)


def test_short_snapshot_cuts_never_lies(prog: Path) -> None:
    """256 bytes of stack: the walk ends where the copy ends; what is printed as reliable is a prefix of
    the whole stack, and nothing beyond it is claimed."""
    short = _bpf(prog, UNITRACE_BPF_USTACK_BYTES="256")
    whole = _bpf(prog)
    reliable = [f for f in short if f[0]]
    assert reliable == whole[:len(reliable)], (short, whole)
    assert len(reliable) < len(whole)


def test_snapshot_record_round_trip() -> None:
    regs = (0x401000, 0x7ffc0000, 1, 2, 3, 4, 5, 6)
    part = record.USNAP.pack(*regs, 16, 8192) + bytes(range(16))
    raw = record.pack({"ustack": record.USTACK_SNAPSHOT, "str_len": (-1, -1), "buf_len": -1, "ibuf_len": -1,
                       "parts": [part]})
    rec = record.Record(raw)
    assert rec.usnap is not None
    assert rec.usnap.regs == {16: 0x401000, 7: 0x7ffc0000, 6: 1, 3: 2, 12: 3, 13: 4, 14: 5, 15: 6}
    assert rec.usnap.stack == bytes(range(16)) and rec.usnap.req == 8192 and rec.usnap.sp == 0x7ffc0000
    assert record.Record(record.pack({"ustack": 3, "str_len": (-1, -1)})).usnap is None


def test_ustack_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNITRACE_BPF_USTACK", raising=False)
    monkeypatch.delenv("UNITRACE_BPF_USTACK_BYTES", raising=False)
    assert _ustack_bytes({}) == record.USNAP_DEFAULT
    assert _ustack_bytes({"ustack": "fp"}) == 0
    assert _ustack_bytes({"ustack_bytes": 256}) == 256
    monkeypatch.setenv("UNITRACE_BPF_USTACK", "fp")
    assert _ustack_bytes({}) == 0
    with pytest.raises(UnitraceError):
        _ustack_bytes({"ustack": "lbr"})
    monkeypatch.delenv("UNITRACE_BPF_USTACK")
    with pytest.raises(UnitraceError):
        _ustack_bytes({"ustack_bytes": record.USNAP_MAX + 1})
