"""Text in, Reports out: normalise lines, cut them into reports, read each, then explain ftrace bugs."""

from __future__ import annotations

import os
import re

from unitrace.kmsg import blocks as blockmod
from unitrace.kmsg.arch import guess_arch
from unitrace.kmsg.causes import find_causes
from unitrace.kmsg.disasm import disassemble, supported
from unitrace.kmsg.fields import read_header, read_traces
from unitrace.kmsg.ftrace_bug import address_state, decode_flags, parse_ftrace
from unitrace.kmsg.kallsyms import Kallsyms, load
from unitrace.kmsg.lines import normalise
from unitrace.kmsg.model import LogLine, Report

_VERSION = re.compile(r"^(\d+)\.(\d+)")
_64BIT = {"x86_64", "arm64", "ppc64le", "ppc64", "riscv64"}


def version_tuple(version: str) -> tuple[int, int] | None:
    m = _VERSION.match(version)
    return (int(m.group(1)), int(m.group(2))) if m else None


def decode_text(text: str, *, kallsyms: str | Kallsyms | None = None, local: bool | None = None) -> list[Report]:
    """Every kernel report found in `text`; [] when there is none.

    kallsyms: a kallsyms file (or loaded table) describing the machine and boot the log came from.
    local: the log is from this machine's running kernel (True), is not (False), or decide by
    comparing the kernel version the log prints with `uname -r` (None).
    """
    return decode_lines(normalise(text), kallsyms=kallsyms, local=local)


def decode_lines(lines: list[LogLine], *, kallsyms: str | Kallsyms | None = None,
                 local: bool | None = None) -> list[Report]:
    reports: list[Report] = []
    for block in blockmod.segment(lines):
        reports.append(_read_block(block, lines))
    _share_document_facts(reports, lines)
    table = kallsyms if isinstance(kallsyms, Kallsyms) else load(kallsyms) if kallsyms else None
    previous: Report | None = None
    for report in reports:
        if report.ftrace is not None:
            use = table
            if use is None and _is_local(report, local):
                use = load("/proc/kallsyms")
            _finish_ftrace(report, use)
            context = [ln.text for ln in lines if ln.lineno <= report.last_line]
            report.causes = find_causes(report, context, previous)
        previous = report
    return reports


def _read_block(block: blockmod.Block, lines: list[LogLine]) -> Report:
    members = [lines[i] for i in block.members]
    title = lines[block.title]
    report = Report(kind=block.kind, title=title.text, first_line=members[0].lineno,
                    last_line=members[-1].lineno, ts=title.ts)
    report.lines = [m.text for m in members]
    read_header(report, members)
    trace_lines = members
    if block.kind == "ftrace_bug":
        report.ftrace, site_lines = parse_ftrace(members)
        trace_lines = [m for i, m in enumerate(members) if i not in site_lines]
        if report.ftrace.variant:
            report.title = f"ftrace {report.ftrace.variant}" + (
                f" {report.ftrace.symbol}" if report.ftrace.symbol else "")
    report.traces, report.registers = read_traces(trace_lines)
    report.truncated = not block.ended and block.kind != "stack"
    if block.kind == "ftrace_bug" and report.ftrace is not None and not report.ftrace.variant:
        report.notes.append("the ftrace_bug details (what failed, where) are not in this log")
    report.arch = guess_arch(report, members)
    return report


def _share_document_facts(reports: list[Report], lines: list[LogLine]) -> None:
    """A log is usually from one machine: fill a report's missing version or arch from the others."""
    versions = [r.kernel_version for r in reports if r.kernel_version]
    if not versions:
        for ln in lines:
            m = re.search(r"\bLinux version (\d+\.\d+[\w.+~-]*)", ln.text)
            if m:
                versions.append(m.group(1))
                break
    arches = [r.arch for r in reports if r.arch.name]
    for r in reports:
        if not r.kernel_version and versions:
            r.kernel_version = versions[0]
            r.notes.append(f"kernel version {versions[0]} taken from elsewhere in the log")
        if not r.arch.name and arches:
            best = max(arches, key=lambda a: len(a.evidence))
            r.arch.name, r.arch.thumb = best.name, best.thumb
            r.arch.evidence = ["from another report in the same log: " + "; ".join(best.evidence)]


def _is_local(report: Report, local: bool | None) -> bool:
    if local is not None:
        return local
    return bool(report.kernel_version) and report.kernel_version == os.uname().release


def _finish_ftrace(report: Report, table: Kallsyms | None) -> None:
    bug = report.ftrace
    assert bug is not None
    width = 64 if report.arch.name in _64BIT else 32 if report.arch.name else None
    if bug.address_text or bug.variant:
        bug.address_state = address_state(bug.address_text or None, width) if bug.address_text else "stripped"
    if bug.address_state != "real":
        bug.address = None
    version = version_tuple(report.kernel_version)
    if bug.flags is not None:
        printed = bug.flags.count if bug.flags.layout == "pending" else None
        bug.flags = decode_flags(bug.flags, version)
        if version is None:
            report.notes.append(f"kernel version unknown: record flags decoded with the {bug.flags.layout} layout")
        if printed is not None and printed != bug.flags.count:
            report.notes.append(f"the kernel printed a count of {printed} but the {bug.flags.layout} layout gives "
                                f"{bug.flags.count}: the flag layout of this kernel differs")
    if table is not None and table.usable:
        _use_kallsyms(report, table)
    arch = "thumb2" if report.arch.name == "arm" and report.arch.thumb else report.arch.name
    if supported(arch):
        if bug.actual is not None:
            bug.actual_insns = disassemble(bug.actual.data, arch, bug.address)
        if bug.expected is not None:
            bug.expected_insns = disassemble(bug.expected.data, arch, bug.address)
        if table is not None and table.usable and bug.address is not None:
            for ins in bug.actual_insns + bug.expected_insns:
                if ins.target is not None:
                    ins.target_symbol = table.lookup(ins.target)
    elif bug.actual is not None:
        report.notes.append("architecture unknown: the bytes are not disassembled")


def _use_kallsyms(report: Report, table: Kallsyms) -> None:
    bug = report.ftrace
    assert bug is not None
    if bug.address is not None and bug.symbol:
        found = table.lookup(bug.address)
        if not found.startswith(bug.symbol + "+"):
            report.notes.append(f"{table.path} does not match this log (0x{bug.address:x} is "
                                f"{found or 'unknown'} there, the log says {bug.symbol}): not symbolised")
            return
    elif bug.address is None and bug.symbol and bug.offset is not None:
        base = table.address_of(bug.symbol)
        if base is not None:
            bug.address = base + bug.offset
            report.notes.append(f"site address 0x{bug.address:x} taken from {table.path} "
                                f"({bug.symbol}+0x{bug.offset:x})")
    if bug.expected_tramp is not None:
        bug.expected_tramp_symbol = table.lookup(bug.expected_tramp)
