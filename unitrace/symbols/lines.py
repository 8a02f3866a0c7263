"""Address -> source file:line from DWARF `.debug_line`, one compilation unit at a time.

`.debug_aranges` (or the CUs' address ranges) says which CU holds an address; only that CU's line program
is decoded, then kept as a sorted array. A separate debug file is found by build-id under /usr/lib/debug.
"""

from __future__ import annotations

import bisect
import os
from functools import lru_cache


def _build_id(elf) -> str | None:  # type: ignore[no-untyped-def]
    sec = elf.get_section_by_name(".note.gnu.build-id")
    if sec is None:
        return None
    for note in sec.iter_notes():
        if note["n_type"] == "NT_GNU_BUILD_ID":
            return str(note["n_desc"])
    return None


class LineTable:
    def __init__(self, path: str) -> None:
        from elftools.elf.elffile import ELFFile

        self._file = os.fdopen(os.open(path, os.O_RDONLY | os.O_CLOEXEC), "rb")
        elf = ELFFile(self._file)
        if not elf.has_dwarf_info() or elf.get_section_by_name(".debug_line") is None:
            bid = _build_id(elf)
            debug = f"/usr/lib/debug/.build-id/{bid[:2]}/{bid[2:]}.debug" if bid else ""
            if debug and os.path.exists(debug):
                self._file.close()
                self._file = os.fdopen(os.open(debug, os.O_RDONLY | os.O_CLOEXEC), "rb")
                elf = ELFFile(self._file)
        self._dwarf = elf.get_dwarf_info() if elf.has_dwarf_info() else None
        self._aranges = None
        self._cus: dict[int, tuple[list[int], list[tuple[str, int]]]] = {}
        self._cu_ranges: list[tuple[int, int, int]] | None = None

    def _cu_offset(self, addr: int) -> int | None:
        if self._dwarf is None:
            return None
        if self._aranges is None:
            self._aranges = self._dwarf.get_aranges() or False
        if self._aranges:
            off = self._aranges.cu_offset_at_addr(addr)
            if off is not None:
                return off
        if self._cu_ranges is None:  # no aranges: low_pc/high_pc of every CU, once
            ranges = []
            for cu in self._dwarf.iter_CUs():
                top = cu.get_top_DIE()
                lo = top.attributes.get("DW_AT_low_pc")
                hi = top.attributes.get("DW_AT_high_pc")
                if lo is None or hi is None:
                    continue
                high = hi.value if hi.form == "DW_FORM_addr" else lo.value + hi.value
                ranges.append((lo.value, high, cu.cu_offset))
            self._cu_ranges = ranges
        for lo, hi, off in self._cu_ranges:
            if lo <= addr < hi:
                return off
        return None

    def _rows(self, cu_offset: int) -> tuple[list[int], list[tuple[str, int]]]:
        rows = self._cus.get(cu_offset)
        if rows is not None:
            return rows
        assert self._dwarf is not None
        cu = self._dwarf.get_CU_at(cu_offset)
        prog = self._dwarf.line_program_for_CU(cu)
        entries: list[tuple[int, str, int]] = []
        if prog is not None:
            files = prog["file_entry"]
            dirs = prog["include_directory"]
            base = 0 if prog.header["version"] >= 5 else 1
            for e in prog.get_entries():
                st = e.state
                if st is None or st.end_sequence:
                    continue
                fi = st.file - base
                name = ""
                if 0 <= fi < len(files):
                    fe = files[fi]
                    name = fe.name.decode("utf-8", "replace")
                    di = fe.dir_index - (0 if prog.header["version"] >= 5 else 1)
                    if not name.startswith("/") and 0 <= di < len(dirs):
                        name = os.path.join(dirs[di].decode("utf-8", "replace"), name)
                entries.append((st.address, name, st.line))
        entries.sort(key=lambda t: t[0])
        rows = ([a for a, _, _ in entries], [(f, ln) for _, f, ln in entries])
        self._cus[cu_offset] = rows
        return rows

    def lookup(self, addr: int) -> tuple[str, int] | None:
        off = self._cu_offset(addr)
        if off is None:
            return None
        addrs, locs = self._rows(off)
        i = bisect.bisect_right(addrs, addr) - 1
        return locs[i] if i >= 0 else None


@lru_cache(maxsize=32)
def _table(path: str, _ino: int, _mtime: int) -> LineTable:
    return LineTable(path)


def line_for(path: str, addr: int) -> tuple[str, int] | None:
    st = os.stat(path)
    return _table(path, st.st_ino, st.st_mtime_ns).lookup(addr)
