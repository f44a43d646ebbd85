"""The iro kernel series, part 1: MIPv6 signaling over IPv6/ESP with no HAO and
no RH2 (spec section 5, items 1-13). Packets are captured on the foreign link
and decoded, and decrypted, with scapy."""

from __future__ import annotations

import errno
import socket
import struct
import time
from pathlib import Path

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    MIP6MH_BU,
    ICMPv6DestUnreach,
    ICMPv6PacketTooBig,
    IPerror6,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrRouting,
    MIP6OptAltCoA,
)
from scapy.layers.ipsec import ESP, SecurityAssociation
from scapy.packet import Raw

from iro_lab import (
    IPV6_IRODST,
    IPV6_IROSRC,
    MH_OUT,
    RO,
    install_ha,
    install_mn,
    iro_state,
    recv_with_iro,
    want_iro_cmsgs,
)
from mip6_lab import COA, COA2, GCM, HA, HOA, SPI_HA_MN, SPI_MN_HA, binding_ack, binding_update, build, mh_socket
from mip6d.xfrm import Policy, Selector, State, Template, XfrmError
from mip6d.xfrm.api import IPPROTO_AH, XFRM_POLICY_IN, XFRM_POLICY_OUT, XFRM_PROTO_IRO_DST, XFRM_PROTO_IRO_SRC
from netlab import Capture, counter_delta
from test_mip6_classic import install_classic_ro

DROPS = 3  # packets sent in each drop case


def iro_lab(hosts):
    lab = build(hosts)
    install_mn(lab)
    install_ha(lab)
    return lab


def exchange(lab, seq: int, coa: str = COA):
    """MN sends a BU through its raw MH socket, the HA answers with a BA."""
    mn_sock, ha_sock = mh_socket(lab.mn, HOA), mh_socket(lab.ha, HA)
    want_iro_cmsgs(mn_sock)
    want_iro_cmsgs(ha_sock)
    mn_sock.sendto(binding_update(seq, coa), (HA, 0))
    bu = recv_with_iro(ha_sock)
    ha_sock.sendto(binding_ack(seq), (HOA, 0))
    ba = recv_with_iro(mn_sock)
    mn_sock.close()
    ha_sock.close()
    return bu, ba


def esp_packets(packets, spi: int):
    return [p for p in packets if p.haslayer(ESP) and p[ESP].spi == spi]


def decrypt(pkt, spi: int):
    sa = SecurityAssociation(ESP, spi=spi, crypt_algo="AES-GCM", crypt_key=GCM.key)
    return sa.decrypt(pkt[IPv6].copy())  # decrypt() rewrites the packet it is given


def test_bu_and_ba_are_plain_esp_24_bytes_shorter(hosts, tmp_path: Path) -> None:
    classic, iro = build(hosts), iro_lab(hosts)
    install_classic_ro(classic)
    caps = {name: Capture(lab.mn, "mn0", tmp_path / f"{name}.pcap") for name, lab in
            (("classic", classic), ("iro", iro))}
    exchange(classic, 1)
    (bu, bu_src, bu_cmsgs), (ba, ba_src, ba_cmsgs) = exchange(iro, 1)
    packets = {name: cap.stop() for name, cap in caps.items()}

    # the sockets see the home address; the new options give the on-wire CoA
    assert (bu_src, bu[2]) == (HOA, 5) and bu_cmsgs == {IPV6_IROSRC: COA, IPV6_IRODST: "::"}
    assert (ba_src, ba[2]) == (HA, 6) and ba_cmsgs == {IPV6_IROSRC: "::", IPV6_IRODST: COA}
    wire_bu, = esp_packets(packets["iro"], SPI_MN_HA)
    wire_ba, = esp_packets(packets["iro"], SPI_HA_MN)
    assert (wire_bu[IPv6].src, wire_bu[IPv6].dst, wire_bu[IPv6].nh) == (COA, HA, 50)
    assert (wire_ba[IPv6].src, wire_ba[IPv6].dst, wire_ba[IPv6].nh) == (HA, COA, 50)
    for pkt in packets["iro"]:
        assert not pkt.haslayer(IPv6ExtHdrDestOpt) and not pkt.haslayer(IPv6ExtHdrRouting)
    # decrypted with the SA's key, the BU carries the CoA in its Alternate CoA option
    clear = decrypt(wire_bu, SPI_MN_HA)
    assert clear.haslayer(MIP6MH_BU) and clear[MIP6OptAltCoA].acoa == COA
    # the same exchange in classic mode carries a HAO and an RH2, 24 bytes each
    classic_bu, = esp_packets(packets["classic"], SPI_MN_HA)
    classic_ba, = esp_packets(packets["classic"], SPI_HA_MN)
    assert classic_bu.haslayer(IPv6ExtHdrDestOpt) and classic_ba.haslayer(IPv6ExtHdrRouting)
    assert len(classic_bu) - len(wire_bu) == 24
    assert len(classic_ba) - len(wire_ba) == 24


def test_home_address_never_in_clear_on_foreign_link(hosts, tmp_path: Path) -> None:
    lab = iro_lab(hosts)
    cap = Capture(lab.mn, "mn0", tmp_path / "hoa.pcap", bpf="")
    exchange(lab, 2)
    packets = cap.stop()
    hoa = socket.inet_pton(socket.AF_INET6, HOA)
    assert len(esp_packets(packets, SPI_MN_HA)) == 1
    assert all(hoa not in bytes(p) for p in packets)


def test_ip_xfrm_shows_remap_states(hosts) -> None:
    lab = iro_lab(hosts)
    text = lab.mn.ip_xfrm("state")
    assert f"src {HOA} dst {HA}\n\tproto esp spi 0x{SPI_MN_HA:08x}" in text
    assert f"src {HOA} dst {HA}\n\tproto {XFRM_PROTO_IRO_SRC}" in text and f"coa {COA}" in text
    states = {(s.proto, s.src, s.dst): s for s in lab.mn.xfrm.dump_states()}
    assert states[(XFRM_PROTO_IRO_SRC, HOA, HA)].coaddr == COA
    assert states[(XFRM_PROTO_IRO_DST, HA, HOA)].coaddr == COA
    assert states[(XFRM_PROTO_IRO_SRC, HOA, HA)].mode == RO


def test_handover_updates_coa_in_place(hosts, tmp_path: Path) -> None:
    lab = iro_lab(hosts)
    exchange(lab, 3)  # bundles now exist via CoA
    for host, (src, dst, proto) in ((lab.mn, (HOA, HA, XFRM_PROTO_IRO_SRC)), (lab.mn, (HA, HOA, XFRM_PROTO_IRO_DST)),
                                    (lab.ha, (HA, HOA, XFRM_PROTO_IRO_DST))):
        host.xfrm.update_state(iro_state(src, dst, proto, COA2))
    cap = Capture(lab.mn, "mn0", tmp_path / "handover.pcap")
    (_, _, bu_cmsgs), (_, _, ba_cmsgs) = exchange(lab, 4, COA2)
    packets = cap.stop()
    wire_bu, = esp_packets(packets, SPI_MN_HA)
    wire_ba, = esp_packets(packets, SPI_HA_MN)
    assert (wire_bu[IPv6].src, wire_ba[IPv6].dst) == (COA2, COA2)
    assert bu_cmsgs[IPV6_IROSRC] == COA2 and ba_cmsgs[IPV6_IRODST] == COA2
    assert f"coa {COA2}" in lab.mn.ip_xfrm("state") and f"coa {COA}\n" not in lab.mn.ip_xfrm("state")


def test_two_remap_states_rewrite_both_addresses(hosts, tmp_path: Path) -> None:
    """Traffic between two mobile nodes is remapped at both ends. The ESP layer of
    the bundle applies the first remap state (patch 15); the second gets a layer."""
    lab = iro_lab(hosts)
    peer_coa = "2001:db8:200::2"
    lab.ha.add_address("ha0", peer_coa)
    udp = Selector.host(HOA, HA, proto=17)
    lab.mn.xfrm.add_state(iro_state(HOA, HA, XFRM_PROTO_IRO_DST, peer_coa))
    lab.mn.xfrm.add_policy(Policy(udp, XFRM_POLICY_OUT, [Template()]))
    both = [Template(XFRM_PROTO_IRO_SRC, RO), Template(XFRM_PROTO_IRO_DST, RO)]
    lab.mn.xfrm.add_policy(Policy(udp, XFRM_POLICY_OUT, both, sub=True))
    cap = Capture(lab.mn, "mn0", tmp_path / "both.pcap")
    tx = lab.mn.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    tx.bind((HOA, 0))
    tx.sendto(b"to a mobile peer", (HA, 9))
    tx.close()
    wire, = esp_packets(cap.stop(), SPI_MN_HA)
    assert (wire[IPv6].src, wire[IPv6].dst) == (COA, peer_coa)
    assert decrypt(wire, SPI_MN_HA)[UDP].load == b"to a mobile peer"


def test_remap_state_without_care_of_address_counts_proto_error(hosts, tmp_path: Path) -> None:
    """A remap state whose care-of address is still :: has nothing to send from:
    each BU is dropped after ESP, counted, and never leaves from the HoA."""
    lab = iro_lab(hosts)
    lab.mn.xfrm.update_state(iro_state(HOA, HA, XFRM_PROTO_IRO_SRC, "::"))
    cap = Capture(lab.mn, "mn0", tmp_path / "unset.pcap")
    assert refused_bus(lab, 80, errno.EADDRNOTAVAIL) == {"XfrmOutStateProtoError": DROPS}
    assert not esp_packets(cap.stop(), SPI_MN_HA)


def refused_bus(lab, first_seq: int, expected_errno: int) -> dict[str, int]:
    """Sends DROPS BUs that the MN's kernel refuses with expected_errno; returns
    the xfrm_stat counters they moved."""
    before = lab.mn.xfrm_stat()
    sock = mh_socket(lab.mn, HOA)
    for seq in range(first_seq, first_seq + DROPS):
        with pytest.raises(OSError) as raised:
            sock.sendto(binding_update(seq, COA), (HA, 0))
        assert raised.value.errno == expected_errno
    sock.close()
    return counter_delta(before, lab.mn.xfrm_stat())


def send_esp(src_host, src: str, dst: str, spi: int, count: int = DROPS) -> None:
    raw = src_host.socket(socket.AF_INET6, socket.SOCK_RAW, 50)
    raw.bind((src, 0))
    for seq in range(1, count + 1):
        raw.sendto(struct.pack("!II", spi, seq) + bytes(48), (dst, 0))
    raw.close()
    time.sleep(0.5)


def send_mh(host, bind: str, dst: str, messages: list[bytes]) -> None:
    sock = mh_socket(host, bind)
    for message in messages:
        sock.sendto(message, (dst, 0))
    sock.close()
    time.sleep(0.5)  # let them arrive before the counters are read


def test_unknown_spi_on_coa_counts_no_states(hosts) -> None:
    lab = iro_lab(hosts)
    before = lab.mn.xfrm_stat()
    send_esp(lab.ha, HA, COA, 0x7777)
    assert counter_delta(before, lab.mn.xfrm_stat()).get("XfrmInNoStates") == DROPS


def test_ba_without_remap_state_counts_no_states(hosts) -> None:
    lab = iro_lab(hosts)
    lab.mn.xfrm.delete_state(HOA, 0, XFRM_PROTO_IRO_DST, src=HA)
    before = lab.mn.xfrm_stat()
    send_mh(lab.ha, HA, HOA, [binding_ack(10 + seq) for seq in range(DROPS)])
    assert counter_delta(before, lab.mn.xfrm_stat()).get("XfrmInNoStates") == DROPS


def test_wrong_coa_counts_state_mismatch(hosts) -> None:
    lab = iro_lab(hosts)
    # the HA expects this MN at CoA2 only; its BUs come from CoA
    lab.ha.xfrm.add_state(iro_state(HOA, HA, XFRM_PROTO_IRO_SRC, COA2))
    before = lab.ha.xfrm_stat()
    send_mh(lab.mn, HOA, HA, [binding_update(20 + seq, COA) for seq in range(DROPS)])
    assert counter_delta(before, lab.ha.xfrm_stat()) == {"XfrmInStateMismatch": DROPS}


def test_rule_changes_apply_to_the_next_packet(hosts) -> None:
    """Input remembers each SA's IRO rule (patch 11): a more specific rule added
    after traffic, or a rule deleted, must still apply from the next packet on."""
    lab = iro_lab(hosts)
    (_, _, cmsgs), _ = exchange(lab, 50)  # the HA's SA now holds the wildcard rule
    assert cmsgs[IPV6_IROSRC] == COA
    lab.ha.xfrm.add_state(iro_state(HOA, HA, XFRM_PROTO_IRO_SRC, COA2))
    before = lab.ha.xfrm_stat()
    send_mh(lab.mn, HOA, HA, [binding_update(51 + seq, COA) for seq in range(DROPS)])
    assert counter_delta(before, lab.ha.xfrm_stat()) == {"XfrmInStateMismatch": DROPS}

    lab.ha.xfrm.delete_state(HA, 0, XFRM_PROTO_IRO_SRC, src=HOA)  # back to the wildcard rule
    (_, _, cmsgs), _ = exchange(lab, 60)  # the MN's SA now holds its IRO_DST rule
    assert cmsgs[IPV6_IROSRC] == COA
    lab.mn.xfrm.delete_state(HOA, 0, XFRM_PROTO_IRO_DST, src=HA)
    before = lab.mn.xfrm_stat()
    send_mh(lab.ha, HA, HOA, [binding_ack(70 + seq) for seq in range(DROPS)])
    assert counter_delta(before, lab.mn.xfrm_stat()).get("XfrmInNoStates") == DROPS


def test_recv_options_give_unspecified_when_not_remapped(hosts) -> None:
    lab = iro_lab(hosts)
    lab.mn.xfrm.delete_state(HA, 0, XFRM_PROTO_IRO_SRC, src=HOA)  # the BU now leaves from the HoA
    (bu, src, cmsgs), _ = exchange(lab, 30)
    assert bu[2] == 5
    assert src == HOA and cmsgs == {IPV6_IROSRC: "::", IPV6_IRODST: "::"}


def test_ha_without_iro_never_sees_the_bu(hosts) -> None:
    lab = build(hosts)
    install_mn(lab)  # the HA stays classic: no remap state
    ha_sock = mh_socket(lab.ha, HA)
    ha_sock.settimeout(2)
    mn_sock = mh_socket(lab.mn, HOA)
    mn_sock.sendto(binding_update(40, COA), (HA, 0))
    with pytest.raises(TimeoutError):
        ha_sock.recv(2048)
    ha_sock.close()
    mn_sock.close()


def test_unprotected_traffic_is_not_remapped(hosts, tmp_path: Path) -> None:
    lab = iro_lab(hosts)
    udp = Selector.host(HOA, HA, proto=17)
    lab.mn.xfrm.add_policy(Policy(udp, XFRM_POLICY_OUT, [Template(XFRM_PROTO_IRO_SRC, RO)], sub=True))
    cap = Capture(lab.mn, "mn0", tmp_path / "udp.pcap")
    before = lab.mn.xfrm_stat()
    tx = lab.mn.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    tx.bind((HOA, 0))
    failures = 0
    for _ in range(DROPS):
        try:
            tx.sendto(b"not IPsec", (HA, 9))
        except OSError as err:
            assert err.errno == errno.EINVAL
            failures += 1
    tx.close()
    packets = cap.stop()
    assert failures == DROPS
    assert counter_delta(before, lab.mn.xfrm_stat()).get("XfrmOutBundleGenError") == DROPS
    assert not [p for p in packets if p.haslayer(IPv6) and p[IPv6].src == COA and p[IPv6].nh == 17]


def test_encapsulated_esp_is_not_remapped(hosts, tmp_path: Path) -> None:
    """ESP in UDP carries a checksum over the home address, computed before any
    remap could run: a bundle with it is refused (XfrmOutBundleGenError)."""
    lab = iro_lab(hosts)
    lab.mn.xfrm.delete_state(HA, SPI_MN_HA, 50, src=HOA)
    lab.mn.run("ip", "xfrm", "state", "add", "src", HOA, "dst", HA, "proto", "esp", "spi", hex(SPI_MN_HA),
               "mode", "transport", "aead", GCM.name, "0x" + GCM.key.hex(), str(GCM.extra_bits),
               "encap", "espinudp", "4500", "4500", "::")
    cap = Capture(lab.mn, "mn0", tmp_path / "encap.pcap", bpf="")
    assert refused_bus(lab, 90, errno.EINVAL) == {"XfrmOutBundleGenError": DROPS}
    hoa = socket.inet_pton(socket.AF_INET6, HOA)
    assert not [p for p in cap.stop() if hoa in bytes(p)]


def test_ambiguous_spi_counts_no_states(hosts) -> None:
    lab = iro_lab(hosts)
    other = "2001:db8:100::99"
    # a second SA with the BA's SPI towards another address, also remapped from the CoA
    lab.mn.xfrm.add_state(State(HA, other, spi=SPI_HA_MN, aead=GCM))
    lab.mn.xfrm.add_state(iro_state(HA, other, XFRM_PROTO_IRO_DST, COA))
    before = lab.mn.xfrm_stat()
    send_mh(lab.ha, HA, HOA, [binding_ack(50 + seq) for seq in range(DROPS)])
    assert counter_delta(before, lab.mn.xfrm_stat()).get("XfrmInNoStates") == DROPS


def test_spi_of_an_unrelated_sa_does_not_hide_the_remapped_one(hosts) -> None:
    """Patch 13: ESP to a CoA is matched through the IRO_DST states of that CoA, so an
    SA elsewhere with the same SPI, which no remap state points to, changes nothing
    (a lookup by SPI alone had to give up on it as ambiguous)."""
    lab = iro_lab(hosts)
    lab.mn.xfrm.add_state(State(HA, "2001:db8:100::99", spi=SPI_HA_MN, aead=GCM))
    before = lab.mn.xfrm_stat()
    (_, _, _), (_, _, cmsgs) = exchange(lab, 40)
    assert cmsgs[IPV6_IRODST] == COA
    assert counter_delta(before, lab.mn.xfrm_stat()) == {}


def test_acquire_states_of_remap_templates_leave_remapping_on(hosts) -> None:
    """Patch 14: with a key manager listening, a remap template without its state makes
    an acquire state of that protocol. Deleting it (as the key manager does, or its
    expiry) must not count as deleting a remap state: two of them, as many as the MN's
    remap states, used to switch remapping off for the MN's BA."""
    lab = iro_lab(hosts)
    acquire = lab.mn.socket(socket.AF_NETLINK, socket.SOCK_RAW, 6)  # NETLINK_XFRM
    acquire.bind((0, 1))  # XFRMGRP_ACQUIRE: a key manager listens
    peers = ("2001:db8:200::31", "2001:db8:200::32")  # on the MN's link, so routed
    sender = lab.mn.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sender.bind((HOA, 0))
    for n, peer in enumerate(peers):
        lab.mn.xfrm.add_state(State(HOA, peer, spi=0x9000 + n, aead=GCM))
        lab.mn.xfrm.add_policy(Policy(Selector.host(HOA, peer, proto=17), XFRM_POLICY_OUT,
                                      [Template(), Template(XFRM_PROTO_IRO_SRC, RO)]))
        sender.sendto(b"acquire", (peer, 9))  # the remap state is missing: an acquire state
    sender.close()
    acquire.close()
    states = lab.mn.run("ip", "xfrm", "state")  # iproute2 shows acquire states too
    for peer in peers:
        assert f"src {HOA} dst {peer}\n\tproto 253 reqid 0 mode ro" in states, states
        lab.mn.xfrm.delete_state(peer, 0, XFRM_PROTO_IRO_SRC, src=HOA)
    before = lab.mn.xfrm_stat()
    (_, _, _), (_, _, cmsgs) = exchange(lab, 45)
    assert cmsgs[IPV6_IRODST] == COA
    assert counter_delta(before, lab.mn.xfrm_stat()) == {}


def test_ah_with_iro_is_refused(hosts) -> None:
    lab = build(hosts)
    with pytest.raises(XfrmError, match="IRO remapping cannot be used with AH"):
        lab.mn.xfrm.add_policy(Policy(MH_OUT, XFRM_POLICY_OUT, [
            Template(IPPROTO_AH), Template(XFRM_PROTO_IRO_SRC, RO, optional=True)]))


def test_remap_state_validation(hosts) -> None:
    host = hosts("x")
    with pytest.raises(XfrmError, match="XFRM_MSG_NEWSA"):
        host.xfrm.add_state(State(HOA, HA, XFRM_PROTO_IRO_SRC, mode=0, coaddr=COA))  # transport mode
    with pytest.raises(XfrmError, match="XFRM_MSG_NEWSA"):
        host.xfrm.add_state(State(HOA, HA, XFRM_PROTO_IRO_SRC, mode=RO))  # no care-of address
    with pytest.raises(XfrmError, match="XFRM_MSG_NEWSA"):
        host.xfrm.add_state(State(HOA, HA, XFRM_PROTO_IRO_SRC, spi=5, mode=RO, coaddr=COA))


def test_packet_too_big_about_remapped_esp_lowers_pmtu(hosts) -> None:
    """esp6_err() finds the SA of ESP sent to a care-of address by SPI."""
    lab = iro_lab(hosts)
    exchange(lab, 60)
    quoted = IPv6(src=HA, dst=COA, nh=50) / ESP(spi=SPI_HA_MN, seq=1) / Raw(bytes(64))
    ptb = ICMPv6PacketTooBig(mtu=1280) / quoted
    icmp = lab.mn.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    icmp.bind((COA, 0))
    icmp.sendto(bytes(ptb), (HA, 0))
    icmp.close()
    time.sleep(0.5)
    assert "mtu 1280" in lab.ha.run("ip", "-6", "route", "get", COA, "from", HA)


@pytest.mark.parametrize("cloned", [False, True], ids=["private", "cloned"])
def test_errors_about_remapped_packets_use_on_wire_addresses(hosts, tmp_path: Path, cloned: bool) -> None:
    """A port unreachable about UDP that reached the CoA inside ESP comes from
    the CoA and quotes the datagram with its on-wire addresses; the HoA does
    not leak on the foreign link. "cloned": a raw UDP socket holds a clone of
    the datagram, so its header is shared when the error is built."""
    lab = iro_lab(hosts)
    raw_udp = lab.mn.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_UDP) if cloned else None
    udp_in = udp_out = Selector.host(HA, HOA, proto=17)
    lab.ha.xfrm.add_policy(Policy(udp_out, XFRM_POLICY_OUT, [Template()]))
    lab.ha.xfrm.add_policy(Policy(udp_out, XFRM_POLICY_OUT, [Template(XFRM_PROTO_IRO_DST, RO)], sub=True))
    lab.mn.xfrm.add_policy(Policy(udp_in, XFRM_POLICY_IN, [Template()]))
    lab.mn.xfrm.add_policy(Policy(udp_in, XFRM_POLICY_IN, [Template(XFRM_PROTO_IRO_DST, RO, optional=True)],
                                  sub=True))
    cap = Capture(lab.mn, "mn0", tmp_path / "unreach.pcap", bpf="")
    tx = lab.ha.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    tx.bind((HA, 0))
    tx.sendto(b"to a closed port", (HOA, 9999))
    tx.close()
    time.sleep(1)
    packets = cap.stop()
    if raw_udp is not None:
        raw_udp.settimeout(1)
        held = raw_udp.recv(2048)
        raw_udp.close()
        assert held.endswith(b"to a closed port")
    errors = [p for p in packets if p.haslayer(ICMPv6DestUnreach)]
    assert len(errors) == 1
    error = errors[0]
    assert (error[IPv6].src, error[IPv6].dst) == (COA, HA)
    assert (error[IPerror6].src, error[IPerror6].dst, error[IPerror6].nh) == (HA, COA, 17)
    hoa = socket.inet_pton(socket.AF_INET6, HOA)
    assert all(hoa not in bytes(p) for p in packets)


def test_error_relayed_by_a_tunnel_keeps_the_inner_addresses(hosts) -> None:
    """ip6ip6_err() relays an error about a tunnelled packet to its inner
    source: the network header is then the quoted inner packet's, the secpath
    the remapped outer one's. Only addresses the remap wrote are put back, so
    the relayed error quotes the inner packet as it was sent."""
    lab = iro_lab(hosts)
    icmp = Selector.host(HA, HOA, proto=58)
    lab.ha.xfrm.add_policy(Policy(icmp, XFRM_POLICY_OUT, [Template()]))
    lab.ha.xfrm.add_policy(Policy(icmp, XFRM_POLICY_OUT, [Template(XFRM_PROTO_IRO_DST, RO)], sub=True))
    lab.mn.xfrm.add_policy(Policy(icmp, XFRM_POLICY_IN, [Template()]))
    lab.mn.xfrm.add_policy(Policy(icmp, XFRM_POLICY_IN, [Template(XFRM_PROTO_IRO_DST, RO, optional=True)], sub=True))
    inner_src, inner_dst = "2001:db8:300::1", "2001:db8:400::1"
    lab.mn.add_address("lo", inner_src, 128)
    lab.mn.run("ip", "-6", "tunnel", "add", "ipt0", "mode", "ip6ip6", "local", HOA, "remote", HA)
    lab.mn.run("ip", "link", "set", "ipt0", "up")
    listener = lab.mn.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    listener.bind((inner_src, 0))
    listener.settimeout(5)
    tunnelled = IPv6(src=HOA, dst=HA, nh=41) / IPv6(src=inner_src, dst=inner_dst) / UDP(sport=1234, dport=5678)
    sender = lab.ha.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    sender.bind((HA, 0))
    sender.sendto(bytes(ICMPv6DestUnreach(code=3) / tunnelled / Raw(b"inner")), (HOA, 0))
    sender.close()
    data, _ = recv_icmpv6(listener, 1)
    listener.close()
    relayed = ICMPv6DestUnreach(data)
    assert (relayed[IPerror6].src, relayed[IPerror6].dst) == (inner_src, inner_dst)
    assert lab.ha.xfrm.get_state(HOA, 0, XFRM_PROTO_IRO_DST, HA).packets >= 1  # the error went out remapped


def recv_icmpv6(sock: socket.socket, icmp_type: int) -> tuple[bytes, str]:
    """The next ICMPv6 message of a type; a raw ICMPv6 socket also gets ND."""
    while True:
        data, (src, *_) = sock.recvfrom(2048)
        if data[0] == icmp_type:
            return data, src


def test_mobile_prefix_solicitation_and_advertisement_are_remapped(hosts, tmp_path: Path) -> None:
    """Item 4: MPS/MPA (ICMPv6 146/147) under ESP transport travel CoA<->HA as
    IPv6/ESP; the sockets see the HoA."""
    lab = iro_lab(hosts)
    mps, mpa = Selector.host(HOA, HA, proto=58, sport=146), Selector.host(HA, HOA, proto=58, sport=147)
    for host, sel, direction, remap in (
        (lab.mn, mps, XFRM_POLICY_OUT, XFRM_PROTO_IRO_SRC), (lab.ha, mps, XFRM_POLICY_IN, XFRM_PROTO_IRO_SRC),
        (lab.ha, mpa, XFRM_POLICY_OUT, XFRM_PROTO_IRO_DST), (lab.mn, mpa, XFRM_POLICY_IN, XFRM_PROTO_IRO_DST),
    ):
        host.xfrm.add_policy(Policy(sel, direction, [Template()]))
        host.xfrm.add_policy(Policy(sel, direction, [Template(remap, RO, optional=True)], sub=True))
    socks = {}
    for name, host, addr in (("mn", lab.mn, HOA), ("ha", lab.ha, HA)):
        sock = host.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        sock.bind((addr, 0))
        sock.settimeout(5)
        socks[name] = sock
    cap = Capture(lab.mn, "mn0", tmp_path / "mps.pcap")
    socks["mn"].sendto(struct.pack("!BBHHH", 146, 0, 0, 0x1234, 0), (HA, 0))
    sol, sol_src = recv_icmpv6(socks["ha"], 146)
    socks["ha"].sendto(struct.pack("!BBHHH", 147, 0, 0, 0x1234, 0), (HOA, 0))
    adv, adv_src = recv_icmpv6(socks["mn"], 147)
    packets = cap.stop()
    for sock in socks.values():
        sock.close()
    assert (sol[0], sol_src, adv[0], adv_src) == (146, HOA, 147, HA)
    esp = [p for p in packets if p.haslayer(ESP)]
    assert sorted((p[IPv6].src, p[IPv6].dst, p[IPv6].nh) for p in esp) == sorted([(COA, HA, 50), (HA, COA, 50)])
    hoa = socket.inet_pton(socket.AF_INET6, HOA)
    assert all(hoa not in bytes(p) for p in packets)
