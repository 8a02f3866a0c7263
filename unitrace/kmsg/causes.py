"""Likely causes of an ftrace_bug, from a table of causes we can defend, each with the evidence from
this log that points to it. A cause is listed only when something in the log supports it.

Sources for the table (kernel history and the threads in tests/fixtures/kmsg/):
- a branch ftrace did not write: other text patchers (optimized kprobes and livepatch write `jmp`,
  the BPF dispatcher patched itself with text_poke until "bpf: Convert BPF_DISPATCHER to use
  static_call() (not ftrace)"), modules built for another kernel calling a different mcount;
- a breakpoint: a kprobe placed on an ftrace site without KPROBES_ON_FTRACE (riscv, 2022 thread);
- init/exit text: `ftrace_bug` on KASAN's `_GLOBAL__sub_D_*` exit functions (arm64 2020, powerpc
  "Ignore ftrace locations in exit text sections", 2024), functions in freed init text;
- strict RWX: -EPERM from the write itself ("faulted on writing");
- an unexpected instruction: the compiler's patchable entry is not what the arch code expects
  (e.g. -fpatchable-function-entry vs -mprofile-kernel, IBT's endbr64 before the site);
- module branch range: ARM modules out of `bl` reach without PLTs ("ARM: ftrace: Add MODULE_PLTS
  support", v5.12).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from unitrace.kmsg.disasm import is_breakpoint, is_nop
from unitrace.kmsg.model import Cause, Instruction, Report

_INIT_NAME = re.compile(r"(?:^_GLOBAL__sub_[ID]_|_init$|_exit$|^__init|_setup$|^set_reset_devices$)")
_FREED = re.compile(r"Freeing unused kernel (?:image )?(?:\(initmem\) )?memory|Freeing (?:init|initrd) memory")
_RO_WRITE = re.compile(r"write to read-only memory|Unable to handle kernel write to read-only|"
                       r"BUG: unable to handle page fault.*write access|kernel tried to execute NX")
_TRACER_FRAMES = re.compile(r"kprobe|bpf_trampoline|register_ftrace_direct|klp_|livepatch|kpatch|"
                            r"bpf_dispatcher|text_poke|static_call|arch_jump_label")
_TRACER_MODULE = re.compile(r"kpatch|livepatch|klp|dtrace|systemtap|stap_|kprobe|ftrace|hook|rootkit", re.I)
_PROLOGUE = {"push", "endbr64", "endbr32", "stp", "mflr", "sd", "addi", "c.addi", "c.sdsp", "sub", "paciasp",
             "bti", "mov", "stwu", "stdu", "std"}

# Where x86-64 and arm64 load modules; a branch into that range reaches module code.
_MODULE_AREAS = {
    "x86_64": (0xFFFFFFFFA0000000, 0xFFFFFFFFFF000000),
}


@dataclass(frozen=True, slots=True)
class _Known:
    key: str
    title: str
    explanation: str


KNOWN = {k.key: k for k in (
    _Known("foreign_branch", "the site already holds a branch that ftrace did not put there",
           "ftrace keeps its own record of what each call site holds (a nop, or a call to its "
           "trampoline) and refuses to patch when the text differs. A call or jump it did not write means "
           "another text patcher got there first: an optimized kprobe, a livepatch/kpatch module, a BPF "
           "trampoline or dispatcher, or an out-of-tree module (tracer, security agent) that patches "
           "function entries; or a module built for another kernel whose call to mcount points elsewhere."),
    _Known("breakpoint", "a breakpoint sits on the ftrace site",
           "A kprobe (registered without KPROBES_ON_FTRACE) or a debugger replaced an instruction of "
           "the patchable entry with a breakpoint, so ftrace no longer finds its nop or call there."),
    _Known("freed_text", "the site is in init or exit text that was freed (or never kernel text)",
           "The compiler instrumented a function that lives in .init.text or .exit.text (for example "
           "KASAN's _GLOBAL__sub_I/_D constructors, or an __init function). Once that memory is freed or "
           "discarded the site holds garbage, zeros, or is unmapped, and ftrace cannot read or patch it."),
    _Known("strict_rwx", "writing the site faulted: kernel text is read-only (STRICT_KERNEL_RWX)",
           "ftrace_bug() was called with -EPERM, which the arch code returns when the write itself "
           "faults. With strict kernel RWX, text is read-only and ftrace must write through the "
           "architecture's text-poke mapping; a fault means the site was outside what that path maps "
           "(freed init/exit text, a module whose text was already made read-only) or an arch bug."),
    _Known("unexpected_insn", "the site holds an instruction ftrace does not expect (compiler output)",
           "The bytes at the recorded site are a normal instruction, not the nop or call ftrace "
           "expects. The compiler emitted a different patchable entry than the arch code assumes "
           "(-pg vs -mfentry vs -fpatchable-function-entry, a different nop form, IBT's endbr64 in front "
           "of the site), or the recorded address (__mcount_loc) is off by some bytes."),
    _Known("zeroed_text", "the site reads as zeros",
           "ftrace read all-zero bytes where an instruction should be: the text was freed, not yet "
           "loaded, or overwritten."),
    _Known("module_branch_range", "a module is out of direct-branch range of ftrace's trampoline",
           "On 32-bit ARM (and arm64 before module PLTs for ftrace) a `bl` reaches only +-32 MiB. A module "
           "loaded further from the kernel cannot call the ftrace trampoline directly; ftrace needs a "
           "PLT (ARM gained it in v5.12: 'ARM: ftrace: Add MODULE_PLTS support')."),
    _Known("out_of_sync", "ftrace's record and the text disagree",
           "The site holds what ftrace would write in the other state (a nop where the record says "
           "'enabled', or a call to ftrace's own trampoline where it expected a nop): an earlier update "
           "failed half-way or something restored the site behind ftrace's back."),
)}


def _confidence(score: int) -> str:
    return "high" if score >= 4 else "medium" if score >= 2 else "low"


def find_causes(report: Report, context: list[str], previous: Report | None) -> list[Cause]:
    bug = report.ftrace
    if bug is None:
        return []
    found: dict[str, list[tuple[int, str]]] = {}

    def add(key: str, weight: int, why: str) -> None:
        found.setdefault(key, []).append((weight, why))

    insns = [i for i in bug.actual_insns if i.mnemonic != ".byte"]
    first = insns[0] if insns else None
    branch = next((i for i in bug.actual_insns if i.target_offset is not None), None)
    arch = report.arch.name
    frames = " ".join(f.symbol for t in report.traces for f in t.frames)
    if previous is not None:
        frames += " " + " ".join(f.symbol for t in previous.traces for f in t.frames)
        frames += " " + previous.function

    if bug.actual is not None and bug.actual.data and not any(bug.actual.data):
        add("zeroed_text", 3, f"actual bytes are all zero ({bug.actual.text})")
    if bug.actual is not None and bug.actual.fault:
        add("freed_text", 2, f"the kernel could not read the site: `actual: {bug.actual.text}`")

    if branch is not None and bug.variant == "failed to modify":
        where = _target_text(branch)
        add("foreign_branch", 2, f"the site holds `{branch}`{where}")
        if branch.mnemonic in ("jmp", "b", "j", "jmpq"):
            add("foreign_branch", 1, "it is a jump, and ftrace only ever writes calls (or nops) at a call site")
        if branch.target is not None and bug.expected_tramp is not None and branch.target == bug.expected_tramp:
            add("out_of_sync", 3, f"the branch goes to 0x{branch.target:x}, the very trampoline ftrace expected"
                                  " to be installing")
            found.pop("foreign_branch", None)
        area = _MODULE_AREAS.get(arch)
        if area and branch.target is not None and area[0] <= branch.target < area[1]:
            add("foreign_branch", 1, f"the target 0x{branch.target:x} is in the module area: module code, not "
                                     "the core kernel's ftrace trampoline")
        if branch.target_symbol:
            add("foreign_branch", 1, f"the target is {branch.target_symbol} (from kallsyms)")
        if bug.symbol.startswith("bpf_dispatcher_"):
            add("foreign_branch", 2, f"{bug.symbol} is patched by the BPF dispatcher itself (text_poke), which "
                                     "raced with ftrace before v6.0 ('bpf: Convert BPF_DISPATCHER to use "
                                     "static_call() (not ftrace)')")
    if first is not None and any(is_breakpoint(i) for i in insns):
        bp = next(i for i in insns if is_breakpoint(i))
        add("breakpoint", 3, f"`{bp}` at site+{bp.offset}")
    for note in bug.arch_notes:
        if "but got" in note and re.search(r"\b00100073\b|\bcc\b|\bd42", note):
            add("breakpoint", 1, f"the arch code says: {note}")

    if bug.variant == "faulted on writing":
        add("strict_rwx", 2, "ftrace_bug() got -EPERM: the write to the site faulted")
    if any(_RO_WRITE.search(line) for line in context):
        add("strict_rwx", 2, "the log shows a write fault on read-only kernel memory")

    if bug.symbol and _INIT_NAME.search(bug.symbol):
        add("freed_text", 2, f"{bug.symbol} looks like init/exit code (its name)")
    if bug.address_text and not bug.symbol and bug.address_state == "real":
        add("freed_text", 1, f"kallsyms had no name for 0x{bug.address_text.removeprefix('0x')}: not in any "
                             "live symbol table")
    for note in bug.arch_notes:
        if "non-kernel address" in note or "No module" in note:
            add("freed_text", 2, f"the arch code says: {note}")
    if bug.variant.startswith("faulted") and "freed_text" in found:
        add("freed_text", 1, f"ftrace {bug.variant} (it could not access the site)")
    if "freed_text" in found and any(_FREED.search(line) for line in context):
        add("freed_text", 1, "init memory had already been freed earlier in this log")
    if "zeroed_text" in found and bug.symbol and _INIT_NAME.search(bug.symbol):
        add("zeroed_text", 1, f"{bug.symbol} is init code, whose memory is freed after boot")

    if (arch in ("arm", "arm64") and "load_module" in frames and bug.variant == "failed to modify"
            and ("__arm_gen_branch" in frames or "ftrace_make_nop" in frames or bug.module or not bug.symbol)):
        add("module_branch_range", 2, "ftrace failed while loading a module (load_module in the call trace)")
        if "__arm_gen_branch" in frames:
            add("module_branch_range", 2, "__arm_gen_branch warned first: it could not encode the branch")

    if first is not None and not found and bug.variant == "failed to modify":
        if (is_nop(first) and bug.bug_type in ("nop", "update")) or (
                bug.flags and any(b.name == "ENABLED" for b in bug.flags.bits) and is_nop(first)
                and bug.bug_type != "call"):
            add("out_of_sync", 2, f"the site holds `{first}` although the record says ftrace had enabled it")
        elif first.mnemonic.split(".")[0] in _PROLOGUE or not is_nop(first):
            add("unexpected_insn", 2, f"the site starts with `{first}`, a regular instruction")
        else:
            add("unexpected_insn", 1, f"the site holds `{first}`, a nop ftrace did not expect")
        if bug.expected is not None and bug.actual is not None and bug.expected.data != bug.actual.data:
            add("unexpected_insn", 1, f"expected {bug.expected.text}, found {bug.actual.text}")

    if "foreign_branch" in found:
        if "O" in report.taint_letters.split() or "E" in report.taint_letters.split():
            add("foreign_branch", 1, "the kernel is tainted by an out-of-tree or unsigned module "
                                     f"({report.taint_letters})")
        if "K" in report.taint_letters.split():
            add("foreign_branch", 1, "the kernel is live-patched (taint K)")
        if bug.module:
            add("foreign_branch", 1, f"the site is in module {bug.module}")
        hooks = sorted({m for m in report.modules if _TRACER_MODULE.search(m)})
        if hooks:
            add("foreign_branch", 1, f"modules that patch or trace code are loaded: {', '.join(hooks)}")
        tracer_frames = sorted(set(_TRACER_FRAMES.findall(frames)))
        if tracer_frames:
            add("foreign_branch", 1, "the call trace goes through " + ", ".join(tracer_frames))

    causes = []
    for key, items in found.items():
        known = KNOWN[key]
        score = sum(w for w, _ in items)
        causes.append(Cause(key, known.title, known.explanation, [why for _, why in items], _confidence(score),
                            score))
    causes.sort(key=lambda c: -c.score)
    return causes


def _target_text(branch: Instruction) -> str:
    if branch.target is not None:
        sym = f" = {branch.target_symbol}" if branch.target_symbol else ""
        return f", a branch to 0x{branch.target:x}{sym}"
    if branch.target_offset is not None:
        sign = "+" if branch.target_offset >= 0 else "-"
        return f", a branch to site{sign}0x{abs(branch.target_offset):x} (site address not in the log)"
    return ""
