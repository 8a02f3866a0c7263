"""A bcc session: compile and load the generated program, attach, stream the ring buffer, read the maps.

bcc comes from the distribution (Debian's python3-bpfcc), not from PyPI; scripts/setup.sh makes it
importable from our venv. BPF programs and probes are released by bcc's cleanup on every exit path we
control; kprobes/uprobes that bcc creates through perf (not tracefs) vanish with the process, SIGKILL
included.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from unitrace.backends.base import CompiledProgram, EmitFn, TraceTarget
from unitrace.backends.bpf import record
from unitrace.backends.bpf.program import PERF_PAGES, AggSpec, BpfPlan
from unitrace.errors import TargetError, UnitraceError
from unitrace.events import Event, EventKind, Frame, SessionStats

DIST_PACKAGES = "/usr/lib/python3/dist-packages"


def import_bcc():  # type: ignore[no-untyped-def]
    """Debian's bcc module, importable without putting all of dist-packages before our venv."""
    try:
        import bcc
    except ImportError:
        if DIST_PACKAGES in sys.path or not os.path.isdir(os.path.join(DIST_PACKAGES, "bcc")):
            raise UnitraceError("bcc is not installed", hint="apt-get install python3-bpfcc "
                                "(scripts/setup.sh does it)") from None
        sys.path.append(DIST_PACKAGES)
        import bcc
    return bcc


class CapturedMemory:
    """The tracee memory a BPF program copied at the time of the syscall, served to the decoders.

    Strings were read at entry (their addresses kept), the output buffer at exit; anything else is
    reported unreadable, and the decoders print the address, as strace does for memory it cannot read."""

    __slots__ = ("_buf", "_buf_addr", "_ibuf", "_ibuf_addr", "_long", "_strs", "_words")

    def __init__(self, rec: dict[str, object], buf_addr: int) -> None:
        self._strs: dict[int, bytes] = {}
        self._long: dict[int, bytes] = {}
        lens = rec["str_len"]
        raw = rec["strs"]
        assert isinstance(raw, bytes) and isinstance(lens, tuple)
        for i, addr in enumerate(rec["str_addr"]):  # type: ignore[arg-type]
            if addr and lens[i] > 0:
                chunk = raw[i * record.STR_LEN: i * record.STR_LEN + lens[i]]
                self._strs[addr] = chunk.split(b"\0", 1)[0]
        n = rec["buf_len"]
        self._buf = rec["buf"][: n] if isinstance(n, int) and n > 0 else b""  # type: ignore[index]
        self._buf_addr = buf_addr if self._buf else -1
        self._words: dict[int, int] = {}  # pointer-array slots copied in the kernel: address -> value
        il = rec.get("ibuf_len")
        self._ibuf = rec["ibuf"][: il] if isinstance(il, int) and il > 0 else b""  # type: ignore[index]
        self._ibuf_addr = int(rec.get("ibuf_addr") or 0) if self._ibuf else -1  # type: ignore[call-overload]
        if n == record.BUF_EXECARGS:
            self._exec_args(rec)

    def _exec_args(self, rec: dict[str, object]) -> None:
        """execve(at)'s argv (pointers and the start of each string) and envp's length, copied at entry."""
        *ptrs, envp, argc, envc, unread, _pad, strs = record.EXECARGS.unpack_from(rec["buf"])  # type: ignore[arg-type]
        args = rec["args"]
        argv = args[1] if args[2] == envp else args[2]  # type: ignore[index]  # execve or execveat
        if argv and argc >= 0:
            for i in range(argc):
                self._words[argv + 8 * i] = ptrs[i]
                if unread & (1 << i):
                    continue
                chunk = strs[i * record.ARGV_STR: (i + 1) * record.ARGV_STR]
                if b"\0" in chunk:
                    self._strs.setdefault(ptrs[i], chunk.split(b"\0", 1)[0])
                else:
                    self._long[ptrs[i]] = chunk  # the start of a longer string: enough for a short -s
            if argc < record.ARGV_MAX:
                self._words[argv + 8 * argc] = 0
        if envp and envc >= 0:
            for i in range(envc):
                self._words[envp + 8 * i] = 1  # counted, not copied: strace prints only the count
            self._words[envp + 8 * envc] = 0

    def read(self, addr: int, size: int) -> bytes | None:
        if size == 8 and addr in self._words:
            return self._words[addr].to_bytes(8, "little")
        if addr == self._buf_addr and size <= len(self._buf):
            return self._buf[:size]
        if addr == self._ibuf_addr and size <= len(self._ibuf):
            return self._ibuf[:size]
        if addr in self._strs and size <= len(self._strs[addr]):
            return self._strs[addr][:size]
        return None

    def read_cstr(self, addr: int, limit: int) -> bytes | None:
        s = self._strs.get(addr)
        if s is None:
            part = self._long.get(addr)
            return part[: limit + 1] if part is not None and limit < len(part) else None
        return s[: limit + 1]


@dataclass
class AggRow:
    spec: AggSpec
    keys: tuple[object, ...]
    bucket: int
    count: int
    total: int
    minimum: int
    maximum: int


class BpfSession:
    def __init__(self, program: CompiledProgram, target: TraceTarget, emit: EmitFn,
                 options: dict[str, object]) -> None:
        self.plan: BpfPlan = program.data["plan"]  # type: ignore[assignment]
        self.target = target
        self.emit = emit
        self.options = options
        self.stats = SessionStats()
        self._bpf = None
        self._held = None
        self._stop = False
        self._closed = False
        self._batch: list[Event] = []
        self._clock_offset = 0
        self._decoder = None
        self._tp_decoders: dict[int, object] = {}
        self.aggregates: list[AggRow] = []
        # strace mode: exit codes and fatal signals seen, and the started command's exit (its status is
        # only known from wait4, after the kernel's exit event)
        self._group_code: dict[int, int] = {}
        self._thread_code: dict[int, int] = {}
        self._killed: dict[int, int] = {}
        self._root_exit: Event | None = None
        self._perf_lost = 0  # perf-buffer transport: records the kernel could not write

    def __enter__(self) -> BpfSession:
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _say(self, text: str) -> None:
        """Start-up progress (bcc's clang run takes a second or more): on a terminal a line that the next
        one replaces and that is erased when loading is done; with UNITRACE_VERBOSE=1, plain lines."""
        say = self.options.get("notice")
        if callable(say):
            if text:
                say(text)
        elif os.environ.get("UNITRACE_VERBOSE") == "1":
            if text:
                print(text, file=sys.stderr, flush=True)
        elif sys.stderr.isatty():
            progress = text.endswith("...")
            print("\r\033[K" + (text if progress else ""), file=sys.stderr, end="", flush=True)

    def _setup(self) -> None:
        bcc = import_bcc()
        for pid in self.target.pids:
            if not os.path.exists(f"/proc/{pid}"):
                raise TargetError(f"no process with PID {pid}")
        if self.target.command:
            from unitrace.backends.spawn import HeldChild

            self._held = HeldChild(self.target.command)
        header_dir = str(Path(str(resources.files("unitrace.backends.bpf"))))
        self._say("unitrace: compiling the BPF program...")
        start = time.monotonic()
        try:
            self._bpf = bcc.BPF(text=self.plan.source.encode(), cflags=[f"-I{header_dir}", "-Wno-unused-variable",
                                                                "-Wno-unused-value"])
        except Exception as exc:  # bcc raises plain Exception with the compiler's output on stderr
            self._say("")
            raise UnitraceError(f"the BPF program did not compile or load: {exc}",
                                hint="unitrace doctor shows whether bcc has kernel headers") from exc
        self.compile_seconds = time.monotonic() - start
        self._say(f"unitrace: BPF program compiled and loaded in {self.compile_seconds:.2f} s")
        b = self._bpf
        try:
            for a in self.plan.attach:
                fn, target, sym = a.fn_name.encode(), a.target.encode(), a.symbol.encode()
                if a.kind == "kprobe":
                    b.attach_kprobe(event=target, fn_name=fn)
                elif a.kind == "kretprobe":
                    b.attach_kretprobe(event=target, fn_name=fn)
                elif a.kind == "uprobe":
                    b.attach_uprobe(name=target, sym=sym, fn_name=fn)
                else:
                    b.attach_uretprobe(name=target, sym=sym, fn_name=fn)
        except Exception as exc:
            raise UnitraceError(f"the kernel refused to attach {a.kind} {a.symbol}: {exc}") from exc
        if self.plan.uses_syscalls:
            mask = b[b"ut_sysmask"]
            for nr, bits in self.plan.sysmask.items():
                mask[ctypes.c_int(nr)] = ctypes.c_uint64(bits)
        pids = b[b"ut_pids"]
        seeds = list(self.target.pids)
        if self._held is not None:
            seeds.append(self._held.pid)
        for pid in seeds:
            pids[ctypes.c_uint32(pid)] = ctypes.c_uint8(1)
        self._load_tracepoint_formats()
        if self.plan.transport == "perf":
            b[b"ut_events"].open_perf_buffer(self._on_perf_record, page_cnt=PERF_PAGES, lost_cb=self._on_perf_lost)
        else:
            b[b"ut_events"].open_ring_buffer(self._on_record)
        self._clock_offset = time.time_ns() - time.monotonic_ns()
        if self._held is not None:
            self._held.release()

    def _load_tracepoint_formats(self) -> None:
        if not self.plan.tracepoints:
            return
        from unitrace.backends.ftrace.formats import RecordDecoder, read_format
        from unitrace.backends.ftrace.tracefs import find_tracefs

        root = find_tracefs()
        for probe, (system, event) in self.plan.tracepoints.items():
            if root is not None:
                self._tp_decoders[probe] = RecordDecoder(read_format(root, system, event))

    # ---- streaming ----------------------------------------------------------------------------
    def _on_record(self, _ctx: object, data: int, size: int) -> None:
        raw = ctypes.string_at(data, min(size, record.RECORD.size))
        rec = record.unpack(raw)
        ev = self._to_event(rec)
        if ev is not None:
            self._batch.append(ev)

    def _on_perf_record(self, _cpu: int, data: int, size: int) -> None:
        self._on_record(None, data, size)

    def _on_perf_lost(self, count: int) -> None:
        self._perf_lost += int(count)

    def _poll(self, timeout_ms: int) -> None:
        assert self._bpf is not None
        if self.plan.transport == "perf":
            self._bpf.perf_buffer_poll(timeout_ms)
        else:
            self._bpf.ring_buffer_poll(timeout_ms)

    def _consume(self) -> None:
        assert self._bpf is not None
        if self.plan.transport == "perf":
            self._bpf.perf_buffer_consume()
        else:
            self._bpf.ring_buffer_consume()

    def _syscall_decoder(self):  # type: ignore[no-untyped-def]
        if self._decoder is None:
            from unitrace.decode.api import FormatOptions
            from unitrace.decode.syscall import StraceDecoder

            opts = self.options.get("format_options")
            self._decoder = StraceDecoder(opts if isinstance(opts, FormatOptions) else FormatOptions())
        return self._decoder

    def _to_event(self, rec: dict[str, object]) -> Event | None:
        ts = int(rec["ts"]) + self._clock_offset  # type: ignore[call-overload]
        pid, tid, probe, cpu = (int(rec[k]) for k in ("pid", "tid", "probe", "cpu"))  # type: ignore[call-overload]
        comm = rec["comm"].split(b"\0", 1)[0].decode("utf-8", "replace")  # type: ignore[union-attr]
        kind = rec["kind"]
        args: tuple[int, ...] = tuple(rec["args"])  # type: ignore[arg-type]
        kstack = self._stack(int(rec["kstack"]), kernel=True)  # type: ignore[call-overload]
        ustack = self._stack(int(rec["ustack"]), kernel=False, pid=pid)  # type: ignore[call-overload]
        if kind == record.KIND_SYSCALL:
            from unitrace.backends.bpf.program import EXIT_CAPTURE
            from unitrace.decode.table import get_table

            nr = int(rec["nr"])  # type: ignore[call-overload]
            ret = int(rec["ret"])  # type: ignore[call-overload]
            info = get_table(self.plan.arch).by_nr.get(nr)
            name = info.name if info else f"syscall_{nr}"
            capture = EXIT_CAPTURE.get(name)
            mem = CapturedMemory(rec, args[capture[0]] if capture else -1)
            dec = self._syscall_decoder()
            sp = 0
            if name == "rt_sigreturn" and rec["ibuf_len"] == 8:  # the kernel copied the mask at sp + offset
                from unitrace.backends.bpf.program import SIGFRAME_MASK_FROM_SP

                sp = int(rec["ibuf_addr"]) - SIGFRAME_MASK_FROM_SP  # type: ignore[call-overload]
            call = dec.enter(pid, nr, args, mem, sp)
            texts, ret_text, err = dec.exit(call, ret, mem)
            return Event(EventKind.SYSCALL, ts, pid, tid, name, probe, cpu, comm, texts, args, ret, ret_text, err,
                         int(rec["dur"]), ustack, kstack)  # type: ignore[call-overload]
        if kind >= record.KIND_NORETURN:
            return self._lifecycle_event(kind, rec, ts, pid, tid, cpu, comm, args)
        if kind == record.KIND_TRACEPOINT:
            dec_tp = self._tp_decoders.get(probe)
            system, event = self.plan.tracepoints[probe]
            fields = dec_tp.decode(rec["buf"], 0) if dec_tp is not None else {}  # type: ignore[attr-defined]
            return Event(EventKind.TRACEPOINT, ts, pid, tid, f"{system}:{event}", probe, cpu, comm,
                         fields=fields, stack=ustack, kstack=kstack)
        if kind == record.KIND_CALL:
            att = next((a for a in self.plan.attach if a.fn_name == f"ut_probe_{probe}"), None)
            return Event(EventKind.CALL, ts, pid, tid, att.symbol if att else "", probe, cpu, comm,
                         tuple(hex(a) for a in args), args, stack=ustack, kstack=kstack)
        att = next((a for a in self.plan.attach if a.fn_name == f"ut_probe_{probe}"), None)
        ret = int(rec["ret"])  # type: ignore[call-overload]
        return Event(EventKind.RETURN, ts, pid, tid, att.symbol if att else "", probe, cpu, comm, ret=ret,
                     ret_text=str(ret), stack=ustack, kstack=kstack)

    def _lifecycle_event(self, kind: object, rec: dict[str, object], ts: int, pid: int, tid: int, cpu: int,
                         comm: str, args: tuple[int, ...]) -> Event | None:
        """strace mode: a call that never returns, a delivered signal, an exit, a fork."""
        from unitrace.decode.signals import format_siginfo, signal_name

        if kind == record.KIND_NORETURN:
            from unitrace.decode.table import get_table

            nr = int(rec["nr"])  # type: ignore[call-overload]
            info = get_table(self.plan.arch).by_nr.get(nr)
            name = info.name if info else f"syscall_{nr}"
            code = args[0] & 0xFF
            if name == "exit_group":
                self._group_code[pid] = code
            else:
                self._thread_code[tid] = code
            if not rec["ret"]:
                return None  # not traced: only its exit code mattered
            call = self._syscall_decoder().enter(pid, nr, args, CapturedMemory(rec, -1))
            return Event(EventKind.SYSCALL, ts, pid, tid, name, 0, cpu, comm, call.entry_args(),  # type: ignore[attr-defined]
                         args, None, "?")
        if kind == record.KIND_SIGNAL:
            sig = int(rec["nr"])  # type: ignore[call-overload]
            raw = bytes(rec["buf"])[: record.SIGINFO_LEN].ljust(128, b"\0")  # type: ignore[call-overload]
            handler = args[0]
            if handler == 0 and sig in _FATAL_BY_DEFAULT:
                self._killed[pid] = sig  # SIG_DFL on a fatal signal: the process dies of it
            return Event(EventKind.SIGNAL, ts, pid, tid, signal_name(sig), 0, cpu, comm,
                         fields={"signo": sig, "siginfo": format_siginfo(raw)})
        if kind == record.KIND_FORK:
            return Event(EventKind.FORK, ts, pid, tid, "", 0, cpu, comm, fields={"child": int(args[0])})
        # KIND_EXIT: how it ended. The started command's own status is the kernel's (wait4), read when the
        # run ends; for the others: a fatal signal delivered with the default action, else the code passed
        # to exit_group (the whole process) or exit (one thread)
        if self._held is not None and pid == tid == self._held.pid:
            self._root_exit = Event(EventKind.EXIT, ts, pid, tid, "", 0, cpu, comm)
            return None
        return self._exit_event(Event(EventKind.EXIT, ts, pid, tid, "", 0, cpu, comm), None)

    def _exit_event(self, ev: Event, status: int | None) -> Event:
        from unitrace.decode.signals import signal_name

        if status is not None:
            if os.WIFSIGNALED(status):
                ev.fields = {"signal": signal_name(os.WTERMSIG(status)), "core": os.WCOREDUMP(status)}
            else:
                ev.ret = os.WEXITSTATUS(status)
                ev.fields = {"status": ev.ret}
        elif ev.pid in self._killed:
            ev.fields = {"signal": signal_name(self._killed[ev.pid]), "core": False}
        else:
            ev.ret = self._group_code.get(ev.pid, self._thread_code.get(ev.tid, 0))
            ev.fields = {"status": ev.ret}
        return ev

    def _stack(self, stack_id: int, *, kernel: bool, pid: int = -1) -> list[Frame] | None:
        if stack_id < 0 or self._bpf is None:
            return None
        frames: list[Frame] = []
        from unitrace.symbols.kallsyms import kernel_symbolize

        for addr in self._bpf[b"ut_stacks"].walk(stack_id):
            if kernel:
                frames.append(kernel_symbolize(addr))
            else:
                sym = self._bpf.sym(addr, pid, show_module=True).decode("utf-8", "replace")
                frames.append(Frame(addr, sym if sym != "[unknown]" else "", how="fp",
                                    reliable=sym != "[unknown]"))
        return frames

    # ---- running ------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop = True

    def run(self) -> int:
        assert self._bpf is not None
        last = time.monotonic()
        while True:
            done = self._stop or self._target_gone()
            try:
                self._poll(0 if done else 100)
            except InterruptedError:
                pass
            self._flush()
            now = time.monotonic()
            if now - last > 1.0:
                self._read_lost()
                last = now
            if done:
                break
        self._consume()
        if self._root_exit is not None and self._held is not None:
            self._batch.append(self._exit_event(self._root_exit, self._held.wait()))
            self._root_exit = None
        self._flush()
        self._read_lost()
        self.aggregates = self.read_aggregates()
        if self._held is not None:
            if self._held.poll() is None and self._stop:
                return 128 + signal.SIGINT
            return self._held.exit_code()
        return 0

    def _flush(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            self.stats.events += len(batch)
            self.emit(batch)

    def _target_gone(self) -> bool:
        if self._held is not None:
            if self._held.poll() is None:
                return False
            # strace mode follows the whole tree, as strace -f: until the last traced process is gone
            return not (self.plan.lifecycle and self.plan.follow and self._followed_alive())
        if self.target.pids:
            return not any(os.path.exists(f"/proc/{p}") for p in self.target.pids)
        return False

    def _followed_alive(self) -> bool:
        assert self._bpf is not None
        for key in self._bpf[b"ut_pids"]:
            try:
                os.kill(key.value, 0)
            except ProcessLookupError:
                continue
            except PermissionError:
                pass
            if not _zombie(key.value):
                return True
        return False

    def _read_lost(self) -> None:
        assert self._bpf is not None
        per_cpu = self._bpf[b"ut_lost"][ctypes.c_int(0)]
        self.stats.lost_per_cpu = {cpu: int(v) for cpu, v in enumerate(per_cpu) if v}
        self.stats.lost = sum(int(v) for v in per_cpu) + self._perf_lost

    def read_aggregates(self) -> list[AggRow]:
        assert self._bpf is not None
        from unitrace.decode.table import get_table

        by_nr = get_table(self.plan.arch).by_nr
        specs = {(a.probe, a.slot): a for a in self.plan.aggregates if a.in_kernel}
        rows: list[AggRow] = []
        for key, val in self._bpf[b"ut_aggs"].items():
            spec = specs.get((key.probe, key.slot))
            if spec is None:
                continue
            numeric = iter((key.k0, key.k1))
            keys: list[object] = []
            for name in spec.keys:
                if name == "comm":
                    keys.append(key.comm.decode("utf-8", "replace"))
                elif name == "func":  # in the kernel, a syscall probe's `func` is the syscall number
                    nr = next(numeric)
                    info = by_nr.get(nr)
                    keys.append(info.name if info else f"syscall_{nr}")
                else:
                    keys.append(next(numeric))
            rows.append(AggRow(spec, tuple(keys), key.bucket, val.count, val.sum, val.min, val.max))
        return rows

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._held is not None:
            self._held.abort()
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None


Callback = Callable[[list[Event]], None]

# signals whose default action ends the process (term or core); the others are ignored, stop or continue
_FATAL_BY_DEFAULT = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 24, 25, 26, 27, 29, 30, 31,
                               *range(32, 65)})


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return True
