"""The passes after parsing: resolve_names (sets, constants) and check (names, sites, types, assertions),
each a function over the immutable tree, each dumpable."""

from __future__ import annotations

import pytest

from unitrace.errors import ProbeError
from unitrace.lang import check, format_expr, parse_probe_args, parse_program, resolve, resolve_names
from unitrace.model.expr import Int, Name


def error_of(*args: str) -> str:
    with pytest.raises(ProbeError) as info:
        resolve(parse_probe_args(list(args)))
    return info.value.render()


CHECK_DIAGNOSTICS = [
    ('syscall:openat /comm == 3/',
     '<command line>:1:17: error: a string cannot be compared with a number\nsyscall:openat /comm == 3/\n'
     '                ^~~~\nhint: strings compare with strings: comm == "cat"'),
    ('syscall:openat /pid == "x"/',
     '<command line>:1:24: error: a string cannot be compared with a number\nsyscall:openat /pid == "x"/\n'
     '                       ^~~\nhint: strings compare with strings: comm == "cat"'),
    ('syscall:openat /comm > "a"/',
     '<command line>:1:17: error: > compares numbers, not strings\nsyscall:openat /comm > "a"/\n'
     '                ^~~~\nhint: use == with a glob for strings: comm == "python*"'),
    ("syscall:read { hist(comm) }",
     "<command line>:1:21: error: hist() needs a number, not a string\nsyscall:read { hist(comm) }\n"
     "                    ^~~~"),
    ("syscall:read /duration > 1000/",
     "<command line>:1:26: error: a duration is compared with a plain number\nsyscall:read /duration > 1000/\n"
     "                         ^~~~\nhint: give the number a unit: 1ms, 250us, 2s"),
    ("syscall:openat /count(syscall:read) > 1/",
     "<command line>:1:17: error: count() is not a function an expression can call\n"
     "syscall:openat /count(syscall:read) > 1/\n                ^~~~~\n"
     "hint: aggregations are actions: { hist(ret) }, { count() by comm }"),
    ("user:libc:malloc { print(ret) }",
     "<command line>:1:26: error: ret is known only where the function returns\n"
     "user:libc:malloc { print(ret) }\n                         ^~~\n"
     "hint: probe the return site: add %return to the point"),
    ("syscall:read /fd == 0 && cout > 10/",
     "<command line>:1:26: error: unknown name 'cout'\nsyscall:read /fd == 0 && cout > 10/\n"
     "                         ^~~~\nhint: did you mean count?"),
    ("syscall:openat /(pid == 1/",
     "<command line>:1:17: error: this '(' is never closed\nsyscall:openat /(pid == 1/\n                ^\n"
     "hint: inside ( ), / is division; the predicate ends at the / after the )"),
    ("syscall:openat /pid == 1 { print }",
     "<command line>:1:26: error: expected '/' to end the predicate, found '{'\n"
     "syscall:openat /pid == 1 { print }\n                         ^\n"
     "hint: a predicate is written between slashes: /pid == 1/"),
]


@pytest.mark.parametrize(("text", "expected"), CHECK_DIAGNOSTICS)
def test_check_diagnostics_exact_text(text: str, expected: str) -> None:
    assert error_of(text) == expected


def test_names_are_those_of_every_syscall_in_the_set() -> None:
    # `count` is read's parameter and write's; `buf` too; `filename` only openat's
    resolve(parse_probe_args(["syscall:read,write /count > 10 && buf != 0/"]))
    with pytest.raises(ProbeError, match="unknown name 'filename'"):
        resolve(parse_probe_args(["syscall:read /filename == \"x\"/"]))
    # tracepoint fields are known only to the kernel: the backend checks them
    resolve(parse_probe_args(["tracepoint:sched:sched_switch /prev_pid == 1/"]))


def test_an_argument_named_like_a_constant_wins() -> None:
    prog = resolve(parse_probe_args(["syscall:kill /sig == SIGKILL/"]))
    pred = prog.probes[0].predicate
    assert pred.left == Name(pred.span, "sig") and pred.right == Int(pred.span, 9)  # type: ignore[union-attr]


def test_assertion_points_are_checked_where_they_were_written() -> None:
    text = "syscall:openat\nassert count(syscall:opneat) <= 3\n"
    with pytest.raises(ProbeError) as info:
        resolve(parse_program(text, "ci.ut"))
    assert info.value.render() == ("ci.ut:2:22: error: unknown syscall 'opneat'\n"
                                   "assert count(syscall:opneat) <= 3\n                     ^~~~~~\n"
                                   "hint: did you mean openat, openat2, connect?")
    with pytest.raises(ProbeError, match="unknown name 'filename'"):
        resolve(parse_program("assert sum(filename, syscall:write) < 3", "ci.ut"))
    with pytest.raises(ProbeError) as info:
        resolve(parse_program('assert count(syscall:openat) by cmm["cc1"] <= 40', "ci.ut"))
    assert info.value.render() == ('ci.ut:1:33: error: unknown name \'cmm\'\n'
                                   'assert count(syscall:openat) by cmm["cc1"] <= 40\n'
                                   '                                ^~~\nhint: did you mean comm?')
    with pytest.raises(ProbeError, match="unknown function 'p100'"):
        resolve(parse_program("assert p100(duration(syscall:write)) < 3ms", "ci.ut"))
    # a syscall list inside a query stays one point
    prog = resolve(parse_program("assert count(syscall:openat,creat) < 3", "ci.ut"))
    assert format_expr(prog.assertions[0].expr) == "count(syscall:openat,creat) < 3"


def test_passes_are_separate_functions_and_dump(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = parse_probe_args(["syscall:open* /comm == 3/"], dump_ast="parse")
    err = capsys.readouterr().err
    assert err.startswith("--- after parse ---\nProbeProgram\n  probes:\n    Probe  @1:1\n      points:\n")
    assert "patterns: ('open*',)" in err and "names: ()" in err
    resolved = resolve_names(parsed)  # the resolve pass alone does not judge types
    assert len(resolved.probes[0].points[0].target.names) >= 4  # type: ignore[union-attr]
    with pytest.raises(ProbeError, match="string cannot be compared"):
        check(resolved)
    monkeypatch.setenv("UNITRACE_DUMP_AST", "resolve")
    resolve(parse_probe_args(["syscall:openat"]))
    err = capsys.readouterr().err
    assert "--- after resolve ---" in err and "names: ('openat',)" in err and "after check" not in err


def test_predicate_and_actions_may_be_arguments_or_lines_of_their_own() -> None:
    prog = resolve(parse_probe_args(["syscall:openat", "/comm == \"cat\"/", "{ count() by comm }"]))
    assert len(prog.probes) == 1 and format_expr(prog.probes[0].predicate) == 'comm == "cat"'  # type: ignore[arg-type]
    # the argument is the line of an error
    assert error_of("syscall:openat", "/comm == 3/").startswith("<command line>:2:2: error:")


def test_caret_lines_up_under_tabs_and_lines_end_only_at_newlines() -> None:
    assert error_of("syscall:openat\t/comm == 3/").split("\n")[1:3] == [
        "syscall:openat\t/comm == 3/", "              \t ^~~~"]
    # \f is not a line break for the lexer, so it is not one for the rendering either
    with pytest.raises(ProbeError) as info:
        parse_program('syscall:openat /comm == "\x0c" && $/', "x.ut")
    assert info.value.render().split("\n")[:3] == [
        "x.ut:1:32: error: unexpected character '$'", 'syscall:openat /comm == "\x0c" && $/', " " * 31 + "^"]
