"""Socket buffers as strace 6.1 prints them: sendto/recvfrom data (netlink-decoded on netlink sockets) and
struct msghdr for sendmsg/recvmsg (msg_name, msg_iov with the data, msg_control with SCM_RIGHTS and
SCM_CREDENTIALS, msg_flags). x86_64 / arm64 LP64 layouts."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from unitrace.decode import structs as S
from unitrace.decode import xlat_data as X
from unitrace.decode.strings import format_buffer
from unitrace.decode.xlat import enum

if TYPE_CHECKING:
    from unitrace.decode.api import Memory
    from unitrace.decode.syscall import Call, StraceDecoder

_MSGHDR = struct.Struct("<QI4xQQQQi4x")  # name, namelen, iov, iovlen, control, controllen, flags
_CMSGHDR = struct.Struct("<Qii")
_OPTMEM_MAX = 20480  # net.core.optmem_max default: strace reads no more control data than this
_NETLINK_READ_MAX = 1 << 20
AF_NETLINK = 16

SOCKET_LEVELS = enum([(0, "SOL_IP"), (1, "SOL_SOCKET"), (6, "SOL_TCP"), (17, "SOL_UDP"), (41, "SOL_IPV6"),
                      (58, "SOL_ICMPV6"), (132, "SOL_SCTP"), (136, "SOL_UDPLITE"), (255, "SOL_RAW"),
                      (263, "SOL_PACKET"), (270, "SOL_NETLINK"), (282, "SOL_TLS"), (283, "SOL_XDP")], "SOL_???")
SCM_TYPES = enum([(1, "SCM_RIGHTS"), (2, "SCM_CREDENTIALS"), (3, "SCM_SECURITY"), (29, "SO_TIMESTAMP_OLD"),
                  (35, "SO_TIMESTAMPNS_OLD"), (37, "SO_TIMESTAMPING_OLD"), (41, "SO_WIFI_STATUS"),
                  (61, "SO_TXTIME"), (63, "SO_TIMESTAMP_NEW"), (64, "SO_TIMESTAMPNS_NEW"),
                  (65, "SO_TIMESTAMPING_NEW")], "SCM_???")


def socket_data(d: StraceDecoder, c: Call, m: Memory, addr: int, length: int) -> str:
    """A send/recv buffer: netlink messages on a netlink socket, else a string cut at -s."""
    proto = d.netlink_protocol(c.pid, c.args[0])
    if proto is None:
        return format_buffer(m, addr, length, d.opts)
    return netlink_data(d, m, addr, length, proto)


def netlink_data(d: StraceDecoder, m: Memory, addr: int, length: int, proto: int) -> str:
    if addr == 0:
        return "NULL"
    data = m.read(addr, min(length, _NETLINK_READ_MAX)) if length > 0 else b""
    if data is None:
        return S.ptr(addr)
    return d.netlink.messages(data, proto)


def msghdr_text(d: StraceDecoder, c: Call, m: Memory, addr: int, data_size: int | None,
                user_namelen: int | None = None) -> str:
    raw = m.read(addr, _MSGHDR.size) if addr else None
    if raw is None:
        return S.ptr(addr)
    name, namelen, iov, iovlen, control, controllen, flags = _MSGHDR.unpack(raw)
    o = d.opts
    shown_namelen = namelen if user_namelen is None or namelen <= user_namelen else user_namelen
    name_text = S.sockaddr_text(m, name, shown_namelen, o) if shown_namelen > 0 or not name else S.ptr(name)
    family = -1
    if name and shown_namelen >= 2:
        head = m.read(name, 2)
        family = int.from_bytes(head, "little") if head else -1
    namelen_text = str(namelen) if user_namelen is None or user_namelen == namelen else \
        f"{user_namelen} => {namelen}"
    proto = d.netlink_protocol(c.pid, c.args[0]) if family == AF_NETLINK else None
    parts = [f"msg_name={name_text}", f"msg_namelen={namelen_text}",
             f"msg_iov={_iov(d, m, iov, iovlen, data_size, proto)}", f"msg_iovlen={iovlen}"]
    if controllen:
        parts.append(f"msg_control={_control(d, c, m, control, controllen)}")
    parts += [f"msg_controllen={controllen}", f"msg_flags={X.MSG_FLAGS.format(flags & 0xFFFFFFFF, o.xlat)}"]
    return "{" + ", ".join(parts) + "}"


def _iov(d: StraceDecoder, m: Memory, addr: int, n: int, data_size: int | None, proto: int | None) -> str:
    if addr == 0:
        return "NULL"
    shown = min(n, d.opts.string_limit)
    raw = m.read(addr, 16 * shown) if shown else b""
    if raw is None:
        return S.ptr(addr)
    budget = data_size
    items = []
    for k in range(shown):
        base, ln = struct.unpack_from("<QQ", raw, 16 * k)
        size = ln if budget is None else min(ln, budget)
        if budget is not None:
            budget -= size
        if proto is not None:
            data = netlink_data(d, m, base, size, proto)
        else:
            data = format_buffer(m, base, size, d.opts)
        items.append(f"{{iov_base={data}, iov_len={ln}}}")
    more = ", ..." if n > shown else ""
    return "[" + ", ".join(items) + more + "]"


def _control(d: StraceDecoder, c: Call, m: Memory, addr: int, in_len: int) -> str:
    length = min(in_len, _OPTMEM_MAX)
    buf = m.read(addr, length) if length >= _CMSGHDR.size else None
    if buf is None:
        return S.ptr(addr)
    x = d.opts.xlat
    items = []
    off, left = 0, length
    while left >= _CMSGHDR.size:
        cmsg_len, level, typ = _CMSGHDR.unpack_from(buf, off)
        ln = min(cmsg_len, left)
        data = buf[off + _CMSGHDR.size: off + ln] if ln > _CMSGHDR.size else b""
        text = f"{{cmsg_len={cmsg_len}, cmsg_level={SOCKET_LEVELS.format(level & 0xFFFFFFFF, x)}, cmsg_type="
        if level == 1:
            text += SCM_TYPES.format(typ & 0xFFFFFFFF, x)
            if typ == 1 and len(data) >= 4:
                fds = struct.unpack_from(f"<{len(data) // 4}i", data)
                text += ", cmsg_data=[" + ", ".join(d.fd_text(c.pid, fd) for fd in fds) + "]"
            elif typ == 2 and len(data) >= 12:
                pid, uid, gid = struct.unpack_from("<iII", data)
                text += f", cmsg_data={{pid={pid}, uid={uid}, gid={gid}}}"
        else:
            text += f"{typ & 0xFFFFFFFF:#x}" if typ else "0"
        items.append(text + "}")
        if ln < _CMSGHDR.size:
            left -= _CMSGHDR.size
            break
        step = (cmsg_len + 7) & ~7
        if step >= left:
            left = 0
            break
        off += step
        left -= step
    if left:
        items.append(f"... /* {addr + length - left:#x} */")
    elif length < in_len:
        items.append("...")
    return "[" + ", ".join(items) + "]"
