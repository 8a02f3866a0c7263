"""`unitrace` command line: one module per subcommand, each with `register(subparsers)` and `run(args)`.

Subcommand modules are imported lazily by name so that `unitrace doctor` does not pay for the TUI.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from unitrace import __version__
from unitrace.errors import EXIT_USAGE, UnitraceError

# name -> (module, one-line help). Order is the order of `unitrace --help`.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "trace": ("unitrace.cli.trace", "trace probes on a command, PIDs or the whole system"),
    "strace": ("unitrace.cli.strace", "strace-compatible syscall tracing"),
    "ltrace": ("unitrace.cli.ltrace", "ltrace-compatible library-call tracing (breakpoints at function entries)"),
    "run": ("unitrace.cli.run", "run a probe file; its assertions decide the exit code"),
    "tui": ("unitrace.cli.tui", "the live terminal UI"),
    "compile": ("unitrace.cli.compile", "show what a backend would load, without loading it"),
    "list": ("unitrace.cli.listing", "list syscalls, tracepoints, symbols or shipped probes"),
    "decode": ("unitrace.cli.decode", "decode kernel warnings, ftrace_bug splats and call traces"),
    "doctor": ("unitrace.cli.doctor", "what this machine can trace, and how to fix what it cannot"),
}


def build_parser(wanted: str | None) -> tuple[argparse.ArgumentParser, object | None]:
    """The parser, with only the chosen subcommand's module imported (start-up time is a feature)."""
    parser = argparse.ArgumentParser(
        prog="unitrace",
        description="One Linux tracer: syscalls, kernel and user functions, tracepoints, watchpoints.",
    )
    parser.add_argument("--version", action="version", version=f"unitrace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = None
    for name, (modname, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:
            chosen = importlib.import_module(modname)
            chosen.register(sp)  # type: ignore[attr-defined]
    return parser, chosen


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    wanted = next((a for a in argv if not a.startswith("-")), None)
    parser, mod = build_parser(wanted if wanted in SUBCOMMANDS else None)
    # What follows `--` is the command to trace, never our options or probes.
    head, tail = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    args, extra = parser.parse_known_args(head)
    args.command_tail = tail
    unknown = list(extra)
    if tail:
        extra = [*extra, "--", *tail]
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    assert mod is not None
    if unknown and not getattr(mod, "ACCEPTS_EXTRA", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.extra = extra
    try:
        return int(mod.run(args))  # type: ignore[attr-defined]
    except UnitraceError as err:
        print(err.render(), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `unitrace ... | head`: the reader is gone; say nothing more.
        sys.stderr.close()
        return 141


if __name__ == "__main__":
    sys.exit(main())
