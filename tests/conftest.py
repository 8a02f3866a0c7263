"""Fixtures every test module may use, and the session-end hygiene check.

- `tracefs`: the tracefs mount point (mounted here if it is not; skipped with the reason only where the
  kernel has none or we may not mount it).
- `@pytest.mark.requires("bpf", ...)`: skip with unitrace.system's own reason, only where that capability is
  absent (on this project's machines ptrace, tracefs, syscall events, tracepoints, uprobes and BPF exist, so
  such tests run).
- `build_c(source, name=..., flags=...)`: compile a C source (text or path) with gcc into the session's temp
  directory, cached by content and flags; returns the binary's path.
- At session end the run FAILS if a `unitrace*` tracefs instance or dynamic event appeared during it and its
  owner is gone (or is this process), or if a process this run started is left in a ptrace-stop.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from unitrace.system import tracefs as tracefs_helpers
from unitrace.system.leftovers import Leftover, find_leftovers

HYGIENE = pytest.StashKey[set[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires(*caps): skip unless unitrace.system detects every capability "
                            "named (the skip prints its reason)")


def _missing(caps: tuple[str, ...]) -> list[str]:
    from unitrace.system import detect

    found = detect()
    return [f"{cap}: {found.why_not(cap)}" for cap in caps if not found.has(cap)]


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("requires"):
        if not mark.args:
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.requires needs capability names")
        missing = _missing(tuple(mark.args))
        if missing:
            pytest.skip("needs " + "; ".join(missing))


@pytest.fixture(scope="session")
def tracefs() -> Path:
    """Where tracefs is mounted, mounting it when it is not (root only)."""
    from unitrace.errors import UnitraceError

    try:
        return tracefs_helpers.mount_tracefs()
    except UnitraceError as exc:
        pytest.skip(f"tracefs: {exc.message}")


@pytest.fixture(scope="session")
def build_c(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Compile C with gcc once per (source, flags) for the whole session."""
    out_dir = tmp_path_factory.mktemp("build_c")
    cache: dict[str, Path] = {}

    def build(source: str | Path, name: str = "prog", flags: tuple[str, ...] = ("-O1", "-g")) -> Path:
        text = Path(source).read_text() if isinstance(source, Path) else source
        key = hashlib.sha256("\0".join((text, name, *flags)).encode()).hexdigest()[:16]
        if key not in cache:
            src = out_dir / f"{name}-{key}.c"
            binary = out_dir / f"{name}-{key}"
            src.write_text(text)
            proc = subprocess.run(["gcc", *flags, "-o", str(binary), str(src), "-pthread"],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                pytest.fail(f"gcc failed on {name}:\n{proc.stderr}", pytrace=False)
            cache[key] = binary
        return cache[key]

    return build


# ---------------------------------------------------------------- session-end hygiene

def _alive(pid: int | None) -> bool:
    return pid is not None and os.path.exists(f"/proc/{pid}")


def stray_leftovers(before: set[str], now: list[Leftover], me: int) -> list[Leftover]:
    """Leftovers that appeared during the run and that nobody alive owns (or that this process owns).

    A leftover owned by a live other process may belong to another test run on the same machine."""
    return [x for x in now if str(x) not in before and (x.owner_pid == me or not _alive(x.owner_pid))]


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process from /proc/PID/stat, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def stopped_descendants(root: int) -> list[int]:
    """Processes below `root` (children, grandchildren...) in a ptrace-stop (state `t`)."""
    parents: dict[int, int] = {}
    states: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            states[int(entry)], parents[int(entry)] = st
    out = []
    for pid, state in states.items():
        if state != "t":
            continue
        p = parents.get(pid, 0)
        while p > 1 and p != root:
            p = parents.get(p, 0)
        if p == root:
            out.append(pid)
    return out


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[HYGIENE] = {str(x) for x in find_leftovers()}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if HYGIENE not in session.config.stash or hasattr(session.config, "workerinput"):
        return
    problems = [f"{x} remains in tracefs (owner PID {x.owner_pid} is gone)"
                for x in stray_leftovers(session.config.stash[HYGIENE], find_leftovers(), os.getpid())]
    problems += [f"process {pid} started by this run is left in a ptrace-stop" for pid in
                 stopped_descendants(os.getpid())]
    if not problems:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    text = "unitrace hygiene check FAILED:\n" + "\n".join(f"  {p}" for p in problems)
    if reporter is not None:
        reporter.write_sep("=", "unitrace hygiene", red=True)
        reporter.write_line(text)
    else:
        print(text)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
