"""Passes after parsing, each a plain function over the immutable tree:

- resolve: syscall patterns (names, globs, %classes, /regex/) become the names they match; constants
  (ENOENT, SIGKILL, O_CREAT, AT_FDCWD) become integers; unknown names get "did you mean".
- check: names used in predicates exist for the probe's kind and site.

`UNITRACE_DUMP_AST=resolve` (or `parse`) prints the tree after that pass to stderr.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import os
import re
import sys
from dataclasses import replace

from unitrace.errors import ProbeError, Span
from unitrace.model.expr import (
    BUILTIN_NAMES,
    MAX_POSITIONAL_ARGS,
    Binary,
    Call,
    Expr,
    Index,
    Int,
    Name,
    PointRef,
    Unary,
)
from unitrace.model.probe import (
    AggregateAction,
    Assertion,
    PrintAction,
    Probe,
    ProbePoint,
    ProbeProgram,
    Site,
    SyscallTarget,
    TracepointTarget,
)

RETURN_NAMES = {"ret", "errno", "duration"}
ASSERT_FUNCS = {"count", "sum", "min", "max", "avg", "duration", "by", "ret", "arg"} | {f"p{n}" for n in range(1, 100)}


def dump(pass_name: str, program: ProbeProgram) -> None:
    if os.environ.get("UNITRACE_DUMP_AST") in (pass_name, "all"):
        print(f"--- after {pass_name} ---", file=sys.stderr)
        for probe in program.probes:
            print(probe, file=sys.stderr)
        for a in program.assertions:
            print(a, file=sys.stderr)


@functools.cache
def constants() -> dict[str, int]:
    """Names usable as numbers in expressions: errnos, signals, and the flag/enum names strace prints."""
    from unitrace.decode import xlat_data
    from unitrace.decode.errnos import ERRNO_BY_NAME
    from unitrace.decode.signals import SIGNAL_BY_NAME
    from unitrace.decode.xlat import Enum, Flags

    out: dict[str, int] = {}
    for value in vars(xlat_data).values():
        if isinstance(value, Flags):
            out.update({name: bit for bit, name in value.pairs if "?" not in name})
        elif isinstance(value, Enum):
            out.update({name: n for n, name in value.names.items() if "?" not in name})
    out["AT_FDCWD"] = xlat_data.AT_FDCWD
    out.update(SIGNAL_BY_NAME)
    out.update(dict(ERRNO_BY_NAME.items()))
    return out


def _err(msg: str, span: Span, text: str, hint: str | None = None) -> ProbeError:
    return ProbeError(msg, span, text, hint=hint)


def _did_you_mean(word: str, options: list[str]) -> str | None:
    close = difflib.get_close_matches(word, options, n=3, cutoff=0.6)
    return f"did you mean {', '.join(close)}?" if close else None


def _expand_syscalls(point: ProbePoint, text: str, arch: str) -> ProbePoint:
    from unitrace.decode.table import get_table

    table = get_table(arch)
    assert isinstance(point.target, SyscallTarget)
    names: list[str] = []
    all_names = sorted(table.by_name)
    for pattern in point.target.patterns:
        if pattern.startswith("/"):
            body = pattern[1:-1] if pattern.endswith("/") and len(pattern) > 1 else pattern[1:]
            try:
                rx = re.compile(body)
            except re.error as exc:
                raise _err(f"bad regular expression {pattern!r}: {exc}", point.span, text) from None
            found = [n for n in all_names if rx.search(n)]
        elif pattern.startswith("%"):
            cls = pattern[1:]
            if cls not in table.classes:
                raise _err(f"unknown syscall class {pattern!r}", point.span, text,
                           hint=_did_you_mean(cls, sorted(table.classes)) or
                           "classes: " + " ".join(f"%{c}" for c in sorted(table.classes)))
            found = sorted(table.classes[cls])
        elif any(c in pattern for c in "*?["):
            found = [n for n in all_names if fnmatch.fnmatchcase(n, pattern)]
        else:
            if pattern not in table.by_name:
                raise _err(f"unknown syscall {pattern!r}", point.span, text,
                           hint=_did_you_mean(pattern, all_names) or "unitrace list syscalls")
            found = [pattern]
        if not found:
            raise _err(f"no syscall matches {pattern!r}", point.span, text, hint="unitrace list syscalls")
        names.extend(n for n in found if n not in names)
    return replace(point, target=replace(point.target, names=tuple(names)))


def _known_names(probe: Probe, arch: str) -> set[str] | None:
    """Names a predicate may use on this probe; None when the kind's fields are only known at run time."""
    names = set(BUILTIN_NAMES) | {f"arg{i}" for i in range(MAX_POSITIONAL_ARGS)}
    for point in probe.points:
        if isinstance(point.target, TracepointTarget):
            return None  # fields come from the format file; the backend checks them
        if isinstance(point.target, SyscallTarget):
            from unitrace.decode.table import get_table

            table = get_table(arch)
            for n in point.target.names:
                info = table.by_name.get(n)
                if info:
                    names.update(p.name for p in info.params)
    return names


def _resolve_expr(expr: Expr, known: set[str] | None, text: str, *, return_ok: bool) -> Expr:
    consts = constants()

    def walk(e: Expr) -> Expr:
        match e:
            case Name(name=n):
                if n in consts and (known is None or n not in known):
                    return Int(e.span, consts[n])
                if n in RETURN_NAMES and not return_ok:
                    raise _err(f"{n} is known only where the function returns", e.span, text,
                               hint="probe the return site: add %return to the point")
                if known is not None and n not in known:
                    raise _err(f"unknown name {n!r}", e.span, text,
                               hint=_did_you_mean(n, sorted(known | set(consts))) or
                               "names: " + ", ".join(sorted(BUILTIN_NAMES)))
                return e
            case Unary(op=op, operand=o):
                return Unary(e.span, op, walk(o))
            case Binary(op=op, left=left, right=right):
                return Binary(e.span, op, walk(left), walk(right))
            case Call(func=f, args=args):
                return Call(e.span, f, tuple(walk(a) for a in args))
            case Index(base=b, key=k):
                return Index(e.span, walk(b), walk(k))
        return e

    return walk(expr)


def _resolve_assert_expr(expr: Expr, text: str) -> Expr:
    consts = constants()

    def walk(e: Expr) -> Expr:
        match e:
            case Call(func=f, args=args):
                if f not in ASSERT_FUNCS:
                    raise _err(f"unknown function {f!r} in an assertion", e.span, text,
                               hint="count, sum, min, max, avg, p50..p99, duration")
                return Call(e.span, f, tuple(walk(a) for a in args))
            case Name(name=n) if n in consts:
                return Int(e.span, consts[n])
            case Unary(op=op, operand=o):
                return Unary(e.span, op, walk(o))
            case Binary(op=op, left=left, right=right):
                return Binary(e.span, op, walk(left), walk(right))
            case Index(base=b, key=k):
                return Index(e.span, walk(b), walk(k))
        return e

    return walk(expr)


def resolve(program: ProbeProgram, arch: str | None = None) -> ProbeProgram:
    import platform

    arch = arch or platform.machine()
    text = program.text
    probes: list[Probe] = []
    for probe in program.probes:
        points = tuple(_expand_syscalls(p, text, arch) if isinstance(p.target, SyscallTarget) else p
                       for p in probe.points)
        probe = replace(probe, points=points)
        known = _known_names(probe, arch)
        # A syscall event carries its arguments and its result (strace's line), so ret/errno/duration are
        # fine on plain syscall probes; other kinds need the return site.
        return_ok = all(p.kind == "syscall" or p.site is Site.RETURN for p in probe.points)
        pred = _resolve_expr(probe.predicate, known, text, return_ok=return_ok) if probe.predicate else None
        actions = []
        for action in probe.actions:
            if isinstance(action, AggregateAction):
                value = _resolve_expr(action.value, known, text, return_ok=return_ok) if action.value else None
                keys = tuple(_resolve_expr(k, known, text, return_ok=return_ok) for k in action.keys)
                action = replace(action, value=value, keys=keys)
            elif isinstance(action, PrintAction) and action.args:
                action = replace(action, args=tuple(_resolve_expr(a, known, text, return_ok=return_ok)
                                                    for a in action.args))
            actions.append(action)
        probes.append(replace(probe, predicate=pred, actions=tuple(actions)))
    asserts = tuple(Assertion(_resolve_assert_expr(a.expr, text), a.text, a.span) for a in program.assertions)
    out = replace(program, probes=tuple(probes), assertions=asserts)
    dump("resolve", out)
    return out


def assertion_points(program: ProbeProgram) -> list[PointRef]:
    """Every probe point an assertion names (the runner traces them even without a probe of their own)."""
    from unitrace.model.expr import walk

    return [n for a in program.assertions for n in walk(a.expr) if isinstance(n, PointRef)]
