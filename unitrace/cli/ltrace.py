"""`unitrace ltrace [FLAGS] CMD...` / `-p PID`: ltrace's everyday flags and line format, on breakpoints at
function entries (so `-z now`, `-fno-plt` and PIE binaries show their calls too).

By default, as ltrace: every function the executable imports, reported when the executable itself calls it.
`-e malloc+free@libc.so*` narrows that, `-l LIB` takes every function of LIB called from the program,
`-x SYMS` breaks on functions of the executable itself (and reports every caller).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from unitrace.errors import UnitraceError
from unitrace.events import Event, EventKind
from unitrace.symbols.demangle import demangle

ACCEPTS_EXTRA = True


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("-e", dest="filters", action="append", default=[], metavar="FILTER",
                   help="which library calls: [+-]SYM[+SYM...][@LIB], globs allowed (e.g. malloc+free@libc.so*)")
    p.add_argument("-l", dest="libs", action="append", default=[], metavar="LIB",
                   help="every function of LIB that the program calls")
    p.add_argument("-x", dest="syms", action="append", default=[], metavar="SYMS",
                   help="functions of the executable itself, or of LIB (SYM[+SYM...][@LIB], globs allowed)")
    p.add_argument("-S", dest="syscalls", action="store_true", help="show system calls too")
    p.add_argument("-c", dest="count", action="store_true", help="count calls and time; summary at the end")
    p.add_argument("-T", dest="times", action="store_true", help="time spent in each call")
    p.add_argument("-t", dest="tstamp", action="count", default=0, help="-t, -tt, -ttt: timestamps")
    p.add_argument("-r", dest="relative", action="store_true", help="relative timestamps")
    p.add_argument("-n", dest="indent", type=int, default=0, metavar="N", help="indent nested calls by N")
    p.add_argument("-s", dest="strsize", type=int, default=32, metavar="N", help="string length limit")
    p.add_argument("-f", dest="follow", action="store_true", help="trace children and threads")
    p.add_argument("-p", dest="pids", type=int, action="append", default=[], metavar="PID",
                   help="attach to a running process")
    p.add_argument("-o", dest="output", metavar="FILE", help="write the trace to FILE (default stderr)")
    p.add_argument("-C", dest="demangle", action="store_true",
                   help="decode C++ symbol names (_ZN6shapes4areaEi -> shapes::area(int))")
    p.add_argument("-F", dest="protos", action="append", default=[], metavar="FILE",
                   help="extra prototypes, ltrace.conf style")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="the command to trace")


def build_specs(filters: list[str], libs: list[str], syms: list[str]) -> tuple[object, ...]:
    from unitrace.backends.ptrace.breakpoints import UserSpec

    specs: list[UserSpec] = []
    for f in filters:
        for part in _split_filter(f):
            neg, body = part[0] == "-", part.lstrip("+-")
            sym, _, lib = body.partition("@")
            library = None if not lib else ("" if lib == "MAIN" else lib)
            specs.append(UserSpec(sym or "*", library, from_main=True, exclude=neg,
                                  imports=library is None and not neg))
    for lib in libs:
        specs.append(UserSpec("*", lib, from_main=True))
    for s in syms:
        # as ltrace: -x SYM[+SYM...][@LIB], the executable when no library is named; a library loaded
        # later with dlopen gets its breakpoints when the loader reports it
        names, _, lib = s.partition("@")
        for sym in names.split("+"):
            if sym:
                specs.append(UserSpec(sym, "" if not lib or lib == "MAIN" else lib, from_main=False))
    if not any(not s.exclude and s.from_main for s in specs):  # -x adds to ltrace's default, as ltrace
        specs.append(UserSpec("*", None, from_main=True, imports=True))
    # as ltrace: the C start-up's call into libc never returns and is not the program's own call
    specs.append(UserSpec("__libc_start_main", None, exclude=True))
    return tuple(specs)


def _split_filter(text: str) -> list[str]:
    """`malloc+free@libc.so*` -> ["malloc@libc.so*", "free@libc.so*"]; `-free` negates one name."""
    body, at, lib = text.partition("@")
    parts: list[str] = []
    cur = ""
    for ch in body:
        if ch in "+-" and cur:
            parts.append(cur)
            cur = ch if ch == "-" else ""
        else:
            cur += ch
    if cur:
        parts.append(cur)
    return [p + (at + lib if at else "") for p in parts] or ["*" + at + lib]


@dataclass
class LtraceText:
    """ltrace's lines: `malloc(16) = 0x...`, `<unfinished ...>` / `<... malloc resumed>` when interleaved."""

    out: TextIO
    indent: int = 0
    tstamp: int = 0
    relative: bool = False
    times: bool = False
    show_pid: bool = False
    demangle: bool = False
    pending: dict[int, Event] = field(default_factory=dict)  # tid -> CALL not printed yet
    last_ts: int = 0

    def _name(self, e: Event) -> str:
        return demangle(e.name) if self.demangle else e.name

    def _prefix(self, e: Event, depth: int = 0) -> str:
        pre = f"[pid {e.tid}] " if self.show_pid else ""
        if self.relative:
            rel = (e.ts_ns - self.last_ts) / 1e9 if self.last_ts else 0.0
            self.last_ts = e.ts_ns
            pre += f"{rel:12.6f} "
        elif self.tstamp >= 3:
            pre += f"{e.ts_ns // 10**9}.{e.ts_ns % 10**9 // 1000:06d} "
        elif self.tstamp:
            t = time.strftime("%H:%M:%S", time.localtime(e.ts_ns / 1e9))
            pre += f"{t}.{e.ts_ns % 10**9 // 1000:06d} " if self.tstamp == 2 else f"{t} "
        return pre + " " * (self.indent * depth)

    def _flush_pending(self, except_tid: int | None = None) -> None:
        for tid, call in list(self.pending.items()):
            if tid == except_tid:
                continue
            del self.pending[tid]
            depth = int(call.fields.get("depth", 0))  # type: ignore[call-overload]
            self.out.write(f"{self._prefix(call, depth)}{self._name(call)}({', '.join(call.args)} "
                           "<unfinished ...>\n")

    def _tail(self, e: Event) -> str:
        return f" <{e.duration_ns / 1e9:.6f}>" if self.times and e.duration_ns is not None else ""

    def __call__(self, batch: list[Event]) -> None:
        for e in batch:
            if e.kind is EventKind.CALL:
                self._flush_pending()
                self.pending[e.tid] = e
            elif e.kind is EventKind.RETURN:
                call = self.pending.pop(e.tid, None)
                self._flush_pending()
                depth = int(e.fields.get("depth", 0))  # type: ignore[call-overload]
                if call is not None and call.name == e.name:
                    head = f"{self._prefix(call, depth)}{self._name(e)}({', '.join(call.args)})"
                else:
                    head = f"{self._prefix(e, depth)}<... {self._name(e)} resumed> )"
                self.out.write(f"{head:<48} = {e.ret_text}{self._tail(e)}\n")
            elif e.kind is EventKind.SYSCALL:
                self._flush_pending()
                head = f"{self._prefix(e)}SYS_{e.name}({', '.join(e.args)})"
                self.out.write(f"{head:<48} = {e.ret_text}{self._tail(e)}\n")
            elif e.kind is EventKind.SIGNAL:
                self._flush_pending()
                signo = e.fields.get("signo")
                desc = signal.strsignal(signo) if isinstance(signo, int) else None
                self.out.write(f"{self._prefix(e)}--- {e.name}{f' ({desc})' if desc else ''} ---\n")
            elif e.kind is EventKind.EXIT and e.pid == e.tid:
                self._flush_pending()
                if "signal" in e.fields:
                    self.out.write(f"{self._prefix(e)}+++ killed by {e.fields['signal']} +++\n")
                else:
                    self.out.write(f"{self._prefix(e)}+++ exited (status {e.ret}) +++\n")
            elif e.kind is EventKind.NOTICE:
                self._flush_pending()
                self.out.write(f"{e.text}\n")
        self.out.flush()


@dataclass
class CallSummary:
    """ltrace -c: calls and time per function."""

    totals: dict[str, list[int]] = field(default_factory=dict)  # name -> [calls, ns]
    demangle: bool = False

    def __call__(self, batch: list[Event]) -> None:
        for e in batch:
            if e.kind is EventKind.RETURN:
                row = self.totals.setdefault(e.name, [0, 0])
                row[0] += 1
                row[1] += e.duration_ns or 0

    def render(self, out: TextIO) -> None:
        total_ns = sum(r[1] for r in self.totals.values()) or 1
        sep = "------ ----------- ----------- --------- --------------------"
        out.write("% time     seconds  usecs/call     calls      function\n" + sep + "\n")
        for name, (calls, ns) in sorted(self.totals.items(), key=lambda kv: -kv[1][1]):
            out.write(f"{100 * ns / total_ns:6.2f} {ns / 1e9:11.6f} {ns // 1000 // max(calls, 1):11d} "
                      f"{calls:9d} {demangle(name) if self.demangle else name}\n")
        calls = sum(r[0] for r in self.totals.values())
        out.write(sep + "\n" + f"100.00 {total_ns / 1e9:11.6f} {'':11} {calls:9d} total\n")


def run(args: argparse.Namespace) -> int:
    from unitrace.backends.base import TraceTarget
    from unitrace.backends.ptrace.backend import PtraceBackend
    from unitrace.decode.api import FormatOptions

    command = [c for c in (args.cmd or []) if c != "--"] + list(getattr(args, "command_tail", []) or [])
    extra = [a for a in (args.extra or []) if a != "--" and a not in command]
    if extra:
        raise UnitraceError(f"ltrace: unknown option {extra[0]!r}")
    if not command and not args.pids:
        raise UnitraceError("ltrace: give a command to run or -p PID", hint="unitrace ltrace -- ls -l")
    specs = build_specs(args.filters, args.libs, args.syms)
    backend = PtraceBackend()
    opts: dict[str, object] = {"user_specs": specs, "follow_forks": args.follow, "string_limit": args.strsize,
                               "prototype_files": tuple(args.protos), "format_options": FormatOptions(
                                   string_limit=args.strsize),
                               "stop_signals": (2, 15, 1), "need_decode": not args.count}
    if args.syscalls:
        from unitrace.decode.table import get_table

        opts["syscalls"] = frozenset(get_table().by_name)
    else:
        opts["syscalls"] = frozenset()
    program = backend.compile((), opts)
    out: TextIO = sys.stderr
    opened = None
    if args.output:
        try:
            opened = out = open(args.output, "w", encoding="utf-8",  # noqa: SIM115 - closed below
                                opener=lambda p, f: os.open(p, f | os.O_CLOEXEC, 0o644))
        except OSError as exc:
            raise UnitraceError(f"cannot write {args.output}: {exc.strerror}") from exc
    summary = CallSummary(demangle=args.demangle) if args.count else None
    sink = summary or LtraceText(out, args.indent, args.tstamp, args.relative, args.times,
                                 show_pid=args.follow or len(args.pids) > 1, demangle=args.demangle)
    target = TraceTarget(command=tuple(command), pids=tuple(args.pids), follow_forks=args.follow)
    try:
        with backend.start(program, target, sink, opts) as session:
            status = session.run()
        if summary is not None:
            summary.render(out)
    finally:
        if opened is not None:
            with contextlib.suppress(OSError):
                opened.close()
    return status
