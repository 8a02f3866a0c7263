"""Event format files (`events/SYSTEM/EVENT/format`) and record decoders built from them.

The kernel describes every event's binary record in its format file; decoding from those descriptions
(instead of parsing the printed text) keeps tracepoint fields right on any kernel version. Each format is
turned once into a small list of (name, offset, struct code / string kind) so decoding a record is a few
`unpack_from` calls.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

_FIELD_RE = re.compile(
    r"^\s*field:(?P<decl>[^;]*);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);\s*signed:(?P<signed>\d+);")


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    ctype: str
    offset: int
    size: int
    signed: bool
    data_loc: bool  # `__data_loc` dynamic array: u32 = (length << 16) | offset, relative to the record
    array_len: int  # fixed-size array length (char comm[16] -> 16), 0 for scalars
    rel_loc: bool = False  # `__rel_loc`: offset relative to the end of this field

    @property
    def is_string(self) -> bool:
        return (self.data_loc or self.rel_loc or self.array_len > 0) and "char" in self.ctype


@dataclass(frozen=True, slots=True)
class EventFormat:
    system: str
    name: str
    id: int
    fields: tuple[Field, ...]  # event fields, without the common_* header fields
    common: tuple[Field, ...]
    print_fmt: str

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None


def _parse_decl(decl: str) -> tuple[str, str, int, bool, bool]:
    """`const char * filename` -> (ctype, name, array_len, data_loc, rel_loc)."""
    decl = decl.strip()
    data_loc = decl.startswith("__data_loc ")
    rel_loc = decl.startswith("__rel_loc ")
    if data_loc or rel_loc:
        decl = decl.split(" ", 1)[1]
    array_len = 0
    m = re.search(r"\[(\d*)\]\s*$", decl)
    if m:
        array_len = int(m.group(1) or 0)
        decl = decl[: m.start()].rstrip()
    m = re.search(r"(\w+)\s*$", decl)
    name = m.group(1) if m else decl
    ctype = decl[: m.start()].strip() if m else ""
    if data_loc and ctype.endswith("[]"):
        ctype = ctype[:-2].strip()
    m2 = re.search(r"\[(\d*)\]", ctype)
    if m2:  # "__data_loc char[] name" puts the brackets on the type
        ctype = ctype[: m2.start()].strip()
    return ctype, name, array_len, data_loc, rel_loc


def parse_format(text: str, system: str = "") -> EventFormat:
    name = ""
    event_id = -1
    fields: list[Field] = []
    common: list[Field] = []
    print_fmt = ""
    for line in text.splitlines():
        if line.startswith("name:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("ID:"):
            event_id = int(line.split(":", 1)[1])
        elif line.startswith("print fmt:"):
            print_fmt = line.split(":", 1)[1].strip()
        else:
            m = _FIELD_RE.match(line)
            if not m:
                continue
            ctype, fname, array_len, data_loc, rel_loc = _parse_decl(m.group("decl"))
            f = Field(fname, ctype, int(m.group("off")), int(m.group("size")), m.group("signed") == "1",
                      data_loc, array_len, rel_loc)
            (common if fname.startswith("common_") else fields).append(f)
    return EventFormat(system, name, event_id, tuple(fields), tuple(common), print_fmt)


def read_format(tracefs: str | Path, system: str, event: str) -> EventFormat:
    path = Path(tracefs) / "events" / system / event / "format"
    return parse_format(path.read_text(), system)


_INT_CODES = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h", (4, False): "I",
              (4, True): "i", (8, False): "Q", (8, True): "q"}


class RecordDecoder:
    """Decodes one event's records into a dict of field values (ints, or str for strings)."""

    __slots__ = ("_arrays", "_scalars", "_strings", "_struct", "fast", "fast_names", "fmt", "needs_page")

    def __init__(self, fmt: EventFormat) -> None:
        self.fmt = fmt
        scalars: list[tuple[str, int, str]] = []
        strings: list[tuple[str, Field]] = []
        arrays: list[tuple[str, int, str]] = []
        for f in fmt.fields:
            if f.is_string:
                strings.append((f.name, f))
            elif f.array_len > 0 and not f.data_loc and f.size % f.array_len == 0 and \
                    (f.size // f.array_len, f.signed) in _INT_CODES:
                code = _INT_CODES[(f.size // f.array_len, f.signed)]
                arrays.append((f.name, f.offset, f"<{f.array_len}{code}"))
            elif f.array_len == 0 and not f.data_loc and (f.size, f.signed) in _INT_CODES:
                # Pointers and unsigned longs are printed as unsigned by every tracer; keep them so.
                scalars.append((f.name, f.offset, _INT_CODES[(f.size, f.signed)]))
        scalars.sort(key=lambda t: t[1])
        self._scalars = tuple(scalars)
        self._strings = tuple(strings)
        self._arrays = tuple(arrays)
        # One struct for all scalar fields, with explicit pad bytes between them.
        parts = ["<"]
        pos = 0
        for _, off, code in self._scalars:
            if off > pos:
                parts.append(f"{off - pos}x")
            parts.append(code)
            pos = off + struct.calcsize("<" + code)
        self._struct = struct.Struct("".join(parts))
        # The reader's fast path: one Struct over the common header (type, flags, preempt, pid) and the
        # scalar fields; strings and arrays still go through decode() with the page at hand.
        fast = ["<HBBi"]
        pos = 8
        for _, off, code in self._scalars:
            if off > pos:
                fast.append(f"{off - pos}x")
            fast.append(code)
            pos = off + struct.calcsize("<" + code)
        self.fast = struct.Struct("".join(fast)).unpack_from
        self.fast_names = tuple(name for name, _, _ in self._scalars)
        self.needs_page = bool(self._strings or self._arrays)

    def decode(self, buf: bytes | memoryview, start: int) -> dict[str, object]:
        values = self._struct.unpack_from(buf, start)
        out: dict[str, object] = {name: v for (name, _, _), v in zip(self._scalars, values, strict=True)}
        for name, off, code in self._arrays:
            out[name] = struct.unpack_from(code, buf, start + off)
        for name, f in self._strings:
            if f.data_loc or f.rel_loc:
                (loc,) = struct.unpack_from("<I", buf, start + f.offset)
                off, length = loc & 0xFFFF, loc >> 16
                if f.rel_loc:
                    off += f.offset + f.size
                raw = bytes(buf[start + off: start + off + length])
            else:
                raw = bytes(buf[start + f.offset: start + f.offset + f.size])
            out[name] = raw.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")
        return out
