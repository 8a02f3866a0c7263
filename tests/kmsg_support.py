"""Shared helpers for the kmsg tests: a flat summary of a Report to compare against expectations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unitrace.kmsg.model import Report

FIXTURES = Path(__file__).parent / "fixtures" / "kmsg"


def _hex(v: int | None) -> str | None:
    return None if v is None else f"0x{v:x}"


def summarise(r: Report) -> dict[str, Any]:
    """Every key the expectations may name, computed from the report."""
    frames = [f for t in r.traces for f in t.frames]
    markers = [e for t in r.traces for e in t.entries if isinstance(e, str)]
    out: dict[str, Any] = {
        "kind": r.kind, "arch": r.arch.name, "thumb": r.arch.thumb, "kernel_version": r.kernel_version,
        "location": r.location, "function": r.function, "cpu": r.cpu, "pid": r.pid, "comm": r.comm,
        "tainted": r.tainted, "taint_letters": r.taint_letters, "modules": r.modules, "truncated": r.truncated,
        "frame_count": len(frames), "frames": [f.symbol for f in frames],
        "frames_head": [f.symbol for f in frames][:6],
        "unreliable": [f.symbol for f in frames if not f.reliable], "markers": markers,
        "top_cause": r.causes[0].key if r.causes else None,
        "top_confidence": r.causes[0].confidence if r.causes else None,
        "causes_include": [c.key for c in r.causes],
    }
    kernel_dumps = [d for d in r.registers if not d.user]
    user_dumps = [d for d in r.registers if d.user]
    if kernel_dumps and kernel_dumps[0].ip is not None:
        out["ip"] = kernel_dumps[0].ip.symbol
        out["ip_address"] = _hex(kernel_dumps[0].ip.address)
    if kernel_dumps and kernel_dumps[0].lr is not None:
        out["lr"] = kernel_dumps[0].lr.symbol
    if user_dumps and user_dumps[0].ip is not None:
        out["user_ip_address"] = _hex(user_dumps[0].ip.address)
    b = r.ftrace
    if b is not None:
        insns = [i for i in b.actual_insns]
        branch = next((i for i in insns if i.target_offset is not None), None)
        out.update({
            "variant": b.variant, "symbol": b.symbol, "offset": b.offset, "size": b.size, "module": b.module,
            "address": _hex(b.address), "address_state": b.address_state,
            "actual": b.actual.text.replace("ffffff", "") if b.actual else None,
            "sign_extended": b.actual.sign_extended if b.actual else None,
            "insns": [i.mnemonic for i in insns], "first_insn": insns[0].mnemonic if insns else None,
            "target": _hex(branch.target) if branch else None,
            "target_offset": branch.target_offset if branch else None,
            "bug_type": b.bug_type, "expected_tramp": _hex(b.expected_tramp),
            "flags": [f.name for f in b.flags.bits] if b.flags else None,
            "count": b.flags.count if b.flags else None,
            "flag_layout": b.flags.layout if b.flags else None,
            "markers": b.flags.markers if b.flags and b.flags.markers else markers,
            "arch_note": b.arch_notes[0] if b.arch_notes else None,
        })
    return out
