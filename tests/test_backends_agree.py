"""The same probe on every backend gives the same events: cases where the kernel's view differs from
ptrace's by construction (calls that never return, the started command's wait before its exec)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.run_support import build_demo, unitrace

BACKENDS = ("ptrace", "ftrace", "bpf")


@pytest.mark.parametrize("backend", BACKENDS)
def test_calls_that_never_return(backend: str, build_c, tmp_path: Path) -> None:
    """The demo and the /bin/true it runs end with exit_group(0); its two threads with exit(0). No exit record
    ever comes for these: the kernel backends report them from the entry, as strace does, `= ?`."""
    demo = build_demo(build_c)
    proc = unitrace("trace", "--backend", backend, "syscall:exit_group, syscall:exit", "--", str(demo),
                    tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert len(re.findall(r"\] exit_group\(0\) += \?$", out, re.M)) == 2, out
    assert len(re.findall(r"\] exit\(0\) += \?$", out, re.M)) == 2, out

    counted = unitrace("trace", "--backend", backend, "syscall:exit_group { count() }", "--", str(demo),
                       tmp=tmp_path)
    assert counted.returncode == 0, counted.stderr
    assert re.search(r"^@: 2$", counted.stdout + counted.stderr, re.M), counted.stdout + counted.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_call_before_the_commands_exec(backend: str, tmp_path: Path) -> None:
    """A started command waits for the tracer before its exec; that wait is the tracer's, not the
    command's: no read of ours, and nothing `resumed` without its start."""
    proc = unitrace("trace", "--backend", backend, "syscall:read", "--", "sh", "-c", "cat /etc/hostname",
                    tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "read" in ln]
    assert lines and not [ln for ln in lines if "resumed" in ln or ln.startswith(("unitrace", "python"))], lines
    assert {ln.split("[", 1)[0] for ln in lines if "[" in ln} <= {"sh", "cat"}, lines


PIPE_C = r"""
#include <signal.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc > 1) { kill(getpid(), SIGUSR1); return 0; }   /* a fatal signal, default action */
    int fd[2]; pipe(fd); close(fd[0]); write(fd[1], "x", 1); return 0;   /* SIGPIPE */
}
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigpipe_kills_the_command_as_without_a_tracer(backend: str, build_c, tmp_path: Path) -> None:
    """Python ignores SIGPIPE and an ignored signal survives exec: the started command must get the
    default back, or a write to a closed pipe stops killing it (RELIABILITY #12)."""
    exe = build_c(PIPE_C, "sigpipe")
    proc = unitrace("trace", "--backend", backend, "syscall:write", "--", str(exe), tmp=tmp_path)
    assert proc.returncode == 128 + 13, proc.stdout + proc.stderr
    assert "EPIPE" in proc.stdout + proc.stderr


@pytest.mark.parametrize("args", [(), ("usr1",)], ids=["sigpipe", "sigusr1"])
def test_strace_lines_of_a_fatal_signal_agree(args: tuple[str, ...], build_c, tmp_path: Path) -> None:
    """The kernel kills the whole group when a fatal signal with the default action is sent, and then
    'delivers' a SIGKILL without siginfo; the bpf backend shows the signal sent, as ptrace's stop does."""
    exe = build_c(PIPE_C, "sigpipe")
    lines = {}
    for backend in ("ptrace", "bpf"):
        proc = unitrace("strace", "--backend", backend, "--", str(exe), *args, tmp=tmp_path)
        sig = 10 if args else 13
        assert proc.returncode in (-sig, 128 + sig), proc.stderr  # strace kills itself with the same signal
        lines[backend] = [re.sub(r"si_pid=\d+", "si_pid=N", ln) for ln in proc.stderr.splitlines()
                          if ln.startswith(("---", "+++"))]
    assert lines["bpf"] == lines["ptrace"], lines
    assert "--- SIGKILL" not in "\n".join(lines["bpf"])


def test_strace_mirrors_a_sigkill(tmp_path: Path) -> None:
    """A command killed by SIGKILL: strace's last line and exit status 137, no traceback (SIGKILL has no
    handler to reset before the tracer kills itself the same way)."""
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "unitrace", "strace", "--", "sleep", "30"],
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 60
    child = None
    while child is None and time.monotonic() < deadline:
        out = subprocess.run(["pgrep", "-P", str(proc.pid), "-x", "sleep"], capture_output=True, text=True)
        child = int(out.stdout.split()[0]) if out.stdout.split() else None
        time.sleep(0.05)
    assert child is not None
    time.sleep(0.3)  # in its nanosleep
    subprocess.run(["kill", "-9", str(child)], check=True)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -9 or proc.returncode == 137, (proc.returncode, err)
    assert err.rstrip().endswith("+++ killed by SIGKILL +++"), err
    assert "Traceback" not in err


TICK_C = r"""
#include <sys/syscall.h>
#include <unistd.h>
int main(void) { for (;;) { syscall(SYS_getppid); usleep(5000); } }
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_duration_on_an_attached_process(backend: str, build_c, tmp_path: Path) -> None:
    """`-d SECONDS` with `-p`: the session ends by itself, prints its aggregation, exits 0, and the process
    runs on, untraced."""
    import os
    import subprocess
    import time

    exe = build_c(TICK_C, "tick")
    ticker = subprocess.Popen([str(exe)])
    try:
        proc = unitrace("trace", "--backend", backend, "syscall:getppid { count() }", "-p", str(ticker.pid),
                        "-d", "1", tmp=tmp_path)
        assert proc.returncode == 0, proc.stderr
        m = re.search(r"^@: (\d+)$", proc.stdout, re.M)
        assert m and int(m.group(1)) > 0, proc.stdout + proc.stderr
        time.sleep(0.05)
        assert ticker.poll() is None
        status = Path(f"/proc/{ticker.pid}/status").read_text()
        assert re.search(r"^TracerPid:\s+0$", status, re.M), status
        assert os.path.exists(f"/proc/{ticker.pid}")
    finally:
        ticker.kill()
        ticker.wait()


@pytest.mark.parametrize("backend", BACKENDS)
def test_interval_prints_what_is_counted_so_far(backend: str, build_c, tmp_path: Path) -> None:
    """`-i SECONDS`: the aggregation printed along the way (in-kernel maps and hist triggers read as a
    snapshot), cumulative, and once more at the end, with nothing counted twice."""
    import subprocess

    exe = build_c(TICK_C, "tick")
    ticker = subprocess.Popen([str(exe)])
    try:
        proc = unitrace("trace", "--backend", backend, "syscall:getppid { count() }", "-p", str(ticker.pid),
                        "-i", "0.3", "-d", "1.5", tmp=tmp_path)
    finally:
        ticker.kill()
        ticker.wait()
    assert proc.returncode == 0, proc.stderr
    stamps = re.findall(r"^\d\d:\d\d:\d\d \(\+[\d.]+ s\)$", proc.stdout, re.M)
    counts = [int(n) for n in re.findall(r"^@: (\d+)$", proc.stdout, re.M)]
    assert stamps and len(counts) >= 2, proc.stdout
    assert counts == sorted(counts), proc.stdout  # cumulative; the last (the end's) holds everything
    assert counts[-1] > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_library_calls_read_alike(backend: str, build_c, tmp_path: Path) -> None:
    """A `user:` probe is named by its function and decoded by the prototype table on every backend:
    `malloc(4096)`, `malloc() = 0x...` (not the tracefs event's name, nor six registers in hex)."""
    demo = build_demo(build_c)
    proc = unitrace("trace", "--backend", backend, "user:libc:malloc", "user:libc:malloc%return", "--", str(demo),
                    tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert re.search(r"\] malloc\(4096\)( from 0x[0-9a-f]+)?$", out, re.M), out  # stdio's buffer
    assert re.search(r"\] malloc\(\) = 0x[0-9a-f]+( <[\d.]+>)?$", out, re.M), out
    assert "libc_malloc" not in out


def test_an_ifunc_is_probed_where_this_machine_runs_it(build_c, tmp_path: Path) -> None:
    """strlen is an IFUNC: its symbol is the resolver, run once at start-up. Kernel probes go on the
    implementation this machine selects (read from our own process), so every backend counts the same
    calls; and none of our own (the started command before its exec is a copy of the tracer)."""
    demo = build_demo(build_c)
    counts = {}
    for backend in BACKENDS:
        proc = unitrace("trace", "--backend", backend, "user:libc:strlen { count() by comm }", "--", str(demo),
                        tmp=tmp_path)
        assert proc.returncode == 0, proc.stderr
        counts[backend] = sorted(re.findall(r"^@\[(.+)\]: (\d+)$", proc.stdout, re.M))
    assert counts["ptrace"] and counts["ftrace"] == counts["ptrace"] and counts["bpf"] == counts["ptrace"], counts
    assert all(int(n) > 2 for _, n in counts["ptrace"]), counts


def test_string_arguments_of_library_calls_agree(build_c, tmp_path: Path) -> None:
    """The strings a known library function takes are read at the call on every backend (ptrace from the
    stopped process, ftrace with a `ustring` fetch, bpf with bpf_probe_read_user_str): the same lines."""
    demo = build_demo(build_c)
    calls = {}
    for backend in BACKENDS:
        proc = unitrace("trace", "--backend", backend, "user:libc:strlen", "--", str(demo), tmp=tmp_path)
        assert proc.returncode == 0, proc.stderr
        calls[backend] = re.findall(r"^\S+\[\d+\] (strlen\(.*?\))(?: from 0x[0-9a-f]+)?$", proc.stdout, re.M)
    assert calls["ptrace"] and any('"' in c for c in calls["ptrace"]), calls
    assert calls["ftrace"] == calls["ptrace"] and calls["bpf"] == calls["ptrace"], calls


@pytest.mark.parametrize("backend", ("ptrace",))
def test_ustack_on_a_syscall_probe(backend: str, build_c, tmp_path: Path) -> None:
    """`ustack` on a syscall probe prints the user stack under each of its events (ptrace: at the syscall
    stop, as strace -k), and only under that probe's events. (bpf: tests/test_bpf_stacks.py; the demo's
    unlink is its last act, and a process gone before its maps are read shows `? 0x...` there.)"""
    demo = build_demo(build_c)
    proc = unitrace("trace", "--backend", backend, "syscall:unlink { print; ustack }", "syscall:close", "--",
                    str(demo), tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    at = next(i for i, ln in enumerate(lines) if "] unlink(" in ln)
    frames = []
    for ln in lines[at + 1:]:
        if not ln.startswith("    "):
            break
        frames.append(ln.strip())
    assert any(f.startswith("main+") for f in frames), proc.stdout
    closes = [i for i, ln in enumerate(lines) if "] close(" in ln]
    assert closes and all(i + 1 >= len(lines) or not lines[i + 1].startswith("    ") for i in closes), proc.stdout
