"""Function prototypes for argument and return decoding: a table of data (ltrace.conf style), not code.

`RET NAME(TYPE, ...);` lines; `;` starts a comment. The shipped table covers common libc/libm/libpthread
functions; a user file in the same syntax adds to or overrides it. A function without a prototype shows
its first six integer registers in hex, as ltrace shows functions it has no prototype for.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from unitrace.errors import UnitraceError

TYPES = frozenset({"void", "int", "uint", "long", "ulong", "hex", "addr", "string", "char", "bool", "format",
                   "double"})
ALIASES = {"size_t": "ulong", "ssize_t": "long", "pid_t": "int", "off_t": "long", "unsigned": "uint",
           "short": "int", "ushort": "uint", "file": "addr", "octal": "hex", "float": "double"}
_LINE = re.compile(r"^\s*(\w+)\s+(\w+)\s*\(([^)]*)\)\s*;?\s*$")
DATA = Path(__file__).with_name("prototypes.conf")


@dataclass(frozen=True, slots=True)
class Prototype:
    name: str
    ret: str
    params: tuple[str, ...]
    names: tuple[str, ...] = ()  # parameter names, when they came from DWARF: printed as `name=value`


def from_dwarf(name: str, path: str, file_addr: int) -> Prototype | None:
    """The prototype DWARF gives the function at `file_addr` of `path` (a binary built with -g), or None."""
    from unitrace.symbols.params import signature_at

    sig = signature_at(path, file_addr)
    if sig is None:
        return None
    return Prototype(name, sig.ret if sig.ret != "struct" else "hex", sig.params, sig.names)


def _type(word: str, where: str) -> str:
    word = word.strip()
    t = ALIASES.get(word, word)
    if t not in TYPES:
        raise UnitraceError(f"{where}: unknown type {word!r}",
                            hint=f"known types: {', '.join(sorted(TYPES | set(ALIASES)))}")
    return t


def parse(text: str, source: str) -> dict[str, Prototype]:
    out: dict[str, Prototype] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split(";", 1)[0] + ";" if ";" in raw else raw
        line = line.strip()
        if not line or line == ";":
            continue
        m = _LINE.match(line)
        where = f"{source}:{n}"
        if m is None:
            raise UnitraceError(f"{where}: expected `RET NAME(TYPE, ...);`, got {raw.strip()!r}")
        ret, name, params = m.groups()
        words = [p for p in (w.strip() for w in params.split(",")) if p and p != "void"]
        out[name] = Prototype(name, _type(ret, where), tuple(_type(w, where) for w in words))
    return out


@lru_cache(maxsize=1)
def builtin() -> dict[str, Prototype]:
    return parse(DATA.read_text(encoding="utf-8"), str(DATA))


def table(user_files: tuple[str, ...] = ()) -> dict[str, Prototype]:
    """The shipped prototypes, with the user's files layered on top in order."""
    protos = dict(builtin())
    for path in user_files:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise UnitraceError(f"cannot read prototype file {path}: {exc.strerror}") from exc
        protos.update(parse(text, path))
    return protos


# ---- formatting values the way ltrace prints them ----------------------------------------------------
_FMT_CONV = re.compile(rb"%[-+ #0]*(\*|\d+)?(?:\.(\*|\d+))?(hh|h|ll|l|j|z|t|L|q)?([diouxXcspfFeEgGaAn%])")
_MASK = (1 << 64) - 1


def _signed(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


_NEEDS_ESCAPE = re.compile(rb'[^\x20\x21\x23-\x5b\x5d-\x7e]')


def quote(data: bytes, truncated: bool) -> str:
    if _NEEDS_ESCAPE.search(data) is None:  # printable ASCII, no quote or backslash: as it is
        return '"' + data.decode("ascii") + ('"...' if truncated else '"')
    out = []
    for b in data:
        c = chr(b)
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"' + ("..." if truncated else "")


def _string(mem: object, addr: int, limit: int) -> str:
    if addr == 0:
        return "nil"
    raw = mem.read_cstr(addr, limit)  # type: ignore[attr-defined]
    if raw is None:
        return f"{addr:#x}"
    return quote(raw[:limit], len(raw) > limit)


def value(kind: str, v: int, mem: object, limit: int) -> str:
    if kind == "string" or kind == "format":
        return _string(mem, v, limit)
    if kind == "int":
        return str(_signed(v, 32))
    if kind == "uint":
        return str(v & 0xFFFFFFFF)
    if kind == "long":
        return str(_signed(v, 64))
    if kind == "ulong":
        return str(v & _MASK)
    if kind == "hex":
        return f"{v & _MASK:#x}"
    if kind == "addr":
        return "nil" if v == 0 else f"{v & _MASK:#x}"
    if kind == "char":
        return "'" + quote(bytes([v & 0xFF]), False)[1:-1].replace("'", "\\'") + "'"
    if kind == "bool":
        return "true" if v & 0xFF else "false"
    if kind in ("string", "format"):
        return _string(mem, v, limit)
    return "?"  # double: in an SSE register we do not read


def _format_args(fmt: bytes, rest: list[int], mem: object, limit: int) -> list[str]:
    """The variadic arguments of a printf-style call, typed by its conversions."""
    out: list[str] = []
    for m in _FMT_CONV.finditer(fmt):
        conv, length = m.group(4), m.group(3) or b""
        if conv == b"%":
            continue
        for star in (m.group(1), m.group(2)):
            if star == b"*" and rest:
                out.append(str(_signed(rest.pop(0), 32)))
        if conv in b"fFeEgGaA":
            out.append("?")  # passed in an SSE register
            continue
        if not rest:
            break
        v = rest.pop(0)
        if conv == b"s":
            out.append(_string(mem, v, limit))
        elif conv == b"c":
            out.append(value("char", v, mem, limit))
        elif conv == b"p":
            out.append(value("addr", v, mem, limit))
        elif conv in b"di":
            out.append(str(_signed(v, 64 if length in (b"l", b"ll", b"j", b"z", b"t", b"q") else 32)))
        else:
            wide = length in (b"l", b"ll", b"j", b"z", b"t", b"q")
            n = v & (_MASK if wide else 0xFFFFFFFF)
            out.append(f"{n:#x}" if conv in b"xX" else f"{n:#o}" if conv == b"o" else str(n))
    return out


def format_call(proto: Prototype | None, raw: tuple[int, ...], mem: object, limit: int) -> tuple[str, ...]:
    if proto is None:
        return tuple(f"{v:#x}" if v > 0xFFFF else str(v) for v in raw)
    out: list[str] = []
    regs = list(raw)
    names = proto.names
    for i, kind in enumerate(proto.params):
        label = f"{names[i]}=" if i < len(names) else ""
        if kind == "double":
            out.append(label + "?")
            continue
        if kind == "struct":  # by value: how many registers it takes depends on its layout, so stop here
            out.append(label + "{...}")
            break
        if not regs:
            break
        v = regs.pop(0)
        out.append(label + value(kind, v, mem, limit))
        if kind == "format" and v:
            fmt = mem.read_cstr(v, 4096)  # type: ignore[attr-defined]
            if fmt is not None:
                out.extend(_format_args(fmt, regs, mem, limit))
            break
    return tuple(out)


class _NoMemory:
    """For backends that see a call's registers but not the tracee's memory (uprobes through ftrace or
    BPF): strings print as their addresses."""

    def read_cstr(self, addr: int, limit: int) -> bytes | None:
        return None

    def read(self, addr: int, size: int) -> bytes | None:
        return None


NO_MEMORY = _NoMemory()


class _Strings(_NoMemory):
    """The strings a kernel probe copied at the call, by their addresses."""

    def __init__(self, strings: dict[int, bytes]) -> None:
        self.strings = strings

    def read_cstr(self, addr: int, limit: int) -> bytes | None:
        return self.strings.get(addr)


def call_texts(symbol: str, raw: Sequence[int], limit: int = 32,
               strings: dict[int, bytes] | None = None) -> tuple[str, ...]:
    """A library call's arguments from its registers (and the strings a kernel probe copied, by address),
    decoded by the shipped prototype table as the ptrace backend decodes them (`malloc(36)`,
    `fopen("/etc/hostname", "r")`), not six registers in hex."""
    return format_call(builtin().get(symbol), tuple(raw), _Strings(strings) if strings else NO_MEMORY, limit)


def return_text(symbol: str, ret: int) -> str:
    return format_return(builtin().get(symbol), ret & _MASK)


def format_return(proto: Prototype | None, rax: int) -> str:
    if proto is None:
        return str(_signed(rax, 32)) if rax & _MASK < (1 << 31) or rax >> 32 == 0xFFFFFFFF else f"{rax:#x}"
    if proto.ret == "void":
        return "<void>"
    if proto.ret in ("string", "format"):
        return "nil" if rax == 0 else f"{rax:#x}"
    if proto.ret == "double":
        return "?"
    return value(proto.ret, rax, None, 0)
