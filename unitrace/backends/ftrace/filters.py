"""Lowering predicates to ftrace's own filter syntax.

ftrace filters (Documentation/trace/events.rst, "Event filtering") compare one event's fields with
constants: `== != < <= > >= &` on numbers, `== != ~` on strings (`~` is a glob), combined with `&& || !` and
parentheses; `common_pid`, `comm` and `cpu` are accepted on every event. What a filter cannot say (the
process id rather than the thread id, durations, values from the other end of a syscall) stays in user
space. The split is made at the top-level `&&`: each conjunct goes to the kernel whole or not at all, so the
kernel only ever drops what the full predicate would drop.
"""

from __future__ import annotations

from collections.abc import Callable

from unitrace.errors import Span
from unitrace.model.expr import Binary, Duration, Expr, Int, Name, Str, Unary

# Our name -> the field every event has.
COMMON_FIELDS = {"tid": "common_pid", "comm": "comm", "cpu": "cpu"}
_NUMERIC_OPS = {"==", "!=", "<", "<=", ">", ">="}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


class NotLowerable(Exception):
    pass


FieldMap = Callable[[str], str | None]  # our name -> this event's field name, or None if it has none


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _constant(expr: Expr) -> int | str:
    match expr:
        case Int(value=v):
            return v
        case Str(value=v):
            return v
        case Unary(op="-", operand=Int(value=v)):
            return -v
        case Duration():
            raise NotLowerable("durations exist only in user space")
    raise NotLowerable("not a constant")


def _lower(expr: Expr, field_of: FieldMap) -> str:
    match expr:
        case Binary(op="&&" | "||", left=left, right=right):
            return f"({_lower(left, field_of)} {expr.op} {_lower(right, field_of)})"
        case Unary(op="!", operand=operand):
            return f"!({_lower(operand, field_of)})"
        case Binary(op=op, left=left, right=right) if op in _NUMERIC_OPS:
            if isinstance(left, Name):
                name, const = left.name, _constant(right)
            elif isinstance(right, Name):
                name, const, op = right.name, _constant(left), _FLIP[op]
            else:
                raise NotLowerable("a comparison needs a field on one side")
            fname = field_of(name)
            if fname is None:
                raise NotLowerable(f"{name} is not a field of this event")
            if isinstance(const, str):
                if op not in ("==", "!="):
                    raise NotLowerable("strings compare only with == and !=")
                glob = any(c in const for c in "*?[")
                kop = ("~" if op == "==" else "!~") if glob else op
                if kop == "!~":
                    return f"!({fname} ~ {_quote(const)})"
                return f"{fname} {kop} {_quote(const)}"
            return f"{fname} {op} {const}"
        case Binary(op="&", left=Name(name=name), right=Int(value=v)):
            fname = field_of(name)
            if fname is None:
                raise NotLowerable(f"{name} is not a field of this event")
            return f"{fname} & {v}"
    raise NotLowerable("not expressible as an ftrace filter")


def conjuncts(expr: Expr) -> list[Expr]:
    if isinstance(expr, Binary) and expr.op == "&&":
        return conjuncts(expr.left) + conjuncts(expr.right)
    return [expr]


def split_predicate(expr: Expr | None, field_of: FieldMap) -> tuple[str, Expr | None]:
    """(kernel filter text, or "" for none; the residual predicate for user space, or None)."""
    if expr is None:
        return "", None
    kernel: list[str] = []
    residual: list[Expr] = []
    for part in conjuncts(expr):
        try:
            text = _lower(part, field_of)
        except NotLowerable:
            residual.append(part)
            continue
        kernel.append(text)
    rest: Expr | None = None
    for part in residual:
        rest = part if rest is None else Binary(Span(1, 1), "&&", rest, part)
    return " && ".join(kernel), rest


def errno_to_ret(expr: Expr) -> Expr:
    """`errno == ENOENT` on a syscall exit is `ret == -2` in the kernel's terms."""
    match expr:
        case Binary(op=op, left=Name(name="errno"), right=Int(value=v)) if op in ("==", "!="):
            return Binary(expr.span, op, Name(expr.span, "ret"), Int(expr.span, -v))
        case Binary(op=op, left=left, right=right):
            return Binary(expr.span, op, errno_to_ret(left), errno_to_ret(right))
        case Unary(op=op, operand=operand):
            return Unary(expr.span, op, errno_to_ret(operand))
    return expr
