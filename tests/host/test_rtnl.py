"""mip6d.rtnl's packed requests, decoded by pyroute2's own parsers."""

from __future__ import annotations

import socket
import struct

from pyroute2.netlink.rtnl.fibmsg import fibmsg
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg
from pyroute2.netlink.rtnl.tcmsg import tcmsg

from mip6d import rtnl


def test_new_ip6tnl() -> None:
    msg = ifinfmsg(rtnl.new_ip6tnl("mip6ha7", 1048583, "2001:db8:1::1", "2001:db8:a1::10"))
    msg.decode()
    assert msg["header"]["type"] == rtnl.RTM_NEWLINK
    assert msg["header"]["flags"] & (rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL | rtnl.NLM_F_ACK)
    assert (msg["index"], msg["flags"], msg["change"]) == (1048583, 0, 0)
    assert msg.get_attr("IFLA_IFNAME") == "mip6ha7"
    info = msg.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "ip6tnl"
    data = info.get_attr("IFLA_INFO_DATA")
    assert data.get_attr("IFLA_IP6TNL_LOCAL") == "2001:db8:1::1"
    assert data.get_attr("IFLA_IP6TNL_REMOTE") == "2001:db8:a1::10"
    assert data.get_attr("IFLA_IP6TNL_FLAGS") == rtnl.IP6_TNL_F_IGN_ENCAP_LIMIT
    assert data.get_attr("IFLA_IP6TNL_PROTO") == 41


def test_new_flow_ip6tnl() -> None:
    msg = ifinfmsg(rtnl.new_flow_ip6tnl("mip6ha", 1048576))
    msg.decode()
    assert msg["header"]["flags"] & (rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL) == rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL
    assert (msg["index"], msg.get_attr("IFLA_IFNAME")) == (1048576, "mip6ha")
    data = msg.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
    assert data.get_attr("IFLA_IP6TNL_COLLECT_METADATA") is True
    assert data.get_attr("IFLA_IP6TNL_LOCAL") is None and data.get_attr("IFLA_IP6TNL_REMOTE") is None
    assert (data.get_attr("IFLA_IP6TNL_FLAGS"), data.get_attr("IFLA_IP6TNL_PROTO")) == (
        rtnl.IP6_TNL_F_IGN_ENCAP_LIMIT, 41)


def _nested(octets: bytes) -> dict[int, bytes]:
    """Netlink attributes, read by hand: pyroute2 0.7 has no decoder for the ip6 encap."""
    found, offset = {}, 0
    while offset < len(octets):
        length, kind = struct.unpack_from("=HH", octets, offset)
        found[kind] = octets[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


def test_route_with_ip6_encap() -> None:
    encap = rtnl.Ip6Encap("2001:db8:1::1", "2001:db8:a1::10")
    msg = rtmsg(rtnl.replace_route("2001:db8:1::10/128", 9, encap=encap))
    msg.decode()
    assert msg["header"]["flags"] & rtnl.NLM_F_REPLACE and msg.get_attr("RTA_OIF") == 9
    assert msg.get_attr("RTA_ENCAP_TYPE") == 4  # LWTUNNEL_ENCAP_IP6 in include/uapi/linux/lwtunnel.h
    inner = _nested(bytes.fromhex(msg.get_attr("RTA_ENCAP").replace(":", "")))
    assert inner == {2: socket.inet_pton(socket.AF_INET6, "2001:db8:a1::10"),  # LWTUNNEL_IP6_DST
                     3: socket.inet_pton(socket.AF_INET6, "2001:db8:1::1"),  # LWTUNNEL_IP6_SRC
                     4: b"\x40"}  # LWTUNNEL_IP6_HOPLIMIT
    msg = rtmsg(rtnl.new_route("100::/64", 1, 254, 7, encap=encap))
    msg.decode()
    assert msg["header"]["flags"] & (rtnl.NLM_F_REPLACE | rtnl.NLM_F_EXCL) == rtnl.NLM_F_EXCL
    assert (msg.get_attr("RTA_PRIORITY"), msg.get_attr("RTA_ENCAP_TYPE")) == (7, 4)


def test_no_link_local_then_up() -> None:
    msg = ifinfmsg(rtnl.no_link_local(7))
    msg.decode()
    assert (msg["header"]["type"], msg["index"], msg["flags"], msg["change"]) == (rtnl.RTM_NEWLINK, 7, 0, 0)
    assert msg["header"]["flags"] & rtnl.NLM_F_CREATE == 0
    inet6 = msg.get_attr("IFLA_AF_SPEC").get_attr("AF_INET6")
    assert inet6.get_attr("IFLA_INET6_ADDR_GEN_MODE") == rtnl.IN6_ADDR_GEN_MODE_NONE
    msg = ifinfmsg(rtnl.set_up(7))
    msg.decode()
    assert (msg["index"], msg["flags"], msg["change"]) == (7, rtnl.IFF_UP, rtnl.IFF_UP)


def test_del_multicast_route() -> None:
    msg = rtmsg(rtnl.del_multicast_route(7))
    msg.decode()
    assert msg["header"]["type"] == rtnl.RTM_DELROUTE
    assert (msg["family"], msg["dst_len"], msg["table"], msg["proto"], msg["type"]) == (10, 8, 255, 2, 5)
    assert (msg.get_attr("RTA_DST"), msg.get_attr("RTA_OIF"), msg.get_attr("RTA_PRIORITY")) == ("ff00::", 7, 256)


def test_move_and_delete_link() -> None:
    msg = ifinfmsg(rtnl.move_ip6tnl(5, "2001:db8:1::1", "2001:db8:a2::10"))
    msg.decode()
    assert msg["header"]["flags"] & rtnl.NLM_F_CREATE == 0 and msg["index"] == 5
    assert msg.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA").get_attr("IFLA_IP6TNL_REMOTE") == "2001:db8:a2::10"
    msg = ifinfmsg(rtnl.del_link(5))
    msg.decode()
    assert (msg["header"]["type"], msg["index"]) == (rtnl.RTM_DELLINK, 5)


def test_routes() -> None:
    msg = rtmsg(rtnl.replace_route("2001:db8:1::10/128", 9))
    msg.decode()
    assert msg["header"]["flags"] & rtnl.NLM_F_REPLACE
    assert (msg["family"], msg["dst_len"], msg["table"]) == (10, 128, 254)
    assert msg.get_attr("RTA_DST") == "2001:db8:1::10"
    assert (msg.get_attr("RTA_OIF"), msg.get_attr("RTA_PRIORITY"), msg.get_attr("RTA_TABLE")) == (9, 1024, 254)
    msg = rtmsg(rtnl.replace_route("2001:db8:1::10/128", 9, gateway="2001:db8:a1::10"))
    msg.decode()
    assert msg.get_attr("RTA_GATEWAY") == "2001:db8:a1::10"
    msg = rtmsg(rtnl.del_route("::/0", 3, table=252))
    msg.decode()
    assert msg["header"]["type"] == rtnl.RTM_DELROUTE
    assert (msg["dst_len"], msg.get_attr("RTA_DST"), msg.get_attr("RTA_TABLE")) == (0, None, 252)
    assert msg.get_attr("RTA_GATEWAY") is None
    msg = rtmsg(rtnl.replace_route("2001:db8::/64", 3, table=1000))
    msg.decode()
    assert (msg["table"], msg.get_attr("RTA_TABLE")) == (0, 1000)


def test_proxy() -> None:
    msg = ndmsg(rtnl.replace_proxy("2001:db8:1::10", 2))
    msg.decode()
    assert (msg["ifindex"], msg["flags"], msg["state"]) == (2, rtnl.NTF_PROXY, rtnl.NUD_PERMANENT)
    assert msg.get_attr("NDA_DST") == "2001:db8:1::10"
    msg = ndmsg(rtnl.del_proxy("2001:db8:1::10", 2))
    msg.decode()
    assert msg["header"]["type"] == rtnl.RTM_DELNEIGH


def test_addresses() -> None:
    msg = ifaddrmsg(rtnl.new_address(7, "2001:db8:1::10", 128, 0x12))
    msg.decode()
    assert msg["header"]["type"] == rtnl.RTM_NEWADDR
    assert (msg["family"], msg["prefixlen"], msg["flags"], msg["index"]) == (10, 128, 0x12, 7)
    assert (msg.get_attr("IFA_ADDRESS"), msg.get_attr("IFA_FLAGS")) == ("2001:db8:1::10", 0x12)
    msg = ifaddrmsg(rtnl.del_address(7, "2001:db8:1::10", 64))
    msg.decode()
    assert (msg["header"]["type"], msg["prefixlen"], msg.get_attr("IFA_ADDRESS")) == (
        rtnl.RTM_DELADDR, 64, "2001:db8:1::10")


def test_rules() -> None:
    msg = fibmsg(rtnl.new_rule("2001:db8:1::10", 252, 1000))
    msg.decode()
    assert msg["header"]["type"] == rtnl.RTM_NEWRULE
    assert (msg["family"], msg["src_len"], msg["table"], msg["action"]) == (10, 128, 252, rtnl.FR_ACT_TO_TBL)
    assert (msg.get_attr("FRA_SRC"), msg.get_attr("FRA_PRIORITY"), msg.get_attr("FRA_TABLE")) == (
        "2001:db8:1::10", 1000, 252)
    msg = fibmsg(rtnl.del_rule("2001:db8:1::10", 1000, 5))
    msg.decode()
    assert (msg["header"]["type"], msg["table"], msg.get_attr("FRA_TABLE")) == (rtnl.RTM_DELRULE, 0, 1000)


def _tc(message: bytes) -> tuple[tcmsg, dict[int, bytes]]:
    """The tcmsg header and TCA_KIND by pyroute2; the flower options (which pyroute2 does not
    know) by hand. The VM tests read the filters back with iproute2's tc."""
    msg = tcmsg(message)
    msg.decode()
    body = message[16 + 20:]  # nlmsghdr, tcmsg
    return msg, _nested(_nested(body)[rtnl.TCA_OPTIONS]) if rtnl.TCA_OPTIONS in _nested(body) else {}


def test_clsact() -> None:
    msg, options = _tc(rtnl.new_clsact(1048576))
    assert msg["header"]["type"] == rtnl.RTM_NEWQDISC and msg["index"] == 1048576
    assert (msg["handle"], msg["parent"]) == (0xFFFF0000, 0xFFFFFFF1)  # `clsact`: ffff: under TC_H_CLSACT
    assert msg.get_attr("TCA_KIND") == "clsact" and options == {}


def test_admit_filter() -> None:
    msg, options = _tc(rtnl.put_admit_filter(7, 12, "2001:db8:1::10", "2001:db8:a1::10"))
    assert msg["header"]["type"] == rtnl.RTM_NEWTFILTER
    assert msg["header"]["flags"] & (rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL) == rtnl.NLM_F_CREATE  # add or replace
    assert (msg["index"], msg["handle"], msg["parent"]) == (7, 12, 0xFFFFFFF2)  # ingress
    assert msg["info"] == (1 << 16) | socket.htons(0x86DD)  # prio 1, protocol ipv6
    assert msg.get_attr("TCA_KIND") == "flower"
    assert options == {
        8: b"\x86\xdd",  # TCA_FLOWER_KEY_ETH_TYPE, big-endian
        14: socket.inet_pton(socket.AF_INET6, "2001:db8:1::10"),  # TCA_FLOWER_KEY_IPV6_SRC: the inner source
        31: socket.inet_pton(socket.AF_INET6, "2001:db8:a1::10"),  # TCA_FLOWER_KEY_ENC_IPV6_SRC: the outer one
        22: struct.pack("=I", 1),  # TCA_FLOWER_FLAGS: skip_hw
    }
    delete, _ = _tc(rtnl.del_admit_filter(7, 12))
    assert delete["header"]["type"] == rtnl.RTM_DELTFILTER
    assert (delete["handle"], delete["parent"], delete["info"]) == (12, 0xFFFFFFF2, msg["info"])


def test_drop_filter() -> None:
    msg, options = _tc(rtnl.new_drop_filter(7))
    assert msg["info"] == (2 << 16) | socket.htons(0x0003)  # prio 2, protocol all
    assert set(options) == {3, 22}  # TCA_FLOWER_ACT and TCA_FLOWER_FLAGS: no keys, so it matches everything
    action = _nested(_nested(options[3])[1])  # the first action
    assert action[1] == b"gact\0"  # TCA_ACT_KIND
    assert struct.unpack("=IIiii", _nested(action[2])[2]) == (0, 0, 2, 0, 0)  # TCA_GACT_PARMS: TC_ACT_SHOT
