"""unitrace ltrace / user: probes on the ptrace backend, on C programs built here in every linking flavour."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROGS = Path(__file__).parent / "progs" / "ltrace"
FLAVOURS = {
    "lazy": ("-O1", "-Wl,-z,lazy"),
    "now": ("-O1", "-Wl,-z,now"),
    "noplt": ("-O1", "-fno-plt"),
    "nopie": ("-O1", "-no-pie"),
    "pie": ("-O1", "-fPIE", "-pie"),
    "cet": ("-O1", "-fcf-protection=full"),  # endbr64 at every entry of the program's own functions
    "stripped": ("-O1", "-s"),
}
EXPECTED = ['strtol("2", nil, 10)', "malloc(16)", 'strlen("hello")', 'printf("%s %zu\\n", "hello", 5)',
            "free(0x", "malloc(17)", "getpid()"]


def _ltrace(*argv: str, timeout: int = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "unitrace", "ltrace", *argv], capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_every_flavour_shows_the_calls(build_c, flavour: str) -> None:
    exe = build_c(PROGS / "calls.c", f"calls_{flavour}", FLAVOURS[flavour])
    proc = _ltrace(str(exe), "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    pos = 0
    for want in EXPECTED:  # in this order, each on a line of its own
        found = next((i for i in range(pos, len(lines)) if lines[i].startswith(want)), None)
        assert found is not None, f"{want!r} missing after line {pos} in:\n{proc.stderr}"
        pos = found + 1
    assert any(line.startswith("malloc(16)") and " = 0x" in line for line in lines)
    assert any(line.startswith("free(") and line.endswith("= <void>") for line in lines)
    assert "+++ exited (status 0) +++" in lines
    assert proc.stdout.count("hello 5") == 2


def test_filter_and_user_function(build_c) -> None:
    exe = build_c(PROGS / "calls.c", "calls_noplt", FLAVOURS["noplt"])
    proc = _ltrace("-e", "malloc+free@libc.so*", "-x", "work", "-T", str(exe), "3")
    names = [line.split("(", 1)[0] for line in proc.stderr.splitlines() if "(" in line and line[:3] != "+++"]
    assert names == ["malloc", "free"] * 3 + ["work"], proc.stderr
    assert "work(3" in proc.stderr and "= 7 <" in proc.stderr  # work(3) returns 7, with -T's time


def test_count_summary(build_c) -> None:
    exe = build_c(PROGS / "calls.c", "calls_now", FLAVOURS["now"])
    proc = _ltrace("-c", str(exe), "20")
    rows = {line.split()[-1]: int(line.split()[-2]) for line in proc.stderr.splitlines()
            if line[:1] == " " and line.split()[-1].isidentifier()}
    assert rows["malloc"] == 20 and rows["free"] == 20 and rows["strlen"] == 20 and rows["getpid"] == 1


def _text_digest(pid: int) -> str:
    """Hash of every executable file-backed mapping of a process, read through /proc/PID/mem."""
    h = hashlib.sha256()
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8") as maps:
            for line in maps:
                parts = line.split()
                if len(parts) >= 6 and "x" in parts[1] and parts[5].startswith("/"):
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    h.update(parts[5].encode())
                    h.update(os.pread(fd, hi - lo, lo))
    finally:
        os.close(fd)
    return h.hexdigest()


def test_attach_detach_restores_text(build_c) -> None:
    exe = build_c(PROGS / "spin.c", "spin", ("-O1",))
    child = subprocess.Popen([str(exe)])
    try:
        time.sleep(0.3)
        before = _text_digest(child.pid)
        tracer = subprocess.Popen([sys.executable, "-m", "unitrace", "ltrace", "-f", "-e", "malloc+free",
                                   "-p", str(child.pid)], stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        during = _text_digest(child.pid)
        tracer.send_signal(signal.SIGINT)
        _, err = tracer.communicate(timeout=30)
        assert "malloc(32)" in err and "free(0x" in err, err
        time.sleep(0.3)
        assert child.poll() is None, "the traced process died after detach"
        assert during != before  # the breakpoints were really there
        assert _text_digest(child.pid) == before
        time.sleep(0.3)
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()


def test_compare_with_ltrace_on_fno_plt(build_c) -> None:
    """Where ltrace shows nothing (-fno-plt calls through the GOT), we show the calls."""
    ltrace = shutil.which("ltrace")
    if ltrace is None:
        pytest.skip("ltrace is not installed")
    exe = build_c(PROGS / "calls.c", "calls_noplt", FLAVOURS["noplt"])
    theirs = subprocess.run([ltrace, str(exe), "1"], capture_output=True, text=True, timeout=60, check=False)
    ours = _ltrace(str(exe), "1")
    assert "malloc(" not in theirs.stderr
    assert "malloc(16)" in ours.stderr


def test_user_function_behind_endbr64(build_c) -> None:
    """-fcf-protection: the int3 replaces endbr64's first byte and the tracee resumes on the NOP after it."""
    exe = build_c(PROGS / "calls.c", "calls_cet", FLAVOURS["cet"])
    proc = _ltrace("-e", "malloc", "-x", "work", str(exe), "2")
    assert proc.returncode == 0, proc.stderr
    names = [line.split("(", 1)[0] for line in proc.stderr.splitlines() if "(" in line and line[:3] != "+++"]
    assert names == ["malloc", "malloc", "work"], proc.stderr
    assert "= 5" in proc.stderr.splitlines()[-2]  # work(2) returns 5
