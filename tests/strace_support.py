"""Helpers for the strace front end's tests: build the C test programs, run a tracer, normalise its
output so that two tracers (or a tracer and a program's own expectations) can be compared line by line."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

PROGS = Path(__file__).parent / "progs" / "strace"
UNITRACE = [sys.executable, "-m", "unitrace", "strace"]

_ALIGN = re.compile(r"\)\s+= ")
_PREFIX = re.compile(r"^(\[pid\s+(\d+)\] |(\d+) +)")
_UNFINISHED = re.compile(r"^(?P<pfx>(?:\[pid\s+\d+\] |\d+ +)?)(?P<head>.*?) <unfinished \.\.\.>$")
_RESUMED = re.compile(r"^(?P<pfx>(?:\[pid\s+\d+\] |\d+ +)?)<\.\.\. (?P<name>\w+) resumed>(?P<rest>.*)$")


def build(name: str, outdir: Path) -> Path:
    """Compile tests/progs/strace/NAME.c into outdir (gcc is part of the supported environment)."""
    gcc = shutil.which("gcc")
    assert gcc is not None, "gcc is needed to build the strace test programs"
    exe = outdir / name
    if not exe.exists():
        subprocess.run([gcc, "-O1", "-Wall", "-pthread", "-o", str(exe), str(PROGS / f"{name}.c")], check=True)
    return exe


def pid_of(line: str) -> str | None:
    m = _PREFIX.match(line)
    return (m.group(2) or m.group(3)) if m else None


def merge_unfinished(lines: list[str]) -> list[str]:
    """Join `X <unfinished ...>` with its `<... X resumed>` (where the resumed line stood): interleaving is
    scheduling, not semantics. The pid prefix is kept as written."""
    open_by_pid: dict[str | None, tuple[int, str]] = {}
    out: list[str | None] = []
    for line in lines:
        m = _UNFINISHED.match(line)
        if m:
            open_by_pid[pid_of(line)] = (len(out), m.group("head"))
            out.append(None)
            continue
        r = _RESUMED.match(line)
        if r and pid_of(line) in open_by_pid:
            _, head = open_by_pid.pop(pid_of(line))
            out.append(f"{r.group('pfx')}{head}{r.group('rest')}")
            continue
        out.append(line)
    return [x for x in out if x is not None]


def normalise(text: str) -> list[str]:
    """Trace text -> lines with the return-value alignment collapsed and unfinished calls joined."""
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("strace: ")]
    lines = merge_unfinished(lines)
    return [_ALIGN.sub(") = ", ln) for ln in lines]


def run_tracer(tracer: list[str], flags: list[str], argv: list[str], out_file: Path,
               timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run `tracer flags -o out_file argv`; returns the process and the trace text."""
    proc = subprocess.run([*tracer, *flags, "-o", str(out_file), *argv], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "LC_ALL": "C"})
    text = out_file.read_text() if out_file.exists() else ""
    return proc, text
