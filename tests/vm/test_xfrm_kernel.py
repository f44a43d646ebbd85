"""Baselines (c) MIGRATE and (d) unknown SPI, plus the XFRM netlink module's
operations and multicast events, cross-checked against `ip xfrm`."""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from pathlib import Path

import pytest
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP

from mip6_lab import COA, COA2, GCM, HA, HOA
from mip6d.xfrm import Algorithm, Migration, Policy, Selector, State, Template, XfrmError, XfrmSocket
from mip6d.xfrm.api import IPPROTO_AH, IPPROTO_ESP, XFRM_MODE_TUNNEL, XFRM_POLICY_IN, XFRM_POLICY_OUT
from netlab import Capture, link

HA_INNER = "2001:db8:300::1"
A, B = "2001:db8:1::1", "2001:db8:1::2"


def test_migrate_moves_tunnel_sa_and_keeps_spi(hosts, tmp_path: Path) -> None:
    mn, ha = hosts("mn"), hosts("ha")
    link(mn, "mn0", ha, "ha0")
    mn.add_address("mn0", COA)
    mn.add_address("mn0", COA2)
    mn.add_address("lo", HOA, 128)
    ha.add_address("ha0", HA)
    ha.add_address("lo", HA_INNER, 128)
    mn.add_route(HA_INNER, "mn0")
    ha.add_route(HOA, "ha0")
    sel = Selector.host(HOA, HA_INNER, proto=17)
    for host in (mn, ha):
        host.xfrm.add_state(State(COA, HA, spi=0x3000, mode=XFRM_MODE_TUNNEL, reqid=7, aead=GCM))
    mn.xfrm.add_policy(Policy(sel, XFRM_POLICY_OUT, [Template(mode=XFRM_MODE_TUNNEL, src=COA, dst=HA, reqid=7)]))
    ha.xfrm.add_policy(Policy(sel, XFRM_POLICY_IN, [Template(mode=XFRM_MODE_TUNNEL, src=COA, dst=HA, reqid=7)]))
    listener = XfrmSocket(netns=mn.name, groups=("migrate",))

    move = Migration(COA, HA, COA2, HA, reqid=7)
    mn.xfrm.migrate(sel, XFRM_POLICY_OUT, [move], kmaddress=(COA2, HA))
    ha.xfrm.migrate(sel, XFRM_POLICY_IN, [move])

    state = mn.xfrm.get_state(HA, 0x3000)
    assert (state.src, state.dst, state.spi, state.mode) == (COA2, HA, 0x3000, XFRM_MODE_TUNNEL)
    assert [(t.src, t.dst) for t in mn.xfrm.get_policy(sel, XFRM_POLICY_OUT).templates] == [(COA2, HA)]
    assert f"src {COA2} dst {HA}" in mn.ip_xfrm("state") and COA not in mn.ip_xfrm("state").split()
    events = [e for e in listener.events(timeout=2) if e.kind == "migrate"]
    listener.close()
    assert len(events) == 1
    moved = events[0].migrations[0]
    assert socket.inet_ntop(socket.AF_INET6, moved["new_saddr"]) == COA2

    capture = Capture(mn, "mn0", tmp_path / "migrate.pcap")
    rx = ha.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    rx.bind((HA_INNER, 6000))
    rx.settimeout(5)
    tx = mn.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    tx.bind((HOA, 0))
    tx.sendto(b"after handover", (HA_INNER, 6000))
    assert rx.recv(100) == b"after handover"
    rx.close()
    tx.close()
    esp = [p for p in capture.stop() if p.haslayer(ESP)]
    assert [(p[IPv6].src, p[ESP].spi) for p in esp] == [(COA2, 0x3000)]


def test_unknown_spi_counts_in_no_states(hosts) -> None:
    a, b = hosts("a"), hosts("b")
    link(a, "a0", b, "b0")
    a.add_address("a0", A)
    b.add_address("b0", B)
    raw = a.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_ESP)
    before = b.xfrm_stat()
    for seq in range(1, 4):
        raw.sendto(struct.pack("!II", 0xDEADBEEF, seq) + bytes(48), (B, 0))
    raw.close()
    time.sleep(0.5)
    after = b.xfrm_stat()
    assert after["XfrmInNoStates"] - before["XfrmInNoStates"] == 3


def test_sa_operations_match_ip_xfrm(hosts) -> None:
    host = hosts("x")
    x = host.xfrm
    cbc = {"crypt": Algorithm("cbc(aes)", bytes(16)), "auth": Algorithm("hmac(sha256)", bytes(32), 128)}
    x.add_state(State(A, B, spi=0x4000, reqid=3, coaddr=COA, **cbc))
    text = host.ip_xfrm("state")
    assert f"src {A} dst {B}" in text and "spi 0x00004000 reqid 3 mode transport" in text
    assert "enc cbc(aes)" in text and "auth-trunc hmac(sha256)" in text and " 128" in text
    with pytest.raises(XfrmError, match=r"XFRM_MSG_NEWSA: .*errno 17"):
        x.add_state(State(A, B, spi=0x4000, reqid=3, **cbc))
    assert f"coa {COA}" in text
    x.update_state(State(A, B, spi=0x4000, reqid=3, coaddr=COA2, **cbc))  # a care-of address updates in place
    assert x.get_state(B, 0x4000).coaddr == COA2 and f"coa {COA2}" in host.ip_xfrm("state")
    host.run("ip", "xfrm", "state", "add", "src", B, "dst", A, "proto", "esp", "spi", "0x4001", "mode",
             "tunnel", "reqid", "9", "aead", "rfc4106(gcm(aes))", "0x" + "11" * 20, "96")
    mine = {s.spi: s for s in x.dump_states()}
    assert set(mine) == {0x4000, 0x4001}
    theirs = mine[0x4001]
    assert (theirs.src, theirs.dst, theirs.mode, theirs.reqid) == (B, A, XFRM_MODE_TUNNEL, 9)
    assert theirs.aead == Algorithm("rfc4106(gcm(aes))", bytes([0x11] * 20), 96)
    spi = x.alloc_spi(A, "2001:db8:1::3", low=0x5000, high=0x5FFF)
    assert 0x5000 <= spi <= 0x5FFF and f"spi 0x{spi:08x}" in host.ip_xfrm("state")
    x.delete_state(B, 0x4000)
    assert 0x4000 not in {s.spi for s in x.dump_states()}
    x.add_state(State(A, B, IPPROTO_AH, spi=0x4002, auth=Algorithm("hmac(sha256)", bytes(32), 128)))
    x.flush_states(IPPROTO_ESP)  # one protocol at a time: the AH SA survives
    assert [(s.proto, s.spi) for s in x.dump_states()] == [(IPPROTO_AH, 0x4002)]


def test_policy_operations_match_ip_xfrm(hosts) -> None:
    host = hosts("x")
    x = host.xfrm
    sel = Selector.host(A, B, proto=17, dport=53)
    x.add_policy(Policy(sel, XFRM_POLICY_OUT, [Template(reqid=4)], priority=10))
    x.add_policy(Policy(Selector.host(A, B, proto=135), XFRM_POLICY_OUT, [Template(optional=True)], sub=True))
    text = host.ip_xfrm("policy")
    assert f"src {A}/128 dst {B}/128 proto udp dport 53" in text
    assert "ptype sub" in text and "level use" in text and "priority 10" in text
    got = x.get_policy(sel, XFRM_POLICY_OUT)
    assert (got.priority, got.templates[0].reqid, got.sub) == (10, 4, False)
    dumped = x.dump_policies()
    assert sorted((p.sub, p.selector.proto) for p in dumped) == [(False, 17), (True, 135)]
    x.delete_policy(sel, XFRM_POLICY_OUT)
    with pytest.raises(XfrmError, match="XFRM_MSG_GETPOLICY"):
        x.get_policy(sel, XFRM_POLICY_OUT)
    x.flush_policies(sub=True)
    assert x.dump_policies() == []


def test_expire_event(hosts) -> None:
    host = hosts("x")
    listener = XfrmSocket(netns=host.name, groups=("expire",))
    host.xfrm.add_state(State(A, B, spi=0x6000, aead=GCM, lifetime={"soft_add_expires_seconds": 1,
                                                                     "hard_add_expires_seconds": 2}))
    events = [e for e in listener.events(timeout=3.5) if e.kind == "expire"]
    listener.close()
    assert [(e.hard, e.state.spi) for e in events] == [(False, 0x6000), (True, 0x6000)]
    assert host.xfrm.dump_states() == []


def test_acquire_event(hosts) -> None:
    a, b = hosts("a"), hosts("b")
    link(a, "a0", b, "b0")
    a.add_address("a0", A)
    b.add_address("b0", B)
    listener = XfrmSocket(netns=a.name, groups=("acquire",))
    a.xfrm.add_policy(Policy(Selector.host(A, B, proto=17), XFRM_POLICY_OUT, [Template(reqid=5)]))
    tx = a.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    tx.bind((A, 0))
    with contextlib.suppress(OSError):  # no SA: the kernel drops the packet and asks key managers for one
        tx.sendto(b"needs an SA", (B, 7))
    tx.close()
    events = [e for e in listener.events(timeout=2) if e.kind == "acquire"]
    listener.close()
    assert len(events) == 1 and events[0].proto == IPPROTO_ESP
    assert (events[0].selector.src, events[0].selector.dst, events[0].selector.proto) == (A, B, 17)
