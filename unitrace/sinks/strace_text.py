"""Events -> strace's exact text lines.

What strace 6.1 does, and so this sink does (each checked against the real tool, see tests/test_strace_text.py):
- `[pid  1234] ` before every line while more than one tracee is alive and output goes to the terminal;
  with `-o FILE` under `-f` every line starts with `1234  ` (pid left-aligned in five columns) instead;
  `-ff -o FILE` writes one file per thread, `FILE.TID`, without prefixes.
- timestamps after the pid: `-t` HH:MM:SS, `-tt` with microseconds, `-ttt` epoch seconds, `-r` the
  time since the previous line.
- `) ` then spaces up to column 40 (the whole line counts, prefix included) then `= RET`; `-T` adds
  ` <0.000123>`.
- a syscall whose exit is not the next thing printed in the same stream is cut with ` <unfinished ...>`
  and finished later as `<... read resumed>REST) = RET`; a thread that dies inside a syscall finishes its
  line with `) = ?`.
- `--- SIGCHLD {...} ---`, `+++ exited with 3 +++`, `+++ killed by SIGSEGV (core dumped) +++`.
- attach notices (`strace: Process 12 attached`) go to stderr, whatever -o says.
- with a status filter (-z, -Z, -e status=) lines are printed whole at exit: there is nothing to cut.
- `-k`: after a syscall's line, its user stack, one ` > /path/libc.so.6(__close+0x10) [0xf89f0]` line per
  frame (`path() [0x...]` without a symbol), innermost first; a frame the walker could not prove is marked
  ` > ? ...`. exit/exit_group's stack follows the `+++ exited` line, where strace prints it; a signal's
  line is followed by the stack the signal found.

Lines are built with f-strings and written once per batch: this sink must never be the tracer's
bottleneck.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TextIO

from unitrace.events import Event, EventKind, SessionStats

STATUSES = frozenset({"successful", "failed", "unfinished", "unavailable", "detached"})
COLUMN = 40
_EXIT_CALLS = frozenset({"exit", "exit_group"})
# Calls whose decoder prints a variable set of arguments: strace ends their entry text without ", " and
# starts the exit text with it (`clone(..., flags=...|SIGCHLD <unfinished ...>`, `<... clone resumed>, ...`).
_SEP_AT_EXIT = frozenset({"clone", "clone2"})


@dataclass(frozen=True, slots=True)
class StraceTextOptions:
    follow: int = 0  # 0, 1 (-f), 2 (-ff: one file per thread, needs output_path)
    output_path: str | None = None  # -o FILE; None: stderr
    pid_prefix: bool = False  # `1234  ` on every line (strace: -o FILE with -f, or several -p)
    timestamps: int = 0  # 1 -t, 2 -tt, 3 -ttt
    relative: bool = False  # -r
    syscall_times: bool = False  # -T
    status: frozenset[str] | None = None  # None: every status (no filter)
    quiet: int = 0  # 1 -q: no attach/detach notices; 2 -qq: no exit lines either
    column: int = COLUMN


@dataclass(slots=True)
class _Pending:
    """A syscall whose entry was seen and whose exit was not."""

    name: str
    entry_count: int  # how many argument texts the entry printed
    open_in: _Stream | None  # the stream whose current line it is, None once cut
    ts_ns: int


class _Stream:
    """One output file with the state of its last, possibly unterminated, line."""

    __slots__ = ("buf", "col", "open_tid", "out", "owned")

    def __init__(self, out: TextIO, owned: bool) -> None:
        self.out = out
        self.owned = owned
        self.buf: list[str] = []
        self.open_tid: int | None = None
        self.col = 0  # length of the open line so far


def _open_cloexec(path: str) -> TextIO:
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    return open(fd, "w", buffering=1 << 16, encoding="utf-8", errors="surrogateescape", closefd=True)


class StraceTextSink:
    """Formats events as strace does. `prints_at_exit(name)` says whether a syscall prints arguments at
    exit, i.e. whether its entry text ends with `, ` (`read(3, `) or not (`accept(3, NULL, NULL`)."""

    def __init__(self, options: StraceTextOptions, *, out: TextIO | None = None,
                 notices: TextIO | None = None, prints_at_exit: Callable[[str], bool] | None = None,
                 initial_tids: Iterable[int] = ()) -> None:
        self.opt = options
        self.notices = notices if notices is not None else sys.stderr
        self.prints_at_exit = prints_at_exit or (lambda _name: True)
        self.live: set[int] = set(initial_tids)
        self.pending: dict[int, _Pending] = {}
        self.announced: set[int] = set()
        self.detached_pids: set[int] = set()
        self.streams: dict[int, _Stream] = {}  # tid -> stream (-ff); key 0 for the shared stream
        self._shared: _Stream | None = None
        if options.follow < 2 or not options.output_path:
            if out is not None:
                self._shared = _Stream(out, owned=False)
            elif options.output_path:
                self._shared = _Stream(_open_cloexec(options.output_path), owned=True)
            else:
                self._shared = _Stream(sys.stderr, owned=False)
        self._last_ts: int | None = None
        self._clock_sec = -1
        self._clock_text = ""
        self.lines = 0
        self._held_stacks: dict[int, list[str]] = {}  # -k: exit_group's stack, printed after `+++ exited`

    # ---- streams and leaders --------------------------------------------------------------------

    def _stream(self, tid: int) -> _Stream:
        if self._shared is not None:
            return self._shared
        st = self.streams.get(tid)
        if st is None:
            assert self.opt.output_path is not None
            st = self.streams[tid] = _Stream(_open_cloexec(f"{self.opt.output_path}.{tid}"), owned=True)
        return st

    def _hms(self, sec: int) -> str:
        if sec != self._clock_sec:
            self._clock_sec = sec
            self._clock_text = time.strftime("%H:%M:%S", time.localtime(sec))
        return self._clock_text

    def _leader(self, tid: int, ts_ns: int) -> str:
        opt = self.opt
        if self._shared is None:
            lead = ""
        elif opt.pid_prefix:
            lead = f"{tid:<5d} "
        elif len(self.live) > 1:
            lead = f"[pid {tid:5d}] "
        else:
            lead = ""
        if opt.timestamps:
            sec, ns = divmod(ts_ns, 1_000_000_000)
            if opt.timestamps == 1:
                lead += f"{self._hms(sec)} "
            elif opt.timestamps == 2:
                lead += f"{self._hms(sec)}.{ns // 1000:06d} "
            else:
                lead += f"{sec}.{ns // 1000:06d} "
        if opt.relative:
            last = self._last_ts if self._last_ts is not None else ts_ns
            delta = max(0, ts_ns - last)
            sec, ns = divmod(delta, 1_000_000_000)
            lead += f"{sec:6d}.{ns // 1000:06d} "
            self._last_ts = ts_ns
        return lead

    def _begin(self, st: _Stream, tid: int) -> None:
        """Start a new line for `tid`: a line another thread left open in this stream is cut first."""
        other = st.open_tid
        if other is not None:
            st.buf.append(" <unfinished ...>\n")
            p = self.pending.get(other)
            if p is not None:
                p.open_in = None
            st.open_tid = None

    def _finish(self, st: _Stream, text: str, col: int, ret: str, dur: int | None) -> None:
        """`text` is the line so far (ending in `) `), `col` its length; pad, return value, -T."""
        pad = self.opt.column - col
        tail = f" <{dur // 1_000_000_000}.{(dur // 1000) % 1_000_000:06d}>" if (
            self.opt.syscall_times and dur is not None) else ""
        st.buf.append(f"{text}{' ' * pad if pad > 0 else ''}= {ret}{tail}\n")
        self.lines += 1

    # ---- events ---------------------------------------------------------------------------------

    def _wanted_status(self, ev: Event) -> bool:
        status = self.opt.status
        if status is None:
            return True
        if ev.ret is None:
            return "unfinished" in status or "unavailable" in status
        return ("failed" if ev.errno else "successful") in status

    def _enter(self, ev: Event) -> None:
        tid = ev.tid
        if self.opt.status is not None:
            # Whole lines only: the exit decides whether the call is printed at all.
            self.pending[tid] = _Pending(ev.name, len(ev.args), None, ev.ts_ns)
            return
        st = self._stream(tid)
        self._begin(st, tid)
        args = ev.args
        sep = ", " if args and ev.name not in _SEP_AT_EXIT and self.prints_at_exit(ev.name) else ""
        text = f"{self._leader(tid, ev.ts_ns)}{ev.name}({', '.join(args)}{sep}"
        st.buf.append(text)
        st.col = len(text)
        st.open_tid = tid
        self.pending[tid] = _Pending(ev.name, len(args), st, ev.ts_ns)

    def _complete(self, ev: Event) -> None:
        tid = ev.tid
        pend = self.pending.get(tid)
        if not self._wanted_status(ev):
            self.pending.pop(tid, None)
            st = pend.open_in if pend is not None else None
            if st is not None and st.open_tid == tid:
                st.open_tid = None  # unreachable with a status filter: entries are never printed
            return
        self._complete_line(ev)
        if ev.stack:
            lines = stack_lines(ev.stack, ev.fields.get("stack_rel", ()))  # type: ignore[arg-type]
            if ev.ret is None and ev.name in _EXIT_CALLS:
                self._held_stacks[tid] = lines
            else:
                self._stream(tid).buf.extend(lines)

    def _complete_line(self, ev: Event) -> None:
        tid = ev.tid
        pend = self.pending.pop(tid, None)
        ret = ev.ret_text or ("?" if ev.ret is None else str(ev.ret))
        st = self._stream(tid)
        if pend is not None and pend.open_in is st and st.open_tid == tid:
            if ev.ret is None and pend.name not in _EXIT_CALLS:
                # the thread died inside the call (a backend reports that as a call without a return)
                text = " <unfinished ...>) "
                st.open_tid = None
                self._finish(st, text, st.col + len(text), ret, None)
                return
            rest = ", ".join(ev.args[pend.entry_count:])
            if rest and pend.name in _SEP_AT_EXIT and pend.entry_count:
                rest = ", " + rest
            text = f"{rest}) "
            st.open_tid = None
            self._finish(st, text, st.col + len(text), ret, ev.duration_ns)
            return
        self._begin(st, tid)
        if pend is not None and self.opt.status is None:
            rest = ", ".join(ev.args[pend.entry_count:])
            if rest and pend.name in _SEP_AT_EXIT and pend.entry_count:
                rest = ", " + rest
            text = f"{self._leader(tid, ev.ts_ns)}<... {ev.name} resumed>{rest}) "
        else:
            ts = pend.ts_ns if pend is not None else ev.ts_ns
            text = f"{self._leader(tid, ts)}{ev.name}({', '.join(ev.args)}) "
        self._finish(st, text, len(text), ret, ev.duration_ns)

    def _died_in_syscall(self, tid: int, ts_ns: int) -> None:
        pend = self.pending.pop(tid, None)
        if pend is None or (self.opt.status is not None and "unfinished" not in self.opt.status):
            return
        st = self._stream(tid)
        if pend.open_in is st and st.open_tid == tid:
            text = "" if pend.name in _EXIT_CALLS else " <unfinished ...>"
            text += ") "
            st.open_tid = None
            self._finish(st, text, st.col + len(text), "?", None)
            return
        self._begin(st, tid)
        if self.opt.status is not None:
            text = f"{self._leader(tid, pend.ts_ns)}{pend.name}(...) "
        else:
            text = f"{self._leader(tid, ts_ns)}<... {pend.name} resumed>) "
        self._finish(st, text, len(text), "?", None)

    def _plain(self, tid: int, ts_ns: int, body: str) -> None:
        st = self._stream(tid)
        self._begin(st, tid)
        st.buf.append(f"{self._leader(tid, ts_ns)}{body}\n")
        self.lines += 1

    def _notice(self, text: str) -> None:
        if self.opt.quiet < 1:
            self.notices.write(f"strace: {text}\n")

    def attached(self, pid: int) -> None:
        """A tracee we attached to or that a traced process created."""
        self.live.add(pid)
        if pid not in self.announced:
            self.announced.add(pid)
            self._notice(f"Process {pid} attached")

    def detached(self, pid: int) -> None:
        """We let go of a tracee that is still running (-p and ^C)."""
        if pid not in self.detached_pids:
            self.detached_pids.add(pid)
            self._notice(f"Process {pid} detached")

    def feed(self, batch: list[Event]) -> None:
        SYSCALL, ENTER, RESUMED = EventKind.SYSCALL, EventKind.SYSCALL_ENTER, EventKind.SYSCALL_RESUMED
        live = self.live
        for ev in batch:
            kind = ev.kind
            if kind is SYSCALL or kind is RESUMED:
                live.add(ev.tid)
                self._complete(ev)
            elif kind is ENTER:
                live.add(ev.tid)
                self._enter(ev)
            elif kind is EventKind.SIGNAL:
                live.add(ev.tid)
                info = ev.fields.get("siginfo")
                if ev.text:
                    body = ev.text if ev.text.startswith("---") else f"--- {ev.text} ---"
                elif info:
                    body = f"--- {ev.name} {info} ---"
                else:
                    body = f"--- {ev.name} ---"
                self._plain(ev.tid, ev.ts_ns, body)
                if ev.stack:
                    self._stream(ev.tid).buf.extend(
                        stack_lines(ev.stack, ev.fields.get("stack_rel", ())))  # type: ignore[arg-type]
            elif kind is EventKind.EXIT:
                self._died_in_syscall(ev.tid, ev.ts_ns)
                if self.opt.quiet < 2:
                    sig = ev.fields.get("signal")
                    if sig:
                        core = " (core dumped)" if ev.fields.get("core") else ""
                        body = f"+++ killed by {sig}{core} +++"
                    else:
                        body = f"+++ exited with {ev.ret if ev.ret is not None else 0} +++"
                    self._plain(ev.tid, ev.ts_ns, body)
                held = self._held_stacks.pop(ev.tid, None)
                if held:
                    self._stream(ev.tid).buf.extend(held)
                live.discard(ev.tid)
            elif kind is EventKind.FORK:
                child = ev.fields.get("child")
                if isinstance(child, int):
                    self.attached(child)
            elif kind is EventKind.EXEC:
                old = ev.fields.get("old_tid")
                if isinstance(old, int) and old != ev.tid:
                    # a non-leader thread exec'd: the leader's identity passes to it (strace's words)
                    self.pending.pop(old, None)
                    self._plain(old, ev.ts_ns, f"+++ superseded by execve in pid {ev.tid} +++")
                    live.discard(old)
            elif kind is EventKind.NOTICE:
                text = ev.text
                if text.startswith("Process ") and text.endswith(" attached"):
                    pid = ev.pid
                    if pid in self.announced:
                        continue
                    self.announced.add(pid)
                    live.add(pid)
                if text.startswith("Process ") and text.endswith(" detached"):
                    if ev.pid in self.detached_pids:
                        continue
                    self.detached_pids.add(ev.pid)
                if text:
                    self._notice(text)
            elif kind is EventKind.LOST:
                self.notices.write(f"strace: lost {ev.ret} events\n")
        self.flush()

    def flush(self) -> None:
        for st in self._all_streams():
            if st.buf:
                st.out.write("".join(st.buf))
                st.buf.clear()
                st.out.flush()

    @property
    def shared_out(self) -> TextIO | None:
        """The one stream every line goes to (None under -ff)."""
        return self._shared.out if self._shared is not None else None

    def finish(self) -> None:
        """Write everything, ending a line left open when tracing stopped (detach, ^C) as strace does."""
        self.flush()
        for st in self._all_streams():
            if st.open_tid is not None:
                st.out.write(" <unfinished ...>\n")
                st.open_tid = None
            st.out.flush()

    def _all_streams(self) -> list[_Stream]:
        return [self._shared] if self._shared is not None else list(self.streams.values())

    def close(self, stats: SessionStats | None = None) -> None:
        self.finish()
        for st in self._all_streams():
            if st.owned:
                st.out.close()
            else:
                st.out.flush()


def stack_lines(frames: list, rel: tuple[int, ...] | list[int]) -> list[str]:
    """strace -k's lines for one stack: ` > /usr/lib/x86_64-linux-gnu/libc.so.6(__close+0x10) [0xf89f0]`,
    the address in brackets relative to the module's link-time base; ` > /path() [0x...]` without a symbol.
    A frame the stack walker could not prove is marked `? `, as the kernel marks its guesses."""
    out = []
    for i, f in enumerate(frames):
        addr = rel[i] if i < len(rel) else f.address
        mark = "" if f.reliable else "? "
        if f.symbol:
            out.append(f" > {mark}{f.module}({f.symbol}+0x{f.offset:x}) [0x{addr:x}]\n")
        elif f.module:
            out.append(f" > {mark}{f.module}() [0x{addr:x}]\n")
        else:
            out.append(f" > {mark}unmapped address [0x{addr:x}]\n")
    return out
