"""Human-readable lines for every event kind, for `unitrace trace` and probe files.

Syscall events are printed exactly as strace prints them (the strace front end's formatter); the other
kinds get one line each in the same spirit: who, what, arguments, result.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TextIO

from unitrace.events import Event, EventKind, Frame, SessionStats
from unitrace.model.probe import Probe


def format_stack(frames: Sequence[Frame], indent: str = "    ") -> list[str]:
    """One line per frame; guessed frames carry the kernel's `?` mark."""
    return [f"{indent}{frame}" for frame in frames]


class TextSink:
    """Writes one line per event. `timestamps`: "", "t" (wall clock), "r" (relative), "ns"."""

    def __init__(self, out: TextIO, probes: Sequence[Probe] = (), *, timestamps: str = "",
                 show_pid: bool = True, show_lifecycle: bool = True) -> None:
        self.out = out
        self.probes = probes
        self.timestamps = timestamps
        self.show_pid = show_pid
        self.show_lifecycle = show_lifecycle
        self._first_ts: int | None = None

    def _prefix(self, ev: Event) -> str:
        parts = []
        if self.timestamps and ev.ts_ns:
            if self._first_ts is None:
                self._first_ts = ev.ts_ns
            if self.timestamps == "r":
                parts.append(f"{(ev.ts_ns - self._first_ts) / 1e9:12.6f}")
            elif self.timestamps == "ns":
                parts.append(str(ev.ts_ns))
            else:
                secs, ns = divmod(ev.ts_ns, 1_000_000_000)
                parts.append(time.strftime("%H:%M:%S", time.localtime(secs)) + f".{ns // 1000:06d}")
        if self.show_pid:
            who = f"{ev.comm}[{ev.pid}" + (f"/{ev.tid}" if ev.tid != ev.pid else "") + "]"
            parts.append(who)
        return " ".join(parts) + (" " if parts else "")

    def line(self, ev: Event) -> str | None:
        kind = ev.kind
        if kind in (EventKind.SYSCALL, EventKind.SYSCALL_RESUMED):
            ret = ev.ret_text or ("?" if ev.ret is None else str(ev.ret))
            dur = f" <{ev.duration_ns / 1e9:.6f}>" if ev.duration_ns is not None else ""
            if kind is EventKind.SYSCALL_RESUMED:
                return f"<... {ev.name} resumed>) = {ret}{dur}"
            return f"{ev.name}({', '.join(ev.args)}) = {ret}{dur}"
        if kind is EventKind.SYSCALL_ENTER:
            return None  # the completed line follows
        if kind is EventKind.CALL:
            caller = ev.fields.get("caller")
            extra = f" from {caller:#x}" if isinstance(caller, int) else f" from {caller}" if caller else ""
            return f"{ev.name}({', '.join(ev.args)}){extra}"
        if kind is EventKind.RETURN:
            dur = f" <{ev.duration_ns / 1e9:.6f}>" if ev.duration_ns is not None else ""
            return f"{ev.name}() = {ev.ret_text or ev.ret}{dur}"
        if kind is EventKind.TRACEPOINT:
            fields = " ".join(f"{k}={v}" for k, v in ev.fields.items())
            return f"{ev.name}: {fields}"
        if kind is EventKind.WATCH:
            return f"watch {ev.name}: {ev.text or ev.fields}"
        if not self.show_lifecycle:
            return None
        if kind is EventKind.SIGNAL:
            return f"--- {ev.name} {ev.fields.get('siginfo', '')} ---"
        if kind is EventKind.EXIT:
            if "signal" in ev.fields:
                core = " (core dumped)" if ev.fields.get("core") else ""
                return f"+++ killed by {ev.fields['signal']}{core} +++"
            return f"+++ exited with {ev.ret if ev.ret is not None else ev.fields.get('status', '?')} +++"
        if kind is EventKind.LOST:
            return f"!!! lost {ev.ret} events on CPU {ev.cpu} !!!"
        if kind is EventKind.NOTICE:
            return ev.text
        if kind is EventKind.EXEC:
            return f"exec {ev.fields.get('filename', ev.name)}"
        return None

    def feed(self, batch: list[Event]) -> None:
        write = self.out.write
        for ev in batch:
            text = self.line(ev)
            if text is None:
                continue
            write(self._prefix(ev) + text + "\n")
            for stack in (ev.kstack, ev.stack):
                if stack:
                    write("\n".join(format_stack(stack)) + "\n")

    def close(self, stats: SessionStats) -> None:
        self.out.flush()
