"""The strace line format, driven by hand-made events. Every expected line below was produced by strace 6.1
on this machine for the same situation (the session in which each was checked is named in the test)."""

from __future__ import annotations

import io
import os
import time

from unitrace.events import Event
from unitrace.events import EventKind as K
from unitrace.sinks.strace_text import StraceTextOptions, StraceTextSink

# which calls print arguments at exit (the decoder's knowledge; strace's read prints its buffer at exit,
# accept and futex print everything at entry)
AT_EXIT = {"read", "wait4", "pipe2", "clone"}


def sink(**kw: object) -> tuple[StraceTextSink, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    tids = kw.pop("tids", (100,))
    s = StraceTextSink(StraceTextOptions(**kw), out=out, notices=err,  # type: ignore[arg-type]
                       prints_at_exit=AT_EXIT.__contains__, initial_tids=tids)  # type: ignore[arg-type]
    return s, out, err


def sc(tid: int, name: str, *args: str, ret: int | None = 0, text: str = "", errno: int = 0,
       ts: int = 0, dur: int | None = None, kind: K = K.SYSCALL) -> Event:
    return Event(kind, ts, tid, tid, name, args=args, ret=ret, ret_text=text, errno=errno, duration_ns=dur)


def test_return_value_aligned_at_column_40_and_long_lines_get_one_space() -> None:
    s, out, _ = sink()
    s.feed([sc(100, "close", "3"),
            sc(100, "openat", "AT_FDCWD", '"/nonexist/some/long/path/name"', "O_RDONLY", ret=-1,
               text="-1 ENOENT (No such file or directory)", errno=2)])
    s.close()
    assert out.getvalue() == (
        "close(3)                                = 0\n"
        'openat(AT_FDCWD, "/nonexist/some/long/path/name", O_RDONLY) = -1 ENOENT (No such file or directory)\n')


def test_fork_interleaving_unfinished_resumed_and_pid_prefix() -> None:
    # strace -f -e trace=write,clone,wait4,exit_group sh -c '(echo x)'
    s, out, err = sink(follow=1)
    s.feed([sc(100, "close", "3"), Event(K.FORK, 0, 100, 100, "clone", fields={"child": 101})])
    s.feed([
        sc(100, "wait4", "-1", kind=K.SYSCALL_ENTER, ret=None),
        sc(101, "write", "1", '"x\\n"', "2", ret=2),
        sc(101, "exit_group", "0", kind=K.SYSCALL_ENTER, ret=None),
        Event(K.EXIT, 0, 101, 101, ret=0),
        sc(100, "wait4", "-1", "[{WIFEXITED(s) && WEXITSTATUS(s) == 0}]", "0", "NULL", ret=101,
           kind=K.SYSCALL_RESUMED),
        Event(K.SIGNAL, 0, 100, 100, "SIGCHLD", fields={"siginfo": "{si_signo=SIGCHLD, si_code=CLD_EXITED}"}),
        sc(100, "exit_group", "0", ret=None),
        Event(K.EXIT, 0, 100, 100, ret=0),
    ])
    s.close()
    assert out.getvalue() == (
        "close(3)                                = 0\n"
        "[pid   100] wait4(-1,  <unfinished ...>\n"
        '[pid   101] write(1, "x\\n", 2)          = 2\n'
        "[pid   101] exit_group(0)               = ?\n"
        "[pid   101] +++ exited with 0 +++\n"
        "<... wait4 resumed>[{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = 101\n"
        "--- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED} ---\n"
        "exit_group(0)                           = ?\n"
        "+++ exited with 0 +++\n")
    assert err.getvalue() == "strace: Process 101 attached\n"


def test_entry_then_exit_of_the_same_thread_makes_one_line() -> None:
    s, out, _ = sink()
    s.feed([sc(100, "read", "0", kind=K.SYSCALL_ENTER, ret=None)])
    assert out.getvalue() == "read(0, "  # written at once, as strace does while the call blocks
    s.feed([sc(100, "read", "0", '"hi\\n"', "1024", ret=3, kind=K.SYSCALL_RESUMED)])
    s.close()
    body = 'read(0, "hi\\n", 1024) '
    assert out.getvalue() == body.ljust(40) + "= 3\n"
    assert out.getvalue().index("= 3") == 40


def test_output_file_under_f_prefixes_every_line_with_the_pid() -> None:
    # strace -f -o FILE: "10823 wait4(-1, 0x7ffff864078c, WNOHANG, NULL) = 0"
    s, out, _ = sink(follow=1, output_path="unused", pid_prefix=True)
    s.feed([sc(10823, "wait4", "-1", "0x7ffff864078c", "WNOHANG", "NULL"),
            sc(10824, "exit_group", "0", ret=None), Event(K.EXIT, 0, 10824, 10824, ret=0)])
    s.close()
    assert out.getvalue() == (
        "10823 wait4(-1, 0x7ffff864078c, WNOHANG, NULL) = 0\n"
        "10824 exit_group(0)                     = ?\n"
        "10824 +++ exited with 0 +++\n")


def test_per_thread_files_with_ff(tmp_path: object) -> None:
    base = os.path.join(str(tmp_path), "trace")
    s = StraceTextSink(StraceTextOptions(follow=2, output_path=base), notices=io.StringIO(),
                       prints_at_exit=AT_EXIT.__contains__, initial_tids=(7,))
    s.feed([sc(7, "close", "3"), sc(8, "read", "0", kind=K.SYSCALL_ENTER, ret=None), sc(7, "close", "4"),
            sc(8, "read", "0", '""', "1", kind=K.SYSCALL_RESUMED)])
    s.close()
    with open(f"{base}.7") as f7, open(f"{base}.8") as f8:
        assert f7.read() == "close(3)                                = 0\nclose(4)                                = 0\n"
        # no other thread shares the file, so nothing cuts the line
        assert f8.read() == 'read(0, "", 1)                          = 0\n'


def test_timestamps_t_tt_ttt_r_and_T() -> None:
    ts = 1_795_345_759_753_423_000
    hms = time.strftime("%H:%M:%S", time.localtime(ts // 1_000_000_000))
    for level, lead in ((1, f"{hms} "), (2, f"{hms}.753423 "), (3, "1795345759.753423 ")):
        s, out, _ = sink(timestamps=level, syscall_times=True)
        s.feed([sc(100, "close", "1", ts=ts, dur=8_000)])
        s.close()
        body = "close(1)"
        assert out.getvalue() == f"{lead}{body}{' ' * (40 - len(lead) - len(body))}= 0 <0.000008>\n"
    s, out, _ = sink(relative=True)
    s.feed([sc(100, "close", "1", ts=ts), sc(100, "close", "2", ts=ts + 29_000)])
    s.close()
    assert out.getvalue() == ("     0.000000 close(1)                  = 0\n"
                              "     0.000029 close(2)                  = 0\n")


def test_killed_by_signal_and_dying_inside_a_syscall() -> None:
    s, out, _ = sink(follow=1, tids=(100, 101))
    s.feed([sc(101, "futex", "0x7f0", "FUTEX_WAIT_PRIVATE", "0", "NULL", kind=K.SYSCALL_ENTER, ret=None),
            sc(100, "read", "0", kind=K.SYSCALL_ENTER, ret=None),
            Event(K.EXIT, 0, 101, 101, fields={"signal": "SIGKILL"}),
            Event(K.EXIT, 0, 100, 100, fields={"signal": "SIGSEGV", "core": True})])
    s.close()
    assert out.getvalue() == (
        "[pid   101] futex(0x7f0, FUTEX_WAIT_PRIVATE, 0, NULL <unfinished ...>\n"
        "[pid   100] read(0,  <unfinished ...>\n"
        f"{'[pid   101] <... futex resumed>) ':<40}= ?\n"
        "[pid   101] +++ killed by SIGKILL +++\n"
        f"{'<... read resumed>) ':<40}= ?\n"  # one tracee left: no prefix
        "+++ killed by SIGSEGV (core dumped) +++\n")


def test_status_filter_prints_whole_lines_only() -> None:
    s, out, _ = sink(follow=1, tids=(100, 101), status=frozenset({"failed"}))
    s.feed([sc(100, "read", "3", kind=K.SYSCALL_ENTER, ret=None),
            sc(101, "close", "9", ret=-1, text="-1 EBADF (Bad file descriptor)", errno=9),
            sc(101, "close", "1"),
            sc(100, "read", "3", '""', "10", ret=-1, text="-1 EAGAIN (Resource temporarily unavailable)",
               errno=11, kind=K.SYSCALL_RESUMED)])
    s.close()
    assert out.getvalue() == (
        "[pid   101] close(9)                    = -1 EBADF (Bad file descriptor)\n"
        '[pid   100] read(3, "", 10)             = -1 EAGAIN (Resource temporarily unavailable)\n')


def test_quiet_levels() -> None:
    s, out, err = sink(follow=1, quiet=2)
    s.feed([Event(K.FORK, 0, 100, 100, fields={"child": 101}), Event(K.EXIT, 0, 101, 101, ret=0),
            Event(K.EXIT, 0, 100, 100, ret=3)])
    s.close()
    assert out.getvalue() == "" and err.getvalue() == ""
    s, out, err = sink()
    s.feed([Event(K.EXIT, 0, 100, 100, ret=3)])
    s.close()
    assert out.getvalue() == "+++ exited with 3 +++\n"


def test_a_line_open_when_tracing_stops_is_ended_as_unfinished() -> None:
    s, out, _ = sink()
    s.feed([sc(100, "read", "0", kind=K.SYSCALL_ENTER, ret=None)])
    s.close()
    assert out.getvalue() == "read(0,  <unfinished ...>\n"


def test_zero_entry_args_and_an_exec_from_a_thread() -> None:
    s, out, _ = sink(follow=1, tids=(100, 102))
    s.feed([sc(100, "pipe2", kind=K.SYSCALL_ENTER, ret=None), sc(102, "close", "5"),
            sc(100, "pipe2", "[3, 4]", "0", kind=K.SYSCALL_RESUMED),
            Event(K.EXEC, 0, 100, 100, fields={"filename": "/bin/true", "old_tid": 102})])
    s.close()
    assert out.getvalue() == (
        "[pid   100] pipe2( <unfinished ...>\n"
        "[pid   102] close(5)                    = 0\n"
        "[pid   100] <... pipe2 resumed>[3, 4], 0) = 0\n"
        "[pid   102] +++ superseded by execve in pid 100 +++\n")


def test_clone_defers_its_separator_and_all_known_args_get_none() -> None:
    # strace -f on tests/progs/strace/forkserver.c (strace 6.1)
    s, out, _ = sink(follow=1, tids=(19313, 19314))
    s.feed([sc(19313, "clone", "child_stack=NULL", "flags=CLONE_CHILD_SETTID|SIGCHLD", kind=K.SYSCALL_ENTER,
               ret=None),
            sc(19314, "accept", "3", "NULL", "NULL", kind=K.SYSCALL_ENTER, ret=None),
            sc(19313, "clone", "child_stack=NULL", "flags=CLONE_CHILD_SETTID|SIGCHLD", "child_tidptr=0x7f68",
               ret=19315, kind=K.SYSCALL_RESUMED)])
    s.close()
    assert out.getvalue() == (
        "[pid 19313] clone(child_stack=NULL, flags=CLONE_CHILD_SETTID|SIGCHLD <unfinished ...>\n"
        "[pid 19314] accept(3, NULL, NULL <unfinished ...>\n"
        "[pid 19313] <... clone resumed>, child_tidptr=0x7f68) = 19315\n")
