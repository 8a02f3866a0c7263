"""Unit tests of the stack pieces that need no stopped process: DWARF expressions, the call-site check,
/proc/PID/maps parsing and load bias, debug-file lookup, demangling and the shared kallsyms table."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from unitrace.errors import UnitraceError
from unitrace.kmsg import kallsyms as kmsg_kallsyms
from unitrace.stack.dwarf_expr import eval_expr
from unitrace.stack.maps import Maps
from unitrace.stack.unwind import RIP, RSP, after_call
from unitrace.symbols import kallsyms
from unitrace.symbols.debuginfo import candidates, debug_file
from unitrace.symbols.demangle import demangle


class FakeMem:
    """Bytes at fixed addresses; everything else unreadable (as a tracee's unmapped pages are)."""

    def __init__(self, regions: dict[int, bytes]) -> None:
        self.regions = regions

    def read(self, addr: int, size: int) -> bytes | None:
        for base, data in self.regions.items():
            if base <= addr and addr + size <= base + len(data):
                return data[addr - base:addr - base + size]
        return None

    def read_cstr(self, addr: int, limit: int) -> bytes | None:
        return None


def test_plt_cfa_expression() -> None:
    # the expression gcc/binutils emit for .plt: rsp + 8 + ((rip & 15) >= 11 ? 8 : 0)
    expr = bytes([0x77, 8, 0x80, 0, 0x3F, 0x1A, 0x3B, 0x2A, 0x33, 0x24, 0x22])
    assert eval_expr(expr, {RSP: 0x1000, RIP: 0x4010}, FakeMem({})) == 0x1008
    assert eval_expr(expr, {RSP: 0x1000, RIP: 0x401B}, FakeMem({})) == 0x1010


def test_expression_deref_and_unknown_opcode() -> None:
    mem = FakeMem({0x2000: struct.pack("<Q", 0xDEADBEEF)})
    assert eval_expr(bytes([0x77, 0x10, 0x06]), {RSP: 0x1FF0}, mem) == 0xDEADBEEF  # breg7 +16; deref
    assert eval_expr(bytes([0x77, 0x00, 0x06]), {RSP: 0x3000}, mem) is None  # unreadable: no guess
    assert eval_expr(bytes([0x96]), {}, mem) is None  # DW_OP_nop is outside our subset: refuse, not skip
    assert eval_expr(bytes([0x70]), {}, mem) is None  # breg0 with rax unknown


@pytest.mark.parametrize(("code", "expected"), [
    (b"\x90\x90\xe8\x00\x00\x00\x00", True),  # call rel32
    (b"\x90\x90\x90\x90\x90\xff\xd0", True),  # call *%rax
    (b"\x90\x90\x90\x90\x41\xff\xd3", True),  # call *%r11
    (b"\x90\xff\x15\x00\x00\x00\x00", True),  # call *disp32(%rip)
    (b"\x90\x90\x90\x90\x90\x90\x90", False),
    (b"\x90\x90\x90\x90\x90\xff\xe0", False),  # jmp *%rax is not a call
])
def test_after_call(code: bytes, expected: bool) -> None:
    assert after_call(FakeMem({0x1000: code}), 0x1007) is expected


def test_maps_of_this_process_and_load_bias() -> None:
    maps = Maps.of(os.getpid())
    exe = os.path.realpath(f"/proc/{os.getpid()}/exe")
    code = [m for m in maps.mappings if m.path == exe and m.executable]
    assert code, "the interpreter's own text is mapped executable"
    addr = code[0].start + 16
    path, link = maps.link_address(addr)  # type: ignore[misc]
    assert path == exe
    from unitrace.symbols.elf import elf_symbols

    seg = next(s for s in elf_symbols(exe).segments if s.executable)
    # the link address sits in the executable segment, at the same distance from its start as addr
    assert seg.vaddr <= link < seg.vaddr + seg.memsz
    assert maps.find(0) is None


def test_debug_file_candidates_follow_gdb_order(tmp_path: Path) -> None:
    got = candidates("/usr/lib/x86_64-linux-gnu/libfoo.so.1", "ab12cd", "libfoo.so.1.debug", root="/D")
    assert got == ["/D/.build-id/ab/12cd.debug",
                   "/usr/lib/x86_64-linux-gnu/libfoo.so.1.debug",
                   "/usr/lib/x86_64-linux-gnu/.debug/libfoo.so.1.debug",
                   "/D/usr/lib/x86_64-linux-gnu/libfoo.so.1.debug"]
    plain = tmp_path / "notelf"
    plain.write_bytes(b"hello")
    assert debug_file(str(plain)) == str(plain)


def test_debug_file_of_libc_when_installed() -> None:
    libc = "/usr/lib/x86_64-linux-gnu/libc.so.6"
    if not Path("/usr/lib/debug/.build-id").is_dir():
        pytest.skip("no separate debug files installed (libc6-dbg)")
    found = debug_file(libc)
    assert found.startswith("/usr/lib/debug/.build-id/") and found.endswith(".debug")


def test_demangle() -> None:
    assert demangle("_ZN6shapes6unpackERKSt8functionIFiiEE") == "shapes::unpack(std::function<int (int)> const&)"
    assert demangle("main") == "main"
    assert demangle("_Znot_really") == "_Znot_really"  # invalid: returned as is, not half-decoded


KALLSYMS = """\
ffffffff81000000 T _stext
ffffffff81000100 t helper
ffffffff81000200 D some_data
ffffffff81000300 T do_sys_open
ffffffffc0001000 t mod_fn\t[mymod]
"""


def test_kallsyms_parse_and_frames() -> None:
    table = kallsyms.parse(KALLSYMS.splitlines())
    assert table.lookup(0xFFFFFFFF81000105) == "helper+0x5"
    assert table.lookup(0xFFFFFFFF81000250) == "helper+0x150"  # data symbols are not code: skipped
    assert table.lookup(0xFFFFFFFFC0001010) == "mod_fn+0x10 [mymod]"
    assert table.lookup(0xFFFFFFFF80000000) == ""
    assert table.address_of("do_sys_open") == 0xFFFFFFFF81000300
    f = table.frame(0xFFFFFFFFC0001010)
    assert (f.symbol, f.offset, f.module, f.how, f.reliable) == ("mod_fn", 0x10, "mymod", "kernel", True)
    assert str(f) == "mod_fn+0x10 (mymod)"
    assert table.lookup(0xFFFFFFFFC0001000 + kallsyms.MAX_OFFSET + 1) == ""


def test_kallsyms_is_one_implementation(tmp_path: Path) -> None:
    assert kmsg_kallsyms.Kallsyms is kallsyms.Kallsyms and kmsg_kallsyms.load is kallsyms.load
    saved = tmp_path / "kallsyms"
    saved.write_text(KALLSYMS)
    frames = kallsyms.kernel_stack([0xFFFFFFFF81000301, 0, (1 << 64) - 1], str(saved))
    assert [str(f) for f in frames] == ["do_sys_open+0x1"]
    with pytest.raises(UnitraceError, match="cannot read kallsyms file /nonexistent"):
        kallsyms.load("/nonexistent")
    assert kallsyms.kernel_symbolize(0x1234, "/nonexistent").symbol == ""


def test_live_kallsyms_resolves_a_kernel_function() -> None:
    table = kallsyms.load()
    if not table.usable:
        pytest.skip("/proc/kallsyms shows no addresses to this user (kptr_restrict)")
    addr = table.address_of("do_sys_openat2") or table.address_of("schedule")
    assert addr is not None
    assert kallsyms.kernel_symbolize(addr + 4).offset == 4
