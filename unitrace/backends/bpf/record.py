"""The record the BPF program sends to user space, declared once.

RECORD_FIELDS is the single source: `c_struct()` renders it for the generated C, `HEADER` is the Python
struct that decodes its fixed part, and tests/test_bpf_offline.py compiles the C with gcc and compares
every offset.

A record is variable-sized: the fixed header (HEADER_SIZE bytes: times, arguments, return value, ids, the
lengths of the captured parts, comm), then only the captured parts, packed one after the other in `data` in
PART_ORDER (string 0, string 1, the input buffer, the output buffer), each as long as its length field
says (absent when the length is not positive). The program builds the record in a per-CPU scratch map and
copies out header + used data (`bpf_ringbuf_output`, `perf_submit`), so a syscall without strings or
buffers costs HEADER_SIZE bytes of the buffer, not the 1.4 KB a fixed layout would.
"""

from __future__ import annotations

import struct

STR_LEN = 256  # bytes of each captured string (paths); -s applies on top when printing
N_STRS = 2  # string arguments captured per event (rename has two paths)
BUF_LEN = 512  # bytes of an output buffer captured at syscall exit (read's data)
IBUF_LEN = 256  # bytes of an input buffer captured at syscall entry (write's data, rt_sigaction's act)
# The parts are packed in this order; the output buffer comes last, so every part starts below POS_MASK + 1
# (N_STRS * STR_LEN + IBUF_LEN = 768), no part is longer than LEN_MASK, and all of them fit in DATA_LEN - 1
# (1,280 bytes at most): masks are how the verifier bounds the copies, and they never change a real value.
POS_MASK = 1023
LEN_MASK = 1023
# A user-stack snapshot (DWARF user stacks: `ustack` = USTACK_SNAPSHOT) comes last: USNAP (the user
# registers, the bytes copied and the bytes asked), then that many bytes of the stack from rsp. It starts
# below PARTS_END (every other part ends there) and copies at most USNAP_MAX bytes.
PARTS_END = 2048
USNAP_MAX = 16384
USNAP_DEFAULT = 8192
USNAP = struct.Struct("<8QII")  # rip, rsp, rbp, rbx, r12, r13, r14, r15; len; req
USNAP_DWARF = (16, 7, 6, 3, 12, 13, 14, 15)  # the DWARF register number of each USNAP register
USTACK_SNAPSHOT = -2  # `ustack`: no stack id, a snapshot is the last part
DATA_LEN = PARTS_END + USNAP.size + USNAP_MAX
assert N_STRS * STR_LEN + IBUF_LEN <= POS_MASK and BUF_LEN <= LEN_MASK
assert N_STRS * STR_LEN + IBUF_LEN + BUF_LEN < PARTS_END

# (name, C declaration, struct code). Ordered for natural alignment without padding; `data` is last.
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
    ("data", f"char data[{DATA_LEN}]", f"{DATA_LEN}s"),
)

# execve's argv and envp, copied at entry (the old image is gone at exit) into the output-buffer part
# (buf_len = -2): up to ARGV_MAX argument pointers with the first ARGV_STR bytes of each string, and the
# number of environment pointers (up to ENV_MAX; -1 when unreadable or longer). struct ut_execargs in
# unitrace_bpf.h.
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
# (`nr` = signo, `args[0]` = the handler, the output buffer = the kernel_siginfo); a thread's exit; a fork
# (`args[0]` = the child's pid)
KIND_NORETURN = 5
KIND_SIGNAL = 6
KIND_EXIT = 7
KIND_FORK = 8
# a fatal-by-default signal sent to a traced process (`nr` = signo, args: target pid, si_code, si_errno, the
# sender's tgid and uid). The kernel kills the whole group at once for such a signal (SIGNAL_GROUP_EXIT) and
# then "delivers" a SIGKILL without siginfo, so this record is where strace's `--- SIGUSR1 {...} ---` comes from
KIND_SIGGEN = 9
SIGINFO_LEN = 48  # sizeof(struct kernel_siginfo): signo, errno, code and the 32-byte union (uapi layout)

RECORD = struct.Struct("<" + "".join(code for _, _, code in RECORD_FIELDS))
HEADER = struct.Struct("<" + "".join(code for name, _, code in RECORD_FIELDS if name != "data"))
HEADER_SIZE = HEADER.size


def _header_index() -> dict[str, int]:
    """Where each header field's first value is in HEADER.unpack's flat tuple (arrays take several)."""
    out: dict[str, int] = {}
    i = 0
    for name, _, code in RECORD_FIELDS[:-1]:
        out[name] = i
        i += int(code[:-1]) if code[:-1].isdigit() and not code.endswith("s") else 1
    return out


HEADER_INDEX = _header_index()
assert RECORD_FIELDS[-1][0] == "data" and RECORD.size == HEADER_SIZE + DATA_LEN


def c_struct(name: str = "ut_record") -> str:
    body = "\n".join(f"    {decl};" for _, decl, _ in RECORD_FIELDS)
    return f"struct {name} {{\n{body}\n}};"


def c_defines() -> str:
    """The sizes unitrace_bpf.h's record helpers (ut_rec_init, ut_put) and ut_emit use."""
    return "\n".join((f"#define UT_HDR_SIZE {HEADER_SIZE}", f"#define UT_DATA_LEN {DATA_LEN}",
                      f"#define UT_POS_MASK {POS_MASK}", f"#define UT_LEN_MASK {LEN_MASK}",
                      f"#define UT_N_STRS {N_STRS}", f"#define UT_STR_LEN {STR_LEN}",
                      f"#define UT_PARTS_MASK {PARTS_END - 1}",
                      f"#define UT_USNAP_MAX {USNAP_MAX}", f"#define UT_USNAP_HDR {USNAP.size}",
                      f"#define UT_USTACK_SNAPSHOT {USTACK_SNAPSHOT}"))


def python_offsets() -> dict[str, int]:
    """Offset of every field as the Python decoder sees it."""
    out: dict[str, int] = {}
    fmt = "<"
    for name, _, code in RECORD_FIELDS:
        out[name] = struct.calcsize(fmt)
        fmt += code
    return out


def buf_part_len(buf_len: int) -> int:
    """Bytes the output-buffer part takes for this `buf_len` (execve's arguments have their own size)."""
    if buf_len == BUF_EXECARGS:
        return EXECARGS.size
    return buf_len if buf_len > 0 else 0


class Record:
    """One decoded record: the header's values as attributes, the captured parts as bytes."""

    __slots__ = ("args", "buf", "buf_len", "comm", "cpu", "dur", "ibuf", "ibuf_addr", "ibuf_len", "kind",
                 "kstack", "nr", "pid", "probe", "ret", "str_addr", "str_len", "strs", "tid", "ts", "usnap", "ustack")

    def __init__(self, raw: bytes) -> None:
        (self.ts, self.dur, a0, a1, a2, a3, a4, a5, self.ret, s0, s1, self.ibuf_addr, self.pid, self.tid,
         self.probe, self.cpu, self.nr, self.kind, self.kstack, self.ustack, l0, l1, self.buf_len,
         self.ibuf_len, self.comm) = HEADER.unpack_from(raw)
        self.args = (a0, a1, a2, a3, a4, a5)
        self.str_addr = (s0, s1)
        self.str_len = (l0, l1)
        pos = HEADER_SIZE
        strs = []
        for n in (l0, l1):
            if n > 0:
                strs.append(raw[pos: pos + n])
                pos += n
            else:
                strs.append(b"")
        self.strs = tuple(strs)
        il = self.ibuf_len
        if il > 0:
            self.ibuf = raw[pos: pos + il]
            pos += il
        else:
            self.ibuf = b""
        bl = buf_part_len(self.buf_len)
        self.buf = raw[pos: pos + bl] if bl else b""
        self.usnap = Snapshot(raw, pos + bl) if self.ustack == USTACK_SNAPSHOT else None


class Snapshot:
    """A user-stack snapshot part: the registers (DWARF number -> value) and the stack bytes from rsp."""

    __slots__ = ("regs", "req", "sp", "stack")

    def __init__(self, raw: bytes, pos: int) -> None:
        vals = USNAP.unpack_from(raw, pos)
        self.regs = dict(zip(USNAP_DWARF, vals[:8], strict=True))
        self.sp = vals[1]
        n, self.req = vals[8], vals[9]
        self.stack = raw[pos + USNAP.size: pos + USNAP.size + n]


def pack(values: dict[str, object]) -> bytes:
    """A record as the kernel sends it (header + the parts named in `values`): for tests and fixtures."""
    flat: list[object] = []
    for name, _, code in RECORD_FIELDS:
        if name == "data":
            continue
        v = values.get(name, b"" if code.endswith("s") else 0)
        if code[:-1].isdigit() and not code.endswith("s"):
            flat.extend(v if isinstance(v, tuple | list) else (v,) * int(code[:-1]))  # type: ignore[arg-type]
        else:
            flat.append(v)
    tail = b"".join(bytes(p) for p in values.get("parts", ()))  # type: ignore[attr-defined]
    return HEADER.pack(*flat) + tail
