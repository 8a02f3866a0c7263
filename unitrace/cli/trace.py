"""`unitrace trace PROBES... [-- CMD | -p PID | -a]`: one-shot tracing with the common probe model."""

from __future__ import annotations

import argparse
import sys

from unitrace.cli.common import add_target_options, target_from_args
from unitrace.errors import UnitraceError

ACCEPTS_EXTRA = False

EXAMPLES = """examples:
  unitrace trace 'syscall:openat' -- cat /etc/hostname
  unitrace trace 'syscall:%file /errno == ENOENT/' -- make
  unitrace trace 'syscall:read%return { hist(ret) }' -p 1234
  unitrace trace 'tracepoint:sched:sched_process_exec' -a
  unitrace trace 'user:libc:malloc { hist(arg0) }' -- ./app
  unitrace trace 'syscall:* { count() by comm }' -a -d 5
"""


def register(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EXAMPLES
    p.add_argument("probes", nargs="+", metavar="PROBE", help="probe one-liners (see the README)")
    add_target_options(p)
    p.add_argument("-o", "--output", metavar="FILE", help="write events to FILE (atomically), not stdout")
    p.add_argument("--json", action="store_true", help="JSON lines instead of text (schema: README)")
    p.add_argument("-t", dest="timestamps", action="store_const", const="t", default="",
                   help="wall-clock time on every line")
    p.add_argument("-r", dest="timestamps", action="store_const", const="r", help="time since the first event")
    p.add_argument("-s", "--string-limit", type=int, default=32, metavar="N",
                   help="print at most N bytes of each string (default 32)")
    p.add_argument("-q", "--quiet", action="store_true", help="no lines for signals, exits and notices")
    p.add_argument("-d", "--duration", type=_seconds, metavar="SECONDS",
                   help="trace for SECONDS from when tracing is on, then stop as on Ctrl-C (attached processes "
                        "keep running, exit status 0); aggregations print then")
    p.add_argument("-i", "--interval", type=_seconds, metavar="SECONDS",
                   help="print the aggregations every SECONDS as well as at the end (cumulative)")
    p.add_argument("--chrome", metavar="FILE", help="also write a Chrome trace-event JSON file (Perfetto UI, "
                   "chrome://tracing)")


def run(args: argparse.Namespace) -> int:
    from unitrace.decode.api import FormatOptions
    from unitrace.lang import parse_probe_args
    from unitrace.runner import RunOptions
    from unitrace.runner import run as run_program

    program = parse_probe_args(args.probes)
    target = target_from_args(args)
    options = RunOptions(backend=args.backend, backend_options={
        "follow_forks": target.follow_forks,
        "format_options": FormatOptions(string_limit=args.string_limit),
    })
    from contextlib import ExitStack

    from unitrace.sinks.output import atomic_output

    with ExitStack() as files:
        out = files.enter_context(atomic_output(args.output or "-"))
        sinks = _sinks(args, program, out)
        if args.chrome:
            from unitrace.sinks.chrome import ChromeTraceSink

            aggregates = next((s for s in sinks if hasattr(s, "merge_kernel_rows")), None)
            sinks.append(ChromeTraceSink(files.enter_context(atomic_output(args.chrome)), aggregates))
        stop = None
        if args.duration is not None:
            import threading

            stop = threading.Event()
        status = run_program(program, target, sinks, options, stop_event=stop, duration=args.duration,
                             interval=args.interval)
        if stop is not None and stop.is_set() and not target.command:
            status = 0  # attached processes or the whole system, traced for as long as asked: a success
    return status


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"the duration must be more than 0 seconds, not {text}")
    return value


def _sinks(args: argparse.Namespace, program, out) -> list:  # type: ignore[no-untyped-def]
    from unitrace.model.probe import AggregateAction, PrintAction

    sinks: list = []
    wants_print = any(isinstance(a, PrintAction) for p in program.probes for a in p.actions)
    if wants_print:
        if args.json:
            from unitrace.sinks.jsonl import JsonLinesSink

            sinks.append(JsonLinesSink(out))
        else:
            from unitrace.sinks.text import TextSink

            sinks.append(TextSink(out, program.probes, timestamps=args.timestamps,
                                  show_lifecycle=not args.quiet))
    if any(isinstance(a, AggregateAction) for p in program.probes for a in p.actions):
        from unitrace.sinks.aggregate import AggregateSink

        sinks.append(AggregateSink(program, out=out if not args.json else sys.stdout))
    if not sinks:
        raise UnitraceError("these probes have no action that produces output")
    return sinks
