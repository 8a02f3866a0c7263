"""ELF symbol tables, loaded lazily and cached by file identity (path, inode, mtime).

Only what is asked for is parsed: the section headers, then `.symtab`/`.dynsym` on the first lookup. Symbols
are kept in sorted arrays so address lookups are a bisection.
"""

from __future__ import annotations

import bisect
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from unitrace.errors import TargetError


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str
    value: int  # st_value: the link-time virtual address
    size: int
    kind: str  # "func", "ifunc", "object"
    binding: str  # "global", "weak", "local"


@dataclass(frozen=True, slots=True)
class Segment:
    vaddr: int
    offset: int
    filesz: int
    memsz: int
    executable: bool


class ElfSymbols:
    """Symbols and loadable segments of one ELF file."""

    def __init__(self, path: str) -> None:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile

        self.path = path
        try:
            # Opened with O_CLOEXEC: a traced child must never inherit our descriptors.
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise TargetError(f"cannot open {path}: {exc.strerror}") from exc
        self._file = os.fdopen(fd, "rb")
        try:
            self._elf = ELFFile(self._file)
        except ELFError as exc:
            self._file.close()
            raise TargetError(f"{path} is not an ELF file: {exc}") from exc
        self.is_pie = self._elf.header["e_type"] == "ET_DYN"
        self.machine = self._elf.header["e_machine"]
        self.segments = tuple(
            Segment(s["p_vaddr"], s["p_offset"], s["p_filesz"], s["p_memsz"], bool(s["p_flags"] & 1))
            for s in self._elf.iter_segments() if s["p_type"] == "PT_LOAD")
        self._by_name: dict[str, Symbol] | None = None
        self._addrs: list[int] = []
        self._sorted: list[Symbol] = []

    def close(self) -> None:
        self._file.close()

    def _load(self) -> dict[str, Symbol]:
        if self._by_name is not None:
            return self._by_name
        kinds = {"STT_FUNC": "func", "STT_GNU_IFUNC": "ifunc", "STT_LOOS": "ifunc", "STT_OBJECT": "object"}
        binds = {"STB_GLOBAL": "global", "STB_WEAK": "weak", "STB_LOCAL": "local", "STB_GNU_UNIQUE": "global"}
        by_name: dict[str, Symbol] = {}
        by_addr: dict[int, Symbol] = {}
        for secname in (".dynsym", ".symtab"):  # .symtab last: it is the richer source when present
            for s in self._iter_section(secname, kinds, binds):
                name = s.name
                old = by_name.get(name)
                # Prefer global over weak over local definitions of the same name.
                if old is None or (old.binding != "global" and s.binding == "global"):
                    by_name[name] = s
                if s.kind != "object":
                    # every function counts for address lookups, static ones of the same name included;
                    # of aliases at one address the global one names it (raise, not gsignal's local alias)
                    here = by_addr.get(s.value)
                    if here is None or _rank(s) < _rank(here):
                        by_addr[s.value] = s
        self._by_name = by_name
        self._sorted = sorted(by_addr.values(), key=lambda s: s.value)
        self._addrs = [s.value for s in self._sorted]
        return by_name

    def _iter_section(self, secname: str, kinds: dict[str, str], binds: dict[str, str]) -> Iterator[Symbol]:
        sec = self._elf.get_section_by_name(secname)
        # a separate debug file keeps .dynsym's header with no bytes (NOBITS)
        if sec is None or not hasattr(sec, "iter_symbols") or sec["sh_type"] == "SHT_NOBITS":
            return
        if self._elf.elfclass == 64 and self._elf.little_endian:
            yield from _fast_symbols(sec.data(), self._elf.get_section(sec["sh_link"]).data())
            return
        for sym in sec.iter_symbols():
            kind = kinds.get(sym["st_info"]["type"])
            if kind is None or sym["st_shndx"] == "SHN_UNDEF" or not sym.name:
                continue
            yield Symbol(sym.name.split("@", 1)[0], sym["st_value"], sym["st_size"], kind,
                         binds.get(sym["st_info"]["bind"], "local"))

    def lookup(self, name: str) -> Symbol | None:
        return self._load().get(name)

    def names(self) -> list[str]:
        return sorted(self._load())

    def function_names(self) -> list[str]:
        return sorted(n for n, s in self._load().items() if s.kind in ("func", "ifunc"))

    def symbolize(self, vaddr: int) -> tuple[Symbol, int] | None:
        """The function containing link-time address `vaddr`, and the offset into it."""
        self._load()
        i = bisect.bisect_right(self._addrs, vaddr) - 1
        if i < 0:
            return None
        sym = self._sorted[i]
        if sym.size and vaddr >= sym.value + sym.size:
            return None
        return sym, vaddr - sym.value

    def file_offset(self, vaddr: int) -> int:
        """The file offset of a link-time address (what uprobe_events wants)."""
        for seg in self.segments:
            if seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
                return vaddr - seg.vaddr + seg.offset
        raise TargetError(f"address 0x{vaddr:x} is in no loadable segment of {self.path}")


_SYM64 = struct.Struct("<IBBHQQ")  # Elf64_Sym
_KINDS = {1: "object", 2: "func", 10: "ifunc"}  # STT_OBJECT, STT_FUNC, STT_GNU_IFUNC
_BINDS = {0: "local", 1: "global", 2: "weak", 10: "global"}  # STB_GNU_UNIQUE counts as global


def _fast_symbols(table: bytes, strtab: bytes) -> Iterator[Symbol]:
    """Elf64_Sym entries read with struct: pyelftools' per-symbol parse takes a second for libc's 10k."""
    for st_name, st_info, _other, shndx, value, size in _SYM64.iter_unpack(table[:len(table) // 24 * 24]):
        kind = _KINDS.get(st_info & 0xF)
        if kind is None or shndx == 0 or not st_name:
            continue
        end = strtab.find(b"\0", st_name)
        name = strtab[st_name:end if end >= 0 else len(strtab)].decode("utf-8", "replace").split("@", 1)[0]
        yield Symbol(name, value, size, kind, _BINDS.get(st_info >> 4, "local"))


def _rank(s: Symbol) -> tuple[int, int, int]:
    """Which of several symbols at one address names it: sized, global, then no leading underscores."""
    return (0 if s.size else 1, {"global": 0, "weak": 1}.get(s.binding, 2), len(s.name) - len(s.name.lstrip("_")))


@lru_cache(maxsize=64)
def _cached(path: str, _ino: int, _mtime: int) -> ElfSymbols:
    return ElfSymbols(path)


def elf_symbols(path: str) -> ElfSymbols:
    """Symbols of `path`, cached by (path, inode, mtime) so a replaced binary is re-read."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise TargetError(f"cannot open {path}: {exc.strerror}") from exc
    return _cached(os.path.realpath(path), st.st_ino, st.st_mtime_ns)


def _ld_cache() -> dict[str, str]:
    """soname/basename -> path, from `ldconfig -p` (the dynamic linker's own cache)."""
    import subprocess

    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return {}
    import platform

    # ldconfig lists other ABIs' libraries too; keep ours ("libc6,x86-64" or "libc6,AArch64").
    abi = {"x86_64": "x86-64", "aarch64": "AArch64"}.get(platform.machine(), "")
    found: dict[str, str] = {}
    for line in out.splitlines()[1:]:
        left, _, path = line.strip().partition(" => ")
        name, _, tags = left.partition(" ")
        if path and (not abi or abi in tags):
            found.setdefault(name, path.strip())
    return found


def resolve_library(name: str, pid: int | None = None) -> str:
    """A short library name (`libc`, `libm.so.6`) or a path -> an absolute path.

    With a pid, the library the process actually mapped wins (it may differ from the linker's default).
    """
    if "/" in name:
        path = Path(name)
        if not path.exists():
            raise TargetError(f"no such file: {name}")
        return str(path.resolve())
    stem = name if name.startswith("lib") else f"lib{name}"
    if pid is not None:
        try:
            with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace", opener=_cloexec_opener) as f:
                for line in f:
                    parts = line.split(maxsplit=5)
                    if len(parts) == 6:
                        base = os.path.basename(parts[5].strip())
                        if base == name or base.startswith(stem + ".so") or base.startswith(stem + "-"):
                            return parts[5].strip()
        except OSError:
            pass
    cache = _ld_cache()
    for soname, path in sorted(cache.items()):
        if soname == name or soname.startswith(stem + ".so"):
            return path
    raise TargetError(f"library {name!r} not found in the dynamic linker's cache",
                      hint="give its path, e.g. user:/usr/lib/x86_64-linux-gnu/libc.so.6:malloc")


def _cloexec_opener(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_CLOEXEC)


def find_executable(name: str) -> str:
    """A command name as the shell would find it, or a path."""
    import shutil

    if "/" in name:
        if not os.path.exists(name):
            raise TargetError(f"no such file: {name}")
        return os.path.realpath(name)
    found = shutil.which(name)
    if not found:
        raise TargetError(f"command not found: {name}")
    return os.path.realpath(found)


def resolve_binary(spec: str, pid: int | None = None, command: str | None = None) -> str:
    """The file a user probe names: a path, a library (`libc`), a command on PATH, or "" for the
    traced program itself (the started command, or /proc/PID/exe)."""
    if not spec:
        if command:
            return find_executable(command)
        if pid is not None:
            try:
                return os.readlink(f"/proc/{pid}/exe")
            except OSError as exc:
                raise TargetError(f"cannot read /proc/{pid}/exe: {exc.strerror}") from exc
        raise TargetError("a user probe without a binary needs a command or -p PID to name it")
    if "/" in spec:
        return find_executable(spec)
    if spec.startswith("lib"):
        return resolve_library(spec, pid)
    try:
        return find_executable(spec)
    except TargetError:
        return resolve_library(spec, pid)


def resolve_function(binary: str, symbol: str, pid: int | None = None, where: str = "") -> tuple[str, Symbol]:
    """(path, symbol) for a user probe, or an error with the closest names the binary does define."""
    path = resolve_binary(binary, pid)
    syms = elf_symbols(path)
    sym = syms.lookup(symbol)
    if sym is None or sym.kind not in ("func", "ifunc"):
        import difflib

        close = difflib.get_close_matches(symbol, syms.function_names(), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"unitrace list symbols {path}"
        prefix = f"{where}: " if where else ""
        raise TargetError(f"{prefix}no function {symbol!r} in {path}", hint=hint)
    if sym.kind == "ifunc":
        # a kernel probe on the symbol would catch only its resolver: the implementation it selects here
        from unitrace.symbols.ifunc import selected_implementation

        first = min((seg.vaddr for seg in syms.segments), default=0)
        impl = selected_implementation(path, symbol, first)
        if impl is None:
            prefix = f"{where}: " if where else ""
            candidates = [n for n in syms.function_names() if n.startswith(f"__{symbol}_")][:6]
            raise TargetError(f"{prefix}{symbol} in {path} is an IFUNC, and which implementation this machine "
                              "selects cannot be told before the program runs",
                              hint=f"probe an implementation directly ({', '.join(candidates)})" if candidates
                              else "trace it with --backend ptrace, which reads the choice from the process")
        return path, Symbol(symbol, impl, 0, "func", sym.binding)
    return path, sym
