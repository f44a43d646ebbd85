"""IRO mode on top of the MIPv6 lab: remap states and the sub-policies that
allow them, as the mobility daemon installs them."""

from __future__ import annotations

import socket

from mip6_lab import COA, HA, HOA, IPPROTO_MH, Mip6Lab
from mip6d.xfrm import Policy, Selector, State, Template
from mip6d.xfrm.api import (
    XFRM_MODE_ROUTEOPTIMIZATION,
    XFRM_POLICY_IN,
    XFRM_POLICY_OUT,
    XFRM_PROTO_IRO_DST,
    XFRM_PROTO_IRO_SRC,
    XFRM_STATE_WILDRECV,
)

RO = XFRM_MODE_ROUTEOPTIMIZATION
IPV6_RECVIROSRC, IPV6_IROSRC, IPV6_RECVIRODST, IPV6_IRODST = 90, 91, 92, 93
MH_OUT = Selector.host(HOA, HA, proto=IPPROTO_MH)
MH_IN = Selector.host(HA, HOA, proto=IPPROTO_MH)


def iro_state(src: str, dst: str, proto: int, coa: str, flags: int = 0) -> State:
    return State(src, dst, proto, mode=RO, coaddr=coa, flags=flags)


def install_mn(lab: Mip6Lab, coa: str = COA) -> None:
    """MN: HoA -> CoA as source on output, CoA -> HoA as destination on input."""
    mn = lab.mn
    mn.xfrm.add_state(iro_state(HOA, HA, XFRM_PROTO_IRO_SRC, coa))
    mn.xfrm.add_state(iro_state(HA, HOA, XFRM_PROTO_IRO_DST, coa))
    mn.xfrm.add_policy(Policy(MH_OUT, XFRM_POLICY_OUT, [Template(XFRM_PROTO_IRO_SRC, RO, optional=True)], sub=True))
    mn.xfrm.add_policy(Policy(MH_IN, XFRM_POLICY_IN, [Template(XFRM_PROTO_IRO_DST, RO, optional=True)], sub=True))


def install_ha(lab: Mip6Lab, coa: str = COA) -> None:
    """HA: any CoA -> HoA as source on input (a first BU comes from an unknown
    CoA), HoA -> CoA as destination on output (the binding)."""
    ha = lab.ha
    ha.xfrm.add_state(iro_state("::", "::", XFRM_PROTO_IRO_SRC, "::", XFRM_STATE_WILDRECV))
    ha.xfrm.add_state(iro_state(HA, HOA, XFRM_PROTO_IRO_DST, coa))
    ha.xfrm.add_policy(Policy(MH_OUT, XFRM_POLICY_IN, [Template(XFRM_PROTO_IRO_SRC, RO, optional=True)], sub=True))
    ha.xfrm.add_policy(Policy(MH_IN, XFRM_POLICY_OUT, [Template(XFRM_PROTO_IRO_DST, RO, optional=True)], sub=True))


def recv_with_iro(sock: socket.socket) -> tuple[bytes, str, dict[int, str]]:
    """One datagram, its source address and its IRO control messages."""
    data, ancdata, _flags, addr = sock.recvmsg(2048, socket.CMSG_SPACE(16) * 2)
    cmsgs = {kind: socket.inet_ntop(socket.AF_INET6, value)
             for level, kind, value in ancdata if level == socket.IPPROTO_IPV6 and len(value) == 16}
    return data, addr[0], cmsgs


def want_iro_cmsgs(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVIROSRC, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVIRODST, 1)
