"""The pytest plugin: registered by entry point, measures a command, a Python snippet and this process."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tests.run_support import build_demo
from unitrace.errors import UnitraceError

pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def demo(build_c: Callable[..., Path]) -> Path:
    return build_demo(build_c)


def test_registered_through_the_entry_point(request: pytest.FixtureRequest) -> None:
    assert [e.value for e in entry_points(group="pytest11") if e.name == "unitrace"] == ["unitrace.pytest_plugin"]
    assert request.config.pluginmanager.hasplugin("unitrace")


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_measure_a_command(unitrace_measure, demo: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "strace.log"
    subprocess.run(["strace", "-f", "-qq", "-o", str(log), "-e", "trace=openat", str(demo)], check=True,
                   capture_output=True)
    expected = sum(1 for line in log.read_text().splitlines() if " openat(" in line)
    m = unitrace_measure([str(demo)], "syscall:openat,write", backend="ptrace")
    assert m.status == 0
    assert m.count("openat") == m.count("syscall:openat") == expected
    assert m.files("openat")["/etc/hostname"] == 1
    assert m.bytes("write") >= 45  # the log lines at least
    report = m.report()
    assert f"{expected:6d}  openat" in report and "/etc/hostname (1)" in report


def test_measure_python_in_a_helper_interpreter(unitrace_python, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "out.txt"
    code = (f"import os\nfd = os.open({str(target)!r}, os.O_WRONLY | os.O_CREAT, 0o600)\n"
            "for _ in range(3): os.write(fd, b'abcd')\n")
    m = unitrace_python(code, "syscall:openat,write", backend="ptrace")
    assert m.status == 0
    writes = [e for e in m.hits("write") if e.raw_args and e.raw_args[0] > 2]
    assert len(writes) == 3 and sum(e.ret or 0 for e in writes) == 12
    assert m.files("openat")[str(target)] == 1


@pytest.mark.requires("bpf", "bcc")
def test_measure_a_block_of_this_process(unitrace_block, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "x"
    path.write_text("hello")
    with unitrace_block("syscall:openat") as m:
        for _ in range(2):
            with open(path) as f:
                f.read()
    with open(path) as f:  # after the block: not counted
        f.read()
    assert m.count("openat") == 2, m.report()
    assert m.files("openat") == {str(path): 2}
    assert all(e.tid == e.pid or e.pid == os.getpid() for e in m.events)


def test_a_block_cannot_use_ptrace(unitrace_block) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UnitraceError, match="ptrace cannot trace the process it runs in"), \
            unitrace_block("syscall:openat", backend="ptrace"):
        pass


def test_failure_message_lists_what_was_counted(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_budget="""
        def test_budget(unitrace_measure):
            m = unitrace_measure(["cat", "/etc/hostname"], "syscall:openat", backend="ptrace")
            assert m.count("openat") <= 0, m.report()
    """)
    # a subprocess, as a user runs it; the textual snapshot plugin cannot share a session with pytester
    result = pytester.runpytest_subprocess("-q", "-p", "no:textual-snapshot")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unitrace counted in cat /etc/hostname:*", "*openat   files: *"])
    assert "/etc/ld.so.cache (1)" in result.stdout.str()
