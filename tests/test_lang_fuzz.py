"""The front end raises nothing but ProbeError, whatever it is given: random text, grammar pieces glued at
random, and valid programs mutated at random. And format_expr prints what parses back to the same tree."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from unitrace.errors import ProbeError
from unitrace.lang import format_expr, parse_predicate, parse_program, resolve
from unitrace.model.expr import (
    ARITH_OPS,
    COMPARE_OPS,
    LOGICAL_OPS,
    Binary,
    Duration,
    Expr,
    Int,
    Name,
    Str,
    Unary,
)
from unitrace.model.kinds import KINDS

ROOT = Path(__file__).resolve().parent.parent
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def only_probe_errors(text: str) -> None:
    try:
        resolve(parse_program(text, "fuzz.ut"))
    except ProbeError as exc:
        rendered = exc.render()
        assert rendered.startswith("fuzz.ut:")
        # the caret line points inside (or just past) the quoted source line
        src, caret = rendered.split("\n")[1:3]
        assert caret.index("^") <= len(src)


VALID = [
    *(s.example for s in KINDS.values()),
    'syscall:openat /comm == "cat" && errno == ENOENT/ { print; stack }',
    "syscall:read%return /ret > 0/ { hist(ret) }",
    "syscall:write { @bytes[comm] = sum(arg2); }",
    "syscall:%file,!open* { count() by (comm, pid) }",
    "syscall:/^(open|stat)/,read\n  /(arg2 / 2) > 0x10 || !(pid == 1)/\n  { print(pid, -arg0, ~flags) }",
    'user:"/opt/my app":main%return,helper%return /ret != 0/',
    "user:libc:malloc { lhist(arg0, 0, 4096, 256) }",
    "tracepoint:sched:sched_switch,sched_wakeup,watch:0x1000:8:rw",
    'description "d"\nrequires ptrace\nbackend auto\nsyscall:openat\n'
    "assert count(syscall:openat) <= 200\nassert p99(duration(syscall:write)) < 2ms\n"
    'assert count(syscall:openat) by comm["cc1"] <= 40\nassert sum(arg2, syscall:write) < 1M',
    *re.findall(r"```unitrace\n(.*?)```", (ROOT / "docs/language.md").read_text(), re.S),
]
ALPHABET = " \n\t/{}()[],;:%@=<>!~&|^+-*\"\\#$'0123456789abcxyzSEO_."


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(text)))
        match draw(st.sampled_from(("insert", "delete", "replace", "duplicate", "splice"))):
            case "insert":
                text = text[:pos] + draw(st.text(ALPHABET, min_size=1, max_size=3)) + text[pos:]
            case "delete":
                text = text[:pos] + text[pos + draw(st.integers(1, 5)):]
            case "replace":
                text = text[:pos] + draw(st.sampled_from(ALPHABET)) + text[pos + 1:]
            case "duplicate":
                end = draw(st.integers(pos, len(text)))
                text = text[:end] + text[pos:end] + text[end:]
            case "splice":
                other = draw(st.sampled_from(VALID))
                cut = draw(st.integers(0, len(other)))
                text = text[:pos] + other[cut:]
    return text


@FUZZ
@given(mutated())
def test_fuzz_mutated_valid_programs(text: str) -> None:
    only_probe_errors(text)


def test_the_valid_corpus_is_valid() -> None:
    for text in VALID:
        resolve(parse_program(text, "corpus.ut"))


_GRAMMAR_BITS = st.sampled_from([
    "syscall:", "openat", "kernel:", "user:", "libc", ":", "malloc", "%return", "tracepoint:", "sched",
    "watch:", "&x", "8", "w", " ", "/", "{", "}", "(", ")", "[", "]", ";", ",", "@", "=", "==", "&&", "||",
    "!", "-", "comm", "pid", "ret", "errno", "ENOENT", '"', '"cat"', "1ms", "0x10", "count()", "hist(",
    "by", "assert", "\n", "#", "print", "stack", "lhist(arg0, 0, 10, 1)", "description", "99999999999999999999",
    "%file", "!", "/^op/", "p99(", "duration(", '"/opt/a b"', "s:", "u:", "tp:",
])


@FUZZ
@given(st.lists(_GRAMMAR_BITS, max_size=30).map("".join))
def test_fuzz_grammar_pieces_only_probe_errors(text: str) -> None:
    only_probe_errors(text)


@FUZZ
@given(st.text(max_size=80))
def test_fuzz_any_text_only_probe_errors(text: str) -> None:
    only_probe_errors(text)
    try:
        parse_predicate(text)
    except ProbeError as exc:
        assert exc.render()


# ---- format_expr round trip -----------------------------------------------------------------------------

_NAMES = st.sampled_from(["pid", "comm", "arg0", "flags", "ret", "duration", "x_1"])
_LEAVES = st.one_of(
    st.integers(-(2**70), 2**70).map(lambda v: Int(None, v)),  # type: ignore[arg-type]
    _NAMES.map(lambda n: Name(None, n)),  # type: ignore[arg-type]
    st.text(max_size=6).map(lambda s: Str(None, s)),  # type: ignore[arg-type]
    st.tuples(st.integers(0, 10**6), st.sampled_from(["ns", "us", "ms", "s"])).map(
        lambda t: Duration(None, t[0] * {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9}[t[1]], f"{t[0]}{t[1]}")),  # type: ignore[arg-type]
)
_OPS = st.sampled_from(LOGICAL_OPS + COMPARE_OPS + ARITH_OPS)


def _unary(child: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    # -5 is the literal Int(-5), not Unary("-", Int(5)): the parser folds it, so do not generate it
    return st.tuples(st.sampled_from("!-~"), child).filter(
        lambda t: not (t[0] == "-" and isinstance(t[1], Int))).map(
        lambda t: Unary(None, t[0], t[1]))  # type: ignore[arg-type]


_EXPRS = st.recursive(_LEAVES, lambda child: st.one_of(
    _unary(child), st.tuples(_OPS, child, child).map(lambda t: Binary(None, t[0], t[1], t[2]))),  # type: ignore[arg-type]
    max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(_EXPRS)
def test_format_expr_parses_back_to_the_same_tree(expr: Expr) -> None:
    assume(not (isinstance(expr, Int) and expr.value < 0))
    text = format_expr(expr)
    again = parse_predicate(text)
    assert again == expr, text
    assert format_expr(again) == text
