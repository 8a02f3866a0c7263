"""C programs that make known syscalls and print the exact lines the tracer must produce (strace's own
test method). Each runs under `unitrace strace` and, as a check of the expectations themselves, under the
installed strace."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.strace_support import UNITRACE, build, normalise, run_tracer

TRACERS = {"unitrace": UNITRACE, "strace": ["strace"]}


@pytest.fixture(scope="module")
def bindir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("strace-progs")


def tracer_param() -> list[object]:
    params: list[object] = [pytest.param("unitrace", id="unitrace")]
    if shutil.which("strace"):
        params.append(pytest.param("strace", id="strace"))
    return params


@pytest.mark.parametrize("tracer", tracer_param())
def test_basic_calls_and_exit_code(tracer: str, bindir: Path, tmp_path: Path) -> None:
    exe = build("basic", bindir)
    flags = ["-e", "trace=openat,close,getppid,pipe2,dup2,write,read,exit_group"]
    proc, text = run_tracer(TRACERS[tracer], flags, [str(exe)], tmp_path / "trace")
    expected = proc.stdout.splitlines()
    got = [ln for ln in normalise(text) if not ln.startswith("write(1, ")]
    # the dynamic loader's own openat/read/close come first; the program's expectations start after them
    first = expected[0]
    assert first in got, f"{first!r} not in trace:\n{text}"
    assert got[got.index(first):] == expected
    assert proc.returncode == 3  # exit status mirrors the tracee's


@pytest.mark.parametrize("tracer", tracer_param())
def test_handled_signal_then_death_by_signal(tracer: str, bindir: Path, tmp_path: Path) -> None:
    exe = build("signals", bindir)
    proc, text = run_tracer(TRACERS[tracer], ["-e", "trace=kill,rt_sigreturn,exit_group"], [str(exe)],
                            tmp_path / "trace")
    assert normalise(text) == proc.stdout.splitlines()
    assert proc.returncode == -11  # the tracer dies of the tracee's signal, as strace does


@pytest.mark.parametrize("tracer", tracer_param())
def test_fork_and_wait_with_pid_prefixes(tracer: str, bindir: Path, tmp_path: Path) -> None:
    exe = build("forkwait", bindir)
    proc, text = run_tracer(TRACERS[tracer], ["-f", "-e", "trace=wait4,exit_group"], [str(exe)], tmp_path / "t")
    assert normalise(text) == proc.stdout.splitlines()
    assert proc.returncode == 0


@pytest.mark.parametrize("tracer", tracer_param())
def test_threads_every_call_attributed_to_its_thread(tracer: str, bindir: Path, tmp_path: Path) -> None:
    exe = build("threads", bindir)
    proc, text = run_tracer(TRACERS[tracer], ["-f", "-e", "trace=getppid"], [str(exe)], tmp_path / "t")
    want = {int(t): int(n) for t, n in (ln.split() for ln in proc.stdout.splitlines())}
    seen: dict[int, int] = {}
    for line in normalise(text):
        if "getppid()" in line:
            tid = int(line.split()[0])
            seen[tid] = seen.get(tid, 0) + 1
    assert seen == want


def test_fd_leaks_report_names_exactly_the_inherited_descriptors(bindir: Path, tmp_path: Path) -> None:
    exe = build("fdleak", bindir)
    proc, _ = run_tracer(UNITRACE, ["--fd-leaks", "-e", "trace=none"], [str(exe)], tmp_path / "t")
    assert proc.returncode == 0, proc.stderr
    expected = {int(fd): how for fd, how in (ln.split() for ln in proc.stdout.splitlines())}
    report = proc.stderr[proc.stderr.index("fd leaks:"):]
    # the section of the exec of /bin/true (the first one is the traced command's own start)
    section = report[report.index('execve("/usr/bin/true")'):] if "/usr/bin/true" in report else \
        report[report.index('execve("/bin/true")'):]
    reported: dict[int, str] = {}
    for line in section.splitlines()[1:]:
        m = re.match(r"\s+fd (\d+) -> ", line)
        if not m:
            break
        if "opened before tracing began" not in line:  # what the test runner itself passed down
            reported[int(m.group(1))] = line
    assert set(reported) == set(expected), report
    for fd, how in expected.items():
        assert f"with {how}" in reported[fd] and "[/proc: yes]" in reported[fd], reported[fd]


@pytest.mark.parametrize("tracer", tracer_param())
def test_exit_status_is_mirrored(tracer: str, bindir: Path, tmp_path: Path) -> None:
    exe = build("exitcode", bindir)
    proc, text = run_tracer(TRACERS[tracer], ["-e", "trace=exit_group"], [str(exe)], tmp_path / "t")
    assert proc.returncode == 3
    assert normalise(text)[-2:] == ["exit_group(3) = ?", "+++ exited with 3 +++"]


def summary_rows(text: str) -> dict[str, tuple[str, str]]:
    """syscall -> (calls, errors) from a -c table."""
    rows: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        cells = line.split()
        if len(cells) >= 5 and cells[0].replace(".", "").isdigit() and cells[-1] != "total":
            errors = cells[4] if len(cells) == 6 else ""
            rows[cells[-1]] = (cells[3], errors)
    return rows


def test_summary_counts_equal_strace(bindir: Path, tmp_path: Path) -> None:
    exe = build("basic", bindir)
    tables = {}
    for who, tracer in TRACERS.items():
        proc, text = run_tracer(tracer, ["-c", "-f"], [str(exe)], tmp_path / f"c.{who}")
        assert proc.returncode == 3
        assert text.startswith("% time     seconds  usecs/call     calls    errors syscall\n")
        tables[who] = summary_rows(text)
    assert tables["unitrace"] == tables["strace"]
    assert tables["unitrace"]["close"] == ("4", "1")  # two by the loader, two by the program, one EBADF


def test_ff_writes_one_file_per_process(bindir: Path, tmp_path: Path) -> None:
    exe = build("forkwait", bindir)
    proc, _ = run_tracer(UNITRACE, ["-ff", "-e", "trace=wait4,exit_group"], [str(exe)], tmp_path / "t")
    assert proc.returncode == 0, proc.stderr
    files = sorted(tmp_path.glob("t.*"))
    assert len(files) == 2
    expected = proc.stdout.splitlines()
    parent, child = expected[2].split()[0], expected[0].split()[0]
    child_text = normalise((tmp_path / f"t.{child}").read_text())
    assert child_text == ["exit_group(7) = ?", "+++ exited with 7 +++"]
    parent_text = normalise((tmp_path / f"t.{parent}").read_text())
    assert parent_text[0] == f"wait4({child}, [{{WIFEXITED(s) && WEXITSTATUS(s) == 7}}], 0, NULL) = {child}"


def test_attach_to_a_running_process_and_detach_on_sigint(bindir: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import time

    victim = subprocess.Popen(["sh", "-c", "while :; do sleep 0.05; done"])
    try:
        out = tmp_path / "t"
        tracer = subprocess.Popen([*UNITRACE, "-p", str(victim.pid), "-o", str(out)], stderr=subprocess.PIPE,
                                  text=True)
        # wait until the victim is traced and has looped a few times, then interrupt
        for _ in range(400):
            with open(f"/proc/{victim.pid}/status") as f:
                if f"TracerPid:\t{tracer.pid}" in f.read():
                    break
            time.sleep(0.05)
        time.sleep(0.5)
        tracer.send_signal(signal.SIGINT)
        _, err = tracer.communicate(timeout=30)
        assert f"strace: Process {victim.pid} attached" in err
        assert f"strace: Process {victim.pid} detached" in err
        assert tracer.returncode == 128 + signal.SIGINT
        assert "wait4(" in out.read_text()  # the shell's loop was traced, and the file is complete
        assert victim.poll() is None  # still running, and no longer traced
        with open(f"/proc/{victim.pid}/status") as f:
            assert "TracerPid:\t0" in f.read()
    finally:
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
