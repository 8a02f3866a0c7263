"""C++ (Itanium ABI) demangling through libstdc++'s own `abi::__cxa_demangle`, the demangler g++'s
runtime, gdb's and c++filt's output agree with. Loaded on first use; without libstdc++ names stay mangled.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache


@lru_cache(maxsize=1)
def _load() -> tuple[object, object] | None:
    name = ctypes.util.find_library("stdc++") or "libstdc++.so.6"
    try:
        lib = ctypes.CDLL(name)
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    fn = lib.__cxa_demangle
    fn.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                   ctypes.POINTER(ctypes.c_int)]
    fn.restype = ctypes.c_void_p  # a malloc()ed string we must free
    free = libc.free
    free.argtypes = [ctypes.c_void_p]
    free.restype = None
    return fn, free


@lru_cache(maxsize=8192)
def demangle(name: str) -> str:
    """`_ZN6shapes6unpackEv` -> `shapes::unpack()`; anything that is not a mangled name comes back as is."""
    if not name.startswith("_Z"):
        return name
    api = _load()
    if api is None:
        return name
    fn, free = api
    status = ctypes.c_int(0)
    out = fn(name.encode(), None, None, ctypes.byref(status))  # type: ignore[operator]
    if not out or status.value != 0:
        return name
    try:
        return ctypes.string_at(out).decode("utf-8", "replace")
    finally:
        free(out)  # type: ignore[operator]
