"""`unitrace decode [FILE|-] [--json] [--follow] [--kallsyms PATH]`: kernel warnings, ftrace_bug splats
and Call Traces, decoded and explained.

Exit codes: 0 something was decoded; 1 the input held no kernel report (like grep finding nothing);
2 a usage error or an unreadable file.
"""

from __future__ import annotations

import argparse
import os
import sys

from unitrace.errors import EXIT_ASSERT_FAILED, EXIT_OK, UnitraceError

EXIT_NOTHING_FOUND = EXIT_ASSERT_FAILED


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", default="-", metavar="FILE",
                   help="a kernel log: dmesg or journalctl -k output, a mail or bug report ('-' or nothing: stdin)")
    p.add_argument("--json", action="store_true", help="one JSON document (schema unitrace.kmsg/1)")
    p.add_argument("--follow", "-f", action="store_true",
                   help="watch /dev/kmsg and decode new warnings as they happen (until ^C)")
    p.add_argument("--kallsyms", metavar="PATH",
                   help="kallsyms of the machine and boot the log came from (default: /proc/kallsyms when "
                        "the log's kernel version is this machine's)")
    p.add_argument("--lines", action="store_true", help="with --json: include each report's normalised lines")


def _read_input(name: str) -> str:
    if name == "-":
        return sys.stdin.buffer.read().decode("utf-8", "replace")
    if os.path.isdir(name):
        raise UnitraceError(f"cannot read {name}: it is a directory")
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise UnitraceError(f"cannot read {name}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as f:
        return f.read().decode("utf-8", "replace")


def run(args: argparse.Namespace) -> int:
    from unitrace.kmsg import decode_text, iter_follow
    from unitrace.kmsg.kallsyms import load
    from unitrace.kmsg.render import render_text, report_to_json, to_json

    table = load(args.kallsyms) if args.kallsyms else None
    if args.follow:
        import json

        def opened() -> None:
            print("unitrace: following /dev/kmsg; new kernel reports will be decoded here (^C to stop)",
                  file=sys.stderr, flush=True)

        for report in iter_follow(kallsyms=table, on_open=opened):
            if args.json:
                print(json.dumps(report_to_json(report, with_lines=args.lines)), flush=True)
            else:
                print(render_text(report) + "\n", flush=True)
        return EXIT_OK
    text = _read_input(args.file)
    reports = decode_text(text, kallsyms=table)
    source = "<stdin>" if args.file == "-" else args.file
    if not reports:
        print(f"unitrace: {source}: not a kernel report (no WARNING, BUG, Oops, panic, ftrace_bug or "
              "Call Trace found)", file=sys.stderr)
        if args.json:
            print(to_json([], source=source))
        return EXIT_NOTHING_FOUND
    if args.json:
        print(to_json(reports, source=source, with_lines=args.lines))
    else:
        print("\n\n".join(render_text(r) for r in reports))
    return EXIT_OK
