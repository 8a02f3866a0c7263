"""Irregular calls of the I/O-multiplexing, socket-option and process-control kind: poll/ppoll,
epoll_wait/epoll_pwait, select/pselect6, statx, sendfile, prctl, futex, clone3, socketpair,
[gs]etsockopt, getsockname/getpeername/accept. Same contract as overrides.py: a function of the decoder
returning [(formatter, at_exit)] (and optionally a return formatter); closures bound once per number.

A return text that needs tracee memory (poll's `1 ([{fd=3, revents=POLLIN}])`) is computed by an exit
formatter that prints nothing and leaves the text in call.priv for the return formatter.
"""

from __future__ import annotations

import struct

from unitrace.decode import structs as S
from unitrace.decode import xlat_data as X
from unitrace.decode.msghdr import SOCKET_LEVELS
from unitrace.decode.signals import signal_name, signal_text
from unitrace.decode.strings import format_buffer, format_cstring
from unitrace.decode.syscall import ENTRY, EXIT, Call, StraceDecoder, _dec, _hex, _indexed, s32, s64
from unitrace.decode.xlat import enum, flags

STATX_MASK = flags([(0xFFF, "STATX_ALL"), (0x7FF, "STATX_BASIC_STATS"), (1, "STATX_TYPE"), (2, "STATX_MODE"),
                    (4, "STATX_NLINK"), (8, "STATX_UID"), (0x10, "STATX_GID"), (0x20, "STATX_ATIME"),
                    (0x40, "STATX_MTIME"), (0x80, "STATX_CTIME"), (0x100, "STATX_INO"), (0x200, "STATX_SIZE"),
                    (0x400, "STATX_BLOCKS"), (0x800, "STATX_BTIME"), (0x1000, "STATX_MNT_ID"),
                    (0x2000, "STATX_DIOALIGN")])
STATX_ATTRS = flags([(4, "STATX_ATTR_COMPRESSED"), (0x10, "STATX_ATTR_IMMUTABLE"), (0x20, "STATX_ATTR_APPEND"),
                     (0x40, "STATX_ATTR_NODUMP"), (0x800, "STATX_ATTR_ENCRYPTED"), (0x1000, "STATX_ATTR_AUTOMOUNT"),
                     (0x2000, "STATX_ATTR_MOUNT_ROOT"), (0x100000, "STATX_ATTR_VERITY"),
                     (0x200000, "STATX_ATTR_DAX")])
STATX_SYNC = enum([(0, "AT_STATX_SYNC_AS_STAT"), (0x2000, "AT_STATX_FORCE_SYNC"), (0x4000, "AT_STATX_DONT_SYNC"),
                   (0x6000, "AT_STATX_SYNC_TYPE")], "AT_STATX_???")
_STATX = struct.Struct("<IIQIIIH2xQQQQ" + "qI4x" * 4 + "IIIIQII")

SOL_SOCKET_OPTS = enum(list({
    1: "SO_DEBUG", 2: "SO_REUSEADDR", 3: "SO_TYPE", 4: "SO_ERROR", 5: "SO_DONTROUTE", 6: "SO_BROADCAST",
    7: "SO_SNDBUF", 8: "SO_RCVBUF", 9: "SO_KEEPALIVE", 10: "SO_OOBINLINE", 11: "SO_NO_CHECK", 12: "SO_PRIORITY",
    13: "SO_LINGER", 14: "SO_BSDCOMPAT", 15: "SO_REUSEPORT", 16: "SO_PASSCRED", 17: "SO_PEERCRED",
    18: "SO_RCVLOWAT", 19: "SO_SNDLOWAT", 20: "SO_RCVTIMEO_OLD", 21: "SO_SNDTIMEO_OLD", 25: "SO_BINDTODEVICE",
    26: "SO_ATTACH_FILTER", 27: "SO_DETACH_FILTER", 28: "SO_PEERNAME", 29: "SO_TIMESTAMP_OLD",
    30: "SO_ACCEPTCONN", 31: "SO_PEERSEC", 32: "SO_SNDBUFFORCE", 33: "SO_RCVBUFFORCE", 34: "SO_PASSSEC",
    35: "SO_TIMESTAMPNS_OLD", 36: "SO_MARK", 37: "SO_TIMESTAMPING_OLD", 38: "SO_PROTOCOL", 39: "SO_DOMAIN",
    40: "SO_RXQ_OVFL", 41: "SO_WIFI_STATUS", 42: "SO_PEEK_OFF", 43: "SO_NOFCS", 44: "SO_LOCK_FILTER",
    45: "SO_SELECT_ERR_QUEUE", 46: "SO_BUSY_POLL", 47: "SO_MAX_PACING_RATE", 48: "SO_BPF_EXTENSIONS",
    49: "SO_INCOMING_CPU", 50: "SO_ATTACH_BPF", 60: "SO_ZEROCOPY", 61: "SO_TXTIME", 62: "SO_BINDTOIFINDEX",
}.items()), "SO_???")
SOL_NETLINK_OPTS = enum(list(enumerate((
    "0", "NETLINK_ADD_MEMBERSHIP", "NETLINK_DROP_MEMBERSHIP", "NETLINK_PKTINFO", "NETLINK_BROADCAST_ERROR",
    "NETLINK_NO_ENOBUFS", "NETLINK_RX_RING", "NETLINK_TX_RING", "NETLINK_LISTEN_ALL_NSID",
    "NETLINK_LIST_MEMBERSHIPS", "NETLINK_CAP_ACK", "NETLINK_EXT_ACK", "NETLINK_GET_STRICT_CHK")))[1:],
    "NETLINK_???")
SOL_TCP_OPTS = enum(list(enumerate((
    "0", "TCP_NODELAY", "TCP_MAXSEG", "TCP_CORK", "TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_SYNCNT",
    "TCP_LINGER2", "TCP_DEFER_ACCEPT", "TCP_WINDOW_CLAMP", "TCP_INFO", "TCP_QUICKACK", "TCP_CONGESTION",
    "TCP_MD5SIG")))[1:], "TCP_???")
_SOCKOPT_NAMES = {1: SOL_SOCKET_OPTS, 270: SOL_NETLINK_OPTS, 6: SOL_TCP_OPTS}

PR_DUMPABLE = {0: "SUID_DUMP_DISABLE", 1: "SUID_DUMP_USER", 2: "SUID_DUMP_ROOT"}
CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
        "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
        "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
        "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE")
CAP_ENUM = enum(list(enumerate(CAPS)), "CAP_???")
PR_NAMES = enum(list({
    1: "PR_SET_PDEATHSIG", 2: "PR_GET_PDEATHSIG", 3: "PR_GET_DUMPABLE", 4: "PR_SET_DUMPABLE",
    5: "PR_GET_UNALIGN", 6: "PR_SET_UNALIGN", 7: "PR_GET_KEEPCAPS", 8: "PR_SET_KEEPCAPS", 9: "PR_GET_FPEMU",
    10: "PR_SET_FPEMU", 11: "PR_GET_FPEXC", 12: "PR_SET_FPEXC", 13: "PR_GET_TIMING", 14: "PR_SET_TIMING",
    15: "PR_SET_NAME", 16: "PR_GET_NAME", 19: "PR_GET_ENDIAN", 20: "PR_SET_ENDIAN", 21: "PR_GET_SECCOMP",
    22: "PR_SET_SECCOMP", 23: "PR_CAPBSET_READ", 24: "PR_CAPBSET_DROP", 25: "PR_GET_TSC", 26: "PR_SET_TSC",
    27: "PR_GET_SECUREBITS", 28: "PR_SET_SECUREBITS", 29: "PR_SET_TIMERSLACK", 30: "PR_GET_TIMERSLACK",
    31: "PR_TASK_PERF_EVENTS_DISABLE", 32: "PR_TASK_PERF_EVENTS_ENABLE", 33: "PR_MCE_KILL",
    34: "PR_MCE_KILL_GET", 35: "PR_SET_MM", 36: "PR_SET_CHILD_SUBREAPER", 37: "PR_GET_CHILD_SUBREAPER",
    38: "PR_SET_NO_NEW_PRIVS", 39: "PR_GET_NO_NEW_PRIVS", 40: "PR_GET_TID_ADDRESS", 41: "PR_SET_THP_DISABLE",
    42: "PR_GET_THP_DISABLE", 43: "PR_MPX_ENABLE_MANAGEMENT", 44: "PR_MPX_DISABLE_MANAGEMENT",
    45: "PR_SET_FP_MODE", 46: "PR_GET_FP_MODE", 47: "PR_CAP_AMBIENT", 50: "PR_SVE_SET_VL", 51: "PR_SVE_GET_VL",
    52: "PR_GET_SPECULATION_CTRL", 53: "PR_SET_SPECULATION_CTRL", 54: "PR_PAC_RESET_KEYS",
    55: "PR_SET_TAGGED_ADDR_CTRL", 56: "PR_GET_TAGGED_ADDR_CTRL", 57: "PR_SET_IO_FLUSHER",
    58: "PR_GET_IO_FLUSHER", 59: "PR_SET_SYSCALL_USER_DISPATCH", 60: "PR_PAC_SET_ENABLED_KEYS",
    61: "PR_PAC_GET_ENABLED_KEYS", 62: "PR_SCHED_CORE", 63: "PR_SME_SET_VL", 64: "PR_SME_GET_VL",
    0x53564d41: "PR_SET_VMA", 0x59616D61: "PR_SET_PTRACER",
}.items()), "PR_???")
FUTEX_OP_OPS = ("FUTEX_OP_SET", "FUTEX_OP_ADD", "FUTEX_OP_OR", "FUTEX_OP_ANDN", "FUTEX_OP_XOR")
FUTEX_OP_CMPS = ("FUTEX_OP_CMP_EQ", "FUTEX_OP_CMP_NE", "FUTEX_OP_CMP_LT", "FUTEX_OP_CMP_LE", "FUTEX_OP_CMP_GT",
                 "FUTEX_OP_CMP_GE")
CLONE3_FIELDS = ("flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size", "tls",
                 "set_tid", "set_tid_size", "cgroup")


def _hexval(v: int) -> str:
    return f"{v:#x}" if v else "0"


def _xval(table: dict[int, str], v: int, xlat: str, dflt: str) -> str:
    name = table.get(v)
    if xlat == "raw":
        return _hexval(v)
    if name is None:
        return f"{_hexval(v)} /* {dflt} */"
    return f"{_hexval(v)} /* {name} */" if xlat == "verbose" else name


def _remember_return(fn):  # type: ignore[no-untyped-def]
    """An exit formatter computing a return suffix into call.priv; prints no argument."""
    def fmt(c: Call, m) -> None:  # type: ignore[no-untyped-def]
        c.priv = fn(c, m)
    return fmt


def _ret_with_priv(c: Call) -> str:
    return f"{c.ret} ({c.priv})" if c.priv else str(c.ret)


# ---- poll ----------------------------------------------------------------------------------------
def _pollfds(d: StraceDecoder, c: Call, m, out: bool) -> str | None:  # type: ignore[no-untyped-def]
    addr, n = c.args[0], c.args[1] & 0xFFFFFFFF
    if addr == 0:
        return "NULL"
    shown = min(n, d.opts.string_limit) if not out else n
    raw = m.read(addr, 8 * shown) if shown else b""
    if raw is None:
        return S.ptr(addr)
    x = d.opts.xlat
    items = []
    for k in range(shown):
        fd, events, revents = struct.unpack_from("<ihh", raw, 8 * k)
        if out:
            if revents:  # strace prints the returned descriptors undecorated, even with -y
                items.append(f"{{fd={fd}, revents={X.POLL_EVENTS.format(revents & 0xFFFF, x)}}}")
            continue
        items.append(f"{{fd={d.fd_text(c.pid, fd)}, events={X.POLL_EVENTS.format(events & 0xFFFF, x)}}}")
    if out:
        return "[" + ", ".join(items[: d.opts.string_limit]) + \
            (", ..." if len(items) > d.opts.string_limit else "") + "]"
    return "[" + ", ".join(items) + (", ..." if n > shown else "") + "]"


def poll(d):  # type: ignore[no-untyped-def]
    def ret(c: Call) -> str:
        if c.ret == 0:
            return "0 (Timeout)"
        return _ret_with_priv(c)
    return [((lambda c, m: _pollfds(d, c, m, False)), ENTRY), (_dec(1), ENTRY),
            ((lambda c, m: str(s32(c.args[2]))), ENTRY),
            (_remember_return(lambda c, m: _pollfds(d, c, m, True) if c.ret > 0 else None), EXIT)], ret


def ppoll(d):  # type: ignore[no-untyped-def]
    x = d.opts.xlat

    def suffix(c: Call, m) -> str | None:  # type: ignore[no-untyped-def]
        if c.ret <= 0:
            return None
        text = _pollfds(d, c, m, True)
        if c.args[2]:
            text += f", left {S.timespec_text(m, c.args[2])}"
        return text

    def ret(c: Call) -> str:
        return "0 (Timeout)" if c.ret == 0 else _ret_with_priv(c)
    return [((lambda c, m: _pollfds(d, c, m, False)), ENTRY), (_dec(1), ENTRY),
            ((lambda c, m: S.timespec_text(m, c.args[2])), ENTRY),
            ((lambda c, m: S.sigset_text(m, c.args[3], c.args[4], x)), ENTRY), (_dec(4), ENTRY),
            (_remember_return(suffix), EXIT)], ret


# ---- epoll ---------------------------------------------------------------------------------------
def _epoll_event(raw: bytes, off: int, xlat: str) -> str:
    events, data = struct.unpack_from("<IQ", raw, off)
    return f"{{events={X.EPOLL_EVENTS.format(events, xlat)}, data={{u32={data & 0xFFFFFFFF}, u64={data}}}}}"


def _epoll_events_out(d: StraceDecoder):  # type: ignore[no-untyped-def]
    def fmt(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        n = max(c.ret, 0)
        shown = min(n, d.opts.string_limit)
        raw = m.read(c.args[1], 12 * shown) if shown else b""
        if raw is None:
            return S.ptr(c.args[1])
        items = [_epoll_event(raw, 12 * k, d.opts.xlat) for k in range(shown)]
        return "[" + ", ".join(items) + (", ..." if n > shown else "") + "]"
    return _indexed(1, fmt)


def epoll_wait(d):  # type: ignore[no-untyped-def]
    return [(d.fd(0), ENTRY), (_epoll_events_out(d), EXIT), ((lambda c, m: str(s32(c.args[2]))), ENTRY),
            ((lambda c, m: str(s32(c.args[3]))), ENTRY)]


def epoll_pwait(d):  # type: ignore[no-untyped-def]
    x = d.opts.xlat
    return [*epoll_wait(d), ((lambda c, m: S.sigset_text(m, c.args[4], c.args[5], x)), ENTRY), (_dec(5), ENTRY)]


def epoll_ctl(d):  # type: ignore[no-untyped-def]
    def ev(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        raw = m.read(c.args[3], 12) if c.args[3] else None
        return _epoll_event(raw, 0, d.opts.xlat) if raw is not None else S.ptr(c.args[3])
    return [(d.fd(0), ENTRY), (d.xl(1, X.EPOLL_CTL), ENTRY), (d.fd(2), ENTRY), (ev, ENTRY)]


def epoll_create1(d):  # type: ignore[no-untyped-def]
    return [(d.xl(0, X.EPOLL_CREATE_FLAGS), ENTRY)]


# ---- select --------------------------------------------------------------------------------------
def _fdset(d: StraceDecoder, c: Call, m, addr: int, plain: bool = False) -> str | None:  # type: ignore[no-untyped-def]
    nfds = s32(c.args[0])
    if addr == 0:
        return "NULL"
    if nfds <= 0:
        return "[]"
    size = ((min(nfds, 1024 * 1024) + 63) // 64) * 8
    raw = m.read(addr, size)
    if raw is None:
        return S.ptr(addr)
    bits = int.from_bytes(raw, "little")
    fds = [fd for fd in range(nfds) if bits >> fd & 1]
    return "[" + " ".join(str(fd) if plain else d.fd_text(c.pid, fd) for fd in fds) + "]"


def _select(d: StraceDecoder, timeout_kind: str):  # type: ignore[no-untyped-def]
    def tv(m, addr: int) -> str:  # type: ignore[no-untyped-def]
        if addr == 0:
            return "NULL"
        raw = m.read(addr, 16)
        if raw is None:
            return S.ptr(addr)
        sec, frac = struct.unpack("<qq", raw)
        return f"{{tv_sec={sec}, {timeout_kind}={frac}}}"

    def entry_set(i: int):  # type: ignore[no-untyped-def]
        return lambda c, m: _fdset(d, c, m, c.args[i])

    def suffix(c: Call, m) -> str | None:  # type: ignore[no-untyped-def]
        if c.ret <= 0:
            return None
        parts = []
        for i, label in ((1, "in"), (2, "out"), (3, "except")):
            if c.args[i]:
                text = _fdset(d, c, m, c.args[i], plain=True)
                if text not in ("[]", None):
                    parts.append(f"{label} {text}")
        if c.args[4]:
            parts.append(f"left {tv(m, c.args[4])}")
        return ", ".join(parts)

    def ret(c: Call) -> str:
        return "0 (Timeout)" if c.ret == 0 else _ret_with_priv(c)
    fmts = [((lambda c, m: str(s32(c.args[0]))), ENTRY), (entry_set(1), ENTRY), (entry_set(2), ENTRY),
            (entry_set(3), ENTRY), ((lambda c, m: tv(m, c.args[4])), ENTRY)]
    return fmts, suffix, ret


def select(d):  # type: ignore[no-untyped-def]
    fmts, suffix, ret = _select(d, "tv_usec")
    return [*fmts, (_remember_return(suffix), EXIT)], ret


def pselect6(d):  # type: ignore[no-untyped-def]
    fmts, suffix, ret = _select(d, "tv_nsec")
    x = d.opts.xlat

    def sigmask(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        addr = c.args[5]
        if addr == 0:
            return "NULL"
        raw = m.read(addr, 16)
        if raw is None:
            return S.ptr(addr)
        ss, size = struct.unpack("<QQ", raw)
        return f"{{sigmask={S.sigset_text(m, ss, size, x)}, sigsetsize={size}}}"
    return [*fmts, (sigmask, ENTRY), (_remember_return(suffix), EXIT)], ret


# ---- statx ---------------------------------------------------------------------------------------
def statx(d):  # type: ignore[no-untyped-def]
    o = d.opts
    x = o.xlat

    def flags_(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        v = c.args[2] & 0xFFFFFFFF
        if x == "raw":  # strace's raw printflags prints nothing for a zero sync type
            sync_raw = _hexval(v & 0x6000) if v & 0x6000 else ""
            return sync_raw + (f"|{_hexval(v & ~0x6000)}" if v & ~0x6000 else "")
        sync = STATX_SYNC.names.get(v & 0x6000, _hexval(v & 0x6000))
        if x == "verbose":
            sync = f"{_hexval(v & 0x6000)} /* {sync} */"
        rest = v & ~0x6000
        return sync if not rest else f"{sync}|{X.AT_FLAGS.format(rest, x)}"

    def buf(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        raw = m.read(c.args[4], 256)
        if raw is None:
            return S.ptr(c.args[4])
        f = _STATX.unpack_from(raw)
        (mask, blksize, attrs, nlink, uid, gid, mode, ino, size, blocks, attrs_mask,
         at, atn, bt, btn, ct, ctn, mt, mtn, rmaj, rmin, dmaj, dmin, mnt_id, dio_mem, dio_off) = f
        parts = [f"stx_mask={STATX_MASK.format(mask, x)}"]
        if o.verbose:
            parts.append(f"stx_blksize={blksize}")
        parts.append(f"stx_attributes={STATX_ATTRS.format(attrs, x)}")
        if o.verbose:
            for bit, name, v in ((4, "stx_nlink", nlink), (8, "stx_uid", uid), (0x10, "stx_gid", gid)):
                if mask & bit:
                    parts.append(f"{name}={v}")
        if mask & 3:
            parts.append(f"stx_mode={S.mode_text(mode, x)}")
        if o.verbose and mask & 0x100:
            parts.append(f"stx_ino={ino}")
        if mask & 0x200:
            parts.append(f"stx_size={size}")
        if not o.verbose:
            return "{" + ", ".join(parts) + ", ...}"
        if mask & 0x400:
            parts.append(f"stx_blocks={blocks}")
        parts.append(f"stx_attributes_mask={STATX_ATTRS.format(attrs_mask, x)}")
        for bit, name, sec, nsec in ((0x20, "stx_atime", at, atn), (0x800, "stx_btime", bt, btn),
                                     (0x80, "stx_ctime", ct, ctn), (0x40, "stx_mtime", mt, mtn)):
            if mask & bit:
                stamp = S._stamp(sec, nsec)
                parts.append(f"{name}={{tv_sec={sec}, tv_nsec={nsec}}} /*{stamp.split('/*', 1)[1]}")
        parts += [f"stx_rdev_major={rmaj}", f"stx_rdev_minor={rmin}", f"stx_dev_major={dmaj}",
                  f"stx_dev_minor={dmin}"]
        if mask & 0x1000:
            parts.append(f"stx_mnt_id={_hexval(mnt_id)}")
        if mask & 0x2000:
            parts += [f"stx_dio_mem_align={dio_mem}", f"stx_dio_offset_align={dio_off}"]
        return "{" + ", ".join(parts) + "}"
    return [(d.dirfd(0), ENTRY), (d.path(1), ENTRY), (flags_, ENTRY), (d.xl(3, STATX_MASK), ENTRY),
            (_indexed(4, buf), EXIT)]


# ---- sendfile ------------------------------------------------------------------------------------
def sendfile(d):  # type: ignore[no-untyped-def]
    def before(c: Call, m) -> None:  # type: ignore[no-untyped-def]
        raw = m.read(c.args[2], 8) if c.args[2] else None
        c.priv = s64(int.from_bytes(raw, "little")) if raw else None

    def offset(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        addr = c.args[2]
        if addr == 0:
            return "NULL"
        if c.priv is None:
            return S.ptr(addr)
        raw = m.read(addr, 8) if c.ret >= 0 else None
        after = s64(int.from_bytes(raw, "little")) if raw else None
        return f"[{c.priv}]" if after is None or after == c.priv else f"[{c.priv}] => [{after}]"
    offset.on_error = lambda c: f"[{c.priv}]" if c.priv is not None else S.ptr(c.args[2])  # type: ignore[attr-defined]
    return [(before, ENTRY), (d.fd(0), ENTRY), (d.fd(1), ENTRY), (offset, EXIT), (_dec(3), ENTRY)]


# ---- prctl ---------------------------------------------------------------------------------------
def prctl(d):  # type: ignore[no-untyped-def]
    o = d.opts
    x = o.xlat

    def rest_hex(c: Call, first: int) -> list[str]:
        return [_hexval(a) for a in c.args[first:5]]

    def entry(c: Call, m) -> str | None:  # type: ignore[no-untyped-def]
        op = c.args[0] & 0xFFFFFFFF
        a2 = c.args[1]
        if op in (7, 21, 30, 13, 31, 32, 3, 37, 19, 9, 11, 16, 2, 40, 25, 5):
            return None  # no argument, or printed at exit
        if op == 15:
            return format_cstring(m, a2, min(15, o.string_limit), o.hex_strings)
        if op in (36, 20, 10, 12, 8, 14):
            return str(a2)
        if op == 4:
            return _xval(PR_DUMPABLE, a2, x, "SUID_DUMP_???")
        if op in (23, 24):
            return CAP_ENUM.format(a2, x)
        if op == 1:
            return str(a2) if a2 > 128 else signal_text(a2, x)
        if op in (38, 41, 57):
            return ", ".join([str(a2), *rest_hex(c, 2)])
        if op == 29:
            return str(s64(a2))
        return ", ".join(rest_hex(c, 1)) or None

    def at_exit(c: Call, m) -> str | None:  # type: ignore[no-untyped-def]
        op = c.args[0] & 0xFFFFFFFF
        a2 = c.args[1]
        if op == 16:
            return format_cstring(m, a2, min(16, o.string_limit), o.hex_strings)
        if op in (37, 19, 9, 11):
            raw = m.read(a2, 4)
            return f"[{int.from_bytes(raw, 'little')}]" if raw else S.ptr(a2)
        if op == 2:
            raw = m.read(a2, 4)
            if raw is None:
                return S.ptr(a2)
            v = int.from_bytes(raw, "little")
            return f"[{signal_text(v, x)}]"
        if op == 40:
            raw = m.read(a2, 8)
            return f"[{S.ptr(int.from_bytes(raw, 'little'))}]" if raw else S.ptr(a2)
        return None
    at_exit.on_error = lambda c: S.ptr(c.args[1]) if (c.args[0] & 0xFFFFFFFF) in (16, 37, 19, 9, 11, 2, 40) \
        else None  # type: ignore[attr-defined]

    def ret(c: Call) -> str:
        if (c.args[0] & 0xFFFFFFFF) == 3 and c.ret in PR_DUMPABLE:  # an auxstr: shown even with -X raw
            return f"{c.ret} ({PR_DUMPABLE[c.ret]})"
        return str(c.ret)
    return [((lambda c, m: PR_NAMES.format(c.args[0] & 0xFFFFFFFF, x)), ENTRY), (entry, ENTRY),
            (at_exit, EXIT)], ret


# ---- futex ---------------------------------------------------------------------------------------
def futex(d):  # type: ignore[no-untyped-def]
    x = d.opts.xlat

    def op(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        v = c.args[1] & 0xFFFFFFFF
        if x == "raw":
            return _hexval(v)
        base = X.FUTEX_OPS.format(v & 0x7F, "abbrev")
        if v & X.FUTEX_PRIVATE:
            base += "_PRIVATE"
        if v & X.FUTEX_CLOCK_REALTIME:
            base += "|FUTEX_CLOCK_REALTIME"
        return f"{_hexval(v)} /* {base} */" if x == "verbose" else base

    def wake_op(v: int) -> str:
        o, cmp = (v >> 28) & 7, (v >> 24) & 0xF
        shift = "FUTEX_OP_OPARG_SHIFT|" if v >> 28 & 8 else ""
        name = FUTEX_OP_OPS[o] if o < len(FUTEX_OP_OPS) else None
        cname = FUTEX_OP_CMPS[cmp] if cmp < len(FUTEX_OP_CMPS) else None
        if x == "verbose" and name:
            name = f"{_hexval(o)} /* {name} */<<28"
        elif x != "abbrev" or name is None:
            name = f"{_hexval(o)}<<28 /* FUTEX_OP_??? */"
        else:
            name += "<<28"
        if x == "verbose" and cname:
            cname = f"{_hexval(cmp)} /* {cname} */<<24"
        elif x != "abbrev" or cname is None:
            cname = f"{_hexval(cmp)}<<24 /* FUTEX_OP_CMP_??? */"
        else:
            cname += "<<24"
        return f"{shift}{name}|{_hexval((v >> 12) & 0xFFF)}<<12|{cname}|{_hexval(v & 0xFFF)}"

    def bitset(v: int) -> str:
        v &= 0xFFFFFFFF
        if v != 0xFFFFFFFF or x == "raw":
            return _hexval(v)
        return f"{v:#x} /* FUTEX_BITSET_MATCH_ANY */" if x == "verbose" else "FUTEX_BITSET_MATCH_ANY"

    def tail(c: Call, m) -> str | None:  # type: ignore[no-untyped-def]
        cmd = c.args[1] & 0x7F
        val2 = c.args[3] & 0xFFFFFFFF
        if cmd in (0, 11):  # WAIT, WAIT_REQUEUE_PI: timeout (and the PI futex)
            t = S.timespec_text(m, c.args[3])
            return t if cmd == 0 else f"{t}, {S.ptr(c.args[4])}"
        if cmd == 9:  # WAIT_BITSET
            return f"{S.timespec_text(m, c.args[3])}, {bitset(c.args[5])}"
        if cmd == 10:  # WAKE_BITSET
            return bitset(c.args[5])
        if cmd in (3, 12):
            return f"{val2}, {S.ptr(c.args[4])}" + (f", {s32(c.args[5])}" if cmd == 12 else "")
        if cmd == 4:
            return f"{val2}, {S.ptr(c.args[4])}, {s32(c.args[5])}"
        if cmd == 5:
            return f"{val2}, {S.ptr(c.args[4])}, {wake_op(c.args[5] & 0xFFFFFFFF)}"
        if cmd in (6, 13):
            return S.timespec_text(m, c.args[3])
        return None

    def val(c: Call, m) -> str | None:  # type: ignore[no-untyped-def]
        cmd = c.args[1] & 0x7F
        return None if cmd in (6, 7, 8, 13) else str(s32(c.args[2]))
    return [(_hex(0), ENTRY), (op, ENTRY), (val, ENTRY), (tail, ENTRY)]


# ---- clone3 --------------------------------------------------------------------------------------
def clone3(d):  # type: ignore[no-untyped-def]
    x = d.opts.xlat

    def args(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        size = c.args[1]
        raw = m.read(c.args[0], min(size, 88)) if c.args[0] and size >= 64 else None
        if raw is None:
            return S.ptr(c.args[0])
        vals = struct.unpack_from(f"<{len(raw) // 8}Q", raw)
        f = dict(zip(CLONE3_FIELDS, vals, strict=False))
        parts = [f"flags={X.CLONE_FLAGS.format(f['flags'], x) if f['flags'] else '0'}"]
        if f["flags"] & 0x1000:
            parts.append(f"pidfd={S.ptr(f['pidfd'])}")
        if f["flags"] & 0x1200000:
            parts.append(f"child_tid={S.ptr(f['child_tid'])}")
        if f["flags"] & 0x100000:
            parts.append(f"parent_tid={S.ptr(f['parent_tid'])}")
        sig = f["exit_signal"]
        parts.append(f"exit_signal={signal_name(sig) if sig and x != 'raw' else sig}")
        parts.append(f"stack={S.ptr(f['stack'])}")
        parts.append(f"stack_size={_hexval(f['stack_size'])}")
        if f["flags"] & 0x80000:
            parts.append(f"tls={S.ptr(f['tls'])}")
        if f.get("set_tid_size"):
            parts.append(f"set_tid={S.ptr(f['set_tid'])}, set_tid_size={f['set_tid_size']}")
        if f.get("cgroup") and f["flags"] & 0x200000000:
            parts.append(f"cgroup={f['cgroup']}")
        return "{" + ", ".join(parts) + "}"
    return [(args, ENTRY), (_dec(1), ENTRY)]


# ---- sockets -------------------------------------------------------------------------------------
def socketpair(d):  # type: ignore[no-untyped-def]
    from unitrace.decode.overrides import socket

    fmts, _ = socket(d)

    def pair(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        raw = m.read(c.args[3], 8)
        if raw is None:
            return S.ptr(c.args[3])
        a, b = struct.unpack("<ii", raw)
        return f"[{d.fd_text(c.pid, a)}, {d.fd_text(c.pid, b)}]"
    return [*fmts, (_indexed(3, pair), EXIT)]


def _sockopt_name(d: StraceDecoder):  # type: ignore[no-untyped-def]
    x = d.opts.xlat

    def fmt(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        level, name = c.args[1] & 0xFFFFFFFF, c.args[2] & 0xFFFFFFFF
        table = _SOCKOPT_NAMES.get(level)
        return table.format(name, x) if table else str(name)
    return fmt


def _optval(d: StraceDecoder, c: Call, m, addr: int, length: int) -> str:  # type: ignore[no-untyped-def]
    if addr == 0:
        return "NULL"
    if length == 4:
        raw = m.read(addr, 4)
        return f"[{s32(int.from_bytes(raw, 'little'))}]" if raw else S.ptr(addr)
    return format_buffer(m, addr, length, d.opts)


def setsockopt(d):  # type: ignore[no-untyped-def]
    return [(d.fd(0), ENTRY), (d.xl(1, SOCKET_LEVELS), ENTRY), (_sockopt_name(d), ENTRY),
            ((lambda c, m: _optval(d, c, m, c.args[3], s32(c.args[4]))), ENTRY),
            ((lambda c, m: str(s32(c.args[4]))), ENTRY)]


def getsockopt(d):  # type: ignore[no-untyped-def]
    def keep(c: Call, m) -> None:  # type: ignore[no-untyped-def]
        raw = m.read(c.args[4], 4) if c.args[4] else None
        c.priv = s32(int.from_bytes(raw, "little")) if raw else None

    def val(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        raw = m.read(c.args[4], 4) if c.args[4] else None
        n = s32(int.from_bytes(raw, "little")) if raw else 0
        return _optval(d, c, m, c.args[3], n)

    def length(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        raw = m.read(c.args[4], 4) if c.args[4] else None
        if raw is None:
            return S.ptr(c.args[4])
        n = s32(int.from_bytes(raw, "little"))
        return f"[{n}]" if c.priv in (None, n) else f"[{c.priv} => {n}]"
    length.on_error = lambda c: f"[{c.priv}]" if c.priv is not None else S.ptr(c.args[4])  # type: ignore[attr-defined]
    return [(keep, ENTRY), (d.fd(0), ENTRY), (d.xl(1, SOCKET_LEVELS), ENTRY), (_sockopt_name(d), ENTRY),
            (_indexed(3, val), EXIT), (length, EXIT)]


def getsockname(d):  # type: ignore[no-untyped-def]
    """getsockname/getpeername/accept/accept4: the peer's address and `[in => out]` length at exit."""
    o = d.opts

    def keep(c: Call, m) -> None:  # type: ignore[no-untyped-def]
        raw = m.read(c.args[2], 4) if c.args[2] else None
        c.priv = s32(int.from_bytes(raw, "little")) if raw else None

    def addr(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        if c.args[1] == 0:
            return "NULL"
        raw = m.read(c.args[2], 4) if c.args[2] else None
        n = s32(int.from_bytes(raw, "little")) if raw else 0
        shown = min(n, c.priv) if c.priv is not None else n
        return S.sockaddr_text(m, c.args[1], shown, o)

    def length(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        if c.args[2] == 0:
            return "NULL"
        raw = m.read(c.args[2], 4)
        if raw is None:
            return S.ptr(c.args[2])
        n = s32(int.from_bytes(raw, "little"))
        return f"[{n}]" if c.priv in (None, n) else f"[{c.priv} => {n}]"
    length.on_error = lambda c: f"[{c.priv}]" if c.priv is not None else S.ptr(c.args[2])  # type: ignore[attr-defined]
    return [(keep, ENTRY), (d.fd(0), ENTRY), (_indexed(1, addr), EXIT), (length, EXIT)]


def accept4(d):  # type: ignore[no-untyped-def]
    return [*getsockname(d), (d.xl(3, X.SOCK_FLAGS), ENTRY)]


OVERRIDES_IO = {
    "poll": poll, "ppoll": ppoll, "epoll_wait": epoll_wait, "epoll_pwait": epoll_pwait, "epoll_ctl": epoll_ctl,
    "epoll_create1": epoll_create1, "select": select, "pselect6": pselect6, "statx": statx, "sendfile": sendfile,
    "prctl": prctl, "futex": futex, "clone3": clone3, "socketpair": socketpair, "setsockopt": setsockopt,
    "getsockopt": getsockopt, "getsockname": getsockname, "getpeername": getsockname, "accept": getsockname,
    "accept4": accept4,
}
