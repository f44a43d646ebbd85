"""Which care-of addresses a home agent binds: routable unicast only (checked by octets)."""

from __future__ import annotations

import ipaddress

import pytest

from mip6d.ha import _routable_unicast

CASES = [
    ("2001:db8:a1::10", True),
    ("fec0::1", True),  # deprecated site-local, but not link-local
    ("::", False),
    ("::1", False),
    ("::192.0.2.1", False),  # IPv4-compatible
    ("::ffff:192.0.2.1", False),  # IPv4-mapped
    ("ff02::1", False),
    ("ff0e::1", False),
    ("fe80::1", False),
    ("febf:ffff::1", False),  # still fe80::/10
]


@pytest.mark.parametrize(("address", "routable"), CASES)
def test_routable_unicast(address: str, routable: bool) -> None:
    assert _routable_unicast(address) is routable


@pytest.mark.parametrize("address", [address for address, _ in CASES if "." not in address])
def test_agrees_with_ipaddress_outside_the_ipv4_forms(address: str) -> None:
    """ipaddress calls the IPv4-compatible and -mapped forms unicast; a CoA may not be one."""
    ip = ipaddress.IPv6Address(address)
    expected = not (ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_link_local)
    assert _routable_unicast(address) is expected
