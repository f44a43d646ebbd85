"""The fast XFRM encoders (mip6d.xfrm.wire) produce exactly pyroute2's bytes."""

from __future__ import annotations

import pytest
from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST

from mip6d import ipsec
from mip6d.xfrm import Algorithm, Migration, Policy, Selector, State, Template, wire
from mip6d.xfrm import messages as m
from mip6d.xfrm.api import XFRM_MODE_TUNNEL, XFRM_POLICY_IN, XFRM_POLICY_OUT, XfrmSocket

HOA, HA, COA = "2001:db8:1::10", "2001:db8:1::1", "2001:db8:a1::10"
FLAGS = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL


def pyroute2_bytes(msg, msg_type: int, flags: int) -> bytes:  # type: ignore[no-untyped-def]
    msg["header"].update(type=msg_type, flags=flags, sequence_number=0, pid=0)
    msg.encode()
    return bytes(msg.data[:msg["header"]["length"]])


STATES = [
    State(HOA, HA, spi=0x1234_5678, reqid=7, selector=Selector.host(HOA, HA),
          aead=Algorithm("rfc4106(gcm(aes))", bytes(range(20)), 128)),
    State(HA, HOA, spi=0x100, crypt=Algorithm("cbc(aes)", bytes(16)),
          auth=Algorithm("hmac(sha256)", bytes(range(32)), 128), lifetime={"hard_add_expires_seconds": 30}),
    State(HA, COA, spi=0xFFFF_FFFF, mode=XFRM_MODE_TUNNEL, reqid=9, replay_window=0,
          crypt=Algorithm("ecb(cipher_null)", b""), auth=Algorithm("digest_null", b"", 0)),
    ipsec.ha_binding_state(ipsec.IRO, HOA, HA, COA),
    ipsec.ha_binding_state(ipsec.CLASSIC, HOA, HA, COA),
    ipsec.ha_wildcard_state(ipsec.IRO),
    State("192.0.2.1", "192.0.2.2", spi=5, selector=Selector.host("192.0.2.1", "192.0.2.2", proto=17, dport=53)),
]
POLICIES = [
    *ipsec.esp_signaling_policies(HA, HOA, 3, 4),
    *ipsec.ha_sub_policies(ipsec.IRO, HOA, HA),
    *ipsec.mn_sub_policies(ipsec.CLASSIC, HOA, HA),
    *ipsec.payload_policies_ha(HOA, HA, COA, 5, 6),
    ipsec.ha_unprotected_mh_guard(HA),
    Policy(Selector(sport=1000, dport=2000, proto=6), XFRM_POLICY_OUT, [], priority=1, index=0),
]


@pytest.mark.parametrize("state", STATES, ids=range(len(STATES)))
@pytest.mark.parametrize("msg_type", [m.XFRM_MSG_NEWSA, m.XFRM_MSG_UPDSA])
def test_state_bytes(state: State, msg_type: int) -> None:
    assert wire.state(state, msg_type, FLAGS) == pyroute2_bytes(state.message(), msg_type, FLAGS)


@pytest.mark.parametrize("policy", POLICIES, ids=range(len(POLICIES)))
def test_policy_bytes(policy: Policy) -> None:
    assert wire.policy(policy, m.XFRM_MSG_NEWPOLICY, FLAGS) == pyroute2_bytes(
        policy.message(), m.XFRM_MSG_NEWPOLICY, FLAGS)


@pytest.mark.parametrize("policy", POLICIES, ids=range(len(POLICIES)))
def test_policy_id_bytes(policy: Policy) -> None:
    flags = NLM_F_REQUEST | NLM_F_ACK
    expected = XfrmSocket._policy_id(None, policy.selector, policy.dir, policy.sub)  # type: ignore[arg-type]
    assert wire.policy_id(policy.selector, policy.dir, policy.sub, m.XFRM_MSG_DELPOLICY, flags) == pyroute2_bytes(
        expected, m.XFRM_MSG_DELPOLICY, flags)


@pytest.mark.parametrize("src", [HOA, None])
def test_sa_id_bytes(src: str | None) -> None:
    flags = NLM_F_REQUEST | NLM_F_ACK
    expected = XfrmSocket._sa_id(None, HA, 0xABCD, 50, src)  # type: ignore[arg-type]
    assert wire.sa_id(HA, 0xABCD, 50, src, m.XFRM_MSG_DELSA, flags) == pyroute2_bytes(
        expected, m.XFRM_MSG_DELSA, flags)


def test_migrate_bytes() -> None:
    flags = NLM_F_REQUEST | NLM_F_ACK
    policy = ipsec.payload_policies_ha(HOA, HA, COA, 5, 6)[1]
    moves = [Migration(COA, HA, "2001:db8:a2::10", HA, reqid=6), Migration(HA, COA, HA, "2001:db8:a2::10", reqid=5)]
    msg = XfrmSocket._policy_id(None, policy.selector, XFRM_POLICY_IN, False)  # type: ignore[arg-type]
    msg["attrs"] = [("XFRMA_MIGRATE", {"migrations": [x.value() for x in moves]}), *msg["attrs"]]
    assert wire.migrate(policy.selector, XFRM_POLICY_IN, moves, False, flags) == pyroute2_bytes(
        msg, m.XFRM_MSG_MIGRATE, flags)


def test_template_fields_decode_back() -> None:
    """Decoded by pyroute2's parser (independent of wire.py), the policy is the one we packed."""
    policy = Policy(Selector.host(HOA, HA, proto=135), XFRM_POLICY_OUT,
                    [Template(mode=XFRM_MODE_TUNNEL, src=HA, dst=COA, spi=0x42, reqid=3, optional=True)],
                    priority=77, sub=True)
    data = wire.policy(policy, m.XFRM_MSG_NEWPOLICY, FLAGS)
    msg = m.xfrm_userpolicy_info(data)
    msg.decode()
    assert Policy.parse(msg) == policy
