"""Reports as text for people and as JSON for programs."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from unitrace.events import Frame
from unitrace.kmsg.model import Instruction, Report

JSON_SCHEMA = "unitrace.kmsg/1"


_HEX_KEYS = {"address", "target", "expected_tramp", "raw", "unknown_bits"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return ":".join(f"{b:02x}" for b in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            # 64-bit addresses as hex strings: JSON readers in JavaScript lose precision above 2**53
            out[f.name] = f"0x{v:x}" if f.name in _HEX_KEYS and isinstance(v, int) and not isinstance(v, bool) \
                else _jsonable(v)
        return out
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def report_to_json(report: Report, *, with_lines: bool = False) -> dict[str, Any]:
    obj = _jsonable(report)
    if not with_lines:
        obj.pop("lines", None)
    for trace in obj["traces"]:
        for entry in trace["entries"]:
            if isinstance(entry, dict):
                entry.pop("file", None), entry.pop("line", None), entry.pop("inlined", None)
    return obj


def to_json(reports: list[Report], *, source: str = "", with_lines: bool = False) -> str:
    doc = {"schema": JSON_SCHEMA, "source": source,
           "reports": [report_to_json(r, with_lines=with_lines) for r in reports]}
    return json.dumps(doc, indent=2)


def _frame(f: Frame) -> str:
    addr = f"[<{f.address:x}>] " if f.address else ""
    mark = "? " if not f.reliable else ""
    where = f"{f.symbol}+0x{f.offset:x}" if f.symbol else f"0x{f.address:x}"
    if not f.symbol and f.address:
        addr = ""
    mod = f" [{f.module}]" if f.module else ""
    return f"{mark}{addr}{where}{mod}"


def _insn(ins: Instruction) -> str:
    at = f"0x{ins.address:x}" if ins.address is not None else f"site+{ins.offset}"
    text = f"{at}: {ins}"
    if ins.target is not None:
        text += f"    -> 0x{ins.target:x}" + (f" {ins.target_symbol}" if ins.target_symbol else "")
    elif ins.target_offset is not None:
        sign = "+" if ins.target_offset >= 0 else "-"
        text += f"    -> site{sign}0x{abs(ins.target_offset):x}"
    return text


def render_text(report: Report) -> str:
    out: list[str] = []
    when = f"[{report.ts:12.6f}] " if report.ts is not None else ""
    trunc = "  (cut short: the log ends before the report does)" if report.truncated else ""
    out.append(f"== {report.kind}: {when}{report.title}{trunc}")
    out.append(f"   lines {report.first_line}-{report.last_line} of the input")

    def row(name: str, value: str) -> None:
        if value:
            out.append(f"   {name:<15}{value}")

    row("kernel", report.kernel_version + (f" {report.build}" if report.build else ""))
    if report.arch.name:
        arch = report.arch.name + (" (Thumb-2)" if report.arch.thumb else "")
        row("architecture", f"{arch}  [{'; '.join(report.arch.evidence)}]")
    else:
        row("architecture", "unknown")
    if report.location or report.function:
        row("warning at", f"{report.location} {report.function}".strip())
    who = []
    if report.cpu is not None:
        who.append(f"CPU {report.cpu}")
    if report.pid is not None:
        who.append(f"PID {report.pid}")
    if report.comm:
        who.append(f"comm {report.comm}")
    row("task", ", ".join(who))
    if report.tainted is False:
        row("tainted", "no")
    elif report.tainted:
        row("tainted", report.taint_letters)
        for w in report.taint_words:
            out.append(f"   {'':<15}  {w}")
    row("hardware", report.hardware)
    if report.modules:
        mods = report.modules if len(report.modules) <= 12 else [*report.modules[:12], f"... ({len(report.modules)})"]
        row("modules", " ".join(mods))
    bug = report.ftrace
    if bug is not None:
        out.append("")
        row("ftrace", f"{bug.variant or '(details missing)'}" + (f"  [{bug.errno}]" if bug.errno else ""))
        site = f"{bug.symbol}+0x{bug.offset:x}" if bug.symbol and bug.offset is not None else bug.symbol
        if bug.size:
            site += f"/0x{bug.size:x}"
        if bug.module:
            site += f" [{bug.module}]"
        addr = {"real": f"0x{bug.address:x}" if bug.address is not None else "",
                "hashed": f"{bug.address_text} (hashed pointer, not an address)",
                "zeroed": "zeroed by kptr_restrict", "stripped": "not in the log (`[]`: stripped)",
                "unknown": ""}[bug.address_state]
        if bug.address is not None and bug.address_state != "real":
            addr += f"; 0x{bug.address:x} from kallsyms"
        row("site", f"{site or '(no symbol)'}   address {addr}".strip())
        row("operation", bug.bug_type_text)
        for label, raw, insns in (("actual", bug.actual, bug.actual_insns), ("expected", bug.expected,
                                                                                bug.expected_insns)):
            if raw is None:
                continue
            shown = " ".join(f"{b:02x}" for b in raw.data) if not raw.fault else raw.text
            ext = "  (printed sign-extended: " + raw.text + ")" if raw.sign_extended else ""
            row(label, shown + ext)
            for ins in insns:
                out.append(f"   {'':<15}  {_insn(ins)}")
        if bug.flags is not None:
            fl = bug.flags
            names = ", ".join(b.name for b in fl.bits) or "none"
            row("record flags", f"0x{fl.raw:x} = count {fl.count}, {names}  (layout {fl.layout})")
            for b in fl.bits:
                out.append(f"   {'':<15}  bit {b.bit:2} {b.name:<12} {b.meaning}")
            if fl.unknown_bits:
                out.append(f"   {'':<15}  unknown bits 0x{fl.unknown_bits:x}")
        for t in bug.tramps:
            row("tramp", t)
        if bug.expected_tramp is not None:
            row("expected tramp", f"0x{bug.expected_tramp:x}" + (f" {bug.expected_tramp_symbol}"
                                                                  if bug.expected_tramp_symbol else ""))
        for note in bug.arch_notes:
            row("arch says", note)
        out.append("")
        if report.causes:
            out.append("   likely cause" + ("s" if len(report.causes) > 1 else "") + ":")
            for c in report.causes:
                out.append(f"   - {c.title} ({c.confidence} confidence)")
                out.append(f"     {c.explanation}")
                for e in c.evidence:
                    out.append(f"       evidence: {e}")
        else:
            out.append("   likely cause: none of the known causes matches what this log shows")
    for dump in report.registers:
        regs = []
        if dump.ip is not None:
            regs.append(f"ip {_frame(dump.ip)}")
        if dump.lr is not None:
            regs.append(f"lr {_frame(dump.lr)}")
        if regs or dump.code:
            row("user regs" if dump.user else "registers", ", ".join(regs) or "(values only)")
            if dump.code:
                out.append(f"   {'':<15}  Code: {dump.code}")
    for i, trace in enumerate(report.traces):
        out.append(f"   call trace{f' {i + 1}' if len(report.traces) > 1 else ''}:")
        for entry in trace.entries:
            out.append(f"     {entry}" if isinstance(entry, str) else f"     {_frame(entry)}")
    for note in report.notes:
        out.append(f"   note: {note}")
    return "\n".join(out)
