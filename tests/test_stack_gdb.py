"""Differential test of the unwinder against gdb's `bt` on the corpus in tests/progs/stack.

Every program is built across the flag grid of stack_support.VARIANTS (-O0/-O2/-O3, with and without frame
pointers, and with no unwind tables at all) and stopped at its own SIGSTOP inside libc. Every frame we call
reliable must equal gdb's frame at the same depth (pc, inline or not, and the function's name in the
program); gdb's synthesised tail-call frames (from DW_TAG_call_site) are frames we do not produce, and are
set aside. Where gdb walks the whole stack, so must we: a walk that gives up early fails too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.stack_support import C_PROGRAMS, CXX_PROGRAMS, VARIANTS, agreement, build, gdb_frames, stopped
from unitrace.stack.raw import format_raw, raw_stack
from unitrace.stack.unwind import Unwinder, symbolize

pytestmark = pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")


@pytest.fixture(scope="module")
def outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


GRID = [(p, v) for p in C_PROGRAMS + CXX_PROGRAMS for v, _ in VARIANTS]


@pytest.mark.parametrize(("program", "variant"), GRID, ids=[f"{p}-{v}" for p, v in GRID])
def test_reliable_frames_match_gdb(program: str, variant: str, outdir: Path) -> None:
    exe = build(program, variant, outdir)
    theirs, gdb_failed = gdb_frames(exe)
    with stopped(exe) as s:
        ours = symbolize(Unwinder(s.mem, s.maps).unwind(s.regs), s.maps)
    result = agreement(ours, theirs, exe.name)
    assert not result.mismatches, "\n".join(result.mismatches)
    assert result.matched == result.reliable
    if program == "smash":
        # victim's return address is 0x4141...: the frames below it are proven, nothing above it is
        names = [f.symbol for f in ours if f.reliable]
        assert names[-1] == "victim", names
        assert all(f.address != 0x4141414141414141 or not f.reliable for f in ours)
        assert "main" not in names
    else:
        assert not gdb_failed
        assert result.reliable == result.gdb_frames, [str(f) for f in ours]
        assert ours[-1].symbol == "_start"


def test_inlined_callers_carry_their_call_sites(outdir: Path) -> None:
    exe = build("inline", "O2-nofp", outdir)
    with stopped(exe) as s:
        ours = symbolize(Unwinder(s.mem, s.maps).unwind(s.regs), s.maps)
    src = Path(__file__).parent / "progs" / "stack" / "inline.c"
    lines = src.read_text().splitlines()
    mine = [f for f in ours if f.module == exe.name]
    assert [(f.symbol, f.inlined) for f in mine[:3]] == [("inner", True), ("middle", True), ("outer", False)]
    # each frame's line is the statement in it that leads inwards: STOP() in inner, the calls in the others
    assert "STOP()" in lines[mine[0].line - 1]
    assert "inner(" in lines[mine[1].line - 1]
    assert "middle(" in lines[mine[2].line - 1]
    assert all(f.file == str(src) for f in mine[:3])


def test_cxx_names_are_demangled(outdir: Path) -> None:
    exe = build("cxx", "O2-nofp", outdir)
    with stopped(exe) as s:
        ours = symbolize(Unwinder(s.mem, s.maps).unwind(s.regs), s.maps)
    names = [f.symbol for f in ours]
    assert "shapes::Box<long>::open(int) const" in names
    assert "shapes::unpack(std::function<int (int)> const&)" in names
    assert not [n for n in names if n.startswith("_Z")]


def test_libc_frames_are_named_from_its_debug_file(outdir: Path) -> None:
    """A static libc function has no .dynsym entry; with libc6-dbg installed its name and line are known."""
    exe = build("recurse", "O2-nofp", outdir)
    with stopped(exe) as s:
        ours = symbolize(Unwinder(s.mem, s.maps).unwind(s.regs), s.maps)
    top = ours[0]
    if not Path("/usr/lib/debug/.build-id").is_dir():
        pytest.skip("no separate debug files installed (libc6-dbg)")
    assert top.symbol == "__pthread_kill_implementation" and top.file.endswith("pthread_kill.c"), str(top)


def test_smashed_stack_scan_and_raw_listing(outdir: Path) -> None:
    exe = build("smash", "O2-nofp", outdir)
    with stopped(exe) as s:
        unwinder = Unwinder(s.mem, s.maps, scan=True)
        walk = unwinder.walk(s.regs)
        frames = symbolize(walk.frames, s.maps)
        raw = raw_stack(walk, s.regs[7], s.mem, s.maps)
    assert walk.stop == "bad-return-address"
    bad = [f for f in frames if f.address == 0x4141414141414141]
    assert len(bad) == 1 and not bad[0].reliable
    scanned = [f for f in frames if f.how == "scan"]
    assert scanned and all(not f.reliable for f in scanned)
    assert all(str(f).startswith("? ") for f in scanned)
    # the raw listing marks exactly the return addresses the proven chain used, and keeps the rest as stale
    chain = [w for w in raw if w.status == "chain"]
    assert [w.frame.symbol for w in chain] == [f.symbol for f in frames[1:] if f.reliable and f.how == "cfi"]
    stale = [w for w in raw if w.status == "stale"]
    # main's own return address into libc was overwritten; the one below it survives as a footprint
    assert any(w.frame.symbol == "__libc_start_main" and w.after_call for w in stale), format_raw(raw)
    assert all(not w.frame.reliable for w in stale)
    assert all(line.startswith("0x") for line in format_raw(raw))
