"""Where the DWARF of a binary lives: in the binary itself, or in a separate debug file that Debian's *-dbg
and *-dbgsym packages install under /usr/lib/debug, found by build-id (`.build-id/xx/rest.debug`) or by
`.gnu_debuglink` (next to the binary, in its `.debug/`, or mirrored under /usr/lib/debug), as gdb does.
"""

from __future__ import annotations

import os
from functools import lru_cache

DEBUG_ROOT = "/usr/lib/debug"


def _open_elf(path: str):  # type: ignore[no-untyped-def]
    from elftools.elf.elffile import ELFFile

    fh = os.fdopen(os.open(path, os.O_RDONLY | os.O_CLOEXEC), "rb")
    return fh, ELFFile(fh)


def build_id(elf) -> str | None:  # type: ignore[no-untyped-def]
    """The GNU build-id note as hex, or None."""
    sec = elf.get_section_by_name(".note.gnu.build-id")
    if sec is None:
        return None
    for note in sec.iter_notes():
        if note["n_type"] == "NT_GNU_BUILD_ID":
            return str(note["n_desc"])
    return None


def _debuglink(elf) -> str | None:  # type: ignore[no-untyped-def]
    sec = elf.get_section_by_name(".gnu_debuglink")
    if sec is None:
        return None
    name = sec.data().split(b"\0", 1)[0]
    return name.decode("utf-8", "replace") or None


def candidates(path: str, bid: str | None, link: str | None, root: str = DEBUG_ROOT) -> list[str]:
    """The places a separate debug file may be, in gdb's order."""
    out = []
    if bid and len(bid) > 2:
        out.append(os.path.join(root, ".build-id", bid[:2], bid[2:] + ".debug"))
    if link:
        where = os.path.dirname(os.path.realpath(path))
        out += [os.path.join(where, link), os.path.join(where, ".debug", link),
                os.path.join(root + where, link)]
    return out


@lru_cache(maxsize=128)
def _find(path: str, _ino: int, _mtime: int) -> str:
    try:
        fh, elf = _open_elf(path)
    except Exception:
        return path
    try:
        if elf.get_section_by_name(".debug_info") is not None:
            return path
        bid, link = build_id(elf), _debuglink(elf)
    finally:
        fh.close()
    for cand in candidates(path, bid, link):
        if os.path.isfile(cand) and os.path.realpath(cand) != os.path.realpath(path):
            return cand
    return path


def debug_file(path: str) -> str:
    """The file holding `path`'s DWARF (and full .symtab): a separate debug file when one is installed,
    else `path` itself. Cached by file identity."""
    try:
        st = os.stat(path)
    except OSError:
        return path
    return _find(path, st.st_ino, st.st_mtime_ns)
