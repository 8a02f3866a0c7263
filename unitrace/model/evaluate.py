"""Expressions evaluated in user space, compiled once per probe into closures (no tree walk per event).

Used for whatever a backend could not filter itself, for aggregation keys and values, for print(...)
arguments and for the TUI's filter bar. Names are resolved as the language reference describes: builtins,
argN, the syscall's parameter names, tracepoint fields; strings compare against the value the backend
captured (event.fields) or, failing that, the decoded text with strace's quoting undone.
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable

from unitrace.errors import ProbeError, UnitraceError
from unitrace.events import Event
from unitrace.model.expr import Binary, Duration, Expr, Int, Name, Str, Unary

Getter = Callable[[Event], object]

_BINOPS: dict[str, Callable[[object, object], object]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "&": operator.and_, "|": operator.or_,
    "^": operator.xor, "<<": operator.lshift, ">>": operator.rshift,
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_STRACE_ESCAPES = re.compile(r'\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)')


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
            return {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "f": "\f"}.get(e, e)

        return _STRACE_ESCAPES.sub(sub, body)
    return text


def _arg_text(ev: Event, index: int) -> object:
    if index < len(ev.args):
        return ev.args[index]
    return None


def _getter(name: str) -> Getter:
    simple = {
        "pid": lambda e: e.pid, "tid": lambda e: e.tid, "comm": lambda e: e.comm, "cpu": lambda e: e.cpu,
        "ts": lambda e: e.ts_ns, "func": lambda e: e.name, "ret": lambda e: e.ret,
        "errno": lambda e: e.errno, "duration": lambda e: e.duration_ns,
        "probe": lambda e: e.probe,
    }
    if name in simple:
        return simple[name]
    if name in ("uid", "gid", "ppid"):
        return lambda e: e.fields.get(name, _proc_status(e.pid, name))
    if name.startswith("arg") and name[3:].isdigit():
        i = int(name[3:])
        return lambda e: e.raw_args[i] if i < len(e.raw_args) else None

    def by_param(e: Event) -> object:
        if name in e.fields:
            return e.fields[name]
        from unitrace.decode.table import get_table

        info = get_table().by_name.get(e.name)
        if info is None:
            return None
        for i, p in enumerate(info.params):
            if p.name == name:
                return e.raw_args[i] if i < len(e.raw_args) else None
        return None

    by_param.param_name = name  # type: ignore[attr-defined]
    return by_param


def _string_getter(name: str) -> Getter:
    """For comparisons with a string: the captured string, else the decoded argument text unquoted."""
    base = _getter(name)
    if name == "comm" or name == "func":
        return base

    def get(e: Event) -> object:
        if name in e.fields:
            return e.fields[name]
        from unitrace.decode.table import get_table

        info = get_table().by_name.get(e.name)
        if info is not None:
            for i, p in enumerate(info.params):
                if p.name == name or name == f"arg{i}":
                    text = _arg_text(e, i)
                    return unquote(text) if isinstance(text, str) else None
        return base(e)

    return get


def _proc_status(pid: int, what: str) -> int | None:
    key = {"uid": b"Uid:", "gid": b"Gid:", "ppid": b"PPid:"}[what]
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _as_bool(v: object) -> bool:
    return bool(v) if v is not None else False


def compile_expr(expr: Expr) -> Getter:
    match expr:
        case Int(value=v):
            return lambda e: v
        case Duration(ns=ns):
            return lambda e: ns
        case Str(value=v):
            return lambda e: v
        case Name(name=n):
            return _getter(n)
        case Unary(op="!", operand=o):
            f = compile_expr(o)
            return lambda e: not _as_bool(f(e))
        case Unary(op="-", operand=o):
            f = compile_expr(o)
            return lambda e: -v if isinstance(v := f(e), int) else None
        case Unary(op="~", operand=o):
            f = compile_expr(o)
            return lambda e: ~v if isinstance(v := f(e), int) else None
        case Binary(op="&&", left=left, right=right):
            fl, fr = compile_expr(left), compile_expr(right)
            return lambda e: _as_bool(fl(e)) and _as_bool(fr(e))
        case Binary(op="||", left=left, right=right):
            fl, fr = compile_expr(left), compile_expr(right)
            return lambda e: _as_bool(fl(e)) or _as_bool(fr(e))
        case Binary(op=op, left=Name(name=n), right=Str(value=v)) if op in ("==", "!="):
            return _string_compare(op, _string_getter(n), v)
        case Binary(op=op, left=Str(value=v), right=Name(name=n)) if op in ("==", "!="):
            return _string_compare(op, _string_getter(n), v)
        case Binary(op="==", left=left, right=right):
            fl, fr = compile_expr(left), compile_expr(right)
            return lambda e: fl(e) == fr(e)
        case Binary(op="!=", left=left, right=right):
            fl, fr = compile_expr(left), compile_expr(right)
            return lambda e: fl(e) != fr(e)
        case Binary(op=op, left=left, right=right) if op in ("/", "%"):
            fl, fr = compile_expr(left), compile_expr(right)
            fn = operator.floordiv if op == "/" else operator.mod

            def div(e: Event) -> object:
                a, b = fl(e), fr(e)
                if not isinstance(a, int) or not isinstance(b, int) or b == 0:
                    return None
                return fn(a, b)

            return div
        case Binary(op=op, left=left, right=right) if op in _BINOPS:
            fl, fr = compile_expr(left), compile_expr(right)
            fn = _BINOPS[op]

            def binop(e: Event) -> object:
                a, b = fl(e), fr(e)
                if a is None or b is None or isinstance(a, str) != isinstance(b, str):
                    return None if op not in ("<", "<=", ">", ">=") else False
                return fn(a, b)

            return binop
    raise ProbeError("this expression cannot be evaluated in user space", expr.span, "")


def _string_compare(op: str, get: Getter, pattern: str) -> Getter:
    if any(c in pattern for c in "*?["):
        rx = re.compile(fnmatch.translate(pattern))
        if op == "==":
            return lambda e: isinstance(v := get(e), str) and rx.match(v) is not None
        return lambda e: not (isinstance(v := get(e), str) and rx.match(v) is not None)
    if op == "==":
        return lambda e: get(e) == pattern
    return lambda e: get(e) != pattern


def predicate(expr: Expr) -> Callable[[Event], bool]:
    """A function telling whether an event satisfies `expr`."""
    try:
        f = compile_expr(expr)
    except ProbeError:
        raise
    except Exception as exc:  # a shape the compiler does not know is our bug, reported as such
        raise UnitraceError(f"cannot evaluate the predicate: {exc}") from exc
    return lambda e: _as_bool(f(e))
