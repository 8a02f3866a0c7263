"""-y / -yy: what a file descriptor refers to, read from /proc/PID/fd and /proc/net."""

from __future__ import annotations

import os
import re

_SOCKET = re.compile(r"socket:\[(\d+)\]")
_NET_TABLES = (("tcp", "TCP"), ("tcp6", "TCPv6"), ("udp", "UDP"), ("udp6", "UDPv6"))


class ProcFdDescriber:
    """Implements decode.api.FdDescriber from procfs. What a descriptor refers to is read anew at every
    call (fds change between calls, and a seccomp-filtered trace does not see every close or dup2);
    only facts tied to a socket inode, which never changes its protocol, are cached."""

    def __init__(self) -> None:
        self._netlink: dict[int, int] = {}  # socket inode -> NETLINK_* protocol

    def socket_inode(self, pid: int, fd: int) -> int | None:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            return None
        m = _SOCKET.fullmatch(target)
        return int(m.group(1)) if m else None

    def netlink_protocol(self, pid: int, fd: int) -> int | None:
        """The NETLINK_* protocol of a netlink socket, None for anything else."""
        inode = self.socket_inode(pid, fd)
        if inode is None:
            return None
        proto = self._netlink.get(inode)
        if proto is None:
            row = self._netlink_row(pid, inode)
            if row is None:
                return None
            proto = self._netlink[inode] = row[0]
        return proto

    def note_netlink_socket(self, pid: int, fd: int, proto: int) -> None:
        """socket(AF_NETLINK, ..., proto) returned fd: an unbound netlink socket is not yet listed in
        /proc/net/netlink, so remember its protocol by inode."""
        inode = self.socket_inode(pid, fd)
        if inode is not None:
            self._netlink[inode] = proto

    @staticmethod
    def _netlink_row(pid: int, inode: int) -> tuple[int, int] | None:
        """(protocol, port id) from /proc/PID/net/netlink (columns: sk Eth Pid Groups ... Inode)."""
        try:
            with open(f"/proc/{pid}/net/netlink", encoding="ascii", opener=_cloexec) as f:
                next(f, None)
                for line in f:
                    cols = line.split()
                    if len(cols) > 9 and cols[9] == str(inode):
                        return int(cols[1]), int(cols[2])
        except OSError:
            pass
        return None

    def describe(self, pid: int, fd: int, detail: int) -> str | None:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            return None
        if detail >= 2:
            m = _SOCKET.fullmatch(target)
            if m:
                return self._socket_details(pid, fd, int(m.group(1))) or target
        return target

    def _socket_details(self, pid: int, fd: int, inode: int) -> str | None:
        # the socket's protocol name picks the one /proc/net table to read (reading them all costs ms)
        proto = _proto_name(pid, fd)
        if proto == "NETLINK" or proto is None:
            row = self._netlink_row(pid, inode)
            if row is not None:
                from unitrace.decode.netlink_tables import NETLINK_FAMILIES

                family, port = row
                self._netlink[inode] = family
                name = NETLINK_FAMILIES.get(family, str(family))
                return f"NETLINK:[{name}:{port}]" if port else f"NETLINK:[{inode}]"
            if proto == "NETLINK" or inode in self._netlink:  # not bound yet
                return f"NETLINK:[{inode}]"
        for table, label in _NET_TABLES:
            if proto is not None and proto != label:
                continue
            try:
                with open(f"/proc/{pid}/net/{table}", encoding="ascii", opener=_cloexec) as f:
                    next(f, None)
                    for line in f:
                        cols = line.split()
                        if len(cols) > 9 and cols[9] == str(inode):
                            return f"{label}:[{_endpoints(cols[1], cols[2], inode)}]"
            except OSError:
                continue
        if proto in (None, "UNIX"):
            try:
                with open(f"/proc/{pid}/net/unix", encoding="ascii", opener=_cloexec) as f:
                    next(f, None)
                    for line in f:
                        cols = line.split()
                        if len(cols) > 6 and cols[6] == str(inode):
                            path = cols[7] if len(cols) > 7 else ""
                            return f"UNIX:[{inode}{',' + path if path else ''}]"
            except OSError:
                pass
        return f"{proto}:[{inode}]" if proto else None


def _cloexec(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_CLOEXEC)


def _addr(hexaddr: str) -> str:
    ip, port = hexaddr.split(":")
    p = int(port, 16)
    if len(ip) == 8:
        b = bytes.fromhex(ip)[::-1]
        return f"{'.'.join(str(x) for x in b)}:{p}"
    raw = bytes.fromhex(ip)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    import ipaddress

    return f"[{ipaddress.IPv6Address(words)}]:{p}"


def _endpoints(local: str, remote: str, inode: int) -> str:
    """strace's -yy text: `local->remote` when connected, `local` when only bound, else the inode."""
    if not _is_zero(remote):
        return f"{_addr(local)}->{_addr(remote)}"
    if not _is_zero(local):
        return _addr(local)
    return str(inode)


def _is_zero(hexaddr: str) -> bool:
    return not hexaddr.replace(":", "").strip("0")


def _proto_name(pid: int, fd: int) -> str | None:
    """The kernel's protocol name of a socket (`TCP`, `UDPv6`, `UNIX`, `NETLINK`), from its
    system.sockprotoname attribute as strace reads it."""
    try:
        name = os.getxattr(f"/proc/{pid}/fd/{fd}", "system.sockprotoname").rstrip(b"\0").decode()
    except (OSError, UnicodeDecodeError):
        return None
    return name or None
