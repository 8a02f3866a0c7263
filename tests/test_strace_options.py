"""strace's flags with strace's meaning: the parser, the -e sets, and the errors (exit 2, one message)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from unitrace.cli.strace import parse_argv, resolve_signal_set, resolve_trace_set, validate
from unitrace.errors import UnitraceError

NAMES = ["read", "write", "open", "openat", "close", "stat", "fstat", "lstat", "newfstatat", "statfs",
         "fstatfs", "socket", "connect", "clone", "execve", "mmap", "kill"]
CLASSES = {
    "file": frozenset({"open", "openat", "stat", "lstat", "newfstatat", "statfs", "execve"}),
    "desc": frozenset({"read", "write", "close", "fstat", "fstatfs", "openat", "mmap"}),
    "net": frozenset({"socket", "connect"}),
    "process": frozenset({"clone", "execve", "kill"}),
    "stat": frozenset({"stat"}), "%stat": frozenset({"stat", "fstat", "lstat", "newfstatat"}),
}


def test_clustered_and_counted_flags_and_glued_arguments() -> None:
    cfg = parse_argv(["-fftttTxxyyqq", "-s100", "-o", "out", "-p", "12,13", "-p14", "ls", "-l", "-f"])
    assert (cfg.follow, cfg.timestamps, cfg.syscall_times, cfg.hex_strings, cfg.decode_fds, cfg.quiet) == (
        2, 3, True, 2, 2, 2)
    assert cfg.string_limit == 100 and cfg.output == "out" and cfg.pids == [12, 13, 14]
    assert cfg.command == ["ls", "-l", "-f"]  # options stop at the command, as strace's do


def test_long_options_and_double_dash() -> None:
    cfg = parse_argv(["--follow-forks", "--output=x", "--summary-sort-by", "calls", "--trace=%file",
                      "--seccomp-bpf", "--kill-on-exit", "--backend=ptrace", "--", "-weird-cmd"])
    assert cfg.follow == 1 and cfg.output == "x" and cfg.sort_by == "calls"
    assert cfg.trace_exprs == ["%file"] and cfg.seccomp is True and cfg.kill_on_exit
    assert cfg.command == ["-weird-cmd"]
    assert parse_argv(["--no-seccomp-bpf", "true"]).seccomp is False


def test_e_qualifiers() -> None:
    cfg = parse_argv(["-e", "open,close", "-e", "trace=!read", "-e", "signal=!SIGCHLD", "-e", "status=!failed",
                      "-z", "true"])
    assert cfg.trace_exprs == ["open,close", "!read"] and cfg.signal_exprs == ["!SIGCHLD"]
    assert cfg.status == frozenset({"successful"})  # -z came last
    assert parse_argv(["-Z", "x"]).status == frozenset({"failed"})
    assert parse_argv(["-e", "status=!failed", "x"]).status == frozenset(
        {"successful", "unfinished", "unavailable", "detached"})
    warned = parse_argv(["-z", "-Z", "x"])
    assert warned.status == frozenset({"failed"}) and "Only the last" in warned.warnings[0]


@pytest.mark.parametrize(("argv", "message"), [
    (["--bogus", "true"], "unrecognized option '--bogus'"),
    (["-j", "true"], "invalid option -- 'j'"),
    (["-S", "foo", "true"], "invalid sortby: 'foo'"),
    (["-X", "bad", "true"], "invalid -X argument: 'bad'"),
    (["-s", "-1", "true"], "invalid -s argument: '-1'"),
    (["-e", "status=bogus", "true"], "invalid status 'bogus'"),
    (["-e", "inject=open:error=ENOENT", "true"], "-e inject= is not supported"),
    (["--backend", "dtrace", "true"], "unknown backend 'dtrace'"),
    (["-o"], "option requires an argument -- 'o'"),
    (["-o", "|cat", "true"], "piping the trace"),
])
def test_bad_flags_are_one_clear_error(argv: list[str], message: str) -> None:
    with pytest.raises(UnitraceError) as exc:
        parse_argv(argv)
    assert message in exc.value.message


def test_validate() -> None:
    with pytest.raises(UnitraceError, match="must have PROG"):
        validate(parse_argv(["-f"]))
    cfg = parse_argv(["-k", "true"])
    validate(cfg)  # -k works (tests/test_strace_stack.py)
    assert cfg.stack
    cfg = parse_argv(["-c", "-k", "true"])
    assert not cfg.stack and cfg.warnings == ["-k/--stack-traces has no effect with -c/--summary-only"]
    cfg = parse_argv(["-ff", "true"])
    validate(cfg)
    assert cfg.follow == 1  # -ff without -o is -f, as in strace


def test_trace_sets() -> None:
    rs = lambda *e: resolve_trace_set(list(e), NAMES, CLASSES)  # noqa: E731
    assert rs() is None and rs("all") is None
    assert rs("open,close") == {"open", "close"}
    assert rs("!read,write") == set(NAMES) - {"read", "write"}
    assert rs("/^open") == {"open", "openat"}
    assert rs("%net") == {"socket", "connect"} and rs("%network") == {"socket", "connect"}
    assert rs("%%stat") == {"stat", "fstat", "lstat", "newfstatat"} and rs("%stat") == {"stat"}
    assert rs("?nosuch,close") == {"close"} and rs("?%nosuch") == frozenset()
    assert rs("none") == frozenset()
    assert rs("open", "close") == {"open", "close"}  # several -e trace= add up
    assert rs("file") == CLASSES["file"]  # strace's old spelling of %file
    with pytest.raises(UnitraceError, match="invalid system call 'opne'") as exc:
        rs("opne")
    assert exc.value.hint is not None and "open" in exc.value.hint
    with pytest.raises(UnitraceError, match="invalid system call '%bogus'"):
        rs("%bogus")


def test_signal_sets() -> None:
    by_name = {"SIGINT": 2, "SIGKILL": 9, "SIGCHLD": 17, "SIGSEGV": 11}
    assert resolve_signal_set([], by_name) is None
    assert resolve_signal_set(["!SIGCHLD"], by_name) == {"SIGINT", "SIGKILL", "SIGSEGV"}
    assert resolve_signal_set(["chld,9"], by_name) == {"SIGCHLD", "SIGKILL"}
    with pytest.raises(UnitraceError, match="invalid signal"):
        resolve_signal_set(["SIGNOPE"], by_name)


def run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "unitrace", "strace", *argv], capture_output=True, text=True,
                          timeout=60)


def test_cli_errors_exit_2_with_one_message_and_help_exits_0() -> None:
    r = run_cli("--bogus", "true")
    assert r.returncode == 2 and r.stderr.startswith("unitrace: error: unrecognized option '--bogus'")
    r = run_cli()
    assert r.returncode == 2 and "must have PROG [ARGS] or -p PID" in r.stderr
    r = run_cli("-o", "/dev/null", "grep", "-h", "--help", "x")  # the command's flags are the command's
    assert r.returncode == 0 and "Usage: grep" in r.stdout and "-e trace=SET" not in r.stdout
    r = run_cli("-h")
    assert r.returncode == 0 and "-e trace=SET" in r.stdout
