"""Address -> source file:line and inlined callers from DWARF, one compilation unit at a time.

`.debug_aranges` (or the CUs' own address ranges) says which CU holds an address; only that CU's line
program and its tree of functions are decoded, then kept as sorted arrays. The DWARF may live in a separate
debug file (see debuginfo.py). Nothing is read until the first lookup, so a 50 MB binary costs one CU per
new address, not a parse of everything.
"""

from __future__ import annotations

import bisect
import os
import struct
from dataclasses import dataclass
from functools import lru_cache

from unitrace.symbols.debuginfo import debug_file
from unitrace.symbols.demangle import demangle


@dataclass(frozen=True, slots=True)
class Scope:
    """A function's code range, or the range of one inlined copy of a function inside another."""

    low: int
    high: int
    depth: int
    name: str
    inlined: bool
    call_file: str = ""  # for an inlined copy: where the call that was inlined sits
    call_line: int = 0


@dataclass(slots=True)
class _Unit:
    addrs: list[int]
    locs: list[tuple[str, int]]
    scopes: list[Scope] | None = None  # decoded on the first inline query


class DwarfLines:
    """Lines and inline scopes of one ELF file (its DWARF, wherever that lives)."""

    def __init__(self, path: str) -> None:
        from elftools.elf.elffile import ELFFile

        self.path = path
        self.dwarf_path = debug_file(path)
        self._file = os.fdopen(os.open(self.dwarf_path, os.O_RDONLY | os.O_CLOEXEC), "rb")
        elf = ELFFile(self._file)
        self._dwarf = elf.get_dwarf_info() if elf.has_dwarf_info() else None
        sec = elf.get_section_by_name(".debug_aranges")
        self._aranges_data = sec.data() if sec is not None and sec["sh_type"] != "SHT_NOBITS" else b""
        self._aranges: tuple[list[int], list[int], list[int]] | None = None
        self._units: dict[int, _Unit] = {}
        self._cu_ranges: list[tuple[int, int, int]] | None = None

    @property
    def has_dwarf(self) -> bool:
        return self._dwarf is not None

    # ------------------------------------------------------------------ which CU

    def _cu_offset(self, addr: int) -> int | None:
        if self._dwarf is None:
            return None
        if self._aranges is None:
            self._aranges = _parse_aranges(self._aranges_data)
        starts, ends, offsets = self._aranges
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0 and addr < ends[i]:
            return offsets[i]
        if self._cu_ranges is None:  # no (or incomplete) aranges: every CU's top DIE ranges, once
            ranges = []
            for cu in self._dwarf.iter_CUs():
                for lo, hi in self._die_ranges(cu.get_top_DIE(), cu):
                    ranges.append((lo, hi, cu.cu_offset))
            self._cu_ranges = ranges
        for lo, hi, off in self._cu_ranges:
            if lo <= addr < hi:
                return off
        return None

    def _die_ranges(self, die, cu) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
        attrs = die.attributes
        lo = attrs.get("DW_AT_low_pc")
        hi = attrs.get("DW_AT_high_pc")
        if lo is not None and hi is not None:
            high = hi.value if hi.form == "DW_FORM_addr" else lo.value + hi.value
            return [(lo.value, high)]
        rng = attrs.get("DW_AT_ranges")
        if rng is None or self._dwarf is None:
            return []
        lists = self._dwarf.range_lists()
        if lists is None:
            return []
        top = cu.get_top_DIE().attributes.get("DW_AT_low_pc")
        base = top.value if top is not None else 0
        out = []
        try:
            entries = lists.get_range_list_at_offset(rng.value, cu=cu)
        except Exception:  # a malformed list costs us this scope, not the lookup
            return []
        for e in entries:
            if hasattr(e, "base_address"):
                base = e.base_address
            elif getattr(e, "is_absolute", False):
                out.append((e.begin_offset, e.end_offset))
            else:
                out.append((base + e.begin_offset, base + e.end_offset))
        return out

    # ------------------------------------------------------------------ lines

    def _unit(self, cu_offset: int) -> _Unit:
        unit = self._units.get(cu_offset)
        if unit is not None:
            return unit
        assert self._dwarf is not None
        cu = self._dwarf.get_CU_at(cu_offset)
        prog = self._dwarf.line_program_for_CU(cu)
        entries: list[tuple[int, str, int]] = []
        if prog is not None:
            names = _file_names(prog)
            for e in prog.get_entries():
                st = e.state
                if st is None or st.end_sequence:
                    continue
                entries.append((st.address, names.get(st.file, ""), st.line))
        entries.sort(key=lambda t: t[0])
        unit = _Unit([a for a, _, _ in entries], [(f, ln) for _, f, ln in entries])
        self._units[cu_offset] = unit
        return unit

    def lookup(self, addr: int) -> tuple[str, int] | None:
        """(file, line) of link-time address `addr`, or None where DWARF says nothing."""
        off = self._cu_offset(addr)
        if off is None:
            return None
        unit = self._unit(off)
        i = bisect.bisect_right(unit.addrs, addr) - 1
        return unit.locs[i] if i >= 0 else None

    # ------------------------------------------------------------------ inlining

    def scopes_at(self, addr: int) -> list[Scope]:
        """The function holding `addr` and the inlined copies around it, outermost first."""
        off = self._cu_offset(addr)
        if off is None:
            return []
        unit = self._unit(off)
        if unit.scopes is None:
            unit.scopes = self._decode_scopes(off)
        hits = [s for s in unit.scopes if s.low <= addr < s.high]
        hits.sort(key=lambda s: s.depth)
        return hits

    def _decode_scopes(self, cu_offset: int) -> list[Scope]:
        assert self._dwarf is not None
        cu = self._dwarf.get_CU_at(cu_offset)
        prog = self._dwarf.line_program_for_CU(cu)
        names = _file_names(prog) if prog is not None else {}
        out: list[Scope] = []
        nesting = ("DW_TAG_subprogram", "DW_TAG_lexical_block", "DW_TAG_inlined_subroutine")

        def walk(die, depth: int) -> None:  # type: ignore[no-untyped-def]
            for child in die.iter_children():
                tag = child.tag
                if tag not in nesting:
                    continue
                if tag != "DW_TAG_lexical_block":
                    inlined = tag == "DW_TAG_inlined_subroutine"
                    name = _function_name(child)
                    cf = child.attributes.get("DW_AT_call_file")
                    cl = child.attributes.get("DW_AT_call_line")
                    for lo, hi in self._die_ranges(child, cu):
                        out.append(Scope(lo, hi, depth, name, inlined,
                                         names.get(cf.value, "") if cf is not None else "",
                                         cl.value if cl is not None else 0))
                walk(child, depth + 1)

        walk(cu.get_top_DIE(), 0)
        return out


_ARANGE_HEADER = struct.Struct("<IHIBB")


def _parse_aranges(data: bytes) -> tuple[list[int], list[int], list[int]]:
    """.debug_aranges (DWARF 5, section 6.1.2) as sorted (start, end, CU offset) arrays. Read with struct:
    pyelftools' parse of libc's table takes 170 ms, this takes a few."""
    rows: list[tuple[int, int, int]] = []
    pos = 0
    while pos + _ARANGE_HEADER.size <= len(data):
        length, _version, cu_offset, addr_size, _seg = _ARANGE_HEADER.unpack_from(data, pos)
        if length == 0xFFFFFFFF or addr_size != 8:  # 64-bit DWARF or 32-bit targets: left to the CU scan
            break
        end = pos + 4 + length
        tuples = pos + 16  # the 12-byte header is padded to twice the address size
        for start, size in struct.iter_unpack("<QQ", data[tuples:end - (end - tuples) % 16]):
            if start == 0 and size == 0:
                break
            rows.append((start, start + size, cu_offset))
        pos = end
    rows.sort()
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def _file_names(prog) -> dict[int, str]:  # type: ignore[no-untyped-def]
    """File index (as line rows and DW_AT_call_file number them) -> path."""
    version = prog.header["version"]
    files = prog["file_entry"]
    dirs = prog["include_directory"]
    base = 0 if version >= 5 else 1  # DWARF 5 counts files and directories from 0
    out = {}
    for i, fe in enumerate(files):
        name = fe.name.decode("utf-8", "replace") if isinstance(fe.name, bytes) else str(fe.name)
        di = fe.dir_index - (0 if version >= 5 else 1)
        if not name.startswith("/") and 0 <= di < len(dirs):
            d = dirs[di]
            name = os.path.join(d.decode("utf-8", "replace") if isinstance(d, bytes) else str(d), name)
        out[i + base] = name
    return out


def _function_name(die) -> str:  # type: ignore[no-untyped-def]
    """A function DIE's name, following abstract_origin/specification, demangled when C++ gave a linkage
    name (`ns::Klass::method(int) const`) so it reads as gdb prints it."""
    seen = 0
    while die is not None and seen < 8:
        seen += 1
        attrs = die.attributes
        for key in ("DW_AT_linkage_name", "DW_AT_MIPS_linkage_name"):
            if key in attrs:
                return demangle(_text(attrs[key].value))
        if "DW_AT_name" in attrs and "DW_AT_specification" not in attrs:
            return _qualified(die, _text(attrs["DW_AT_name"].value))
        nxt = None
        for key in ("DW_AT_abstract_origin", "DW_AT_specification"):
            if key in attrs:
                try:
                    nxt = die.get_DIE_from_attribute(key)
                except Exception:
                    nxt = None
                break
        if nxt is None and "DW_AT_name" in attrs:
            return _qualified(die, _text(attrs["DW_AT_name"].value))
        die = nxt
    return ""


def _qualified(die, name: str) -> str:  # type: ignore[no-untyped-def]
    """Prefix the enclosing namespaces and classes (C++), as gdb prints an inlined function's name."""
    parts = [name]
    scope_tags = ("DW_TAG_namespace", "DW_TAG_class_type", "DW_TAG_structure_type", "DW_TAG_union_type")
    try:
        parent = die.get_parent()
        while parent is not None and parent.tag in scope_tags:
            pname = parent.attributes.get("DW_AT_name")
            if pname is None and parent.tag != "DW_TAG_namespace":
                break  # a lambda's closure type has no name; gdb prints just operator()
            parts.append(_text(pname.value) if pname is not None else "(anonymous namespace)")
            parent = parent.get_parent()
    except Exception:  # parent links need the whole CU decoded; without them the bare name stands
        return name
    return "::".join(reversed(parts))


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@lru_cache(maxsize=32)
def _lines(path: str, _ino: int, _mtime: int) -> DwarfLines:
    return DwarfLines(path)


def dwarf_lines(path: str) -> DwarfLines:
    """The DWARF reader for `path`, cached by (path, inode, mtime)."""
    st = os.stat(path)
    return _lines(path, st.st_ino, st.st_mtime_ns)


def line_for(path: str, addr: int) -> tuple[str, int] | None:
    return dwarf_lines(path).lookup(addr)
