"""Decoder units against a fake tracee memory; expected texts are strace 6.1's."""

from __future__ import annotations

import struct

import pytest

from tests.decode_support import FakeMemory
from unitrace.decode.api import FormatOptions
from unitrace.decode.errnos import ERRNO_BY_NAME, ERRNO_NAMES, errno_text
from unitrace.decode.signals import SIGNAL_BY_NAME, format_siginfo
from unitrace.decode.strings import quote
from unitrace.decode.syscall import StraceDecoder
from unitrace.decode.table import get_table
from unitrace.errors import UnitraceError


def line(dec: StraceDecoder, mem: FakeMemory, name: str, args: tuple[int, ...], ret: int) -> str:
    call = dec.enter(7, dec.table.by_name[name].nr, args, mem)
    texts, ret_text, _ = dec.exit(call, ret, mem)
    return f"{name}({', '.join(texts)}) = {ret_text}"


def test_table_shapes() -> None:
    t = get_table()
    assert t.by_nr[0].name == "read" and t.by_name["openat"].nr == 257
    assert [p.name for p in t.by_name["openat"].params] == ["dfd", "filename", "flags", "mode"]
    assert {"openat", "execve", "newfstatat"} <= t.classes["file"]
    assert "mmap" in t.classes["memory"] and "read" not in t.classes["file"]
    arm = get_table("arm64")
    assert arm.by_nr[56].name == "openat" and "open" not in arm.by_name
    assert [p.name for p in arm.by_name["clone"].params][3] == "tls"  # CLONE_BACKWARDS
    with pytest.raises(UnitraceError):
        get_table("sparc")


def test_errnos_and_signals() -> None:
    assert ERRNO_NAMES[11] == "EAGAIN" and ERRNO_BY_NAME["EWOULDBLOCK"] == 11
    assert errno_text(2) == "ENOENT (No such file or directory)"
    assert errno_text(512) == "ERESTARTSYS (To be restarted if SA_RESTART is set)"
    assert SIGNAL_BY_NAME["SIGCHLD"] == 17


@pytest.mark.parametrize(("data", "hexs", "expected"), [
    (b"a\x001\x008\t\n", 0, r'"a\0001\08\t\n"'),
    (b"\x7f\xc3\xa9\x08", 0, r'"\177\303\251\10"'),
    (b"\x08" + b"7", 0, r'"\0107"'),
    (b"nodev\tsysfs\n", 1, r'"nodev\tsysfs\n"'),
    (b"ok\x01", 1, r'"\x6f\x6b\x01"'),
    (b"ok", 2, r'"\x6f\x6b"'),
    (b'q"\\', 0, r'"q\"\\"'),
])
def test_quote(data: bytes, hexs: int, expected: str) -> None:
    assert quote(data, hexs) == expected


def test_common_calls() -> None:
    m, d = FakeMemory(), StraceDecoder(FormatOptions())
    p = m.put(b"/etc/ld.so.cache\0")
    assert line(d, m, "openat", (2**64 - 100, p, 0o2000000, 0), 3) == \
        'openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3'
    assert line(d, m, "openat", (2**64 - 100, p, 0o1101, 0o644), -2) == \
        'openat(AT_FDCWD, "/etc/ld.so.cache", O_WRONLY|O_CREAT|O_TRUNC, 0644) = -1 ENOENT (No such file or directory)'
    st = m.put(struct.pack("<QQQIII4xQqqqqqqqqq", 1, 2, 1, 0o100644, 0, 0, 0, 46783, 4096, 8, *([0] * 6)))
    assert line(d, m, "newfstatat", (3, m.put(b"\0"), st, 0x1000), 0) == \
        'newfstatat(3, "", {st_mode=S_IFREG|0644, st_size=46783, ...}, AT_EMPTY_PATH) = 0'
    assert line(d, m, "fstat", (9, st), -9) == f"fstat(9, {st:#x}) = -1 EBADF (Bad file descriptor)"
    assert line(d, m, "mmap", (0, 8192, 3, 0x22, 2**64 - 1, 0), 0x7F0000001000) == \
        "mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000001000"
    buf = m.put(b"x" * 40)
    assert line(d, m, "read", (3, buf, 100), 40) == f'read(3, "{"x" * 32}"..., 100) = 40'
    assert line(d, m, "read", (3, buf, 100), -512) == \
        f"read(3, {buf:#x}, 100) = ? ERESTARTSYS (To be restarted if SA_RESTART is set)"
    argv = m.put(struct.pack("<QQQ", m.put(b"ls\0"), m.put(b"-l\0"), 0))
    env = m.put(struct.pack("<QQ", m.put(b"A=1\0"), 0))
    assert line(d, m, "execve", (m.put(b"/bin/ls\0"), argv, env), 0) == \
        f'execve("/bin/ls", ["ls", "-l"], {env:#x} /* 1 var */) = 0'
    assert line(d, m, "clone", (0x1200011, 0, 0, 0x7F00AABB, 0), 1234) == \
        "clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f00aabb) = 1234"
    sa = m.put(struct.pack("<QQQQ", 0x5555, 0x14000000, 0x7F00, (1 << 1) | (1 << 14)))
    assert line(d, m, "rt_sigaction", (2, sa, 0, 8), 0) == \
        "rt_sigaction(SIGINT, {sa_handler=0x5555, sa_mask=[INT TERM], sa_flags=SA_RESTORER|SA_RESTART, " \
        "sa_restorer=0x7f00}, NULL, 8) = 0"
    unknown = d.enter(7, 600, (1, 2, 3, 4, 5, 6), m)
    assert d.exit(unknown, 0, m)[0] == ("0x1", "0x2", "0x3", "0x4", "0x5", "0x6")


def test_entry_args_stop_at_first_out_argument() -> None:
    m, d = FakeMemory(), StraceDecoder(FormatOptions())
    call = d.enter(7, 0, (3, 0x1000, 10), m)
    assert call.entry_args() == ("3",)


def test_decode_false_is_raw() -> None:
    m, d = FakeMemory(), StraceDecoder(FormatOptions(decode=False))
    call = d.enter(7, 2, (0x1000, 0, 0), m)
    assert d.exit(call, -2, m) == ((), "-2", 2)


def test_xlat_modes() -> None:
    m = FakeMemory()
    raw = StraceDecoder(FormatOptions(xlat="raw"))
    verbose = StraceDecoder(FormatOptions(xlat="verbose"))
    assert line(raw, m, "mprotect", (0x1000, 4096, 1), 0) == "mprotect(0x1000, 4096, 0x1) = 0"
    assert line(verbose, m, "mprotect", (0x1000, 4096, 3), 0) == \
        "mprotect(0x1000, 4096, 0x3 /* PROT_READ|PROT_WRITE */) = 0"


def test_siginfo() -> None:
    chld = struct.pack("<iiiiiIiiqq", 17, 0, 1, 0, 123, 0, 3, 0, 2, 0)
    assert format_siginfo(chld) == ("{si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=123, si_uid=0, si_status=3, "
                                    "si_utime=2 /* 0.02 s */, si_stime=0}")
    segv = struct.pack("<iiiiQ", 11, 0, 1, 0, 0x10)
    assert format_siginfo(segv) == "{si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x10}"
    queued = struct.pack("<iiiiiIQ", 12, 0, -1, 0, 99, 0, 42)
    assert format_siginfo(queued) == \
        "{si_signo=SIGUSR2, si_code=SI_QUEUE, si_pid=99, si_uid=0, si_int=42, si_ptr=0x2a}"
