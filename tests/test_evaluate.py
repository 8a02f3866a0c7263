"""User-space evaluation of expressions: names, strings, globs, constants, arithmetic, missing values, errors."""

from __future__ import annotations

import os

import pytest

from unitrace.errors import ProbeError, Span
from unitrace.events import Event, EventKind
from unitrace.lang import parse_predicate
from unitrace.model.evaluate import compile_expr, predicate, unquote
from unitrace.model.expr import Binary, Call, Index, Int, Name, PointRef, Str, Unary

S = Span(1, 1)


def openat(path: str = "/etc/passwd", *, ret: int = 3, errno: int = 0, comm: str = "cat", **kw: object) -> Event:
    quoted = '"' + path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return Event(EventKind.SYSCALL, 1_000, 40, 41, "openat", probe=0, cpu=1, comm=comm,
                 args=("AT_FDCWD", quoted, "O_RDONLY|O_CLOEXEC"), raw_args=(0xFFFFFF9C, 0x7FFC0000, 0o2000000, 0),
                 ret=ret, errno=errno, duration_ns=2_500, **kw)  # type: ignore[arg-type]


def holds(text: str, ev: Event, **kw: object) -> bool:
    return predicate(parse_predicate(text), **kw)(ev)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "expected"), [
    ("pid == 40 && tid == 41 && cpu == 1 && ts == 1000", True),
    ('comm == "cat" && func == "openat"', True),
    ("ret == 3 && errno == 0 && duration == 2500", True),
    ("duration > 2us && duration < 3us", True),
    ("arg0 == 0xFFFFFF9C && arg3 == 0", True),
    ("arg7 == 0", False),  # an argument the event does not have is missing, never 0
    ("arg7 != 0", True),
    ("flags & O_CLOEXEC", True),  # a parameter name, at its position in the syscall table
    ("flags & O_CREAT", False),
    ("dfd == arg0 && mode == 0", True),
    ("count == 0", False),  # a parameter openat does not have
    ('probe == "syscall:openat"', True),
    ("!(pid == 40) || comm == \"x\"", False),
    ("-ret == -3 && ~0 == -1", True),
])
def test_names(text: str, expected: bool) -> None:
    assert holds(text, openat()) is expected


def test_strings_compare_with_the_decoded_text_unquoted_or_the_captured_value() -> None:
    assert holds('filename == "/etc/passwd"', openat())
    assert not holds('filename == "/etc/passw"', openat())
    assert holds('filename != "/etc/shadow"', openat())
    assert holds('filename == "/tmp/a\\"b\\nc"', openat('/tmp/a"b\nc'))  # strace's escapes undone
    assert holds('arg1 == "/etc/passwd"', openat())
    # a value the backend captured wins over the decoded text (BPF and ftrace read the string themselves)
    captured = openat(fields={"filename": "/real/path"})
    assert holds('filename == "/real/path"', captured)
    assert holds('filename == "/real/*"', openat(fields={"filename": b"/real/\xff"}))
    assert holds('prev_comm == "swapper/0"', Event(EventKind.TRACEPOINT, 0, 0, 0, "sched:sched_switch",
                                                  fields={"prev_comm": "swapper/0", "prev_pid": 0}))


@pytest.mark.parametrize(("pattern", "path", "expected"), [
    ("/etc/*", "/etc/passwd", True),
    ("/etc/*", "/etc/ssl/certs/x", True),  # ftrace's * crosses '/' too
    ("/etc/*", "/usr/etc/passwd", False),
    ("/etc/pass??", "/etc/passwd", True),
    ("/etc/pass??", "/etc/passw", False),
    ("/dev/tty[0-9]", "/dev/tty3", True),
    ("/dev/tty[!0-9]", "/dev/tty3", False),
    ("*.SO", "libc.so", False),  # case-sensitive
    ("*", "line\nbreak", True),
])
def test_globs(pattern: str, path: str, expected: bool) -> None:
    assert holds(f'filename == "{pattern}"', openat(path)) is expected
    assert holds(f'filename != "{pattern}"', openat(path)) is not expected


def test_glob_on_comm_and_on_the_left() -> None:
    ev = openat(comm="kworker/3:1")
    assert holds('comm == "kworker/*"', ev)
    assert predicate(Binary(S, "==", Str(S, "kw*"), Name(S, "comm")))(ev)


def test_constants_by_name_without_the_resolve_pass() -> None:
    failed = openat(ret=-1, errno=2)
    tree = Binary(S, "==", Name(S, "errno"), Name(S, "ENOENT"))  # what a hand-built tree looks like
    assert predicate(tree)(failed)
    assert not predicate(tree)(openat())
    assert compile_expr(Name(S, "SIGKILL"))(failed) == 9
    assert compile_expr(Name(S, "O_CREAT"))(failed) == 0o100


@pytest.mark.parametrize(("text", "value"), [
    ("7 / 2", 3), ("-7 / 2", -3), ("7 / -2", -3), ("-7 % 3", -1), ("7 % -3", 1),  # C: truncate toward zero
    ("1 << 4", 16), ("0xF0 >> 4", 15), ("6 & 3", 2), ("6 | 3", 7), ("6 ^ 3", 5), ("2 + 3 * 4", 14),
    ("1K", 1024), ("1ms", 1_000_000),
])
def test_arithmetic(text: str, value: int) -> None:
    assert compile_expr(parse_predicate(text))(openat()) == value


def test_missing_values_make_comparisons_false_and_arithmetic_none() -> None:
    entry = Event(EventKind.SYSCALL_ENTER, 0, 1, 1, "read", raw_args=(3, 0, 10))
    assert compile_expr(parse_predicate("ret + 1"))(entry) is None
    assert compile_expr(parse_predicate("(count / 0)"))(entry) is None
    assert not holds("ret > 0", entry) and not holds("ret < 0", entry) and not holds("ret == 0", entry)
    assert holds("count == 10 && fd == 3", entry)
    assert not holds('comm < 3', entry)  # a string never orders against a number


def test_uid_from_fields_or_proc() -> None:
    me = Event(EventKind.SYSCALL, 0, os.getpid(), os.getpid(), "getpid")
    assert compile_expr(Name(S, "uid"))(me) == os.getuid()
    assert compile_expr(Name(S, "ppid"))(me) == os.getppid()
    assert compile_expr(Name(S, "uid"))(Event(EventKind.SYSCALL, 0, 1, 1, "x", fields={"uid": 77})) == 77
    gone = Event(EventKind.SYSCALL, 0, 2**22 + 12345, 1, "x")  # above pid_max: no such process
    assert compile_expr(Name(S, "uid"))(gone) is None
    assert not holds("uid == 0", gone)


def test_probe_names_when_given() -> None:
    ev = Event(EventKind.CALL, 0, 1, 1, "malloc", probe=1)
    assert compile_expr(Name(S, "probe"), probe_names=["syscall:read", "user:libc:malloc"])(ev) == "user:libc:malloc"
    assert holds('probe == "user:*"', ev, probe_names=["a", "user:libc:malloc"])


def test_unevaluable_nodes_are_located_errors() -> None:
    text = "count(syscall:openat) > 3"
    bad = Binary(S, ">", Call(Span(1, 1, 21), "count", (PointRef(Span(1, 7, 14), "syscall:openat"),)),
                 Int(S, 3))
    with pytest.raises(ProbeError) as info:
        predicate(bad, text=text)
    rendered = info.value.render()
    assert "1:1: error: call expressions cannot be evaluated on an event" in rendered
    assert rendered.splitlines()[1:3] == [text, "^" + "~" * 20]
    with pytest.raises(ProbeError, match="index expressions"):
        compile_expr(Index(S, Name(S, "comm"), Str(S, "x")))
    with pytest.raises(ProbeError):
        compile_expr(Unary(S, "!", PointRef(S, "syscall:read")))


def test_unquote() -> None:
    assert unquote('"/etc/passwd"') == "/etc/passwd"
    assert unquote('"a\\x41\\101\\t"...') == "aAA\t"  # strace's truncation mark after the quote
    assert unquote("AT_FDCWD") == "AT_FDCWD"
    assert unquote('"') == '"'


def test_compiled_once_then_fast_path_per_event() -> None:
    """The parameter position is looked up once per syscall name, not per event: a changed table after
    the first event does not change the answer (the closure cached it)."""
    from unitrace.model import evaluate

    f = compile_expr(Name(S, "count"))
    read = Event(EventKind.SYSCALL, 0, 1, 1, "read", raw_args=(3, 0, 99))
    assert f(read) == 99
    evaluate._param_positions.cache_clear()
    saved = evaluate._param_positions
    try:
        evaluate._param_positions = lambda: {}  # type: ignore[assignment]
        assert f(read) == 99
        assert compile_expr(Name(S, "count"))(read) is None  # a new closure looks it up again
    finally:
        evaluate._param_positions = saved
