"""rtnetlink requests for the objects the daemon makes on every binding or move:
ip6ip6 tunnels, routes (a home agent's with `encap ip6 dst CoA`), proxy-ND entries, the home address and the "from HoA"
rule, packed directly (see xfrm/wire.py for why not through pyroute2's message
classes). tests/host/test_rtnl.py decodes each with pyroute2's parsers."""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

from mip6d.xfrm.wire import nla, nlmsg

RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR = 16, 17, 20, 21
RTM_NEWROUTE, RTM_DELROUTE, RTM_NEWNEIGH, RTM_DELNEIGH, RTM_NEWRULE, RTM_DELRULE = 24, 25, 28, 29, 32, 33
NLM_F_REQUEST, NLM_F_ACK, NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x100, 0x200, 0x400
REQUEST = NLM_F_REQUEST | NLM_F_ACK
IFF_UP = 0x1
IFLA_IFNAME, IFLA_LINKINFO, IFLA_AF_SPEC, IFLA_INFO_KIND, IFLA_INFO_DATA = 3, 18, 26, 1, 2
IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE = 8, 1
IFLA_IPTUN_LOCAL, IFLA_IPTUN_REMOTE, IFLA_IPTUN_FLAGS, IFLA_IPTUN_PROTO = 2, 3, 8, 9
IFLA_IPTUN_COLLECT_METADATA = 19
IP6_TNL_F_IGN_ENCAP_LIMIT = 0x1
IPPROTO_IPV6 = 41
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_TABLE, RTA_ENCAP_TYPE, RTA_ENCAP = 1, 4, 5, 6, 15, 21, 22
LWTUNNEL_ENCAP_IP6, LWTUNNEL_IP6_DST, LWTUNNEL_IP6_SRC, LWTUNNEL_IP6_HOPLIMIT = 4, 2, 3, 4
RTPROT_KERNEL, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST, RTN_MULTICAST = 2, 4, 0, 1, 5
RT_TABLE_LOCAL, IP6_RT_PRIO_ADDRCONF = 255, 256
NDA_DST = 1
IFA_ADDRESS, IFA_FLAGS = 1, 8
FRA_SRC, FRA_PRIORITY, FRA_TABLE, FR_ACT_TO_TBL = 2, 6, 15, 1
NTF_PROXY, NUD_PERMANENT = 0x08, 0x80
_IFINFO = struct.Struct("=BxHiII")
_RTMSG = struct.Struct("=BBBBBBBBI")
_NDMSG = struct.Struct("=BxxxiHBB")
_IFADDRMSG = struct.Struct("=BBBBi")
_FIB_RULE_HDR = struct.Struct("=BBBBBBBBI")
_NLA_U32, _NLA_ADDR = struct.Struct("=HHI"), struct.Struct("=HH16s")  # attributes packed in one call
_ENCAP_TYPE_IP6 = nla(RTA_ENCAP_TYPE, struct.pack("=H", LWTUNNEL_ENCAP_IP6))


def _u32(kind: int, value: int) -> bytes:
    return _NLA_U32.pack(8, kind, value)


def _addr(kind: int, address: str) -> bytes:
    return _NLA_ADDR.pack(20, kind, _ip6(address))


def _ip6(address: str) -> bytes:
    try:
        return socket.inet_pton(socket.AF_INET6, address)
    except OSError as err:
        raise ValueError(f"{address!r} is not an IPv6 address") from err


def _prefix(dst: str) -> tuple[bytes, int]:
    """ADDRESS[/LENGTH] without host bits, as ipaddress.IPv6Network would accept it,
    through inet_pton: ipaddress parses in pure Python, once per binding's route."""
    address, slash, length = dst.partition("/")
    bits = int(length) if length.isdigit() and length.isascii() else -1 if slash else 128
    packed = _ip6(address)
    if not 0 <= bits <= 128 or int.from_bytes(packed, "big") & ((1 << (128 - bits)) - 1):
        raise ValueError(f"{dst!r} is not an IPv6 prefix")
    return packed, bits


class Ip6Encap(NamedTuple):
    """A route's `encap ip6 src SRC dst DST hoplimit N`: the outer header a flow-based
    ip6ip6 device (new_flow_ip6tnl) puts on what the route sends it."""

    src: str
    dst: str
    hoplimit: int = 64  # what a per-binding ip6tnl device used

    def attributes(self) -> bytes:
        inner = (_addr(LWTUNNEL_IP6_DST, self.dst) + _addr(LWTUNNEL_IP6_SRC, self.src)
                 + nla(LWTUNNEL_IP6_HOPLIMIT, struct.pack("=B", self.hoplimit)))
        return _ENCAP_TYPE_IP6 + nla(RTA_ENCAP, inner)


def _ip6tnl_info(endpoints: bytes) -> bytes:
    data = (endpoints + nla(IFLA_IPTUN_FLAGS, struct.pack("=I", IP6_TNL_F_IGN_ENCAP_LIMIT))
            + nla(IFLA_IPTUN_PROTO, struct.pack("=B", IPPROTO_IPV6)))
    return nla(IFLA_LINKINFO, nla(IFLA_INFO_KIND, b"ip6tnl\0") + nla(IFLA_INFO_DATA, data))


def _endpoints(local: str, remote: str) -> bytes:
    return nla(IFLA_IPTUN_LOCAL, _ip6(local)) + nla(IFLA_IPTUN_REMOTE, _ip6(remote))


def new_ip6tnl(name: str, index: int, local: str, remote: str) -> bytes:
    """An ip6ip6 tunnel without the encapsulation-limit option (8 bytes per packet),
    created down (see no_link_local), at an ifindex the caller chose, so no lookup follows."""
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0)
    body += nla(IFLA_IFNAME, name.encode() + b"\0") + _ip6tnl_info(_endpoints(local, remote))
    return nlmsg(RTM_NEWLINK, REQUEST | NLM_F_CREATE | NLM_F_EXCL, body)


def new_flow_ip6tnl(name: str, index: int) -> bytes:
    """A flow-based ip6ip6 device (`ip link add NAME type ip6tnl external`, one per
    namespace): it takes every ip6ip6 packet no other tunnel claims, and sends each
    packet where its route's Ip6Encap says. So a binding is a route, not a device: a
    device coming up costs a walk over every IPv6 route (rt6_sync_up), which grows with
    the bindings (about 850,000 instructions per first registration at 10,000)."""
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0)
    body += nla(IFLA_IFNAME, name.encode() + b"\0") + _ip6tnl_info(nla(IFLA_IPTUN_COLLECT_METADATA, b""))
    return nlmsg(RTM_NEWLINK, REQUEST | NLM_F_CREATE | NLM_F_EXCL, body)


def no_link_local(index: int) -> bytes:
    """No IPv6 link-local address on a device that is still down (`ip link set addrgenmode
    none`). A tunnel to one mobile node needs none; with one it costs a DAD probe and an
    MLD report through the tunnel, and a fe80::/64 route that every lookup of a link-local
    destination then walks past, once per binding. The kernel applies IFLA_AF_SPEC after
    a flags change in the same request, so bringing the device up is a request of its own."""
    spec = nla(IFLA_AF_SPEC, nla(socket.AF_INET6, nla(IFLA_INET6_ADDR_GEN_MODE,
                                                        struct.pack("=B", IN6_ADDR_GEN_MODE_NONE))))
    return nlmsg(RTM_NEWLINK, REQUEST, _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0) + spec)


def set_up(index: int) -> bytes:
    return nlmsg(RTM_NEWLINK, REQUEST, _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP))


def move_ip6tnl(index: int, local: str, remote: str) -> bytes:
    """New endpoints for an existing tunnel (`ip -6 tunnel change`)."""
    return nlmsg(RTM_NEWLINK, REQUEST,
                 _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0) + _ip6tnl_info(_endpoints(local, remote)))


def del_link(index: int) -> bytes:
    return nlmsg(RTM_DELLINK, REQUEST, _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0))


def del_link_named(name: str) -> bytes:
    return nlmsg(RTM_DELLINK, REQUEST, _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + nla(IFLA_IFNAME,
                                                                                       name.encode() + b"\0"))


def _route(dst: str, oif: int, table: int, metric: int, gateway: str | None,
           protocol: int = RTPROT_STATIC, kind: int = RTN_UNICAST, encap: Ip6Encap | None = None) -> bytes:
    packed, prefixlen = _prefix(dst)
    body = _RTMSG.pack(socket.AF_INET6, prefixlen, 0, 0, table if table < 256 else 0, protocol,
                       RT_SCOPE_UNIVERSE, kind, 0)
    body += nla(RTA_DST, packed) if prefixlen else b""
    body += _u32(RTA_OIF, oif) + _u32(RTA_PRIORITY, metric) + _u32(RTA_TABLE, table)
    if gateway:
        body += _addr(RTA_GATEWAY, gateway)
    if encap:
        body += encap.attributes()
    return body


def replace_route(dst: str, oif: int, table: int = 254, metric: int = 1024, gateway: str | None = None,
                  encap: Ip6Encap | None = None) -> bytes:
    return nlmsg(RTM_NEWROUTE, REQUEST | NLM_F_CREATE | NLM_F_REPLACE,
                 _route(dst, oif, table, metric, gateway, encap=encap))


def new_route(dst: str, oif: int, table: int, metric: int, encap: Ip6Encap | None = None) -> bytes:
    """Add only: EEXIST if the route is there."""
    return nlmsg(RTM_NEWROUTE, REQUEST | NLM_F_CREATE | NLM_F_EXCL, _route(dst, oif, table, metric, None, encap=encap))


def del_route(dst: str, oif: int, table: int = 254, metric: int = 1024) -> bytes:
    """By destination, table, metric and device: whatever the gateway is by now."""
    return nlmsg(RTM_DELROUTE, REQUEST, _route(dst, oif, table, metric, None))


def del_multicast_route(oif: int) -> bytes:
    """The ff00::/8 route the kernel gives every device as it comes up (table local,
    metric 256). Each one is a sibling in one fib6 node, and a multicast lookup with an
    outgoing device, as for the unsolicited NAs on the home link, walks all of them
    (__find_rr_leaf: 4 % of a home agent's CPU per binding at 1,000 bindings)."""
    return nlmsg(RTM_DELROUTE, REQUEST, _route("ff00::/8", oif, RT_TABLE_LOCAL, IP6_RT_PRIO_ADDRCONF, None,
                                               protocol=RTPROT_KERNEL, kind=RTN_MULTICAST))


def _proxy(address: str, ifindex: int) -> bytes:
    return _NDMSG.pack(socket.AF_INET6, ifindex, NUD_PERMANENT, NTF_PROXY, 0) + _addr(NDA_DST, address)


def replace_proxy(address: str, ifindex: int) -> bytes:
    """A proxy-ND entry (`ip -6 neigh replace proxy ADDRESS dev IF`)."""
    return nlmsg(RTM_NEWNEIGH, REQUEST | NLM_F_CREATE | NLM_F_REPLACE, _proxy(address, ifindex))


def del_proxy(address: str, ifindex: int) -> bytes:
    return nlmsg(RTM_DELNEIGH, REQUEST, _proxy(address, ifindex))


def _address(index: int, address: str, prefixlen: int, flags: int) -> bytes:
    return (_IFADDRMSG.pack(socket.AF_INET6, prefixlen, flags & 0xFF, 0, index) + nla(IFA_ADDRESS, _ip6(address))
            + nla(IFA_FLAGS, struct.pack("=I", flags)))


def new_address(index: int, address: str, prefixlen: int, flags: int) -> bytes:
    return nlmsg(RTM_NEWADDR, REQUEST | NLM_F_CREATE | NLM_F_EXCL, _address(index, address, prefixlen, flags))


def del_address(index: int, address: str, prefixlen: int) -> bytes:
    return nlmsg(RTM_DELADDR, REQUEST, _address(index, address, prefixlen, 0))


def _rule(src: str, table: int, priority: int) -> bytes:
    return (_FIB_RULE_HDR.pack(socket.AF_INET6, 0, 128, 0, table if table < 256 else 0, 0, 0, FR_ACT_TO_TBL, 0)
            + nla(FRA_SRC, _ip6(src)) + nla(FRA_PRIORITY, struct.pack("=I", priority))
            + nla(FRA_TABLE, struct.pack("=I", table)))


def new_rule(src: str, table: int, priority: int) -> bytes:
    """`ip -6 rule add from SRC lookup TABLE priority PRIORITY`."""
    return nlmsg(RTM_NEWRULE, REQUEST | NLM_F_CREATE | NLM_F_EXCL, _rule(src, table, priority))


def del_rule(src: str, table: int, priority: int) -> bytes:
    return nlmsg(RTM_DELRULE, REQUEST, _rule(src, table, priority))


# -- traffic control: a home agent's tunnel guard (RFC 6275 10.4.5) ------------
RTM_NEWQDISC, RTM_DELQDISC, RTM_NEWTFILTER, RTM_DELTFILTER = 36, 37, 44, 45
TCA_KIND, TCA_OPTIONS = 1, 2
TC_H_CLSACT, TC_H_MIN_INGRESS = 0xFFFFFFF1, 0xFFF2
CLSACT_HANDLE, INGRESS_PARENT = 0xFFFF0000, (TC_H_CLSACT & 0xFFFF0000) | TC_H_MIN_INGRESS
ETH_P_ALL, ETH_P_IPV6 = 0x0003, 0x86DD
TCA_FLOWER_ACT, TCA_FLOWER_KEY_ETH_TYPE, TCA_FLOWER_KEY_IPV6_SRC, TCA_FLOWER_FLAGS = 3, 8, 14, 22
TCA_FLOWER_KEY_ENC_IPV6_SRC = 31
TCA_CLS_FLAGS_SKIP_HW = 0x1
TCA_ACT_KIND, TCA_ACT_OPTIONS, TCA_GACT_PARMS, TC_ACT_SHOT = 1, 2, 2, 2
ADMIT_PRIORITY, DROP_PRIORITY = 1, 2  # tc's prio: the bindings' filters first, then the catch-all
_TCMSG = struct.Struct("=BxxxiIII")
_TC_GACT = struct.Struct("=IIiii")  # tc_gen: index, capab, action, refcnt, bindcnt
_FLOWER = nla(TCA_KIND, b"flower\0")
_ETH_TYPE_IPV6 = nla(TCA_FLOWER_KEY_ETH_TYPE, struct.pack("!H", ETH_P_IPV6))
_SKIP_HW = _u32(TCA_FLOWER_FLAGS, TCA_CLS_FLAGS_SKIP_HW)


def new_clsact(index: int) -> bytes:
    """`tc qdisc add dev DEV clsact`: where ingress filters hang."""
    body = _TCMSG.pack(socket.AF_UNSPEC, index, CLSACT_HANDLE, TC_H_CLSACT, 0) + nla(TCA_KIND, b"clsact\0")
    return nlmsg(RTM_NEWQDISC, REQUEST | NLM_F_CREATE | NLM_F_EXCL, body)


def _ingress_filter(index: int, handle: int, priority: int, protocol: int) -> bytes:
    info = (priority << 16) | socket.htons(protocol)
    return _TCMSG.pack(socket.AF_UNSPEC, index, handle, INGRESS_PARENT, info) + _FLOWER


def new_drop_filter(index: int, handle: int = 1) -> bytes:
    """`tc filter add dev DEV ingress prio 2 protocol all handle 1 flower skip_hw action drop`:
    what no binding's filter admits is dropped (and counted in the action's statistics)."""
    gact = nla(TCA_ACT_KIND, b"gact\0") + nla(TCA_ACT_OPTIONS, nla(TCA_GACT_PARMS,
                                                                    _TC_GACT.pack(0, 0, TC_ACT_SHOT, 0, 0)))
    options = nla(TCA_FLOWER_ACT, nla(1, gact)) + _SKIP_HW
    body = _ingress_filter(index, handle, DROP_PRIORITY, ETH_P_ALL) + nla(TCA_OPTIONS, options)
    return nlmsg(RTM_NEWTFILTER, REQUEST | NLM_F_CREATE | NLM_F_EXCL, body)


def put_admit_filter(index: int, handle: int, inner_src: str, outer_src: str) -> bytes:
    """`tc filter replace dev DEV ingress prio 1 protocol ipv6 handle H flower skip_hw
    src_ip INNER enc_src_ip OUTER`: a decapsulated packet from the home address INNER
    passes only if its outer source was OUTER, the binding's care-of address. No action:
    a match ends classification with TC_ACT_OK. Replaces filter H, so a move is one request."""
    options = (_ETH_TYPE_IPV6 + _addr(TCA_FLOWER_KEY_IPV6_SRC, inner_src)
               + _addr(TCA_FLOWER_KEY_ENC_IPV6_SRC, outer_src) + _SKIP_HW)
    body = _ingress_filter(index, handle, ADMIT_PRIORITY, ETH_P_IPV6) + nla(TCA_OPTIONS, options)
    return nlmsg(RTM_NEWTFILTER, REQUEST | NLM_F_CREATE, body)


def del_admit_filter(index: int, handle: int) -> bytes:
    return nlmsg(RTM_DELTFILTER, REQUEST, _ingress_filter(index, handle, ADMIT_PRIORITY, ETH_P_IPV6))
