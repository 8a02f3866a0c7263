"""StraceDecoder: raw syscall numbers and registers in, strace 6.1 texts out.

Every syscall gets a spec, built once per number on first use: one formatter per argument, chosen by
the argument's C type and name from the generated table, replaced for irregular calls by the
overrides below. A formatter runs either at entry (in-arguments) or at exit (out-arguments).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from unitrace.decode import structs as S
from unitrace.decode import xlat_data as X
from unitrace.decode.api import FdDescriber, FormatOptions, Memory, SyscallInfo
from unitrace.decode.errnos import errno_text
from unitrace.decode.strings import format_buffer, format_path
from unitrace.decode.table import get_table

# A formatter gets the call and the tracee memory and returns the text (None: omit the argument).
Fmt = Callable[["Call", Memory], "str | None"]
ENTRY, EXIT = False, True

_PATH_NAMES = frozenset({"filename", "pathname", "path", "oldname", "newname", "specialfilename",
                         "library", "name", "oldpath", "newpath", "dir_name", "special", "dev_name",
                         "old_name", "new_name", "target", "uservar"})
_FD_NAMES = frozenset({"fd", "oldfd", "newfd", "epfd", "fd_in", "fd_out", "out_fd", "in_fd", "pidfd",
                       "fdin", "fdout", "ufd", "mqdes", "fildes"})
_DFD_NAMES = frozenset({"dfd", "olddfd", "newdfd", "dirfd", "from_dfd", "to_dfd"})
_ADDR_NAMES = frozenset({"addr", "start", "brk", "new_addr", "old_addr", "shmaddr", "tidptr", "head",
                         "rseq", "arg2"})
_RESTART = {512, 513, 514, 516}  # ERESTARTSYS & co: strace prints "= ? ERESTARTSYS (...)"
_HEX_RETURNS = frozenset({"mmap", "brk", "mremap", "shmat", "arch_prctl_get"})
_FD_RETURNS = frozenset({"open", "openat", "openat2", "creat", "socket", "accept", "accept4", "dup", "dup2",
                         "dup3", "epoll_create", "epoll_create1", "eventfd", "eventfd2", "signalfd",
                         "signalfd4", "timerfd_create", "inotify_init", "inotify_init1", "memfd_create",
                         "pidfd_open", "pidfd_getfd", "perf_event_open", "fanotify_init", "userfaultfd",
                         "io_uring_setup", "open_by_handle_at", "fsopen", "fsmount", "open_tree"})
_NO_RETURN = frozenset({"exit", "exit_group"})


class Call:
    """One syscall in flight (decode.api.DecodedCall)."""

    __slots__ = ("args", "entry", "info", "mem_ok", "pid", "priv", "ret", "sp", "spec")

    def __init__(self, info: SyscallInfo | None, spec: Spec, pid: int, args: tuple[int, ...],
                 sp: int = 0) -> None:
        self.info = info
        self.spec = spec
        self.pid = pid
        self.args = args
        self.sp = sp  # the user stack pointer at entry (0: not known), for rt_sigreturn's signal frame
        self.ret = 0
        self.entry: list[str | None] = []
        self.priv: object = None  # what an entry formatter keeps for the exit (recvmsg's msg_namelen)

    def entry_args(self) -> tuple[str, ...]:
        out = []
        for (_, at_exit), text in zip(self.spec.fmts, self.entry, strict=False):
            if at_exit:
                break
            if text is not None:
                out.append(text)
        return tuple(out)


class Spec:
    __slots__ = ("fmts", "has_exit", "name", "ret")

    def __init__(self, name: str, fmts: list[tuple[Fmt, bool]], ret: Callable[[Call], str]) -> None:
        self.name = name
        self.fmts = tuple(fmts)
        self.has_exit = any(e for _, e in fmts)
        self.ret = ret


def s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def s64(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v & (1 << 63) else v


class StraceDecoder:
    def __init__(self, options: FormatOptions, arch: str = "x86_64", fds: FdDescriber | None = None) -> None:
        self.opts = options
        self.table = get_table(arch)
        self.fds = fds
        if fds is None and options.decode_fds:
            from unitrace.decode.fds import ProcFdDescriber
            self.fds = ProcFdDescriber()
        self._specs: dict[int, Spec] = {}
        self._raw_spec = Spec("", [], self._ret_default)
        self._sockets = None  # a ProcFdDescriber for netlink detection, made on first socket I/O
        self._netlink = None

    # ---- shared helpers for formatters ---------------------------------------------------------
    @property
    def sockets(self):  # type: ignore[no-untyped-def]
        """The procfs socket lookup (the -y describer when it is one, else a private one)."""
        if self._sockets is None:
            from unitrace.decode.fds import ProcFdDescriber
            self._sockets = self.fds if isinstance(self.fds, ProcFdDescriber) else ProcFdDescriber()
        return self._sockets

    def netlink_protocol(self, pid: int, fd: int) -> int | None:
        """The NETLINK_* protocol when fd is a netlink socket, else None."""
        return self.sockets.netlink_protocol(pid, fd) if fd >= 0 else None

    @property
    def netlink(self):  # type: ignore[no-untyped-def]
        if self._netlink is None:
            from unitrace.decode.netlink import NetlinkFormatter
            self._netlink = NetlinkFormatter(self.opts)
        return self._netlink

    def fd_text(self, pid: int, fd: int) -> str:
        """A descriptor number with its -y/-yy description."""
        if self.fds is None or not self.opts.decode_fds or fd < 0:
            return str(fd)
        desc = self.fds.describe(pid, fd, self.opts.decode_fds)
        return f"{fd}<{desc}>" if desc else str(fd)

    def prepare(self, nrs: Iterable[int]) -> None:
        """Build the decoding specs of these syscalls now, before the tracee runs: built lazily, the first
        call of each would pay for it inside its own entry-to-exit time (strace's -T would show it)."""
        if not self.opts.decode:
            return
        for nr in nrs:
            if nr not in self._specs:
                self._specs[nr] = self._build(nr, self.table.by_nr.get(nr))

    # ---- protocol -----------------------------------------------------------------------------
    def enter(self, pid: int, nr: int, args: tuple[int, ...], mem: Memory, sp: int = 0) -> Call:
        """`sp`: the tracee's stack pointer at entry, where a backend knows it (0 otherwise); decoders that
        read the stack (rt_sigreturn's signal frame) print nothing without it."""
        info = self.table.by_nr.get(nr)
        if not self.opts.decode:
            return Call(info, self._raw_spec, pid, args)
        spec = self._specs.get(nr)
        if spec is None:
            spec = self._specs[nr] = self._build(nr, info)
        call = Call(info, spec, pid, args, sp)
        call.entry = [None if at_exit else fmt(call, mem) for fmt, at_exit in spec.fmts]
        return call

    def exit(self, call: Call, ret: int, mem: Memory) -> tuple[tuple[str, ...], str, int]:
        ret = s64(ret)
        call.ret = ret
        err = -ret if -4096 < ret < 0 else 0
        spec = call.spec
        if not self.opts.decode:
            return (), str(ret), err
        if spec.has_exit:
            texts = []
            for (fmt, at_exit), text in zip(spec.fmts, call.entry, strict=True):
                if at_exit:
                    text = fmt(call, mem) if not err else self._failed_out(call, fmt)
                if text is not None:
                    texts.append(text)
            args = tuple(texts)
        else:
            args = tuple(t for t in call.entry if t is not None)
        if err:
            return args, self._ret_error(err), err
        return args, spec.ret(call), 0

    # ---- returns ------------------------------------------------------------------------------
    @staticmethod
    def _ret_error(err: int) -> str:
        if err in _RESTART:
            return f"? {errno_text(err)}"
        return f"-1 {errno_text(err)}"

    @staticmethod
    def _ret_default(call: Call) -> str:
        return str(call.ret)

    def _ret_fd(self, call: Call) -> str:
        if self.fds is None or call.ret < 0:
            return str(call.ret)
        desc = self.fds.describe(call.pid, call.ret, self.opts.decode_fds)
        return f"{call.ret}<{desc}>" if desc else str(call.ret)

    @staticmethod
    def _failed_out(call: Call, fmt: Fmt) -> str | None:
        """Out-arguments of a failed call are printed as the bare pointer, as strace does."""
        on_error = getattr(fmt, "on_error", None)
        if on_error is not None:
            return on_error(call)
        idx = getattr(fmt, "arg_index", None)
        if idx is None:
            return None
        return S.ptr(call.args[idx])

    # ---- spec building ------------------------------------------------------------------------
    def _build(self, nr: int, info: SyscallInfo | None) -> Spec:
        if info is None:
            fmts = [(_hex(i), ENTRY) for i in range(6)]
            return Spec(f"syscall_{nr:#x}", fmts, self._ret_default)
        from unitrace.decode.overrides import OVERRIDES

        override = OVERRIDES.get(info.name)
        fmts = override(self) if override else [self._by_type(i, p.name, p.ctype) for i, p in
                                                 enumerate(info.params)]
        custom_ret = None
        if isinstance(fmts, tuple):  # an override that also formats the return value
            fmts, custom_ret = fmts
        if custom_ret is not None:
            ret = custom_ret
        elif info.name in _HEX_RETURNS:
            ret = _ret_hex
        elif info.name in _FD_RETURNS and self.opts.decode_fds:
            ret = self._ret_fd
        elif info.name in _NO_RETURN:
            ret = _ret_unknown
        else:
            ret = self._ret_default
        return Spec(info.name, fmts, ret)

    def _by_type(self, i: int, name: str, ctype: str) -> tuple[Fmt, bool]:
        o = self.opts
        is_ptr = "*" in ctype
        if is_ptr and "char" in ctype and name in _PATH_NAMES and "*const" not in ctype.replace(" ", ""):
            return _indexed(i, lambda c, m: format_path(m, c.args[i], o)), ENTRY
        if not is_ptr and name in _DFD_NAMES:
            return self.dirfd(i), ENTRY
        if not is_ptr and name in _FD_NAMES:
            return self.fd(i), ENTRY
        if name == "mode" and ctype == "umode_t":
            return _octal(i), ENTRY
        if is_ptr:
            if "struct stat " in ctype and "const" not in ctype:
                return _indexed(i, lambda c, m: S.stat_text(m, c.args[i], o)), EXIT
            if "struct __kernel_timespec" in ctype or "struct timespec" in ctype:
                if "const" in ctype:
                    return _indexed(i, lambda c, m: S.timespec_text(m, c.args[i])), ENTRY
                return _indexed(i, lambda c, m: S.timespec_text(m, c.args[i])), EXIT
            return _hex(i), ENTRY
        if name in _ADDR_NAMES and "long" in ctype:
            return _hex(i), ENTRY
        if ctype in ("int", "pid_t", "key_serial_t", "clockid_t", "timer_t", "mqd_t", "qid_t") or \
                ctype.startswith("int"):
            return (lambda c, m: str(s32(c.args[i]))), ENTRY
        if ctype in ("long", "loff_t", "off_t", "__kernel_off_t", "ssize_t"):
            return (lambda c, m: str(s64(c.args[i]))), ENTRY
        if ctype in ("unsigned int", "u32", "uid_t", "gid_t", "old_uid_t", "old_gid_t", "unsigned", "__u32",
                     "umode_t", "key_t", "rwf_t"):
            return (lambda c, m: str(c.args[i] & 0xFFFFFFFF)), ENTRY
        return (lambda c, m: str(c.args[i])), ENTRY

    # formatter factories shared by overrides
    def fd(self, i: int) -> Fmt:
        fds, detail = self.fds, self.opts.decode_fds
        if fds is None or not detail:
            return lambda c, m: str(s32(c.args[i]))

        def fmt(c: Call, m: Memory) -> str:
            v = s32(c.args[i])
            desc = fds.describe(c.pid, v, detail) if v >= 0 else None
            return f"{v}<{desc}>" if desc else str(v)
        return fmt

    def dirfd(self, i: int) -> Fmt:
        plain = self.fd(i)
        raw = self.opts.xlat == "raw"
        verbose = self.opts.xlat == "verbose"

        fds, detail = self.fds, self.opts.decode_fds

        def fmt(c: Call, m: Memory) -> str:
            if s32(c.args[i]) == X.AT_FDCWD:
                text = "-100" if raw else "-100 /* AT_FDCWD */" if verbose else "AT_FDCWD"
                if fds is not None and detail:
                    try:
                        import os
                        text += f"<{os.readlink(f'/proc/{c.pid}/cwd')}>"
                    except OSError:
                        pass
                return text
            return plain(c, m)  # type: ignore[return-value]
        return fmt

    def xl(self, i: int, table, bits: int = 32) -> Fmt:  # type: ignore[no-untyped-def]
        xlat = self.opts.xlat
        mask = (1 << bits) - 1
        return lambda c, m: table.format(c.args[i] & mask, xlat)

    def path(self, i: int) -> Fmt:
        o = self.opts
        return _indexed(i, lambda c, m: format_path(m, c.args[i], o))

    def buf_in(self, i: int, len_i: int, force_hex: bool = False) -> Fmt:
        o = self.opts
        return lambda c, m: format_buffer(m, c.args[i], c.args[len_i], o, force_hex)

    def buf_out(self, i: int, force_hex: bool = False) -> Fmt:
        o = self.opts
        return _indexed(i, lambda c, m: format_buffer(m, c.args[i], c.ret, o, force_hex))


def _indexed(i: int, fmt: Fmt) -> Fmt:
    fmt.arg_index = i  # type: ignore[attr-defined]
    return fmt


def _hex(i: int) -> Fmt:
    return _indexed(i, lambda c, m: S.ptr(c.args[i]))


def _octal(i: int) -> Fmt:
    return lambda c, m: f"{c.args[i] & 0o7777777:#o}".replace("0o", "0") if c.args[i] else "000"


def _dec(i: int) -> Fmt:
    return lambda c, m: str(c.args[i])


def _ret_hex(call: Call) -> str:
    return f"{call.ret & 0xFFFFFFFFFFFFFFFF:#x}"


def _ret_unknown(call: Call) -> str:
    return "?"

