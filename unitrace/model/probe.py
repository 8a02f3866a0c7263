"""The probe model: what to trace, when to record, what to do. Immutable dataclasses, no I/O.

A Probe is written once (command line, probe file, Python) and compiled by whichever backend the
planner picks. Nothing here knows about backends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from unitrace.errors import Span
from unitrace.model.expr import Expr


class Site(StrEnum):
    ENTRY = "entry"
    RETURN = "return"


# ---- targets: one dataclass per probe kind -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyscallTarget:
    """Patterns as written (names, globs, %classes, /regex); `names` once resolved against the table."""

    patterns: tuple[str, ...]
    names: tuple[str, ...] = ()

    def __str__(self) -> str:
        return ",".join(self.patterns)


@dataclass(frozen=True, slots=True)
class KernelTarget:
    function: str

    def __str__(self) -> str:
        return self.function


@dataclass(frozen=True, slots=True)
class TracepointTarget:
    subsystem: str
    event: str

    def __str__(self) -> str:
        return f"{self.subsystem}:{self.event}"


@dataclass(frozen=True, slots=True)
class UserTarget:
    """binary is a path, a short library name (`libc`), or empty for the traced program itself."""

    binary: str
    symbol: str

    def __str__(self) -> str:
        return f"{self.binary}:{self.symbol}"


@dataclass(frozen=True, slots=True)
class WatchTarget:
    """A hardware watchpoint: an address or a symbol (`&counter`), a length of 1, 2, 4 or 8 bytes."""

    address: int | None
    symbol: str | None
    length: int
    access: str  # "w" or "rw"

    def __str__(self) -> str:
        where = f"&{self.symbol}" if self.symbol else hex(self.address or 0)
        return f"{where}:{self.length}:{self.access}"


Target = SyscallTarget | KernelTarget | TracepointTarget | UserTarget | WatchTarget


@dataclass(frozen=True, slots=True)
class ProbePoint:
    kind: str
    target: Target
    site: Site = Site.ENTRY
    span: Span = field(default=Span(1, 1), compare=False, repr=False)

    def __str__(self) -> str:
        suffix = "%return" if self.site is Site.RETURN else ""
        return f"{self.kind}:{self.target}{suffix}"


# ---- actions --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrintAction:
    """print the decoded event (no args) or the given expressions."""

    args: tuple[Expr, ...] = ()
    span: Span = field(default=Span(1, 1), compare=False, repr=False)


AGGREGATIONS = ("count", "sum", "min", "max", "avg", "hist", "lhist")


@dataclass(frozen=True, slots=True)
class AggregateAction:
    """`@name[keys] = func(value)`; `func(value) by key` is the same with an unnamed map."""

    func: str
    value: Expr | None
    keys: tuple[Expr, ...] = ()
    name: str = ""
    # lhist bounds: (min, max, step)
    params: tuple[int, ...] = ()
    span: Span = field(default=Span(1, 1), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class StackAction:
    which: str = "user"  # "user", "kernel" or "both"
    span: Span = field(default=Span(1, 1), compare=False, repr=False)


Action = PrintAction | AggregateAction | StackAction


@dataclass(frozen=True, slots=True)
class Probe:
    points: tuple[ProbePoint, ...]
    predicate: Expr | None = None
    actions: tuple[Action, ...] = (PrintAction(),)
    span: Span = field(default=Span(1, 1), compare=False, repr=False)
    id: int = 0

    @property
    def name(self) -> str:
        return ",".join(str(p) for p in self.points)


@dataclass(frozen=True, slots=True)
class Assertion:
    """`assert EXPR` in a probe file; EXPR is a comparison over aggregate queries."""

    expr: Expr
    text: str
    span: Span = field(default=Span(1, 1), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ProbeProgram:
    """Everything one command line or probe file asks for."""

    probes: tuple[Probe, ...]
    assertions: tuple[Assertion, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()
    source: str = "<command line>"
    text: str = ""

    def meta_value(self, key: str, default: str = "") -> str:
        return dict(self.meta).get(key, default)
