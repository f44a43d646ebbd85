"""Baseline (a): ESP transport and tunnel mode between two namespaces on the stock
path, with AES-GCM and with AES-CBC + HMAC-SHA256. Each exchange is verified on
the wire (scapy decodes the capture) and by the SAs' lifetime counters."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP

from mip6d.xfrm import Algorithm, Policy, Selector, State, Template
from mip6d.xfrm.api import XFRM_MODE_TRANSPORT, XFRM_MODE_TUNNEL, XFRM_POLICY_IN, XFRM_POLICY_OUT
from netlab import Capture, Host, link

A, B = "2001:db8:1::1", "2001:db8:1::2"
A_INNER, B_INNER = "2001:db8:a::1", "2001:db8:b::1"
PAYLOAD = b"iro-baseline-payload-"
COUNT = 5

ALGORITHMS = {
    "aes-gcm": {"aead": Algorithm("rfc4106(gcm(aes))", bytes(range(20)), 128)},
    "aes-cbc-hmac-sha256": {"crypt": Algorithm("cbc(aes)", bytes(range(16))),
                            "auth": Algorithm("hmac(sha256)", bytes(range(32)), 128)},
}


def two_hosts(hosts) -> tuple[Host, Host]:
    a, b = hosts("a"), hosts("b")
    link(a, "a0", b, "b0")
    a.add_address("a0", A)
    b.add_address("b0", B)
    return a, b


def send_udp(sender: Host, receiver: Host, src: str, dst: str) -> list[bytes]:
    rx = receiver.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    rx.bind((dst, 5000))
    rx.settimeout(5)
    tx = sender.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    tx.bind((src, 0))
    for i in range(COUNT):
        tx.sendto(PAYLOAD + str(i).encode(), (dst, 5000))
    got = [rx.recv(2048) for _ in range(COUNT)]
    rx.close()
    tx.close()
    return got


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("mode", ["transport", "tunnel"])
def test_esp_between_namespaces(hosts, tmp_path: Path, algorithm: str, mode: str) -> None:
    a, b = two_hosts(hosts)
    keys = ALGORITHMS[algorithm]
    tunnel = mode == "tunnel"
    if tunnel:
        a.add_address("lo", A_INNER, 128)
        b.add_address("lo", B_INNER, 128)
        a.add_route(B_INNER, "a0")
        b.add_route(A_INNER, "b0")
        src, dst = A_INNER, B_INNER
    else:
        src, dst = A, B
    xmode = XFRM_MODE_TUNNEL if tunnel else XFRM_MODE_TRANSPORT
    sel = Selector.host(src, dst, proto=17)
    for host in (a, b):
        host.xfrm.add_state(State(A, B, spi=0x1000, mode=xmode, reqid=1, **keys))
        host.xfrm.add_state(State(B, A, spi=0x1001, mode=xmode, reqid=2, **keys))
    tmpl = Template(mode=xmode, src=A if tunnel else "::", dst=B if tunnel else "::", reqid=1)
    a.xfrm.add_policy(Policy(sel, XFRM_POLICY_OUT, [tmpl]))
    b.xfrm.add_policy(Policy(sel, XFRM_POLICY_IN, [tmpl]))

    capture = Capture(b, "b0", tmp_path / "esp.pcap")
    received = send_udp(a, b, src, dst)
    packets = capture.stop()

    assert sorted(received) == sorted(PAYLOAD + str(i).encode() for i in range(COUNT))
    esp = [p for p in packets if p.haslayer(ESP)]
    assert len(esp) == COUNT
    for pkt in esp:
        assert pkt[IPv6].nh == 50 and (pkt[IPv6].src, pkt[IPv6].dst) == (A, B)
        assert pkt[ESP].spi == 0x1000
        assert not pkt.haslayer(UDP)
        assert PAYLOAD not in bytes(pkt)
        if tunnel:  # the inner header is encrypted too
            assert socket.inet_pton(socket.AF_INET6, A_INNER) not in bytes(pkt)
    assert a.xfrm.get_state(B, 0x1000).packets == COUNT
    assert b.xfrm.get_state(B, 0x1000).packets == COUNT
    assert b.xfrm.get_state(A, 0x1001).packets == 0
