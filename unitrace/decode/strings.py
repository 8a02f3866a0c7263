"""Quoting of tracee bytes exactly as strace prints them (its string_quote()).

Default: printable ASCII as is; `"` and `\\` backslashed; \\t \\n \\v \\f \\r as C escapes; other bytes as
octal with the fewest digits, three when the next byte is an octal digit (so "\\0" + "1" stays "\\0001").
-x: a string holding any byte that is neither printable nor whitespace is printed wholly as \\xNN.
-xx: every byte as \\xNN.
"""

from __future__ import annotations

from unitrace.decode.api import FormatOptions, Memory

PATH_MAX = 4096


def _build_escapes() -> tuple[str, ...]:
    table = []
    for c in range(256):
        if c == 0x22:
            table.append('\\"')
        elif c == 0x5C:
            table.append("\\\\")
        elif 0x20 <= c <= 0x7E:
            table.append(chr(c))
        elif c in (9, 10, 11, 12, 13):
            table.append("\\" + "tnvfr"[c - 9])
        else:
            table.append("\\" + format(c, "o"))
    return tuple(table)


_ESC = _build_escapes()
_OCT3 = tuple("\\" + format(c, "03o") for c in range(256))
_HEX = tuple(f"\\x{c:02x}" for c in range(256))
_OCTAL_DIGITS = frozenset(b"01234567")
_OCTAL_ESCAPED = frozenset(c for c in range(256) if _ESC[c][1:2].isdigit())
# bytes that force -x to print a whole string in hex: neither printable ASCII nor whitespace
_FORCES_HEX = frozenset(c for c in range(256) if c > 0x7E or (c < 0x20 and not 9 <= c <= 13))
_PLAIN = frozenset(c for c in range(0x20, 0x7F) if c not in (0x22, 0x5C))


def quote(data: bytes, hex_strings: int = 0, force_hex: bool = False) -> str:
    """`"..."` for data (already cut to the -s limit), without any `...` suffix."""
    if hex_strings >= 2 or force_hex or (hex_strings == 1 and not _FORCES_HEX.isdisjoint(data)):
        return '"' + "".join([_HEX[c] for c in data]) + '"'
    if _PLAIN.issuperset(data):
        return '"' + data.decode("ascii") + '"'
    out = []
    n = len(data)
    for i, c in enumerate(data):
        # minimal octal is ambiguous when an octal digit follows
        if c in _OCTAL_ESCAPED and i + 1 < n and data[i + 1] in _OCTAL_DIGITS:
            out.append(_OCT3[c])
        else:
            out.append(_ESC[c])
    return '"' + "".join(out) + '"'


def format_buffer(mem: Memory, addr: int, length: int, opts: FormatOptions, force_hex: bool = False) -> str:
    """A byte buffer of known length (write's, read's after return), cut at -s with `...`."""
    if addr == 0:
        return "NULL"
    if length < 0:
        return f"{addr:#x}"
    shown = min(length, opts.string_limit)
    data = mem.read(addr, shown) if shown else b""
    if data is None:
        return f"{addr:#x}"
    text = quote(data, opts.hex_strings, force_hex)
    return text + "..." if length > shown else text


def format_cstring(mem: Memory, addr: int, limit: int, hex_strings: int) -> str:
    """A NUL-terminated string cut at `limit` bytes with `...` (argv elements, -s applies)."""
    if addr == 0:
        return "NULL"
    data = mem.read_cstr(addr, limit)
    if data is None:
        return f"{addr:#x}"
    if len(data) > limit:
        return quote(data[:limit], hex_strings) + "..."
    return quote(data, hex_strings)


def format_path(mem: Memory, addr: int, opts: FormatOptions) -> str:
    """A path: NUL-terminated, limited by PATH_MAX rather than -s, as strace's printpath()."""
    return format_cstring(mem, addr, PATH_MAX, opts.hex_strings)
