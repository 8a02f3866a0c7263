"""Assertions of probe files: what each one measured, against which limit, and who contributed.

An assertion names probe points (`count(syscall:openat)`); the runner traces each named point through a
probe of its own (so a user probe's predicate or in-kernel aggregation never changes what an assertion
counts), and `AssertionCollector` sees those probes' events. Queries:

    count(POINT)                      events of POINT
    sum|min|max|avg(EXPR, POINT)      EXPR evaluated on each event (ret, duration, arg2, count, ...)
    max(duration(POINT))              the same with duration as EXPR
    pNN(duration(POINT))              NN-th percentile (nearest rank) of the durations
    QUERY by KEY["value"]             only the events whose KEY equals value (comm, pid, func, ...)

Contributors are counted per query: which processes (comm) and which files (path arguments, and fd
arguments when the backend decodes them as `3</path>`), weighted by the query's value for sums.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from unitrace.errors import ProbeError
from unitrace.events import Event, EventKind, SessionStats
from unitrace.model.expr import Binary, Call, Duration, Expr, Index, Int, Name, PointRef, Str, Unary
from unitrace.model.probe import Assertion, Probe, ProbeProgram
from unitrace.sinks.aggregate import Distribution

# Event kinds that are one occurrence of a point (an unfinished entry is counted once, at its exit).
HIT_KINDS = frozenset({EventKind.SYSCALL, EventKind.SYSCALL_RESUMED, EventKind.CALL, EventKind.RETURN,
                       EventKind.TRACEPOINT, EventKind.WATCH})
VALUE_FUNCS = ("sum", "min", "max", "avg")
_PERCENTILE = re.compile(r"p([1-9][0-9]?)$")
_FD_PATH = re.compile(r"^-?\d+<(.*)>$")
PATH_PARAMS = frozenset({"filename", "pathname", "path", "oldname", "newname", "name", "oldpath", "newpath",
                         "library", "specialfile", "dir_name"})
TOP_CONTRIBUTORS = 5


@dataclass(frozen=True, slots=True)
class Query:
    """One aggregate query inside an assertion, e.g. `p99(duration(syscall:write)) by comm["cc"]`."""

    func: str  # count, sum, min, max, avg, pNN
    point: str  # the probe point as written
    value: Expr | None  # the expression summed/compared; Name("duration") for pNN
    key: Expr | None = None  # `by KEY[...]`: the key expression
    selected: Expr | None = None  # ... and the value it must equal
    text: str = ""

    @property
    def unit(self) -> str:
        """"ns" when the query measures durations, else "" (a plain number)."""
        return "ns" if isinstance(self.value, Name) and self.value.name == "duration" else ""


@dataclass
class QueryData:
    count: int = 0
    values: Distribution = field(default_factory=Distribution)  # exact, as value -> occurrences
    processes: Counter[str] = field(default_factory=Counter)
    files: Counter[str] = field(default_factory=Counter)


@dataclass
class AssertionResult:
    assertion: Assertion
    passed: bool
    measured: int | float | None  # the value of the left side; None when nothing was traced to measure
    limit: int | float | None  # the constant the query was compared with, when there is one
    op: str
    unit: str
    queries: list[tuple[Query, QueryData]]
    note: str = ""  # why a value is missing, e.g. "no events of syscall:write"
    baseline: float | None = None  # the value in the baseline, when one was given
    regressed: bool = False  # beyond the baseline's tolerance

    @property
    def text(self) -> str:
        return self.assertion.text


def _err(message: str, expr: Expr, program: ProbeProgram) -> ProbeError:
    return ProbeError(message, expr.span, program.text)


def _query_of(call: Call, program: ProbeProgram) -> Query:
    """A Call node of an assertion as a Query; raises a located error for shapes we cannot measure."""
    from unitrace.lang.format import format_expr

    text = format_expr(call)
    if call.func == "by":
        inner, sel = call.args
        if not isinstance(inner, Call) or not isinstance(sel, Index):
            raise _err("`by` needs a query and KEY[\"value\"], e.g. count(syscall:openat) by comm[\"cc1\"]",
                       call, program)
        q = _query_of(inner, program)
        return Query(q.func, q.point, q.value, sel.base, sel.key, text)
    func, args = call.func, call.args
    if func == "count":
        point = _point_list(args)
        if point is None:
            raise _err("count takes one probe point: count(syscall:openat)", call, program)
        return Query("count", point, None, text=text)
    if func in VALUE_FUNCS or _PERCENTILE.match(func):
        if len(args) == 1 and isinstance(args[0], Call) and args[0].func == "duration":
            inner = args[0].args
            if len(inner) != 1 or not isinstance(inner[0], PointRef):
                raise _err("duration takes one probe point: duration(syscall:write)", args[0], program)
            return Query(func, inner[0].text, Name(args[0].span, "duration"), text=text)
        point = _point_list(args[1:])
        if func in VALUE_FUNCS and len(args) >= 2 and point is not None:
            return Query(func, point, args[0], text=text)
        shape = f"{func}(duration(POINT))" if func.startswith("p") else f"{func}(EXPR, POINT)"
        raise _err(f"cannot measure {text}: write {shape}", call, program)
    raise _err(f"{func}(...) is not a query an assertion can measure", call, program)


def _point_list(args: Sequence[Expr]) -> str | None:
    """`syscall:openat,creat` arrives as PointRef("syscall:openat"), Name("creat"): one point again."""
    if not args or not isinstance(args[0], PointRef) or not all(isinstance(a, Name) for a in args[1:]):
        return None
    return ",".join([args[0].text, *(a.name for a in args[1:])])  # type: ignore[attr-defined]


def queries_of(assertion: Assertion, program: ProbeProgram) -> list[Query]:
    out: list[Query] = []

    def visit(e: Expr) -> None:
        match e:
            case Call():
                out.append(_query_of(e, program))
            case Binary(left=left, right=right):
                visit(left)
                visit(right)
            case Unary(operand=o):
                visit(o)
            case PointRef():
                raise _err("a probe point alone has no value: use count(...) or another query", e, program)

    visit(assertion.expr)
    if not out:
        raise _err("this assertion measures nothing: compare a query such as count(syscall:openat)",
                   assertion.expr, program)
    return out


def implicit_probes(program: ProbeProgram) -> tuple[ProbeProgram, dict[str, int]]:
    """The program with one probe per point the assertions name; returns the new program and the probe
    index of each point (as written in the assertion).

    The probes carry a plain `print` action because that is what makes every backend stream the events
    (an in-kernel backend would otherwise keep them); `unitrace run` keeps them out of the text output."""
    from unitrace.lang import parse_probe_args, resolve
    from unitrace.model.probe import PrintAction

    index: dict[str, int] = {}
    extra: list[Probe] = []
    for assertion in program.assertions:
        for q in queries_of(assertion, program):
            if q.point in index:
                continue
            try:
                parsed = resolve(parse_probe_args([q.point])).probes[0]
            except ProbeError as exc:
                raise ProbeError(f"in `{assertion.text}`: {exc.message}", assertion.span, program.text,
                                 hint=exc.hint) from None
            index[q.point] = len(program.probes) + len(extra)
            extra.append(Probe(parsed.points, None, (PrintAction(),), assertion.span, id=index[q.point]))
    from dataclasses import replace

    return replace(program, probes=program.probes + tuple(extra)), index


def files_of(ev: Event) -> list[str]:
    """Files an event touched, as far as its decoded arguments tell: path arguments, `fd</path>`."""
    from unitrace.decode.table import get_table
    from unitrace.model.evaluate import unquote

    out = []
    if "path" in ev.fields and isinstance(ev.fields["path"], str):
        out.append(ev.fields["path"])
    info = get_table().by_name.get(ev.name) if ev.kind in (EventKind.SYSCALL, EventKind.SYSCALL_RESUMED) else None
    for i, text in enumerate(ev.args):
        m = _FD_PATH.match(text)
        if m:
            out.append(m.group(1))
        elif info is not None and i < len(info.params) and info.params[i].name in PATH_PARAMS \
                and text.startswith('"'):
            out.append(unquote(text))
    return out


class AssertionCollector:
    """A sink: for every query, the count, the values, and who contributed."""

    def __init__(self, program: ProbeProgram, point_probe: dict[str, int]) -> None:
        from unitrace.model.evaluate import compile_expr

        self.program = program
        self.queries: list[tuple[Assertion, list[tuple[Query, QueryData]]]] = []
        self.by_probe: dict[int, list[tuple[Query, QueryData, Callable[[Event], object] | None,
                                             Callable[[Event], object] | None, object]]] = {}
        for assertion in program.assertions:
            rows = []
            for q in queries_of(assertion, program):
                data = QueryData()
                rows.append((q, data))
                value_fn = compile_expr(q.value) if q.value is not None else None
                key_fn = compile_expr(q.key) if q.key is not None else None
                wanted = _constant(q.selected, program) if q.selected is not None else None
                self.by_probe.setdefault(point_probe[q.point], []).append((q, data, value_fn, key_fn, wanted))
            self.queries.append((assertion, rows))
        self.stats = SessionStats()

    def feed(self, batch: list[Event]) -> None:
        by_probe = self.by_probe
        for ev in batch:
            rows = by_probe.get(ev.probe)
            if rows is None or ev.kind not in HIT_KINDS:
                continue
            files: list[str] | None = None
            for q, data, value_fn, key_fn, wanted in rows:
                if key_fn is not None and not _key_matches(key_fn(ev), wanted):
                    continue
                weight = 1
                if value_fn is not None:
                    v = value_fn(ev)
                    if isinstance(v, bool) or not isinstance(v, int):
                        continue  # no value on this event (a duration an unfinished call lacks)
                    data.values.add(v)
                    if q.func == "sum":
                        weight = v
                data.count += 1
                data.processes[ev.comm or str(ev.pid)] += weight
                if files is None:
                    files = files_of(ev)
                for f in files:
                    data.files[f] += weight

    def close(self, stats: SessionStats) -> None:
        self.stats = stats

    def results(self) -> list[AssertionResult]:
        return [evaluate(a, rows) for a, rows in self.queries]


def _constant(expr: Expr, program: ProbeProgram) -> object:
    match expr:
        case Str(value=v):
            return v
        case Int(value=v):
            return v
        case Duration(ns=ns):
            return ns
    raise _err("the key of `by` must be a string or a number: comm[\"cc1\"], pid[42]", expr, program)


def _key_matches(actual: object, wanted: object) -> bool:
    if isinstance(wanted, str):
        import fnmatch

        text = actual if isinstance(actual, str) else str(actual)
        return fnmatch.fnmatchcase(text, wanted) if any(c in wanted for c in "*?[") else text == wanted
    return actual == wanted


def value_of(q: Query, data: QueryData) -> int | float | None:
    """The query's value; None when there were no values to take a min/max/avg/percentile of."""
    if q.func == "count":
        return data.count
    values = data.values
    if q.func == "sum":
        return values.total
    if not values.n:
        return None
    if q.func == "min":
        return values.minimum
    if q.func == "max":
        return values.maximum
    if q.func == "avg":
        return values.mean
    m = _PERCENTILE.match(q.func)
    assert m is not None
    return values.percentile(int(m.group(1)))  # nearest rank, as most CI tools define it


_COMPARE = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}


def evaluate(assertion: Assertion, rows: Sequence[tuple[Query, QueryData]]) -> AssertionResult:
    values = {id(q): value_of(q, d) for q, d in rows}
    queries = iter(rows)
    missing: list[str] = []

    def ev(e: Expr) -> object:
        match e:
            case Call():
                q, _ = next(queries)
                v = values[id(q)]
                if v is None:
                    missing.append(q.point)
                return v
            case Int(value=v):
                return v
            case Duration(ns=ns):
                return ns
            case Unary(op=op, operand=o):
                x = ev(o)
                if x is None:
                    return None
                return {"-": lambda: -x, "!": lambda: not x, "~": lambda: ~x}[op]()  # type: ignore[operator]
            case Binary(op=op, left=left, right=right):
                a, b = ev(left), ev(right)
                if op == "&&":
                    return bool(a) and bool(b)
                if op == "||":
                    return bool(a) or bool(b)
                if a is None or b is None:
                    return None
                if op in _COMPARE:
                    return _COMPARE[op](a, b)
                return _arith(op, a, b)
        raise ValueError(f"cannot evaluate {e!r} in an assertion")

    outcome = ev(assertion.expr)
    expr = assertion.expr
    measured: int | float | None = None
    limit: int | float | None = None
    op = ""
    unit = rows[0][0].unit if rows else ""
    if isinstance(expr, Binary) and expr.op in _COMPARE:
        op = expr.op
        if isinstance(expr.left, Call) and len(rows) == 1:
            measured = values[id(rows[0][0])]
            limit = _literal(expr.right)
        elif isinstance(expr.right, Call) and len(rows) == 1:
            measured = values[id(rows[0][0])]
            limit = _literal(expr.left)
            op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)  # read as "measured OP limit"
    if measured is None and len(rows) == 1 and not missing:
        measured = values[id(rows[0][0])]
    note = ""
    if missing:
        note = "no values measured for " + ", ".join(dict.fromkeys(missing))
    return AssertionResult(assertion, outcome is True, measured, limit, op, unit, list(rows), note)


def _arith(op: str, a: object, b: object) -> object:
    x, y = a, b
    if op == "/":
        return x / y if y else None  # type: ignore[operator]
    return {"+": lambda: x + y, "-": lambda: x - y, "*": lambda: x * y,  # type: ignore[operator]
            "%": lambda: x % y if y else None}[op]()  # type: ignore[operator]


def _literal(e: Expr) -> int | float | None:
    match e:
        case Int(value=v):
            return v
        case Duration(ns=ns):
            return ns
        case Unary(op="-", operand=Int(value=v)):
            return -v
    return None


def format_value(value: int | float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ns":
        for scale, suffix in ((1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "us")):
            if abs(value) >= scale:
                return f"{value / scale:.3g}{suffix}"
        return f"{value:g}ns" if isinstance(value, float) else f"{value}ns"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def render_report(results: Sequence[AssertionResult], *, header: str = "") -> str:
    """The readable report: one block per assertion, failures first in the summary line."""
    lines = [header] if header else []
    for r in results:
        verdict = "PASS" if r.passed and not r.regressed else "FAIL"
        lines.append(f"{verdict}  {r.text}")
        if r.limit is not None:
            lines.append(f"      measured {format_value(r.measured, r.unit)}, limit {r.op} "
                         f"{format_value(r.limit, r.unit)}")
        elif r.measured is not None:
            lines.append(f"      measured {format_value(r.measured, r.unit)}")
        else:
            for q, d in r.queries:
                lines.append(f"      {q.text} = {format_value(value_of(q, d), q.unit)}")
        if r.baseline is not None:
            lines.append(f"      baseline {format_value(r.baseline, r.unit)}, {delta_text(r.baseline, r.measured)}"
                         + ("  REGRESSION" if r.regressed else ""))
        if r.note:
            lines.append(f"      {r.note}")
        for q, d in r.queries:
            prefix = f"{q.text}: " if len(r.queries) > 1 else ""
            if d.files:
                lines.append(f"      {prefix}top files: {_top(d.files)}")
            if d.processes:
                lines.append(f"      {prefix}top processes: {_top(d.processes)}")
    failed = sum(1 for r in results if not r.passed or r.regressed)
    lines.append(f"{len(results)} assertion{'s' if len(results) != 1 else ''}: "
                 f"{len(results) - failed} passed, {failed} failed")
    return "\n".join(lines) + "\n"


def delta_text(old: float | None, new: float | int | None) -> str:
    if old is None or new is None:
        return "no comparison"
    diff = new - old
    if old == 0:
        return f"{diff:+g}" if diff else "unchanged"
    return f"{diff:+g} ({diff / abs(old) * 100:+.1f}%)" if diff else "unchanged"


def _top(counter: Counter[str]) -> str:
    items = counter.most_common(TOP_CONTRIBUTORS)
    more = len(counter) - len(items)
    text = ", ".join(f"{name} ({n})" for name, n in items)
    return text + (f", and {more} more" if more > 0 else "")


def evaluate_assertions(collector: AssertionCollector) -> list[AssertionResult]:
    return collector.results()
