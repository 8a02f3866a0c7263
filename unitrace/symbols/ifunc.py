"""Which implementation an IFUNC (`strlen`, `memcpy`, `strcmp`...) selects on this machine.

An IFUNC symbol's address is its resolver, which the dynamic linker runs once to pick an implementation
for this CPU (`__strlen_avx2`, `__strlen_evex`...). A probe placed on the symbol's address catches the
resolver, called once at start-up with no useful arguments, and never the calls. The ptrace backend reads
the choice from the traced process; kernel probes are placed before the process exists, so the choice is
read from our own process instead: the same library file on the same CPU makes the same choice. Only for a
library this process has mapped already (libc, libm, libpthread...): loading another one to ask would run
its constructors.
"""

from __future__ import annotations

import ctypes
import os


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


_libc = ctypes.CDLL(None, use_errno=True)
_dladdr = _libc.dladdr
_dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
_dladdr.restype = ctypes.c_int


def _mapped_here(path: str) -> bool:
    real = os.path.realpath(path)
    try:
        with open("/proc/self/maps", encoding="utf-8", opener=lambda p, f: os.open(p, f | os.O_CLOEXEC)) as f:
            return any(line.rstrip().endswith(" " + real) for line in f)
    except OSError:
        return False


def selected_implementation(path: str, symbol: str, first_vaddr: int = 0) -> int | None:
    """The link-time address of the function the IFUNC `symbol` of `path` resolves to on this machine, or
    None when this process cannot tell (the library is not mapped here). `first_vaddr`: the lowest PT_LOAD
    address of the file (0 for shared libraries), to turn our copy's load base into its bias."""
    if not _mapped_here(path):
        return None
    try:
        lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        addr = ctypes.cast(getattr(lib, symbol), ctypes.c_void_p).value
    except (OSError, AttributeError):
        return None
    if not addr:
        return None
    info = _DlInfo()
    if not _dladdr(addr, ctypes.byref(info)) or not info.dli_fname or info.dli_fbase is None:
        return None
    if os.path.realpath(info.dli_fname.decode()) != os.path.realpath(path):
        return None  # resolved into another file: not a probe point in this one
    return addr - (info.dli_fbase - first_vaddr)
