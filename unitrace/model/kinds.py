"""The probe-kind registry: one entry per kind, carrying how it is named, which sites it has, and how its
target text is read. Adding a kind is one entry here plus one compile function per backend that supports it
(tests/test_lang.py walks the registry against the backends).

Target text is tokenised, never `split(':')`: a field may be double-quoted (`user:"/opt/my app/bin":main`)
and a syscall `/regex/` may contain `,` and `:`; every field keeps its offset so that an error underlines
exactly the field that is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from unitrace.errors import ProbeError, Span
from unitrace.model.probe import (
    KernelTarget,
    ProbePoint,
    Site,
    SyscallTarget,
    Target,
    TracepointTarget,
    UserTarget,
    WatchTarget,
)

# (target text, its span, the whole source text) -> Target; raises ProbeError located in the target.
TargetParser = Callable[[str, Span, str], Target]
# A late check that needs the running system (does the tracepoint exist? the symbol?): (point, source text)
# -> None or raises ProbeError. Backends and the CLI install these with `set_target_check`.
TargetCheck = Callable[[ProbePoint, str], None]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_GLOB_IDENT = re.compile(r"[A-Za-z0-9_*?\[\]]+")
# C identifiers, C++ mangled names, and a symbol version (memcpy@GLIBC_2.14, malloc@@GLIBC_2.2.5)
_SYMBOL = re.compile(r"[A-Za-z_.$][A-Za-z0-9_.$]*(@@?[A-Za-z0-9_.]+)?")


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a target: its text (unquoted), and where it was in the target text."""

    text: str
    offset: int
    length: int
    quoted: bool = False


def scan_regex(text: str, i: int) -> int:
    """Index just past the `/` closing the regex that opens at text[i]; -1 when it is not closed."""
    j = i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == "/":
            return j + 1
        if text[j] == "\n":
            return -1
        j += 1
    return -1


def scan_quoted(text: str, i: int) -> int:
    """Index just past the `"` closing the string that opens at text[i]; -1 when it is not closed."""
    j = i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == '"':
            return j + 1
        if text[j] == "\n":
            return -1
        j += 1
    return -1


def _unquote(raw: str) -> str:
    return re.sub(r"\\(.)", r"\1", raw[1:-1])


def split_fields(target: str, sep: str, *, regex: bool = False) -> list[Field]:
    """Split on `sep` outside double quotes and (with regex=True) outside /regex/. A quote or regex counts
    where a field or a `kind:`-style part begins (after `sep`, `:` or `!`); a field that is one quoted
    string is unquoted."""
    fields: list[Field] = []
    start = i = 0
    quoted = False
    while i <= len(target):
        if i == len(target) or target[i] == sep:
            raw = target[start:i]
            text = _unquote(raw) if quoted else raw
            fields.append(Field(text, start, i - start, quoted))
            start = i + 1
            quoted = False
            i += 1
            continue
        c = target[i]
        opens = i == start or target[i - 1] in ":!"
        if c == '"' and opens:
            end = scan_quoted(target, i)
            if end > 0:
                quoted = i == start and (end == len(target) or target[end] == sep)
                i = end
                continue
        if regex and c == "/" and opens:
            end = scan_regex(target, i)
            if end > 0:
                i = end
                continue
        i += 1
    return fields


def field_span(span: Span, f: Field) -> Span:
    """The span of a field, given the span of the target it is in (a target never spans lines)."""
    return Span(span.line, span.col + f.offset, max(1, f.length), span.source)


def _err(msg: str, span: Span, text: str, hint: str | None = None) -> ProbeError:
    return ProbeError(msg, span, text, hint=hint)


def _no_glued_predicate(f: Field, span: Span, text: str) -> None:
    """`syscall:openat/pid == 1/` is a point and a predicate without the space between them."""
    slash = f.text.find("/", 1 if f.text.startswith(("/", "!/")) else 0)
    if f.text.startswith(("/", "!/")):
        slash = -1 if scan_regex(f.text, f.text.index("/")) > 0 else slash
    if slash >= 0 and not f.quoted:
        raise _err("put a space between the probe point and its predicate",
                   Span(span.line, span.col + f.offset + slash, 1, span.source), text)


def syscall_patterns(target: str) -> list[Field]:
    """A syscall target's comma list: names, globs, %classes, /regex/, each optionally negated with `!`."""
    return split_fields(target, ",", regex=True)


def _syscall(target: str, span: Span, text: str) -> Target:
    patterns = syscall_patterns(target)
    for f in patterns:
        p = f.text
        body = p[1:] if p.startswith("!") else p
        where = field_span(span, f)
        _no_glued_predicate(f, span, text)
        if not body:
            raise _err("empty syscall name in the list", where, text)
        if body.startswith("/"):
            if len(body) < 3 or scan_regex(body, 0) != len(body):
                raise _err(f"{p!r} is not a closed /regex/", where, text, hint="syscall:/^(open|stat)/")
        elif body.startswith("%"):
            if not _IDENT.fullmatch(body[1:].lstrip("%")):
                raise _err(f"{p!r} is not a syscall class", where, text, hint="e.g. syscall:%file")
        elif not _GLOB_IDENT.fullmatch(body):
            hint = "%return goes at the end of the whole list: syscall:openat,read%return" \
                if "%return" in body else "names, globs (open*), %classes (%file) or /regex/"
            raise _err(f"{p!r} is not a syscall name, glob, %class or /regex/", where, text, hint=hint)
    return SyscallTarget(tuple(f.text for f in patterns))


def _kernel(target: str, span: Span, text: str) -> Target:
    _no_glued_predicate(Field(target, 0, len(target)), span, text)
    if not _GLOB_IDENT.fullmatch(target):
        raise _err(f"{target!r} is not a kernel function name or glob", span, text,
                   hint="kernel:do_sys_openat2, or kernel:vfs_* for the function tracer")
    return KernelTarget(target)


def _tracepoint(target: str, span: Span, text: str) -> Target:
    fields = split_fields(target, ":")
    _no_glued_predicate(fields[-1], span, text)
    if len(fields) != 2:
        raise _err(f"a tracepoint is SUBSYSTEM:EVENT, not {target!r}", span, text,
                   hint="tracepoint:sched:sched_process_exec (unitrace list tracepoints)")
    for f, what in zip(fields, ("subsystem", "event"), strict=True):
        if not _IDENT.fullmatch(f.text):
            raise _err(f"{f.text!r} is not a tracepoint {what} name", field_span(span, f), text,
                       hint="tracepoint:sched:sched_process_exec (unitrace list tracepoints)")
    return TracepointTarget(fields[0].text, fields[1].text)


def _user(target: str, span: Span, text: str) -> Target:
    """[BINARY:]FUNCTION. The last unquoted `:` ends the binary, so a path may itself contain `:`; quote a
    path that contains spaces (or ends in something that looks like a function)."""
    fields = split_fields(target, ":")
    symbol = fields[-1]
    if len(fields) > 1:
        _no_glued_predicate(symbol, span, text)
    if len(fields) == 1:
        binary = ""
    elif len(fields) == 2 and fields[0].quoted:
        binary = fields[0].text
    else:
        binary = target[: symbol.offset - 1]
        if any(f.quoted for f in fields[:-1]):
            raise _err("quote the whole binary path, not part of it", span, text)
    if len(fields) > 1 and not binary:
        raise _err("empty binary name before ':'", field_span(span, fields[0]), text,
                   hint="user:malloc probes the traced program; user:libc:malloc a library")
    if not _SYMBOL.fullmatch(symbol.text):
        raise _err(f"{symbol.text!r} is not a function name", field_span(span, symbol), text,
                   hint="user:libc:malloc, user:./app:parse, user:/usr/bin/app:main")
    return UserTarget(binary, symbol.text)


def _watch(target: str, span: Span, text: str) -> Target:
    fields = split_fields(target, ":")
    _no_glued_predicate(fields[-1], span, text)
    if len(fields) != 3:
        raise _err(f"a watchpoint is ADDRESS_OR_&SYMBOL:LEN:w|rw, not {target!r}", span, text,
                   hint="watch:&counter:8:w or watch:0x7ffd1234:4:rw")
    where, length, access = fields
    if access.text not in ("w", "rw"):
        raise _err(f"watchpoint access must be w or rw, not {access.text!r}", field_span(span, access), text,
                   hint="x86 debug registers cannot trap reads alone")
    if length.text not in ("1", "2", "4", "8"):
        raise _err(f"watchpoint length must be 1, 2, 4 or 8 bytes, not {length.text!r}",
                   field_span(span, length), text, hint="x86 debug registers watch aligned 1, 2, 4 or 8 bytes")
    name = where.text[1:] if where.text.startswith("&") else where.text
    if _IDENT.fullmatch(name):
        return WatchTarget(None, name, int(length.text), access.text)
    try:
        address = int(where.text, 0)
    except ValueError:
        raise _err(f"{where.text!r} is neither an address nor a symbol", field_span(span, where), text,
                   hint="&counter (a symbol of the traced program) or 0x7ffd1234") from None
    if address <= 0 or address % int(length.text):
        raise _err(f"a {length.text}-byte watchpoint needs a nonzero address aligned to {length.text}",
                   field_span(span, where), text)
    return WatchTarget(address, None, int(length.text), access.text)


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
    # the late check that needs the running system; run by `check(program, targets=True)`
    check_target: TargetCheck | None = None
    # Does an event of this kind at the entry site carry ret/errno/duration? (a syscall event is strace's
    # whole line, entry and result together)
    result_at_entry: bool = False
    # names an expression may use on this kind's events besides the builtins (the event's fields)
    names: tuple[str, ...] = ()


KINDS: dict[str, KindSpec] = {
    k.name: k
    for k in (
        KindSpec("syscall", ("sys", "s"), (Site.ENTRY, Site.RETURN), _syscall,
                 "system calls by name, glob, %class or /regex/ (! negates)", "syscall:openat,read",
                 result_at_entry=True),
        KindSpec("kernel", ("k", "kprobe", "kretprobe"), (Site.ENTRY, Site.RETURN), _kernel,
                 "kernel functions (kprobes; globs use the function tracer)", "kernel:do_sys_openat2%return",
                 ("kretprobe",)),
        KindSpec("tracepoint", ("t", "tp"), (Site.ENTRY,), _tracepoint,
                 "static kernel tracepoints", "tracepoint:sched:sched_process_exec",
                 check_target=lambda point, text: tracepoint_exists(point, text)),
        KindSpec("user", ("u", "uprobe", "uretprobe"), (Site.ENTRY, Site.RETURN), _user,
                 "functions in programs and libraries", "user:libc:malloc", ("uretprobe",)),
        KindSpec("watch", ("w", "watchpoint"), (Site.ENTRY,), _watch,
                 "hardware watchpoints on memory", "watch:&counter:8:w",
                 names=("old", "new", "length", "access", "function", "file", "line")),
    )
}


def _aliases() -> dict[str, KindSpec]:
    return {alias: spec for spec in KINDS.values() for alias in (spec.name, *spec.aliases)}


def kind_by_name(name: str) -> KindSpec | None:
    spec = _aliases().get(name)
    return KINDS.get(spec.name) if spec else None


def all_kind_names() -> list[str]:
    return sorted(_aliases())


def set_target_check(kind: str, check: TargetCheck | None) -> None:
    """Install the late check of a kind's targets (run by `check(program, targets=True)`)."""
    KINDS[kind] = replace(KINDS[kind], check_target=check)


def tracepoint_exists(point: ProbePoint, text: str) -> None:
    """A TargetCheck for tracepoints: the event must be listed under tracefs (skipped when tracefs is not
    mounted: the backend that needs it says so)."""
    import difflib

    from unitrace.backends.ftrace.tracefs import find_tracefs

    assert isinstance(point.target, TracepointTarget)
    root = find_tracefs()
    if root is None:
        return
    events = root / "events"
    sub, event = point.target.subsystem, point.target.event
    if (events / sub / event).is_dir():
        return
    if not (events / sub).is_dir():
        close = difflib.get_close_matches(sub, [p.name for p in events.iterdir() if p.is_dir()], n=3)
        raise ProbeError(f"no tracepoint subsystem {sub!r}", replace(point.span, length=len(sub)), text,
                         hint=f"did you mean {', '.join(close)}?" if close else "unitrace list tracepoints")
    close = difflib.get_close_matches(event, [p.name for p in (events / sub).iterdir() if p.is_dir()], n=3)
    where = replace(point.span, col=point.span.col + len(sub) + 1, length=len(event))
    raise ProbeError(f"no tracepoint {sub}:{event}", where, text,
                     hint=f"did you mean {', '.join(close)}?" if close else f"unitrace list tracepoints '{sub}:*'")
