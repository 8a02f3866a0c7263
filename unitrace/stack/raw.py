"""The raw stack listing: every word of the stack that points into code, the proven chain marked, the
leftovers marked stale. This is how a post-mortem debugger's raw listing is read when the chain is
corrupted: stale return addresses are the footprints of calls that already returned, or of frames the
walk could not reach."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from unitrace.decode.api import Memory
from unitrace.events import Frame
from unitrace.stack.maps import Maps
from unitrace.stack.symbolize import symbolize
from unitrace.stack.unwind import Walk, after_call


@dataclass(frozen=True, slots=True)
class RawWord:
    slot: int  # where on the stack
    value: int
    status: str  # "chain": a return address the proven walk used; "stale": any other code pointer
    after_call: bool  # the value is just after a call instruction (a return address, not a function pointer)
    frame: Frame  # the value, symbolised
    chain_index: int = -1  # for "chain": the index of the frame it returned to in the walk


def raw_stack(walk: Walk, sp: int, mem: Memory, maps: Maps, words: int = 512) -> list[RawWord]:
    """Words from `sp` (the stack pointer of the first frame) upwards, those that point into executable
    mappings, each marked against `walk`."""
    m = maps.find(sp)
    if m is not None:
        words = max(0, min(words, (m.end - sp) // 8))
    data = mem.read(sp, words * 8) if words else None
    while data is None and words > 8:
        words //= 2
        data = mem.read(sp, words * 8)
    if data is None:
        return []
    chain = {slot: i for i, slot in enumerate(walk.slots) if slot is not None and walk.frames[i].reliable}
    found = []
    for n, (value,) in enumerate(struct.iter_unpack("<Q", data)):
        code = maps.find(value)
        if code is None or not code.executable:
            continue
        slot = sp + 8 * n
        index = chain.get(slot, -1)
        ret = after_call(mem, value)
        # a return address is named by the call before it; any other code pointer by itself
        frame = Frame(value, reliable=index >= 0, how="cfi" if index >= 0 else "scan" if ret else "")
        found.append((slot, value, index, ret, frame))
    symbolize([f for *_, f in found], maps, inline=False)
    return [RawWord(slot, value, "chain" if index >= 0 else "stale", ac, frame, index)
            for slot, value, index, ac, frame in found]


def format_raw(words: list[RawWord]) -> list[str]:
    """`0x7ffd...: 0x5555... chain #3 main+0x1f (prog) at prog.c:12` per word; stale words carry `?`."""
    out = []
    for w in words:
        mark = f"chain #{w.chain_index}" if w.status == "chain" else "stale  " + ("" if w.after_call else "(ptr)")
        out.append(f"0x{w.slot:016x}: 0x{w.value:016x} {mark:<13} {w.frame}")
    return out
