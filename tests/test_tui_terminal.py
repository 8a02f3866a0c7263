"""End to end in a real terminal: `unitrace tui` inside tmux, keys sent, the pane captured and read.

Nothing here sleeps for a fixed time: every step waits (with a generous deadline, for loaded CI machines)
until the pane shows what the previous key should have drawn, and keys are sent only once the app has
drawn its first frame."""

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


DEADLINE = 60.0  # seconds a step may take before the test gives up; only ever reached on failure

# A stale terminal size in the environment, as GNU readline leaves it for every child of a process that
# loaded it (pytest does): 80x24 when there is no terminal. The app must size itself from the terminal
# (150x40 here), not from these; set explicitly so the test does not depend on who started it.
STALE_SIZE = "COLUMNS=80 LINES=24"


class Tmux:
    def __init__(self, argv: list[str], width: int = 150, height: int = 40) -> None:
        self.name = f"unitrace-tui-{uuid.uuid4().hex[:8]}"
        self.done = ROOT / f".tui-e2e-{self.name}.rc"
        command = " ".join(_quote(a) for a in argv)
        shell = (f"cd {_quote(str(ROOT))} && TZ=UTC {STALE_SIZE} {command}; echo $? > {_quote(str(self.done))}; "
                 "sleep 60")
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height),
                        shell], check=True)

    def capture(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], check=True,
                              capture_output=True, text=True).stdout

    def wait_for(self, *texts: str, timeout: float = DEADLINE) -> str:
        """The pane once it shows every one of `texts` at the same time (a frame may be captured half
        drawn: poll until it is whole)."""
        deadline = time.monotonic() + timeout
        while True:
            pane = self.capture()
            missing = [t for t in texts if t not in pane]
            if not missing:
                return pane
            if time.monotonic() > deadline:
                raise AssertionError(f"{missing!r} did not appear within {timeout:.0f} s; the pane shows:\n{pane}")
            time.sleep(0.2)

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def exit_code(self, timeout: float = DEADLINE) -> int:
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
    # the first frame, drawn 150 columns wide: the status bar's end and the log's last column are there
    term.wait_for("FOLLOW", "TIME", "ARGUMENTS", "DURATION", "recorded")
    term.keys("space")
    term.wait_for("PAUSED")
    term.keys("s")
    term.wait_for("top probes", "latency per probe", "openat ENOENT")
    term.keys("Escape")
    term.wait_for("PAUSED")
    term.keys("t")
    term.wait_for("traced processes", "demo [4242]")
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
    term.wait_for("ended", "ptrace", "execve")
    term.keys("q")
    assert term.exit_code() == 0
