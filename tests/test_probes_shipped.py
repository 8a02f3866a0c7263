"""The shipped probe library: every file has its header, is listed, and does its job on the demo program."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.run_support import build_demo, unitrace
from unitrace.assertions import implicit_probes
from unitrace.cli.run import read_probe_file, shipped_probe_names
from unitrace.lang import parse_program, resolve

EXPECTED = ["ci-budget-example", "exec-tree", "fd-leaks", "file-opens", "io-bytes", "malloc-sizes",
            "slow-syscalls", "syscall-latency"]
HEADER_FIELDS = ("Purpose", "Usage", "Sample", "Overhead", "Backends")


@pytest.fixture(scope="module")
def demo(build_c: Callable[..., Path]) -> Path:
    return build_demo(build_c)


def test_the_library_is_complete() -> None:
    assert shipped_probe_names() == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_header_and_program(name: str) -> None:
    text = read_probe_file(name)
    lines = text.splitlines()
    assert lines[0].startswith(f"# {name}: ")
    header = [ln for ln in lines if ln.startswith("#")]
    for field in HEADER_FIELDS:
        assert any(re.match(rf"# {field}\s", ln) for ln in header), f"{name}: no {field} in the header"
    program = resolve(parse_program(text, name))
    assert program.meta_value("description")
    implicit_probes(program)  # every assertion names a point that exists


def test_list_probes_shows_each_with_its_purpose(tmp_path: Path) -> None:
    proc = unitrace("list", "probes", tmp=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in EXPECTED:
        first = read_probe_file(name).splitlines()[0].lstrip("# ")
        assert re.search(rf"^{re.escape(name)}\s+{re.escape(first)}$", proc.stdout, re.M), proc.stdout


def run(name: str, demo: Path, tmp: Path, *backend: str) -> str:
    proc = unitrace("run", name, *backend, "--", str(demo), tmp=tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_fd_leaks(demo: Path, tmp_path: Path) -> None:
    out = run("fd-leaks", demo, tmp_path, "--backend", "ptrace")
    log = f"{tmp_path}/unitrace-demo-"
    assert re.search(rf'openat\(AT_FDCWD[^,]*, "{re.escape(log)}\d+\.log", O_WRONLY\|O_CREAT\|O_TRUNC', out), out
    assert '"/etc/hostname"' not in out  # opened with O_CLOEXEC: no leak
    assert re.search(r'execve\("/bin/true", \["true"\]', out)
    assert re.search(r"^@inheritable\[demo-\w+\]: 1$", out, re.M), out


def test_file_opens(demo: Path, tmp_path: Path) -> None:
    out = run("file-opens", demo, tmp_path, "--backend", "ptrace")
    assert '"/nonexistent/unitrace-demo", O_RDONLY|O_CLOEXEC) = -1 ENOENT' in out
    assert re.search(r"^@failed_opens\[demo-\w+, 2\]: 1$", out, re.M), out
    files = re.search(r"top files: (.*)", out)
    assert files and "/etc/ld.so.cache (3)" in files.group(1) and "/etc/hostname (1)" in files.group(1)


@pytest.mark.parametrize("backend", ["ptrace", pytest.param("bpf", marks=[pytest.mark.requires("bpf", "bcc")])])
def test_syscall_latency(backend: str, demo: Path, tmp_path: Path) -> None:
    out = run("syscall-latency", demo, tmp_path, "--backend", backend)
    # the demo sleeps 20 ms once: that call lands in the [16M, 32M) nanosecond bucket
    sleep = out.split("@ns[clock_nanosleep]:\n", 1)[1].split("\n\n", 1)[0]
    assert re.search(r"^\[16M, 32M\)\s+1 \|@+\|$", sleep, re.M), sleep
    assert "@ns[openat]:" in out and "@ns[write]:" in out


def test_slow_syscalls(demo: Path, tmp_path: Path) -> None:
    out = run("slow-syscalls", demo, tmp_path, "--backend", "ptrace")
    assert re.search(r"clock_nanosleep\(CLOCK_REALTIME, 0, \{tv_sec=0, tv_nsec=20000000\}, NULL\) = 0 <0\.02", out)
    assert "@slow[clock_nanosleep]: 1" in out
    # only calls over the threshold are printed (which ones is the machine's timing: check the rule, not a list)
    durations = [float(d) for d in re.findall(r"\) = .* <(\d+\.\d+)>$", out, re.M)]
    assert durations and min(durations) >= 0.001, out


def test_exec_tree(demo: Path, tmp_path: Path) -> None:
    out = run("exec-tree", demo, tmp_path, "--backend", "ptrace")
    fork = re.search(r"^demo-\w+\[(\d+)\] clone\(child_stack=NULL, .*\) = (\d+)", out, re.M)
    assert fork, out
    child = fork.group(2)
    assert re.search(rf'^exe\[{child}\] execve\("/proc/self/exe", \["/tmp/[^\]]*, "--child"\]', out,
                     re.M), out
    assert re.search(rf'^true\[{child}\] execve\("/bin/true", \["true"\]', out, re.M), out
    assert "@execs[true]: 1" in out and "@execs[exe]: 1" in out


@pytest.mark.requires("bpf", "bcc", "uprobes")
def test_malloc_sizes(demo: Path, tmp_path: Path) -> None:
    out = run("malloc-sizes", demo, tmp_path)  # auto: user probes as root go to bpf
    assert "with the bpf backend" in out
    hist = out.split("@bytes[demo-", 1)[1].split("\n\n", 1)[0]
    # the demo's own mallocs: the log path (len(TMPDIR) + 32 bytes) and stdio's buffer
    size = len(str(tmp_path)) + 32
    low = 1 << (size.bit_length() - 1)
    assert re.search(rf"^\[{low}, {low * 2}\)\s+[1-9]\d* \|@+", hist, re.M) or low >= 1024, hist
    calls = re.search(r"^@calls\[demo-\w+\]: (\d+)$", out, re.M)
    assert calls and int(calls.group(1)) >= 2, out


def test_io_bytes(demo: Path, tmp_path: Path) -> None:
    out = run("io-bytes", demo, tmp_path, "--backend", "ptrace")
    # the demo writes 27 + 9 + 9 bytes to its log (fd 3)
    assert re.search(r"^@written\[demo-\w+, 3\]: 45$", out, re.M), out
    writes = out.split("sum(ret, syscall:write", 1)[1]
    assert re.search(rf"top files: .*{re.escape(str(tmp_path))}/unitrace-demo-\d+\.log \(45\)", writes), writes


def test_ci_budget_example(demo: Path, tmp_path: Path) -> None:
    out = run("ci-budget-example", demo, tmp_path)
    assert "with the ptrace backend" in out  # the file pins it
    assert "6 assertions: 6 passed, 0 failed" in out
    assert "PASS  assert count(syscall:openat) by errno[ENOENT] == 1" in out
