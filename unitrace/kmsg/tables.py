"""Kernel tables the decoder needs, as data, each with where it comes from.

Taint letters: kernel/panic.c `taint_flags[]` (one letter per TAINT_* bit; `G` stands in for an
unset `P`), and Documentation/admin-guide/tainted-kernels.rst.

ftrace record flags: include/linux/ftrace.h, `enum { FTRACE_FL_ENABLED = ... }` and
`FTRACE_REF_MAX_SHIFT`, printed by kernel/trace/ftrace.c ftrace_bug() as
`ftrace record flags: %lx` followed by ` (%ld)` = ftrace_rec_count(rec), the flags' low bits.
The layout changed as flags were added at the top of the count field; each layout below names the
change that introduced it (read from the patches in the kernel history, e.g. via lore.kernel.org):
  v3.7   "ftrace: Add ftrace_ops FTRACE_OPS_FL_SAVE_REGS": ENABLED=29, REGS=30, REGS_EN=31
  v3.19  trampolines ("ftrace: Add per ftrace_ops trampolines") and IPMODIFY: the order flips so
         ENABLED=31, REGS=30, REGS_EN=29, TRAMP=28, TRAMP_EN=27, IPMODIFY=26, shift 26
  v4.8   "ftrace: Add FTRACE_FL_DISABLED": DISABLED=25, shift 25
  v5.5   direct calls ("ftrace: Add ftrace_find_direct_func()"...): DIRECT=24, DIRECT_EN=23, shift 23
  v6.3   "ftrace: Add DYNAMIC_FTRACE_WITH_CALL_OPS": CALL_OPS=22, CALL_OPS_EN=21, shift 21
  v6.4   "ftrace: Add touched_functions" TOUCHED=20 (shift 20), then "ftrace: Add MODIFIED flag"
         MODIFIED=19 (shift 19)
Kernels before v3.19 do not print the record flags at all (ftrace_bug() took only an ip), so the
v3.7 layout is kept only for completeness.
"""

from __future__ import annotations

from dataclasses import dataclass

# (letter, bit, word) in kernel/panic.c order; the position in a "Tainted:" string is the bit.
TAINTS: tuple[tuple[str, int, str], ...] = (
    ("P", 0, "proprietary module loaded"),
    ("F", 1, "module force-loaded"),
    ("S", 2, "kernel running on an out-of-specification system"),
    ("R", 3, "module force-unloaded"),
    ("M", 4, "machine check exception occurred"),
    ("B", 5, "bad page referenced or unexpected page flags"),
    ("U", 6, "taint requested by userspace"),
    ("D", 7, "kernel died recently (an oops or BUG)"),
    ("A", 8, "ACPI table overridden by user"),
    ("W", 9, "kernel issued a warning"),
    ("C", 10, "staging driver loaded"),
    ("I", 11, "workaround for a platform firmware bug applied"),
    ("O", 12, "externally-built (out-of-tree) module loaded"),
    ("E", 13, "unsigned module loaded"),
    ("L", 14, "soft lockup occurred"),
    ("K", 15, "kernel live-patched"),
    ("X", 16, "auxiliary taint (distribution-defined)"),
    ("T", 17, "kernel built with the struct randomization plugin"),
    ("N", 18, "in-kernel test has been run"),
)
TAINT_WORDS: dict[str, str] = {letter: word for letter, _, word in TAINTS}


def taint_words(letters: str) -> list[str]:
    """`G        W  O` -> the words for each set flag; `G` (no proprietary module) says nothing."""
    words = []
    for ch in letters:
        if ch in TAINT_WORDS:
            words.append(f"{ch}: {TAINT_WORDS[ch]}")
    return words


@dataclass(frozen=True, slots=True)
class FlagLayout:
    since: tuple[int, int]
    label: str
    shift: int  # bits below this are the reference count
    bits: tuple[tuple[int, str, str], ...]  # (bit, name, meaning)


_BASE_319 = (
    (31, "ENABLED", "the call site is being traced (patched to call ftrace)"),
    (30, "REGS", "an ftrace_ops wants the site to save full pt_regs"),
    (29, "REGS_EN", "the site is set up to call the regs-saving trampoline"),
    (28, "TRAMP", "one ftrace_ops with its own trampoline wants the site"),
    (27, "TRAMP_EN", "the site calls that ops' private trampoline"),
    (26, "IPMODIFY", "an ftrace_ops may change the instruction pointer (livepatch, kprobe jump)"),
)
_DISABLED = ((25, "DISABLED", "the record is not ready to be touched (module still loading)"),)
_DIRECT = ((24, "DIRECT", "a direct trampoline (e.g. BPF) is attached"),
           (23, "DIRECT_EN", "the site calls the direct trampoline"))
_CALL_OPS = ((22, "CALL_OPS", "the site can use call-site-specific ops"),
             (21, "CALL_OPS_EN", "the site is set up to use call-site-specific ops"))
_TOUCHED = ((20, "TOUCHED", "a callback was attached to the site since boot"),)
_MODIFIED = ((19, "MODIFIED", "IPMODIFY or DIRECT was attached to the site at some point"),)

FLAG_LAYOUTS: tuple[FlagLayout, ...] = (
    FlagLayout((6, 4), "v6.4+", 19, _BASE_319 + _DISABLED + _DIRECT + _CALL_OPS + _TOUCHED + _MODIFIED),
    FlagLayout((6, 3), "v6.3", 21, _BASE_319 + _DISABLED + _DIRECT + _CALL_OPS),
    FlagLayout((5, 5), "v5.5-v6.2", 23, _BASE_319 + _DISABLED + _DIRECT),
    FlagLayout((4, 8), "v4.8-v5.4", 25, _BASE_319 + _DISABLED),
    FlagLayout((3, 19), "v3.19-v4.7", 26, _BASE_319),
    FlagLayout((3, 7), "v3.7-v3.18", 29, (
        (29, "ENABLED", "the call site is being traced (patched to call ftrace)"),
        (30, "REGS", "an ftrace_ops wants the site to save full pt_regs"),
        (31, "REGS_EN", "the site is set up to call the regs-saving trampoline"))),
)


def flag_layout(version: tuple[int, int] | None) -> FlagLayout:
    """The layout of the kernel at hand; the newest when the version is unknown (its flag bits are a
    superset, and the count of ops on one site never reaches bit 19 in practice)."""
    if version is None:
        return FLAG_LAYOUTS[0]
    for layout in FLAG_LAYOUTS:
        if version >= layout.since:
            return layout
    return FLAG_LAYOUTS[-1]


# ftrace_bug_type (kernel/trace/ftrace.c print_bug_type(), v4.7+): the line -> key.
BUG_TYPES: dict[str, str] = {
    "Initializing ftrace call sites": "init",
    "Setting ftrace call site to NOP": "nop",
    "Setting ftrace call site to call ftrace function": "call",
    "Updating ftrace call site to call a different ftrace function": "update",
}

# ftrace_bug(failed, rec): which error each headline stands for.
VARIANT_ERRNO: dict[str, str] = {
    "failed to modify": "-EINVAL (the bytes at the site were not what ftrace expected)",
    "faulted on modifying": "-EFAULT (reading the site faulted)",
    "faulted on writing": "-EPERM (writing the site faulted)",
    "faulted on unknown error": "another error from the architecture's patching code",
}
