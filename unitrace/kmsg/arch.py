"""Which architecture printed a report, from what the report itself shows, with the evidence."""

from __future__ import annotations

import re

from unitrace.kmsg.model import ArchGuess, LogLine, Report

# (pattern over a line, arch, why). The first group of clues is decisive on its own.
_CLUES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"^RIP: [0-9a-f]{4}:"), "x86_64", "x86-64 register dump (RIP)"),
    (re.compile(r"^EIP: "), "i386", "32-bit x86 register dump (EIP)"),
    (re.compile(r"^R(?:AX|BX|SP|BP): "), "x86_64", "x86-64 registers"),
    (re.compile(r"\b(?:entry_SYSCALL_64|__x64_sys_|do_syscall_64|asm_exc_|asm_sysvec_)"), "x86_64",
     "x86-64 entry code in the call trace"),
    (re.compile(r"^pstate: "), "arm64", "arm64 pstate register"),
    (re.compile(r"^x29: [0-9a-f]{16}"), "arm64", "arm64 x29 register"),
    (re.compile(r"\b(?:el0_svc|el1_sync|el0t_64_sync|__arm64_sys_|__primary_switched|do_el0_svc)"), "arm64",
     "arm64 entry code in the call trace"),
    (re.compile(r"\) from \[<[0-9a-f]{8}>\] \("), "arm", "32-bit ARM `(f) from [<addr>]` unwinder output"),
    (re.compile(r"^(?:PC|LR) is at |^pc : \[<[0-9a-f]{8}>\]|\bpsr: [0-9a-f]{8}"), "arm", "32-bit ARM registers"),
    (re.compile(r"\bret_fast_syscall\b|\b__gnu_mcount_nc\b"), "arm", "32-bit ARM entry code"),
    (re.compile(r"^MSR:\s+[0-9a-f]{16} <[^>]*\bLE\b"), "ppc64le", "powerpc MSR with LE set"),
    (re.compile(r"^MSR:\s+[0-9a-f]{16} <(?![^>]*\bLE\b)"), "ppc64", "powerpc MSR without LE"),
    (re.compile(r"^NIP[: \[]"), "ppc64", "powerpc NIP register"),
    (re.compile(r"^epc : |^ ?ra : |^status: [0-9a-f]{16} badaddr"), "riscv64", "RISC-V registers (epc/ra)"),
    (re.compile(r"\bret_from_exception\+0x0/0x[0-9a-f]+|riscv-virtio|\bhandle_exception\b"), "riscv64",
     "RISC-V exception entry"),
    (re.compile(r"IBM pSeries|PowerNV|POWER\d+ \(raw\)"), "ppc64", "IBM POWER hardware"),
)
# A site of this many patchable bytes: MCOUNT_INSN_SIZE per arch (x86 5, ARM/arm64/ppc 4, riscv 8).
_INSN_SIZE_ARCH = {5: "x86_64", 8: "riscv64"}


def guess_arch(report: Report, lines: list[LogLine]) -> ArchGuess:
    votes: dict[str, list[str]] = {}
    for line in lines:
        for rx, arch, why in _CLUES:
            if rx.search(line.text):
                votes.setdefault(arch, [])
                if why not in votes[arch]:
                    votes[arch].append(why)
    if "ppc64le" in votes and "ppc64" in votes:
        votes["ppc64le"] += votes.pop("ppc64")
    guess = ArchGuess()
    if votes:
        name = max(votes, key=lambda a: len(votes[a]))
        guess.name, guess.evidence = name, list(votes[name])
    widths = _address_widths(report)
    if report.ftrace is not None and report.ftrace.actual is not None and not guess.name:
        n = len(report.ftrace.actual.data)
        if n in _INSN_SIZE_ARCH:
            guess.name = _INSN_SIZE_ARCH[n]
            guess.evidence.append(f"{n}-byte patch site (MCOUNT_INSN_SIZE)")
            if guess.name == "x86_64" and widths == {8}:
                guess.name = "i386"
                guess.evidence.append("32-bit addresses")
    if guess.name in ("x86_64", "i386") and widths and not votes.get(guess.name):
        guess.name = "x86_64" if 16 in widths else "i386"
    if guess.name == "ppc64" and report.ftrace is not None and report.ftrace.actual is not None:
        pass  # endianness of bytes alone cannot be told apart; MSR decides when present
    if guess.name == "arm" and _odd_addresses(report):
        guess.thumb = True
        guess.evidence.append("odd code addresses: a Thumb-2 kernel")
    return guess


def _address_widths(report: Report) -> set[int]:
    widths = set()
    for trace in report.traces:
        for f in trace.frames:
            if f.address:
                widths.add(16 if f.address >= 1 << 32 else 8)
    if report.ftrace is not None and report.ftrace.address_state == "real" and report.ftrace.address:
        widths.add(16 if report.ftrace.address >= 1 << 32 else 8)
    return widths


def _odd_addresses(report: Report) -> bool:
    addrs = [f.address for t in report.traces for f in t.frames if f.address]
    return bool(addrs) and sum(a & 1 for a in addrs) * 2 >= len(addrs)
