"""A function's parameters from DWARF: names and how to print each, for binaries built with debug info.

ltrace only knows the functions in its prototype table and prints six registers in hex for the rest; a
binary's own DWARF says what the arguments are (`parse(buf="GET /", len=5)`). The kinds returned are the
prototype table's (unitrace/backends/ptrace/prototypes.py), so one formatter prints both. Looked up lazily,
one compile unit at a time, and cached per file identity like the line tables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from unitrace.symbols.lines import dwarf_lines

# DW_ATE_* encodings of base types
_ATE_BOOLEAN, _ATE_FLOAT, _ATE_SIGNED, _ATE_SIGNED_CHAR, _ATE_UNSIGNED, _ATE_UNSIGNED_CHAR = 2, 4, 5, 6, 7, 8
_QUALIFIERS = frozenset({"DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type", "DW_TAG_restrict_type",
                         "DW_TAG_atomic_type"})


@dataclass(frozen=True, slots=True)
class DwarfSignature:
    ret: str
    params: tuple[str, ...]  # prototype kinds; "struct" for an aggregate passed by value (not decoded)
    names: tuple[str, ...]


def _strip(die):  # type: ignore[no-untyped-def]
    """The type under typedefs and qualifiers; None for void."""
    seen = 0
    while die is not None and die.tag in _QUALIFIERS and seen < 32:
        die = die.get_DIE_from_attribute("DW_AT_type") if "DW_AT_type" in die.attributes else None
        seen += 1
    return die


def _kind(die) -> str:  # type: ignore[no-untyped-def]
    """The prototype kind of a DIE that has a DW_AT_type (a parameter, or a function's return)."""
    if "DW_AT_type" not in die.attributes:
        return "void"
    t = _strip(die.get_DIE_from_attribute("DW_AT_type"))
    if t is None:
        return "void"
    if t.tag in ("DW_TAG_pointer_type", "DW_TAG_reference_type", "DW_TAG_rvalue_reference_type"):
        target = _strip(t.get_DIE_from_attribute("DW_AT_type")) if "DW_AT_type" in t.attributes else None
        if (t.tag == "DW_TAG_pointer_type" and target is not None and target.tag == "DW_TAG_base_type"
                and target.attributes["DW_AT_byte_size"].value == 1
                and target.attributes["DW_AT_encoding"].value in (_ATE_SIGNED_CHAR, _ATE_UNSIGNED_CHAR)):
            return "string"
        return "addr"
    if t.tag == "DW_TAG_enumeration_type":
        return "int"
    if t.tag == "DW_TAG_base_type":
        enc = t.attributes["DW_AT_encoding"].value
        size = t.attributes["DW_AT_byte_size"].value
        if enc == _ATE_FLOAT:
            return "double"
        if enc == _ATE_BOOLEAN:
            return "bool"
        if size == 1 and enc in (_ATE_SIGNED_CHAR, _ATE_UNSIGNED_CHAR):
            return "char"
        if enc in (_ATE_SIGNED, _ATE_SIGNED_CHAR):
            return "long" if size == 8 else "int"
        return "ulong" if size == 8 else "uint"
    return "struct"


def _low_pc(die) -> int | None:  # type: ignore[no-untyped-def]
    lo = die.attributes.get("DW_AT_low_pc")
    return lo.value if lo is not None else None


def _signature(die) -> DwarfSignature:  # type: ignore[no-untyped-def]
    spec = die
    # a definition outside its class or namespace points at its declaration for the name and type
    for attr in ("DW_AT_specification", "DW_AT_abstract_origin"):
        if attr in die.attributes:
            spec = die.get_DIE_from_attribute(attr)
            break
    kinds: list[str] = []
    names: list[str] = []
    for child in die.iter_children():
        if child.tag == "DW_TAG_unspecified_parameters":
            break
        if child.tag != "DW_TAG_formal_parameter":
            continue
        src = child.get_DIE_from_attribute("DW_AT_abstract_origin") if "DW_AT_abstract_origin" in \
            child.attributes else child
        name = src.attributes.get("DW_AT_name")
        names.append(name.value.decode("utf-8", "replace") if name is not None else f"arg{len(names)}")
        kinds.append(_kind(src))
    return DwarfSignature(_kind(spec), tuple(kinds), tuple(names))


class _Functions:
    def __init__(self, path: str) -> None:
        self.lines = dwarf_lines(path)
        self._by_cu: dict[int, dict[int, DwarfSignature]] = {}

    def at(self, file_addr: int) -> DwarfSignature | None:
        cu_offset = self.lines._cu_offset(file_addr)
        if cu_offset is None:
            return None
        table = self._by_cu.get(cu_offset)
        if table is None:
            table = self._by_cu[cu_offset] = self._scan(cu_offset)
        return table.get(file_addr)

    def _scan(self, cu_offset: int) -> dict[int, DwarfSignature]:
        dwarf = self.lines._dwarf
        out: dict[int, DwarfSignature] = {}
        if dwarf is None:
            return out
        cu = dwarf.get_CU_at(cu_offset)
        for die in cu.iter_DIEs():
            if die.tag != "DW_TAG_subprogram":
                continue
            lo = _low_pc(die)
            if lo is None:
                continue
            try:
                out[lo] = _signature(die)
            except (KeyError, AttributeError):  # a DIE shape we do not know: that function stays raw
                continue
        return out


@lru_cache(maxsize=64)
def _functions(path: str, _ino: int, _mtime: int) -> _Functions:
    return _Functions(path)


def signature_at(path: str, file_addr: int) -> DwarfSignature | None:
    """The signature of the function whose entry is `file_addr` (link-time address) in `path`, or None when
    the file has no DWARF for it."""
    try:
        st = os.stat(path)
        funcs = _functions(path, st.st_ino, int(st.st_mtime))
    except OSError:
        return None
    if not funcs.lines.has_dwarf:
        return None
    try:
        return funcs.at(file_addr)
    except Exception:
        return None
