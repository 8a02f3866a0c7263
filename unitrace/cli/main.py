"""`unitrace` command line: one module per subcommand, each with `register(subparsers)` and `run(args)`.

Subcommand modules are imported lazily by name so that `unitrace doctor` does not pay for the TUI.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from unitrace.errors import EXIT_USAGE, UnitraceError

# name -> (module, one-line help). Order is the order of `unitrace --help`.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "trace": ("unitrace.cli.trace", "trace probes on a command, PIDs or the whole system"),
    "strace": ("unitrace.cli.strace", "strace-compatible syscall tracing"),
    "ltrace": ("unitrace.cli.ltrace", "ltrace-compatible library-call tracing"),
    "run": ("unitrace.cli.run", "run a probe file; its assertions decide the exit code"),
    "tui": ("unitrace.cli.tui", "the live terminal UI"),
    "compile": ("unitrace.cli.compile", "show what a backend would load, without loading it"),
    "list": ("unitrace.cli.listing", "list syscalls, tracepoints, symbols or shipped probes"),
    "decode": ("unitrace.cli.decode", "decode kernel warnings, ftrace_bug splats and call traces"),
    "doctor": ("unitrace.cli.doctor", "what this machine can trace, and how to fix what it cannot"),
}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(
        prog="unitrace",
        description="One Linux tracer: syscalls, kernel and user functions, tracepoints, watchpoints.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules: dict[str, object] = {}
    for name, (modname, help_text) in SUBCOMMANDS.items():
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name != modname:
                raise
            continue  # not written yet
        sp = sub.add_parser(name, help=help_text, description=help_text)
        mod.register(sp)  # type: ignore[attr-defined]
        modules[name] = mod
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser, modules = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    mod = modules[args.command]
    if extra and not getattr(mod, "ACCEPTS_EXTRA", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
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
