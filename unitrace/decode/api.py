"""The contract between backends and the shared decoders.

A backend that sees raw syscall numbers and register values (ptrace, bpf, ftrace raw_syscalls) hands
them to a SyscallDecoder together with a Memory that can read the tracee. The decoder returns
display-ready texts formatted exactly as strace formats them, so every backend prints the same lines.

Decoding is split in two because strace's semantics need it: input arguments must be read at entry
(execve's argv is gone after a successful exec; a path may change), output arguments only exist at exit
(read's buffer, fstat's struct).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Memory(Protocol):
    """Reads the traced process's memory while it is stopped."""

    def read(self, addr: int, size: int) -> bytes | None:
        """Exactly `size` bytes, or None if any of them is unreadable."""

    def read_cstr(self, addr: int, limit: int) -> bytes | None:
        """Bytes up to (not including) the NUL, at most limit+1 of them so a caller can tell that the
        string was longer than `limit`; None if the first byte is unreadable."""


class FdDescriber(Protocol):
    def describe(self, pid: int, fd: int, detail: int) -> str | None:
        """For -y (detail 1): the path or `socket:[inode]`; for -yy (2): protocol details too."""


@dataclass(frozen=True, slots=True)
class FormatOptions:
    string_limit: int = 32  # -s
    hex_strings: int = 0  # 1: -x (non-ASCII escaped as hex), 2: -xx (every byte as hex)
    verbose: bool = False  # -v: structures, argv and envp in full
    decode_fds: int = 0  # 1: -y, 2: -yy
    xlat: str = "abbrev"  # -X raw | abbrev | verbose
    decode: bool = True  # False: skip formatting entirely (-c, counting): raw numbers only


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    ctype: str  # the C type as declared in the kernel, e.g. "const char __user *"


@dataclass(frozen=True, slots=True)
class SyscallInfo:
    nr: int
    name: str
    params: tuple[Param, ...]
    classes: frozenset[str]  # strace's classes: "file", "net", "process", "memory", "signal", "desc", ...


class DecodedCall(Protocol):
    """What SyscallDecoder.enter returns; opaque to the backend except for these members."""

    info: SyscallInfo | None

    def entry_args(self) -> tuple[str, ...]:
        """The arguments known at entry, for `read(3,  <unfinished ...>` lines."""


class SyscallDecoder(Protocol):
    def enter(self, pid: int, nr: int, args: tuple[int, ...], mem: Memory, sp: int = 0) -> DecodedCall:
        """`sp`: the user stack pointer at entry when the backend knows it (ptrace), else 0."""

    def exit(self, call: DecodedCall, ret: int, mem: Memory) -> tuple[tuple[str, ...], str, int]:
        """(argument texts, return text such as `-1 ENOENT (No such file or directory)`, errno)."""
