"""An ftrace session: a private tracefs instance, our dynamic events, per-CPU raw readers.

Everything the session creates is pushed on an undo stack and unwound in reverse on every exit path; a
session killed with SIGKILL leaves `instances/unitrace-PID` and group `unitrace_PID` behind, which the next
session (or `unitrace doctor --cleanup`) reaps once PID is gone. The top-level instance and other tools'
events are never touched.
"""

from __future__ import annotations

import bisect
import errno
import os
import select
import signal
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from unitrace.backends.base import NO_RETURN_SYSCALLS, CompiledProgram, EmitFn, TraceTarget
from unitrace.backends.ftrace.compile import GROUP_PLACEHOLDER, EventPlan, FtracePlan
from unitrace.backends.ftrace.formats import EventFormat, RecordDecoder, parse_format
from unitrace.backends.ftrace.hist import (
    HIST_SIZE,
    HistTrigger,
    KernelAggRow,
    parse_hist_tables,
    rows_for,
    trigger_name,
)
from unitrace.backends.ftrace.ringbuf import PageLayout, decode_page
from unitrace.backends.ftrace.tracefs import Tracefs, dynamic_events, find_tracefs, instances
from unitrace.backends.ptrace.prototypes import call_texts, return_text
from unitrace.errors import TargetError, UnitraceError
from unitrace.events import Event, EventKind, Frame, SessionStats

INSTANCE_PREFIX = "unitrace-"
_TRACING_FRAMES = ("ftrace_syscall_", "trace_event_raw_event_", "__traceiter_", "perf_trace_", "__bpf_trace_",
                   "event_triggers_call", "trace_event_buffer_commit")
GROUP_PREFIX = "unitrace_"
DEFAULT_BUFFER_KB = 16384
MAX_PAGES_PER_PASS = 256  # per CPU; the 1.4 MiB default lost most of a fast workload (MACHINE notes)
_COMMON = struct.Struct("<HBBi")


LOCK_DIRS = ("/run/unitrace", "/tmp/unitrace")


def _lock_path(pid: int) -> str | None:
    for d in LOCK_DIRS:
        path = os.path.join(d, f"session-{pid}.lock")
        if os.path.exists(path):
            return path
    return None


_lock_state = {"fd": -1, "users": 0, "serial": 0}


def hold_session_lock() -> int:
    """Mark this process as a live session: an exclusive flock held until we exit, however we exit.

    One lock per process, shared by its sessions (reference counted)."""
    import fcntl

    if _lock_state["users"]:
        _lock_state["users"] += 1
        return _lock_state["fd"]
    for d in LOCK_DIRS:
        try:
            os.makedirs(d, mode=0o755, exist_ok=True)
            fd = os.open(os.path.join(d, f"session-{os.getpid()}.lock"),
                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            continue
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _lock_state.update(fd=fd, users=1)
        return fd
    raise UnitraceError(f"cannot create a session lock in any of {', '.join(LOCK_DIRS)}")


def _alive_session(pid: int) -> bool:
    """Is the session that named its objects after `pid` still running?

    The kernel drops a process's flock when it dies, SIGKILL included, so a lock file we can lock belongs to
    a dead session even if its PID has been reused since. Without a lock file, a live PID is given the
    benefit of the doubt: reaping a live session's objects would break it.
    """
    import fcntl

    path = _lock_path(pid)
    if path is not None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            return os.path.exists(f"/proc/{pid}")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        if pid != os.getpid():
            try:
                os.unlink(path)
            except OSError:
                pass
        return False
    return os.path.exists(f"/proc/{pid}")


def reap_stale(fs: Tracefs, *, say: Callable[[str], None] | None = None) -> list[str]:
    """Remove instances and dynamic-event groups left by unitrace sessions whose process is gone."""
    reaped: list[str] = []
    for name in instances(fs.root, INSTANCE_PREFIX):
        tail = name[len(INSTANCE_PREFIX):].split("_", 1)[0]
        if tail.isdigit() and not _alive_session(int(tail)):
            _remove_instance(fs, f"instances/{name}")
            reaped.append(f"instance {name}")
    groups: dict[str, list[str]] = {}
    for group, name in dynamic_events(fs.root):
        owner = group[len(GROUP_PREFIX):].split("_", 1)[0]
        if group.startswith(GROUP_PREFIX) and owner.isdigit():
            groups.setdefault(group, []).append(name)
    for group, names in groups.items():
        if _alive_session(int(group[len(GROUP_PREFIX):].split("_", 1)[0])):
            continue
        for name in names:
            try:
                fs.write(f"events/{group}/{name}/enable", "0")
            except (UnitraceError, OSError):
                pass
            try:
                fs.write("dynamic_events", f"-:{group}/{name}\n", append=True)
            except UnitraceError:
                continue
            reaped.append(f"event {group}/{name}")
    if reaped and say:
        say(f"unitrace: reaped leftovers of dead sessions: {', '.join(reaped)}")
    return reaped


def _remove_instance(fs: Tracefs, rel: str) -> None:
    """Disable everything in an instance, then remove it, retrying while the kernel says it is busy."""
    for sub in ("tracing_on", "events/enable"):
        try:
            fs.write(f"{rel}/{sub}", "0")
        except (UnitraceError, OSError):
            pass
    for attempt in range(50):
        try:
            os.rmdir(fs.path(rel))
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or attempt == 49:
                raise UnitraceError(f"cannot remove {fs.path(rel)}: {exc.strerror}") from exc
            time.sleep(0.02)


_SYSCALL = EventKind.SYSCALL
_RESUMED = EventKind.SYSCALL_RESUMED
_TRACEPOINT = EventKind.TRACEPOINT
_ARGS = Event.args  # the slots of the base class, under the lazy properties below
_RET_TEXT = Event.ret_text


# a new thread or process leaves these with 0 without having entered them: not a call of its own
FORKS = frozenset({"fork", "vfork", "clone", "clone3"})


class LazySyscallEvent(Event):
    """A syscall event whose strace-style texts (`args`, `ret_text`) are made when first read: a count, a
    filter or an aggregation never reads them, and making them is most of an event's cost. `errno`, `ret`
    and `raw_args` are set at once. Subclassed per session, which the class attribute `_session` names."""

    __slots__ = ()
    _session: FtraceSession

    def _texts(self) -> None:
        args, ret_text, _errno = self._session._syscall_texts(self)
        _ARGS.__set__(self, args)
        _RET_TEXT.__set__(self, ret_text)

    def _get_args(self) -> tuple[str, ...]:
        v = _ARGS.__get__(self, Event)
        if v is None:
            self._texts()
            v = _ARGS.__get__(self, Event)
        return v  # type: ignore[no-any-return]

    def _get_ret_text(self) -> str:
        v = _RET_TEXT.__get__(self, Event)
        if v is None:
            self._texts()
            v = _RET_TEXT.__get__(self, Event)
        return v  # type: ignore[no-any-return]

    # the setters are the base slots' own (C, no Python frame in the constructor); the getters decode once
    args = property(_get_args, _ARGS.__set__)  # type: ignore[assignment]
    ret_text = property(_get_ret_text, _RET_TEXT.__set__)  # type: ignore[assignment]


class _NameTimeline:
    """Per thread: the times its name changed, with the name before and after, in time order."""

    def __init__(self) -> None:
        self._times: dict[int, list[int]] = {}
        self._names: dict[int, list[tuple[str, str]]] = {}
        self.last: dict[int, tuple[int, str]] = {}  # tid -> (time of its last change, the name since)

    def add(self, tid: int, ts: int, old: str, new: str) -> None:
        times = self._times.setdefault(tid, [])
        names = self._names.setdefault(tid, [])
        i = bisect.bisect_right(times, ts)
        times.insert(i, ts)
        names.insert(i, (old, new))
        self.last[tid] = (times[-1], names[-1][1])

    def at(self, tid: int, ts: int, fallback: str) -> str:
        times = self._times.get(tid)
        if not times:
            return fallback
        i = bisect.bisect_right(times, ts)
        names = self._names[tid]
        return names[i - 1][1] if i else names[0][0]


@dataclass
class _Handlers:
    by_id: dict[int, list[tuple[EventPlan, RecordDecoder]]] = field(default_factory=dict)


class FtraceSession:
    def __init__(self, program: CompiledProgram, target: TraceTarget, emit: EmitFn,
                 options: dict[str, object]) -> None:
        root = find_tracefs()
        if root is None:
            raise UnitraceError("tracefs is not mounted",
                                hint="mount -t tracefs nodev /sys/kernel/tracing (scripts/setup.sh does it)")
        self.fs = Tracefs(root)
        self.plan: FtracePlan = program.data["plan"]  # type: ignore[assignment]
        self.target = target
        self.emit = emit
        self.options = options
        self.stats = SessionStats()
        # Several sessions in one process (the TUI, the Python API) get their own names: PID, PID_2, ...
        _lock_state["serial"] += 1
        suffix = str(os.getpid()) + (f"_{_lock_state['serial']}" if _lock_state["serial"] > 1 else "")
        self.group = f"{GROUP_PREFIX}{suffix}"
        self.instance = f"instances/{INSTANCE_PREFIX}{suffix}"
        self._undo: list[Callable[[], None]] = []
        self._fds: list[int] = []
        self._stop = False
        self._child: int | None = None
        self._held = None
        self._held_tid = -1
        self._handlers = _Handlers()
        self._unpackers: dict[int, object] = {}
        self._stack_id = -1
        self._function_id = -1
        self._ustack_id = -1
        self._ustack_decoder: RecordDecoder | None = None
        self._maps: dict[int, object] = {}
        self._function_decoder: RecordDecoder | None = None
        self._stack_decoder: RecordDecoder | None = None
        # tid -> (entry time, syscall name, raw arguments) of a syscall entered and not yet returned
        self._pending: dict[int, tuple[int, str, tuple[int, ...]]] = {}
        self._pending_stacks: dict[int, list[list[Frame] | None]] = {}  # tid -> [kstack, user stack]
        # cpu -> the event its next stack record belongs to: an Event, or the tid of a pending syscall entry
        self._last_by_cpu: dict[int, Event | int] = {}
        self._idents: dict[int, tuple[int, str]] = {}  # tid -> (tgid, comm), what _ident found
        # etype -> how the reader's fast path turns its records into events (see _build_fast)
        self._fast: dict[int, tuple] = {}
        self._event_class = type("LazySyscallEvent", (LazySyscallEvent,), {"__slots__": (), "_session": self})
        self._tgid: dict[int, int] = {}
        self._comm: dict[int, str] = {}
        # A thread's name over time, from task_rename (every exec and prctl rename) and sched_process_fork:
        # records are read after the fact, when /proc already shows a later name (or none).
        self._names = _NameTimeline()
        self._internal: dict[int, tuple[str, RecordDecoder]] = {}
        self._clock_offset = 0
        self._layout = PageLayout()
        self._decoder = None
        self._closed = False
        self._triggers: list[tuple[str, HistTrigger]] = []  # (event dir, trigger) written into our instance
        self.aggregates: list[KernelAggRow] = []  # what the kernel aggregated, read at the end of run()

    # ---- set-up -------------------------------------------------------------------------------
    def __enter__(self) -> FtraceSession:
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _setup(self) -> None:
        self._lock_fd = hold_session_lock()
        self._undo.append(self._release_lock)
        say = self.options.get("notice")
        reap_stale(self.fs, say=say if callable(say) else (lambda m: print(m, file=sys.stderr)))
        if self.target.command:
            self._spawn_blocked()
        for pid in self.target.pids:
            if not os.path.exists(f"/proc/{pid}"):
                raise TargetError(f"no process with PID {pid}")
        os.mkdir(self.fs.path(self.instance))
        self._undo.append(lambda: _remove_instance(self.fs, self.instance))
        self._layout = PageLayout.parse(self.fs.read("events/header_page"))
        for dyn in self.plan.dynamic:
            line = dyn.line(self.group)
            self.fs.write(dyn.control_file, line + "\n", append=True, what=f"the probe `{line}`")
            self._undo.append(lambda d=dyn: self._remove_dynamic(d.control_file, d.name))
        inst = self.instance
        self.fs.write(f"{inst}/tracing_on", "0")
        self.fs.write(f"{inst}/trace_clock", "mono")
        kb = int(self.options.get("buffer_kb") or self._buffer_kb())  # type: ignore[call-overload]
        self.fs.write(f"{inst}/buffer_size_kb", str(kb))
        if self.fs.path(f"{inst}/buffer_percent").exists():
            self.fs.write(f"{inst}/buffer_percent", "0")  # wake the reader for every page, not at 50%
        self._quiet_write(f"{inst}/options/record-tgid", "1")
        pids = self._scope_pids()
        if pids:
            if self.target.follow_forks or self.target.command:
                self.fs.write(f"{inst}/options/event-fork", "1")
            self.fs.write(f"{inst}/set_event_pid", " ".join(str(p) for p in pids))
        self._load_formats()
        if self.plan.functions is not None:
            self._setup_function_tracer(pids)
        for ev in self.plan.events:
            rel = f"{inst}/{ev.path(self.group)}"
            if ev.filter:
                self.fs.write(f"{rel}/filter", ev.filter, what=f"the filter `{ev.filter}` on {ev.event}")
                self._undo.append(lambda r=rel: self._quiet_write(f"{r}/filter", "0"))
            if ev.stacktrace:
                self.fs.write(f"{rel}/trigger", "stacktrace", append=True, what=f"a stacktrace trigger on {ev.event}")
                self._undo.append(lambda r=rel: self._quiet_append(f"{r}/trigger", "!stacktrace"))
            if not ev.stream:
                continue  # only its hist triggers see it: they fire on a disabled event (soft mode)
            self.fs.write(f"{rel}/enable", "1", what=f"enabling {ev.event}")
            self._undo.append(lambda r=rel: self._quiet_write(f"{r}/enable", "0"))
        self._add_hist_triggers()
        self._enable_name_events()
        self._build_fast()
        self._open_readers()
        self._clock_offset = time.time_ns() - time.monotonic_ns()
        self.fs.write(f"{inst}/tracing_on", "1")
        self._undo.append(lambda: self._quiet_write(f"{self.instance}/tracing_on", "0"))
        if self._held is not None:
            self._held.release()  # the child execs now, with tracing on and its pid in scope

    def _buffer_kb(self) -> int:
        """Per-CPU buffer size from the rate the plan can produce: the reader drains ~1M records/s, so the
        buffer must hold what a burst writes while it catches up. Events only the kernel aggregates write
        nothing; every syscall (raw_syscalls), the function tracer or the whole system can write millions
        per second. Capped at 1/8 of the available memory over all CPUs. A user-given `buffer_kb` wins, and
        what overflows it is counted in the stats (lost, lost_per_cpu)."""
        streamed = [ev for ev in self.plan.events if ev.stream]
        if not streamed and self.plan.functions is None:
            kb = 1024  # names and stacks only
        elif self.plan.functions is not None or self.target.system_wide or \
                any(ev.system == "raw_syscalls" for ev in streamed):
            kb = 4 * DEFAULT_BUFFER_KB
        else:
            kb = DEFAULT_BUFFER_KB
        try:
            with open("/proc/meminfo", "rb") as f:
                avail = next(int(line.split()[1]) for line in f if line.startswith(b"MemAvailable:"))
            kb = max(1024, min(kb, avail // 8 // max(1, os.cpu_count() or 1)))
        except (OSError, StopIteration, ValueError):
            pass
        return kb

    def _add_hist_triggers(self) -> None:
        """One named hist trigger per kernel aggregation and event. Trigger files are appended to (opening
        one with O_TRUNC removes every trigger of the event); each is removed with `!` and its own text."""
        for agg in self.plan.aggregates:
            for trig in agg.triggers:
                rel = f"{self.instance}/{trig.path.replace(GROUP_PLACEHOLDER, self.group)}"
                cmd = trig.command(self.group)
                self.fs.write(f"{rel}/trigger", cmd, append=True,
                              what=f"the hist trigger `{cmd}` for {agg.text} (UNITRACE_FTRACE_HIST=0 keeps "
                                   "aggregations in user space)")
                self._triggers.append((rel, trig))
                self._undo.append(lambda r=rel, c=cmd: self._remove_trigger(r, c))

    def _remove_trigger(self, rel: str, cmd: str) -> None:
        try:
            self.fs.write(f"{rel}/trigger", "!" + cmd, append=True)
        except (UnitraceError, OSError):
            # the kernel did not match our own text: truncating removes every trigger of the event, all ours
            self._quiet_write(f"{rel}/trigger", "")

    def read_aggregates(self) -> list[KernelAggRow]:
        """What the kernel's hist triggers hold now, as rows for AggregateSink.merge_kernel_rows. Reading
        does not reset them: call it once at the end (run() does), or use the rows as a snapshot."""
        rows: list[KernelAggRow] = []
        by_dir: dict[str, dict[str, HistTrigger]] = {}
        for rel, trig in self._triggers:
            by_dir.setdefault(rel, {})[f"{self.group}_{trig.name}"] = trig
        dropped = 0
        for rel, named in by_dir.items():
            try:
                text = self.fs.read(f"{rel}/hist")
            except OSError as exc:
                raise UnitraceError(f"cannot read {rel}/hist: {exc.strerror}") from exc

            def keys_of(info: str, named: dict[str, HistTrigger] = named) -> tuple[tuple[str, ...], frozenset[int]] | None:
                t = named.get(trigger_name(info))
                return (t.key_names, t.string_keys) if t is not None else None

            for table in parse_hist_tables(text, keys_of):
                trig = named[trigger_name(table.trigger)]
                dropped += table.dropped
                rows.extend(rows_for(trig, table, lambda tid: self._ident(tid)[0], self._syscall_name))
        if dropped:
            self.stats.lost += dropped
            say = self.options.get("notice")
            msg = (f"unitrace: the kernel's hist tables were full: {dropped} events were not aggregated "
                   f"(at most {HIST_SIZE} distinct keys per table)")
            (say if callable(say) else (lambda m: print(m, file=sys.stderr)))(msg)
        return rows

    def _enable_name_events(self) -> None:
        """task_rename and sched_process_fork in our instance, scoped like the rest, so every event gets
        the name its thread had at the time. Where the kernel lacks them, names come from /proc."""
        for rel, kind in (("events/task/task_rename", "rename"), ("events/sched/sched_process_fork", "fork")):
            if not self.fs.path(f"{self.instance}/{rel}").is_dir():
                continue
            fmt = parse_format(self.fs.read(f"{rel}/format"), rel.split("/")[1])
            dec = RecordDecoder(fmt)
            self._internal[fmt.id] = (kind, dec)
            self._unpackers.setdefault(fmt.id, dec.fast)
            if any(ev.path(self.group) == rel for ev in self.plan.events):
                continue  # the user's own probe enabled it already (with their filter: names may miss)
            self.fs.write(f"{self.instance}/{rel}/enable", "1", what=f"enabling {rel}")
            self._undo.append(lambda r=rel: self._quiet_write(f"{self.instance}/{r}/enable", "0"))

    def _note_name(self, kind: str, dec: RecordDecoder, page: bytes, off: int, ts: int) -> None:
        values = dec.decode(page, off)
        if kind == "rename":
            self._names.add(int(values["pid"]), ts, str(values["oldcomm"]), str(values["newcomm"]))  # type: ignore[call-overload]
        else:
            name = str(values["child_comm"])
            self._names.add(int(values["child_pid"]), ts, name, name)  # type: ignore[call-overload]

    def _setup_function_tracer(self, pids: list[int]) -> None:
        inst = self.instance
        fn = self.plan.functions
        assert fn is not None
        for glob in fn.filters:
            self.fs.write(f"{inst}/set_ftrace_filter", glob + "\n", append=True,
                          what=f"the function filter {glob!r}")
        self._undo.append(lambda: self._quiet_write(f"{inst}/set_ftrace_filter", ""))
        if pids:
            self.fs.write(f"{inst}/set_ftrace_pid", " ".join(str(p) for p in pids))
            if self.target.follow_forks or self.target.command:
                self.fs.write(f"{inst}/options/function-fork", "1")
            self._undo.append(lambda: self._quiet_write(f"{inst}/set_ftrace_pid", ""))
        fmt = parse_format(self.fs.read("events/ftrace/function/format"), "ftrace")
        self._function_id = fmt.id
        self._function_decoder = RecordDecoder(fmt)
        self._unpackers[fmt.id] = self._function_decoder.fast
        self.fs.write(f"{inst}/current_tracer", "function", what="starting the function tracer")
        self._undo.append(lambda: self._quiet_write(f"{inst}/current_tracer", "nop"))

    def _release_lock(self) -> None:
        _lock_state["users"] -= 1
        if _lock_state["users"] > 0:
            return
        path = _lock_path(os.getpid())
        if path is not None:
            os.unlink(path)
        os.close(self._lock_fd)
        _lock_state["fd"] = -1

    def _scope_pids(self) -> list[int]:
        if self.target.system_wide:
            return []
        pids: list[int] = []
        if self._child is not None:
            pids.append(self._child)
        for pid in self.target.pids:
            try:
                pids.extend(int(t) for t in os.listdir(f"/proc/{pid}/task"))
            except OSError as exc:
                raise TargetError(f"no process with PID {pid}") from exc
        return pids

    def _spawn_blocked(self) -> None:
        """Fork the command, held before exec until tracing is on, so its first syscall is seen."""
        from unitrace.backends.spawn import HeldChild

        self._held = HeldChild(self.target.command)
        self._child = self._held.pid
        # it waits for us inside a read() that tracing sees end without having seen it begin: that one
        # `<... read resumed>` is ours, not the command's (bpf and ptrace never see it: no entry, no seize)
        self._held_tid = self._held.pid
        self._undo.append(self._held.abort)

    def _load_formats(self) -> None:
        seen: dict[str, EventFormat] = {}
        for ev in self.plan.events:
            rel = ev.path(self.group)
            if rel not in seen:
                seen[rel] = parse_format(self.fs.read(f"{rel}/format"), ev.system)
            fmt = seen[rel]
            dec = RecordDecoder(fmt)
            self._handlers.by_id.setdefault(fmt.id, []).append((ev, dec))
            self._unpackers[fmt.id] = dec.fast
        if self.plan.user_stacks:
            fmt = parse_format(self.fs.read("events/ftrace/user_stack/format"), "ftrace")
            self._ustack_id = fmt.id
            self._ustack_decoder = RecordDecoder(fmt)
            self._unpackers[fmt.id] = self._ustack_decoder.fast
            self.fs.write(f"{self.instance}/options/userstacktrace", "1", what="user stack traces")
            self._undo.append(lambda: self._quiet_write(f"{self.instance}/options/userstacktrace", "0"))
        if any(ev.stacktrace for ev in self.plan.events):
            fmt = parse_format(self.fs.read("events/ftrace/kernel_stack/format"), "ftrace")
            self._stack_id = fmt.id
            self._stack_decoder = RecordDecoder(fmt)
            self._unpackers[fmt.id] = self._stack_decoder.fast

    def _open_readers(self) -> None:
        cpus = sorted(int(d.name[3:]) for d in self.fs.path(f"{self.instance}/per_cpu").iterdir()
                      if d.name.startswith("cpu"))
        for cpu in cpus:
            fd = os.open(self.fs.path(f"{self.instance}/per_cpu/cpu{cpu}/trace_pipe_raw"),
                         os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            self._fds.append(fd)
        self._cpu_of = dict(zip(self._fds, cpus, strict=True))
        self._undo.append(self._close_readers)

    def _close_readers(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def _remove_dynamic(self, control: str, name: str) -> None:
        self._quiet_write(f"events/{self.group}/{name}/enable", "0")
        for attempt in range(50):
            try:
                self.fs.write(control, f"-:{self.group}/{name}\n", append=True)
                return
            except UnitraceError:
                if attempt == 49:
                    raise
                time.sleep(0.02)

    def _quiet_write(self, rel: str, text: str) -> None:
        try:
            self.fs.write(rel, text)
        except (UnitraceError, OSError):
            pass

    def _quiet_append(self, rel: str, text: str) -> None:
        try:
            self.fs.write(rel, text, append=True)
        except (UnitraceError, OSError):
            pass

    # ---- running ------------------------------------------------------------------------------
    @property
    def root(self) -> int | None:
        """The started command's pid (None when attached to processes or system-wide)."""
        return self._held.pid if self._held is not None else None

    def stop(self) -> None:
        self._stop = True

    def run(self) -> int:
        poller = select.poll()
        for fd in self._fds:
            poller.register(fd, select.POLLIN)
        last_stats = time.monotonic()
        while True:
            done = self._stop or self._target_gone()
            try:
                poller.poll(0 if done else 100)
            except InterruptedError:
                pass  # a signal is not a request to stop unless its handler says so
            self._drain()
            now = time.monotonic()
            if now - last_stats > 1.0:
                self._read_stats()
                last_stats = now
            if done:
                break
        self._quiet_write(f"{self.instance}/tracing_on", "0")
        while self._drain():  # the rest, in bounded passes: one pass over all of it would hold every event
            pass
        self._read_stats()
        if self._triggers:
            self.aggregates = self.read_aggregates()
        if self._held is not None:
            if self._held.poll() is None and self._stop:
                return 128 + signal.SIGINT  # stopped on request; the command runs on, untraced
            return self._held.exit_code()
        return 0

    def _target_gone(self) -> bool:
        if self._held is not None:
            return self._held.poll() is not None
        if self.target.pids:
            return not any(os.path.exists(f"/proc/{p}") for p in self.target.pids)
        return False

    def _read_stats(self) -> None:
        lost = 0
        for cpu in self._cpu_of.values():
            try:
                text = self.fs.read(f"{self.instance}/per_cpu/cpu{cpu}/stats")
            except OSError:
                continue
            n = 0
            for line in text.splitlines():
                key, _, val = line.partition(":")
                if key.strip() in ("overrun", "dropped events"):
                    n += int(val.strip() or 0)
            self.stats.lost_per_cpu[cpu] = n
            lost += n
        self.stats.lost = lost

    def _drain(self, bounded: bool = True) -> int:
        """Read what the per-CPU buffers hold. Bounded while tracing (so a stop request is seen under any
        load), complete at the end (tracing is off then, so it ends)."""
        batch: list[Event] = []
        pages: list[tuple[bytes, int]] = []
        for fd in self._fds:
            cpu = self._cpu_of[fd]
            for _ in range(MAX_PAGES_PER_PASS if bounded else 1 << 62):
                try:
                    page = os.read(fd, 4096)
                except BlockingIOError:
                    break
                except InterruptedError:
                    continue
                if not page:
                    break
                pages.append((page, cpu))
        decoded = []
        for page, cpu in pages:
            records: list[tuple[int, int, int, tuple]] = []
            missed = decode_page(page, self._layout, self._unpackers, records)
            decoded.append((page, cpu, missed, records))
        if self._internal:
            # names first, from every CPU's pages: an exec on one CPU names the events on the others
            internal, offset = self._internal, self._clock_offset
            for page, _cpu, _missed, records in decoded:
                for ts, etype, off, _values in records:
                    if etype in internal:
                        kind, dec = internal[etype]
                        self._note_name(kind, dec, page, off, ts + offset)
        for page, cpu, missed, records in decoded:
            self._decode_records(page, cpu, missed, records, batch)
        if batch:
            self.stats.events += len(batch)
            self.emit(batch)
        return len(pages)

    def _decode_page(self, page: bytes, cpu: int, out: list[Event]) -> None:
        records: list[tuple[int, int, int, tuple]] = []
        missed = decode_page(page, self._layout, self._unpackers, records)
        self._decode_records(page, cpu, missed, records, out)

    def _build_fast(self) -> None:
        """The reader's fast path, per event id with exactly one plan and no stack records to attach:
        syscall entries and exits, tracepoints without strings or arrays, kprobe/uprobe calls and returns.
        Everything else goes through _to_event."""
        if self._stack_id != -1 or self._ustack_id != -1:
            return
        for etype, handlers in self._handlers.by_id.items():
            if len(handlers) != 1 or etype in self._internal:
                continue
            plan, dec = handlers[0]
            if plan.role == "enter" and plan.system == "syscalls" and plan.syscalls[0] not in NO_RETURN_SYSCALLS:
                self._fast[etype] = (1, plan.syscalls[0])
            elif plan.role == "exit" and plan.system == "syscalls":
                self._fast[etype] = (2, plan.syscalls[0], plan.probe)
            elif plan.role == "tracepoint" and not dec.needs_page and \
                    not (plan.system == "sched" and plan.event == "sched_process_exec"):
                self._fast[etype] = (3, f"{plan.system}:{plan.event}", plan.probe, dec.fast_names)

    def _decode_records(self, page: bytes, cpu: int, missed: int, records: list[tuple[int, int, int, tuple]],
                        out: list[Event]) -> None:
        """Records -> events. The hot loop: local names, tuples for pending entries, one constructor call per
        event, syscall texts made only when read (LazySyscallEvent)."""
        if missed:
            out.append(Event(EventKind.LOST, 0, 0, 0, cpu=cpu, ret=max(missed, 1)))
        handlers = self._handlers.by_id
        offset = self._clock_offset
        fast = self._fast
        pending = self._pending
        idents = self._idents
        renamed = self._names.last
        make = self._event_class
        append = out.append
        for ts, etype, off, values in records:
            f = fast.get(etype)
            if f is not None:
                tid = values[3]
                ts += offset
                role = f[0]
                if role == 1:
                    pending[tid] = (ts, f[1], values[5:])  # after the common header and __syscall_nr
                    continue
                ident = idents.get(tid)
                if ident is None:
                    ident = self._ident(tid)
                pid, comm = ident
                last = renamed.get(tid)
                if last is not None:  # named since: the name at the time (most events come after the last change)
                    comm = last[1] if ts >= last[0] else self._names.at(tid, ts, comm)
                if role == 2:
                    ret = values[-1]
                    name = f[1]
                    pend = pending.pop(tid, None)
                    if pend is None and (tid == self._held_tid or (ret == 0 and name in FORKS)):
                        self._held_tid = -1 if tid == self._held_tid else self._held_tid
                        continue
                    if pend is None or pend[1] != name:
                        append(make(_RESUMED, ts, pid, tid, name, f[2], cpu, comm, None, (), ret, None,
                                    -ret if -4096 < ret < 0 else 0))
                    else:
                        append(make(_SYSCALL, ts, pid, tid, name, f[2], cpu, comm, None, pend[2], ret, None,
                                    -ret if -4096 < ret < 0 else 0, ts - pend[0]))
                else:
                    append(Event(_TRACEPOINT, ts, pid, tid, f[1], f[2], cpu, comm, (), (), None, "", 0, None, None,
                                 None, dict(zip(f[3], values[4:], strict=True))))
                continue
            if etype == self._stack_id:
                self._attach_stack(page, off, cpu)
                continue
            if etype == self._ustack_id and self._ustack_decoder is not None:
                self._attach_user_stack(self._ustack_decoder.decode(page, off), cpu)
                continue
            if etype == self._function_id and self._function_decoder is not None:
                out.append(self._function_event(self._function_decoder.decode(page, off), ts + offset, cpu,
                                                values[3]))
                continue
            for plan, dec in handlers.get(etype, ()):
                ev = self._to_event(plan, dec, page, off, values, ts + offset, cpu)
                if ev is not None:
                    out.append(ev)
                    self._last_by_cpu[cpu] = ev

    def _stack_target(self, cpu: int) -> Event | list[list[Frame] | None] | None:
        """What a stack record on `cpu` belongs to: the event before it, or [kstack, stack] of a pending
        syscall entry."""
        target = self._last_by_cpu.get(cpu)
        if type(target) is int:
            return self._pending_stacks.setdefault(target, [None, None])
        return target  # type: ignore[return-value]

    def _attach_stack(self, page: bytes, off: int, cpu: int) -> None:
        from unitrace.symbols.kallsyms import kernel_symbolize

        fmt = self._stack_decoder.fmt if self._stack_decoder else None
        f = fmt.field("caller") if fmt else None
        size_f = fmt.field("size") if fmt else None
        if f is None or size_f is None:
            return
        (n,) = struct.unpack_from("<i", page, off + size_f.offset)
        count = max(0, min(n, (len(page) - off - f.offset) // 8))
        addrs = struct.unpack_from(f"<{count}Q", page, off + f.offset)
        frames = [kernel_symbolize(a) for a in addrs if a]
        # the first frames are the tracing machinery that took the stack, not the code being traced
        while len(frames) > 1 and frames[0].symbol.startswith(_TRACING_FRAMES):
            frames.pop(0)
        target = self._stack_target(cpu)  # the record it follows: an event, or a syscall entry
        if isinstance(target, list):
            target[0] = frames
        elif target is not None:
            target.kstack = frames

    def _attach_user_stack(self, values: dict[str, object], cpu: int) -> None:
        """The kernel's user stack: its first address is where the thread entered the kernel (known); the
        rest come from following frame pointers, which nothing verifies, so they are marked as guesses."""
        from unitrace.events import Frame
        from unitrace.stack.unwind import Maps, symbolize

        tgid = int(values.get("tgid", 0))  # type: ignore[call-overload]
        addrs = [a for a in values.get("caller", ()) if a and a != 0xFFFFFFFFFFFFFFFF]  # type: ignore[union-attr]
        frames = [Frame(a, reliable=(i == 0), how="regs" if i == 0 else "fp") for i, a in enumerate(addrs)]
        maps = self._maps.get(tgid)
        if maps is None:
            try:
                maps = self._maps[tgid] = Maps.of(tgid)
            except OSError:
                maps = None
        if maps is not None:
            frames = symbolize(frames, maps)  # with the inlined calls DWARF records at each pc
        target = self._stack_target(cpu)  # the record it follows: an event, or a syscall entry
        if isinstance(target, list):
            if target[1] is None:
                target[1] = frames
        elif target is not None and target.stack is None:
            target.stack = frames

    def _function_event(self, values: dict[str, object], ts: int, cpu: int, tid: int) -> Event:
        from unitrace.symbols.kallsyms import kernel_symbolize

        pid, comm = self._ident(tid)
        comm = self._names.at(tid, ts, comm)
        ip = int(values["ip"])  # type: ignore[call-overload]
        parent = kernel_symbolize(int(values["parent_ip"]))  # type: ignore[call-overload]
        fn = kernel_symbolize(ip)
        assert self.plan.functions is not None
        return Event(EventKind.CALL, ts, pid, tid, fn.symbol or hex(ip), self.plan.functions.probe, cpu, comm,
                     fields={"ip": ip, "caller": f"{parent.symbol}+0x{parent.offset:x}"})

    def _ident(self, tid: int) -> tuple[int, str]:
        """(tgid, comm) of a thread: from /proc while it lives, else from the kernel's saved_cmdlines and
        saved_tgids, which remember the threads that recorded events."""
        tgid = self._tgid.get(tid)
        if tgid is None:
            from unitrace.system.procfs import status_fields

            got = status_fields(tid, "Name", "Tgid")
            comm = got.get("Name", "")
            tgid = int(got["Tgid"]) if got.get("Tgid", "").isdigit() else -1
            if tgid < 0 or not comm:
                saved_tgid, saved_comm = self._saved_ident(tid)
                tgid = tgid if tgid >= 0 else saved_tgid
                comm = comm or saved_comm
            self._tgid[tid] = tgid
            self._comm[tid] = comm
            if self.plan.user_stacks and tgid not in self._maps:
                from unitrace.stack.unwind import Maps

                try:  # while it lives: its mappings are needed to name its user frames later
                    self._maps[tgid] = Maps.of(tgid)
                except OSError:
                    pass
        ident = self._idents[tid] = (tgid, self._comm.get(tid, ""))
        return ident

    def _saved_ident(self, tid: int) -> tuple[int, str]:
        comm = ""
        tgid = tid
        try:
            for line in self.fs.read("saved_cmdlines").splitlines():
                num, _, name = line.partition(" ")
                if num == str(tid):
                    comm = name
            for line in self.fs.read("saved_tgids").splitlines():
                num, _, group = line.partition(" ")
                if num == str(tid) and group.strip().isdigit() and int(group) > 0:
                    tgid = int(group)
        except OSError:
            pass
        return tgid, comm

    def _to_event(self, plan: EventPlan, dec: RecordDecoder, page: bytes, off: int, values: tuple,
                  ts: int, cpu: int) -> Event | None:
        tid = values[3]
        role = plan.role
        if role == "enter":
            if plan.system == "raw_syscalls":
                fields = dec.decode(page, off)
                name = self._syscall_name(int(fields["id"]))  # type: ignore[call-overload]
                raw = tuple(fields["args"])  # type: ignore[arg-type]
            else:
                name = plan.syscalls[0]
                raw = values[5:]  # after the common header and __syscall_nr
            if name in NO_RETURN_SYSCALLS:  # no exit record will come: the call is reported at its entry, `= ?`
                return self._no_return_event(plan, name, raw, tid, ts, cpu)
            self._pending[tid] = (ts, name, raw)
            self._pending_stacks.pop(tid, None)
            self._last_by_cpu[cpu] = tid
            return None
        pid, comm = self._ident(tid)
        comm = self._names.at(tid, ts, comm)
        if role == "exit":
            ret = values[-1]
            pend = self._pending.pop(tid, None)
            if plan.system == "syscalls":
                name = plan.syscalls[0]
            elif values[4] < 0:
                # id -1: rt_sigreturn (the kernel clears the number so that nothing restarts) or a new task's
                # first return to user space; the entry, if we saw one, names the call
                if pend is None:
                    return None
                name = pend[1]
            else:
                name = self._syscall_name(values[4])
            kstack, stack = self._pending_stacks.pop(tid, (None, None)) if self._pending_stacks else (None, None)
            errno = -ret if -4096 < ret < 0 else 0
            if pend is None and (tid == self._held_tid or (ret == 0 and name in FORKS)):
                self._held_tid = -1 if tid == self._held_tid else self._held_tid
                return None
            if pend is None or pend[1] != name:
                return self._event_class(EventKind.SYSCALL_RESUMED, ts, pid, tid, name, plan.probe, cpu, comm,
                                         None, (), ret, None, errno)
            return self._event_class(EventKind.SYSCALL, ts, pid, tid, name, plan.probe, cpu, comm, None, pend[2],
                                     ret, None, errno, ts - pend[0], stack=stack, kstack=kstack)
        if role == "tracepoint":
            fields = dec.decode(page, off) if dec.needs_page else dict(zip(dec.fast_names, values[4:], strict=True))
            if plan.system == "sched" and plan.event == "sched_process_exec":
                self._tgid.pop(tid, None)
                self._idents.pop(tid, None)
            return Event(EventKind.TRACEPOINT, ts, pid, tid, f"{plan.system}:{plan.event}", plan.probe, cpu,
                         comm, fields=fields)
        name = plan.symbol or plan.event.removesuffix("__return")
        held = self._held
        if held is not None and tid == held.pid and comm == held.pre_exec_comm:
            return None  # a library call our own copy makes before its exec, not the command's
        if role == "call":
            names = dec.fast_names  # uprobes put __probe_ip before the fetched arguments
            raw = values[4 + names.index("arg0"):] if "arg0" in names else ()
            strings = None
            if dec.needs_page:  # `strN` fields: the strings the kernel read at the probe
                fields = dec.decode(page, off)
                strings = {raw[int(k[3:])]: str(v).encode("utf-8", "surrogateescape")
                           for k, v in fields.items() if k.startswith("str") and k[3:].isdigit()
                           and int(k[3:]) < len(raw)}
            args = call_texts(name, raw, strings=strings) if plan.user else tuple(hex(v) for v in raw)
            return Event(EventKind.CALL, ts, pid, tid, name, plan.probe, cpu, comm, args, raw)
        ret = values[-1]
        return Event(EventKind.RETURN, ts, pid, tid, name, plan.probe, cpu, comm, ret=ret,
                     ret_text=return_text(name, ret) if plan.user else str(ret))

    def _no_return_event(self, plan: EventPlan, name: str, raw: tuple[int, ...], tid: int, ts: int,
                         cpu: int) -> Event:
        """exit/exit_group as strace prints them: `exit_group(0) = ?`."""
        from unitrace.decode.table import get_table

        pid, comm = self._ident(tid)
        comm = self._names.at(tid, ts, comm)
        info = get_table().by_name.get(name)
        if info is not None:
            args = self._syscall_decoder().enter(0, info.nr, raw, _NO_MEMORY).entry_args()
        else:
            args = tuple(hex(v) for v in raw)
        return Event(EventKind.SYSCALL, ts, pid, tid, name, plan.probe, cpu, comm, args, raw, None, "?")

    def _syscall_name(self, nr: int) -> str:
        from unitrace.decode.table import get_table

        info = get_table().by_nr.get(nr)
        return info.name if info else f"syscall_{nr}"

    def _syscall_texts(self, ev: Event) -> tuple[tuple[str, ...], str, int]:
        """strace's texts of a LazySyscallEvent, when first read."""
        ret = ev.ret if ev.ret is not None else 0
        if ev.kind is EventKind.SYSCALL_RESUMED:
            return (), self._ret_text(ev.name, ret), ev.errno
        return self._decode_syscall(ev.name, ev.raw_args, ret)

    def _decode_syscall(self, name: str, raw: tuple[int, ...], ret: int) -> tuple[tuple[str, ...], str, int]:
        """strace's texts for a syscall seen only through its registers: the tracee's memory is not ours to
        read here, so pointers are printed as addresses."""
        from unitrace.decode.table import get_table

        info = get_table().by_name.get(name)
        if info is None:
            return tuple(hex(v) for v in raw), self._ret_text(name, ret), -ret if -4096 < ret < 0 else 0
        dec = self._syscall_decoder()
        call = dec.enter(0, info.nr, raw, _NO_MEMORY)
        return dec.exit(call, ret, _NO_MEMORY)

    def _ret_text(self, name: str, ret: int) -> str:
        from unitrace.decode.errnos import ERRNO_NAMES, strerror

        if -4096 < ret < 0:
            return f"-1 {ERRNO_NAMES.get(-ret, str(-ret))} ({strerror(-ret)})"
        return str(ret)

    def _syscall_decoder(self):  # type: ignore[no-untyped-def]
        if self._decoder is None:
            from unitrace.decode.api import FormatOptions
            from unitrace.decode.syscall import StraceDecoder

            opts = self.options.get("format_options")
            self._decoder = StraceDecoder(opts if isinstance(opts, FormatOptions) else FormatOptions())
        return self._decoder

    # ---- tear-down ----------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        errors: list[BaseException] = []
        while self._undo:
            step = self._undo.pop()
            try:
                step()
            except BaseException as exc:  # keep unwinding: every object gets its chance to go
                errors.append(exc)
        if errors:
            raise errors[0]


class _NoMemory:
    """Syscall events carry register values only: the tracee's memory is not ours to read here."""

    def read(self, addr: int, size: int) -> bytes | None:
        return None

    def read_cstr(self, addr: int, limit: int) -> bytes | None:
        return None


_NO_MEMORY = _NoMemory()


def tracefs_root() -> Path:
    root = find_tracefs()
    if root is None:
        raise UnitraceError("tracefs is not mounted")
    return root
