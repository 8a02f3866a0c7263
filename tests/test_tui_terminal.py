"""End to end in a real terminal: `unitrace tui` inside tmux, keys sent, the pane captured and read."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    def __init__(self, argv: list[str], width: int = 150, height: int = 40) -> None:
        self.name = f"unitrace-tui-{uuid.uuid4().hex[:8]}"
        self.done = ROOT / f".tui-e2e-{self.name}.rc"
        command = " ".join(_quote(a) for a in argv)
        shell = f"cd {_quote(str(ROOT))} && TZ=UTC {command}; echo $? > {_quote(str(self.done))}; sleep 60"
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height),
                        shell], check=True)

    def capture(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], check=True,
                              capture_output=True, text=True).stdout

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            pane = self.capture()
            if text in pane:
                return pane
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not appear; the pane shows:\n{pane}")
            time.sleep(0.2)

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def exit_code(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while not self.done.exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"unitrace tui did not exit; the pane shows:\n{self.capture()}")
            time.sleep(0.2)
        return int(self.done.read_text())

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], check=False, capture_output=True)
        self.done.unlink(missing_ok=True)


def _quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


@pytest.fixture
def tmux_factory():
    made: list[Tmux] = []

    def make(argv: list[str]) -> Tmux:
        t = Tmux(argv)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


UNITRACE = [sys.executable, "-m", "unitrace"]


def test_demo_in_a_real_terminal(tmux_factory):
    term = tmux_factory([*UNITRACE, "tui", "--demo", "--rate", "3000"])
    pane = term.wait_for("FOLLOW")
    assert "TIME" in pane and "ARGUMENTS" in pane and "recorded" in pane
    term.keys("space")
    pane = term.wait_for("PAUSED")
    term.keys("s")
    pane = term.wait_for("top probes")
    assert "latency per probe" in pane and "openat ENOENT" in pane
    term.keys("Escape")
    term.wait_for("PAUSED")
    term.keys("t")
    pane = term.wait_for("traced processes")
    assert "demo [4242]" in pane
    term.keys("Escape")
    term.wait_for("PAUSED")
    term.keys("q")
    assert term.exit_code() == 0


def test_live_trace_of_a_command_in_a_real_terminal(tmux_factory, tmp_path):
    try:
        from unitrace.lang import parse_probe_args  # noqa: F401
    except ImportError:
        pytest.skip("live tracing needs the probe language (unitrace.lang.parse_probe_args), not built yet")
    demo = ROOT / "demo" / "_build" / "demo"
    argv = [str(demo)] if demo.exists() else ["/bin/sh", "-c", "ls /nonexistent-unitrace; true"]
    term = tmux_factory([*UNITRACE, "tui", "syscall:openat,execve,exit_group", "--backend", "ptrace", "--", *argv])
    pane = term.wait_for("ended", timeout=30)
    assert "ptrace" in pane and "execve" in pane
    term.keys("q")
    assert term.exit_code() == 0
