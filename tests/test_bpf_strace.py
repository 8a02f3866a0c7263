"""`unitrace strace --backend bpf` against `--backend ptrace`: the same syscall lines for the strace test
programs and the demo, once pids, addresses and scheduling are normalised.

Accepted differences, each with its reason (ACCEPTED below applies them, and nothing else is forgiven):
- `--- SIGCHLD ... ---` (any signal whose action is to ignore it): without ptrace the kernel discards such a
  signal when it is generated (sig_ignored()), so it is never delivered and signal_deliver never fires;
  ptrace makes the kernel queue it for the tracer.
- getrandom's bytes: random in each run.
- an execve in a freshly forked child whose path or argument strings live in file-backed pages the child has
  not touched yet (fork copies no page tables for those): BPF cannot fault pages in, and after the exec that
  memory is gone, so the address is printed (strace reads them at the stop). Forgiven only for that shape:
  the address where ptrace has the string.
- futex waits (pthread_join, locks): whether a thread waits depends on scheduling, and ptrace's stops change
  the scheduling, so futex lines are left out on both sides.
- interleaving: bpf writes a line when the call returns (never `<unfinished ...>`), so lines of different
  processes/threads are compared as per-thread sequences, not in one global order.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.strace_support import UNITRACE, build, normalise, run_tracer

pytestmark = pytest.mark.requires("bpf", "bcc")

_PREFIX = re.compile(r"^(?:\[pid\s+(\d+)\] |(\d+) +)")
_IGNORED_SIGNALS = re.compile(r"^--- SIG(CHLD|WINCH|URG|CONT) ")
_GETRANDOM = re.compile(r'^(getrandom\()"[^"]*"')
_EXEC_UNREAD = re.compile(r'^execve\(0xADDR, \[(.*)\], ')


def _threads(text: str) -> dict[str, list[str]]:
    """Lines per thread (the unprefixed lines belong to the first one), addresses and numbers masked."""
    out: dict[str, list[str]] = {}
    first: str | None = None
    for line in normalise(text):
        m = _PREFIX.match(line)
        tid = (m.group(1) or m.group(2)) if m else None
        first = first or tid
        body = line[m.end():] if m else line
        body = re.sub(r"0x[0-9a-f]+", "0xADDR", body)
        body = re.sub(r"\d{3,}", "N", body)  # pids, tids (in printed text too), sizes of mappings
        body = _GETRANDOM.sub(r'\1"RANDOM"', body)
        out.setdefault(tid or "main", []).append(body)
    return out


# A write of numbers only (the threads program prints its tids): pids of different lengths move where -s
# cuts the string, and the numbers were normalised after the cut, so the two texts differ by the run only.
_NUMBERS_WRITTEN = re.compile(r'^(write\(\d+, )"[N0-9 \\n]*"(\.\.\.)?(, \d+\) = \d+)$')


def _accept(ptrace: list[str], bpf: list[str]) -> tuple[list[str], list[str]]:
    ptrace = [_NUMBERS_WRITTEN.sub(r'\1"NUMBERS"\3', ln) for ln in ptrace
              if not _IGNORED_SIGNALS.match(ln) and not ln.startswith("futex(")]
    bpf = [_NUMBERS_WRITTEN.sub(r'\1"NUMBERS"\3', ln) for ln in bpf if not ln.startswith("futex(")]
    fixed = []
    for p, b in zip(ptrace, bpf, strict=False):
        if _EXEC_UNREAD.match(b) and p.startswith('execve("'):
            # the unread strings of a fresh fork child: keep ptrace's text where bpf has an address
            p_args = p.split(", [", 1)[1]
            b_args = b.split(", [", 1)[1]
            if re.sub(r'"[^"]*"|0xADDR', "S", p_args) == re.sub(r'"[^"]*"|0xADDR', "S", b_args):
                b = p
        fixed.append(b)
    return ptrace, fixed + bpf[len(fixed):]


CASES = {
    "basic": ([], "basic"),
    "basic-filtered": (["-e", "trace=openat,close,getppid,pipe2,dup2,write,read,exit_group"], "basic"),
    "signals": (["-e", "trace=kill,rt_sigreturn,exit_group"], "signals"),
    "forkwait": (["-f"], "forkwait"),
    "threads": (["-f"], "threads"),
    "exitcode": (["-f"], "exitcode"),
    "demo": (["-f"], None),
}


@pytest.mark.parametrize("case", [*sorted(CASES), "perf:forkwait", "perf:signals"])
def test_same_syscall_lines_as_ptrace(case: str, build_c, tmp_path_factory: pytest.TempPathFactory,
                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`perf:` cases force the perf-buffer transport (what kernels before 5.8 get) on this kernel."""
    if case.startswith("perf:"):
        monkeypatch.setenv("UNITRACE_BPF_TRANSPORT", "perf")
    flags, prog = CASES[case.removeprefix("perf:")]
    if prog is None:
        from tests.run_support import build_demo

        exe = build_demo(build_c)
    else:
        exe = build(prog, tmp_path_factory.getbasetemp())
    texts, codes = {}, {}
    for backend in ("ptrace", "bpf"):
        proc, text = run_tracer([*UNITRACE, "--backend", backend], flags, [str(exe)], tmp_path / backend,
                                timeout=120)
        assert "error" not in proc.stderr, proc.stderr
        texts[backend], codes[backend] = text, proc.returncode
    assert codes["bpf"] == codes["ptrace"]
    ptrace, bpf = _threads(texts["ptrace"]), _threads(texts["bpf"])
    # the same threads, each with the same lines; threads are matched by their sequences, pids differ
    p_seqs = sorted(ptrace.values())
    b_seqs = sorted(bpf.values())
    assert len(p_seqs) == len(b_seqs), (texts["ptrace"], texts["bpf"])
    for p, b in zip(p_seqs, b_seqs, strict=True):
        p2, b2 = _accept(p, b)
        assert b2 == p2
