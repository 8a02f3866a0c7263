"""The passes after parsing, each a plain function from an immutable tree to an immutable tree:

- resolve_names: syscall patterns (names, globs, %classes, /regex/, !negations) become the names they
  match, each unknown name pointed at where it was written with "did you mean"; constants (ENOENT, SIGKILL,
  O_CREAT, AT_FDCWD) become integers.
- check: names used in predicates, actions and assertions exist for the probe's kind and site; a string is
  never used as a number nor a number as a string; optionally (targets=True) the kinds' late target checks
  (does the tracepoint exist?), which need the running system.

`UNITRACE_DUMP_AST=parse|resolve|check|all` (or the `dump_ast` argument) prints the tree after that pass to
stderr.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import os
import re
import sys
from dataclasses import fields, is_dataclass, replace

from unitrace.errors import ProbeError, Span
from unitrace.model.expr import (
    BUILTIN_NAMES,
    MAX_POSITIONAL_ARGS,
    Binary,
    Call,
    Duration,
    Expr,
    Index,
    Int,
    Name,
    PointRef,
    Str,
    Unary,
    walk,
)
from unitrace.model.kinds import KINDS, field_span, syscall_patterns
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

PASSES = ("parse", "resolve", "check")
RETURN_NAMES = frozenset({"ret", "errno", "duration"})
STRING_NAMES = frozenset({"comm", "func", "probe"})
NUMBER_NAMES = frozenset({"pid", "tid", "ppid", "uid", "gid", "cpu", "ts", "ret", "errno", "duration"})
TIME_NAMES = frozenset({"ts", "duration"})
ASSERT_FUNCS = frozenset({"count", "sum", "min", "max", "avg", "duration", "by"})
_PERCENTILE = re.compile(r"p([1-9][0-9]?(\.[0-9]+)?)")


# ---- dumping ------------------------------------------------------------------------------------------


def format_tree(node: object, indent: int = 0) -> str:
    """An indented, one-field-per-line rendering of a model tree (spans shown as line:col)."""
    pad = "  " * indent
    if is_dataclass(node) and not isinstance(node, type):
        parts = [f"{pad}{type(node).__name__}"]
        for f in fields(node):
            value = getattr(node, f.name)
            if f.name == "span":
                parts[0] += f"  @{value.line}:{value.col}"
            elif f.name == "text" and isinstance(node, ProbeProgram):
                continue
            elif isinstance(value, tuple) and value and (is_dataclass(value[0]) or isinstance(value[0], tuple)):
                parts.append(f"{pad}  {f.name}:")
                parts.extend(format_tree(v, indent + 2) for v in value)
            elif is_dataclass(value):
                parts.append(f"{pad}  {f.name}:")
                parts.append(format_tree(value, indent + 2))
            else:
                parts.append(f"{pad}  {f.name}: {value!r}")
        return "\n".join(parts)
    return f"{pad}{node!r}"


def dump(pass_name: str, program: ProbeProgram, dump_ast: str | None = None) -> None:
    wanted = dump_ast if dump_ast is not None else os.environ.get("UNITRACE_DUMP_AST", "")
    if pass_name in wanted.split(",") or wanted == "all":
        print(f"--- after {pass_name} ---\n{format_tree(program)}", file=sys.stderr)


# ---- shared lookups -----------------------------------------------------------------------------------


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


def _table(arch: str):  # type: ignore[no-untyped-def]
    from unitrace.decode.table import get_table

    return get_table(arch)


def _arch(arch: str | None) -> str:
    import platform

    return arch or platform.machine()


# ---- resolve: syscall sets and constants --------------------------------------------------------------


def _pattern_spans(point: ProbePoint, text: str) -> list[Span]:
    """Where each pattern of a syscall point was written (the point's own span when text is unknown)."""
    assert isinstance(point.target, SyscallTarget)
    lines = text.split("\n")
    if 0 < point.span.line <= len(lines):
        raw = lines[point.span.line - 1][point.span.col - 1: point.span.col - 1 + point.span.length]
        found = syscall_patterns(raw)
        if [f.text for f in found][: len(point.target.patterns)] == list(point.target.patterns):
            return [field_span(point.span, f) for f in found[: len(point.target.patterns)]]
    return [point.span] * len(point.target.patterns)


def _match_pattern(pattern: str, span: Span, text: str, arch: str) -> list[str]:
    table = _table(arch)
    all_names = sorted(table.by_name)
    if pattern.startswith("/"):
        body = pattern[1:-1]
        try:
            rx = re.compile(body)
        except re.error as exc:
            col = span.col + 1 + exc.pos if exc.pos is not None else span.col
            raise _err(f"bad regular expression: {exc.msg}", Span(span.line, col, 1, span.source), text) from None
        found = [n for n in all_names if rx.search(n)]
    elif pattern.startswith("%"):
        cls = pattern[1:]
        if cls not in table.classes:
            raise _err(f"unknown syscall class {pattern!r}", span, text,
                       hint=_did_you_mean(cls, sorted(table.classes)) or
                       "classes: " + " ".join(f"%{c}" for c in sorted(table.classes)))
        found = sorted(table.classes[cls])
    elif any(c in pattern for c in "*?["):
        found = [n for n in all_names if fnmatch.fnmatchcase(n, pattern)]
    else:
        if pattern not in table.by_name:
            raise _err(f"unknown syscall {pattern!r}", span, text,
                       hint=_did_you_mean(pattern, all_names) or "unitrace list syscalls")
        found = [pattern]
    if not found:
        raise _err(f"no syscall matches {pattern!r}", span, text, hint="unitrace list syscalls")
    return found


def expand_syscalls(point: ProbePoint, text: str, arch: str) -> ProbePoint:
    """Patterns in order: each adds its names, each `!pattern` removes them; a list that begins with a
    negation starts from every syscall (`syscall:!%memory` is everything but memory calls), as in strace."""
    assert isinstance(point.target, SyscallTarget)
    spans = _pattern_spans(point, text)
    names: dict[str, None] = {}
    for i, (pattern, span) in enumerate(zip(point.target.patterns, spans, strict=True)):
        if pattern.startswith("!"):
            if i == 0:
                names = dict.fromkeys(sorted(_table(arch).by_name))
            inner = Span(span.line, span.col + 1, max(1, span.length - 1), span.source)
            for n in _match_pattern(pattern[1:], inner, text, arch):
                names.pop(n, None)
        else:
            names.update(dict.fromkeys(_match_pattern(pattern, span, text, arch)))
    if not names:
        raise _err("this syscall set is empty", point.span, text)
    return replace(point, target=replace(point.target, names=tuple(names)))


def _known_names(points: tuple[ProbePoint, ...], arch: str) -> set[str] | None:
    """Names an expression may use on these points; None when the kind's fields are only known at run
    time (tracepoint fields come from the kernel's format file; the backend checks them)."""
    names = set(BUILTIN_NAMES) | {f"arg{i}" for i in range(MAX_POSITIONAL_ARGS)}
    for point in points:
        if isinstance(point.target, TracepointTarget):
            return None
        names.update(KINDS[point.kind].names)
        if isinstance(point.target, SyscallTarget):
            table = _table(arch)
            for n in point.target.names:
                info = table.by_name.get(n)
                if info:
                    names.update(p.name for p in info.params)
    return names


def _map_expr(expr: Expr, fn) -> Expr:  # type: ignore[no-untyped-def]
    """Rebuild a tree bottom-up, giving each node to fn (which returns it or its replacement)."""
    match expr:
        case Unary(op=op, operand=o):
            expr = Unary(expr.span, op, _map_expr(o, fn))
        case Binary(op=op, left=left, right=right):
            expr = Binary(expr.span, op, _map_expr(left, fn), _map_expr(right, fn))
        case Call(func=f, args=args):
            expr = Call(expr.span, f, tuple(_map_expr(a, fn) for a in args))
        case Index(base=b, key=k):
            expr = Index(expr.span, _map_expr(b, fn), _map_expr(k, fn))
    return fn(expr)


def _fold_constants(expr: Expr, known: set[str] | None) -> Expr:
    consts = constants()

    def fold(e: Expr) -> Expr:
        # an argument or builtin of the same name wins over a constant
        if isinstance(e, Name) and e.name in consts and (known is None or e.name not in known) \
                and e.name not in BUILTIN_NAMES:
            return Int(e.span, consts[e.name])
        return e

    return _map_expr(expr, fold)


def _map_probe_exprs(probe: Probe, fn) -> Probe:  # type: ignore[no-untyped-def]
    actions = []
    for action in probe.actions:
        if isinstance(action, AggregateAction):
            action = replace(action, value=fn(action.value) if action.value else None,
                             keys=tuple(fn(k) for k in action.keys))
        elif isinstance(action, PrintAction) and action.args:
            action = replace(action, args=tuple(fn(a) for a in action.args))
        actions.append(action)
    return replace(probe, predicate=fn(probe.predicate) if probe.predicate else None, actions=tuple(actions))


def point_refs(expr: Expr) -> list[PointRef]:
    return [n for n in walk(expr) if isinstance(n, PointRef)]


def parse_point_ref(ref: PointRef, program: ProbeProgram, arch: str) -> tuple[ProbePoint, ...]:
    """The points a PointRef of an assertion names, resolved, with errors located in the program text."""
    from unitrace.lang.lexer import Token
    from unitrace.lang.parser import Parser

    parser = Parser(program.text, program.source)
    out: list[ProbePoint] = []
    if program.text:
        parser.points(Token("point", ref.text, ref.text, ref.span), None, out)
    else:  # a program built in Python: locate errors in the reference itself
        Parser(ref.text, program.source).points(Token("point", ref.text, ref.text, Span(1, 1, len(ref.text),
                                                                                         program.source)), None, out)
    text = program.text or ref.text
    return tuple(expand_syscalls(p, text, arch) if isinstance(p.target, SyscallTarget) else p for p in out)


def resolve_names(program: ProbeProgram, arch: str | None = None) -> ProbeProgram:
    """The resolve pass: syscall sets become names, constants become integers."""
    arch = _arch(arch)
    text = program.text
    probes = []
    for probe in program.probes:
        points = tuple(expand_syscalls(p, text, arch) if isinstance(p.target, SyscallTarget) else p
                       for p in probe.points)
        known = _known_names(points, arch)
        probes.append(_map_probe_exprs(replace(probe, points=points), lambda e, k=known: _fold_constants(e, k)))
    asserts = []
    for a in program.assertions:
        known_a: set[str] | None = set()
        for ref in point_refs(a.expr):
            names = _known_names(parse_point_ref(ref, program, arch), arch)
            known_a = None if names is None or known_a is None else known_a | names
        asserts.append(replace(a, expr=_fold_constants(a.expr, known_a)))
    return replace(program, probes=tuple(probes), assertions=tuple(asserts))


# ---- check: names, sites, types -----------------------------------------------------------------------


def _type_of(e: Expr) -> str:
    """'str', 'int', 'time' or '?' (unknown until run time: arguments compare as numbers or strings)."""
    match e:
        case Str():
            return "str"
        case Int():
            return "int"
        case Duration():
            return "time"
        case Name(name=n) if n in STRING_NAMES:
            return "str"
        case Name(name=n) if n in TIME_NAMES:
            return "time"
        case Name(name=n) if n in NUMBER_NAMES:
            return "int"
        case Unary() | Binary():
            return "int"
    return "?"


def _check_types(expr: Expr, text: str) -> None:
    for e in walk(expr):
        if isinstance(e, Binary):
            lt, rt = _type_of(e.left), _type_of(e.right)
            if e.op in ("==", "!="):
                if {lt, rt} >= {"str", "int"} or {lt, rt} >= {"str", "time"}:
                    side = e.left if lt == "str" else e.right
                    raise _err("a string cannot be compared with a number", side.span, text,
                               hint='strings compare with strings: comm == "cat"')
            elif e.op in ("<", "<=", ">", ">="):
                for side, t in ((e.left, lt), (e.right, rt)):
                    if t == "str":
                        raise _err(f"{e.op} compares numbers, not strings", side.span, text,
                                   hint='use == with a glob for strings: comm == "python*"')
            else:
                for side, t in ((e.left, lt), (e.right, rt)):
                    if t == "str":
                        raise _err(f"a string cannot be an operand of {e.op}", side.span, text)
            if e.op in ("<", "<=", ">", ">=", "==", "!=") and "time" in (lt, rt) and "int" in (lt, rt):
                num = e.left if lt == "int" else e.right
                if not isinstance(num, Int) or num.value != 0:
                    raise _err("a duration is compared with a plain number", num.span, text,
                               hint="give the number a unit: 1ms, 250us, 2s")
        elif isinstance(e, Unary) and _type_of(e.operand) == "str":
            raise _err(f"a string cannot be an operand of {e.op}", e.operand.span, text)


def _check_names(expr: Expr, known: set[str] | None, text: str, *, return_ok: bool) -> None:
    consts = constants()
    for e in walk(expr):
        if not isinstance(e, Name):
            continue
        n = e.name
        if n in RETURN_NAMES and not return_ok:
            raise _err(f"{n} is known only where the function returns", e.span, text,
                       hint="probe the return site: add %return to the point")
        if known is not None and n not in known:
            raise _err(f"unknown name {n!r}", e.span, text,
                       hint=_did_you_mean(n, sorted(known | set(consts))) or
                       "names: " + ", ".join(sorted(BUILTIN_NAMES)) + ", arg0..arg9, parameter names")
    for e in walk(expr):
        if isinstance(e, Call):
            raise _err(f"{e.func}() is not a function an expression can call", e.span, text,
                       hint="aggregations are actions: { hist(ret) }, { count() by comm }")
        if isinstance(e, PointRef):
            raise _err("a probe point has no value here", e.span, text)


def _result_ok(points: tuple[ProbePoint, ...]) -> bool:
    return all(KINDS[p.kind].result_at_entry or p.site is Site.RETURN for p in points)


def _check_probe(probe: Probe, text: str, arch: str) -> None:
    known = _known_names(probe.points, arch)
    ok = _result_ok(probe.points)
    exprs: list[Expr] = [probe.predicate] if probe.predicate else []
    for action in probe.actions:
        if isinstance(action, AggregateAction):
            if action.value is not None:
                exprs.append(action.value)
                if _type_of(action.value) == "str":
                    raise _err(f"{action.func}() needs a number, not a string", action.value.span, text)
            exprs.extend(action.keys)
        elif isinstance(action, PrintAction):
            exprs.extend(action.args)
    for e in exprs:
        _check_names(e, known, text, return_ok=ok)
        _check_types(e, text)


def _check_assertion(a: Assertion, program: ProbeProgram, arch: str) -> None:
    text = program.text
    for e in walk(a.expr):
        if isinstance(e, Call):
            if e.func not in ASSERT_FUNCS and not _PERCENTILE.fullmatch(e.func):
                raise _err(f"unknown function {e.func!r} in an assertion", e.span, text,
                           hint="count, sum, min, max, avg, p50..p99, duration")
            if e.func == "by" and len(e.args) == 2 and isinstance(e.args[1], Index):
                # the key is a name of the events the query counts: check it against the query's points
                pts = tuple(p for r in point_refs(e.args[0]) for p in parse_point_ref(r, program, arch))
                _check_names(e.args[1].base, _known_names(pts, arch), text, return_ok=_result_ok(pts))
                continue
            refs = [x for x in e.args if isinstance(x, PointRef)]
            if not refs:
                continue
            points = tuple(p for r in refs for p in parse_point_ref(r, program, arch))
            known = _known_names(points, arch)
            for x in e.args:
                if not isinstance(x, PointRef | Call):
                    _check_names(x, known, text, return_ok=_result_ok(points))
                    _check_types(x, text)
        elif isinstance(e, Binary):
            _check_types(Binary(e.span, e.op, _strip_queries(e.left), _strip_queries(e.right)), text)


def _strip_queries(e: Expr) -> Expr:
    """A query's value is a number (a time for duration queries) whatever it measures."""
    if isinstance(e, Call):
        inner = e.args[0] if e.func == "by" and e.args else e
        if isinstance(inner, Call) and inner.args and isinstance(inner.args[0], Call) \
                and inner.args[0].func == "duration":
            return Name(e.span, "duration")
        return Name(e.span, "arg0")
    return e


def check(program: ProbeProgram, arch: str | None = None, *, targets: bool = False) -> ProbeProgram:
    """The check pass: raises ProbeError on the first problem; returns the program unchanged."""
    arch = _arch(arch)
    for probe in program.probes:
        _check_probe(probe, program.text, arch)
        if targets:
            for point in probe.points:
                hook = KINDS[point.kind].check_target
                if hook is not None:
                    hook(point, program.text)
    for a in program.assertions:
        _check_assertion(a, program, arch)
    return program


def resolve(program: ProbeProgram, arch: str | None = None, *, targets: bool = False,
            dump_ast: str | None = None) -> ProbeProgram:
    """The resolve and check passes: what `unitrace` runs between parsing and planning."""
    out = resolve_names(program, arch)
    dump("resolve", out, dump_ast)
    out = check(out, arch, targets=targets)
    dump("check", out, dump_ast)
    return out


def assertion_points(program: ProbeProgram) -> list[PointRef]:
    """Every probe point an assertion names (the runner traces them even without a probe of their own)."""
    return [n for a in program.assertions for n in point_refs(a.expr)]
