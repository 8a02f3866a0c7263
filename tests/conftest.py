"""Fixtures and checks shared by the whole test suite.

- `tracefs`: the tracefs mount point; mounted here when it is not (as root), skipped with the reason only
  where the kernel has none.
- `@pytest.mark.requires("bpf", "uprobes", ...)`: skip, printing unitrace.system's reason, only when
  `unitrace.system.detect()` says the capability is absent on this machine.
- `build_c`: compile a C source (string or file) with gcc into a session temp dir, cached by content.
- At the end of the session, the run FAILS if this run left kernel state behind: a tracefs instance or a
  dynamic event named `unitrace*`, or a process of ours stuck in ptrace-stop (`t`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires(*caps): skip unless unitrace.system.detect() has every "
                            "capability (names as in `unitrace doctor`)")


# ---------------------------------------------------------------- capability markers

def missing_capability(names: Sequence[str]) -> str | None:
    """The first of `names` this machine lacks, as "NAME: reason", or None when it has them all."""
    from unitrace.system import detect

    caps = detect()
    for name in names:
        cap = caps.get(name)
        if cap is None:
            raise pytest.UsageError(f"requires({name!r}): no such capability; known: {', '.join(caps)}")
        if not cap.available:
            return f"{name} is not available here ({cap.status}): {cap.reason}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = [n for mark in item.iter_markers("requires") for n in mark.args]
        if names and (why := missing_capability(names)):
            item.add_marker(pytest.mark.skip(reason=why))


# ---------------------------------------------------------------- tracefs

@pytest.fixture(scope="session")
def tracefs() -> Path:
    """Where tracefs is mounted; mounts it when it is not (root only), skips only where that is impossible."""
    from unitrace.errors import UnitraceError
    from unitrace.system import tracefs as tfs

    found = tfs.find_tracefs()
    if found is not None:
        return found
    try:
        return tfs.mount_tracefs()
    except UnitraceError as exc:
        pytest.skip(f"tracefs: {exc}")


# ---------------------------------------------------------------- C programs

@pytest.fixture(scope="session")
def build_c(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """build_c(source, name="prog", flags=("-O0", "-g")) -> path of the executable.

    `source` is C text or a Path to a .c file. Identical source and flags compile once per session."""
    gcc = shutil.which("gcc")
    out_dir = tmp_path_factory.mktemp("c-programs")
    built: dict[str, Path] = {}

    def build(source: str | Path, name: str = "prog", flags: Sequence[str] = ("-O0", "-g")) -> Path:
        if gcc is None:
            pytest.fail("gcc is not installed (scripts/setup.sh installs it)")
        text = source.read_text() if isinstance(source, Path) else source
        key = hashlib.sha256("\0".join([text, name, *flags]).encode()).hexdigest()[:16]
        if key in built:
            return built[key]
        src = out_dir / f"{name}-{key}.c"
        exe = out_dir / f"{name}-{key}"
        src.write_text(text)
        proc = subprocess.run([gcc, *flags, "-o", str(exe), str(src)], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail(f"gcc failed on {name}:\n{proc.stderr}")
        built[key] = exe
        return exe

    return build


# ---------------------------------------------------------------- leftovers at the end of the session

def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return fields[0], int(fields[1]), int(fields[2])


def _tracer_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        st = _stat(pid)
        if st is not None:
            children.setdefault(st[1], []).append(pid)
    out, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def stopped_tracees_of_ours() -> list[str]:
    """Processes in ptrace-stop that this test run started: our descendants, traced by us or a descendant,
    or in our process group (orphans are reparented to init but keep the group)."""
    me = os.getpid()
    ours = _descendants(me) | {me}
    group = os.getpgrp()
    found = []
    for pid in _all_pids():
        st = _stat(pid)
        if st is None or st[0] != "t":
            continue
        tracer = _tracer_of(pid)
        if pid in ours or tracer in ours or st[2] == group:
            found.append(f"process {pid} is in ptrace-stop (tracer PID {tracer or 'none'})")
    return found


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def kernel_leftovers_of_ours(before: set[str]) -> list[str]:
    """unitrace tracefs instances and dynamic events that appeared during this run and are not owned by a
    running process of someone else's (other test runs share this machine's tracefs)."""
    from unitrace.system.leftovers import find_leftovers

    me = os.getpid()
    ours = _descendants(me) | {me}
    out = []
    for item in find_leftovers():
        if str(item) in before:
            continue
        owner = item.owner_pid
        if owner is not None and owner not in ours and _alive(owner):
            continue  # a session of another process still running: not ours to judge
        gone = "" if owner is None or _alive(owner) else " (gone)"
        out.append(f"{item} (owner PID {owner}{gone})")
    return out


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_behind() -> object:
    from unitrace.system.leftovers import find_leftovers

    before = {str(item) for item in find_leftovers()}
    yield
    problems = kernel_leftovers_of_ours(before) + stopped_tracees_of_ours()
    if problems:
        pytest.fail("this test run left kernel state behind (`unitrace doctor --cleanup` removes stale "
                    "tracefs objects):\n  " + "\n  ".join(problems), pytrace=False)
