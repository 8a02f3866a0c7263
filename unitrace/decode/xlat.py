"""Flag sets and enumerations rendered as strace's -X abbrev|raw|verbose (its printflags/printxval).

A table is data: a tuple of (value, name) pairs. Flags print as `A|B|0x40` (unknown bits in hex);
enums print the name or the number followed by `/* PREFIX_??? */`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Flags:
    pairs: tuple[tuple[int, str], ...]  # bits in printing order; a 0 value names the empty set
    zero: str = "0"
    hex_raw: bool = True  # -X raw prints flags as hex

    def format(self, v: int, xlat: str = "abbrev") -> str:
        if xlat == "raw":
            return f"{v:#x}" if v else "0"
        names = []
        rest = v
        for bit, name in self.pairs:
            if bit and rest & bit == bit:
                names.append(name)
                rest &= ~bit
        if rest:
            names.append(f"{rest:#x}")
        text = "|".join(names) if names else self.zero
        if xlat == "verbose" and names and v:
            return f"{v:#x} /* {text} */"
        return text


@dataclass(frozen=True, slots=True)
class Enum:
    names: dict[int, str]
    unknown: str  # `ARCH_???`
    hex_unknown: bool = True

    def format(self, v: int, xlat: str = "abbrev") -> str:
        name = self.names.get(v)
        if xlat == "raw":
            return f"{v:#x}" if v else "0"
        raw = f"{v:#x}" if self.hex_unknown and v else str(v)  # C's %#x prints 0 as "0"
        if name is None:
            return f"{raw} /* {self.unknown} */"
        if xlat == "verbose":
            return f"{raw} /* {name} */"
        return name


def flags(pairs: Iterable[tuple[int, str]], zero: str = "0") -> Flags:
    return Flags(tuple(pairs), zero)


def enum(pairs: Iterable[tuple[int, str]], unknown: str, hex_unknown: bool = True) -> Enum:
    return Enum(dict(pairs), unknown, hex_unknown)
