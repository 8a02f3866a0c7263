"""Irregular syscalls: argument formatters that the C types alone cannot choose.

Each entry maps a syscall name to a function of the decoder returning [(formatter, at_exit)] for
all printed arguments. Formatters are closures bound once per syscall number.
"""

from __future__ import annotations

import struct

from unitrace.decode import msghdr as M
from unitrace.decode import structs as S
from unitrace.decode import xlat_data as X
from unitrace.decode.signals import signal_name, signal_text
from unitrace.decode.strings import format_cstring
from unitrace.decode.syscall import ENTRY, EXIT, Call, StraceDecoder, _dec, _hex, _indexed, _octal, s32, s64


def _sig(d: StraceDecoder, i: int):  # type: ignore[no-untyped-def]
    return lambda c, m: signal_text(s32(c.args[i]), d.opts.xlat)


def _open_flags(d: StraceDecoder, i: int):  # type: ignore[no-untyped-def]
    xlat = d.opts.xlat

    def fmt(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        v = c.args[i] & 0xFFFFFFFF
        if xlat == "raw":
            return f"{v:#x}" if v else "0"
        acc = X.OPEN_ACCMODE.format(v & 3, "abbrev")
        rest = v & ~3
        text = acc if not rest else f"{acc}|{X.OPEN_FLAGS.format(rest, 'abbrev')}"
        return f"{v:#x} /* {text} */".replace("0x0 /*", "0 /*") if xlat == "verbose" else text
    return fmt


def _open_mode(i: int, flags_i: int):  # type: ignore[no-untyped-def]
    octal = _octal(i)

    def fmt(c: Call, m) -> str | None:  # type: ignore[no-untyped-def]
        # strace prints the mode only when the flags can create a file
        if c.args[flags_i] & X.O_CREAT or c.args[flags_i] & X.O_TMPFILE_BIT:
            return octal(c, m)
        return None
    return fmt


def openat(d):  # type: ignore[no-untyped-def]
    return [(d.dirfd(0), ENTRY), (d.path(1), ENTRY), (_open_flags(d, 2), ENTRY), (_open_mode(3, 2), ENTRY)]


def open_(d):  # type: ignore[no-untyped-def]
    return [(d.path(0), ENTRY), (_open_flags(d, 1), ENTRY), (_open_mode(2, 1), ENTRY)]


def read(d):  # type: ignore[no-untyped-def]
    return [(d.fd(0), ENTRY), (d.buf_out(1), EXIT), (_dec(2), ENTRY)]


def pread64(d):  # type: ignore[no-untyped-def]
    return [*read(d), ((lambda c, m: str(s64(c.args[3]))), ENTRY)]


def write(d):  # type: ignore[no-untyped-def]
    return [(d.fd(0), ENTRY), (d.buf_in(1, 2), ENTRY), (_dec(2), ENTRY)]


def pwrite64(d):  # type: ignore[no-untyped-def]
    return [*write(d), ((lambda c, m: str(s64(c.args[3]))), ENTRY)]


def _iov(d: StraceDecoder, i: int, n_i: int, out: bool):  # type: ignore[no-untyped-def]
    o = d.opts

    def fmt(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        addr, n = c.args[i], c.args[n_i]
        raw = m.read(addr, 16 * min(n, 1024)) if n else b""
        if raw is None:
            return S.ptr(addr)
        budget = c.ret if out else None
        items = []
        for k in range(min(n, 1024)):
            base, ln = struct.unpack_from("<QQ", raw, 16 * k)
            show = ln if budget is None else max(0, min(ln, budget))
            if budget is not None:
                budget -= show
            from unitrace.decode.strings import format_buffer
            items.append(f"{{iov_base={format_buffer(m, base, show, o)}, iov_len={ln}}}")
        return "[" + ", ".join(items) + "]"
    return _indexed(i, fmt)


def readv(d):  # type: ignore[no-untyped-def]
    return [(d.fd(0), ENTRY), (_iov(d, 1, 2, True), EXIT), (_dec(2), ENTRY)]


def writev(d):  # type: ignore[no-untyped-def]
    return [(d.fd(0), ENTRY), (_iov(d, 1, 2, False), ENTRY), (_dec(2), ENTRY)]


def mmap(d):  # type: ignore[no-untyped-def]
    xlat = d.opts.xlat

    def flags(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        v = c.args[3] & 0xFFFFFFFF
        if xlat == "raw":
            return f"{v:#x}"
        t = X.MAP_TYPE.format(v & 0xF, "abbrev")
        rest = v & ~0xF
        text = t if not rest else f"{t}|{X.MAP_FLAGS.format(rest, 'abbrev')}"
        return f"{v:#x} /* {text} */" if xlat == "verbose" else text
    return [(_hex(0), ENTRY), (_dec(1), ENTRY), (d.xl(2, X.PROT), ENTRY), (flags, ENTRY),
            (d.fd(4), ENTRY), ((lambda c, m: S.ptr(c.args[5]) if c.args[5] else "0"), ENTRY)]


def mprotect(d):  # type: ignore[no-untyped-def]
    return [(_hex(0), ENTRY), (_dec(1), ENTRY), (d.xl(2, X.PROT), ENTRY)]


def madvise(d):  # type: ignore[no-untyped-def]
    return [(_hex(0), ENTRY), (_dec(1), ENTRY), (d.xl(2, X.MADVISE), ENTRY)]


def access(d):  # type: ignore[no-untyped-def]
    return [(d.path(0), ENTRY), (d.xl(1, X.ACCESS_MODES), ENTRY)]


def faccessat(d):  # type: ignore[no-untyped-def]
    return [(d.dirfd(0), ENTRY), (d.path(1), ENTRY), (d.xl(2, X.ACCESS_MODES), ENTRY)]


def faccessat2(d):  # type: ignore[no-untyped-def]
    return [*faccessat(d), (d.xl(3, X.FACCESSAT_FLAGS), ENTRY)]


def newfstatat(d):  # type: ignore[no-untyped-def]
    o = d.opts
    return [(d.dirfd(0), ENTRY), (d.path(1), ENTRY),
            (_indexed(2, lambda c, m: S.stat_text(m, c.args[2], o)), EXIT), (d.xl(3, X.AT_FLAGS), ENTRY)]


def arch_prctl(d):  # type: ignore[no-untyped-def]
    return [(d.xl(0, X.ARCH_PRCTL), ENTRY), (_hex(1), ENTRY)]


def prlimit64(d):  # type: ignore[no-untyped-def]
    return [((lambda c, m: str(s32(c.args[0]))), ENTRY), (d.xl(1, X.RLIMITS), ENTRY),
            ((lambda c, m: S.rlimit_text(m, c.args[2], d.opts.xlat)), ENTRY),
            (_indexed(3, lambda c, m: S.rlimit_text(m, c.args[3], d.opts.xlat)), EXIT)]


def getrlimit(d):  # type: ignore[no-untyped-def]
    return [(d.xl(0, X.RLIMITS), ENTRY),
            (_indexed(1, lambda c, m: S.rlimit_text(m, c.args[1], d.opts.xlat)), EXIT)]


def rt_sigaction(d):  # type: ignore[no-untyped-def]
    x = d.opts.xlat
    return [(_sig(d, 0), ENTRY),
            ((lambda c, m: S.sigaction_text(m, c.args[1], x)), ENTRY),
            (_indexed(2, lambda c, m: S.sigaction_text(m, c.args[2], x)), EXIT), (_dec(3), ENTRY)]


def rt_sigprocmask(d):  # type: ignore[no-untyped-def]
    x = d.opts.xlat
    return [(d.xl(0, X.SIGPROCMASK_HOW), ENTRY),
            ((lambda c, m: S.sigset_text(m, c.args[1], c.args[3], x)), ENTRY),
            (_indexed(2, lambda c, m: S.sigset_text(m, c.args[2], c.args[3], x)), EXIT), (_dec(3), ENTRY)]


def rt_sigreturn(d):  # type: ignore[no-untyped-def]
    x = d.opts.xlat
    return [((lambda c, m: S.rt_sigreturn_text(m, c.sp, x)), ENTRY)]


def kill(d):  # type: ignore[no-untyped-def]
    return [((lambda c, m: str(s32(c.args[0]))), ENTRY), (_sig(d, 1), ENTRY)]


def tgkill(d):  # type: ignore[no-untyped-def]
    return [(_dec(0), ENTRY), (_dec(1), ENTRY), (_sig(d, 2), ENTRY)]


def _argv(d: StraceDecoder, i: int, is_env: bool):  # type: ignore[no-untyped-def]
    o = d.opts

    def fmt(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        addr = c.args[i]
        if addr == 0:
            return "NULL"
        ptrs = []
        while len(ptrs) < 4096:
            raw = m.read(addr + 8 * len(ptrs), 8)
            if raw is None:
                return S.ptr(addr)
            p = int.from_bytes(raw, "little")
            if p == 0:
                break
            ptrs.append(p)
        if is_env and not o.verbose:
            return f"{addr:#x} /* {len(ptrs)} var{'s' if len(ptrs) != 1 else ''} */"
        shown = ptrs if o.verbose or o.string_limit >= len(ptrs) else ptrs[: max(o.string_limit, 0)]
        items = [format_cstring(m, p, o.string_limit, o.hex_strings) for p in shown]
        text = "[" + ", ".join(items)
        if len(shown) < len(ptrs):
            text += ", ..."
        return text + "]"
    return fmt


def execve(d):  # type: ignore[no-untyped-def]
    return [(d.path(0), ENTRY), (_argv(d, 1, False), ENTRY), (_argv(d, 2, True), ENTRY)]


def execveat(d):  # type: ignore[no-untyped-def]
    return [(d.dirfd(0), ENTRY), (d.path(1), ENTRY), (_argv(d, 2, False), ENTRY), (_argv(d, 3, True), ENTRY),
            (d.xl(4, X.AT_FLAGS), ENTRY)]


def clone(d):  # type: ignore[no-untyped-def]
    x = d.opts.xlat

    def stack(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        return f"child_stack={S.ptr(c.args[1])}"

    def flags(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        v = c.args[0]
        sig = v & 0xFF
        names = X.CLONE_FLAGS.format(v & ~0xFF, x) if v & ~0xFF else ""
        parts = [p for p in (names, signal_name(sig) if sig else "") if p]
        return "flags=" + ("|".join(parts) if parts else "0")

    def tids(c: Call, m) -> str | None:  # type: ignore[no-untyped-def]
        v, out = c.args[0], []
        if v & 0x100000:
            out.append(f"parent_tid={S.ptr(c.args[2])}")
        if v & 0x1200000:
            out.append(f"child_tidptr={S.ptr(c.args[3])}")
        if v & 0x80000:
            out.append(f"tls={S.ptr(c.args[4])}")
        return ", ".join(out) if out else None
    return [(stack, ENTRY), (flags, ENTRY), (tids, ENTRY)]


def wait4(d):  # type: ignore[no-untyped-def]
    def status(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        addr = c.args[1]
        if addr == 0:
            return "NULL"
        raw = m.read(addr, 4)
        if raw is None:
            return S.ptr(addr)
        st = int.from_bytes(raw, "little")
        if st & 0x7F == 0:
            return f"[{{WIFEXITED(s) && WEXITSTATUS(s) == {(st >> 8) & 0xFF}}}]"
        if st & 0xFF == 0x7F:
            return f"[{{WIFSTOPPED(s) && WSTOPSIG(s) == {signal_name((st >> 8) & 0xFF)}}}]"
        core = " && WCOREDUMP(s)" if st & 0x80 else ""
        return f"[{{WIFSIGNALED(s) && WTERMSIG(s) == {signal_name(st & 0x7F)}{core}}}]"
    return [((lambda c, m: str(s32(c.args[0]))), ENTRY), (_indexed(1, status), EXIT),
            (d.xl(2, X.WAIT_OPTIONS), ENTRY), (_hex(3), ENTRY)]


def _fd_pair(d: StraceDecoder):  # type: ignore[no-untyped-def]
    def fmt(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        raw = m.read(c.args[0], 8)
        if raw is None:
            return S.ptr(c.args[0])
        texts = []
        for fd in struct.unpack("<ii", raw):
            desc = d.fds.describe(c.pid, fd, d.opts.decode_fds) if d.fds and d.opts.decode_fds else None
            texts.append(f"{fd}<{desc}>" if desc else str(fd))
        return f"[{texts[0]}, {texts[1]}]"
    return _indexed(0, fmt)


def pipe2(d):  # type: ignore[no-untyped-def]
    return [(_fd_pair(d), EXIT), (d.xl(1, X.PIPE_FLAGS), ENTRY)]


def pipe(d):  # type: ignore[no-untyped-def]
    return [(_fd_pair(d), EXIT)]


def fcntl(d):  # type: ignore[no-untyped-def]
    x = d.opts.xlat

    def arg(c: Call, m) -> str | None:  # type: ignore[no-untyped-def]
        cmd = c.args[1] & 0xFFFFFFFF
        v = c.args[2]
        if cmd in (1, 3, 9, 11, 1025, 1032, 1034):  # getters take no argument
            return None
        if cmd == 2:
            return X.FD_FLAGS.format(v & 0xFFFFFFFF, x)
        if cmd == 4:
            return _open_flags(d, 2)(c, m)
        return str(s32(v))
    def ret(c: Call) -> str:
        cmd, v = c.args[1] & 0xFFFFFFFF, c.ret
        if d.opts.xlat == "raw" and cmd in (1, 3):
            return f"{v:#x} (flags {v:#x})" if v else "0"
        if cmd == 1 and v:  # F_GETFD
            return f"{v:#x} (flags {X.FD_FLAGS.format(v, 'abbrev')})"
        if cmd == 3:  # F_GETFL
            acc = X.OPEN_ACCMODE.format(v & 3, "abbrev")
            rest = v & ~3
            return f"{v:#x} (flags {acc}{'|' + X.OPEN_FLAGS.format(rest, 'abbrev') if rest else ''})"
        if cmd in (0, 1030) and d.fds is not None and d.opts.decode_fds:
            return d._ret_fd(c)
        return str(v)
    return [(d.fd(0), ENTRY), (d.xl(1, X.FCNTL_CMDS), ENTRY), (arg, ENTRY)], ret


def lseek(d):  # type: ignore[no-untyped-def]
    return [(d.fd(0), ENTRY), ((lambda c, m: str(s64(c.args[1]))), ENTRY), (d.xl(2, X.SEEK_WHENCE), ENTRY)]


def futex(d):  # type: ignore[no-untyped-def]
    x = d.opts.xlat

    def op(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        v = c.args[1] & 0xFFFFFFFF
        if x == "raw":
            return f"{v:#x}"
        base = X.FUTEX_OPS.format(v & 0x7F, "abbrev")
        if v & X.FUTEX_PRIVATE:
            base += "_PRIVATE"
        if v & X.FUTEX_CLOCK_REALTIME:
            base = "FUTEX_CLOCK_REALTIME|" + base
        return base

    def tail(c: Call, m) -> str | None:  # type: ignore[no-untyped-def]
        cmd = c.args[1] & 0x7F
        if cmd in (0, 9):  # WAIT, WAIT_BITSET: timeout
            t = S.timespec_text(m, c.args[3])
            if cmd == 9:
                return f"{t}, {S.ptr(c.args[4])}, {c.args[5] & 0xFFFFFFFF:#x}"
            return t
        if cmd in (3, 4):
            extra = f", {s32(c.args[5])}" if cmd == 4 else ""
            return f"{c.args[3] & 0xFFFFFFFF}, {S.ptr(c.args[4])}{extra}"
        return None
    return [(_hex(0), ENTRY), (op, ENTRY), ((lambda c, m: str(s32(c.args[2]))), ENTRY), (tail, ENTRY)]


def getrandom(d):  # type: ignore[no-untyped-def]
    return [(d.buf_out(0, force_hex=True), EXIT), (_dec(1), ENTRY), (d.xl(2, X.GRND_FLAGS), ENTRY)]


def rseq(d):  # type: ignore[no-untyped-def]
    return [(_hex(0), ENTRY), ((lambda c, m: f"{c.args[1] & 0xFFFFFFFF:#x}"), ENTRY),
            (_dec(2), ENTRY), ((lambda c, m: f"{c.args[3] & 0xFFFFFFFF:#x}"), ENTRY)]


def readlink(d):  # type: ignore[no-untyped-def]
    return [(d.path(0), ENTRY), (d.buf_out(1), EXIT), (_dec(2), ENTRY)]


def readlinkat(d):  # type: ignore[no-untyped-def]
    return [(d.dirfd(0), ENTRY), (d.path(1), ENTRY), (d.buf_out(2), EXIT), (_dec(3), ENTRY)]


def getcwd(d):  # type: ignore[no-untyped-def]
    o = d.opts
    return [(_indexed(0, lambda c, m: format_cstring(m, c.args[0], 4096, o.hex_strings)), EXIT),
            (_dec(1), ENTRY)]


def uname(d):  # type: ignore[no-untyped-def]
    o = d.opts
    return [(_indexed(0, lambda c, m: S.utsname_text(m, c.args[0], o)), EXIT)]


def getdents64(d):  # type: ignore[no-untyped-def]
    def dirents(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        addr, n = c.args[1], c.ret
        raw = m.read(addr, n) if n > 0 else b""
        if raw is None:
            return S.ptr(addr)
        count, off = 0, 0
        while off + 19 <= len(raw):
            reclen = int.from_bytes(raw[off + 16:off + 18], "little")
            if reclen == 0:
                break
            count += 1
            off += reclen
        return f"{addr:#x} /* {count} entries */"
    return [(d.fd(0), ENTRY), (_indexed(1, dirents), EXIT), (_dec(2), ENTRY)]


def socket(d):  # type: ignore[no-untyped-def]
    x = d.opts.xlat

    def typ(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        v = c.args[1] & 0xFFFFFFFF
        t = X.SOCK_TYPES.format(v & 0xF, x)
        return t if not v & ~0xF else f"{t}|{X.SOCK_FLAGS.format(v & ~0xF, x)}"

    def proto(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        fam, p = c.args[0] & 0xFFFF, c.args[2] & 0xFFFFFFFF
        if fam == 16:
            return X.NETLINK_PROTOS.format(p, x)
        if fam in (2, 10):
            return X.IPPROTO.format(p, x)
        return str(p)
    plain_ret = d._ret_fd if d.opts.decode_fds else d._ret_default

    def ret(c: Call) -> str:
        if c.args[0] & 0xFFFF == 16 and c.ret >= 0:
            d.sockets.note_netlink_socket(c.pid, c.ret, c.args[2] & 0xFFFFFFFF)
        return plain_ret(c)
    return [(d.xl(0, X.ADDRESS_FAMILIES), ENTRY), (typ, ENTRY), (proto, ENTRY)], ret


def _sockaddr_in(d: StraceDecoder, i: int, len_i: int):  # type: ignore[no-untyped-def]
    o = d.opts
    return lambda c, m: S.sockaddr_text(m, c.args[i], c.args[len_i] & 0xFFFFFFFF, o)


def connect(d):  # type: ignore[no-untyped-def]
    return [(d.fd(0), ENTRY), (_sockaddr_in(d, 1, 2), ENTRY), (_dec(2), ENTRY)]


def sendto(d):  # type: ignore[no-untyped-def]
    def data(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        return M.socket_data(d, c, m, c.args[1], c.args[2])
    return [(d.fd(0), ENTRY), (data, ENTRY), (_dec(2), ENTRY), (d.xl(3, X.MSG_FLAGS), ENTRY),
            (_sockaddr_in(d, 4, 5), ENTRY), (_dec(5), ENTRY)]


def sendmsg(d):  # type: ignore[no-untyped-def]
    return [(d.fd(0), ENTRY), ((lambda c, m: M.msghdr_text(d, c, m, c.args[1], None)), ENTRY),
            (d.xl(2, X.MSG_FLAGS), ENTRY)]


def recvmsg(d):  # type: ignore[no-untyped-def]
    def keep_namelen(c: Call, m) -> None:  # type: ignore[no-untyped-def]
        raw = m.read(c.args[1] + 8, 4) if c.args[1] else None
        c.priv = s32(int.from_bytes(raw, "little")) if raw else None

    def msg(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        return M.msghdr_text(d, c, m, c.args[1], c.ret, c.priv)  # type: ignore[arg-type]

    def failed(c: Call) -> str:
        return f"{{msg_namelen={c.priv}}}" if c.priv is not None else S.ptr(c.args[1])
    msg.on_error = failed  # type: ignore[attr-defined]
    return [(keep_namelen, ENTRY), (d.fd(0), ENTRY), (msg, EXIT), (d.xl(2, X.MSG_FLAGS), ENTRY)]


def recvfrom(d):  # type: ignore[no-untyped-def]
    o = d.opts

    def addr(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        if c.args[4] == 0:
            return "NULL"
        raw = m.read(c.args[5], 4) if c.args[5] else None
        ln = int.from_bytes(raw, "little") if raw else 0
        return S.sockaddr_text(m, c.args[4], ln, o)

    def addrlen(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        if c.args[5] == 0:
            return "NULL"
        raw = m.read(c.args[5], 4)
        return f"[{int.from_bytes(raw, 'little')}]" if raw else S.ptr(c.args[5])
    def data(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        return M.socket_data(d, c, m, c.args[1], min(c.ret, c.args[2]))
    return [(d.fd(0), ENTRY), (_indexed(1, data), EXIT), (_dec(2), ENTRY), (d.xl(3, X.MSG_FLAGS), ENTRY),
            (_indexed(4, addr), EXIT), (_indexed(5, addrlen), EXIT)]


def mkdir(d):  # type: ignore[no-untyped-def]
    return [(d.path(0), ENTRY), (_octal(1), ENTRY)]


def mkdirat(d):  # type: ignore[no-untyped-def]
    return [(d.dirfd(0), ENTRY), (d.path(1), ENTRY), (_octal(2), ENTRY)]


def unlinkat(d):  # type: ignore[no-untyped-def]
    return [(d.dirfd(0), ENTRY), (d.path(1), ENTRY), (d.xl(2, X.AT_FLAGS), ENTRY)]


def clock_gettime(d):  # type: ignore[no-untyped-def]
    return [(d.xl(0, X.CLOCKS), ENTRY), (_indexed(1, lambda c, m: S.timespec_text(m, c.args[1])), EXIT)]


def clock_nanosleep(d):  # type: ignore[no-untyped-def]
    return [(d.xl(0, X.CLOCKS), ENTRY), (d.xl(1, X.TIMER_FLAGS), ENTRY),
            ((lambda c, m: S.timespec_text(m, c.args[2])), ENTRY),
            (_indexed(3, lambda c, m: S.timespec_text(m, c.args[3])), EXIT)]


def prctl(d):  # type: ignore[no-untyped-def]
    def rest(c: Call, m) -> str | None:  # type: ignore[no-untyped-def]
        op = c.args[0] & 0xFFFFFFFF
        if op in (15,):  # PR_SET_NAME
            return format_cstring(m, c.args[1], 16, d.opts.hex_strings)
        if op in (3, 16, 39, 42, 21, 37, 7):
            return None
        return ", ".join(S.ptr(a) if a > 0xFFFF else str(a) for a in c.args[1:5])
    return [(d.xl(0, X.PR_OPTIONS), ENTRY), (rest, ENTRY)]


def epoll_ctl(d):  # type: ignore[no-untyped-def]
    x = d.opts.xlat

    def ev(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        raw = m.read(c.args[3], 12) if c.args[3] else None
        if raw is None:
            return S.ptr(c.args[3])
        events, data = struct.unpack("<IQ", raw)
        return (f"{{events={X.EPOLL_EVENTS.format(events, x)}, data={{u32={data & 0xFFFFFFFF}, "
                f"u64={data}}}}}")
    return [(d.fd(0), ENTRY), (d.xl(1, X.EPOLL_CTL), ENTRY), (d.fd(2), ENTRY), (ev, ENTRY)]


def dup2(d):  # type: ignore[no-untyped-def]
    return [(d.fd(0), ENTRY), (d.fd(1), ENTRY)]


def ioctl(d):  # type: ignore[no-untyped-def]
    """Request names for common requests; the argument as a pointer (struct decoding not done yet)."""
    x = d.opts.xlat

    def cmd(c: Call, m) -> str:  # type: ignore[no-untyped-def]
        v = c.args[1] & 0xFFFFFFFF
        name = X.IOCTL_CMDS.names.get(v)
        if name is None or x == "raw":
            return f"{v:#x}"
        return f"{v:#x} /* {name} */" if x == "verbose" else name
    return [(d.fd(0), ENTRY), (cmd, ENTRY), (_hex(2), ENTRY)]


def exit_group(d):  # type: ignore[no-untyped-def]
    return [((lambda c, m: str(s32(c.args[0]))), ENTRY)]


OVERRIDES = {
    "open": open_, "openat": openat, "read": read, "pread64": pread64, "write": write, "pwrite64": pwrite64,
    "readv": readv, "writev": writev, "mmap": mmap, "mprotect": mprotect, "madvise": madvise,
    "access": access, "faccessat": faccessat, "faccessat2": faccessat2, "newfstatat": newfstatat,
    "arch_prctl": arch_prctl, "prlimit64": prlimit64, "getrlimit": getrlimit, "setrlimit": getrlimit,
    "rt_sigaction": rt_sigaction, "rt_sigprocmask": rt_sigprocmask, "rt_sigreturn": rt_sigreturn, "kill": kill, "tkill": kill,
    "tgkill": tgkill, "execve": execve, "execveat": execveat, "clone": clone, "wait4": wait4,
    "pipe2": pipe2, "pipe": pipe, "fcntl": fcntl, "lseek": lseek, "futex": futex, "getrandom": getrandom,
    "rseq": rseq, "readlink": readlink, "readlinkat": readlinkat, "getcwd": getcwd, "uname": uname,
    "getdents64": getdents64, "socket": socket, "connect": connect, "bind": connect, "sendto": sendto,
    "recvfrom": recvfrom, "sendmsg": sendmsg, "recvmsg": recvmsg, "mkdir": mkdir, "mkdirat": mkdirat, "unlinkat": unlinkat,
    "clock_gettime": clock_gettime, "clock_getres": clock_gettime, "clock_nanosleep": clock_nanosleep,
    "prctl": prctl, "epoll_ctl": epoll_ctl, "dup2": dup2, "exit_group": exit_group, "ioctl": ioctl, "exit": exit_group,
}

from unitrace.decode.overrides_io import OVERRIDES_IO  # noqa: E402 (it reuses socket() from here)

OVERRIDES.update(OVERRIDES_IO)
