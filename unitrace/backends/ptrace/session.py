"""The ptrace tracing engine: start or attach, follow, decode, detach.

One thread owns every tracee (ptrace requests must come from the thread that attached). The loop waits for
stops with waitpid(__WALL): first without blocking, and when nothing is ready it hands the batch of events
over before it blocks. A blocking waitpid is not interrupted by a Python signal handler (PEP 475 retries
it), and a stop request may come from another thread, so stop() wakes the loop by forking a child that
exits at once: its exit ends the wait. A traced program sees the signal dispositions it would see
untraced: the child resets SIGPIPE and SIGXFSZ, which Python ignores, before it execs (RELIABILITY #12).

Ending (SIGINT/SIGTERM/SIGHUP, stop(), or an internal error): as strace does, a command we started gets
the terminating signal (after a SIGCONT) and every tracee is detached, none left in a ptrace-stop; a
group-stopped process stays stopped. With --kill-on-exit the tracees are killed instead. run() returns the
started command's exit code, or 128+signal when it was killed (strace re-raises the signal on itself; our
CLI does that with this number).

Seccomp: with a subset of syscalls and -f, the child installs a filter before exec that stops it only at
those (PTRACE_EVENT_SECCOMP); PTRACE_O_EXITKILL then guarantees that no process keeps running under our
filter once we are gone. Without -f the filter is not used, as strace does, because untraced children
would inherit it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import signal
import stat
import struct
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from unitrace.backends.base import CompiledProgram, EmitFn, TraceTarget
from unitrace.backends.ptrace import sys as px
from unitrace.backends.ptrace.memory import TraceeMemory
from unitrace.errors import TargetError, UnitraceError
from unitrace.events import Event, EventKind, SessionStats
from unitrace.system.procfs import comm_of, state_of, status_fields, tgid_of, tracer_of

if TYPE_CHECKING:  # imported when a session has breakpoints or watchpoints: not on strace's start-up path
    from unitrace.backends.ptrace.breakpoints import Breakpoints
    from unitrace.backends.ptrace.watchpoints import Watchpoints

SYSCALL_TRAP = signal.SIGTRAP | 0x80
SYSCALL_STOP_STATUS = (SYSCALL_TRAP << 8) | 0x7F  # WIFSTOPPED, SIGTRAP|0x80, no ptrace event
TRAP_STOP_STATUS = (signal.SIGTRAP << 8) | 0x7F  # a plain SIGTRAP stop: an int3 of ours, most likely
# With breakpoints, the loop polls waitpid this many times before it blocks: a tracee that hits the next
# breakpoint within some tens of microseconds is then met awake, not by a wake-up of an idle CPU, which
# costs about 40 us a stop in a VM (measured in bench/ltrace_calls.py). A poll that finds nothing gives up.
SPIN_POLLS = 48
# The same for syscall stops: a tracee in a loop of short syscalls is back at its next stop within tens of
# microseconds, and meeting it awake saves the wake-up and, above all, a hand-over of the batch per stop
# (bench/ptrace_syscalls.py, open/fstat/close: 2x strace's time without, under strace's with). A poll round
# that finds nothing makes the next ones short (SYSCALL_SPIN_MISS), so a tracee that computes between its
# calls costs a few polls a stop, not a spinning CPU; a hit restores the full round. Only with a second CPU
# for the tracee to run on while we poll.
SYSCALL_SPIN_POLLS = 64
SYSCALL_SPIN_MISS = 4
_INFO_ENTRY = struct.Struct("<16xQQ6Q").unpack_from  # sp, nr, args[6] of struct ptrace_syscall_info
_INFO_EXIT = struct.Struct("<24xq").unpack_from  # rval
_REGS = px.USER_REGS.unpack_from
_RAX, _ORIG_RAX, _RSP = px.REG["rax"], px.REG["orig_rax"], px.REG["rsp"]
_RDI, _RSI, _RDX, _R10, _R8, _R9 = (px.REG[n] for n in ("rdi", "rsi", "rdx", "r10", "r8", "r9"))
_STOP_SIGNALS = frozenset({signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU})
_EXIT_CALLS = frozenset({"exit", "exit_group"})
# Calls that can sleep for long: with one tracee, their entry is shown (`read(0, `) when the tracer would
# otherwise wait for them in silence. Announcing every call would cost an event per syscall, as most calls
# are still running when the tracer first looks.
_MAY_SLEEP = frozenset({
    "read", "readv", "pread64", "preadv", "preadv2", "write", "writev", "pwrite64", "pwritev", "pwritev2",
    "recvfrom", "recvmsg", "recvmmsg", "sendto", "sendmsg", "sendmmsg", "accept", "accept4", "connect",
    "poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2", "wait4", "waitid",
    "nanosleep", "clock_nanosleep", "pause", "futex", "futex_waitv", "rt_sigsuspend", "rt_sigtimedwait",
    "msgrcv", "msgsnd", "semop", "semtimedop", "mq_timedreceive", "mq_timedsend", "flock", "fcntl", "open",
    "openat", "openat2", "ioctl", "io_getevents", "io_pgetevents", "io_uring_enter", "splice", "tee",
    "sendfile", "copy_file_range", "fsync", "fdatasync", "sync", "syncfs", "sync_file_range", "vfork",
    "execve", "execveat", "close", "sched_yield",
})


@dataclass(slots=True)
class Tracee:
    tid: int
    tgid: int
    in_syscall: bool = False
    call: object = None  # the decoder's state for the syscall in progress
    nr: int = -1
    entry_ns: int = 0
    entry_wall: int = 0
    skip: bool = False  # a syscall we are not asked about (no seccomp filter): no decoding
    stopped: bool = False  # in a ptrace-stop we have not resumed yet
    group_stopped: bool = False  # in PTRACE_LISTEN
    pending_sig: int = 0  # signal to inject when resumed or detached
    attached_by_us: bool = False  # -p (detach on exit) rather than started (strace semantics)
    entry_emitted: bool = False
    raw: tuple[int, ...] = ()
    stack: object = None  # -k: (frames, relative addresses) captured at entry (execve, exit)


def _find_command(name: str) -> str:
    """The file execve gets, as strace and the shell find it: a name with a slash as given, else the first
    match on PATH; not resolved further (execve of `sh` shows /usr/bin/sh, not the link's target)."""
    if "/" in name:
        if not os.path.exists(name):
            raise TargetError(f"no such file: {name}")
        return name
    found = shutil.which(name)
    if not found:
        raise TargetError(f"command not found: {name}")
    return found


class PtraceSession:
    def __init__(self, program: CompiledProgram, target: TraceTarget, emit: EmitFn,
                 options: Mapping[str, object]) -> None:
        from unitrace.decode.api import FormatOptions
        from unitrace.decode.syscall import StraceDecoder
        from unitrace.decode.table import get_table

        self.target = target
        self.emit_batch = emit
        self.options = options
        self.stats = SessionStats()
        self.table = get_table()
        fmt = options.get("format_options")
        fmt = fmt if isinstance(fmt, FormatOptions) else FormatOptions()
        if options.get("need_decode") is False and fmt.decode:
            fmt = replace(fmt, decode=False)  # counting only (-c): names, return values and times
        self.decoder = StraceDecoder(fmt)
        names = program.data.get("syscalls")
        self.wanted: frozenset[int] | None = (frozenset(self.table.by_name[n].nr for n in names  # type: ignore[union-attr]
                                                        if n in self.table.by_name)
                                              if names is not None else None)
        self.decoder.prepare(self.wanted if self.wanted is not None else self.table.by_nr)
        self.follow = bool(options.get("follow_forks", target.follow_forks))
        # Breakpoints live in memory that forks copy and threads share: with any, every child is traced
        # (a child we let go would die on the first int3); what the user did not ask for is not reported.
        self.report_children = self.follow
        self.bps = self._breakpoints(program, options)
        if self.bps is not None:
            self.follow = True
        # Watchpoints live in each thread's debug registers: every thread is traced, to arm the new ones
        self.watch = self._watchpoints(program)
        if self.watch is not None:
            self.follow = True
        self.syscall_stops = bool(program.data.get("syscall_stops", True))
        want_seccomp = options.get("seccomp")
        self.use_seccomp = bool(self.wanted is not None and self.follow and target.command and
                                (want_seccomp is None or want_seccomp))
        self.filter_bytes: bytes = program.data.get("seccomp_filter", b"") if self.use_seccomp else b""  # type: ignore[assignment]
        self.kill_on_exit = bool(options.get("kill_on_exit"))
        self.stacks = None
        # every syscall line (strace -k), or the syscalls of probes with a `ustack` action
        stack_only = program.data.get("stack_syscalls")
        self.stack_only: frozenset[str] | None = None if options.get("stack_traces") else \
            stack_only if isinstance(stack_only, frozenset) else None
        if options.get("stack_traces") or self.stack_only:
            from unitrace.backends.ptrace.stacks import StackTracer

            self.stacks = StackTracer()
        self.use_syscall_info = bool(options.get("get_syscall_info", True))
        self.tracees: dict[int, Tracee] = {}
        self.comms: dict[int, str] = {}
        self.memories: dict[int, TraceeMemory] = {}
        self.batch: list[Event] = []
        self.root: int | None = None
        self.root_status: int | None = None
        self._stop = False
        self._stop_signal = signal.SIGTERM
        self._running = False
        self._closed = False
        self._child_error_fd: int | None = None
        self._hide_until_exec: int | None = None
        self._unannounced: Tracee | None = None  # in a syscall whose entry was not handed over
        self._info_buf = ctypes.create_string_buffer(px.SYSCALL_INFO_SIZE)
        self._info_addr = ctypes.addressof(self._info_buf)
        self._info_view = memoryview(self._info_buf).cast("B")
        self._regs = px.UserRegs()
        self._regs_addr = ctypes.addressof(self._regs)
        self._siginfo = ctypes.create_string_buffer(128)
        self._eventmsg = ctypes.c_ulong()
        self._thread: int | None = None
        self._opts = px.PTRACE_O_TRACESYSGOOD | px.PTRACE_O_TRACEEXEC
        if self.follow:
            self._opts |= px.PTRACE_O_TRACEFORK | px.PTRACE_O_TRACEVFORK | px.PTRACE_O_TRACECLONE
        if self.use_seccomp:
            self._opts |= px.PTRACE_O_TRACESECCOMP
        if self.use_seccomp or self.kill_on_exit:
            self._opts |= px.PTRACE_O_EXITKILL

    def _breakpoints(self, program: CompiledProgram, options: Mapping[str, object]) -> Breakpoints | None:
        specs = program.data.get("user_specs")
        if not specs:
            return None
        from unitrace.backends.ptrace.breakpoints import Breakpoints
        from unitrace.backends.ptrace.prototypes import table

        files = options.get("prototype_files") or ()
        limit = options.get("string_limit")
        return Breakpoints(tuple(specs), table(tuple(files)),  # type: ignore[arg-type]
                           string_limit=limit if isinstance(limit, int) else 32, notice=self._notice)

    def _watchpoints(self, program: CompiledProgram) -> Watchpoints | None:
        specs = program.data.get("watch_specs")
        if not specs:
            return None
        from unitrace.backends.ptrace.watchpoints import Watchpoints

        return Watchpoints(tuple(specs), self._notice)  # type: ignore[arg-type]

    # ---- context manager ------------------------------------------------------------------------
    def __enter__(self) -> PtraceSession:
        self._thread = threading.get_ident()
        try:
            if self.target.command:
                self._start_command()
            for pid in self.target.pids:
                self._attach_process(pid)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- starting -------------------------------------------------------------------------------
    def _start_command(self) -> None:
        argv = list(self.target.command)
        exe = _find_command(argv[0])
        if not os.access(exe, os.X_OK):
            raise TargetError(f"cannot execute {exe}: permission denied")
        if self.watch is not None:
            from unitrace.backends.ptrace.watchpoints import check_file

            check_file(self.watch.specs, exe)
        filt = None
        prog = None
        if self.filter_bytes:
            n = len(self.filter_bytes) // 8
            filt = (px.SockFilter * n).from_buffer_copy(self.filter_bytes)
            prog = px.SockFprog(n, ctypes.cast(filt, ctypes.POINTER(px.SockFilter)))
        rfd, wfd = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # the child: nothing but what exec needs
            try:
                os.close(wfd)
                os.close(err_r)
                px.libc_signal(signal.SIGPIPE, px.SIG_DFL)
                px.libc_signal(signal.SIGXFSZ, px.SIG_DFL)
                os.read(rfd, 1)
                if prog is not None and (
                        px.prctl(px.PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0
                        or px.prctl(px.PR_SET_SECCOMP, px.SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0) != 0):
                    os.write(err_w, b"seccomp %d" % ctypes.get_errno())
                    os._exit(126)
                os.execv(exe, argv)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.write(err_w, b"exec %d" % (exc.errno or 0))
            finally:
                os._exit(127)
        os.close(rfd)
        os.close(err_w)
        self.root = pid
        if self.watch is not None:
            self.watch.roots.add(pid)  # armed at its exec, with the new image's symbols
        try:
            px.ptrace(px.PTRACE_SEIZE, pid, None, self._opts)
            px.ptrace(px.PTRACE_INTERRUPT, pid)
        except OSError as exc:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(wfd)
            os.close(err_r)
            raise TargetError(f"cannot trace the command: {exc.strerror}") from exc
        t = Tracee(pid, pid)
        self.tracees[pid] = t
        self.memories[pid] = TraceeMemory(pid)
        # the child now stops for our interrupt; from there on it runs traced
        _, _status = os.waitpid(pid, px.WALL)
        t.stopped = True
        self._resume(t, 0)
        os.close(wfd)  # release: the child goes on to exec
        self._child_error_fd = err_r
        self._hide_until_exec = pid

    def _attach_process(self, pid: int) -> None:
        if pid <= 0 or not os.path.exists(f"/proc/{pid}"):
            raise TargetError(f"no process with PID {pid}")
        if self.watch is not None:  # symbols and addresses checked before anything is attached
            self.watch.watch_process(pid, TraceeMemory(pid))
            self.watch.roots.add(pid)
        seen: set[int] = set()
        attached = 0
        while True:  # threads may appear while we attach: list again until nothing is new
            try:
                # as strace: every thread with -f, else only the one named
                tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task")) if self.follow else [pid]
            except OSError as exc:
                raise TargetError(f"process {pid} is gone") from exc
            new = [t for t in tids if t not in seen]
            if not new:
                break
            for tid in new:
                seen.add(tid)
                err = px.ptrace_quiet(px.PTRACE_SEIZE, tid, None, self._opts)
                if err == -errno.ESRCH:
                    continue  # the thread exited meanwhile
                if err < 0:
                    self._detach_all()
                    tracer = tracer_of(pid)
                    why = os.strerror(-err)
                    if err == -errno.EPERM:
                        if tracer:
                            why += f" (already traced by PID {tracer})"
                        elif state_of(tid) in ("Z", "X"):
                            why = "it has exited"
                        else:
                            why += " (another user's process, or ptrace is restricted)"
                    raise TargetError(f"cannot attach to PID {pid}: {why}",
                                      hint="attach to your own processes, or run as root")
                t = Tracee(tid, pid, attached_by_us=True)
                self.tracees[tid] = t
                attached += 1
                if px.ptrace_quiet(px.PTRACE_INTERRUPT, tid) < 0:
                    continue
        if not attached:
            raise TargetError(f"cannot attach to PID {pid}: it exited")
        if pid not in self.memories:
            self.memories[pid] = TraceeMemory(pid)
        if self.root is None:
            self.root = pid
        self._notice(pid, f"Process {pid} attached")

    # ---- events ---------------------------------------------------------------------------------
    def _notice(self, pid: int, text: str) -> None:
        self.batch.append(Event(EventKind.NOTICE, time.time_ns(), pid, pid, text=text))

    def _flush(self) -> None:
        if self.batch:
            batch, self.batch = self.batch, []
            if not self.report_children and (self.bps is not None or self.watch is not None):
                pids = self.target.pids  # every -p PID was asked for, not only the first
                batch = [e for e in batch if e.pid == self.root or e.kind is EventKind.NOTICE or e.pid in pids]
                if not batch:
                    return
            self.stats.events += len(batch)
            self.emit_batch(batch)

    # ---- resuming -------------------------------------------------------------------------------
    def _resume(self, t: Tracee, sig: int) -> None:
        req = (px.PTRACE_CONT if (self.use_seccomp or not self.syscall_stops) and not t.in_syscall
               else px.PTRACE_SYSCALL)
        px.ptrace_quiet(req, t.tid, None, sig)
        t.stopped = False

    # ---- the loop -------------------------------------------------------------------------------
    def stop(self, signum: int | None = None) -> None:
        """Ask run() to end: safe from a signal handler or another thread. `signum` is what a command we
        started receives (strace passes on the signal that ended it; SIGTERM when not told)."""
        if signum is not None:
            self._stop_signal = signum
        if self._stop:
            return
        self._stop = True
        if self._running:
            self._wake()

    @staticmethod
    def _wake() -> None:
        """End a blocking waitpid(-1) in the tracer thread: a child of ours that exits at once."""
        try:
            pid = os.fork()
        except OSError:
            return
        if pid == 0:
            os._exit(0)

    def run(self) -> int:
        waitpid = os.waitpid
        nohang = px.WALL | os.WNOHANG
        block = px.WALL
        handle = self._handle
        syscall_stop = self._syscall_stop
        raw_ptrace = px.raw_ptrace
        cont, step, seccomp = px.PTRACE_CONT, px.PTRACE_SYSCALL, self.use_seccomp
        tracees = self.tracees
        # with watchpoints every SIGTRAP goes through _handle, which asks the debug status register first
        bp_trap = self._bp_trap if self.bps is not None and self.watch is None else None
        try:
            cpus = len(os.sched_getaffinity(0))
        except OSError:
            cpus = os.cpu_count() or 1
        spin_full = SPIN_POLLS if self.bps is not None else SYSCALL_SPIN_POLLS if cpus > 1 else 0
        spin_miss = SPIN_POLLS if self.bps is not None else SYSCALL_SPIN_MISS
        spin = spin_full
        bp_req = cont if not self.syscall_stops else step
        self._running = True
        saved: dict[int, object] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in self.options.get("stop_signals") or ():  # type: ignore[attr-defined]
                saved[signum] = signal.signal(signum, lambda n, _f: self.stop(n))
        try:
            while tracees and not self._stop:
                try:
                    pid, status = waitpid(-1, nohang) if (self.batch or self._unannounced or spin) \
                        else waitpid(-1, block)
                    if pid == 0 and spin and len(self.batch) < 256:
                        for _ in range(spin):
                            pid, status = waitpid(-1, nohang)
                            if pid:
                                break
                        spin = spin_full if pid else min(spin_full, spin_miss)
                    if pid == 0:
                        # about to block: a tracee asleep in a syscall shows `read(0, ` now, as strace
                        # does, and nothing already seen waits for the next stop
                        u = self._unannounced
                        if u is not None:
                            self._unannounced = None
                            if u.in_syscall and not u.entry_emitted and u.call is not None and u.tid in tracees:
                                self._emit_entry(u)
                        self._flush()
                        if self._stop:
                            break
                        pid, status = waitpid(-1, block)
                except ChildProcessError:
                    break
                if status == SYSCALL_STOP_STATUS:  # the common case, kept short
                    t = tracees.get(pid)
                    if t is not None:
                        syscall_stop(t)
                        raw_ptrace(cont if (seccomp and not t.in_syscall) else step, pid, None, 0)
                        continue
                if status == TRAP_STOP_STATUS and bp_trap is not None:
                    t = tracees.get(pid)
                    if t is not None and not t.in_syscall and bp_trap(t):
                        raw_ptrace(bp_req if not seccomp else cont, pid, None, 0)
                        if len(self.batch) >= 256:
                            self._flush()
                        continue
                if pid in tracees or os.WIFSTOPPED(status):
                    handle(pid, status)
                elif pid == self.root:
                    self._gone(pid, status)
                if len(self.batch) >= 256:
                    self._flush()
        except BaseException:
            # an internal error or KeyboardInterrupt: never leave a tracee in a ptrace-stop
            self._finish_on_stop()
            raise
        finally:
            self._running = False
            for signum, old in saved.items():
                signal.signal(signum, old)  # type: ignore[arg-type]
        self._flush()
        if self._stop and tracees:
            return self._finish_on_stop()
        return self._exit_code()

    def _finish_on_stop(self) -> int:
        sig = self._stop_signal
        root = self.root
        if self.target.command and root is not None and root in self.tracees and self.root_status is None:
            with contextlib.suppress(OSError):
                os.kill(root, signal.SIGCONT)
                os.kill(root, sig)
        self._detach_all()
        self._flush()
        return self._exit_code() if self.root_status is not None else 128 + sig

    def _exit_code(self) -> int:
        status = self.root_status
        if status is None:
            return 0
        if os.WIFEXITED(status):
            return os.WEXITSTATUS(status)
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
        return 0

    def _tracee(self, pid: int) -> Tracee:
        t = self.tracees.get(pid)
        if t is None:  # a new child can report before its parent's fork event
            t = Tracee(pid, tgid_of(pid))
            self.tracees[pid] = t
            if t.tgid not in self.memories:
                self.memories[t.tgid] = TraceeMemory(t.tgid)
        return t

    def _handle(self, pid: int, status: int) -> None:
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            self._gone(pid, status)
            return
        if not os.WIFSTOPPED(status):
            return
        t = self._tracee(pid)
        t.stopped = True
        w = self.watch
        if w is not None and w.wants(pid, t.tgid):
            w.arm(pid, t.tgid)  # its first stop (attach, or a new thread before its first instruction)
        sig = os.WSTOPSIG(status)
        event = status >> 16
        if sig == SYSCALL_TRAP or event == px.PTRACE_EVENT_SECCOMP:
            self._syscall_stop(t)
            self._resume(t, 0)
        elif event == px.PTRACE_EVENT_STOP:
            if sig in _STOP_SIGNALS:
                # group-stop: stay stopped, but keep hearing about it (SIGCONT, SIGKILL)
                t.group_stopped = True
                px.ptrace_quiet(px.PTRACE_LISTEN, pid)
                t.stopped = False
            else:
                t.group_stopped = False
                if self.bps is not None and t.tgid not in self.bps.spaces and self._hide_until_exec is None:
                    try:
                        self.bps.on_attach(t.tid, t.tgid)
                    except OSError as exc:
                        self._notice(t.tgid, f"cannot set breakpoints in process {t.tgid}: {exc.strerror}")
                    self.batch.extend(self.bps.take_events())
                self._resume(t, 0)
        elif event in (px.PTRACE_EVENT_FORK, px.PTRACE_EVENT_VFORK, px.PTRACE_EVENT_CLONE):
            px.ptrace_quiet(px.PTRACE_GETEVENTMSG, pid, None, ctypes.addressof(self._eventmsg))
            child = self._eventmsg.value
            known = child in self.tracees  # its first stop came (and was resumed) before this event
            c = self._tracee(child)
            if event == px.PTRACE_EVENT_CLONE:
                c.tgid = tgid_of(child) if c.tgid == child else c.tgid
            else:
                c.tgid = child
                self.memories[child] = TraceeMemory(child)
            if self.bps is not None:
                self.bps.on_fork(pid, t.tgid, child, thread=c.tgid != child)
            if (w is not None and c.tgid == child and self.report_children and w.inherit(t.tgid, child)
                    and known):
                px.ptrace_quiet(px.PTRACE_INTERRUPT, child)  # armed at the stop this asks for
            self.batch.append(Event(EventKind.FORK, time.time_ns(), t.tgid, pid, fields={"child": child}))
            self._resume(t, 0)
        elif event == px.PTRACE_EVENT_EXEC:
            px.ptrace_quiet(px.PTRACE_GETEVENTMSG, pid, None, ctypes.addressof(self._eventmsg))
            old = self._eventmsg.value
            if old != pid and old in self.tracees:
                # a non-leader thread exec'd: its syscall in progress continues under the leader's id
                former = self.tracees.pop(old)
                t.in_syscall, t.call, t.nr = former.in_syscall, former.call, former.nr
                t.entry_ns, t.entry_wall, t.skip = former.entry_ns, former.entry_wall, former.skip
                t.raw, t.stack = former.raw, former.stack
            t.tgid = pid
            if self._hide_until_exec == pid:
                self._hide_until_exec = None
            self.memories[pid] = TraceeMemory(pid)
            if self.stacks is not None:
                self.stacks.forget(pid)
            self.comms.pop(pid, None)
            self._check_setuid(pid)
            if w is not None and pid in w.roots and w.on_exec(pid, self.memories[pid]):
                w.arm(pid, pid)
            if self.bps is not None:
                try:
                    self.bps.on_exec(pid)
                except OSError as exc:
                    self._notice(pid, f"cannot set breakpoints in process {pid}: {exc.strerror}")
                self.batch.extend(self.bps.take_events())
            try:
                filename = os.readlink(f"/proc/{pid}/exe")
            except OSError:  # gone already, or not ours to read
                filename = ""
            self.batch.append(Event(EventKind.EXEC, time.time_ns(), pid, pid, "execve", comm=self._comm_of(pid),
                                    fields={"old_tid": old, "filename": filename}))
            self._resume(t, 0)
        elif sig == signal.SIGTRAP and event == 0 and w is not None and self._watch_trap(t):
            self._resume(t, 0)  # swallowed: the tracee never sees our SIGTRAP
        elif sig == signal.SIGTRAP and event == 0 and self.bps is not None and self._bp_trap(t):
            self._resume(t, 0)
        else:
            self._signal_stop(t, sig)

    def _bp_trap(self, t: Tracee) -> bool:
        bps = self.bps
        assert bps is not None
        tgid = t.tgid
        mem = self.memories.get(tgid) or self.memories.setdefault(tgid, TraceeMemory(tgid))
        comm = self.comms.get(tgid)
        try:
            ours = bps.on_trap(t.tid, tgid, mem, comm if comm is not None else self._comm_of(tgid))
        except ProcessLookupError:
            ours = True  # it died while we single-stepped it; waitpid reports how
        if bps.events:
            self.batch.extend(bps.events)
            bps.events.clear()
        return ours

    def _watch_trap(self, t: Tracee) -> bool:
        w = self.watch
        assert w is not None
        if px.ptrace_quiet(px.PTRACE_GETSIGINFO, t.tid, None, ctypes.addressof(self._siginfo)) < 0:
            return False
        si_code = int.from_bytes(self._siginfo.raw[8:12], "little", signed=True)
        tgid = t.tgid
        mem = self.memories.get(tgid) or self.memories.setdefault(tgid, TraceeMemory(tgid))
        ours = w.on_trap(t.tid, tgid, si_code, mem, self._comm_of(tgid))
        if w.events:
            self.batch.extend(w.take_events())
        return ours

    def _check_setuid(self, pid: int) -> None:
        try:
            mode = os.stat(f"/proc/{pid}/exe").st_mode
        except OSError:
            return
        if mode & (stat.S_ISUID | stat.S_ISGID):
            if self.use_seccomp:
                why = "the seccomp filter sets no_new_privs, so the set-id bits are ignored"
            elif os.geteuid() != 0:
                why = "the kernel does not grant set-id privileges to a process traced by an unprivileged tracer"
            else:
                return
            self._notice(pid, f"Process {pid} runs a set-id program unprivileged: {why}")

    def _signal_stop(self, t: Tracee, sig: int) -> None:
        from unitrace.decode.signals import format_siginfo, signal_name

        info_text = ""
        if px.ptrace_quiet(px.PTRACE_GETSIGINFO, t.tid, None, ctypes.addressof(self._siginfo)) >= 0:
            info_text = format_siginfo(self._siginfo.raw)
        if t.tid != self._hide_until_exec:
            ev = Event(EventKind.SIGNAL, time.time_ns(), t.tgid, t.tid, signal_name(sig),
                       fields={"signo": sig, "siginfo": info_text})
            if self.stacks is not None:  # -k: strace shows where the signal finds the thread too
                mem = self.memories.get(t.tgid) or self.memories.setdefault(t.tgid, TraceeMemory(t.tgid))
                got = self.stacks.capture(t.tid, t.tgid, mem)
                if got is not None:
                    ev.stack, ev.fields["stack_rel"] = got  # type: ignore[misc]
            self.batch.append(ev)
        self._resume(t, sig)

    def _syscall_stop(self, t: Tracee) -> None:
        """A syscall-entry, syscall-exit or seccomp stop: read what the kernel says and decode."""
        if self.use_syscall_info:
            n = px.raw_ptrace(px.PTRACE_GET_SYSCALL_INFO, t.tid, px.SYSCALL_INFO_SIZE, self._info_addr)
            if n > 0:
                op = self._info_view[0]
                if op == px.PTRACE_SYSCALL_INFO_EXIT:
                    if t.in_syscall:
                        self._exit(t, _INFO_EXIT(self._info_view)[0])
                elif op == px.PTRACE_SYSCALL_INFO_ENTRY or op == px.PTRACE_SYSCALL_INFO_SECCOMP:
                    v = _INFO_ENTRY(self._info_view)
                    self._entry(t, v[1], v[2:], v[0])
                return
            if px.get_errno() in (errno.EIO, errno.EINVAL):
                self.use_syscall_info = False  # a kernel before 5.3: registers from now on
            else:
                return  # ESRCH: the tracee is gone; waitpid will say how
        # PTRACE_GETREGS (RELIABILITY #15). rax holds -ENOSYS at entry (and at a seccomp stop); a stop
        # with anything else while we think the tracee is outside a syscall is the exit of one we did not
        # see begin (attached mid-syscall), as GET_SYSCALL_INFO would tell us.
        if px.raw_ptrace(px.PTRACE_GETREGS, t.tid, None, self._regs_addr) < 0:
            return
        r = _REGS(self._regs)
        rax = r[_RAX] - (1 << 64) if r[_RAX] >> 63 else r[_RAX]
        if t.in_syscall:
            self._exit(t, rax)
        elif rax == -errno.ENOSYS:
            nr = r[_ORIG_RAX]
            self._entry(t, nr - (1 << 64) if nr >> 63 else nr,
                        (r[_RDI], r[_RSI], r[_RDX], r[_R10], r[_R8], r[_R9]), r[_RSP])

    def _entry(self, t: Tracee, nr: int, args: tuple[int, ...], sp: int = 0) -> None:
        t.in_syscall = True
        t.nr = nr
        t.entry_ns = time.monotonic_ns()
        t.entry_wall = time.time_ns()
        t.entry_emitted = False
        t.raw = args
        first_exec = False
        if t.tid == self._hide_until_exec:
            info = self.table.by_nr.get(nr)
            if info is None or info.name not in ("execve", "execveat"):
                t.skip = True
                return
            self._hide_until_exec = None
            first_exec = True
        if self.wanted is not None and nr not in self.wanted:
            t.skip = True
            return
        t.skip = False
        mem = self.memories.get(t.tgid) or self.memories.setdefault(t.tgid, TraceeMemory(t.tgid))
        t.call = self.decoder.enter(t.tgid, nr, args, mem, sp)
        if self.stacks is not None:
            from unitrace.backends.ptrace.stacks import CAPTURE_AT_ENTRY

            info = t.call.info  # type: ignore[attr-defined]
            # the stack of a call that replaces or ends the process exists only now; the command's own
            # execve is shown with the new program's first stack, as strace does (ours would be Python's)
            t.stack = self.stacks.capture(t.tid, t.tgid, mem) if info is not None and \
                info.name in CAPTURE_AT_ENTRY and not first_exec else None
        if len(self.tracees) > 1 or (t.call.info is not None and t.call.info.name in _EXIT_CALLS):  # type: ignore[attr-defined]
            self._emit_entry(t)
        elif t.call.info is not None and t.call.info.name in _MAY_SLEEP:  # type: ignore[attr-defined]
            # one tracee: its line is handed over whole at exit, unless we block on it first (see run())
            self._unannounced = t

    def _emit_entry(self, t: Tracee) -> None:
        info = t.call.info  # type: ignore[attr-defined]
        self.batch.append(Event(EventKind.SYSCALL_ENTER, t.entry_wall, t.tgid, t.tid,
                                info.name if info else f"syscall_{t.nr:#x}", comm=self._comm_of(t.tgid),
                                args=t.call.entry_args(), raw_args=t.raw))  # type: ignore[attr-defined]
        t.entry_emitted = True

    def _comm_of(self, tgid: int) -> str:
        name = self.comms.get(tgid)
        if name is None:
            name = self.comms[tgid] = comm_of(tgid)
        return name

    def _exit(self, t: Tracee, rval: int) -> None:
        t.in_syscall = False
        self._unannounced = None
        if t.skip:
            t.skip = False
            return
        call = t.call
        t.call = None
        if call is None:
            return
        mem = self.memories.get(t.tgid) or self.memories.setdefault(t.tgid, TraceeMemory(t.tgid))
        texts, ret_text, err = self.decoder.exit(call, rval, mem)
        info = call.info  # type: ignore[attr-defined]
        ev = Event(EventKind.SYSCALL, t.entry_wall, t.tgid, t.tid,
                   info.name if info else f"syscall_{t.nr:#x}", comm=self._comm_of(t.tgid),
                   args=texts, raw_args=t.raw,
                   ret=rval, ret_text=ret_text, errno=err,
                   duration_ns=time.monotonic_ns() - t.entry_ns)
        if self.stacks is not None and (self.stack_only is None or ev.name in self.stack_only):
            self._attach_stack(t, ev, mem)
        self.batch.append(ev)

    def _attach_stack(self, t: Tracee, ev: Event, mem: TraceeMemory) -> None:
        """-k: the stack at the syscall stop (or the one taken at entry), after the exit's duration was
        measured, so -T does not count the walk."""
        from unitrace.backends.ptrace.stacks import MAPPING_CHANGES

        got = t.stack
        t.stack = None
        stacks = self.stacks
        assert stacks is not None
        if ev.name in MAPPING_CHANGES and not ev.errno:
            stacks.changed(t.tgid)
        if got is None:
            got = stacks.capture(t.tid, t.tgid, mem)
        if got is not None:
            ev.stack, ev.fields["stack_rel"] = got  # type: ignore[misc]

    def _gone(self, pid: int, status: int) -> None:
        t = self.tracees.pop(pid, None)
        now = time.time_ns()
        tgid = t.tgid if t is not None else pid
        if t is not None and t.in_syscall and not t.skip and t.call is not None:
            info = t.call.info  # type: ignore[attr-defined]
            ev = Event(EventKind.SYSCALL, now, tgid, pid, info.name if info else "?", comm=self.comms.get(tgid, ""),
                       args=t.call.entry_args(), raw_args=t.raw, ret=None, ret_text="?")  # type: ignore[attr-defined]
            if t.stack is not None:  # -k: exit_group's stack, taken at its entry
                ev.stack, ev.fields["stack_rel"] = t.stack  # type: ignore[misc]
                t.stack = None
            self.batch.append(ev)
        fields: dict[str, object] = {}
        ret: int | None = None
        if os.WIFEXITED(status):
            ret = os.WEXITSTATUS(status)
            fields["status"] = ret
        else:
            from unitrace.decode.signals import signal_name

            fields["signal"] = signal_name(os.WTERMSIG(status))
            fields["core"] = os.WCOREDUMP(status)
        self.batch.append(Event(EventKind.EXIT, now, tgid, pid, ret=ret, fields=fields))
        if pid == self.root:
            self.root_status = status
            self._report_exec_failure(pid)
        if self.bps is not None:
            self.bps.on_exit(pid, tgid)
        if self.watch is not None:
            self.watch.on_exit(pid, tgid)
        if pid == tgid:
            self.memories.pop(pid, None)
            if self.stacks is not None:
                self.stacks.forget(pid)

    def _report_exec_failure(self, pid: int) -> None:
        fd = self._child_error_fd
        if fd is None:
            return
        os.set_blocking(fd, False)
        try:
            msg = os.read(fd, 64).decode(errors="replace")
        except (BlockingIOError, OSError):
            msg = ""
        if msg:
            what, _, num = msg.partition(" ")
            reason = os.strerror(int(num)) if num.isdigit() else msg
            text = "cannot install the seccomp filter" if what == "seccomp" else "exec failed"
            self._notice(pid, f"{text}: {reason}")

    # ---- ending ---------------------------------------------------------------------------------
    def _detach_all(self) -> None:
        """Let every tracee go, running (or still stopped if it was group-stopped), none in a ptrace-stop.
        Processes that run under our seccomp filter are killed instead: untraced, their traced syscalls
        would fail with ENOSYS (RELIABILITY #2)."""
        if self.use_seccomp:
            for t in list(self.tracees.values()):
                with contextlib.suppress(OSError):
                    os.kill(t.tid, signal.SIGKILL)
            self._reap_after_kill()
            return
        for t in list(self.tracees.values()):
            if not t.stopped:
                px.ptrace_quiet(px.PTRACE_INTERRUPT, t.tid)
        deadline = time.monotonic() + 5
        waiting = {t.tid for t in self.tracees.values() if not t.stopped}
        while waiting and time.monotonic() < deadline:
            try:
                pid, status = os.waitpid(-1, px.WALL | os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.001)
                continue
            t = self.tracees.get(pid)
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                self._gone(pid, status)
                waiting.discard(pid)
                continue
            if t is None:
                continue
            t.stopped = True
            sig = os.WSTOPSIG(status)
            event = status >> 16
            if event == 0 and sig not in (SYSCALL_TRAP, signal.SIGTRAP):
                t.pending_sig = sig  # a signal on its way: deliver it when we let go
            waiting.discard(pid)
        if self.bps is not None:
            # every original byte back before any tracee runs untraced
            for t in list(self.tracees.values()):
                if t.stopped:
                    self.bps.rewind(t.tid, t.tgid)
            self.bps.remove_all()
        if self.watch is not None:
            # no debug register left set: a process we let go would die of the next SIGTRAP
            for t in list(self.tracees.values()):
                if t.stopped:
                    self.watch.disarm(t.tid)
                    self._drain_sigtrap(t)
        for t in list(self.tracees.values()):
            px.ptrace_quiet(px.PTRACE_DETACH, t.tid, None, t.pending_sig)
            if t.tid == t.tgid:
                self._notice(t.tgid, f"Process {t.tgid} detached")
        if self.kill_on_exit and not self.target.pids:
            for t in self.tracees.values():
                with contextlib.suppress(OSError):
                    os.kill(t.tid, signal.SIGKILL)
        self.tracees.clear()

    def _drain_sigtrap(self, t: Tracee) -> None:
        """A watchpoint hit just before our interrupt leaves a SIGTRAP queued behind the interrupt stop:
        detached, the thread would die of it. Let the thread reach its signal-delivery stop and drop it."""
        try:
            pending = int(status_fields(t.tid, "SigPnd").get("SigPnd", "0"), 16)
        except ValueError:
            return
        if not pending & (1 << (signal.SIGTRAP - 1)):
            return
        if px.ptrace_quiet(px.PTRACE_CONT, t.tid, None, 0) < 0:
            return
        t.stopped = False
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            try:
                pid, status = os.waitpid(t.tid, px.WALL | os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                time.sleep(0.001)
                continue
            if not os.WIFSTOPPED(status):
                self._gone(pid, status)
                return
            t.stopped = True
            sig = os.WSTOPSIG(status)
            if sig == signal.SIGTRAP and status >> 16 == 0:
                return  # the SIGTRAP, dequeued: detaching with no signal drops it
            if status >> 16 == 0 and sig != SYSCALL_TRAP:
                t.pending_sig = sig  # another signal on its way: delivered at detach
            if px.ptrace_quiet(px.PTRACE_CONT, t.tid, None, 0) < 0:
                return
            t.stopped = False

    def _reap_after_kill(self) -> None:
        deadline = time.monotonic() + 5
        while self.tracees and time.monotonic() < deadline:
            try:
                pid, status = os.waitpid(-1, px.WALL | os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.001)
                continue
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                self._gone(pid, status)
            else:
                px.ptrace_quiet(px.PTRACE_CONT, pid, None, 0)
        self.tracees.clear()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.tracees:
                # run() never ran or did not finish: end as on a stop request (a started command gets the
                # signal, everything else is detached)
                self._finish_on_stop()
        finally:
            fd = self._child_error_fd
            if fd is not None:
                os.close(fd)
                self._child_error_fd = None


def ensure_supported() -> None:
    if sys.platform != "linux":
        raise UnitraceError("the ptrace backend needs Linux")
