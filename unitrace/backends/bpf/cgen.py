"""Predicates and key/value expressions lowered to C by walking the expression tree.

User text never reaches the C source except as escaped string literals and integers produced here; every
other token comes from this module. What cannot be expressed in the kernel (string globs other than a
prefix, durations on entry probes) raises NotInKernel, and the caller keeps that part for user space.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from unitrace.model.expr import ARITH_OPS, COMPARE_OPS, Binary, Duration, Expr, Int, Name, Str, Unary

COMM_LEN = 16
# Builtins that are never negative: division and remainder on them are unsigned in the kernel.
UNSIGNED_NAMES = frozenset({"pid", "tid", "ppid", "uid", "gid", "cpu", "ts", "duration", "func"})


class NotInKernel(Exception):
    pass


def c_string(value: str) -> str:
    """A C string literal for arbitrary text: every byte outside printable ASCII is an octal escape."""
    out = ['"']
    for b in value.encode("utf-8"):
        ch = chr(b)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= b < 0x7F and ch != "?":  # '?' escaped: no trigraphs
            out.append(ch)
        else:
            out.append(f"\\{b:03o}")
    out.append('"')
    return "".join(out)


def c_int(value: int) -> str:
    if value < 0:
        return f"(-{-value}LL)" if value != -(1 << 63) else "(-9223372036854775807LL - 1)"
    return f"{value}ULL" if value > 0x7FFFFFFFFFFFFFFF else f"{value}LL"


@dataclass(frozen=True, slots=True)
class Scope:
    """How names map to C in one probe's context. `names` gives numeric C expressions; `strings` names
    the char arrays that can be compared (comm)."""

    names: dict[str, str]
    strings: dict[str, str]
    lookup: Callable[[str], str | None] | None = None  # extra names (syscall parameters, argN)
    unsigned: frozenset[str] = UNSIGNED_NAMES  # names whose values are never negative

    def numeric(self, name: str) -> str:
        if name in self.names:
            return self.names[name]
        if self.lookup is not None:
            found = self.lookup(name)
            if found is not None:
                return found
        raise NotInKernel(f"{name} is not available in the kernel here")


def _str_compare(op: str, array: str, value: str) -> str:
    glob_chars = [i for i, c in enumerate(value) if c in "*?["]
    if not glob_chars:
        data = value.encode()
        if len(data) >= COMM_LEN:
            raise NotInKernel("longer than the array")
        test = f"ut_str_eq({array}, {c_string(value)}, {len(data) + 1})"
    elif glob_chars == [len(value) - 1] and value.endswith("*"):
        prefix = value[:-1]
        test = f"ut_str_eq({array}, {c_string(prefix)}, {len(prefix.encode())})"
    else:
        raise NotInKernel("only exact strings and prefix globs (abc*) are matched in the kernel")
    return test if op == "==" else f"!{test}"


def lower(expr: Expr, scope: Scope) -> str:
    match expr:
        case Int(value=v):
            return c_int(v)
        case Duration(ns=ns):
            return c_int(ns)
        case Str():
            raise NotInKernel("a string outside a comparison")
        case Name(name=name):
            return f"((s64)({scope.numeric(name)}))"
        case Unary(op=op, operand=operand):
            return f"({op}{lower(operand, scope)})"
        case Binary(op=op, left=left, right=right) if op in ("&&", "||"):
            return f"({lower(left, scope)} {op} {lower(right, scope)})"
        case Binary(op=op, left=Name(name=n), right=Str(value=v)) if op in ("==", "!=") and n in scope.strings:
            return _str_compare(op, scope.strings[n], v)
        case Binary(op=op, left=Str(value=v), right=Name(name=n)) if op in ("==", "!=") and n in scope.strings:
            return _str_compare(op, scope.strings[n], v)
        case Binary(op=op, left=left, right=right) if op in COMPARE_OPS or op in ARITH_OPS:
            if op in ("/", "%"):
                return _divide(op, left, right, scope)
            return f"({lower(left, scope)} {op} {lower(right, scope)})"
    raise NotInKernel("not expressible in the kernel")


def nonnegative(expr: Expr, scope: Scope) -> bool:
    """Whether `expr` is known never to be negative (then `/` and `%` on it can be unsigned)."""
    match expr:
        case Int(value=v) | Duration(ns=v):
            return v >= 0
        case Name(name=name):
            return name in scope.unsigned
        case Unary(op="!"):
            return True
        case Binary(op=op) if op in COMPARE_OPS or op in ("&&", "||"):
            return True
        case Binary(op="&", left=left, right=right):
            return nonnegative(left, scope) or nonnegative(right, scope)
        case Binary(op=">>", left=left):
            return nonnegative(left, scope)
        case Binary(op=op, left=left, right=right) if op in ("|", "^", "/", "%"):
            return nonnegative(left, scope) and nonnegative(right, scope)
    return False


def _divide(op: str, left: Expr, right: Expr, scope: Scope) -> str:
    """`/` and `%` with C's truncation toward zero and 0 for a zero divisor, without BPF's signed division
    (`sdiv`, which LLVM refuses for BPF before ISA v4): unsigned division when both sides are known not
    negative, else ut_sdiv/ut_smod (unitrace_bpf.h), which divide the magnitudes and fix the sign."""
    lhs, rhs = lower(left, scope), lower(right, scope)
    if nonnegative(left, scope) and nonnegative(right, scope):
        return f"({rhs} ? (s64)((u64){lhs} {op} (u64){rhs}) : 0)"
    return f"{'ut_sdiv' if op == '/' else 'ut_smod'}({lhs}, {rhs})"


def split(expr: Expr | None, scope: Scope) -> tuple[str, Expr | None]:
    """(C condition, "1" if none; the part left for user space, or None). Split at top-level &&."""
    from unitrace.backends.ftrace.filters import conjuncts

    if expr is None:
        return "1", None
    kernel: list[str] = []
    rest: list[Expr] = []
    for part in conjuncts(expr):
        try:
            kernel.append(lower(part, scope))
        except NotInKernel:
            rest.append(part)
    residual: Expr | None = None
    for part in rest:
        residual = part if residual is None else Binary(part.span, "&&", residual, part)
    return (" && ".join(kernel) or "1"), residual
