"""The probe language: parse, resolve, diagnostics as exact text, documented examples, fuzzing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from unitrace.errors import ProbeError
from unitrace.lang import format_expr, parse_predicate, parse_probe_args, parse_program, resolve
from unitrace.model.expr import Binary, Call, Duration, Index, Int, Name, PointRef, Str
from unitrace.model.kinds import KINDS
from unitrace.model.probe import (
    AggregateAction,
    KernelTarget,
    PrintAction,
    Site,
    StackAction,
    SyscallTarget,
    TracepointTarget,
    UserTarget,
    WatchTarget,
)

ROOT = Path(__file__).resolve().parent.parent


def one(text: str):  # type: ignore[no-untyped-def]
    program = resolve(parse_probe_args([text]))
    assert len(program.probes) == 1
    return program.probes[0]


def error_of(text: str, source_is_file: bool = False) -> str:
    with pytest.raises(ProbeError) as info:
        if source_is_file:
            resolve(parse_program(text, "budget.ut"))
        else:
            resolve(parse_probe_args([text]))
    return info.value.render()


def test_points_of_every_kind() -> None:
    assert one("syscall:openat,read").points[0].target.names == ("openat", "read")  # type: ignore[union-attr]
    p = one("kernel:do_sys_openat2%return").points[0]
    assert (p.target, p.site) == (KernelTarget("do_sys_openat2"), Site.RETURN)
    assert one("kretprobe:vfs_read").points[0].site is Site.RETURN
    assert one("tracepoint:sched:sched_process_exec").points[0].target == TracepointTarget(
        "sched", "sched_process_exec")
    assert one("user:/usr/lib/x86_64-linux-gnu/libc.so.6:free").points[0].target == UserTarget(
        "/usr/lib/x86_64-linux-gnu/libc.so.6", "free")
    assert one("user:malloc").points[0].target == UserTarget("", "malloc")
    assert [p.target for p in one("user:libc:malloc,free").points] == [UserTarget("libc", "malloc"),
                                                                       UserTarget("libc", "free")]
    assert one("watch:&counter:8:w").points[0].target == WatchTarget(None, "counter", 8, "w")
    assert one("watch:0x7ffd1234:4:rw").points[0].target == WatchTarget(0x7FFD1234, None, 4, "rw")
    assert [str(p) for p in one("syscall:openat, syscall:read").points] == ["syscall:openat", "syscall:read"]


def test_syscall_patterns_resolve_against_the_table() -> None:
    names = one("syscall:open*").points[0].target.names  # type: ignore[union-attr]
    assert {"open", "openat", "openat2", "open_by_handle_at"} <= set(names)
    assert "openat" in one("syscall:%file").points[0].target.names  # type: ignore[union-attr]
    assert set(one("syscall:/^(open|stat)$/").points[0].target.names) == {"open", "stat"}  # type: ignore[union-attr]
    assert isinstance(one("syscall:openat").points[0].target, SyscallTarget)


def test_predicates_and_constants() -> None:
    pred = one('syscall:openat /comm == "cat" && errno == ENOENT/').predicate
    assert pred == Binary(pred.span, "&&", Binary(pred.span, "==", Name(pred.span, "comm"), Str(pred.span, "cat")),
                          Binary(pred.span, "==", Name(pred.span, "errno"), Int(pred.span, 2)))
    assert format_expr(one("syscall:openat /flags & O_CREAT/").predicate) == "flags & 64"
    assert format_expr(one("syscall:nanosleep /duration > 1ms/").predicate) == "duration > 1ms"
    assert one("syscall:nanosleep /duration > 1ms/").predicate.right == Duration(  # type: ignore[union-attr]
        pred.span, 1_000_000, "1ms")
    assert format_expr(one("syscall:read /(arg2 / 2) > 10 || !(pid == 1)/").predicate) == \
        "arg2 / 2 > 10 || !(pid == 1)"
    assert format_expr(parse_predicate("a - (b - c)")) == "a - (b - c)"
    assert format_expr(parse_predicate("(a || b) && c")) == "(a || b) && c"


def test_actions() -> None:
    acts = one("syscall:openat { print; stack; kstack }").actions
    assert [type(a) for a in acts] == [PrintAction, StackAction, StackAction]
    assert [a.which for a in acts[1:]] == ["user", "kernel"]  # type: ignore[union-attr]
    a = one("syscall:write { @bytes[comm] = sum(arg2); }").actions[0]
    assert isinstance(a, AggregateAction) and (a.func, a.name) == ("sum", "bytes")
    assert a.keys == (Name(a.span, "comm"),)
    a = one("syscall:%file { count() by comm }").actions[0]
    assert isinstance(a, AggregateAction) and a.func == "count" and a.value is None
    a = one("user:libc:malloc { lhist(arg0, 0, 4096, 256) }").actions[0]
    assert isinstance(a, AggregateAction) and a.params == (0, 4096, 256)
    assert one("syscall:openat").actions == (PrintAction(),)


def test_probe_file_with_metadata_and_assertions() -> None:
    prog = resolve(parse_program(
        'description "budget"\nrequires ptrace, tracefs\nbackend auto\n'
        "syscall:openat { count() }\n"
        "assert count(syscall:openat) <= 200   # a comment\n"
        "assert p99(duration(syscall:write)) < 2ms\n"
        'assert count(syscall:openat) by comm["cc1"] <= 40\n', "budget.ut"))
    assert prog.meta == (("description", "budget"), ("requires", "ptrace,tracefs"), ("backend", "auto"))
    texts = [a.text for a in prog.assertions]
    assert texts == ["assert count(syscall:openat) <= 200", "assert p99(duration(syscall:write)) < 2ms",
                     'assert count(syscall:openat) by comm["cc1"] <= 40']
    by = prog.assertions[2].expr.left  # type: ignore[attr-defined]
    assert isinstance(by, Call) and by.func == "by"
    assert isinstance(by.args[0], Call) and isinstance(by.args[0].args[0], PointRef)
    assert isinstance(by.args[1], Index)


DIAGNOSTICS = [
    ("syscall:opneat",
     "<command line>:1:9: error: unknown syscall 'opneat'\nsyscall:opneat\n        ^~~~~~\n"
     "hint: did you mean openat, openat2, connect?"),
    ("sycall:openat",
     "<command line>:1:1: error: unknown probe kind 'sycall'\nsycall:openat\n^~~~~~\nhint: did you mean syscall?"),
    ("kernel:foo /ret > 0/",
     "<command line>:1:13: error: ret is known only where the function returns\nkernel:foo /ret > 0/\n"
     "            ^~~\nhint: probe the return site: add %return to the point"),
    ("syscall:openat { cont() }",
     "<command line>:1:18: error: unknown action 'cont'\nsyscall:openat { cont() }\n                 ^~~~\n"
     "hint: actions: print, stack, kstack, count, sum, min, max, avg, hist, lhist, @name = ..."),
    ("syscall:openat /comm == /",
     "<command line>:1:25: error: expected a value, found '/'\nsyscall:openat /comm == /\n"
     "                        ^"),
    ('syscall:openat /comm == "x', "<command line>:1:25: error: unterminated string\n"
     'syscall:openat /comm == "x\n                        ^~'),
    ("watch:&x:3:w", "<command line>:1:10: error: watchpoint length must be 1, 2, 4 or 8 bytes, not '3'\n"
     "watch:&x:3:w\n         ^\nhint: x86 debug registers watch aligned 1, 2, 4 or 8 bytes"),
]


@pytest.mark.parametrize(("text", "expected"), DIAGNOSTICS)
def test_diagnostics_exact_text(text: str, expected: str) -> None:
    assert error_of(text) == expected


def test_diagnostic_in_a_file_points_at_its_line() -> None:
    text = error_of("syscall:openat\n\nsyscall:read /bogus == 1/\n", source_is_file=True)
    assert text.startswith("budget.ut:3:15: error: unknown name 'bogus'\nsyscall:read /bogus == 1/\n"
                           "              ^~~~~")


def test_the_second_command_line_argument_is_located() -> None:
    with pytest.raises(ProbeError) as info:
        resolve(parse_probe_args(["syscall:openat", "syscall:opneat"]))
    assert str(info.value.span) == "<command line>:2:9"


def test_registry_is_complete() -> None:
    from unitrace.backends import BACKENDS, BackendMissing, load_backend
    from unitrace.plan.planner import PREFERENCE

    assert set(KINDS) == set(PREFERENCE)
    for spec in KINDS.values():
        program = resolve(parse_probe_args([spec.example]))
        point = program.probes[0].points[0]
        assert point.kind == spec.name
        for name in BACKENDS:
            try:
                backend = load_backend(name)
            except BackendMissing:
                continue
            reason = backend.unsupported_reason(point)
            if spec.name in backend.kinds:
                assert reason is None or isinstance(reason, str)
            else:
                assert reason, f"{name} must say why it cannot compile {spec.name} probes"


def _examples(path: Path) -> list[str]:
    return re.findall(r"```unitrace\n(.*?)```", path.read_text(), re.S)


@pytest.mark.parametrize("doc", ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")
                                                   if "```unitrace" in p.read_text())])
def test_every_documented_example_parses(doc: str) -> None:
    blocks = _examples(ROOT / doc)
    if doc == "docs/language.md":
        assert len(blocks) >= 4
    for block in blocks:
        resolve(parse_program(block, doc))


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(ProbeError):
        parse_predicate("(" * 5000 + "1" + ")" * 5000)
    with pytest.raises(ProbeError):
        parse_predicate("!" * 5000 + "1")


def test_a_list_goes_on_after_a_comma_at_the_end_of_a_line_and_assert_text_ends_at_its_expression() -> None:
    prog = resolve(parse_program('syscall:openat,\n   syscall:read { count() }\n'
                                 'assert count(syscall:openat) by comm["a#b"] <= 3  # why\n', "x.ut"))
    assert [str(p) for p in prog.probes[0].points] == ["syscall:openat", "syscall:read"]
    assert prog.assertions[0].text == 'assert count(syscall:openat) by comm["a#b"] <= 3'


@pytest.mark.parametrize(("text", "name", "nkeys"), [
    ("syscall:openat { @n = count() }", "n", 0),
    ("syscall:openat { @n=count() }", "n", 0),
    ("syscall:openat { @n[comm] = count() }", "n", 1),
    ("syscall:openat { @ = count() }", "", 0),
    ("syscall:openat { @[comm, pid] = hist(arg2) }", "", 2),
])
def test_map_assignment_spacing(text: str, name: str, nkeys: int) -> None:
    (action,) = parse_program(text).probes[0].actions
    assert (action.name, len(action.keys)) == (name, nkeys)
