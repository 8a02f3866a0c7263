"""Call-frame information of one ELF file, indexed first and decoded per frame on demand.

`.eh_frame_hdr` already holds a sorted table of (function start, FDE address); we read that table (a few
kilobytes) instead of parsing every FDE up front (pyelftools' EH_CFI_entries() takes a second for libc),
and decode the one FDE a frame needs, caching it.
"""

from __future__ import annotations

import bisect
import os
import struct
from dataclasses import dataclass
from functools import lru_cache

# DW_EH_PE pointer encodings (LSB Core spec, "DWARF Extensions")
PE_OMIT = 0xFF
_PE_FORMATS = {0x00: ("<Q", 8), 0x02: ("<H", 2), 0x03: ("<I", 4), 0x04: ("<Q", 8), 0x0A: ("<h", 2),
               0x0B: ("<i", 4), 0x0C: ("<q", 8)}


@dataclass(frozen=True, slots=True)
class Row:
    """The unwind rule at one pc: CFA = reg + offset (or a DWARF expression), and saved registers."""

    cfa_reg: int | None
    cfa_offset: int
    cfa_expr: bytes | None
    # register -> ("offset", n): saved at CFA+n; ("val_offset", n): value is CFA+n; ("same",); ("undefined",);
    # ("register", r); ("expression", bytes); ("val_expression", bytes)
    regs: tuple[tuple[int, tuple], ...]
    signal_frame: bool = False


def _read_encoded(data: bytes, pos: int, enc: int, base: int) -> tuple[int, int]:
    if enc & 0x0F not in _PE_FORMATS:
        raise ValueError(f"pointer encoding {enc:#x} in .eh_frame_hdr is not a fixed-size one")
    fmt, size = _PE_FORMATS[enc & 0x0F]
    (value,) = struct.unpack_from(fmt, data, pos)
    if enc & 0x70 in (0x10, 0x30):  # pcrel or datarel: both relative to the given base
        value += base
    return value, pos + size


class CfiIndex:
    """Unwind rows for the functions of one ELF file."""

    def __init__(self, path: str) -> None:
        from elftools.elf.elffile import ELFFile

        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._file = os.fdopen(fd, "rb")
        self._elf = ELFFile(self._file)
        self._starts: list[int] = []
        self._fde_offsets: list[int] = []
        self._cfi = None
        self._cache: dict[int, object] = {}
        self._load_index()

    def _load_index(self) -> None:
        hdr = self._elf.get_section_by_name(".eh_frame_hdr")
        eh = self._elf.get_section_by_name(".eh_frame")
        if hdr is None or eh is None:
            return
        data = hdr.data()
        if len(data) < 4 or data[0] != 1:
            return
        ptr_enc, count_enc, table_enc = data[1], data[2], data[3]
        hdr_addr = hdr["sh_addr"]
        pos = 4
        _, pos = _read_encoded(data, pos, ptr_enc, hdr_addr + pos)
        if count_enc == PE_OMIT or table_enc == PE_OMIT:
            return
        count, pos = _read_encoded(data, pos, count_enc, hdr_addr + pos)
        starts, offsets = [], []
        for _ in range(count):
            start, pos = _read_encoded(data, pos, table_enc, hdr_addr)
            fde_addr, pos = _read_encoded(data, pos, table_enc, hdr_addr)
            starts.append(start)
            offsets.append(fde_addr - eh["sh_addr"])
        self._starts = starts
        self._fde_offsets = offsets
        from elftools.dwarf.callframe import CallFrameInfo
        from elftools.dwarf.structs import DWARFStructs

        structs = DWARFStructs(little_endian=self._elf.little_endian, dwarf_format=32,
                               address_size=self._elf.elfclass // 8)
        import io

        stream = io.BytesIO(eh.data())  # offsets in the index are relative to the section
        self._cfi = CallFrameInfo(stream, eh["sh_size"], eh["sh_addr"], structs, for_eh_frame=True)
        self._eh_offset = eh["sh_offset"]

    def row_for(self, pc: int) -> Row | None:
        """The unwind row in force at link-time address `pc`, or None if no FDE covers it."""
        i = bisect.bisect_right(self._starts, pc) - 1
        if i < 0 or self._cfi is None:
            return None
        table = self._cache.get(i)
        if table is None:
            fde = self._cfi._parse_entry_at(self._fde_offsets[i])  # one FDE, not the whole section
            start = fde.header["initial_location"]
            if not start <= pc < start + fde.header["address_range"]:
                return None
            decoded = fde.get_decoded()
            # "S" in the CIE augmentation marks a signal frame (glibc's __restore_rt)
            signal = b"S" in bytes(fde.cie.header.get("augmentation") or b"")
            # rows converted once per FDE: a warm walk is then two bisections per frame
            pcs = [row["pc"] for row in decoded.table]
            rows = [_to_row(row, signal) for row in decoded.table]
            table = (start, fde.header["address_range"], pcs, rows)
            self._cache[i] = table
        start, size, pcs, rows = table  # type: ignore[misc]
        if not start <= pc < start + size:
            return None
        j = bisect.bisect_right(pcs, pc) - 1
        return rows[j] if j >= 0 else None


def _to_row(row: dict, signal: bool) -> Row:
    from elftools.dwarf.callframe import RegisterRule

    cfa = row["cfa"]
    expr = bytes(cfa.expr) if cfa.expr is not None else None
    regs: list[tuple[int, tuple]] = []
    for reg, rule in row.items():
        if not isinstance(reg, int):
            continue
        t = rule.type
        if t == RegisterRule.OFFSET:
            regs.append((reg, ("offset", rule.arg)))
        elif t == RegisterRule.VAL_OFFSET:
            regs.append((reg, ("val_offset", rule.arg)))
        elif t == RegisterRule.REGISTER:
            regs.append((reg, ("register", rule.arg)))
        elif t == RegisterRule.EXPRESSION:
            regs.append((reg, ("expression", bytes(rule.arg))))
        elif t == RegisterRule.VAL_EXPRESSION:
            regs.append((reg, ("val_expression", bytes(rule.arg))))
        elif t == RegisterRule.UNDEFINED:
            regs.append((reg, ("undefined",)))
        else:
            regs.append((reg, ("same",)))
    return Row(cfa.reg, cfa.offset or 0, expr, tuple(regs), signal)


@lru_cache(maxsize=64)
def _cached(path: str, _ino: int, _mtime: int) -> CfiIndex:
    return CfiIndex(path)


def cfi_for(path: str) -> CfiIndex | None:
    try:
        st = os.stat(path)
        return _cached(path, st.st_ino, st.st_mtime_ns)
    except (OSError, ValueError):
        return None
