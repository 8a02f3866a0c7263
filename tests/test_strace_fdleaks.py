"""The descriptor tables behind --fd-leaks and -P, driven by hand-made events (the live check against
/proc is in test_strace_progs.py)."""

from __future__ import annotations

import io

from unitrace.cli.strace import EventFilter
from unitrace.events import Event
from unitrace.events import EventKind as K
from unitrace.fdleaks import FdLeakSink, FdTracker, leading_int, unquote


def call(pid: int, name: str, *args: str, ret: int = 0, errno: int = 0) -> Event:
    return Event(K.SYSCALL, 0, pid, pid, name, args=args, ret=ret, errno=errno)


def test_unquote_and_leading_int() -> None:
    assert unquote('"/tmp/a b"') == "/tmp/a b"
    assert unquote('"a\\nb\\x41\\101\\"q"') == 'a\nbAA"q'
    assert unquote("AT_FDCWD") == "AT_FDCWD"
    assert leading_int("3</etc/passwd>") == 3 and leading_int("-1") == -1 and leading_int("NULL") is None


def test_table_follows_open_dup_pipe_fcntl_close_fork_and_exec() -> None:
    t = FdTracker()
    t.feed([
        call(1, "openat", "AT_FDCWD", '"/etc/passwd"', "O_RDONLY", ret=3),
        call(1, "openat", "AT_FDCWD", '"/etc/group"', "O_RDONLY|O_CLOEXEC", ret=4),
        call(1, "openat", "AT_FDCWD", '"/nope"', "O_RDONLY", ret=-1, errno=2),
        call(1, "pipe2", "[5, 6]", "0"),
        call(1, "dup", "4", ret=7),
        call(1, "fcntl", "3", "F_SETFD", "FD_CLOEXEC"),
        call(1, "fcntl", "4", "F_DUPFD_CLOEXEC", "10", ret=10),
        call(1, "socket", "AF_UNIX", "SOCK_STREAM|SOCK_CLOEXEC", "0", ret=8),
        call(1, "close", "5"),
        Event(K.FORK, 0, 1, 1, fields={"child": 2}),
        call(1, "close", "6"),
    ])
    assert sorted(t.tables[1]) == [3, 4, 7, 8, 10]
    assert t.path_of(1, 7) == "/etc/group" and not t.tables[1][7].cloexec  # dup drops CLOEXEC
    assert t.tables[1][3].cloexec and t.tables[1][10].cloexec and t.tables[1][8].cloexec
    survivors = t.exec(2)  # the child got the table as it was at fork: 6 still open there
    assert [e.fd for e in survivors] == [6, 7]
    assert survivors[0].how == "pipe2([5, 6], 0) = 0"


def test_leak_report_without_proc_check() -> None:
    out = io.StringIO()
    sink = FdLeakSink(out, check_proc=False)
    sink.feed([
        call(1, "openat", "AT_FDCWD", '"/etc/passwd"', "O_RDONLY", ret=3),
        call(1, "openat", "AT_FDCWD", '"/etc/group"', "O_RDONLY|O_CLOEXEC", ret=4),
        Event(K.EXEC, 0, 1, 1, fields={"filename": "/bin/true"}),
        call(1, "execve", '"/bin/true"', '["true"]', "0x7ffc /* 3 vars */"),
    ])
    sink.close(None)
    assert out.getvalue() == (
        "fd leaks: descriptors inherited across execve without O_CLOEXEC\n"
        '  pid 1 execve("/bin/true") inherits:\n'
        '    fd 3 -> /etc/passwd: opened by pid 1 with openat(AT_FDCWD, "/etc/passwd", O_RDONLY) = 3'
        " [/proc: unchecked]\n"
        "  1 execve checked, 1 descriptor(s) inherited without O_CLOEXEC\n")


def test_trace_path_keeps_calls_on_the_path_and_on_its_descriptors() -> None:
    f = EventFilter(None, None, ["/etc/hostname"], {"read": (0,), "close": (0,), "fstat": (0,)})
    batch = [
        call(1, "openat", "AT_FDCWD", '"/etc/passwd"', "O_RDONLY", ret=3),
        call(1, "openat", "AT_FDCWD", '"/etc/hostname"', "O_RDONLY", ret=4),
        call(1, "read", "3", '"root"', "4", ret=4),
        call(1, "read", "4", '"host"', "4", ret=4),
        call(1, "close", "4"),
        call(1, "read", "4", "0x1", "4", ret=-1, errno=9),
    ]
    kept = []
    for ev in batch:
        kept += f([ev])
    assert [(e.name, e.args[0]) for e in kept] == [("openat", "AT_FDCWD"), ("read", "4"), ("close", "4")]
