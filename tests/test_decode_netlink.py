"""Netlink formatting from raw bytes (texts as strace 6.1 prints them for the same bytes, taken from
strace runs of iproute2) and the procfs netlink-socket lookup on real sockets."""

from __future__ import annotations

import os
import socket
import struct

from unitrace.decode.api import FormatOptions
from unitrace.decode.fds import ProcFdDescriber
from unitrace.decode.netlink import NetlinkFormatter

NETLINK_ROUTE = 0


def _msg(typ: int, flags: int, seq: int, pid: int, payload: bytes) -> bytes:
    return struct.pack("<IHHIi", 16 + len(payload), typ, flags, seq, pid) + payload


def _attr(typ: int, data: bytes) -> bytes:
    raw = struct.pack("<HH", 4 + len(data), typ) + data
    return raw + b"\0" * (-len(raw) % 4)


def _getlink_request() -> bytes:
    ifinfo = struct.pack("<BxHiII", 17, 0, 0, 0, 0)
    return _msg(18, 0x301, 1795352958, 0, ifinfo + _attr(29, struct.pack("<I", 1)))


def test_getlink_dump_request() -> None:
    text = NetlinkFormatter(FormatOptions()).messages(_getlink_request(), NETLINK_ROUTE)
    assert text == ("[{nlmsg_len=40, nlmsg_type=RTM_GETLINK, nlmsg_flags=NLM_F_REQUEST|NLM_F_DUMP, "
                    "nlmsg_seq=1795352958, nlmsg_pid=0}, {ifi_family=AF_PACKET, ifi_type=ARPHRD_NETROM, "
                    "ifi_index=0, ifi_flags=0, ifi_change=0}, [{nla_len=8, nla_type=IFLA_EXT_MASK}, "
                    "RTEXT_FILTER_VF]]")


def test_trailing_zero_header_ends_the_sequence() -> None:
    ifaddr = struct.pack("<BBBBI", 0, 0, 0, 0, 0)
    data = _msg(22, 0x301, 7, 0, ifaddr) + b"\0" * 128
    text = NetlinkFormatter(FormatOptions()).messages(data, NETLINK_ROUTE)
    assert text == ("[[{nlmsg_len=24, nlmsg_type=RTM_GETADDR, nlmsg_flags=NLM_F_REQUEST|NLM_F_DUMP, nlmsg_seq=7, "
                    "nlmsg_pid=0}, {ifa_family=AF_UNSPEC, ifa_prefixlen=0, ifa_flags=0, "
                    "ifa_scope=RT_SCOPE_UNIVERSE, ifa_index=0}], {nlmsg_len=0, nlmsg_type=0 /* NLMSG_??? */, "
                    "nlmsg_flags=0, nlmsg_seq=0, nlmsg_pid=0}]")


def test_attributes_cut_at_the_string_limit() -> None:
    rt = struct.pack("<BBBBBBBBI", 2, 24, 0, 0, 254, 2, 253, 1, 0)
    attrs = _attr(15, struct.pack("<I", 254)) + _attr(1, bytes([10, 0, 0, 0])) + _attr(6, struct.pack("<I", 5))
    data = _msg(24, 2, 1, 99, rt + attrs)
    text = NetlinkFormatter(FormatOptions(string_limit=2)).messages(data, NETLINK_ROUTE)
    assert text.endswith("[[{nla_len=8, nla_type=RTA_TABLE}, RT_TABLE_MAIN], "
                         "[{nla_len=8, nla_type=RTA_DST}, inet_addr(\"10.0.0.0\")], ...]]")
    assert "rtm_protocol=RTPROT_KERNEL, rtm_scope=RT_SCOPE_LINK, rtm_type=RTN_UNICAST" in text


def test_done_error_and_short_buffers() -> None:
    f = NetlinkFormatter(FormatOptions())
    done = _msg(3, 2, 5, 42, struct.pack("<i", 0))
    assert f.messages(done, NETLINK_ROUTE) == ("[{nlmsg_len=20, nlmsg_type=NLMSG_DONE, nlmsg_flags=NLM_F_MULTI, "
                                               "nlmsg_seq=5, nlmsg_pid=42}, 0]")
    inner = _msg(16, 5, 0, 0, struct.pack("<BxHiII", 0, 0, 0, 0, 0))
    err = _msg(2, 0x100, 0, 7, struct.pack("<i", -19) + inner[:16])
    assert f.messages(err, NETLINK_ROUTE) == (
        "[{nlmsg_len=36, nlmsg_type=NLMSG_ERROR, nlmsg_flags=NLM_F_CAPPED, nlmsg_seq=0, nlmsg_pid=7}, "
        "{error=-ENODEV, msg={nlmsg_len=32, nlmsg_type=RTM_NEWLINK, nlmsg_flags=NLM_F_REQUEST|NLM_F_ACK, "
        "nlmsg_seq=0, nlmsg_pid=0}}]")
    assert f.messages(b"\x01\x02\x03", NETLINK_ROUTE) == '"\\x01\\x02\\x03"'
    assert NetlinkFormatter(FormatOptions(xlat="raw")).messages(done, NETLINK_ROUTE).startswith(
        "[{nlmsg_len=20, nlmsg_type=0x3, nlmsg_flags=0x2,")


def test_netlink_socket_lookup_and_yy_text() -> None:
    fds = ProcFdDescriber()
    pid = os.getpid()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE) as nl, \
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as udp:
        inode = os.fstat(nl.fileno()).st_ino
        # not bound yet: /proc/net/netlink does not list it until we saw the socket() call
        assert fds.netlink_protocol(pid, nl.fileno()) is None
        fds.note_netlink_socket(pid, nl.fileno(), NETLINK_ROUTE)
        assert fds.netlink_protocol(pid, nl.fileno()) == NETLINK_ROUTE
        assert fds.describe(pid, nl.fileno(), 2) == f"NETLINK:[{inode}]"
        nl.bind((0, 0))
        assert fds.describe(pid, nl.fileno(), 2) == f"NETLINK:[ROUTE:{nl.getsockname()[0]}]"
        assert fds.netlink_protocol(pid, udp.fileno()) is None
        assert fds.describe(pid, udp.fileno(), 2) == f"UDPv6:[{os.fstat(udp.fileno()).st_ino}]"
        udp.bind(("::1", 0))
        assert fds.describe(pid, udp.fileno(), 2) == f"UDPv6:[[::1]:{udp.getsockname()[1]}]"
