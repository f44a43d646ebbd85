"""Which XFRM states and policies MN-HA signaling needs, per mode.

Classic (RFC 3776 as UMIP did it): a HAO state (proto 60) rewrites the MN's
source and an RH2 state (proto 43) the HA's destination. IRO (the iro kernel
series): IRO_SRC (253) and IRO_DST (254) remap states do the same without any
extension header. Either way the ESP transport SAs and the main policies stay
keyed on the home address; only these route-optimization states follow the CoA."""

from __future__ import annotations

from dataclasses import dataclass

from mip6d.xfrm import Policy, Selector, State, Template
from mip6d.xfrm.api import (
    IPPROTO_DSTOPTS,
    IPPROTO_ROUTING,
    XFRM_MODE_ROUTEOPTIMIZATION,
    XFRM_MODE_TUNNEL,
    XFRM_POLICY_FWD,
    XFRM_POLICY_IN,
    XFRM_POLICY_OUT,
    XFRM_PROTO_IRO_DST,
    XFRM_PROTO_IRO_SRC,
    XFRM_STATE_WILDRECV,
)

IPPROTO_MH = 135
RO = XFRM_MODE_ROUTEOPTIMIZATION
PRIO_SIGNALING = 1000  # MH policies win over the payload policies below
PRIO_PAYLOAD = 2000


@dataclass(frozen=True)
class Mode:
    name: str
    source_proto: int  # rewrites the MN's source: HAO or IRO_SRC
    dest_proto: int  # rewrites the HA's destination: RH2 or IRO_DST
    needs_selector: bool  # HAO/RH2 states carry the MH selector, as UMIP installs them


CLASSIC = Mode("classic", IPPROTO_DSTOPTS, IPPROTO_ROUTING, True)
IRO = Mode("iro", XFRM_PROTO_IRO_SRC, XFRM_PROTO_IRO_DST, False)


def mh(src: str, dst: str) -> Selector:
    return Selector.host(src, dst, proto=IPPROTO_MH)


def _ro_state(mode: Mode, src: str, dst: str, proto: int, coa: str) -> State:
    selector = mh(src, dst) if mode.needs_selector else Selector()
    return State(src, dst, proto, mode=RO, coaddr=coa, selector=selector)


def _ro_policy(selector: Selector, direction: int, proto: int) -> Policy:
    return Policy(selector, direction, [Template(proto, RO, optional=True)], sub=True)


def esp_signaling_policies(local: str, remote: str, reqid_out: int = 0, reqid_in: int = 0) -> list[Policy]:
    """Main policies: MH between a HoA and its HA only under ESP transport."""
    return [
        Policy(mh(local, remote), XFRM_POLICY_OUT, [Template(reqid=reqid_out)], priority=PRIO_SIGNALING),
        Policy(mh(remote, local), XFRM_POLICY_IN, [Template(reqid=reqid_in)], priority=PRIO_SIGNALING),
    ]


def ha_unprotected_mh_guard(ha: str) -> Policy:
    """MH to the HA from any source needs ESP: a BU outside every configured SA
    is dropped by the kernel (XfrmInTmplMismatch) before the daemon sees it."""
    return Policy(Selector(dst=ha, dst_prefix=128, proto=IPPROTO_MH), XFRM_POLICY_IN, [Template()],
                  priority=PRIO_SIGNALING + 1)


# -- mobile node ---------------------------------------------------------------
def mn_states(mode: Mode, hoa: str, ha: str, coa: str) -> list[State]:
    return [_ro_state(mode, hoa, ha, mode.source_proto, coa), _ro_state(mode, ha, hoa, mode.dest_proto, coa)]


def mn_sub_policies(mode: Mode, hoa: str, ha: str) -> list[Policy]:
    return [_ro_policy(mh(hoa, ha), XFRM_POLICY_OUT, mode.source_proto),
            _ro_policy(mh(ha, hoa), XFRM_POLICY_IN, mode.dest_proto)]


# -- home agent -----------------------------------------------------------------
def ha_wildcard_state(mode: Mode) -> State:
    """Accepts a BU from any CoA: the HA cannot know a new CoA before the BU."""
    return State("::", "::", mode.source_proto, mode=RO, coaddr="::", flags=XFRM_STATE_WILDRECV)


def ha_sub_policies(mode: Mode, hoa: str, ha: str) -> list[Policy]:
    return [_ro_policy(mh(hoa, ha), XFRM_POLICY_IN, mode.source_proto),
            _ro_policy(mh(ha, hoa), XFRM_POLICY_OUT, mode.dest_proto)]


def ha_binding_state(mode: Mode, hoa: str, ha: str, coa: str) -> State:
    return _ro_state(mode, ha, hoa, mode.dest_proto, coa)


# -- tunnelled payload (TunnelPayload: ESP tunnel mode CoA <-> HA) ---------------
def payload_policies_mn(hoa: str, ha: str, coa: str, reqid_out: int, reqid_in: int) -> list[Policy]:
    out = Template(mode=XFRM_MODE_TUNNEL, src=coa, dst=ha, reqid=reqid_out)
    back = Template(mode=XFRM_MODE_TUNNEL, src=ha, dst=coa, reqid=reqid_in)
    return [
        Policy(Selector(src=hoa, src_prefix=128), XFRM_POLICY_OUT, [out], priority=PRIO_PAYLOAD),
        Policy(Selector(dst=hoa, dst_prefix=128), XFRM_POLICY_IN, [back], priority=PRIO_PAYLOAD),
    ]


def payload_policies_ha(hoa: str, ha: str, coa: str, reqid_out: int, reqid_in: int) -> list[Policy]:
    out = Template(mode=XFRM_MODE_TUNNEL, src=ha, dst=coa, reqid=reqid_out)
    back = Template(mode=XFRM_MODE_TUNNEL, src=coa, dst=ha, reqid=reqid_in)
    return [
        Policy(Selector(dst=hoa, dst_prefix=128), XFRM_POLICY_OUT, [out], priority=PRIO_PAYLOAD),
        Policy(Selector(src=hoa, src_prefix=128), XFRM_POLICY_FWD, [back], priority=PRIO_PAYLOAD),
        Policy(Selector(src=hoa, src_prefix=128), XFRM_POLICY_IN, [back], priority=PRIO_PAYLOAD),
    ]
