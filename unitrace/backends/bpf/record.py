"""The record the BPF program sends to user space, declared once.

RECORD_FIELDS is the single source: `c_struct()` renders it for the generated C, `RECORD` is the Python
struct that decodes it, and tests/test_bpf_offline.py compiles the C with gcc and compares every offset.
"""

from __future__ import annotations

import struct

STR_LEN = 256  # bytes of each captured string (paths); -s applies on top when printing
N_STRS = 2  # string arguments captured per event (rename has two paths)
BUF_LEN = 512  # bytes of an output buffer captured at syscall exit (read's data)

# (name, C declaration, struct code). Ordered for natural alignment without padding.
RECORD_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("ts", "u64 ts", "Q"),
    ("dur", "u64 dur", "Q"),
    ("args", "u64 args[6]", "6Q"),
    ("ret", "s64 ret", "q"),
    ("str_addr", f"u64 str_addr[{N_STRS}]", f"{N_STRS}Q"),
    ("pid", "u32 pid", "I"),
    ("tid", "u32 tid", "I"),
    ("probe", "u32 probe", "I"),
    ("cpu", "u32 cpu", "I"),
    ("nr", "s32 nr", "i"),
    ("kind", "u32 kind", "I"),
    ("kstack", "s32 kstack", "i"),
    ("ustack", "s32 ustack", "i"),
    ("str_len", f"s32 str_len[{N_STRS}]", f"{N_STRS}i"),
    ("buf_len", "s32 buf_len", "i"),
    ("pad", "u32 pad", "I"),
    ("comm", "char comm[16]", "16s"),
    ("strs", f"char strs[{N_STRS}][{STR_LEN}]", f"{N_STRS * STR_LEN}s"),
    ("buf", f"char buf[{BUF_LEN}]", f"{BUF_LEN}s"),
)

# record kinds (the `kind` field)
KIND_SYSCALL = 1
KIND_CALL = 2
KIND_RETURN = 3
KIND_TRACEPOINT = 4

RECORD = struct.Struct("<" + "".join(code for _, _, code in RECORD_FIELDS))


def c_struct(name: str = "ut_record") -> str:
    body = "\n".join(f"    {decl};" for _, decl, _ in RECORD_FIELDS)
    return f"struct {name} {{\n{body}\n}};"


def python_offsets() -> dict[str, int]:
    """Offset of every field as the Python decoder sees it."""
    out: dict[str, int] = {}
    fmt = "<"
    for name, _, code in RECORD_FIELDS:
        out[name] = struct.calcsize(fmt)
        fmt += code
    return out


def unpack(data: bytes) -> dict[str, object]:
    values = RECORD.unpack_from(data)
    out: dict[str, object] = {}
    i = 0
    for name, _, code in RECORD_FIELDS:
        count = int(code[:-1]) if code[:-1].isdigit() and code[-1] != "s" else 1
        if count > 1:
            out[name] = values[i: i + count]
            i += count
        else:
            out[name] = values[i]
            i += 1
    return out
