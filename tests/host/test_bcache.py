"""The home agent's binding cache decisions (RFC 6275 9.5.1, 10.3.1), one per BA status."""

from __future__ import annotations

import ipaddress

import pytest

from mip6d.bcache import BindingCache, HomePolicy, seq_newer
from mip6d.mh import BaStatus

HOA, HOA2, DENIED = "2001:db8:1::10", "2001:db8:1::20", "2001:db8:1::30"
COA, COA2 = "2001:db8:a1::10", "2001:db8:a2::10"


def cache(max_bindings: int = 10) -> BindingCache:
    return BindingCache(HomePolicy((ipaddress.IPv6Network("2001:db8:1::/64"),), frozenset({HOA, HOA2, DENIED}),
                                   frozenset({DENIED}), max_lifetime=60, max_bindings=max_bindings))


def register(bc: BindingCache, hoa: str, coa: str, seq: int, lifetime: int = 40, now: float = 0.0):  # type: ignore[no-untyped-def]
    decision = bc.decide(hoa, coa, seq, lifetime, home=True, now=now)
    bc.commit(decision)
    return decision


def test_accepts_and_caps_the_lifetime() -> None:
    bc = cache()
    decision = register(bc, HOA, COA, 7, lifetime=4000)
    assert (decision.status, decision.seq, decision.lifetime) == (BaStatus.ACCEPTED, 7, 60)
    entry = bc.get(HOA)
    assert entry is not None and (entry.coa, entry.seq, entry.lifetime) == (COA, 7, 60)


@pytest.mark.parametrize(("hoa", "home", "status"), [
    ("2001:db8:9::10", True, BaStatus.NOT_HOME_SUBNET),
    ("2001:db8:1::99", True, BaStatus.NOT_HOME_AGENT),
    (DENIED, True, BaStatus.ADMINISTRATIVELY_PROHIBITED),
    (HOA, False, BaStatus.HOME_REGISTRATION_NOT_SUPPORTED),
])
def test_rejections_leave_the_cache_alone(hoa: str, home: bool, status: int) -> None:
    bc = cache()
    register(bc, HOA2, COA, 1)
    decision = bc.decide(hoa, COA2, 1, 40, home=home, now=0.0)
    bc.commit(decision)
    assert decision.status == status and decision.lifetime == 0
    assert [(b.hoa, b.coa) for b in bc] == [(HOA2, COA)]


def test_stale_sequence_gets_135_with_the_cached_sequence() -> None:
    bc = cache()
    register(bc, HOA, COA, 100)
    for stale in (100, 99, 100 - 32767, (100 + 32768) % 65536):
        decision = bc.decide(HOA, COA2, stale % 65536, 40, home=True, now=1.0)
        assert (decision.status, decision.seq) == (BaStatus.SEQUENCE_OUT_OF_WINDOW, 100)
    entry = bc.get(HOA)
    assert entry is not None and (entry.coa, entry.seq) == (COA, 100)


def test_sequence_numbers_wrap() -> None:
    assert seq_newer(0, 65535) and seq_newer(5, 65530) and not seq_newer(65530, 5)
    bc = cache()
    register(bc, HOA, COA, 65535)
    assert register(bc, HOA, COA2, 0).status == BaStatus.ACCEPTED


def test_full_cache_refuses_new_homes_but_not_refreshes() -> None:
    bc = cache(max_bindings=1)
    register(bc, HOA, COA, 1)
    assert bc.decide(HOA2, COA, 1, 40, home=True, now=0.0).status == BaStatus.INSUFFICIENT_RESOURCES
    assert register(bc, HOA, COA2, 2).status == BaStatus.ACCEPTED


def test_deregistration_by_lifetime_zero_or_coa_equal_hoa() -> None:
    bc = cache()
    register(bc, HOA, COA, 1)
    decision = register(bc, HOA, COA, 2, lifetime=0)
    assert decision.accepted and decision.binding is None and decision.previous is not None
    assert bc.get(HOA) is None
    register(bc, HOA, COA, 3)
    assert register(bc, HOA, HOA, 4).binding is None and len(bc) == 0


def test_expiry() -> None:
    bc = cache()
    register(bc, HOA, COA, 1, lifetime=40, now=100.0)
    assert bc.expired(139.9) == []
    assert [b.hoa for b in bc.expired(140.0)] == [HOA]
    assert bc.get(HOA) is not None and bc.get(HOA).left(120.0) == 20.0  # type: ignore[union-attr]


def test_expiry_follows_refreshes_and_removals() -> None:
    bc = cache()
    register(bc, HOA, COA, 1, lifetime=40, now=100.0)
    register(bc, HOA2, COA, 1, lifetime=40, now=100.0)
    register(bc, HOA, COA, 2, lifetime=40, now=130.0)  # refreshed: due at 170, not 140
    assert [b.hoa for b in bc.expired(140.0)] == [HOA2]
    assert [b.hoa for b in bc.expired(141.0)] == [HOA2]  # due until removed
    bc.remove(HOA2)
    assert bc.expired(169.9) == []
    assert [(b.hoa, b.seq) for b in bc.expired(170.0)] == [(HOA, 2)]
