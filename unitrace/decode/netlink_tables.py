"""Names for netlink decoding, limited to what strace 6.1 knows (a newer kernel's attribute 0x43 prints as
`0x43 /* IFLA_??? */` there, so it must here too). Attribute names come from pyroute2's message classes;
values of the uapi constants from <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_arp.h>, <linux/if.h>."""

from __future__ import annotations

from unitrace.decode.xlat import enum, flags

NETLINK_FAMILIES = {0: "ROUTE", 1: "UNUSED", 2: "USERSOCK", 3: "FIREWALL", 4: "SOCK_DIAG", 5: "NFLOG",
                    6: "XFRM", 7: "SELINUX", 8: "ISCSI", 9: "AUDIT", 10: "FIB_LOOKUP", 11: "CONNECTOR",
                    12: "NETFILTER", 13: "IP6_FW", 14: "DNRTMSG", 15: "KOBJECT_UEVENT", 16: "GENERIC",
                    18: "SCSITRANSPORT", 19: "ECRYPTFS", 20: "RDMA", 21: "CRYPTO", 22: "SMC"}
NETLINK_ROUTE = 0

NLMSG_TYPES = enum([(1, "NLMSG_NOOP"), (2, "NLMSG_ERROR"), (3, "NLMSG_DONE"), (4, "NLMSG_OVERRUN")], "NLMSG_???")
NLMSG_ERROR, NLMSG_DONE, NLMSG_MIN_TYPE = 2, 3, 16

_RTM_GROUPS = ("LINK", "ADDR", "ROUTE", "NEIGH", "RULE", "QDISC", "TCLASS", "TFILTER", "ACTION", "PREFIX",
               "MULTICAST", "ANYCAST", "NEIGHTBL", "NDUSEROPT", "ADDRLABEL", "DCB", "NETCONF", "MDB", "NSID",
               "STATS", "CACHEREPORT", "CHAIN", "NEXTHOP", "LINKPROP", "VLAN", "NEXTHOPBUCKET")
# which of NEW/DEL/GET/SET exist in each group (strace 6.1's nl_route_types)
_RTM_KINDS = {"LINK": "NDGS", "PREFIX": "N", "MULTICAST": "G", "ANYCAST": "G", "NEIGHTBL": "NGS",
              "NDUSEROPT": "N", "DCB": "GS", "STATS": "NG", "CACHEREPORT": "N"}
_KIND_NAMES = {"N": "NEW", "D": "DEL", "G": "GET", "S": "SET"}


def _rtm_types() -> list[tuple[int, str]]:
    pairs = []
    for g, group in enumerate(_RTM_GROUPS):
        for k in _RTM_KINDS.get(group, "NDG"):
            pairs.append((16 + 4 * g + "NDGS".index(k), f"RTM_{_KIND_NAMES[k]}{group}"))
    return pairs


RTM_TYPES = enum(_rtm_types(), "RTM_???")

_NLM_COMMON = [(1, "NLM_F_REQUEST"), (2, "NLM_F_MULTI"), (4, "NLM_F_ACK"), (8, "NLM_F_ECHO"),
               (0x10, "NLM_F_DUMP_INTR"), (0x20, "NLM_F_DUMP_FILTERED")]
NLM_FLAGS_PLAIN = flags(_NLM_COMMON)
NLM_FLAGS_GET = flags([*_NLM_COMMON, (0x300, "NLM_F_DUMP"), (0x100, "NLM_F_ROOT"), (0x200, "NLM_F_MATCH"),
                       (0x400, "NLM_F_ATOMIC")])
NLM_FLAGS_NEW = flags([*_NLM_COMMON, (0x100, "NLM_F_REPLACE"), (0x200, "NLM_F_EXCL"), (0x400, "NLM_F_CREATE"),
                       (0x800, "NLM_F_APPEND")])
NLM_FLAGS_DEL = flags([*_NLM_COMMON, (0x100, "NLM_F_NONREC"), (0x200, "NLM_F_BULK")])
NLM_FLAGS_ACK = flags([*_NLM_COMMON, (0x100, "NLM_F_CAPPED"), (0x200, "NLM_F_ACK_TLVS")])
RTM_DELACTION = 49

ADDRESS_FAMILIES = enum(list(enumerate((
    "AF_UNSPEC", "AF_UNIX", "AF_INET", "AF_AX25", "AF_IPX", "AF_APPLETALK", "AF_NETROM", "AF_BRIDGE",
    "AF_ATMPVC", "AF_X25", "AF_INET6", "AF_ROSE", "AF_DECnet", "AF_NETBEUI", "AF_SECURITY", "AF_KEY",
    "AF_NETLINK", "AF_PACKET", "AF_ASH", "AF_ECONET", "AF_ATMSVC", "AF_RDS", "AF_SNA", "AF_IRDA", "AF_PPPOX",
    "AF_WANPIPE", "AF_LLC", "AF_IB", "AF_MPLS", "AF_CAN", "AF_TIPC", "AF_BLUETOOTH", "AF_IUCV", "AF_RXRPC",
    "AF_ISDN", "AF_PHONET", "AF_IEEE802154", "AF_CAIF", "AF_ALG", "AF_NFC", "AF_VSOCK", "AF_KCM", "AF_QIPCRTR",
    "AF_SMC", "AF_XDP", "AF_MCTP"))), "AF_???")

ARPHRD = enum([(0, "ARPHRD_NETROM"), (1, "ARPHRD_ETHER"), (2, "ARPHRD_EETHER"), (3, "ARPHRD_AX25"),
               (4, "ARPHRD_PRONET"), (5, "ARPHRD_CHAOS"), (6, "ARPHRD_IEEE802"), (7, "ARPHRD_ARCNET"),
               (8, "ARPHRD_APPLETLK"), (15, "ARPHRD_DLCI"), (19, "ARPHRD_ATM"), (23, "ARPHRD_METRICOM"),
               (24, "ARPHRD_IEEE1394"), (27, "ARPHRD_EUI64"), (32, "ARPHRD_INFINIBAND"), (256, "ARPHRD_SLIP"),
               (257, "ARPHRD_CSLIP"), (258, "ARPHRD_SLIP6"), (259, "ARPHRD_CSLIP6"), (260, "ARPHRD_RSRVD"),
               (264, "ARPHRD_ADAPT"), (270, "ARPHRD_ROSE"), (271, "ARPHRD_X25"), (272, "ARPHRD_HWX25"),
               (280, "ARPHRD_CAN"), (290, "ARPHRD_MCTP"), (512, "ARPHRD_PPP"), (513, "ARPHRD_CISCO"),
               (516, "ARPHRD_LAPB"), (517, "ARPHRD_DDCMP"), (518, "ARPHRD_RAWHDLC"), (519, "ARPHRD_RAWIP"),
               (768, "ARPHRD_TUNNEL"), (769, "ARPHRD_TUNNEL6"), (770, "ARPHRD_FRAD"), (771, "ARPHRD_SKIP"),
               (772, "ARPHRD_LOOPBACK"), (773, "ARPHRD_LOCALTLK"), (774, "ARPHRD_FDDI"), (775, "ARPHRD_BIF"),
               (776, "ARPHRD_SIT"), (777, "ARPHRD_IPDDP"), (778, "ARPHRD_IPGRE"), (779, "ARPHRD_PIMREG"),
               (780, "ARPHRD_HIPPI"), (781, "ARPHRD_ASH"), (782, "ARPHRD_ECONET"), (783, "ARPHRD_IRDA"),
               (784, "ARPHRD_FCPP"), (785, "ARPHRD_FCAL"), (786, "ARPHRD_FCPL"), (787, "ARPHRD_FCFABRIC"),
               (800, "ARPHRD_IEEE802_TR"), (801, "ARPHRD_IEEE80211"), (802, "ARPHRD_IEEE80211_PRISM"),
               (803, "ARPHRD_IEEE80211_RADIOTAP"), (804, "ARPHRD_IEEE802154"),
               (805, "ARPHRD_IEEE802154_MONITOR"), (820, "ARPHRD_PHONET"), (821, "ARPHRD_PHONET_PIPE"),
               (822, "ARPHRD_CAIF"), (823, "ARPHRD_IP6GRE"), (824, "ARPHRD_NETLINK"), (825, "ARPHRD_6LOWPAN"),
               (826, "ARPHRD_VSOCKMON"), (0xFFFE, "ARPHRD_NONE"), (0xFFFF, "ARPHRD_VOID")], "ARPHRD_???")

IFF_FLAGS = flags([(1 << i, n) for i, n in enumerate((
    "IFF_UP", "IFF_BROADCAST", "IFF_DEBUG", "IFF_LOOPBACK", "IFF_POINTOPOINT", "IFF_NOTRAILERS", "IFF_RUNNING",
    "IFF_NOARP", "IFF_PROMISC", "IFF_ALLMULTI", "IFF_MASTER", "IFF_SLAVE", "IFF_MULTICAST", "IFF_PORTSEL",
    "IFF_AUTOMEDIA", "IFF_DYNAMIC", "IFF_LOWER_UP", "IFF_DORMANT", "IFF_ECHO"))])
IFA_FLAGS = flags([(1 << i, n) for i, n in enumerate((
    "IFA_F_SECONDARY", "IFA_F_NODAD", "IFA_F_OPTIMISTIC", "IFA_F_DADFAILED", "IFA_F_HOMEADDRESS",
    "IFA_F_DEPRECATED", "IFA_F_TENTATIVE", "IFA_F_PERMANENT", "IFA_F_MANAGETEMPADDR", "IFA_F_NOPREFIXROUTE",
    "IFA_F_MCAUTOJOIN", "IFA_F_STABLE_PRIVACY"))])
RTEXT_FILTER = flags([(1 << i, n) for i, n in enumerate((
    "RTEXT_FILTER_VF", "RTEXT_FILTER_BRVLAN", "RTEXT_FILTER_BRVLAN_COMPRESSED", "RTEXT_FILTER_SKIP_STATS",
    "RTEXT_FILTER_MRP", "RTEXT_FILTER_CFM_CONFIG", "RTEXT_FILTER_CFM_STATUS"))])
# enums strace prints without a `/* X_??? */` comment when the value is unknown
RT_SCOPES = {0: "RT_SCOPE_UNIVERSE", 200: "RT_SCOPE_SITE", 253: "RT_SCOPE_LINK", 254: "RT_SCOPE_HOST",
             255: "RT_SCOPE_NOWHERE"}
RT_TABLES = {0: "RT_TABLE_UNSPEC", 252: "RT_TABLE_COMPAT", 253: "RT_TABLE_DEFAULT", 254: "RT_TABLE_MAIN",
             255: "RT_TABLE_LOCAL"}
RT_PROTOCOLS = enum([(0, "RTPROT_UNSPEC"), (1, "RTPROT_REDIRECT"), (2, "RTPROT_KERNEL"), (3, "RTPROT_BOOT"),
                     (4, "RTPROT_STATIC"), (8, "RTPROT_GATED"), (9, "RTPROT_RA"), (10, "RTPROT_MRT"),
                     (11, "RTPROT_ZEBRA"), (12, "RTPROT_BIRD"), (13, "RTPROT_DNROUTED"), (14, "RTPROT_XORP"),
                     (15, "RTPROT_NTK"), (16, "RTPROT_DHCP"), (17, "RTPROT_MROUTED"), (18, "RTPROT_KEEPALIVED"),
                     (42, "RTPROT_BABEL"), (99, "RTPROT_OPENR"), (186, "RTPROT_BGP"), (187, "RTPROT_ISIS"),
                     (188, "RTPROT_OSPF"), (189, "RTPROT_RIP"), (192, "RTPROT_EIGRP")], "RTPROT_???")
RT_TYPES = enum(list(enumerate(("RTN_UNSPEC", "RTN_UNICAST", "RTN_LOCAL", "RTN_BROADCAST", "RTN_ANYCAST",
                                "RTN_MULTICAST", "RTN_BLACKHOLE", "RTN_UNREACHABLE", "RTN_PROHIBIT",
                                "RTN_THROW", "RTN_NAT", "RTN_XRESOLVE"))), "RTN_???")
RTM_FLAGS = flags([(0x100, "RTM_F_NOTIFY"), (0x200, "RTM_F_CLONED"), (0x400, "RTM_F_EQUALIZE"),
                   (0x800, "RTM_F_PREFIX"), (0x1000, "RTM_F_LOOKUP_TABLE"), (0x2000, "RTM_F_FIB_MATCH"),
                   (0x4000, "RTM_F_OFFLOAD"), (0x8000, "RTM_F_TRAP"), (0x20000000, "RTM_F_OFFLOAD_FAILED")])
IPTOS = flags([(0x10, "IPTOS_LOWDELAY"), (0x08, "IPTOS_THROUGHPUT"), (0x04, "IPTOS_RELIABILITY"),
               (0x02, "IPTOS_MINCOST")])

# attributes strace 6.1 names: pyroute2 knows these (and, for routes, fewer: the rest are added here)
IFLA_MAX_KNOWN, IFA_MAX_KNOWN = 61, 11
RTA_EXTRA = {24: "RTA_PAD", 25: "RTA_UID", 26: "RTA_TTL_PROPAGATE", 27: "RTA_IP_PROTO", 28: "RTA_SPORT",
             29: "RTA_DPORT", 30: "RTA_NH_ID"}

LINK_STATS_FIELDS = ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_errors", "tx_errors", "rx_dropped",
                     "tx_dropped", "multicast", "collisions", "rx_length_errors", "rx_over_errors",
                     "rx_crc_errors", "rx_frame_errors", "rx_fifo_errors", "rx_missed_errors",
                     "tx_aborted_errors", "tx_carrier_errors", "tx_fifo_errors", "tx_heartbeat_errors",
                     "tx_window_errors", "rx_compressed", "tx_compressed", "rx_nohandler",
                     "rx_otherhost_dropped")
