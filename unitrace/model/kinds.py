"""The probe-kind registry: one entry per kind, carrying how it is named, which sites it has, and how its
target text is read. Adding a kind is one entry here plus one compile function per backend that supports it
(tests/test_lang_kinds.py walks the registry against the backends)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from unitrace.errors import ProbeError, Span
from unitrace.model.probe import (
    KernelTarget,
    Site,
    SyscallTarget,
    Target,
    TracepointTarget,
    UserTarget,
    WatchTarget,
)

TargetParser = Callable[[str, Span, str], Target]  # (target text, its span, the whole source text)

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_GLOB_IDENT = re.compile(r"[A-Za-z0-9_*?\[\]]+")


def _err(msg: str, span: Span, text: str, hint: str | None = None) -> ProbeError:
    return ProbeError(msg, span, text, hint=hint)


def _syscall(target: str, span: Span, text: str) -> Target:
    patterns = tuple(p for p in target.split(",")) if not target.startswith("/") else (target,)
    for p in patterns:
        if not p:
            raise _err("empty syscall name in the list", span, text)
        if not (p.startswith(("%", "/")) or _GLOB_IDENT.fullmatch(p)):
            raise _err(f"{p!r} is not a syscall name, glob, %class or /regex/", span, text)
    return SyscallTarget(patterns)


def _kernel(target: str, span: Span, text: str) -> Target:
    if not _GLOB_IDENT.fullmatch(target):
        raise _err(f"{target!r} is not a kernel function name or glob", span, text,
                   hint="kernel:do_sys_openat2, or kernel:vfs_* for the function tracer")
    return KernelTarget(target)


def _tracepoint(target: str, span: Span, text: str) -> Target:
    parts = target.split(":")
    if len(parts) != 2 or not all(_IDENT.fullmatch(p) for p in parts):
        raise _err(f"a tracepoint is SUBSYSTEM:EVENT, not {target!r}", span, text,
                   hint="tracepoint:sched:sched_process_exec (unitrace list tracepoints)")
    return TracepointTarget(parts[0], parts[1])


def _user(target: str, span: Span, text: str) -> Target:
    binary, sep, symbol = target.rpartition(":")
    if not sep:
        binary, symbol = "", target
    if not _IDENT.fullmatch(symbol):
        raise _err(f"{symbol!r} is not a function name", span, text,
                   hint="user:libc:malloc, user:./app:parse, user:/usr/bin/app:main")
    return UserTarget(binary, symbol)


def _watch(target: str, span: Span, text: str) -> Target:
    parts = target.split(":")
    if len(parts) != 3:
        raise _err(f"a watchpoint is ADDRESS_OR_SYMBOL:LEN:w|rw, not {target!r}", span, text,
                   hint="watch:&counter:8:w or watch:0x7ffd1234:4:rw")
    where, length, access = parts
    if access not in ("w", "rw"):
        raise _err(f"watchpoint access must be w or rw, not {access!r}", span, text)
    if length not in ("1", "2", "4", "8"):
        raise _err(f"watchpoint length must be 1, 2, 4 or 8 bytes, not {length!r}", span, text,
                   hint="x86 debug registers watch aligned 1, 2, 4 or 8 bytes")
    if where.startswith("&") and _IDENT.fullmatch(where[1:]):
        return WatchTarget(None, where[1:], int(length), access)
    if _IDENT.fullmatch(where):
        return WatchTarget(None, where, int(length), access)
    try:
        address = int(where, 0)
    except ValueError:
        raise _err(f"{where!r} is neither an address nor a symbol", span, text) from None
    return WatchTarget(address, None, int(length), access)


@dataclass(frozen=True, slots=True)
class KindSpec:
    name: str
    aliases: tuple[str, ...]
    sites: tuple[Site, ...]
    parse_target: TargetParser
    doc: str
    example: str
    # aliases that imply the return site (kretprobe:, uretprobe:)
    return_aliases: tuple[str, ...] = ()


KINDS: dict[str, KindSpec] = {
    k.name: k
    for k in (
        KindSpec("syscall", ("sys",), (Site.ENTRY, Site.RETURN), _syscall,
                 "system calls by name, glob, %class or /regex/", "syscall:openat,read"),
        KindSpec("kernel", ("k", "kprobe", "kretprobe"), (Site.ENTRY, Site.RETURN), _kernel,
                 "kernel functions (kprobes; globs use the function tracer)", "kernel:do_sys_openat2%return",
                 ("kretprobe",)),
        KindSpec("tracepoint", ("t", "tp"), (Site.ENTRY,), _tracepoint,
                 "static kernel tracepoints", "tracepoint:sched:sched_process_exec"),
        KindSpec("user", ("u", "uprobe", "uretprobe"), (Site.ENTRY, Site.RETURN), _user,
                 "functions in programs and libraries", "user:libc:malloc", ("uretprobe",)),
        KindSpec("watch", ("w", "watchpoint"), (Site.ENTRY,), _watch,
                 "hardware watchpoints on memory", "watch:&counter:8:w"),
    )
}
_BY_ALIAS = {alias: spec for spec in KINDS.values() for alias in (spec.name, *spec.aliases)}


def kind_by_name(name: str) -> KindSpec | None:
    return _BY_ALIAS.get(name)


def all_kind_names() -> list[str]:
    return sorted(_BY_ALIAS)
