"""unitrace ltrace on the flavours test_ltrace.py does not build: threads, C++ (-C), DWARF arguments."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

PROGS = Path(__file__).parent / "progs" / "ltrace"


def _ltrace(*argv: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "unitrace", "ltrace", *argv], capture_output=True, text=True,
                          timeout=timeout, check=False)


def _threads_consts() -> tuple[int, int]:
    text = (PROGS / "threads.c").read_text()
    threads = int(re.search(r"#define THREADS (\d+)", text).group(1))  # type: ignore[union-attr]
    calls = int(re.search(r"#define CALLS (\d+)", text).group(1))  # type: ignore[union-attr]
    return threads, calls


def test_threads_calling_one_function_at_once_lose_no_call(build_c) -> None:
    """Four threads run through the same breakpoints (malloc, free) at the same time: a breakpoint being
    stepped over in one thread must not be missed by another. Every call is counted, and in the text
    every thread shows each of its calls, whole or split into <unfinished ...> / <... resumed>."""
    exe = build_c(PROGS / "threads.c", "threads", ("-O1",))
    threads, calls = _threads_consts()
    proc = _ltrace("-f", "-c", str(exe))
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[-1]: int(line.split()[3]) for line in proc.stderr.splitlines()
            if re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+\d+ \w+$", line)}
    assert rows.get("malloc") == threads * calls, proc.stderr
    assert rows.get("free") == threads * calls, proc.stderr
    assert rows.get("pthread_create") == threads, proc.stderr

    proc = _ltrace("-f", "-e", "malloc", str(exe))
    assert proc.returncode == 0, proc.stderr
    per_tid: Counter[int] = Counter()
    sizes: dict[int, set[str]] = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"\[pid (\d+)\] malloc\((\d+)\)?", line)
        if m:
            per_tid[int(m.group(1))] += 1
            sizes.setdefault(int(m.group(1)), set()).add(m.group(2))
    assert sorted(per_tid.values()) == [calls] * threads, proc.stderr[-3000:]
    # each thread its own size (40 + its index): a call is reported in the thread that made it
    assert sorted(s for v in sizes.values() for s in v) == [str(40 + i) for i in range(threads)]
    resumed = sum(1 for line in proc.stderr.splitlines() if "<... malloc resumed>" in line)
    unfinished = sum(1 for line in proc.stderr.splitlines() if "malloc(" in line and "<unfinished ...>" in line)
    assert resumed == unfinished


def _cxx(tmp_path: Path) -> Path:
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed (scripts/setup.sh installs it)")
    exe = tmp_path / "cxx"
    subprocess.run(["g++", "-O1", "-o", str(exe), str(PROGS / "cxx.cc")], check=True)
    return exe


def test_cxx_names_demangled_with_C(tmp_path: Path) -> None:
    exe = _cxx(tmp_path)
    plain = _ltrace("-x", "_ZN6shapes*", str(exe), "2")
    assert plain.returncode == 0, plain.stderr
    assert sum(line.startswith("_ZN6shapes4areaEPKNS_3BoxE(") for line in plain.stderr.splitlines()) == 2
    assert sum(line.startswith("_Znwm(8") for line in plain.stderr.splitlines()) == 2  # operator new

    proc = _ltrace("-C", "-x", "_ZN6shapes*", str(exe), "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    area_box = [ln for ln in lines if ln.startswith("shapes::area(shapes::Box const*)(")]
    area_long = [ln for ln in lines if ln.startswith("shapes::area(long)(")]
    assert [ln.rsplit("= ", 1)[1] for ln in area_box] == ["3", "6"], proc.stderr  # (i+1)*3
    assert [ln.rsplit("= ", 1)[1] for ln in area_long] == ["0", "1"], proc.stderr  # i*i
    assert sum(ln.startswith("operator new(unsigned long)(8") for ln in lines) == 2, proc.stderr
    assert sum(ln.startswith("operator delete(void*, unsigned long)(") for ln in lines) == 2, proc.stderr
    assert not any(ln.startswith("_Z") for ln in lines), proc.stderr

    summary = _ltrace("-C", "-c", str(exe), "2")
    assert re.search(r"\s2 operator new\(unsigned long\)$", summary.stderr, re.M), summary.stderr

    if shutil.which("ltrace"):  # ltrace agrees on the names and the number of calls
        ref = subprocess.run(["ltrace", "-C", "-x", "_ZN6shapes*", str(exe), "2"], capture_output=True,
                             text=True, timeout=60, check=False)
        names = [ln.split(")(")[0] for ln in ref.stderr.splitlines() if ln.startswith(("shapes::", "operator"))]
        ours = [ln.split(")(")[0] for ln in lines if ln.startswith(("shapes::", "operator"))]
        assert sorted(ours) == sorted(names), (proc.stderr, ref.stderr)


def test_arguments_named_and_typed_from_dwarf(build_c) -> None:
    """Functions the prototype table does not know, in a binary built with -g: names and types from DWARF
    (strings read, bool and char printed as such, a struct by value not guessed, a double not read)."""
    exe = build_c(PROGS / "dwarf_args.c", "dwarf_args", ("-O1", "-g"))
    proc = _ltrace("-x", "parse+scale+norm+grade", str(exe))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert any(ln.startswith('parse(text="GET /", len=5, strict=true, m=2)') and ln.endswith("= 83")
               for ln in lines), proc.stderr
    assert any(ln.startswith("grade(c='a', ctx=0x") and ln.endswith("= 'a'") for ln in lines), proc.stderr
    assert any(ln.startswith("norm(p={...})") and ln.endswith("= 10") for ln in lines), proc.stderr
    assert any(ln.startswith("scale(f=?, k=3)") for ln in lines), proc.stderr
    # without debug info the same functions show raw registers, as ltrace does
    raw = _ltrace("-x", "parse", str(build_c(PROGS / "dwarf_args.c", "dwarf_args_nog", ("-O1",))))
    assert any(ln.startswith("parse(0x") for ln in raw.stderr.splitlines()), raw.stderr


@pytest.mark.parametrize("flags", [("-O1", "-static-pie"), ("-O1", "-static")], ids=["static-pie", "static"])
def test_static_executables_with_x(build_c, flags: tuple[str, ...]) -> None:
    """A static executable imports nothing (ltrace shows nothing, and neither do we by default), but -x
    reaches libc's functions inside it, IFUNCs (strlen) included: the executable applies its IRELATIVE
    relocations itself after its entry point, so they are caught on their resolvers' returns."""
    if not Path("/usr/lib/x86_64-linux-gnu/libc.a").exists():
        pytest.skip("no static libc (libc6-dev)")
    exe = build_c(PROGS / "calls.c", "calls_" + flags[1].lstrip("-"), flags)
    proc = _ltrace("-x", "malloc+strlen+getpid", str(exe), "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert sum(ln.startswith('strlen("hello")') and ln.endswith("= 5") for ln in lines) >= 2, proc.stderr
    assert any(ln.startswith("malloc(16)") for ln in lines) and any(ln.startswith("malloc(17)") for ln in lines)
    assert any(ln.startswith("getpid()") for ln in lines), proc.stderr
    assert proc.stdout.count("hello 5") == 2
    default = _ltrace(str(exe), "2")
    assert default.stderr.splitlines() == ["+++ exited (status 0) +++"], default.stderr


def test_a_crash_inside_a_traced_function_is_reported(build_c) -> None:
    """strlen(NULL) faults inside the traced strlen: the call stays unfinished, the signal and the death are
    reported as ltrace reports them, and the tracer's exit status mirrors the crash."""
    exe = build_c(PROGS / "crash.c", "crash", ("-O1",))
    proc = _ltrace(str(exe))
    lines = proc.stderr.splitlines()
    assert lines[-3:] == ["strlen(nil <unfinished ...>", "--- SIGSEGV (Segmentation fault) ---",
                          "+++ killed by SIGSEGV +++"], proc.stderr
    assert proc.returncode in (128 + 11, -11)
