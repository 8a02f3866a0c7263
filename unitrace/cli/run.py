"""`unitrace run FILE.ut [-- CMD]`: run a probe file; its assertions decide the exit code.

Exit codes: 0 every assertion held, 1 an assertion failed, 2 a usage or environment error.
A shipped probe file is found by name: `unitrace run fd-leaks -- make`.
"""

from __future__ import annotations

import argparse
import os
from importlib import resources

from unitrace.cli.common import add_target_options, target_from_args
from unitrace.errors import EXIT_ASSERT_FAILED, UnitraceError


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE.ut|NAME", help="a probe file, or the name of a shipped one")
    add_target_options(p)
    p.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE (atomically)")


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


def run(args: argparse.Namespace) -> int:
    from unitrace.assertions import evaluate_assertions, render_report
    from unitrace.lang import parse_program
    from unitrace.runner import RunOptions
    from unitrace.runner import run as run_program
    from unitrace.sinks.aggregate import AggregateSink
    from unitrace.sinks.output import atomic_output
    from unitrace.sinks.text import TextSink

    source = args.file
    program = parse_program(read_probe_file(source), source)
    target = target_from_args(args)
    backend = args.backend if args.backend != "auto" else program.meta_value("backend", "auto")
    options = RunOptions(backend=backend, backend_options={"follow_forks": target.follow_forks})
    with atomic_output(args.output or "-") as out:
        aggregate = AggregateSink(program, out=out)
        sinks = [aggregate]
        from unitrace.model.probe import PrintAction

        if any(isinstance(a, PrintAction) for p in program.probes for a in p.actions if a.args):
            sinks.insert(0, TextSink(out, program.probes))
        run_program(program, target, sinks, options)
        results = evaluate_assertions(program.assertions, aggregate)
        if results:
            out.write(render_report(results))
    return EXIT_ASSERT_FAILED if any(not r.passed for r in results) else 0
