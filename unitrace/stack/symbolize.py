"""Frames -> function+offset, module, source file:line and inlined callers.

ELF symbols come from the separate debug file when one is installed (its .symtab names static functions
that a stripped library's .dynsym does not), else from the binary; C++ names are demangled. File:line and
inline scopes come from DWARF, one compilation unit per new address (symbols/lines.py). Everything is
cached per file identity, so a warm stack costs dictionary lookups.
"""

from __future__ import annotations

import os

from unitrace.events import Frame
from unitrace.stack.maps import Maps
from unitrace.symbols.debuginfo import debug_file
from unitrace.symbols.demangle import demangle


def _exact(f: Frame) -> bool:
    """Is the frame's address the pc itself, rather than a return address just after a call?"""
    return f.how in ("regs", "signal", "")


def _symbol(path: str, link: int) -> tuple[str, int] | None:
    from unitrace.symbols.elf import elf_symbols

    for candidate in dict.fromkeys((debug_file(path), path)):
        try:
            hit = elf_symbols(candidate).symbolize(link)
        except Exception:  # an unreadable or odd file: no name, not a failed trace
            hit = None
        if hit is not None:
            return demangle(hit[0].name), hit[1]
    return None


def symbolize(frames: list[Frame], maps: Maps, *, inline: bool = True) -> list[Frame]:
    """Fill symbol, offset, module and file:line of each frame in place, and return the stack with the
    inlined calls DWARF records at each pc inserted before their frame (`inlined=True`, innermost first,
    as gdb lists them). Callers that want inlined frames use the returned list."""
    from unitrace.symbols.lines import dwarf_lines

    out: list[Frame] = []
    for f in frames:
        exact = _exact(f)
        where = maps.link_address(f.address if exact else f.address - 1)
        if where is None:
            out.append(f)
            continue
        path, link = where
        f.module = os.path.basename(path)
        hit = _symbol(path, link)
        if hit is not None:
            f.symbol, f.offset = hit[0], hit[1] + (0 if exact else 1)
        try:
            lines = dwarf_lines(path)
            loc = lines.lookup(link)
            scopes = lines.scopes_at(link) if inline else []
        except Exception:  # DWARF we cannot read leaves the frame with its symbol only
            loc, scopes = None, []
        inlined = [s for s in scopes if s.inlined]
        if not inlined:
            if loc is not None:
                f.file, f.line = loc
            out.append(f)
            continue
        # innermost first: the innermost inlined body is at the line table's line; each scope further out
        # is at the call site recorded by the scope inside it
        file, line = loc if loc is not None else ("", 0)
        for scope in reversed(inlined):
            out.append(Frame(f.address, scope.name, 0, f.module, file, line, f.reliable, f.how, inlined=True))
            file, line = scope.call_file, scope.call_line
        f.file, f.line = file, line
        out.append(f)
    return out
