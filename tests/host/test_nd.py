"""The daemons' own neighbor discovery messages, decoded by scapy."""

from __future__ import annotations

import pytest
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
)

from mip6d import nd

MAC = bytes.fromhex("020000000a01")


def test_router_solicitation_carries_source_link_layer_address() -> None:
    rs = ICMPv6ND_RS(nd.router_solicitation(MAC))
    assert (rs.type, rs.code, rs.res) == (133, 0, 0)
    assert rs[ICMPv6NDOptSrcLLAddr].lladdr == "02:00:00:00:0a:01"
    assert len(bytes(rs)) == 16


def test_advertisement_overrides_with_target_link_layer_address() -> None:
    na = ICMPv6ND_NA(nd.neighbor_advertisement("2001:db8::10", MAC))
    assert (na.type, na.R, na.S, na.O, na.tgt) == (136, 0, 0, 1, "2001:db8::10")
    assert na[ICMPv6NDOptDstLLAddr].lladdr == "02:00:00:00:0a:01"


def test_sending_on_a_missing_interface_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    nd.solicit_router("2001:db8::1", "iro-nonexistent0")
    nd.announce("iro-nonexistent0", "2001:db8::10")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("router solicitation from 2001:db8::1 on iro-nonexistent0: ")
    assert warnings[1].startswith("unsolicited NA for 2001:db8::10 on iro-nonexistent0: ")
