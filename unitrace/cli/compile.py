"""`unitrace compile PROBES --backend X`: what a backend would load into the kernel or the tracee,
without loading anything. Works for backends this machine cannot run (the output is plain text)."""

from __future__ import annotations

import argparse

from unitrace.backends import BACKENDS, BackendMissing, load_backend
from unitrace.errors import PlanError, UnitraceError


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("probes", nargs="*", metavar="PROBE", help="probe one-liners")
    p.add_argument("-f", "--file", metavar="FILE.ut", help="compile a probe file instead")
    p.add_argument("--backend", default="ptrace", choices=tuple(BACKENDS),
                   help="the backend to compile for (default: ptrace)")


def render(backend_name: str, program) -> str:  # type: ignore[no-untyped-def]
    from unitrace.lang import format_expr

    try:
        backend = load_backend(backend_name)
    except BackendMissing as exc:
        raise UnitraceError(str(exc)) from exc
    refusals = []
    for probe in program.probes:
        for point in probe.points:
            why = backend.unsupported_reason(point)
            if why:
                refusals.append(f"{point.span}: the {backend_name} backend cannot compile {point}: {why}")
    if refusals:
        raise PlanError("\n".join(refusals))
    compiled = backend.compile(program.probes, {})
    lines = [f"# backend: {backend_name}"]
    for i, probe in enumerate(program.probes):
        pred = f" /{format_expr(probe.predicate)}/" if probe.predicate is not None else ""
        lines.append(f"# probe {i}: {probe.name}{pred}")
    for art in compiled.artifacts:
        lines.append(f"\n## {art.title}")
        lines.append(art.text)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from unitrace.lang import parse_probe_args, parse_program, resolve

    if args.file:
        from unitrace.cli.run import read_probe_file

        program = parse_program(read_probe_file(args.file), args.file)
    elif args.probes:
        program = parse_probe_args(args.probes)
    else:
        raise UnitraceError("nothing to compile", hint="give probes, or -f FILE.ut")
    print(render(args.backend, resolve(program)))
    return 0
