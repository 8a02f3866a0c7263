"""Unwinding from a copy of the stack (what the bpf backend takes in the kernel): the same frames as the
live walk where the copy reaches, and a walk that stops, unproven, where it does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stack_support import build, stopped
from unitrace.stack.snapshot import SnapshotMemory
from unitrace.stack.unwind import RSP, Unwinder


@pytest.fixture(scope="module")
def outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("snapshot")


def _key(frames: list) -> list[tuple[int, bool, str]]:
    return [(f.address, f.reliable, f.how) for f in frames]


@pytest.mark.parametrize(("program", "variant"), [("recurse", "O2-nofp"), ("signal", "O0-fp"),
                                                  ("cxx", "O2-nofp"), ("alloca", "O2-fp-nocfi")])
def test_a_full_copy_walks_like_the_live_stack(program: str, variant: str, outdir: Path) -> None:
    exe = build(program, variant, outdir)
    with stopped(exe) as s:
        live = Unwinder(s.mem, s.maps).unwind(s.regs)
        sp = s.regs[RSP]
        stack_end = s.maps.find(sp).end  # type: ignore[union-attr]
        copy = s.mem.read(sp, stack_end - sp)
        assert copy is not None
        with SnapshotMemory(sp, copy, s.maps) as snap:
            from_copy = Unwinder(snap, s.maps).unwind(s.regs)
    assert _key(from_copy) == _key(live)
    assert from_copy[-1].reliable


def test_a_short_copy_stops_unproven_where_it_ends(outdir: Path) -> None:
    exe = build("recurse", "O2-nofp", outdir)
    with stopped(exe) as s:
        live = Unwinder(s.mem, s.maps).unwind(s.regs)
        sp = s.regs[RSP]
        copy = s.mem.read(sp, 512)
        assert copy is not None
        with SnapshotMemory(sp, copy, s.maps) as snap:
            walk = Unwinder(snap, s.maps).walk(s.regs)
    frames = walk.frames
    assert 1 < len(frames) < len(live)
    assert walk.stop == "unreadable"
    # every frame the copy could prove is the live walk's frame at that depth
    reliable = [f for f in frames if f.reliable]
    assert _key(reliable) == _key(live[:len(reliable)])


def test_only_code_is_served_from_the_files(outdir: Path) -> None:
    exe = build("recurse", "O2-nofp", outdir)
    with stopped(exe) as s:
        data = next(m for m in s.maps.mappings if m.path == str(exe) and "w" in m.perms)
        code = next(m for m in s.maps.mappings if m.path == str(exe) and m.executable)
        with SnapshotMemory(0x1000, b"\0" * 64, s.maps) as snap:
            assert snap.read(data.start, 8) is None
            assert snap.read(code.start, 16) == s.mem.read(code.start, 16)
            assert snap.read(0x1000 + 8, 8) == b"\0" * 8
            assert snap.read(0x1000 + 60, 8) is None  # runs past the copy
