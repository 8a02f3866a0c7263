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
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from unitrace.backends.base import CompiledProgram, EmitFn, TraceTarget
from unitrace.backends.bpf import record
from unitrace.backends.bpf.program import (
    FATAL_BY_DEFAULT,
    PERF_WAKEUP_EVENTS,
    POLL_MS,
    PRE_EXEC,
    AggSpec,
    BpfPlan,
)
from unitrace.backends.bpf.ringbuf import RingBufReader, direct_read_supported
from unitrace.backends.ptrace.prototypes import call_texts, return_text
from unitrace.errors import TargetError, UnitraceError
from unitrace.events import Event, EventKind, Frame, SessionStats
from unitrace.system.procfs import state_of

DIST_PACKAGES = "/usr/lib/python3/dist-packages"
MAX_BACKLOG = 2_000_000  # records copied out and waiting to be decoded (~400 MB at most) before draining stops
_OFFSETS = record.python_offsets()
_HDR, _PID_AT, _USTACK_AT = record.HEADER_SIZE, _OFFSETS["pid"], _OFFSETS["ustack"]
_PID, _USTACK = struct.Struct("<I"), struct.Struct("<i")
DECODE_CHUNK = 256  # records decoded between two drains of the kernel's buffer (about 2 ms of decoding)


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

    _EMPTY: dict[int, bytes] = {}  # shared by records without strings; never written to

    def __init__(self, rec: record.Record, buf_addr: int) -> None:
        self._strs: dict[int, bytes] = self._EMPTY
        self._long: dict[int, bytes] = self._EMPTY
        self._words: dict[int, int] = {}  # pointer-array slots copied in the kernel: address -> value
        for addr, chunk in zip(rec.str_addr, rec.strs, strict=True):
            if addr and chunk:
                if self._strs is self._EMPTY:
                    self._strs = {}
                self._strs[addr] = chunk.split(b"\0", 1)[0]
        n = rec.buf_len
        self._buf = rec.buf if n > 0 else b""
        self._buf_addr = buf_addr if self._buf else -1
        self._ibuf = rec.ibuf
        self._ibuf_addr = rec.ibuf_addr if self._ibuf else -1
        if n == record.BUF_EXECARGS:
            self._exec_args(rec)

    def _exec_args(self, rec: record.Record) -> None:
        """execve(at)'s argv (pointers and the start of each string) and envp's length, copied at entry."""
        if len(rec.buf) < record.EXECARGS.size:
            return
        if self._strs is self._EMPTY:
            self._strs = {}
        self._long = {}
        *ptrs, envp, argc, envc, unread, _pad, strs = record.EXECARGS.unpack_from(rec.buf)
        args = rec.args
        argv = args[1] if args[2] == envp else args[2]  # execve or execveat
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


_NOTHING = CapturedMemory(record.Record(record.pack({"str_len": (-1, -1), "buf_len": -1, "ibuf_len": -1})), -1)
_KIND = record.HEADER_INDEX["kind"]


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
        self._attach_of = {a.fn_name: a for a in self.plan.attach}  # what each uprobe/kprobe function is
        self.target = target
        self.emit = emit
        self.options = options
        self.stats = SessionStats()
        self._bpf = None
        self._held = None
        self._stop = False
        self._closed = False
        self._batch: list[Event] = []
        self._raw: list[bytes] = []  # records copied out of the buffer, not decoded yet
        self._reader: RingBufReader | None = None  # the ring buffer read from its mapped pages (x86-64)
        self._by_nr: dict[int, tuple[str, int]] = {}
        self._comms: dict[bytes, str] = {}
        self._clock_offset = 0
        self._decoder = None
        self._tp_decoders: dict[int, object] = {}
        self.aggregates: list[AggRow] = []
        # strace mode: exit codes and fatal signals seen, and the started command's exit (its status is
        # only known from wait4, after the kernel's exit event)
        self._group_code: dict[int, int] = {}
        self._thread_code: dict[int, int] = {}
        self._killed: dict[int, int] = {}
        self._sent_fatal: dict[int, tuple[int, ...]] = {}  # pid -> (signo, si_code, si_errno, sender, uid)
        self._root_exit: Event | None = None
        self._perf_lost = 0  # perf-buffer transport: records the kernel could not write
        # DWARF user stacks: each process's maps (read when its first snapshot is copied out, before it
        # can exit) and a SnapshotMemory per process (its open files)
        self._maps: dict[int, object] = {}
        self._snapmem: dict[int, object] = {}

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
                    b.attach_uprobe(name=target, sym="" if a.addr else sym, addr=a.addr or None, fn_name=fn)
                else:
                    b.attach_uretprobe(name=target, sym="" if a.addr else sym, addr=a.addr or None, fn_name=fn)
        except Exception as exc:
            raise UnitraceError(f"the kernel refused to attach {a.kind} {a.symbol}: {exc}") from exc
        if self.plan.uses_syscalls:
            mask = b[b"ut_sysmask"]
            for nr, bits in self.plan.sysmask.items():
                mask[ctypes.c_int(nr)] = ctypes.c_uint64(bits)
        pids = b[b"ut_pids"]
        for pid in self.target.pids:
            pids[ctypes.c_uint32(pid)] = ctypes.c_uint8(1)
        if self._held is not None:  # traced from its exec on (program.py: ut_before_exec)
            pids[ctypes.c_uint32(self._held.pid)] = ctypes.c_uint8(PRE_EXEC)
        self._load_tracepoint_formats()
        if self.plan.transport == "perf":
            b[b"ut_events"].open_perf_buffer(self._on_perf_record, page_cnt=self.plan.buffer_pages,
                                             lost_cb=self._on_perf_lost, wakeup_events=PERF_WAKEUP_EVENTS)
        elif direct_read_supported() and os.environ.get("UNITRACE_BPF_READER") != "bcc":
            self._reader = RingBufReader(b[b"ut_events"].map_fd, self.plan.buffer_pages * 4096)
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
    # The buffer callbacks only copy the record's bytes out (bcc calls them once per record, from C); the
    # records are decoded in a batch after each poll, so the kernel's buffer drains at the rate of a copy.
    def _on_record(self, _ctx: object, data: int, size: int) -> int:
        self._raw.append(ctypes.string_at(data, size))
        return 0

    def _on_perf_record(self, _cpu: int, data: int, size: int) -> None:
        self._raw.append(ctypes.string_at(data, size))

    def _on_perf_lost(self, count: int) -> None:
        self._perf_lost += int(count)

    def _decode_pending(self) -> None:
        """Decode what the callbacks copied, a chunk at a time, draining the kernel's buffer again between
        chunks: copying out is ten times cheaper than decoding, so the kernel's buffer stays nearly empty and
        a burst waits here, in user memory, instead of being lost. Each chunk's events go to the sink."""
        raws = self._raw
        Record = record.Record
        to_event = self._to_event
        bare = self._bare_syscall
        unpack = record.HEADER.unpack_from
        header_size = record.HEADER_SIZE
        i = 0
        while i < len(raws):
            batch = self._batch
            chunk = raws[i: i + DECODE_CHUNK]
            for raw in chunk:
                if len(raw) == header_size:  # nothing captured: most syscalls, the fast path
                    h = unpack(raw)
                    ev = bare(h) if h[_KIND] == record.KIND_SYSCALL else to_event(Record(raw))
                else:
                    ev = to_event(Record(raw))
                if ev is not None:
                    batch.append(ev)
            i += len(chunk)  # not DECODE_CHUNK: a short chunk's successors come from the drain below
            self._drain()  # appends to raws
            if len(raws) > i:
                self._flush()
        self._raw = []

    def _drain(self) -> None:
        """Copy out whatever the kernel's buffer holds now, without waiting (the callbacks append to _raw).
        Past MAX_BACKLOG records waiting to be decoded, it leaves them in the kernel: a consumer that stays
        slower than the producer then loses records, counted there, instead of growing without bound."""
        assert self._bpf is not None
        if len(self._raw) > MAX_BACKLOG:
            return
        n = len(self._raw)
        if self._reader is not None:
            self._reader.read(self._raw)
        elif self.plan.transport == "perf":
            self._bpf.perf_buffer_consume()
        else:
            self._bpf.ring_buffer_consume()
        self._note_pids(n)

    def _note_pids(self, start: int) -> None:
        """Read the maps of every process first seen with a user-stack snapshot among the records copied
        out from `start` on: now, before it can exit, rather than when the record is decoded."""
        maps = self._maps
        for raw in self._raw[start:]:
            if len(raw) > _HDR and _USTACK.unpack_from(raw, _USTACK_AT)[0] == record.USTACK_SNAPSHOT:
                pid = _PID.unpack_from(raw, _PID_AT)[0]
                if pid not in maps:
                    from unitrace.stack.maps import Maps

                    try:
                        maps[pid] = Maps.of(pid)
                    except OSError:
                        pass

    def _poll(self, timeout_ms: int) -> None:
        assert self._bpf is not None
        n = len(self._raw)
        if self._reader is not None:
            if not self._reader.read(self._raw):
                self._reader.wait(timeout_ms)
                self._reader.read(self._raw)
        elif self.plan.transport == "perf":
            self._bpf.perf_buffer_poll(timeout_ms)
        else:
            self._bpf.ring_buffer_poll(timeout_ms)
        self._note_pids(n)
        self._decode_pending()

    def _consume(self) -> None:
        self._drain()
        self._decode_pending()

    def _syscall_decoder(self):  # type: ignore[no-untyped-def]
        if self._decoder is None:
            from unitrace.decode.api import FormatOptions
            from unitrace.decode.syscall import StraceDecoder

            opts = self.options.get("format_options")
            self._decoder = StraceDecoder(opts if isinstance(opts, FormatOptions) else FormatOptions())
            self._decoder.prepare(self.plan.sysmask)
        return self._decoder

    def _syscall_info(self, nr: int) -> tuple[str, int]:
        """(name, index of the argument whose memory the exit copied, or -1) of a syscall number, cached."""
        got = self._by_nr.get(nr)
        if got is None:
            from unitrace.backends.bpf.program import EXIT_CAPTURE
            from unitrace.decode.table import get_table

            info = get_table(self.plan.arch).by_nr.get(nr)
            name = info.name if info else f"syscall_{nr}"
            capture = EXIT_CAPTURE.get(name)
            got = self._by_nr[nr] = (name, capture[0] if capture else -1)
        return got

    def _comm(self, raw: bytes) -> str:
        comm = self._comms.get(raw)
        if comm is None:
            comm = self._comms[raw] = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
        return comm

    def _bare_syscall(self, h: tuple) -> Event:  # type: ignore[type-arg]
        """A syscall record without strings or buffers, from its unpacked header (record.HEADER's order)."""
        (ts, dur, a0, a1, a2, a3, a4, a5, ret, _s0, _s1, _ia, pid, tid, probe, cpu, nr, _kind, kstack, ustack,
         *_lens, comm) = h
        args = (a0, a1, a2, a3, a4, a5)
        name, _capture = self._by_nr.get(nr) or self._syscall_info(nr)
        dec = self._decoder or self._syscall_decoder()
        call = dec.enter(pid, nr, args, _NOTHING)
        texts, ret_text, err = dec.exit(call, ret, _NOTHING)
        return Event(EventKind.SYSCALL, ts + self._clock_offset, pid, tid, name, probe, cpu,
                     self._comms.get(comm) or self._comm(comm), texts, args, ret, ret_text, err, dur,
                     self._stack(ustack, kernel=False, pid=pid) if ustack >= 0 else None,
                     self._stack(kstack, kernel=True) if kstack >= 0 else None)

    def _to_event(self, rec: record.Record) -> Event | None:
        ts = rec.ts + self._clock_offset
        pid, tid, probe, cpu = rec.pid, rec.tid, rec.probe, rec.cpu
        comm = self._comm(rec.comm)
        kind = rec.kind
        args = rec.args
        kstack = self._stack(rec.kstack, kernel=True) if rec.kstack >= 0 else None
        if rec.usnap is not None:
            ustack = self._snapshot_stack(rec.usnap, pid)
        else:
            ustack = self._stack(rec.ustack, kernel=False, pid=pid) if rec.ustack >= 0 else None
        if kind == record.KIND_SYSCALL:
            nr = rec.nr
            ret = rec.ret
            name, capture = self._syscall_info(nr)
            mem = CapturedMemory(rec, args[capture] if capture >= 0 else -1)
            dec = self._decoder or self._syscall_decoder()
            sp = 0
            if name == "rt_sigreturn" and rec.ibuf_len == 8:  # the kernel copied the mask at sp + offset
                from unitrace.backends.bpf.program import SIGFRAME_MASK_FROM_SP

                sp = rec.ibuf_addr - SIGFRAME_MASK_FROM_SP
            call = dec.enter(pid, nr, args, mem, sp)
            texts, ret_text, err = dec.exit(call, ret, mem)
            return Event(EventKind.SYSCALL, ts, pid, tid, name, probe, cpu, comm, texts, args, ret, ret_text, err,
                         rec.dur, ustack, kstack)
        if kind >= record.KIND_NORETURN:
            return self._lifecycle_event(kind, rec, ts, pid, tid, cpu, comm, args)
        if kind == record.KIND_TRACEPOINT:
            dec_tp = self._tp_decoders.get(probe)
            system, event = self.plan.tracepoints[probe]
            fields = dec_tp.decode(rec.buf, 0) if dec_tp is not None else {}  # type: ignore[attr-defined]
            return Event(EventKind.TRACEPOINT, ts, pid, tid, f"{system}:{event}", probe, cpu, comm,
                         fields=fields, stack=ustack, kstack=kstack)
        # (the command's own calls from its exec on only: program.py's ut_before_exec decides in the kernel)
        att = self._attach_of.get(f"ut_probe_{probe}")
        name = att.symbol if att else ""
        user = att is not None and att.kind in ("uprobe", "uretprobe")
        if kind == record.KIND_CALL:
            strings = {a: s.split(b"\0", 1)[0] for a, s, n in zip(rec.str_addr, rec.strs, rec.str_len,
                                                                  strict=True) if a and n > 0}
            texts = call_texts(name, args, strings=strings) if user else tuple(hex(a) for a in args)
            return Event(EventKind.CALL, ts, pid, tid, name, probe, cpu, comm, texts, args, stack=ustack,
                         kstack=kstack)
        ret = rec.ret
        return Event(EventKind.RETURN, ts, pid, tid, name, probe, cpu, comm, ret=ret,
                     ret_text=return_text(name, ret) if user else str(ret), stack=ustack, kstack=kstack)

    def _lifecycle_event(self, kind: object, rec: record.Record, ts: int, pid: int, tid: int, cpu: int,
                         comm: str, args: tuple[int, ...]) -> Event | None:
        """strace mode: a call that never returns, a delivered signal, an exit, a fork."""
        from unitrace.decode.signals import format_siginfo, signal_name

        if kind == record.KIND_NORETURN:
            nr = rec.nr
            name = self._syscall_info(nr)[0]
            code = args[0] & 0xFF
            if name == "exit_group":
                self._group_code[pid] = code
            else:
                self._thread_code[tid] = code
            bits = rec.ret
            if not self.plan.lifecycle:  # only probes whose events are streamed (not counted in the kernel)
                bits &= sum(1 << i for i in self.plan.streamed)
            if not bits:
                return None  # not traced: only its exit code mattered
            call = self._syscall_decoder().enter(pid, nr, args, CapturedMemory(rec, -1))
            probe = (bits & -bits).bit_length() - 1
            return Event(EventKind.SYSCALL, ts, pid, tid, name, probe, cpu, comm, call.entry_args(),  # type: ignore[attr-defined]
                         args, None, "?")
        if kind == record.KIND_SIGGEN:
            self._sent_fatal[pid] = (rec.nr, *args[1:5])
            return None
        if kind == record.KIND_SIGNAL:
            sig = rec.nr
            raw = rec.buf[: record.SIGINFO_LEN].ljust(128, b"\0")
            handler = args[0]
            if sig == 9 and raw[:4] == b"\0\0\0\0":
                # the group is being killed for a fatal signal sent with the default action: show that
                # signal, as ptrace's signal-delivery stop does; a plain SIGKILL gets no line (as strace)
                sent = self._sent_fatal.pop(pid, None)
                self._killed[pid] = sent[0] if sent is not None else 9
                if sent is None:
                    return None
                sig, code, err, sender, uid = sent
                raw = struct.pack("<iiiiiI", sig, err, code, 0, sender, uid).ljust(128, b"\0")
                return Event(EventKind.SIGNAL, ts, pid, tid, signal_name(sig), 0, cpu, comm,
                             fields={"signo": sig, "siginfo": format_siginfo(raw)})
            if handler == 0 and sig in FATAL_BY_DEFAULT:
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
                # the kernel's frame-pointer walk (UNITRACE_BPF_USTACK=fp) proves nothing beyond the pc:
                # on code without frame pointers its links are whatever rbp holds
                sym = self._bpf.sym(addr, pid, show_module=True).decode("utf-8", "replace")
                frames.append(Frame(addr, sym if sym != "[unknown]" else "", how="fp",
                                    reliable=not frames and sym != "[unknown]"))
        return frames

    def _snapshot_stack(self, snap: record.Snapshot, pid: int) -> list[Frame]:
        """A DWARF user stack: the CFI unwinder over the registers and stack copy taken in the kernel, code
        read from the mapped files, symbolised as the ptrace backend's stacks. The process's maps are read
        when its pid is first seen and cached; read again when a pc lies in no mapping we know (exec, a new
        mmap). A process gone before its first record was decoded has no maps: its pc is printed with `?`."""
        from unitrace.stack.maps import Maps
        from unitrace.stack.snapshot import SnapshotMemory
        from unitrace.stack.unwind import Unwinder, symbolize

        pc = snap.regs[16]
        maps = self._maps.get(pid)
        if maps is None or maps.find(pc) is None:
            try:
                maps = self._maps[pid] = Maps.of(pid)
            except OSError:
                pass
        if maps is None:
            return [Frame(pc, how="regs", reliable=False)]
        mem = self._snapmem.get(pid)
        if mem is None or mem.maps is not maps:
            if mem is not None:
                mem.close()
            mem = self._snapmem[pid] = SnapshotMemory(snap.sp, b"", maps)
        mem.base, mem.stack = snap.sp, snap.stack
        frames = Unwinder(mem, maps).unwind(dict(snap.regs))
        return symbolize(frames, maps)

    # ---- running ------------------------------------------------------------------------------
    @property
    def root(self) -> int | None:
        """The started command's pid (None when attached to processes or system-wide)."""
        return self._held.pid if self._held is not None else None

    def stop(self) -> None:
        self._stop = True

    def run(self) -> int:
        assert self._bpf is not None
        last = time.monotonic()
        while True:
            done = self._stop or self._target_gone()
            try:
                self._poll(0 if done else POLL_MS)
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
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None
        for mem in self._snapmem.values():
            mem.close()  # type: ignore[attr-defined]
        self._snapmem.clear()


Callback = Callable[[list[Event]], None]

def _zombie(pid: int) -> bool:
    return state_of(pid) in ("Z", "X", "")  # "": gone
