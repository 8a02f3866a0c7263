"""A tracer in its own process, for tests that must SIGKILL the tracer: traces `-- CMD` through the
ptrace backend's Python API and prints one line per completed syscall to stdout.

usage: tracer_main.py [--seccomp NAME,...] [--kill-on-exit] -- CMD...
"""

from __future__ import annotations

import sys

from unitrace.backends.base import TraceTarget
from unitrace.backends.ptrace.backend import PtraceBackend
from unitrace.decode.table import get_table
from unitrace.events import EventKind
from unitrace.model.probe import Probe, ProbePoint, SyscallTarget


def main(argv: list[str]) -> int:
    sep = argv.index("--")
    opts, command = argv[:sep], argv[sep + 1:]
    names = tuple(sorted(get_table().by_name))
    seccomp = False
    if "--seccomp" in opts:
        names = tuple(sorted(opts[opts.index("--seccomp") + 1].split(",")))
        seccomp = True
    options = {"follow_forks": True, "seccomp": seccomp, "kill_on_exit": "--kill-on-exit" in opts}
    probes = (Probe(points=(ProbePoint("syscall", SyscallTarget(names, names)),)),)
    backend = PtraceBackend()

    def emit(batch: list) -> None:
        for ev in batch:
            if ev.kind is EventKind.SYSCALL:
                print(f"{ev.name}({', '.join(ev.args)}) = {ev.ret_text}", flush=True)

    with backend.start(backend.compile(probes, options), TraceTarget(command=tuple(command)), emit,
                       options) as session:
        return session.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
