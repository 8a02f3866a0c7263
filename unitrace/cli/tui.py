"""`unitrace tui [PROBES...] [-- CMD | -p PID | -a]`: the live terminal UI; `--demo` replays a recorded
session of the bundled demo program instead of tracing."""

from __future__ import annotations

import argparse

from unitrace.cli.common import add_target_options, target_from_args

ACCEPTS_EXTRA = True


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("probes", nargs="*", metavar="PROBE",
                   help="probes as for `unitrace trace` (default: every syscall)")
    add_target_options(p)
    p.add_argument("--demo", action="store_true",
                   help="replay a recorded session of the demo program instead of tracing")
    p.add_argument("--rate", type=float, default=2000.0, metavar="N",
                   help="with --demo: events per second to replay (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from unitrace.errors import UnitraceError
    from unitrace.tui.app import UnitraceApp
    from unitrace.tui.kernel import DevKmsgFeed, RecordedKernelFeed

    unknown = args.extra[: args.extra.index("--")] if "--" in args.extra else args.extra
    if unknown:
        raise UnitraceError(f"unrecognized arguments: {' '.join(unknown)}")
    if args.demo:
        from unitrace.tui.recorded_source import RecordedSource

        if args.command_tail or args.pid or args.all:
            raise UnitraceError("--demo replays a recording: give no command, -p or -a with it")
        if args.rate <= 0:
            raise UnitraceError("--rate must be a positive number of events per second")
        probes = None
        if args.probes:
            from unitrace.tui.probe_text import parse_probes

            probes = parse_probes(" ".join(args.probes))
        source = RecordedSource.endless(args.rate, probes=probes)
        app = UnitraceApp(source, kernel=RecordedKernelFeed())
    else:
        from unitrace.lang import parse_probe_args
        from unitrace.tui.live_source import LiveSource

        target = target_from_args(args)
        program = parse_probe_args(args.probes or ["syscall:*"])
        source = LiveSource(program, target, backend=args.backend)
        app = UnitraceApp(source, kernel=DevKmsgFeed())
    app.run()
    status = source.status()
    if status.error:
        raise UnitraceError(status.error)
    return status.exit_status or 0
