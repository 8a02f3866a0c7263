"""The bundled demo does what every feature's demonstration needs: fixed output, exit 0, one failed open,
library calls, threads, a fork whose child re-executes the demo and then /bin/true, and one descriptor
leaked across those execs. Checked under the real strace, so the demo is judged independently of unitrace."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = """\
demo: read some bytes from /etc/hostname
demo: open missing file: No such file or directory
demo: sorted 5 words, first bpftrace, last strace, 30 letters
demo: thread 1 wrote 9 bytes
demo: thread 2 wrote 9 bytes
demo: child exited with 0
demo: done
"""


@pytest.fixture(scope="module")
def demo(build_c: Callable[..., Path]) -> Path:
    return build_c(ROOT / "demo" / "demo.c", name="demo", flags=("-O1", "-g", "-Wall", "-Werror"))


def test_output_is_fixed(demo: Path, tmp_path: Path) -> None:
    for _ in range(3):
        proc = subprocess.run([str(demo)], capture_output=True, text=True, check=False,
                              env={"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == EXPECTED
    assert list(tmp_path.iterdir()) == []  # the log file is removed again


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_under_strace(demo: Path, tmp_path: Path) -> None:
    log = tmp_path / "strace.txt"
    subprocess.run(["strace", "-f", "-qq", "-o", str(log), "-e", "trace=openat,execve,clone,clone3,nanosleep,"
                    "clock_nanosleep,exit_group", str(demo)], check=True, capture_output=True,
                   env={"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    text = log.read_text()
    assert re.search(r'openat\(AT_FDCWD, "/nonexistent/unitrace-demo", O_RDONLY\|O_CLOEXEC\) = -1 ENOENT', text)
    leak = re.search(r'openat\(AT_FDCWD, "[^"]*/unitrace-demo-\d+\.log", O_WRONLY\|O_CREAT\|O_TRUNC, 0600\) = (\d+)',
                     text)
    assert leak, "the log file is opened without O_CLOEXEC"
    assert re.search(r'execve\("/proc/self/exe", \[[^]]*"--child"\]', text)
    assert re.search(r'execve\("/bin/true", \["true"\]', text)
    assert len(re.findall(r"clone3?\(", text)) >= 3  # two threads and the child
    assert "nanosleep(" in text
    assert text.count("exit_group(0)") == 2
