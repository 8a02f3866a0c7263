"""The ftrace_bug() splat: variant, site, bytes, bug type, record flags, trampolines.

What the kernel prints (kernel/trace/ftrace.c, ftrace_bug() and print_ip_ins()), across versions:
  v2.6.28-v4.x  `ftrace failed to modify [<ip>] sym+off/size [mod]` then ` actual: e8:..`, after the WARNING
  v4.1+         `ftrace record flags: %lx`, ` (%ld)%s`, `\\ttramp: %pS (%pS)`, ` expected tramp: %lx`
  v4.7+         the bug-type line (print_bug_type())
  v4.19+        `print_ip_sym(KERN_INFO, ip)` puts `[<ip>] sym` on its own line
  v5.8+         `------------[ ftrace bug ]------------` first, the WARNING last (panic_on_warn safe)
  v5.x+         ` expected: ..` when the arch set ftrace_expected
Old print_ip_ins() printed `p[i]` of a plain `char *` on some trees, so bytes above 0x7f came out
sign-extended (`ffffffe8`); the low byte is the real one.
"""

from __future__ import annotations

import re

from unitrace.kmsg.fields import SYMOFF, parse_hex
from unitrace.kmsg.model import Bytes, FlagBit, FtraceBug, LogLine, RecordFlags
from unitrace.kmsg.tables import BUG_TYPES, VARIANT_ERRNO, flag_layout

_VARIANT = re.compile(r"^ftrace (?P<v>failed to modify|faulted on [a-z ]+?)(?=\s*(?:\[|0x|$))")
_SITE = re.compile(r"\[(?:<(?P<addr>[0-9a-fA-Fx]*)>)?\]\s+(?P<rest>\S+(?:\s+\[[^\]\s]+\])?)")
_BYTES = re.compile(r"\b(?P<which>actual|expected):\s+(?P<bytes>(?:[0-9a-fA-F]{2,8}:)*[0-9a-fA-F]{2,8}|"
                    r"\[FAULT\]\s*\S*)")
_FLAGS = re.compile(r"ftrace record flags:\s*(?P<flags>[0-9a-fA-F]+)")
_COUNT = re.compile(r"(?:^|\s)\((?P<count>\d+)\)(?P<markers>(?:\s+[A-Z])*)")
_TRAMP = re.compile(r"(?<!expected )tramp:\s+(?P<tramp>\S+(?:\s+\([^)]*\))?)")
_EXPECTED_TRAMP = re.compile(r"expected tramp:\s*(?P<addr>[0-9a-fA-F]+)")
_ARCH_NOTE = re.compile(r"^(?:ftrace-\w+:|ftrace: |\S+: expected \(.*\) but got \(|.*\bexpected\b.*\bbut got\b)")


def parse_bytes(text: str) -> Bytes:
    text = text.strip()
    if text.startswith("[FAULT]"):
        return Bytes(b"", text, fault=True)
    out = bytearray()
    extended = False
    for tok in text.split(":"):
        value = int(tok, 16)
        if len(tok) > 2:
            extended = extended or tok.lower().startswith("ffffff")
            value &= 0xFF
        out.append(value)
    return Bytes(bytes(out), text, sign_extended=extended)


def address_state(text: str | None, width_bits: int | None) -> str:
    """How much an address printed in [<...>] can be trusted."""
    if text is None:
        return "stripped"  # `[]`: a mail archive ate `<...>` as an HTML tag
    digits = text.removeprefix("0x")
    if not digits:
        return "stripped"
    value = int(digits, 16)
    if value == 0:
        return "zeroed"  # kptr_restrict
    if len(digits) == 16 and value < 1 << 32:
        return "hashed"  # %p since v4.15 prints a hash, zero-padded to the pointer width
    if width_bits == 64 and value < 1 << 32:
        return "hashed"
    return "real"


def parse_ftrace(lines: list[LogLine]) -> tuple[FtraceBug, set[int]]:
    """The details, and the indexes of the lines that name the site (they are not a call trace)."""
    bug = FtraceBug()
    site_pending = False
    site_lines: set[int] = set()
    for index, line in enumerate(lines):
        text = line.text
        m = _VARIANT.match(text)
        if m and not bug.variant:
            bug.variant = m.group("v").strip()
            bug.errno = VARIANT_ERRNO.get(bug.variant, "")
            rest = text[m.end():]
            site_pending = not _read_site(bug, rest)
            site_lines.add(index)
            continue
        if site_pending and _read_site(bug, text):
            site_pending = False
            site_lines.add(index)
            continue
        for b in _BYTES.finditer(text):
            try:
                parsed = parse_bytes(b.group("bytes"))
            except ValueError:
                continue
            if b.group("which") == "actual" and bug.actual is None:
                bug.actual = parsed
            elif b.group("which") == "expected" and bug.expected is None and "tramp" not in text[b.start():b.end() + 6]:
                bug.expected = parsed
        if text in BUG_TYPES and not bug.bug_type:
            bug.bug_type, bug.bug_type_text = BUG_TYPES[text], text
        m = _FLAGS.search(text)
        if m and bug.flags is None:
            bug.flags = RecordFlags(int(m.group("flags"), 16), 0, [], "")
        m = _COUNT.search(text)
        if m and bug.flags is not None and not bug.flags.layout:
            bug.flags.layout = "pending"
            bug.flags.count = int(m.group("count"))
            bug.flags.markers = m.group("markers") or ""
        for t in _TRAMP.finditer(text):
            bug.tramps.append(t.group("tramp"))
        m = _EXPECTED_TRAMP.search(text)
        if m:
            bug.expected_tramp = parse_hex(m.group("addr"))
        if _ARCH_NOTE.match(text) and not text.startswith("ftrace: allocat"):
            bug.arch_notes.append(text)
    return bug, site_lines


def _read_site(bug: FtraceBug, text: str) -> bool:
    m = _SITE.search(text)
    if not m:
        return False
    bug.address_text = m.group("addr") or ""
    bug.address = parse_hex(bug.address_text.removeprefix("0x")) if bug.address_text else None
    rest = m.group("rest")
    s = SYMOFF.match(rest)
    if s:
        bug.symbol = s.group("sym")
        bug.offset = int(s.group("off"), 16)
        bug.size = int(s.group("size"), 16) if s.group("size") else None
        bug.module = s.group("mod") or ""
    elif rest.startswith("0x"):
        bug.symbol = ""  # kallsyms had no name for it: freed init text, or not kernel text at all
    return True


def decode_flags(flags: RecordFlags, version: tuple[int, int] | None) -> RecordFlags:
    layout = flag_layout(version)
    known = 0
    bits = []
    for bit, name, meaning in layout.bits:
        known |= 1 << bit
        if flags.raw & (1 << bit):
            bits.append(FlagBit(bit, name, meaning))
    count_mask = (1 << layout.shift) - 1
    unknown = flags.raw & ~known & ~count_mask & 0xFFFFFFFF
    count = flags.raw & count_mask
    return RecordFlags(flags.raw, count, sorted(bits, key=lambda b: -b.bit), layout.label, unknown, flags.markers)
