"""Netlink payloads (sendto/sendmsg/recvfrom/recvmsg on AF_NETLINK sockets) as strace 6.1 prints them:
`[{nlmsg_len=40, nlmsg_type=RTM_GETLINK, nlmsg_flags=NLM_F_REQUEST|NLM_F_DUMP, ...}, {ifi_family=...},
[{nla_len=8, nla_type=IFLA_EXT_MASK}, RTEXT_FILTER_VF]]`.

The fixed rtnetlink headers are parsed with the layouts of pyroute2's message classes (ifinfmsg,
ifaddrmsg, rtmsg) and the attribute names come from their nla_maps; the printing follows strace: a
sequence of more than one element is a `[...]` list cut after -s elements with `...`, one element alone is
printed bare, payload bytes nobody decodes are a forced-hex string.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from functools import cache

from unitrace.decode import netlink_tables as T
from unitrace.decode.api import FormatOptions
from unitrace.decode.errnos import ERRNO_NAMES
from unitrace.decode.strings import quote

_NLMSGHDR = struct.Struct("<IHHIi")
_NLATTR = struct.Struct("<HH")
_NLA_F_NESTED, _NLA_F_NET_BYTEORDER, _NLA_TYPE_MASK = 0x8000, 0x4000, 0x3FFF
# ifi_family as strace's print_hwaddr devtype (its hwaddr_sizes table, 255 = no limit)
_HWADDR_SIZES = {0: 7, 1: 6, 3: 7, 6: 6, 7: 1, 15: 2, 24: 16, 27: 8, 32: 20}

# An attribute decoder: (formatter, payload bytes, the fixed header values) -> text, or None to fall back
# to the forced-hex string as strace does when a decoder declines.
AttrDecoder = Callable[["NetlinkFormatter", bytes, tuple], "str | None"]


def _align4(n: int) -> int:
    return (n + 3) & ~3


@cache
def _pyroute2_layout(kind: str) -> tuple[struct.Struct, dict[int, str]]:
    """The fixed header layout and attribute names of one pyroute2 rtnetlink message class."""
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    cls, known = {"link": (ifinfmsg, T.IFLA_MAX_KNOWN), "addr": (ifaddrmsg, T.IFA_MAX_KNOWN),
                  "route": (rtmsg, 23)}[kind]
    layout = struct.Struct("<" + "".join(fmt for _, fmt in cls.fields))
    names = {i: entry[0] for i, entry in enumerate(cls.nla_map) if i <= known}
    if kind == "route":
        names.update(T.RTA_EXTRA)
    return layout, names


class NetlinkFormatter:
    """Formats one buffer of netlink messages; built once per decoder (options are fixed)."""

    def __init__(self, opts: FormatOptions) -> None:
        self.opts = opts
        self.limit = opts.string_limit
        self.xlat = opts.xlat

    # ---- generic pieces -----------------------------------------------------------------------
    def hexstr(self, data: bytes) -> str:
        shown = data[: self.limit]
        text = quote(shown, self.opts.hex_strings, force_hex=True)
        return text + "..." if len(data) > len(shown) else text

    def xval(self, table: dict[int, str], v: int) -> str:
        """printxval with no default: an unknown value is just its hex number."""
        name = table.get(v)
        raw = f"{v:#x}" if v else "0"
        if name is None or self.xlat == "raw":
            return raw
        return f"{raw} /* {name} */" if self.xlat == "verbose" else name

    def ifindex(self, idx: int) -> str:
        try:
            name = socket.if_indextoname(idx) if idx else None
        except OSError:
            name = None
        if name is None or self.xlat == "raw":
            return str(idx)
        text = f"if_nametoindex({quote(name.encode(), self.opts.hex_strings)})"
        return f"{idx} /* {text} */" if self.xlat == "verbose" else text

    def inet_addr(self, data: bytes, family: int) -> str:
        size = {2: 4, 10: 16}.get(family, 0)
        if not size or len(data) < size:
            return self.hexstr(data)
        raw = data[:size]
        hexed = quote(raw, 0, force_hex=True)
        if self.xlat == "raw":
            return hexed
        hx = self.opts.hex_strings
        if family == 2:
            text = f"inet_addr({quote(socket.inet_ntop(socket.AF_INET, raw).encode(), hx)})"
        else:
            text = f"inet_pton(AF_INET6, {quote(socket.inet_ntop(socket.AF_INET6, raw).encode(), hx)})"
        return f"{hexed} /* {text} */" if self.xlat == "verbose" else text

    # ---- messages -----------------------------------------------------------------------------
    def messages(self, data: bytes, family: int) -> str:
        items: list[str] = []
        off, left = 0, len(data)
        is_array = False
        while True:
            if left < _NLMSGHDR.size:
                items.append(self.hexstr(data[off:off + left]))
                break
            if len(items) >= self.limit:
                return "[" + ", ".join(items) + ", ...]" if items else "[...]"
            hdr = _NLMSGHDR.unpack_from(data, off)
            nlmsg_len = hdr[0]
            aligned = _align4(nlmsg_len)
            next_len = left - aligned if nlmsg_len >= _NLMSGHDR.size and left > aligned else 0
            if next_len:
                is_array = True
            items.append(self._message(hdr, data[off:off + left], family))
            if not next_len:
                break
            off += aligned
            left = next_len
        return "[" + ", ".join(items) + "]" if is_array else items[0]

    def _message(self, hdr: tuple, data: bytes, family: int) -> str:
        nlmsg_len, typ, flags, seq, pid = hdr
        head = (f"{{nlmsg_len={nlmsg_len}, nlmsg_type={self._type(typ, family)}, "
                f"nlmsg_flags={self._flags(flags, typ, family)}, nlmsg_seq={seq}, nlmsg_pid={pid}}}")
        size = min(nlmsg_len, len(data))
        if size <= _NLMSGHDR.size:
            return head
        return f"[{head}, {self._payload(typ, flags, family, data[_NLMSGHDR.size:size])}]"

    def _type(self, typ: int, family: int) -> str:
        if typ >= T.NLMSG_MIN_TYPE and family == T.NETLINK_ROUTE:
            return T.RTM_TYPES.format(typ, self.xlat)
        return T.NLMSG_TYPES.format(typ, self.xlat)

    def _flags(self, flags: int, typ: int, family: int) -> str:
        table = T.NLM_FLAGS_PLAIN
        if typ < T.NLMSG_MIN_TYPE:
            if typ == T.NLMSG_ERROR:
                table = T.NLM_FLAGS_ACK
        elif family == T.NETLINK_ROUTE:
            if typ == T.RTM_DELACTION:
                table = T.NLM_FLAGS_GET
            else:
                table = (T.NLM_FLAGS_NEW, T.NLM_FLAGS_DEL, T.NLM_FLAGS_GET, T.NLM_FLAGS_PLAIN)[typ & 3]
        return table.format(flags, self.xlat)

    def _payload(self, typ: int, flags: int, family: int, data: bytes) -> str:
        if typ == T.NLMSG_ERROR:
            return self._nlmsgerr(data, family, bool(flags & 0x100))
        if typ >= T.NLMSG_MIN_TYPE and family == T.NETLINK_ROUTE:
            return self._route(typ, data)
        if typ == T.NLMSG_DONE and len(data) == 4:
            return str(struct.unpack("<i", data)[0])
        return self.hexstr(data)

    def _nlmsgerr(self, data: bytes, family: int, capped: bool) -> str:
        if len(data) < 4 + _NLMSGHDR.size:
            return self.hexstr(data)
        err = struct.unpack_from("<i", data)[0]
        inner = data[4:]
        hdr = _NLMSGHDR.unpack_from(inner)
        payload = min(len(inner), _NLMSGHDR.size if capped else max(_NLMSGHDR.size, hdr[0]))
        text = f"{{error={self._err(err)}, msg={self._message(hdr, inner[:payload], family)}}}"
        if len(inner) > payload:
            attrs = self.attrs(inner[payload:], _NLMSGERR_NAMES, "NLMSGERR_ATTR_???", _NLMSGERR_DECODERS, ())
            return f"[{text}, {attrs}]"
        return text

    def _err(self, err: int) -> str:
        name = ERRNO_NAMES.get(-err)
        if name is None or self.xlat == "raw":
            return str(err)
        return f"{err} /* -{name} */" if self.xlat == "verbose" else f"-{name}"

    # ---- rtnetlink ----------------------------------------------------------------------------
    def _route(self, typ: int, data: bytes) -> str:
        kind = _ROUTE_KINDS.get(typ)
        family = data[0]
        fam_text = T.ADDRESS_FAMILIES.format(family, self.xlat)
        if kind is None:
            rest = f", data={self.hexstr(data[1:])}" if len(data) > 1 else ""
            return f"{{family={fam_text}{rest}}}"
        layout, names = _pyroute2_layout(kind)
        if len(data) < layout.size:
            return f"{{{_FAMILY_FIELD[kind]}={fam_text}, ...}}"
        fields = layout.unpack_from(data)
        head = getattr(self, f"_{kind}_head")(fam_text, fields)
        off = _align4(layout.size)
        if len(data) <= off:
            return head
        attrs = self.attrs(data[off:], names, _ATTR_DEFAULT[kind], _ATTR_DECODERS[kind], fields)
        return f"{head}, {attrs}"

    def _link_head(self, fam: str, f: tuple) -> str:
        _, ifi_type, index, flags, change = f
        return (f"{{ifi_family={fam}, ifi_type={T.ARPHRD.format(ifi_type, self.xlat)}, "
                f"ifi_index={self.ifindex(index & 0xFFFFFFFF)}, ifi_flags={T.IFF_FLAGS.format(flags, self.xlat)}, "
                f"ifi_change={change:#x}}}").replace("ifi_change=0x0}", "ifi_change=0}")

    def _addr_head(self, fam: str, f: tuple) -> str:
        _, prefixlen, flags, scope, index = f
        return (f"{{ifa_family={fam}, ifa_prefixlen={prefixlen}, ifa_flags={T.IFA_FLAGS.format(flags, self.xlat)}, "
                f"ifa_scope={self.xval(T.RT_SCOPES, scope)}, ifa_index={self.ifindex(index)}}}")

    def _route_head(self, fam: str, f: tuple) -> str:
        _, dst_len, src_len, tos, table, proto, scope, typ, flags = f
        x = self.xlat
        return (f"{{rtm_family={fam}, rtm_dst_len={dst_len}, rtm_src_len={src_len}, "
                f"rtm_tos={T.IPTOS.format(tos, x)}, rtm_table={self.xval(T.RT_TABLES, table)}, "
                f"rtm_protocol={T.RT_PROTOCOLS.format(proto, x)}, rtm_scope={self.xval(T.RT_SCOPES, scope)}, "
                f"rtm_type={T.RT_TYPES.format(typ, x)}, rtm_flags={T.RTM_FLAGS.format(flags, x)}}}")

    # ---- attributes ---------------------------------------------------------------------------
    def attrs(self, data: bytes, names: dict[int, str], dflt: str, decoders: dict[int, AttrDecoder],
              ctx: tuple) -> str:
        items: list[str] = []
        off, left = 0, len(data)
        is_array = False
        while True:
            if left < _NLATTR.size:
                items.append(self.hexstr(data[off:off + left]))
                break
            if len(items) >= self.limit:
                return "[" + ", ".join(items) + ", ...]"
            nla_len, nla_type = _NLATTR.unpack_from(data, off)
            aligned = _align4(nla_len)
            next_len = left - aligned if nla_len >= _NLATTR.size and left > aligned else 0
            if next_len:
                is_array = True
            size = min(nla_len, left)
            head = f"{{nla_len={nla_len}, nla_type={self._nla_type(nla_type, names, dflt)}}}"
            if size > _NLATTR.size:
                body = data[off + _NLATTR.size:off + size]
                decoder = decoders.get(nla_type & _NLA_TYPE_MASK)
                text = decoder(self, body, ctx) if decoder else None
                items.append(f"[{head}, {text if text is not None else self.hexstr(body)}]")
            else:
                items.append(head)
            if not next_len:
                break
            off += aligned
            left = next_len
        return "[" + ", ".join(items) + "]" if is_array else items[0]

    def _nla_type(self, t: int, names: dict[int, str], dflt: str) -> str:
        prefix = ("NLA_F_NESTED|" if t & _NLA_F_NESTED else "") + \
            ("NLA_F_NET_BYTEORDER|" if t & _NLA_F_NET_BYTEORDER else "")
        v = t & _NLA_TYPE_MASK
        name = names.get(v)
        raw = f"{v:#x}" if v else "0"
        if self.xlat == "raw":
            return f"{t:#x}" if t else "0"
        if name is None:
            return f"{prefix}{raw} /* {dflt} */"
        return f"{prefix}{raw} /* {name} */" if self.xlat == "verbose" else prefix + name

    def nla_str(self, data: bytes) -> str:
        if self.opts.hex_strings >= 2:
            # strace's -xx quotes every byte, the terminating NUL too, and then marks the string unfinished
            return quote(data[: self.limit], 2) + "..."
        s = data[:-1] if data.endswith(b"\0") else data
        s = s.split(b"\0", 1)[0]
        if len(s) > self.limit:
            return quote(s[: self.limit], self.opts.hex_strings) + "..."
        return quote(s, self.opts.hex_strings)

    def hwaddr(self, data: bytes, family: int) -> str | None:
        if len(data) > 32:
            return None
        hexed = quote(data, 0, force_hex=True)
        if self.xlat == "raw":
            return hexed
        text = ":".join(f"{b:02x}" for b in data[: _HWADDR_SIZES.get(family, 255)])
        return f"{hexed} /* {text} */" if self.xlat == "verbose" else text


def _uint(fmt: str) -> AttrDecoder:
    st = struct.Struct("<" + fmt)

    def dec(f: NetlinkFormatter, data: bytes, ctx: tuple) -> str | None:
        return str(st.unpack_from(data)[0]) if len(data) >= st.size else None
    return dec


def _flags_attr(table) -> AttrDecoder:  # type: ignore[no-untyped-def]
    def dec(f: NetlinkFormatter, data: bytes, ctx: tuple) -> str | None:
        return table.format(struct.unpack_from("<I", data)[0], f.xlat) if len(data) >= 4 else None
    return dec


def _str(f: NetlinkFormatter, data: bytes, ctx: tuple) -> str:
    return f.nla_str(data)


def _ifindex(f: NetlinkFormatter, data: bytes, ctx: tuple) -> str | None:
    return f.ifindex(struct.unpack_from("<I", data)[0]) if len(data) >= 4 else None


def _hwaddr(f: NetlinkFormatter, data: bytes, ctx: tuple) -> str | None:
    return f.hwaddr(data, ctx[0])


def _inet(f: NetlinkFormatter, data: bytes, ctx: tuple) -> str:
    return f.inet_addr(data, ctx[0])


def _stats(fmt: str, sizes: tuple[int, ...]) -> AttrDecoder:
    """rtnl_link_stats(64): the full struct, or one of the shorter sizes older kernels send."""
    width = struct.calcsize("<" + fmt)

    def dec(f: NetlinkFormatter, data: bytes, ctx: tuple) -> str | None:
        if len(data) >= sizes[0] * width:
            n = sizes[0]
        else:
            n = next((k for k in sizes[1:] if len(data) == k * width), 0)
            if not n:
                return None
        vals = struct.unpack_from(f"<{n}{fmt}", data)
        return "{" + ", ".join(f"{k}={v}" for k, v in zip(T.LINK_STATS_FIELDS, vals, strict=False)) + "}"
    return dec


def _ifa_cacheinfo(f: NetlinkFormatter, data: bytes, ctx: tuple) -> str | None:
    if len(data) < 16:
        return None
    p, v, c, t = struct.unpack_from("<IIII", data)
    return f"{{ifa_prefered={p}, ifa_valid={v}, cstamp={c}, tstamp={t}}}"


def _rta_cacheinfo(f: NetlinkFormatter, data: bytes, ctx: tuple) -> str | None:
    if len(data) < 32:
        return None
    c = struct.unpack_from("<IIiIIIII", data)
    return (f"{{rta_clntref={c[0]}, rta_lastuse={c[1]}, rta_expires={c[2]}, rta_error={c[3]}, rta_used={c[4]}, "
            f"rta_id={c[5]:#x}, rta_ts={c[6]}, rta_tsage={c[7]}}}").replace("rta_id=0x0,", "rta_id=0,")


def _rt_table(f: NetlinkFormatter, data: bytes, ctx: tuple) -> str | None:
    return f.xval(T.RT_TABLES, struct.unpack_from("<I", data)[0]) if len(data) >= 4 else None


_u8, _u16, _u32, _u64, _s32 = _uint("B"), _uint("H"), _uint("I"), _uint("Q"), _uint("i")

_LINK_DECODERS: dict[int, AttrDecoder] = {
    1: _hwaddr, 2: _hwaddr, 3: _str, 4: _u32, 5: _u32, 6: _str, 7: _stats("I", (24, 23)), 10: _u32, 13: _u32,
    15: _u32, 16: _u8, 17: _u8, 19: _u32, 20: _str, 21: _u32, 23: _stats("Q", (25, 24, 23)), 27: _u32,
    28: _s32, 29: _flags_attr(T.RTEXT_FILTER), 30: _u32, 31: _u32, 32: _u32, 33: _u8, 35: _u32, 37: _s32,
    38: _str, 39: _u8, 40: _u32, 41: _u32, 45: _s32, 46: _s32, 47: _u32, 48: _u32, 49: _ifindex, 50: _u32,
    51: _u32, 53: _str, 54: _hwaddr, 56: _str, 57: _str, 58: _u32, 59: _u32, 60: _u32, 61: _u32,
}
_ADDR_DECODERS: dict[int, AttrDecoder] = {
    1: _inet, 2: _inet, 3: _str, 4: _inet, 5: _inet, 6: _ifa_cacheinfo, 7: _inet, 8: _flags_attr(T.IFA_FLAGS),
    9: _u32, 10: _s32,
}
_ROUTE_DECODERS: dict[int, AttrDecoder] = {
    1: _inet, 2: _inet, 3: _ifindex, 4: _ifindex, 5: _inet, 6: _u32, 7: _inet, 10: _u32, 11: _u32,
    12: _rta_cacheinfo, 14: _u32, 15: _rt_table, 16: _u32, 19: _inet, 20: _u8, 23: _u64, 25: _u32, 26: _u8,
    27: _u8, 28: _u16, 29: _u16,
}
_ATTR_DECODERS = {"link": _LINK_DECODERS, "addr": _ADDR_DECODERS, "route": _ROUTE_DECODERS}
_ATTR_DEFAULT = {"link": "IFLA_???", "addr": "IFA_???", "route": "RTA_???"}
_FAMILY_FIELD = {"link": "ifi_family", "addr": "ifa_family", "route": "rtm_family"}
_ROUTE_KINDS = {16: "link", 17: "link", 18: "link", 19: "link", 20: "addr", 21: "addr", 22: "addr", 58: "addr",
                62: "addr", 24: "route", 25: "route", 26: "route"}
_NLMSGERR_NAMES = dict(enumerate(("NLMSGERR_ATTR_UNUSED", "NLMSGERR_ATTR_MSG", "NLMSGERR_ATTR_OFFS",
                                  "NLMSGERR_ATTR_COOKIE", "NLMSGERR_ATTR_POLICY", "NLMSGERR_ATTR_MISS_TYPE",
                                  "NLMSGERR_ATTR_MISS_NEST")))
_NLMSGERR_DECODERS: dict[int, AttrDecoder] = {1: _str, 2: _u32}
