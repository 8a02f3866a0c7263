"""`unitrace trace` end to end, as a user runs it: every backend, bad input, signals, leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOOP_C = textwrap.dedent("""
    #include <unistd.h>
    #include <stdlib.h>
    int main(int argc, char **argv) {
        long n = argc > 1 ? atol(argv[1]) : 100000;
        for (long i = 0; i < n || n < 0; i++) getppid();
        return 5;
    }
""")


def unitrace(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "unitrace", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, **kw)


def leftovers() -> list[str]:
    root = Path("/sys/kernel/tracing")
    if not (root / "instances").is_dir():
        return []
    inst = [p.name for p in (root / "instances").iterdir() if p.name.startswith("unitrace-")]
    dyn = [ln for ln in (root / "dynamic_events").read_text().splitlines() if "unitrace_" in ln]
    return inst + dyn


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("cli")
    (d / "loop.c").write_text(LOOP_C)
    subprocess.run(["gcc", "-O1", "-o", str(d / "loop"), str(d / "loop.c")], check=True)
    return str(d / "loop")


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="kernel backends need root")


@needs_root
@pytest.mark.parametrize("backend", ["ftrace", "bpf"])
def test_tracepoint_exec_lines(backend: str) -> None:
    r = unitrace("trace", "tracepoint:sched:sched_process_exec", "--backend", backend, "--",
                 "sh", "-c", "exec /bin/true")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if "sched:sched_process_exec" in ln]
    assert lines and "filename=/bin/true" in lines[-1], r.stdout
    assert leftovers() == []


@needs_root
@pytest.mark.parametrize("backend", ["ftrace", "bpf", "ptrace"])
def test_syscall_probe_with_predicate_and_exit_status(backend: str, loop: str) -> None:
    r = unitrace("trace", "syscall:getppid /ret > 0/", "--backend", backend, "--", loop, "7")
    assert r.returncode == 5, r.stderr  # the traced command's status is ours
    calls = [ln for ln in r.stdout.splitlines() if "getppid()" in ln]
    assert len(calls) == 7, r.stdout
    assert leftovers() == []


@needs_root
@pytest.mark.parametrize("backend", ["ftrace", "bpf"])
def test_sigterm_under_load_cleans_up(backend: str, loop: str, tmp_path: Path) -> None:
    """RELIABILITY #18: a signal under heavy load ends the session cleanly, nothing left in the kernel.
    The started command runs on, untraced, as under strace; the test ends it."""
    out_path, err_path = tmp_path / "out", tmp_path / "err"
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "unitrace", "trace", "syscall:getppid { count() }",
                                 "--backend", backend, "--", loop, "-1"], cwd=ROOT, stdout=out, stderr=err)
        try:
            time.sleep(3 if backend == "bpf" else 1.5)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            subprocess.run(["pkill", "-9", "-f", f"{loop} -1"], check=False)
    text = out_path.read_text()
    assert proc.returncode == 128 + signal.SIGTERM, err_path.read_text()
    count = int(text.strip().splitlines()[-1].split(":")[-1])  # the final summary is printed: `@: N`
    assert count > 1000
    assert leftovers() == []


@pytest.mark.parametrize(("args", "needle"), [
    (["trace", "syscall:opneat", "--", "true"], "did you mean"),
    (["trace", "syscall:openat", "--", "/no/such/command"], "no such file"),
    (["trace", "syscall:openat", "-p", "999999999"], "no process with PID 999999999"),
    (["trace", "syscall:openat"], "nothing to trace"),
    (["trace", "syscall:openat /comm == /", "--", "true"], "error"),
])
def test_bad_input_is_one_clear_error(args: list[str], needle: str) -> None:
    r = unitrace(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr
    assert "Traceback" not in r.stderr
    assert leftovers() == []


@needs_root
def test_kernel_refusal_exits_2_and_leaves_nothing() -> None:
    # a function tracer glob: this host's kernel refuses the function tracer (in the guest it works)
    if Path("/sys/kernel/tracing/kprobe_events").exists():
        pytest.skip("this kernel has kprobes; the refusal case is for kernels without")
    r = unitrace("trace", "kernel:vfs_read", "--backend", "ftrace", "--", "true")
    assert r.returncode == 2
    assert "kprobe" in r.stderr.lower()
    assert leftovers() == []
