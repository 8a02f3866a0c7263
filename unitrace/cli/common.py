"""Options and steps shared by the subcommands that trace (trace, run, tui): the target, the backend,
where output goes."""

from __future__ import annotations

import argparse
import os

from unitrace.backends import BACKENDS
from unitrace.backends.base import TraceTarget
from unitrace.errors import TargetError, UnitraceError


def add_target_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to trace (a command after --, running processes, or everything)")
    g.add_argument("-p", "--pid", type=int, action="append", default=[], metavar="PID",
                   help="trace a running process and its threads (repeatable)")
    g.add_argument("-a", "--all", action="store_true", help="trace the whole system (kernel backends)")
    g.add_argument("--no-follow", dest="follow", action="store_false",
                   help="do not follow forks and threads of the traced command")
    p.add_argument("--backend", default="auto", choices=("auto", *BACKENDS),
                   help="backend to compile the probes to (default: the best this machine allows)")


def target_from_args(args: argparse.Namespace) -> TraceTarget:
    command = tuple(args.command_tail)
    chosen = sum(bool(x) for x in (command, args.pid, args.all))
    if chosen == 0:
        raise UnitraceError("nothing to trace", hint="give a command after --, -p PID, or -a")
    if chosen > 1:
        raise UnitraceError("give only one of: a command after --, -p PID, -a")
    for pid in args.pid:
        if pid <= 0 or not os.path.exists(f"/proc/{pid}"):
            raise TargetError(f"no process with PID {pid}")
    if command:
        from unitrace.symbols.elf import find_executable

        find_executable(command[0])  # a missing command is a clear error before anything is attached
    return TraceTarget(command=command, pids=tuple(args.pid), system_wide=args.all,
                       follow_forks=args.follow)
