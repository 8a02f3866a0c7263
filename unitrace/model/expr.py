"""Expression trees for predicates, action arguments and assertions. Immutable, no I/O.

The same tree is lowered by every backend: to an ftrace filter string, to BPF C, or evaluated in user
space by `unitrace.model.evaluate`. Each node keeps the span it was parsed from so that a backend that
cannot express a node can point at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from unitrace.errors import Span

# Binary operators, loosest first; the parser and every lowering share this table.
LOGICAL_OPS = ("||", "&&")
COMPARE_OPS = ("==", "!=", "<", "<=", ">", ">=")
ARITH_OPS = ("+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>")
UNARY_OPS = ("!", "-", "~")

# Names every event has, whatever its kind; kinds add their own (argument names, fields).
BUILTIN_NAMES = {
    "pid": "process id (thread group id)",
    "tid": "thread id",
    "ppid": "parent process id",
    "uid": "real user id",
    "gid": "real group id",
    "comm": "process name (16 bytes, as the kernel keeps it)",
    "cpu": "CPU the event happened on",
    "ts": "timestamp, ns",
    "probe": "the probe's name, e.g. syscall:openat",
    "func": "the function, syscall or event name",
    "ret": "return value (return site)",
    "errno": "error number when ret is an error, else 0 (return site)",
    "duration": "ns from entry to return (return site)",
    "args": "all arguments",
}

# arg0..arg9 address arguments by position on every kind.
MAX_POSITIONAL_ARGS = 10


@dataclass(frozen=True, slots=True)
class Expr:
    span: Span = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Int(Expr):
    value: int


@dataclass(frozen=True, slots=True)
class Str(Expr):
    value: str

    @property
    def is_glob(self) -> bool:
        return any(c in self.value for c in "*?[")


@dataclass(frozen=True, slots=True)
class Duration(Expr):
    """A time literal such as 2ms, kept in nanoseconds."""

    ns: int
    text: str


@dataclass(frozen=True, slots=True)
class Name(Expr):
    """A bare identifier: a builtin (pid, comm), an argument name, argN, or a constant (ENOENT)."""

    name: str


@dataclass(frozen=True, slots=True)
class Unary(Expr):
    op: str
    operand: Expr


@dataclass(frozen=True, slots=True)
class Binary(Expr):
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Call(Expr):
    """func(args...): aggregations in actions, queries in assertions (count(syscall:openat))."""

    func: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class PointRef(Expr):
    """A probe point named inside an expression, as in `count(syscall:openat)`."""

    text: str


@dataclass(frozen=True, slots=True)
class Index(Expr):
    """base[key]: selects one key of a keyed aggregate, as in `count(...) by comm["cc1"]`."""

    base: Expr
    key: Expr


def walk(expr: Expr):
    """Yield every node of the tree, parents before children."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        match node:
            case Unary(operand=o):
                stack.append(o)
            case Binary(left=left, right=right):
                stack.extend((right, left))
            case Call(args=args):
                stack.extend(reversed(args))
            case Index(base=b, key=k):
                stack.extend((k, b))


def names_used(expr: Expr | None) -> frozenset[str]:
    if expr is None:
        return frozenset()
    return frozenset(n.name for n in walk(expr) if isinstance(n, Name))
