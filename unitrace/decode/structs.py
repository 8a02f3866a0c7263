"""Kernel structures as strace prints them (x86_64 / arm64 LP64 layouts)."""

from __future__ import annotations

import socket
import struct

from unitrace.decode import xlat_data as X
from unitrace.decode.api import FormatOptions, Memory
from unitrace.decode.signals import SIGNAL_NAMES
from unitrace.decode.strings import quote

_STAT = struct.Struct("<QQQIII4xQqqqqqqqqq")  # struct stat, asm/stat.h (x86_64)
_TIMESPEC = struct.Struct("<qq")
_RLIMIT = struct.Struct("<QQ")
RLIM_INFINITY = (1 << 64) - 1


def ptr(v: int) -> str:
    return "NULL" if v == 0 else f"{v:#x}"


def mode_text(mode: int, xlat: str = "abbrev") -> str:
    if xlat == "raw":
        return f"0{mode:o}" if mode else "0"
    if xlat == "verbose":
        return f"0{mode:o} /* {mode_text(mode)} */" if mode else "0"
    fmt = mode & 0o170000
    rest = mode & 0o7777
    name = X.S_IFMT.names.get(fmt)
    head = name if name else f"{fmt:#o}"
    extra = []
    for bit, n in ((0o4000, "S_ISUID"), (0o2000, "S_ISGID"), (0o1000, "S_ISVTX")):
        if rest & bit:
            extra.append(n)
    perm = rest & 0o777
    return "|".join([head, *extra, f"0{perm:o}" if perm else "000"])


def _makedev(dev: int) -> str:
    major = ((dev >> 8) & 0xFFF) | ((dev >> 32) & ~0xFFF)
    minor = (dev & 0xFF) | ((dev >> 12) & ~0xFF)
    return f"makedev({major:#x}, {minor:#x})".replace("0x0)", "0)").replace("(0x0,", "(0,")


def stat_text(mem: Memory, addr: int, opts: FormatOptions) -> str:
    x = opts.xlat
    raw = mem.read(addr, _STAT.size)
    if raw is None:
        return ptr(addr)
    (dev, ino, nlink, mode, uid, gid, rdev, size, blksize, blocks,
     at, atn, mt, mtn, ct, ctn) = _STAT.unpack(raw)
    ftype = mode & 0o170000
    if not opts.verbose:
        if ftype in (0o20000, 0o60000):
            return f"{{st_mode={mode_text(mode, x)}, st_rdev={_makedev(rdev)}, ...}}"
        return f"{{st_mode={mode_text(mode, x)}, st_size={size}, ...}}"
    parts = [f"st_dev={_makedev(dev)}", f"st_ino={ino}", f"st_mode={mode_text(mode, x)}", f"st_nlink={nlink}",
             f"st_uid={uid}", f"st_gid={gid}", f"st_blksize={blksize}", f"st_blocks={blocks}"]
    parts.append(f"st_rdev={_makedev(rdev)}" if ftype in (0o20000, 0o60000) else f"st_size={size}")
    parts += [f"st_atime={_stamp(at, atn)}", f"st_atime_nsec={atn}", f"st_mtime={_stamp(mt, mtn)}",
              f"st_mtime_nsec={mtn}", f"st_ctime={_stamp(ct, ctn)}", f"st_ctime_nsec={ctn}"]
    return "{" + ", ".join(parts) + "}"


def _stamp(sec: int, nsec: int) -> str:
    """`1795344598 /* 2026-11-22T10:49:58.295747636+0000 */`: strace's -v time comment (local time)."""
    import time

    t = time.localtime(sec)
    frac = f".{nsec:09d}" if nsec else ""
    return f"{sec} /* {time.strftime('%Y-%m-%dT%H:%M:%S', t)}{frac}{time.strftime('%z', t)} */"


def timespec_text(mem: Memory, addr: int) -> str:
    if addr == 0:
        return "NULL"
    raw = mem.read(addr, _TIMESPEC.size)
    if raw is None:
        return ptr(addr)
    sec, nsec = _TIMESPEC.unpack(raw)
    return f"{{tv_sec={sec}, tv_nsec={nsec}}}"


def _rlim(v: int, xlat: str = "abbrev") -> str:
    if xlat == "raw":
        return str(v)
    if v == RLIM_INFINITY:
        text = "RLIM64_INFINITY"
    elif v and v % 1024 == 0:
        text = f"{v // 1024}*1024"
    else:
        return str(v)
    return f"{v} /* {text} */" if xlat == "verbose" else text


def rlimit_text(mem: Memory, addr: int, xlat: str = "abbrev") -> str:
    if addr == 0:
        return "NULL"
    raw = mem.read(addr, _RLIMIT.size)
    if raw is None:
        return ptr(addr)
    cur, mx = _RLIMIT.unpack(raw)
    return f"{{rlim_cur={_rlim(cur, xlat)}, rlim_max={_rlim(mx, xlat)}}}"


def sigset_bits(mask: int, nsig: int = 64, xlat: str = "abbrev") -> str:
    """`[INT TERM]`, or `~[...]` (the signals NOT in the set) when 2/3 or more of the set's bits are set, as
    strace's sprintsigmask_n decides: over the set's size rounded up to 32-bit words."""
    nbits = (nsig + 31) // 32 * 32
    full = (1 << nbits) - 1
    mask &= full
    inv = ""
    if mask.bit_count() >= nbits * 2 // 3:
        mask ^= full
        inv = "~"
    bits = [s for s in range(1, nbits + 1) if mask >> (s - 1) & 1]
    if xlat == "raw":
        return inv + "[" + " ".join(map(str, bits)) + "]"
    name = _sig_short if xlat != "verbose" else (lambda s: f"{s} /* {_sig_short(s)} */")
    return inv + "[" + " ".join(name(s) for s in bits) + "]"


def _sig_short(s: int) -> str:
    name = SIGNAL_NAMES.get(s, str(s))
    return name[3:] if name.startswith("SIG") else name


SIGSET_SIZE = 8  # NSIG_BYTES on x86_64 and arm64


def sigset_text(mem: Memory, addr: int, size: int, xlat: str = "abbrev") -> str:
    if addr == 0:
        return "NULL"
    if size != SIGSET_SIZE:
        # strace reads a sigset only when its size is the kernel's (8 bytes): below a word or above
        # NSIG_BYTES it prints the address
        return ptr(addr)
    raw = mem.read(addr, SIGSET_SIZE)
    if raw is None:
        return ptr(addr)
    return sigset_bits(int.from_bytes(raw, "little"), 64, xlat)


# struct rt_sigframe (x86_64): pretcode, then struct ucontext (uc_flags, uc_link, uc_stack (24 bytes),
# uc_mcontext (struct sigcontext, 256 bytes), uc_sigmask)
RT_SIGFRAME_SIGMASK = 8 + 8 + 8 + 24 + 256


def rt_sigreturn_text(mem: Memory, sp: int, xlat: str = "abbrev") -> str | None:
    """`{mask=[...]}`: the mask rt_sigreturn restores, from the signal frame the handler returned to. At
    the syscall the handler's `ret` has popped pretcode, so the frame starts one word below the stack
    pointer (strace: get_rt_sigframe_addr). None when the stack pointer is not known."""
    if not sp:
        return None
    addr = sp - 8 + RT_SIGFRAME_SIGMASK
    raw = mem.read(addr, SIGSET_SIZE)
    if raw is None:
        return f"{{mask={ptr(addr)}}}"
    return f"{{mask={sigset_bits(int.from_bytes(raw, 'little'), 64, xlat)}}}"


def sigaction_text(mem: Memory, addr: int, xlat: str) -> str:
    if addr == 0:
        return "NULL"
    raw = mem.read(addr, 32)
    if raw is None:
        return ptr(addr)
    handler, flags, restorer, mask = struct.unpack("<QQQQ", raw)
    h = {0: "SIG_DFL", 1: "SIG_IGN"}.get(handler, f"{handler:#x}")
    parts = [f"sa_handler={h}", f"sa_mask={sigset_bits(mask, 64, xlat)}", f"sa_flags={X.SA_FLAGS.format(flags, xlat)}"]
    if flags & 0x04000000:
        parts.append(f"sa_restorer={restorer:#x}")
    return "{" + ", ".join(parts) + "}"


def sockaddr_text(mem: Memory, addr: int, length: int, opts: FormatOptions) -> str:
    if addr == 0:
        return "NULL"
    raw = mem.read(addr, min(max(length, 0), 128)) if length > 0 else None
    if raw is None or len(raw) < 2:
        return ptr(addr)
    fam = int.from_bytes(raw[:2], "little")
    fam_text = f"sa_family={X.ADDRESS_FAMILIES.format(fam, opts.xlat)}"
    if opts.xlat == "raw" and fam in (2, 10):
        return f"{{{fam_text}, sin_port={quote(raw[2:4], 2)}, sin_addr={quote(raw[4:8], 2)}}}" if fam == 2 else \
            f"{{{fam_text}, sa_data={quote(raw[2:], 2)}}}"
    if fam == 2 and len(raw) >= 8:
        port = int.from_bytes(raw[2:4], "big")
        return f'{{{fam_text}, sin_port=htons({port}), sin_addr=inet_addr({quote(socket.inet_ntoa(raw[4:8]).encode(), opts.hex_strings)})}}'
    if fam == 10 and len(raw) >= 24:
        port = int.from_bytes(raw[2:4], "big")
        flow = int.from_bytes(raw[4:8], "big")
        a = socket.inet_ntop(socket.AF_INET6, raw[8:24])
        scope = int.from_bytes(raw[24:28], "little") if len(raw) >= 28 else 0
        return (f'{{{fam_text}, sin6_port=htons({port}), sin6_flowinfo=htonl({flow}), '
                f'inet_pton(AF_INET6, "{a}", &sin6_addr), sin6_scope_id={scope}}}')
    if fam == 1:
        path = raw[2:]
        if path[:1] == b"\0" and len(path) > 1:
            return f"{{{fam_text}, sun_path=@{quote(path[1:], opts.hex_strings)}}}"
        path = path.split(b"\0", 1)[0]
        return f"{{{fam_text}, sun_path={quote(path, opts.hex_strings)}}}"
    if fam == 16 and len(raw) >= 12:
        pid, groups = struct.unpack_from("<iI", raw, 4)  # strace prints the port id signed
        return f"{{{fam_text}, nl_pid={pid}, nl_groups={groups:08x}}}"
    return f"{{{fam_text}, sa_data={quote(raw[2:], opts.hex_strings)}}}"


def utsname_text(mem: Memory, addr: int, opts: FormatOptions) -> str:
    raw = mem.read(addr, 65 * 6)
    if raw is None:
        return ptr(addr)
    f = [raw[i * 65:(i + 1) * 65].split(b"\0", 1)[0] for i in range(6)]
    if not opts.verbose:
        return f'{{sysname={quote(f[0])}, nodename={quote(f[1])}, ...}}'
    names = ("sysname", "nodename", "release", "version", "machine", "domainname")
    return "{" + ", ".join(f"{n}={quote(v)}" for n, v in zip(names, f, strict=True)) + "}"


def int_array_text(mem: Memory, addr: int, count: int) -> str:
    raw = mem.read(addr, 4 * count)
    if raw is None:
        return ptr(addr)
    return "[" + ", ".join(str(v) for v in struct.unpack(f"<{count}i", raw)) + "]"
