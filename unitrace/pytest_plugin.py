"""pytest plugin (entry point `pytest11`): measure what code under test does, and assert on it.

    def test_startup_opens_few_files(unitrace_measure):
        result = unitrace_measure(["./app", "--version"], "syscall:openat { count() }")
        assert result.count("syscall:openat") <= 40, result.report()

ptrace cannot trace the process it runs in, so in-process code is measured through a helper process (run
the code with `sys.executable -c ...`), or with a kernel backend filtered to the thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest


@pytest.fixture
def unitrace_measure() -> Callable[..., object]:
    """Run a command under unitrace with the given probes; returns the measurement."""
    from unitrace.api import measure

    def run(command: Sequence[str], probes: str, backend: str = "auto") -> object:
        return measure(list(command), probes, backend=backend)

    return run
