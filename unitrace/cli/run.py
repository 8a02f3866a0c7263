"""`unitrace run FILE.ut [-- CMD]`: run a probe file; its assertions decide the exit code.

Exit codes: 0 every assertion held, 1 an assertion failed (or regressed against --baseline), 2 a usage or
environment error. A shipped probe file is found by name: `unitrace run fd-leaks -- make`.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING

from unitrace.cli.common import add_target_options, target_from_args
from unitrace.errors import EXIT_ASSERT_FAILED, UnitraceError
from unitrace.events import Event, SessionStats

if TYPE_CHECKING:
    from unitrace.reports import RunInfo

ACCEPTS_EXTRA = False


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE.ut|NAME", help="a probe file, or the name of a shipped one")
    add_target_options(p)
    p.add_argument("-o", "--output", metavar="FILE", help="write events and the report to FILE (atomically)")
    ci = p.add_argument_group("reports for CI")
    ci.add_argument("--junit", metavar="FILE", help="JUnit XML: one testcase per assertion")
    ci.add_argument("--json", metavar="FILE", help="JSON report: assertions and every aggregate "
                    "(schema unitrace.run/1, docs/ci.md)")
    ci.add_argument("--save-baseline", metavar="FILE", help="save this run's measurements as a baseline")
    ci.add_argument("--baseline", metavar="FILE", help="also fail an assertion whose value got worse than in "
                    "this baseline by more than --tolerance")
    ci.add_argument("--tolerance", default="10%", metavar="PCT",
                    help="allowed change against --baseline (default 10%%)")


def shipped_probe_names() -> list[str]:
    return sorted(f.name[:-3] for f in resources.files("unitrace.probes").iterdir() if f.name.endswith(".ut"))


def read_probe_file(spec: str) -> str:
    """The text of a probe file given by path, or by the name of a shipped one."""
    if os.path.exists(spec):
        try:
            with open(spec, encoding="utf-8", opener=lambda p, f: os.open(p, f | os.O_CLOEXEC)) as f:
                return f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise UnitraceError(f"cannot read probe file {spec}: {exc}") from exc
    name = spec.removesuffix(".ut")
    shipped = resources.files("unitrace.probes") / f"{name}.ut"
    if "/" not in spec and shipped.is_file():
        return shipped.read_text(encoding="utf-8")
    import difflib

    close = difflib.get_close_matches(name, shipped_probe_names(), n=3)
    hint = f"did you mean {', '.join(close)}?" if close else "unitrace list probes"
    raise UnitraceError(f"no probe file {spec!r} (neither a path nor a shipped probe)", hint=hint)


class PrintingOnly:
    """Passes a text sink only the events of probes that print (not the assertions' own probes) and the
    life of the traced processes."""

    def __init__(self, sink: object, printing: frozenset[int]) -> None:
        self.sink = sink
        self.printing = printing

    def feed(self, batch: list[Event]) -> None:
        keep = [ev for ev in batch if ev.probe < 0 or ev.probe in self.printing]
        if keep:
            self.sink.feed(keep)  # type: ignore[attr-defined]

    def close(self, stats: SessionStats) -> None:
        self.sink.close(stats)  # type: ignore[attr-defined]


def _write_file(path: str, text: str) -> None:
    from unitrace.sinks.output import atomic_output

    with atomic_output(path) as out:
        out.write(text)


def run(args: argparse.Namespace) -> int:
    from unitrace.assertions import AssertionCollector, implicit_probes, render_report
    from unitrace.decode.api import FormatOptions
    from unitrace.lang import parse_program
    from unitrace.model.probe import AggregateAction, PrintAction
    from unitrace.reports import (
        RunInfo,
        aggregates_json,
        apply_baseline,
        load_baseline,
        parse_tolerance,
        report_json,
        report_junit,
    )
    from unitrace.runner import RunOptions, make_plan, resolve_program
    from unitrace.runner import run as run_program
    from unitrace.sinks.aggregate import AggregateSink
    from unitrace.sinks.output import atomic_output
    from unitrace.sinks.text import TextSink

    source = args.file
    # resolved first: a misspelt name fails here, before anything is traced
    program = resolve_program(parse_program(read_probe_file(source), source))
    tolerance = parse_tolerance(args.tolerance)
    baseline = load_baseline(args.baseline) if args.baseline else None  # a bad baseline fails before tracing
    if not program.probes and not program.assertions:
        raise UnitraceError(f"{source} has no probes and no assertions")
    traced, point_probe = implicit_probes(program)
    target = target_from_args(args)
    requested = args.backend if args.backend != "auto" else program.meta_value("backend", "auto")
    # Planned here as well as in the runner so that the report can say which backend ran: the runner plans
    # the same program against the same cached capabilities and so decides the same.
    the_plan = make_plan(resolve_program(traced), target, requested)
    backend = ",".join(the_plan.backends)
    options = RunOptions(backend=requested, backend_options={
        "follow_forks": target.follow_forks,
        # fd arguments as `3</path>`: the report can then name the files behind read/write/close
        "format_options": FormatOptions(decode_fds=1),
    })
    collector = AssertionCollector(traced, point_probe)
    with atomic_output(args.output or "-") as out:
        printing = frozenset(i for i, p in enumerate(program.probes)
                             if any(isinstance(a, PrintAction) for a in p.actions))
        sinks: list[object] = []
        if printing:
            sinks.append(PrintingOnly(TextSink(out, program.probes), printing))
        aggregate = AggregateSink(program, out=out)
        if any(isinstance(a, AggregateAction) for p in program.probes for a in p.actions):
            sinks.append(aggregate)
        sinks.append(collector)
        status = run_program(traced, target, sinks, options)  # type: ignore[arg-type]
        results = collector.results()
        if baseline is not None:
            apply_baseline(results, baseline, tolerance)
        info = RunInfo(source, program.meta_value("description"), backend, target.command, status,
                       collector.stats)
        if results:
            out.write("\n" + render_report(results, header=_header(info, program.meta_value("requires"))))
        else:
            out.write(f"\n{_header(info, '')}\n")
    document = report_json(info, results, aggregates_json(aggregate), tolerance if baseline is not None else None)
    for path in filter(None, (args.json, args.save_baseline)):
        _write_file(path, json.dumps(document, indent=2) + "\n")
    if args.junit:
        _write_file(args.junit, report_junit(info, results))
    return EXIT_ASSERT_FAILED if any(not r.passed or r.regressed for r in results) else 0


def _header(info: RunInfo, requires: str) -> str:
    what = " ".join(info.command) if info.command else "the target"
    status = "" if info.exit_status in (0, None) else f", which exited with status {info.exit_status}"
    lost = f"; {info.stats.lost} events LOST, counts are low" if info.stats.lost else ""
    needs = f" (the file requires: {requires})" if requires else ""
    return f"unitrace run {info.source}: traced {what}{status} with the {info.backend} backend{needs}{lost}"


def shipped_paths() -> Sequence[str]:
    return [str(resources.files("unitrace.probes") / f"{n}.ut") for n in shipped_probe_names()]


__all__ = ["PrintingOnly", "read_probe_file", "register", "run", "shipped_paths", "shipped_probe_names"]
