"""Baseline (b): today's MIPv6 route optimization under ESP, as UMIP drives it.
The BU leaves as IPv6 / DestOpt(HAO) / ESP and the BA comes back with an RH2.
This is exactly the wire format the iro kernel series removes."""

from __future__ import annotations

import socket
from pathlib import Path

from scapy.layers.inet6 import HAO, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting
from scapy.layers.ipsec import ESP

from mip6_lab import COA, HA, HOA, IPPROTO_MH, SPI_HA_MN, SPI_MN_HA, binding_ack, binding_update, build, mh_socket
from mip6d.xfrm import Policy, Selector, State, Template, XfrmSocket
from mip6d.xfrm.api import (
    IPPROTO_DSTOPTS,
    IPPROTO_ROUTING,
    XFRM_MODE_ROUTEOPTIMIZATION,
    XFRM_POLICY_IN,
    XFRM_POLICY_OUT,
    XFRM_STATE_WILDRECV,
)
from netlab import Capture

RO = XFRM_MODE_ROUTEOPTIMIZATION


def install_classic_ro(lab) -> None:
    mn, ha = lab.mn, lab.ha
    mh = {"proto": IPPROTO_MH}
    # MN out: HAO state below the ESP SA; MN in: RH2 state for the BA
    mn.xfrm.add_state(State(HOA, HA, IPPROTO_DSTOPTS, mode=RO, coaddr=COA, selector=Selector.host(HOA, HA, **mh)))
    mn.xfrm.add_state(State(HA, HOA, IPPROTO_ROUTING, mode=RO, coaddr=COA, selector=Selector.host(HA, HOA, **mh)))
    mn.xfrm.add_policy(Policy(Selector.host(HOA, HA, **mh), XFRM_POLICY_OUT,
                              [Template(IPPROTO_DSTOPTS, RO, optional=True)], sub=True))
    mn.xfrm.add_policy(Policy(Selector.host(HA, HOA, **mh), XFRM_POLICY_IN,
                              [Template(IPPROTO_ROUTING, RO, optional=True)], sub=True))
    # HA in: wildcard HAO state as UMIP installs it; HA out: RH2 state to the CoA
    ha.xfrm.add_state(State("::", "::", IPPROTO_DSTOPTS, mode=RO, coaddr="::", flags=XFRM_STATE_WILDRECV))
    ha.xfrm.add_state(State(HA, HOA, IPPROTO_ROUTING, mode=RO, coaddr=COA, selector=Selector.host(HA, HOA, **mh)))
    ha.xfrm.add_policy(Policy(Selector.host(HOA, HA, **mh), XFRM_POLICY_IN,
                              [Template(IPPROTO_DSTOPTS, RO, optional=True)], sub=True))
    ha.xfrm.add_policy(Policy(Selector.host(HA, HOA, **mh), XFRM_POLICY_OUT,
                              [Template(IPPROTO_ROUTING, RO, optional=True)], sub=True))


def test_classic_bu_has_hao_and_ba_has_rh2(hosts, tmp_path: Path) -> None:
    lab = build(hosts)
    install_classic_ro(lab)
    capture = Capture(lab.mn, "mn0", tmp_path / "classic.pcap")
    mn_sock, ha_sock = mh_socket(lab.mn, HOA), mh_socket(lab.ha, HA)

    mn_sock.sendto(binding_update(7, COA), (HA, 0))
    bu, (bu_src, *_) = ha_sock.recvfrom(2048)
    ha_sock.sendto(binding_ack(7), (HOA, 0))
    ba, (ba_src, *_) = mn_sock.recvfrom(2048)
    packets = capture.stop()

    # the sockets see the home address, as if there were no mobility
    assert bu_src == HOA and bu[2] == 5
    assert ba_src == HA and ba[2] == 6
    bus = [p for p in packets if p.haslayer(IPv6ExtHdrDestOpt)]
    bas = [p for p in packets if p.haslayer(IPv6ExtHdrRouting)]
    assert len(bus) == 1 and len(bas) == 1
    bu_pkt, ba_pkt = bus[0], bas[0]
    assert (bu_pkt[IPv6].src, bu_pkt[IPv6].dst, bu_pkt[IPv6].nh) == (COA, HA, 60)
    hao = [o for o in bu_pkt[IPv6ExtHdrDestOpt].options if isinstance(o, HAO)]
    assert [o.hoa for o in hao] == [HOA]
    assert bu_pkt[IPv6ExtHdrDestOpt].nh == 50 and bu_pkt[ESP].spi == SPI_MN_HA
    assert (ba_pkt[IPv6].src, ba_pkt[IPv6].dst, ba_pkt[IPv6].nh) == (HA, COA, 43)
    rh2 = ba_pkt[IPv6ExtHdrRouting]
    assert (rh2.type, rh2.segleft, list(rh2.addresses)) == (2, 1, [HOA])
    assert rh2.nh == 50 and ba_pkt[ESP].spi == SPI_HA_MN
    # each extension header costs 24 bytes on the wire
    assert len(bytes(bu_pkt[IPv6ExtHdrDestOpt])) - len(bytes(bu_pkt[ESP])) == 24
    assert len(bytes(rh2)) - len(bytes(ba_pkt[ESP])) == 24


def test_hao_without_policy_is_dropped_and_reported(hosts) -> None:
    """Data with a HAO that no HA policy allows is dropped (XfrmInNoPols) and
    reported to key managers with XFRM_MSG_REPORT (mip6 does not report MH)."""
    lab = build(hosts)
    install_classic_ro(lab)
    udp = Selector.host(HOA, HA, proto=17)
    # one HAO state per (HoA, HA): widen its selector from MH to any traffic
    lab.mn.xfrm.update_state(State(HOA, HA, IPPROTO_DSTOPTS, mode=RO, coaddr=COA))
    lab.mn.xfrm.add_policy(Policy(udp, XFRM_POLICY_OUT, [Template(IPPROTO_DSTOPTS, RO)], sub=True))
    listener = XfrmSocket(netns=lab.ha.name, groups=("report",))
    before = lab.ha.xfrm_stat()
    tx = lab.mn.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    tx.bind((HOA, 0))
    tx.sendto(b"data with a HAO", (HA, 9))
    tx.close()
    events = list(listener.events(timeout=3))
    after = lab.ha.xfrm_stat()
    listener.close()
    assert after["XfrmInNoPols"] - before["XfrmInNoPols"] == 1
    reports = [e for e in events if e.kind == "report"]
    assert len(reports) == 1 and reports[0].proto == IPPROTO_DSTOPTS
    assert (reports[0].selector.src, reports[0].selector.dst, reports[0].selector.proto) == (HOA, HA, 17)
