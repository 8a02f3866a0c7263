"""Expressions back to source text, with the parentheses the precedence needs and no more."""

from __future__ import annotations

from unitrace.model.expr import Binary, Call, Duration, Expr, Index, Int, Name, PointRef, Str, Unary

_LEVEL = {op: i for i, ops in enumerate((
    ("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", "<=", ">", ">="), ("<<", ">>"), ("+", "-"),
    ("*", "/", "%"))) for op in ops}
_UNARY = len(_LEVEL) + 10


def _quote(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _fmt(e: Expr) -> tuple[str, int]:
    match e:
        case Int(value=v):
            return (str(v), _UNARY) if v >= 0 else (f"-{-v}", _UNARY - 1)
        case Duration(text=t):
            return t, _UNARY
        case Str(value=v):
            return _quote(v), _UNARY
        case Name(name=n):
            return n, _UNARY
        case PointRef(text=t):
            return t, _UNARY
        case Unary(op=op, operand=o):
            inner, lvl = _fmt(o)
            return op + (inner if lvl >= _UNARY - 1 else f"({inner})"), _UNARY - 1
        case Binary(op=op, left=left, right=right):
            mine = _LEVEL[op]
            ltext, llvl = _fmt(left)
            rtext, rlvl = _fmt(right)
            if llvl < mine:
                ltext = f"({ltext})"
            if rlvl <= mine:
                rtext = f"({rtext})"
            return f"{ltext} {op} {rtext}", mine
        case Call(func="by", args=(inner, key)):
            return f"{_fmt(inner)[0]} by {_fmt(key)[0]}", _UNARY
        case Call(func=f, args=args):
            return f"{f}({', '.join(_fmt(a)[0] for a in args)})", _UNARY
        case Index(base=b, key=k):
            return f"{_fmt(b)[0]}[{_fmt(k)[0]}]", _UNARY
    return repr(e), _UNARY


def format_expr(expr: Expr) -> str:
    return _fmt(expr)[0]
