"""-y / -yy: what a file descriptor refers to, read from /proc/PID/fd and /proc/net."""

from __future__ import annotations

import os
import re

_SOCKET = re.compile(r"socket:\[(\d+)\]")
_NET_TABLES = (("tcp", "TCP"), ("tcp6", "TCPv6"), ("udp", "UDP"), ("udp6", "UDPv6"))


class ProcFdDescriber:
    """Implements decode.api.FdDescriber from procfs; no caching, since fds change between calls."""

    def describe(self, pid: int, fd: int, detail: int) -> str | None:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            return None
        if detail >= 2:
            m = _SOCKET.fullmatch(target)
            if m:
                return self._socket_details(pid, int(m.group(1))) or target
        return target

    def _socket_details(self, pid: int, inode: int) -> str | None:
        for table, label in _NET_TABLES:
            try:
                with open(f"/proc/{pid}/net/{table}", encoding="ascii", opener=_cloexec) as f:
                    next(f, None)
                    for line in f:
                        cols = line.split()
                        if len(cols) > 9 and cols[9] == str(inode):
                            return f"{label}:[{_addr(cols[1])}->{_addr(cols[2])}]"
            except OSError:
                continue
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
        return None


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
