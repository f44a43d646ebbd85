"""A mobile node and a home agent on one foreign link, with ESP transport SAs
HoA<->HA protecting Mobility Header signaling (RFC 3776)."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from scapy.layers.inet6 import MIP6MH_BA, MIP6MH_BU, IPv6, MIP6OptAltCoA

from mip6d.xfrm import Algorithm, Policy, Selector, State, Template
from mip6d.xfrm.api import XFRM_POLICY_IN, XFRM_POLICY_OUT
from netlab import Host, link

HOA = "2001:db8:100::10"
HA = "2001:db8:200::1"
COA = "2001:db8:200::10"
COA2 = "2001:db8:200::20"
IPPROTO_MH = 135
SPI_MN_HA, SPI_HA_MN = 0x2000, 0x2001
GCM = Algorithm("rfc4106(gcm(aes))", bytes(range(20)), 128)
IFA_F_HOMEADDRESS = 0x10


@dataclass
class Mip6Lab:
    mn: Host
    ha: Host


def build(hosts) -> Mip6Lab:
    mn, ha = hosts("mn"), hosts("ha")
    link(mn, "mn0", ha, "ha0")
    mn.add_address("mn0", COA)
    mn.add_address("mn0", COA2)
    ha.add_address("ha0", HA)
    # the HoA is a home address (RH2 processing requires the flag)
    mn.ipr.addr("add", index=mn.ifindex("lo"), address=HOA, prefixlen=128, flags=0x80 | IFA_F_HOMEADDRESS)
    ha.add_route(HOA, "ha0")
    for host in (mn, ha):
        host.xfrm.add_state(State(HOA, HA, spi=SPI_MN_HA, aead=GCM))
        host.xfrm.add_state(State(HA, HOA, spi=SPI_HA_MN, aead=GCM))
    mh = {"proto": IPPROTO_MH}
    mn.xfrm.add_policy(Policy(Selector.host(HOA, HA, **mh), XFRM_POLICY_OUT, [Template()]))
    mn.xfrm.add_policy(Policy(Selector.host(HA, HOA, **mh), XFRM_POLICY_IN, [Template()]))
    ha.xfrm.add_policy(Policy(Selector.host(HOA, HA, **mh), XFRM_POLICY_IN, [Template()]))
    ha.xfrm.add_policy(Policy(Selector.host(HA, HOA, **mh), XFRM_POLICY_OUT, [Template()]))
    return Mip6Lab(mn, ha)


def binding_update(seq: int, coa: str) -> bytes:
    """A BU as scapy builds it, checksummed over HoA -> HA."""
    pkt = IPv6(src=HOA, dst=HA) / MIP6MH_BU(seq=seq, flags="AH", mhtime=25, options=[MIP6OptAltCoA(acoa=coa)])
    return bytes(pkt[MIP6MH_BU])


def binding_ack(seq: int) -> bytes:
    pkt = IPv6(src=HA, dst=HOA) / MIP6MH_BA(status=0, seq=seq, mhtime=25)
    return bytes(pkt[MIP6MH_BA])


def mh_socket(host: Host, bind: str) -> socket.socket:
    sock = host.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_MH)
    sock.bind((bind, 0))
    sock.settimeout(5)
    return sock
