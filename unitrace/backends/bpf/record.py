"""The record the BPF program sends to user space, declared once.

RECORD_FIELDS is the single source: `c_struct()` renders it for the generated C, `RECORD` is the Python
struct that decodes it, and tests/test_bpf_offline.py compiles the C with gcc and compares every offset.
"""

from __future__ import annotations

import struct

STR_LEN = 256  # bytes of each captured string (paths); -s applies on top when printing
N_STRS = 2  # string arguments captured per event (rename has two paths)
BUF_LEN = 512  # bytes of an output buffer captured at syscall exit (read's data)
IBUF_LEN = 256  # bytes of an input buffer captured at syscall entry (write's data, rt_sigaction's act)

# (name, C declaration, struct code). Ordered for natural alignment without padding.
RECORD_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("ts", "u64 ts", "Q"),
    ("dur", "u64 dur", "Q"),
    ("args", "u64 args[6]", "6Q"),
    ("ret", "s64 ret", "q"),
    ("str_addr", f"u64 str_addr[{N_STRS}]", f"{N_STRS}Q"),
    ("ibuf_addr", "u64 ibuf_addr", "Q"),
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
    ("ibuf_len", "s32 ibuf_len", "i"),
    ("comm", "char comm[16]", "16s"),
    ("strs", f"char strs[{N_STRS}][{STR_LEN}]", f"{N_STRS * STR_LEN}s"),
    ("buf", f"char buf[{BUF_LEN}]", f"{BUF_LEN}s"),
    ("ibuf", f"char ibuf[{IBUF_LEN}]", f"{IBUF_LEN}s"),
)

# execve's argv and envp, copied at entry (the old image is gone at exit) into `buf` (buf_len = -2): up to
# ARGV_MAX argument pointers with the first ARGV_STR bytes of each string, and the number of environment
# pointers (up to ENV_MAX; -1 when unreadable or longer). struct ut_execargs in unitrace_bpf.h.
ARGV_MAX = 8
ARGV_STR = 48
ENV_MAX = 256
EXECARGS = struct.Struct(f"<{ARGV_MAX}QQiiII{ARGV_MAX * ARGV_STR}s")  # ptr[], envp, argc, envc, unread, pad, str
BUF_EXECARGS = -2

# record kinds (the `kind` field)
KIND_SYSCALL = 1
KIND_CALL = 2
KIND_RETURN = 3
KIND_TRACEPOINT = 4
# strace mode (lifecycle records): a call that never returns (exit, exit_group) seen at entry, `ret` = 1
# when the call is traced (its line is printed) and 0 when only its exit code matters; a delivered signal
# (`nr` = signo, `args[0]` = the handler, `buf` = the kernel_siginfo); a thread's exit; a fork (`args[0]` =
# the child's pid)
KIND_NORETURN = 5
KIND_SIGNAL = 6
KIND_EXIT = 7
KIND_FORK = 8
SIGINFO_LEN = 48  # sizeof(struct kernel_siginfo): signo, errno, code and the 32-byte union (uapi layout)

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
