"""Probes -> one bcc C program plus the plan user space needs to read its output. Pure.

Shape of the generated program:
- every syscall probe shares the two raw_syscalls handlers: sys_enter keeps the arguments (and up to two
  strings read from user memory) per thread, sys_exit decides per probe (a bit in `ut_sysmask[nr]`)
  whether the predicate holds and runs the probe's actions;
- each tracepoint, kprobe and uprobe probe gets a function of its own;
- `print` actions build a record (record.py: a header plus only the captured parts) in the per-CPU scratch
  `ut_out` and copy it out with ut_emit (ring buffer or perf buffer); aggregations update `ut_aggs`, keyed
  by probe, aggregation slot, up to two numeric keys, comm and a histogram bucket;
- a started command and its descendants are followed in the kernel: `ut_pids` is seeded with the
  command's pid and grows on sched_process_fork (bpftrace cannot do this, its issue #4839).
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from unitrace.backends.base import NO_RETURN_SYSCALLS, only_calls_that_never_return
from unitrace.backends.bpf import record
from unitrace.backends.bpf.cgen import NotInKernel, Scope, c_int, lower, split
from unitrace.decode.structs import RT_SIGFRAME_SIGMASK
from unitrace.errors import UnitraceError
from unitrace.model.expr import Expr, Name
from unitrace.model.probe import (
    AggregateAction,
    KernelTarget,
    PrintAction,
    Probe,
    Site,
    StackAction,
    SyscallTarget,
    TracepointTarget,
    UserTarget,
)

# Ring buffer sizes (pages, a power of two), chosen from the plan: a program that streams syscall records gets
# 64 MiB (a tight loop makes a million a second, and the consumer may be off the CPU for a while on a busy
# machine), one that streams other records 16 MiB, one that only aggregates in the kernel 1 MiB (its
# records are strace mode's lifecycle ones at most). Records are variable-sized (record.py): a syscall
# without strings or buffers is HEADER_SIZE bytes, so 64 MiB holds about 400,000 of them.
RINGBUF_PAGES_SYSCALLS = 16384
RINGBUF_PAGES_OTHER = 4096
RINGBUF_PAGES_NONE = 256
# the perf-buffer transport: the same total split over the CPUs' buffers (a record lands in the buffer of the
# CPU it was made on, and one busy thread stays on one CPU for a while), at least PERF_PAGES_MIN pages each
PERF_PAGES_MIN = 64
# Wake-ups are batched: records go out with BPF_RB_NO_WAKEUP until a CPU has written this fraction of the
# ring (divided by the CPUs) since its last wake-up, which is then forced; the consumer also polls with a
# timeout, so a quiet tail is read within POLL_MS. (bcc 0.26 has no map method for bpf_ringbuf_query, so
# the fill level is counted per CPU, in ut_unwoken, rather than asked of the ring.)
WAKE_FRACTION = 4
POLL_MS = 100
PERF_WAKEUP_EVENTS = 64  # the perf transport's equivalent: wake the reader every N records per CPU


def ringbuf_supported(release: str | None = None) -> bool:
    """BPF ring buffers (BPF_MAP_TYPE_RINGBUF) came with Linux 5.8; before, records go through perf buffers."""
    m = re.match(r"(\d+)\.(\d+)", release or platform.release())
    return m is None or (int(m.group(1)), int(m.group(2))) >= (5, 8)


def _transport_c(transport: str, pages: int, ncpus: int) -> list[str]:
    """The output map and ut_emit(ctx, r, pos): header + `pos` bytes of packed parts copied out of the
    per-CPU scratch record, a loss counted when the buffer has no room (perf counts its own)."""
    out = ["BPF_PERCPU_ARRAY(ut_out, struct ut_record, 1);  /* the record being built (too big for the stack) */"]
    if transport == "perf":
        out += ["BPF_PERF_OUTPUT(ut_events);",
                "static __always_inline void ut_emit(void *ctx, struct ut_record *r, u32 pos)",
                "{",
                "    u64 size = UT_HDR_SIZE + pos;",
                "    UT_OPAQUE(size);",
                "    if (size > sizeof(*r))  /* never: a bound for the verifier */",
                "        return;",
                "    ut_events.perf_submit(ctx, r, size);",
                "}"]
        return out
    wake = max(4096, pages * 4096 // WAKE_FRACTION // max(1, ncpus))
    out += [f"BPF_RINGBUF_OUTPUT(ut_events, {pages});",
            "BPF_PERCPU_ARRAY(ut_unwoken, u64, 1);  /* bytes written since this CPU last woke the reader */",
            "BPF_HASH(ut_snap_seen, u32, u8, 65536);  /* processes whose first stack snapshot woke the reader */",
            f"#define UT_WAKE_BYTES {wake}",
            "static __always_inline void ut_emit(void *ctx, struct ut_record *r, u32 pos)",
            "{",
            "    u64 size = UT_HDR_SIZE + pos;",
            "    u32 zero = 0;",
            "    UT_OPAQUE(size);",
            "    if (size > sizeof(*r))  /* never: a bound for the verifier */",
            "        return;",
            "    u64 flags = BPF_RB_NO_WAKEUP;",
            "    u64 *unwoken = ut_unwoken.lookup(&zero);",
            "    if (unwoken) {",
            "        *unwoken += size;",
            "        if (*unwoken >= UT_WAKE_BYTES) { *unwoken = 0; flags = BPF_RB_FORCE_WAKEUP; }",
            "        /* a process's first stack snapshot wakes the reader at once: it reads the process's maps */",
            "        /* before the process can exit */",
            "        u32 snap_pid = r->pid; u8 one = 1;",
            "        if (r->ustack == UT_USTACK_SNAPSHOT && !ut_snap_seen.lookup(&snap_pid)) {",
            "            ut_snap_seen.update(&snap_pid, &one);",
            "            *unwoken = 0; flags = BPF_RB_FORCE_WAKEUP;",
            "        }",
            "    }",
            "    if (ut_events.ringbuf_output(r, size, flags)) {",
            "        u64 *lost = ut_lost.lookup(&zero);",
            "        if (lost) (*lost)++;",
            "    }",
            "}"]
    return out


MAX_SYSCALL_NR = 1024
PRE_EXEC = 2  # ut_pids value of the started command until its exec (1: traced)
# signals whose default action ends the process (all but SIGCHLD, SIGCONT, SIGSTOP/TSTP/TTIN/TTOU, SIGURG,
# SIGWINCH)
FATAL_BY_DEFAULT = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 24, 25, 26, 27, 29, 30, 31,
                              *range(32, 65)})
# Output buffers captured at syscall exit: name -> (argument index, size; -1 = the return value bytes).
EXIT_CAPTURE: dict[str, tuple[int, int]] = {
    "read": (1, -1), "pread64": (1, -1), "recvfrom": (1, -1), "readlink": (1, -1), "readlinkat": (2, -1),
    "getcwd": (0, -1), "fstat": (1, 144), "newfstatat": (2, 144), "stat": (1, 144), "lstat": (1, 144),
    "statx": (4, 256), "pipe2": (0, 8), "pipe": (0, 8), "wait4": (1, 4), "uname": (0, 390),
    "getrlimit": (1, 16), "prlimit64": (3, 16), "clock_gettime": (1, 16), "sysinfo": (0, 112),
    "rt_sigaction": (2, 32), "rt_sigprocmask": (2, 8), "getrandom": (0, -1),
}

# Input buffers captured at syscall entry (what strace decodes from memory before the call):
# name -> (argument index, size; a negative size -k: the size is argument k, as write's count).
ENTRY_CAPTURE: dict[str, tuple[int, int]] = {
    "rt_sigaction": (1, 32), "rt_sigprocmask": (1, 8), "prlimit64": (2, 16), "setrlimit": (1, 16),
    "nanosleep": (0, 16), "clock_nanosleep": (2, 16), "futex": (3, 16), "write": (1, -2),
    "pwrite64": (1, -2), "sendto": (1, -2), "connect": (1, -2), "bind": (1, -2), "rt_sigsuspend": (0, 8),
    "clock_settime": (1, 16), "setitimer": (1, 32), "timer_settime": (2, 32), "sched_setaffinity": (2, -1),
    "clone3": (0, -1),
}

# where rt_sigreturn's mask lies above the stack pointer at entry (the handler's `ret` popped pretcode)
SIGFRAME_MASK_FROM_SP = RT_SIGFRAME_SIGMASK - 8


@dataclass(frozen=True, slots=True)
class Attach:
    kind: str  # "uprobe", "uretprobe", "kprobe", "kretprobe"
    target: str  # function, or library path
    symbol: str
    fn_name: str
    addr: int = 0  # uprobes: the function's link-time address in `target` (attached by address)


@dataclass(frozen=True, slots=True)
class AggSpec:
    probe: int
    slot: int
    func: str
    keys: tuple[str, ...]  # how each key column is named: "comm", or the key expression's text
    key_exprs: tuple[Expr, ...]
    value: Expr | None
    name: str
    params: tuple[int, ...] = ()
    in_kernel: bool = True


@dataclass(frozen=True, slots=True)
class BpfPlan:
    source: str
    sysmask: dict[int, int]  # syscall nr -> bit mask of probes
    attach: tuple[Attach, ...]
    tracepoints: dict[int, tuple[str, str]]  # probe -> (subsystem, event)
    residuals: dict[int, Expr]  # probe -> predicate part evaluated in user space
    aggregates: tuple[AggSpec, ...]
    streamed: frozenset[int]  # probes that send records (print, stack, or aggregation in user space)
    uses_syscalls: bool
    arch: str = field(default_factory=platform.machine)
    follow: bool = True
    lifecycle: bool = False
    transport: str = "ringbuf"  # or "perf" (kernels before 5.8)
    buffer_pages: int = RINGBUF_PAGES_NONE  # the ring buffer's pages, or the perf buffer's pages per CPU


class _Emitter:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def __call__(self, line: str = "") -> None:
        self.lines.append("    " * self.depth + line if line else "")

    def open(self, line: str) -> None:
        self(line + " {")
        self.depth += 1

    def close(self, tail: str = "") -> None:
        self.depth -= 1
        self("}" + tail)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _syscall_scope(arch: str) -> Scope:
    from unitrace.decode.table import get_table

    table = get_table(arch)

    def lookup(name: str) -> str | None:
        if name.startswith("arg") and name[3:].isdigit() and int(name[3:]) < 6:
            return f"f->args[{int(name[3:])}]"
        # a parameter name means the same position in every syscall of the set that has it
        positions = {i for info in table.by_name.values() for i, p in enumerate(info.params) if p.name == name}
        if len(positions) == 1:
            return f"f->args[{positions.pop()}]"
        return None

    return Scope(
        names={"pid": "tgid", "tid": "tid", "ret": "ret", "duration": "(now - f->ts)", "cpu":
               "bpf_get_smp_processor_id()", "uid": "(bpf_get_current_uid_gid() & 0xffffffff)",
               "errno": "((ret < 0 && ret > -4096) ? -ret : 0)", "func": "nr", "ts": "now"},
        strings={"comm": "comm"}, lookup=lookup)


def _regs_scope(is_return: bool) -> Scope:
    names = {"pid": "tgid", "tid": "tid", "cpu": "bpf_get_smp_processor_id()", "ts": "now",
             "uid": "(bpf_get_current_uid_gid() & 0xffffffff)"}
    if is_return:
        names["ret"] = "PT_REGS_RC(ctx)"
    else:
        for i in range(6):
            names[f"arg{i}"] = f"PT_REGS_PARM{i + 1}(ctx)"
    return Scope(names=names, strings={"comm": "comm"})


def _tracepoint_scope(fields: Sequence[str]) -> Scope:
    names = {"pid": "tgid", "tid": "tid", "cpu": "bpf_get_smp_processor_id()", "ts": "now",
             "uid": "(bpf_get_current_uid_gid() & 0xffffffff)"}
    names.update({f: f"args->{f}" for f in fields})
    return Scope(names=names, strings={"comm": "comm"})


def _key_name(expr: Expr) -> str:
    if isinstance(expr, Name):
        return expr.name
    from unitrace.lang import format_expr

    return format_expr(expr)


def _emit_actions(out: _Emitter, index: int, probe: Probe, scope: Scope, cond: str, residual: Expr | None,
                  kind: int, aggs: list[AggSpec], streamed: set[int], record_fill: list[str],
                  user_aggs: bool = False, ustack_bytes: int = 0) -> None:
    """`ustack_bytes`: user stacks as a snapshot of that many stack bytes (DWARF, unwound in user space);
    0: the kernel's frame-pointer walk (a stack id)."""
    wants_stream = residual is not None or any(isinstance(a, (PrintAction, StackAction)) for a in probe.actions)
    stack_kernel = any(isinstance(a, StackAction) and a.which in ("kernel", "both") for a in probe.actions)
    stack_user = any(isinstance(a, StackAction) and a.which in ("user", "both") for a in probe.actions)
    out.open(f"if ({cond})")
    slot = 0
    for action in probe.actions:
        if not isinstance(action, AggregateAction):
            continue
        key_names = tuple(_key_name(k) for k in action.keys)
        try:
            if residual is not None:
                raise NotInKernel("the predicate needs user space")
            if user_aggs:
                raise NotInKernel("exit and exit_group are seen at their entry only")
            numeric = [k for k in action.keys if not (isinstance(k, Name) and k.name == "comm")]
            if len(numeric) > 2:
                raise NotInKernel("at most two numeric keys in the kernel")
            key_c = [lower(k, scope) for k in numeric]
            value_c = lower(action.value, scope) if action.value is not None else "1"
        except NotInKernel:
            aggs.append(AggSpec(index, slot, action.func, key_names, action.keys, action.value, action.name,
                                action.params, in_kernel=False))
            wants_stream = True
            slot += 1
            continue
        aggs.append(AggSpec(index, slot, action.func, key_names, action.keys, action.value, action.name,
                            action.params))
        out.open("")
        out("struct ut_key key = {};")
        out(f"key.probe = {index}; key.slot = {slot};")
        for i, kc in enumerate(key_c):
            out(f"key.k{i} = {kc};")
        if any(isinstance(k, Name) and k.name == "comm" for k in action.keys):
            out("__builtin_memcpy(key.comm, comm, sizeof(key.comm));")
        out(f"s64 val = {value_c};")
        if action.func == "hist":
            out("key.bucket = ut_log2_bucket(val);")
        elif action.func == "lhist":
            lo, hi, step = ((*action.params, 0, 0, 1))[:3]
            out(f"key.bucket = ut_linear_bucket(val, {c_int(lo)}, {c_int(hi)}, {c_int(max(step, 1))});")
        out("struct ut_value zero = {.min = 0x7fffffffffffffffLL, .max = -0x7fffffffffffffffLL - 1};")
        out("struct ut_value *v = ut_aggs.lookup_or_try_init(&key, &zero);")
        out.open("if (v)")
        out("__sync_fetch_and_add(&v->count, 1);")
        out("__sync_fetch_and_add(&v->sum, val);")
        out("if (val < v->min) v->min = val;")
        out("if (val > v->max) v->max = val;")
        out.close()
        out.close()
        slot += 1
    if wants_stream:
        streamed.add(index)
        out("u32 zero_idx = 0; struct ut_record *r = ut_out.lookup(&zero_idx);")
        out.open("if (r)")
        out(f"ut_rec_init(r, {kind}, {index}, tgid, tid, now);")
        out("__builtin_memcpy(r->comm, comm, sizeof(r->comm));")
        out("u32 pos = 0;  /* bytes of captured parts packed into r->data (record.py) */")
        for line in record_fill:
            out(line)
        ctx = "ctx"
        if stack_kernel:
            out(f"r->kstack = ut_stacks.get_stackid({ctx}, 0);")
        if stack_user and ustack_bytes:
            out(f"pos = ut_put_ustack(r, pos, {ustack_bytes});  /* DWARF user stack: registers + stack copy */")
            out("r->ustack = UT_USTACK_SNAPSHOT;")
        elif stack_user:
            out(f"r->ustack = ut_stacks.get_stackid({ctx}, BPF_F_USER_STACK);")
        out(f"ut_emit({ctx}, r, pos);")
        out.close()
    out.close()


def _is_string(ctype: str) -> bool:
    """A NUL-terminated string argument (`const char __user *`), not an array of them (execve's argv)."""
    return " ".join(ctype.replace("__user", "").split()) == "const char *"


def _lifecycle_record(out: _Emitter, kind: int, tgid: str = "tgid", tid: str = "tid", ts: str = "bpf_ktime_get_ns()",
                      on_fail: str = "return 0;") -> None:
    """A lifecycle record's header in the scratch record `r` (strace mode); a missing scratch is a loss."""
    out("u32 zero_idx = 0; struct ut_record *r = ut_out.lookup(&zero_idx);")
    out.open("if (!r)")
    out(f"u64 *lost = ut_lost.lookup(&zero_idx); if (lost) (*lost)++; {on_fail}")
    out.close()
    out(f"ut_rec_init(r, {kind}, 0, {tgid}, {tid}, {ts});")
    out("bpf_get_current_comm(&r->comm, sizeof(r->comm));")


def _lifecycle(out: _Emitter, follow: bool) -> None:
    """strace mode: records for signals delivered, threads exiting and forks, so the front end can print
    `--- SIGX {...} ---`, `+++ exited with N +++` and follow the process tree as strace does."""

    # raw: the tracepoint's own fields lack the siginfo the line shows (si_pid, si_status, ...)
    out.open("RAW_TRACEPOINT_PROBE(signal_deliver)")
    out("u64 pt = bpf_get_current_pid_tgid(); u32 tgid = pt >> 32, tid = (u32)pt;")
    out("if (!ut_in_scope(tgid, tid)) return 0;")
    _lifecycle_record(out, record.KIND_SIGNAL)
    out("r->nr = (s32)ctx->args[0]; r->buf_len = " + str(record.SIGINFO_LEN) + ";")
    out(f"bpf_probe_read_kernel(r->data, {record.SIGINFO_LEN}, (void *)ctx->args[1]);")
    out("bpf_probe_read_kernel(&r->args[0], sizeof(u64), (void *)ctx->args[2]);  /* ka->sa.sa_handler */")
    out(f"ut_emit(ctx, r, {record.SIGINFO_LEN});")
    out("return 0;")
    out.close()
    out()
    # a fatal signal with the default action kills the group when it is sent: what signal_deliver sees then
    # is a SIGKILL without siginfo; the line strace shows is made from the sending
    fatal = sum(1 << (s - 1) for s in FATAL_BY_DEFAULT if s not in (9, 19))
    out.open("TRACEPOINT_PROBE(signal, signal_generate)")
    out("int sig = args->sig; void *ctx = args;")
    out(f"if (sig <= 0 || sig > 64 || !((0x{fatal:x}ULL >> (sig - 1)) & 1) || args->result != 0) return 0;")
    out("u32 target = args->pid;")
    out("if (!ut_in_scope(target, target)) return 0;")
    out("u64 pt = bpf_get_current_pid_tgid(); u64 ug = bpf_get_current_uid_gid();")
    _lifecycle_record(out, record.KIND_SIGGEN, tgid="target", tid="target")
    out("r->nr = sig; r->args[0] = target; r->args[1] = (s64)args->code; r->args[2] = (s64)args->errno;")
    out("r->args[3] = pt >> 32; r->args[4] = (u32)ug;")
    out("ut_emit(ctx, r, 0);")
    out("return 0;")
    out.close()
    out()


def generate(probes: Sequence[Probe], *, scoped: bool, arch: str | None = None,
             tracepoint_fields: dict[tuple[str, str], tuple[str, ...]] | None = None,
             resolve_user: object = None, follow: bool = True, lifecycle: bool = False,
             transport: str = "ringbuf", ncpus: int | None = None,
             ustack_bytes: int = record.USNAP_DEFAULT) -> BpfPlan:
    """`ustack_bytes`: bytes of user stack copied for `ustack` (0: frame pointers, a stack id). `follow`: the started command's (or attached processes') children and threads are traced too
    (in-kernel pid set), else only the threads given. `lifecycle`: strace mode (signals, exits, forks)."""
    arch = arch or platform.machine()
    if lifecycle and not any(p.points[0].kind == "syscall" for p in probes):
        raise UnitraceError("strace mode needs a syscall probe")
    out = _Emitter()
    out(record.c_defines())
    out(record.c_struct())
    out('#include "unitrace_bpf.h"')
    out()
    out("struct ut_inflight {")
    out(f"    u64 ts; u64 args[6]; s32 nr; s32 str_len[{record.N_STRS}]; u32 live;  /* 1: entered, not returned */")
    out(f"    u64 str_addr[{record.N_STRS}]; char strs[{record.N_STRS}][{record.STR_LEN}];")
    out(f"    u64 ibuf_addr; s32 ibuf_len; u32 pad2; char ibuf[{record.IBUF_LEN}];")
    out("    struct ut_execargs x;")
    out("};")
    out("BPF_PERCPU_ARRAY(ut_lost, u64, 1);")
    transport_at = len(out.lines)  # the output map and ut_emit go here, sized once the plan is known
    out("BPF_HASH(ut_pids, u32, u8, 65536);")
    out("BPF_HASH(ut_aggs, struct ut_key, struct ut_value, 65536);")
    out("BPF_STACK_TRACE(ut_stacks, 16384);")
    if any(p.points[0].kind == "syscall" for p in probes):
        out(f"BPF_ARRAY(ut_sysmask, u64, {MAX_SYSCALL_NR});")
        out("BPF_HASH(ut_inflight, u32, struct ut_inflight, 65536);")
        out("BPF_PERCPU_ARRAY(ut_scratch, struct ut_inflight, 1);")
    out()
    out(f"#define UT_SCOPED {1 if scoped else 0}")
    out(f"#define UT_FOLLOW {1 if follow else 0}")
    out("/* following: processes (tgid) are in the set; not following: only the threads given (tid) */")
    out.open("static __always_inline int ut_in_scope(u32 tgid, u32 tid)")
    out("if (!UT_SCOPED) return 1;")
    out("u32 key = UT_FOLLOW ? tgid : tid;")
    out("return ut_pids.lookup(&key) != 0;")
    out.close()
    out()
    # The started command is seeded as PRE_EXEC until its exec: before that it is a copy of the tracer,
    # whose own library calls (Python's strlen, malloc... on its way to execve) are not the command's.
    # Its syscalls count (its execve is the first line), its function calls do not.
    out(f"#define UT_PRE_EXEC {PRE_EXEC}")
    out.open("static __always_inline int ut_before_exec(u32 tgid, u32 tid)")
    out("if (!UT_SCOPED) return 0;")
    out("u32 key = UT_FOLLOW ? tgid : tid;")
    out("u8 *v = ut_pids.lookup(&key);")
    out("return v && *v == UT_PRE_EXEC;")
    out.close()
    out()
    out.open("RAW_TRACEPOINT_PROBE(sched_process_exec)")
    out("u64 pt = bpf_get_current_pid_tgid(); u32 tgid = pt >> 32, tid = (u32)pt;")
    out("u32 key = UT_FOLLOW ? tgid : tid;")
    out("u8 *v = ut_pids.lookup(&key);")
    out("if (v && *v == UT_PRE_EXEC) { u8 one = 1; ut_pids.update(&key, &one); }")
    out("return 0;")
    out.close()
    out()
    if follow or lifecycle:
        # follow forks in the kernel
        out.open("TRACEPOINT_PROBE(sched, sched_process_fork)")
        out("u64 pt = bpf_get_current_pid_tgid(); u32 tgid = pt >> 32, tid = (u32)pt; void *ctx = args;")
        out("if (!UT_SCOPED || !UT_FOLLOW || !ut_pids.lookup(&tgid)) return 0;")
        out("u32 child = args->child_pid; u8 one = 1;")
        out("ut_pids.update(&child, &one);")
        if lifecycle:
            _lifecycle_record(out, record.KIND_FORK)
            out("r->args[0] = child;")
            out("ut_emit(ctx, r, 0);")
        out("return 0;")
        out.close()
        out()
    # a thread that exits leaves the set (a reused pid is not traced by mistake) and drops its unfinished
    # syscall (exit, exit_group never return)
    out.open("TRACEPOINT_PROBE(sched, sched_process_exit)")
    out("u64 pt = bpf_get_current_pid_tgid(); u32 tgid = pt >> 32, tid = (u32)pt; void *ctx = args;")
    out("if (!ut_in_scope(tgid, tid)) return 0;")
    if any(p.points[0].kind == "syscall" for p in probes):
        out("ut_inflight.delete(&tid);")
    out("ut_pids.delete(&tid);")
    if lifecycle:
        _lifecycle_record(out, record.KIND_EXIT)
        out("ut_emit(ctx, r, 0);")
    out("return 0;")
    out.close()
    out()
    if lifecycle:
        _lifecycle(out, follow)

    sysmask: dict[int, int] = {}
    attach: list[Attach] = []
    tracepoints: dict[int, tuple[str, str]] = {}
    residuals: dict[int, Expr] = {}
    aggs: list[AggSpec] = []
    streamed: set[int] = set()
    syscall_probes = [(i, p) for i, p in enumerate(probes) if p.points[0].kind == "syscall"]
    if len(probes) > 64:
        raise UnitraceError("the bpf backend takes at most 64 probes per session")

    if syscall_probes:
        from unitrace.decode.table import get_table

        table = get_table(arch)
        string_args: dict[int, list[int]] = {}
        for i, probe in syscall_probes:
            for point in probe.points:
                assert isinstance(point.target, SyscallTarget)
                for name in point.target.names:
                    info = table.by_name.get(name)
                    if info is None or info.nr >= MAX_SYSCALL_NR:
                        continue
                    sysmask[info.nr] = sysmask.get(info.nr, 0) | (1 << i)
                    idx = [k for k, p in enumerate(info.params) if _is_string(p.ctype)][: record.N_STRS]
                    if idx:
                        string_args[info.nr] = idx
        out.open("TRACEPOINT_PROBE(raw_syscalls, sys_enter)")
        out("u64 pt = bpf_get_current_pid_tgid(); u32 tgid = pt >> 32, tid = (u32)pt; void *ctx = args;")
        out("if (!ut_in_scope(tgid, tid)) return 0;")
        out(f"s64 nr = args->id; if (nr < 0 || nr >= {MAX_SYSCALL_NR}) return 0;")
        out("u32 idx = nr; u64 *mask = ut_sysmask.lookup(&idx);")
        # exit and exit_group never return: their line (`= ?`) and, in strace mode, the exit code come from
        # the entry; outside strace mode only when a probe traces them (user space keeps the streamed ones)
        noret = [table.by_name[n].nr for n in sorted(NO_RETURN_SYSCALLS) if n in table.by_name]
        if not lifecycle:
            noret = [n for n in noret if n in sysmask]
        if noret:
            out.open(f"if ({' || '.join(f'nr == {n}' for n in noret)})")
            if not lifecycle:
                out("if (!mask || !*mask) return 0;")
            _lifecycle_record(out, record.KIND_NORETURN)
            out("r->nr = nr; r->ret = mask ? *mask : 0;  /* the probes that trace it, as bits */")
            out("#pragma unroll")
            out("for (int i = 0; i < 6; i++) r->args[i] = args->args[i];")
            out("ut_emit(ctx, r, 0);")
            out("return 0;")
            out.close()
        out("if (!mask || !*mask) return 0;")
        # each thread keeps its entry from one call to the next (sched_process_exit deletes it) and the
        # entry is written in place: no 1.3 KB copy into the hash and no delete per call; `live` says whether
        # a call is in flight
        out("struct ut_inflight *f = ut_inflight.lookup(&tid);")
        out.open("if (!f)")
        out("u32 zero = 0; struct ut_inflight *s = ut_scratch.lookup(&zero); if (!s) return 0;")
        out("s->live = 0; ut_inflight.update(&tid, s); f = ut_inflight.lookup(&tid);")
        out("if (!f) { u64 *lost = ut_lost.lookup(&zero); if (lost) (*lost)++; return 0; }  /* 65,536 live threads */")
        out.close()
        out("f->ts = bpf_ktime_get_ns(); f->nr = nr;")
        out("#pragma unroll")
        out("for (int i = 0; i < 6; i++) f->args[i] = args->args[i];")
        out("int s0 = -1, s1 = -1;")
        out.open("switch (nr)")
        for nr, idx in sorted(string_args.items()):
            a = [*idx, -1]
            out(f"case {nr}: s0 = {a[0]}; s1 = {a[1]}; break;")
        out.close()
        for s in range(record.N_STRS):
            out(f"f->str_len[{s}] = -1; f->str_addr[{s}] = 0;")
            out.open(f"if (s{s} >= 0 && s{s} < 6)")
            out(f"f->str_addr[{s}] = f->args[s{s}];")
            out(f"f->str_len[{s}] = bpf_probe_read_user_str(f->strs[{s}], {record.STR_LEN}, "
                f"(void *)f->str_addr[{s}]);")
            out.close()
        out("s32 ia = -1; s64 il = 0; f->ibuf_addr = 0; f->ibuf_len = -1;")
        icases = []
        for name, (arg, size) in sorted(ENTRY_CAPTURE.items()):
            info = table.by_name.get(name)
            if info is not None and info.nr in sysmask:
                icases.append(f"case {info.nr}: ia = {arg}; il = {size if size >= 0 else f'f->args[{-size}]'}; break;")
        sigret = table.by_name.get("rt_sigreturn")
        if sigret is not None and sigret.nr in sysmask and arch == "x86_64":
            # rt_sigreturn's argument is the signal frame on the user stack: the mask it restores lies at a
            # fixed offset from the stack pointer at entry, which only the task's saved registers know
            out.open(f"if (nr == {sigret.nr})")
            out("struct pt_regs *uregs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());")
            out("u64 usp = 0; bpf_probe_read_kernel(&usp, sizeof(usp), &uregs->sp);")
            out(f"if (usp) {{ f->ibuf_addr = usp + {SIGFRAME_MASK_FROM_SP}; "
                "if (bpf_probe_read_user(f->ibuf, 8, (void *)f->ibuf_addr) == 0) f->ibuf_len = 8; }")
            out.close()
        if icases:
            out.open("switch (nr)")
            for c in icases:
                out(c)
            out.close()
            out.open("if (ia >= 0 && ia < 6 && il > 0)")
            out(f"u64 n = il & 511; if (n > {record.IBUF_LEN}) n = {record.IBUF_LEN};")
            out("f->ibuf_addr = f->args[ia & 7];")
            out("if (n && bpf_probe_read_user(f->ibuf, n, (void *)f->ibuf_addr) == 0) f->ibuf_len = n;")
            out("else f->ibuf_len = -(s32)n;  /* not readable yet: exit tries again */")
            out.close()
        exec_nrs = {n: table.by_name[n].nr for n in ("execve", "execveat") if n in table.by_name}
        exec_traced = {n: nr for n, nr in exec_nrs.items() if nr in sysmask}
        for name, enr in exec_traced.items():
            a = 1 if name == "execve" else 2
            out(f"if (nr == {enr}) ut_read_execargs(&f->x, f->args[{a}], f->args[{a + 1}]);")
        out("f->live = 1;")
        out("return 0;")
        out.close()
        out()
        out.open("TRACEPOINT_PROBE(raw_syscalls, sys_exit)")
        out("u64 pt = bpf_get_current_pid_tgid(); u32 tgid = pt >> 32, tid = (u32)pt;")
        out("struct ut_inflight *f = ut_inflight.lookup(&tid); if (!f || !f->live) return 0;")
        out("s64 nr = f->nr; u32 idx = nr; u64 *maskp = ut_sysmask.lookup(&idx);")
        out("if (!maskp) { f->live = 0; return 0; }")
        out("u64 mask = *maskp; s64 ret = args->ret; u64 now = bpf_ktime_get_ns();")
        out("char comm[UT_COMM_LEN]; bpf_get_current_comm(&comm, sizeof(comm));")
        out("void *ctx = args;")
        scope = _syscall_scope(arch)
        # the strings and the input buffer were read at entry into the in-flight copy `f`; what the entry could
        # not read (a page not faulted in yet, such as a literal in .rodata) is read again now, after the kernel
        # itself read it (not for execve: that memory is gone by then). Then the parts are packed into r->data
        # in record.py's order, each only as long as it is, and the output buffer is read straight into place.
        not_exec = " && ".join(f"nr != {n}" for n in exec_nrs.values()) or "1"
        fill = [
            "r->nr = nr; r->ret = ret; r->dur = now - f->ts;",
            "__builtin_memcpy(r->args, f->args, sizeof(r->args));",
            "__builtin_memcpy(r->str_addr, f->str_addr, sizeof(r->str_addr));",
            "__builtin_memcpy(r->str_len, f->str_len, sizeof(r->str_len));",
            "r->ibuf_addr = f->ibuf_addr; r->ibuf_len = f->ibuf_len;",
            f"if ({not_exec}) {{",
        ]
        for k in range(record.N_STRS):
            fill.append(f"    if (r->str_addr[{k}] && r->str_len[{k}] < 0) r->str_len[{k}] = f->str_len[{k}] = "
                        f"bpf_probe_read_user_str(f->strs[{k}], {record.STR_LEN}, (void *)r->str_addr[{k}]);")
        fill.append(f"    if (r->ibuf_len < 0 && r->ibuf_addr) {{ u64 n = (u64)(-(s64)r->ibuf_len) & 511; "
                    f"if (n > {record.IBUF_LEN}) n = {record.IBUF_LEN}; "
                    "if (n && bpf_probe_read_user(f->ibuf, n, (void *)r->ibuf_addr) == 0) "
                    "r->ibuf_len = f->ibuf_len = n; }")
        fill.append("}")
        for k in range(record.N_STRS):
            fill.append(f"pos = ut_put(r->data, pos, f->strs[{k}], &r->str_len[{k}], {record.STR_LEN});")
        fill.append(f"pos = ut_put(r->data, pos, f->ibuf, &r->ibuf_len, {record.IBUF_LEN});")
        for enr in exec_traced.values():
            fill.append(f"if (nr == {enr}) {{ s32 xl = sizeof(f->x); pos = ut_put(r->data, pos, &f->x, &xl, "
                        f"{record.BUF_LEN}); r->buf_len = {record.BUF_EXECARGS}; }}")
        cases = []
        for name, (arg, size) in sorted(EXIT_CAPTURE.items()):
            info = table.by_name.get(name)
            if info is not None and info.nr in sysmask:
                cases.append(f"case {info.nr}: ba = {arg}; bl = {size if size >= 0 else 'ret'}; break;")
        if cases:
            fill.append("s32 ba = -1; s64 bl = 0;")
            fill.append("switch (nr) {")
            fill.extend("    " + c for c in cases)
            fill.append("}")
            fill.append(f"if (ba >= 0 && ba < 6 && bl > 0 && ret >= 0) {{ u32 n = bl > {record.BUF_LEN} ? "
                        f"{record.BUF_LEN} : (u32)bl; UT_OPAQUE(n); UT_OPAQUE(pos); n &= UT_LEN_MASK; pos &= UT_POS_MASK; "
                        "if (bpf_probe_read_user(r->data + pos, n, (void *)f->args[ba & 7]) == 0) "
                        "{ r->buf_len = n; pos += n; } }")
        for i, probe in syscall_probes:
            cond, residual = split(probe.predicate, scope)
            if residual is not None:
                residuals[i] = residual
            out.open(f"if (mask & (1ULL << {i}))")
            # exit and exit_group reach no sys_exit: their events come from the entry (above), so a probe on
            # them alone aggregates in user space, where those events arrive (one on many syscalls keeps its
            # kernel aggregation, which does not see these two: docs/bpf.md)
            _emit_actions(out, i, probe, scope, cond, residual, record.KIND_SYSCALL, aggs, streamed, fill,
                          user_aggs=only_calls_that_never_return(probe), ustack_bytes=ustack_bytes)
            out.close()
        out("f->live = 0;")
        out("return 0;")
        out.close()
        out()

    for i, probe in enumerate(probes):
        point = probe.points[0]
        if point.kind == "syscall":
            continue
        if len(probe.points) > 1:
            raise UnitraceError(f"{probe.span}: the bpf backend takes one point per probe for {point.kind}")
        if point.kind == "tracepoint":
            assert isinstance(point.target, TracepointTarget)
            t = point.target
            tracepoints[i] = (t.subsystem, t.event)
            fields = (tracepoint_fields or {}).get((t.subsystem, t.event), ())
            scope = _tracepoint_scope(fields)
            out.open(f"TRACEPOINT_PROBE({t.subsystem}, {t.event})")
            out("u64 pt = bpf_get_current_pid_tgid(); u32 tgid = pt >> 32, tid = (u32)pt;")
            out("if (!ut_in_scope(tgid, tid)) return 0;")
            out("u64 now = bpf_ktime_get_ns(); void *ctx = args;")
            out("char comm[UT_COMM_LEN]; bpf_get_current_comm(&comm, sizeof(comm));")
            cond, residual = split(probe.predicate, scope)
            if residual is not None:
                residuals[i] = residual
            fill = [f"r->buf_len = {record.BUF_LEN};",
                    f"if (bpf_probe_read_kernel(r->data, {record.BUF_LEN}, args)) {{ r->buf_len = sizeof(*args) & 511; "
                    "bpf_probe_read_kernel(r->data, sizeof(*args) & 511, args); }",
                    "pos = r->buf_len;"]
            _emit_actions(out, i, probe, scope, cond, residual, record.KIND_TRACEPOINT, aggs, streamed, fill,
                          ustack_bytes=ustack_bytes)
            out("return 0;")
            out.close()
            out()
            continue
        is_return = point.site is Site.RETURN
        fn = f"ut_probe_{i}"
        if isinstance(point.target, KernelTarget):
            attach.append(Attach("kretprobe" if is_return else "kprobe", point.target.function,
                                 point.target.function, fn))
        elif isinstance(point.target, UserTarget):
            from unitrace.symbols.elf import resolve_function

            path, sym = resolve_function(point.target.binary, point.target.symbol, where=str(point.span))
            # by address: an IFUNC resolves to the implementation selected here (symbols/ifunc.py), which
            # bcc's lookup by name would not (it would probe the resolver)
            attach.append(Attach("uretprobe" if is_return else "uprobe", path, point.target.symbol, fn,
                                 sym.value))
        else:
            raise UnitraceError(f"{point.span}: the bpf backend does not trace {point.kind} probes yet")
        scope = _regs_scope(is_return)
        out.open(f"int {fn}(struct pt_regs *ctx)")
        out("u64 pt = bpf_get_current_pid_tgid(); u32 tgid = pt >> 32, tid = (u32)pt;")
        out("if (!ut_in_scope(tgid, tid) || ut_before_exec(tgid, tid)) return 0;")
        out("u64 now = bpf_ktime_get_ns();")
        out("char comm[UT_COMM_LEN]; bpf_get_current_comm(&comm, sizeof(comm));")
        cond, residual = split(probe.predicate, scope)
        if residual is not None:
            residuals[i] = residual
        if is_return:
            fill = ["r->ret = PT_REGS_RC(ctx);"]
            kind = record.KIND_RETURN
        else:
            fill = [f"r->args[{k}] = PT_REGS_PARM{k + 1}(ctx);" for k in range(6)]
            kind = record.KIND_CALL
            if isinstance(point.target, UserTarget):
                # the strings a known library function takes, read now: afterwards the memory may be gone
                from unitrace.backends.ptrace.prototypes import builtin

                proto = builtin().get(point.target.symbol)
                strs = [k for k, t in enumerate(proto.params[:6] if proto else ()) if t in ("string", "format")]
                for j, k in enumerate(strs[: record.N_STRS]):
                    fill.append(f"r->str_addr[{j}] = r->args[{k}]; "
                                f"pos = ut_put_user_str(r->data, pos, r->args[{k}], &r->str_len[{j}]);")
        _emit_actions(out, i, probe, scope, cond, residual, kind, aggs, streamed, fill, ustack_bytes=ustack_bytes)
        out("return 0;")
        out.close()
        out()

    ncpus = ncpus or os.cpu_count() or 1
    pages = buffer_pages(transport, streamed, sysmask, ncpus)
    out.lines[transport_at:transport_at] = _transport_c(transport, pages, ncpus)
    return BpfPlan(out.text(), sysmask, tuple(attach), tracepoints, residuals, tuple(aggs), frozenset(streamed),
                   bool(syscall_probes), arch, follow, lifecycle, transport, pages)


def buffer_pages(transport: str, streamed: set[int], sysmask: dict[int, int], ncpus: int = 1) -> int:
    """How big the output buffer is, by what the plan streams (RINGBUF_PAGES_*); for the perf transport,
    the pages of each CPU's buffer (a power of two)."""
    if not streamed:
        pages = RINGBUF_PAGES_NONE
    else:
        streamed_mask = sum(1 << i for i in streamed)
        pages = (RINGBUF_PAGES_SYSCALLS if any(bits & streamed_mask for bits in sysmask.values()) else
                 RINGBUF_PAGES_OTHER)
    if transport != "perf":
        return pages
    per_cpu = max(PERF_PAGES_MIN, pages // max(1, ncpus))
    return 1 << (per_cpu.bit_length() - 1)
