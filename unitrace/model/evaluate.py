"""Expressions evaluated in user space, compiled once per probe into closures (no tree walk per event).

Used for whatever a backend could not filter itself, for aggregation keys and values, for print(...)
arguments and for the TUI's filter bar. Names resolve in this order:

- builtins (`pid tid comm cpu ts func probe ret errno duration args`, and `uid gid ppid`, which come from
  `event.fields` when the backend captured them and otherwise from `/proc/PID/status` at evaluation time,
  so a process that has already exited has none and the comparison is false);
- `argN`: the raw argument value `event.raw_args[N]`;
- a named value the backend filled in `event.fields` (tracepoint fields, captured strings);
- a syscall parameter name (`filename`, `count`): its position in the syscall table, then `raw_args`;
- an upper-case constant (`ENOENT`, `SIGKILL`, `O_CREAT`) from the decode tables; the language's resolve
  pass turns those into numbers already, this is for trees built by hand.

A value that is missing on an event (an argument the event lacks, `ret` before the return) is None; every
comparison with None is false except `!=`, and arithmetic with None is None.

`==` and `!=` against a string compare with the string the backend captured (`event.fields[name]`), else
with the decoded argument text with strace's quoting undone; a string containing `*`, `?` or `[` is a glob
(fnmatch syntax, case-sensitive, as ftrace's filter globs).
"""

from __future__ import annotations

import fnmatch
import functools
import operator
import re
from collections.abc import Callable, Sequence

from unitrace.errors import ProbeError, Span, UnitraceError
from unitrace.events import Event, EventKind
from unitrace.model.expr import Binary, Duration, Expr, Int, Name, Str, Unary

Getter = Callable[[Event], object]

_ORDER_OPS: dict[str, Callable[[object, object], object]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_ARITH_OPS: dict[str, Callable[[int, int], int]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "&": operator.and_, "|": operator.or_,
    "^": operator.xor, "<<": operator.lshift, ">>": operator.rshift,
}
_STRACE_ESCAPES = re.compile(r'\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)')
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "f": "\f", "a": "\a", "b": "\b", "e": "\x1b"}
_SYSCALL_KINDS = frozenset({EventKind.SYSCALL, EventKind.SYSCALL_ENTER, EventKind.SYSCALL_RESUMED})

# Builtins that are plain Event attributes: attrgetter runs in C, a lambda would cost a Python frame.
_ATTRIBUTES = {
    "pid": "pid", "tid": "tid", "comm": "comm", "cpu": "cpu", "ts": "ts_ns", "func": "name", "ret": "ret",
    "errno": "errno", "duration": "duration_ns", "args": "args",
}
_PROC_STATUS_KEYS = {"uid": "Uid", "gid": "Gid", "ppid": "PPid"}


def unquote(text: str) -> str:
    """`"/etc/passwd"...` (strace's quoting) -> /etc/passwd; other texts are returned as they are."""
    if len(text) >= 2 and text[0] == '"':
        end = text.rfind('"')
        body = text[1:end] if end > 0 else text[1:]

        def sub(m: re.Match[str]) -> str:
            e = m.group(1)
            if e[0] == "x" and len(e) == 3:
                return chr(int(e[1:], 16))
            if e[0] in "01234567":
                return chr(int(e, 8))
            return _SIMPLE_ESCAPES.get(e, e)

        return _STRACE_ESCAPES.sub(sub, body)
    return text


@functools.cache
def _constants() -> dict[str, int]:
    from unitrace.lang.passes import constants

    return constants()


@functools.cache
def _param_positions() -> dict[str, dict[str, int]]:
    """syscall name -> {parameter name: position}, built once from the syscall table."""
    from unitrace.decode.table import get_table

    return {name: {p.name: i for i, p in enumerate(info.params)} for name, info in get_table().by_name.items()}


def _proc_status(pid: int, what: str) -> int | None:
    from unitrace.system.procfs import status_int

    return status_int(pid, _PROC_STATUS_KEYS[what])


def _position_getter(name: str) -> Getter:
    """A named value: event.fields first (what the backend captured), else the raw syscall argument at the
    parameter's position in the syscall table (looked up once per syscall name)."""
    positions: dict[str, int | None] = {}

    def get(e: Event) -> object:
        fields = e.fields
        if fields and name in fields:
            return fields[name]
        if e.kind not in _SYSCALL_KINDS:
            return None
        try:
            i = positions[e.name]
        except KeyError:
            i = positions[e.name] = _param_positions().get(e.name, {}).get(name)
        if i is None:
            return None
        try:
            return e.raw_args[i]
        except IndexError:
            return None

    return get


def _param_index(name: str) -> Callable[[Event], int | None]:
    def index_of(e: Event) -> int | None:
        if e.kind not in _SYSCALL_KINDS:
            return None
        positions = _param_positions().get(e.name)
        return positions.get(name) if positions else None

    return index_of


def _raw_arg(i: int) -> Getter:
    def get(e: Event) -> object:
        try:
            return e.raw_args[i]
        except IndexError:
            return None

    return get


def _probe_getter(probe_names: Sequence[str] | None) -> Getter:
    def get(e: Event) -> object:
        if probe_names is not None and 0 <= e.probe < len(probe_names):
            return probe_names[e.probe]
        if e.kind in _SYSCALL_KINDS:
            return f"syscall:{e.name}"
        return e.probe

    return get


class _Compiler:
    def __init__(self, text: str, probe_names: Sequence[str] | None) -> None:
        self.text = text
        self.probe_names = probe_names

    def error(self, message: str, span: Span, hint: str | None = None) -> ProbeError:
        return ProbeError(message, span, self.text, hint=hint)

    def name(self, node: Name) -> Getter:
        n = node.name
        if n in _ATTRIBUTES:
            return operator.attrgetter(_ATTRIBUTES[n])
        if n == "probe":
            return _probe_getter(self.probe_names)
        if n in _PROC_STATUS_KEYS:
            return lambda e: e.fields[n] if n in e.fields else _proc_status(e.pid, n)
        if n.startswith("arg") and n[3:].isdigit():
            return _raw_arg(int(n[3:]))
        if n.isupper() and n in _constants():
            value = _constants()[n]
            return lambda e: value
        if not n.isidentifier():
            raise self.error(f"{n!r} is not a name", node.span)
        return _position_getter(n)

    def string_side(self, node: Name) -> Getter:
        """For comparisons with a string: the captured string, else the decoded argument text unquoted."""
        n = node.name
        if n in _ATTRIBUTES or n == "probe":
            return self.name(node)
        if n.startswith("arg") and n[3:].isdigit():
            i = int(n[3:])

            def index_of(e: Event) -> int | None:
                return i
        else:
            index_of = _param_index(n)

        def get(e: Event) -> object:
            fields = e.fields
            if fields and n in fields:
                v = fields[n]
                return v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v
            i = index_of(e)
            if i is not None and i < len(e.args):
                return unquote(e.args[i])
            return None

        return get

    def compile(self, expr: Expr) -> Getter:
        match expr:
            case Int(value=v) | Duration(ns=v) | Str(value=v):
                return lambda e: v
            case Name():
                return self.name(expr)
            case Unary(op=op, operand=o):
                return self.unary(op, self.compile(o))
            case Binary(op="&&", left=left, right=right):
                fl, fr = self.compile(left), self.compile(right)
                return lambda e: bool(fl(e)) and bool(fr(e))
            case Binary(op="||", left=left, right=right):
                fl, fr = self.compile(left), self.compile(right)
                return lambda e: bool(fl(e)) or bool(fr(e))
            case Binary(op=op, left=Name() as n, right=Str(value=v)) if op in ("==", "!="):
                return _string_compare(op, self.string_side(n), v)
            case Binary(op=op, left=Str(value=v), right=Name() as n) if op in ("==", "!="):
                return _string_compare(op, self.string_side(n), v)
            case Binary(op=op, left=left, right=right):
                return self.binary(expr, op, self.compile(left), self.compile(right))
        raise self.error(f"{type(expr).__name__.lower()} expressions cannot be evaluated on an event",
                         expr.span, hint="a predicate compares names, numbers and strings")

    def unary(self, op: str, f: Getter) -> Getter:
        if op == "!":
            return lambda e: not f(e)
        if op == "-":
            return lambda e: -v if type(v := f(e)) is int else None
        return lambda e: ~v if type(v := f(e)) is int else None

    def binary(self, node: Binary, op: str, fl: Getter, fr: Getter) -> Getter:
        if op == "==":
            return lambda e: fl(e) == fr(e)
        if op == "!=":
            return lambda e: fl(e) != fr(e)
        if op in _ORDER_OPS:
            cmp = _ORDER_OPS[op]

            def order(e: Event) -> object:
                a, b = fl(e), fr(e)
                if a is None or b is None or isinstance(a, str) != isinstance(b, str):
                    return False
                return cmp(a, b)

            return order
        if op in ("/", "%"):
            remainder = op == "%"

            def divide(e: Event) -> object:
                a, b = fl(e), fr(e)
                if type(a) is not int or type(b) is not int or b == 0:
                    return None
                # C semantics, as the kernel's filters and BPF compute: truncate toward zero
                q = abs(a) // abs(b)
                q = q if (a < 0) == (b < 0) else -q
                return a - q * b if remainder else q

            return divide
        if op in _ARITH_OPS:
            fn = _ARITH_OPS[op]

            def arith(e: Event) -> object:
                a, b = fl(e), fr(e)
                if type(a) is not int or type(b) is not int:
                    return None
                if op in ("<<", ">>") and not 0 <= b < 64:
                    return None
                return fn(a, b)

            return arith
        raise self.error(f"unknown operator {op!r}", node.span)


def _string_compare(op: str, get: Getter, pattern: str) -> Getter:
    if any(c in pattern for c in "*?["):
        match = re.compile(fnmatch.translate(pattern), re.DOTALL).match
        if op == "==":
            return lambda e: isinstance(v := get(e), str) and match(v) is not None
        return lambda e: not (isinstance(v := get(e), str) and match(v) is not None)
    if op == "==":
        return lambda e: get(e) == pattern
    return lambda e: get(e) != pattern


def compile_expr(expr: Expr, *, text: str = "", probe_names: Sequence[str] | None = None) -> Getter:
    """`fn(event) -> value` for `expr`. `text` is the source the spans point into (for error messages);
    `probe_names` gives the `probe` builtin the name of each probe index."""
    return _Compiler(text, probe_names).compile(expr)


def predicate(expr: Expr, *, text: str = "", probe_names: Sequence[str] | None = None) -> Callable[[Event], bool]:
    """A function telling whether an event satisfies `expr`."""
    try:
        f = compile_expr(expr, text=text, probe_names=probe_names)
    except ProbeError:
        raise
    except Exception as exc:  # a shape the compiler does not know is our bug, reported as such
        raise UnitraceError(f"cannot evaluate the predicate: {exc}") from exc
    return lambda e: bool(f(e))
