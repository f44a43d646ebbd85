"""A real mip6d home agent against hand-made Binding Updates: every bad one is
rejected, the daemon keeps running, and its binding cache does not change."""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6

import mobility_lab as ml
from mip6d import ipsec
from mip6d.config import parse_keys
from mip6d.daemon import bound_to_addresses
from mip6d.kernel import IFA_F_HOMEADDRESS
from mip6d.mh import AlternateCareOfAddress, BaStatus, BindingAcknowledgement, BindingUpdate, decode, encode
from mip6d.xfrm import State
from netlab import Host

HOA2 = "2001:db8:1::20"
COA = ml.DIRECT_COA
SPI_MN2_HA, SPI_HA_MN2 = 0x2100, 0x2101
IPV6_CHECKSUM = 7


def keys(payload: bool = False) -> str:
    return ml.keys_file(payload) + (
        f"add {HOA2} {ml.HA} esp {SPI_MN2_HA:#x} -m transport -u 31 -E aes-gcm-16 {ml.KEY};\n"
        f"add {ml.HA} {HOA2} esp {SPI_HA_MN2:#x} -m transport -u 32 -E aes-gcm-16 {ml.KEY2};\n")


def ha_config(iro: bool) -> str:
    return (f"NodeConfig HA;\nDebugLevel 1;\nUseMnHaIPsec enabled;\nUseMnHaIRO {'enabled' if iro else 'disabled'};\n"
            f"HaMaxBindingLife 60;\nInterface \"ha0\";\n"
            f"IPsecPolicySet {{\n    HomeAgentAddress {ml.HA};\n    HomeAddress {ml.HOA}/64;\n"
            f"    IPsecPolicy HomeRegBinding UseESP {ml.REQ_BU} {ml.REQ_BA};\n}}\n"
            f"IPsecPolicySet {{\n    HomeAgentAddress {ml.HA};\n    HomeAddress {HOA2}/64;\n"
            f"    IPsecPolicy HomeRegBinding UseESP 31 32;\n}}\n")


def mn_side(mn: Host, mode: ipsec.Mode, hoa: str, reqids: tuple[int, int]) -> None:
    """What a MN daemon would install for `hoa`, done by hand so the test can forge BUs."""
    mn.ipr.addr("add", index=mn.ifindex("lo"), address=hoa, prefixlen=128, flags=0x02 | IFA_F_HOMEADDRESS)
    for policy in ipsec.esp_signaling_policies(hoa, ml.HA, *reqids) + ipsec.mn_sub_policies(mode, hoa, ml.HA):
        mn.xfrm.add_policy(policy)
    for state in ipsec.mn_states(mode, hoa, ml.HA, COA):
        mn.xfrm.add_state(state)


def ha_lab(hosts, tmp_path: Path, iro: bool, start: bool = True):  # type: ignore[no-untyped-def]
    """A HA daemon (started unless `start` is false) and, by hand, a MN able to send
    it BUs from HOA through its SA."""
    mn, ha = ml.direct_pair(hosts)
    for state in parse_keys(keys()):
        mn.xfrm.add_state(bound_to_addresses(state))
    mn_side(mn, ipsec.IRO if iro else ipsec.CLASSIC, ml.HOA, (ml.REQ_BU, ml.REQ_BA))
    (tmp_path / "ha.conf").write_text(ha_config(iro))
    (tmp_path / "ha.keys").write_text(keys())
    daemon = ml.Daemon(ha, tmp_path / "ha.conf", tmp_path / "ha.keys", tmp_path / "ha.ctl", tmp_path / "ha.log")
    if start:
        daemon.start()
    sock = mn.socket(socket.AF_INET6, socket.SOCK_RAW, 135)
    sock.bind((ml.HOA, 0))
    return mn, ha, daemon, sock


def bu(seq: int, lifetime: int = 15, hoa: str = ml.HOA) -> bytes:
    message = BindingUpdate(seq=seq, lifetime=lifetime, ack=True, home=True,
                            options=(AlternateCareOfAddress(address=COA),))
    return encode(message, hoa, ml.HA)


def expect_ba(sock: socket.socket, timeout: float = 10) -> BindingAcknowledgement:
    sock.settimeout(timeout)
    data, addr = sock.recvfrom(2048)
    message = decode(data, addr[0], ml.HOA)
    assert isinstance(message, BindingAcknowledgement)
    return message


def expect_nothing(sock: socket.socket, timeout: float = 2) -> None:
    sock.settimeout(timeout)
    with pytest.raises(TimeoutError):
        sock.recvfrom(2048)


@pytest.mark.parametrize("iro", [False, True], ids=["classic", "iro"])
def test_bad_binding_updates_leave_the_cache_alone(hosts, tmp_path: Path, iro: bool) -> None:
    mode = ipsec.IRO if iro else ipsec.CLASSIC
    mn, ha, daemon, sock = ha_lab(hosts, tmp_path, iro)
    mn_side(mn, mode, HOA2, (31, 32))
    states = [bound_to_addresses(s) for s in parse_keys(keys())]
    try:
        # a lifetime above HaMaxBindingLife (4000 s asked, 60 s allowed) is granted at the maximum
        sock.sendto(bu(10, lifetime=1000), (ml.HA, 0))
        ba = expect_ba(sock)
        assert (ba.status, ba.seq, ba.lifetime) == (BaStatus.ACCEPTED, 10, 15)
        cache = daemon.ctl("bindings")
        assert [(b["hoa"], b["coa"], b["seq"], b["lifetime"]) for b in cache] == [(ml.HOA, COA, 10, 60)]

        # stale sequence numbers: 135 with the HA's last sequence number
        for stale in (10, 9, (10 - 20000) % 65536):
            sock.sendto(bu(stale), (ml.HA, 0))
            ba = expect_ba(sock)
            assert (ba.status, ba.seq) == (BaStatus.SEQUENCE_OUT_OF_WINDOW, 10)

        # not under any SA: sent from the CoA in clear, dropped by the HA's kernel
        before = ha.xfrm_stat()
        plain = mn.socket(socket.AF_INET6, socket.SOCK_RAW, 135)
        plain.bind((COA, 0))
        plain.sendto(encode(BindingUpdate(seq=11, lifetime=15, ack=True, home=True), COA, ml.HA), (ml.HA, 0))
        plain.close()
        expect_nothing(sock)
        assert ha.xfrm_stat()["XfrmInTmplMismatch"] - before["XfrmInTmplMismatch"] == 1

        # malformed: bad checksum (our own, kernel checksumming off), bad header length, truncated option
        raw = mn.socket(socket.AF_INET6, socket.SOCK_RAW, 135)
        raw.setsockopt(socket.IPPROTO_IPV6, IPV6_CHECKSUM, -1)
        raw.bind((ml.HOA, 0))
        good = bytearray(bu(12))
        good[4:6] = struct.pack("!H", (int.from_bytes(good[4:6], "big") + 1) & 0xFFFF)
        raw.sendto(bytes(good), (ml.HA, 0))
        raw.close()
        too_long = bytearray(bu(13))
        too_long[1] += 2  # claims 16 more bytes than sent
        truncated = bytes([59, 1, 5, 0, 0, 0]) + struct.pack("!HHH", 14, 0x8000 | 0x4000, 15) + bytes([3, 16, 0, 0])
        for packet in (bytes(too_long), truncated):
            sock.sendto(packet, (ml.HA, 0))
        expect_nothing(sock)
        assert daemon.ctl("status")["malformed"] == 1  # only the truncated option reaches the daemon

        # a BU for HoA2 protected by HoA1's SA (same SPI and key, forged on the MN)
        sa1 = next(s for s in states if s.spi == ml.SPI_MN_HA)
        mn.xfrm.delete_state(sa1.dst, sa1.spi, sa1.proto, sa1.src)
        forged = State(HOA2, ml.HA, spi=sa1.spi, reqid=31, aead=sa1.aead, selector=sa1.selector)
        mn.xfrm.delete_state(ml.HA, SPI_MN2_HA, 50, HOA2)
        mn.xfrm.add_state(forged)
        sock2 = mn.socket(socket.AF_INET6, socket.SOCK_RAW, 135)
        sock2.bind((HOA2, 0))
        sock2.sendto(bu(1, hoa=HOA2), (ml.HA, 0))
        expect_nothing(sock2)
        sock2.close()

        assert daemon.proc is not None and daemon.proc.poll() is None
        cache = daemon.ctl("bindings")
        assert [(b["hoa"], b["coa"], b["seq"], b["lifetime"]) for b in cache] == [(ml.HOA, COA, 10, 60)]
    finally:
        sock.close()
        assert daemon.stop() == 0
        print(daemon.log.read_text()[-3000:])


def test_a_binding_the_kernel_refuses_gets_status_128_and_leaves_nothing(hosts, tmp_path: Path) -> None:
    """The flow-based tunnel device deleted behind the daemon's back: the first binding's
    guard filter and route are refused (ENODEV) in a batch made in the event loop's thread, the half-made
    binding is removed, the BA carries 128, and the daemon goes on."""
    _mn, ha, daemon, sock = ha_lab(hosts, tmp_path, iro=True)
    try:
        ha.run("ip", "link", "del", "mip6ha")
        sock.sendto(bu(1), (ml.HA, 0))
        ba = expect_ba(sock)
        assert (ba.status, ba.seq, ba.lifetime) == (BaStatus.REASON_UNSPECIFIED, 1, 0)
        assert daemon.ctl("bindings") == []
        assert COA not in ha.ip_xfrm()  # no remap state
        assert ha.run("ip", "-6", "route", "show", ml.HOA).strip() == ""
        assert ha.run("ip", "-6", "neigh", "show", "proxy").strip() == ""
        log = daemon.log.read_text()
        assert f"binding {ml.HOA} -> {COA}: ingress filter 1 on mip6ha: {ml.HOA} from {COA}: No such device" in log
        assert daemon.proc is not None and daemon.proc.poll() is None
    finally:
        sock.close()
        assert daemon.stop() == 0
        print(daemon.log.read_text()[-3000:])


def test_a_move_the_kernel_refuses_leaves_the_binding_at_its_care_of_address(hosts, tmp_path: Path) -> None:
    """The guard's qdisc deleted behind the daemon's back: a move's filter is refused after
    its route and remap state were replaced, so the whole batch is put back to the bound
    CoA, which the binding cache still holds, and the BU gets 128."""
    _mn, ha, daemon, sock = ha_lab(hosts, tmp_path, iro=True)
    stranger = "2001:db8:a1::99"
    try:
        sock.sendto(bu(1), (ml.HA, 0))
        assert expect_ba(sock).status == BaStatus.ACCEPTED
        ha.run("tc", "qdisc", "del", "dev", "mip6ha", "clsact")
        moved = encode(BindingUpdate(seq=2, lifetime=15, ack=True, home=True,
                                     options=(AlternateCareOfAddress(address=stranger),)), ml.HOA, ml.HA)
        sock.sendto(moved, (ml.HA, 0))
        ml.wait_for(lambda: [(t["seq"], t["status"]) for t in daemon.ctl("status")["recent_bu"]][-1:] == [(2, 128)],
                    10, "the refused move")
        assert [(b["coa"], b["seq"]) for b in daemon.ctl("bindings")] == [(COA, 1)]
        route = ha.run("ip", "-6", "route", "show", ml.HOA)
        assert f"dst {COA} " in route and stranger not in route, route
        assert COA in ha.ip_xfrm() and stranger not in ha.ip_xfrm()  # the remap state is back at COA too
        assert f"ingress filter 1 on mip6ha: {ml.HOA} from {stranger}" in daemon.log.read_text()
    finally:  # the control socket answered after the refusal: the daemon went on
        sock.close()
        assert daemon.stop() == 0
        print(daemon.log.read_text()[-3000:])


def guard_drops(ha: ml.Host) -> int:
    """Packets the tunnel guard's catch-all filter on mip6ha's ingress dropped (its gact counter)."""
    filters = json.loads(ha.run("tc", "-s", "-j", "filter", "show", "dev", "mip6ha", "ingress"))
    return sum(action["stats"]["packets"] for f in filters for action in f.get("options", {}).get("actions", []))


def udp_no_ports(ha: ml.Host) -> int:
    """Datagrams delivered to a closed UDP port: where an admitted inner packet ends."""
    counters = dict(line.split() for line in ha.run("cat", "/proc/net/snmp6").splitlines())
    return int(counters["Udp6NoPorts"])


def bound(daemon: ml.Daemon) -> dict[str, tuple[str, int]]:
    """HoA -> (CoA, sequence number), from the control socket."""
    return {b["hoa"]: (b["coa"], b["seq"]) for b in daemon.ctl("bindings")}


def test_the_ha_decapsulates_ip6ip6_only_from_the_bound_care_of_address(hosts, tmp_path: Path) -> None:
    """RFC 6275 10.4.5: the flow-based tunnel device takes ip6ip6 from anyone, so a
    filter per binding admits a decapsulated packet from the HoA only if its outer
    source is that binding's CoA; anything else is dropped and counted, and a move
    hands the filter to the new CoA."""
    mn, ha, daemon, sock = ha_lab(hosts, tmp_path, iro=True)
    stranger = "2001:db8:a1::99"
    mn.run("ip", "-6", "addr", "add", f"{stranger}/64", "dev", "mn0", "nodad")

    def send_from(outer_src: str, inner_src: str = ml.HOA) -> tuple[int, int]:
        """(inner datagrams delivered, packets the guard dropped) moved by one ip6ip6 packet."""
        delivered, dropped = udp_no_ports(ha), guard_drops(ha)
        raw = mn.socket(socket.AF_INET6, socket.SOCK_RAW, 41)
        raw.bind((outer_src, 0))
        raw.sendto(bytes(IPv6(src=inner_src, dst=ml.HA) / UDP(sport=7, dport=9) / b"tunnelled"), (ml.HA, 0))
        raw.close()

        def moved() -> tuple[int, int] | None:  # the packet is either delivered or dropped
            change = (udp_no_ports(ha) - delivered, guard_drops(ha) - dropped)
            return change if any(change) else None

        return ml.wait_for(moved, 10, f"the ip6ip6 packet from {outer_src}")  # type: ignore[no-any-return]

    try:
        assert send_from(COA) == (0, 1)  # nothing bound yet
        sock.sendto(bu(1), (ml.HA, 0))
        assert expect_ba(sock).status == BaStatus.ACCEPTED
        assert send_from(COA) == (1, 0)
        assert send_from(stranger) == (0, 1)
        assert send_from(COA, inner_src=stranger) == (0, 1)  # the bound CoA, but not for that inner source
        mn_side(mn, ipsec.IRO, HOA2, (31, 32))  # a second MN behind the same CoA
        sock2 = mn.socket(socket.AF_INET6, socket.SOCK_RAW, 135)
        sock2.bind((HOA2, 0))
        sock2.sendto(bu(1, hoa=HOA2), (ml.HA, 0))
        sock2.close()
        ml.wait_for(lambda: bound(daemon) == {ml.HOA: (COA, 1), HOA2: (COA, 1)}, 10, "the second binding")
        assert send_from(COA, inner_src=HOA2) == (1, 0)
        moved = encode(BindingUpdate(seq=2, lifetime=15, ack=True, home=True,
                                     options=(AlternateCareOfAddress(address=stranger),)), ml.HOA, ml.HA)
        sock.sendto(moved, (ml.HA, 0))  # its BA goes to a CoA the MN's remap states do not know
        ml.wait_for(lambda: bound(daemon) == {ml.HOA: (stranger, 2), HOA2: (COA, 1)}, 10, "the move")
        assert send_from(stranger) == (1, 0)
        assert send_from(COA) == (0, 1)
        assert send_from(COA, inner_src=HOA2) == (1, 0)  # the other binding keeps the shared CoA
        short = encode(BindingUpdate(seq=3, lifetime=1, ack=True, home=True,  # 4 s
                                     options=(AlternateCareOfAddress(address=stranger),)), ml.HOA, ml.HA)
        sock.sendto(short, (ml.HA, 0))
        ml.wait_for(lambda: bound(daemon)[ml.HOA] == (stranger, 3), 10, "the short refresh")
        ml.wait_for(lambda: [b["hoa"] for b in daemon.ctl("bindings")] == [HOA2], 15, "the binding's expiry")
        filters = ha.run("tc", "filter", "show", "dev", "mip6ha", "ingress", "pref", "1")
        assert filters.count(" handle ") == 1 and f"src_ip {HOA2}" in filters, filters
        assert send_from(stranger) == (0, 1)  # its filter went with it
        assert send_from(COA, inner_src=HOA2) == (1, 0)
    finally:
        sock.close()
        assert daemon.stop() == 0
        print(daemon.log.read_text()[-3000:])
    assert "mip6ha" not in ha.run("ip", "link", "show")  # and its filters with it


def test_fuzzed_mh_leaves_the_ha_running_and_its_cache_alone(tmp_path: Path) -> None:
    """A smoke run of fuzz_mip6d.py (./iro fuzz-mip6d sends 100,000 inputs per mode)."""
    import fuzz_mip6d

    result = fuzz_mip6d.run(150, True, tmp_path)
    assert result["failures"] == [] and result["reached_daemon"] > 50, result


def shared_policy_set_config() -> str:
    """A HA whose one IPsecPolicySet covers HOA and HOA2, so they share its reqids."""
    return (f"NodeConfig HA;\nDebugLevel 1;\nUseMnHaIPsec enabled;\nUseMnHaIRO enabled;\n"
            f"HaMaxBindingLife 60;\nInterface \"ha0\";\n"
            f"IPsecPolicySet {{\n    HomeAgentAddress {ml.HA};\n    HomeAddress {ml.HOA}/64;\n"
            f"    HomeAddress {HOA2}/64;\n    IPsecPolicy HomeRegBinding UseESP {ml.REQ_BU} {ml.REQ_BA};\n"
            f"    IPsecPolicy TunnelPayload UseESP {ml.REQ_TNL_TOHA} {ml.REQ_TNL_TOMN};\n}}\n")


def register(mn: Host, hoa: str, seq: int) -> None:
    """A BU from `hoa` through its SA, and the BA that accepts it."""
    sock = mn.socket(socket.AF_INET6, socket.SOCK_RAW, 135)
    try:
        sock.bind((hoa, 0))
        sock.sendto(bu(seq, hoa=hoa), (ml.HA, 0))
        sock.settimeout(10)
        data, addr = sock.recvfrom(2048)
    finally:
        sock.close()
    ba = decode(data, addr[0], hoa)
    assert isinstance(ba, BindingAcknowledgement) and ba.status == BaStatus.ACCEPTED, (hoa, ba)


def test_home_addresses_sharing_reqids_keep_their_own_tunnel_sas_and_hashed_policies(hosts, tmp_path: Path) -> None:
    """One IPsecPolicySet for two HoAs: its TunnelPayload reqids are shared, each MN's
    tunnel SAs start at its HoA, and each first binding migrates that MN's SAs (and no
    other's) to its CoA. Both MNs use one CoA here; the second one's SAs are still found."""
    spi_tnl2_toha, spi_tnl2_tomn = 0x3100, 0x3101
    keys2 = ml.keys_file(payload=True) + (
        f"add {HOA2} {ml.HA} esp {SPI_MN2_HA:#x} -m transport -u {ml.REQ_BU} -E aes-gcm-16 {ml.KEY};\n"
        f"add {ml.HA} {HOA2} esp {SPI_HA_MN2:#x} -m transport -u {ml.REQ_BA} -E aes-gcm-16 {ml.KEY2};\n"
        f"add {HOA2} {ml.HA} esp {spi_tnl2_toha:#x} -m tunnel -u {ml.REQ_TNL_TOHA} -E aes-gcm-16 {ml.KEY};\n"
        f"add {ml.HA} {HOA2} esp {spi_tnl2_tomn:#x} -m tunnel -u {ml.REQ_TNL_TOMN} -E aes-gcm-16 {ml.KEY2};\n")
    config = shared_policy_set_config()
    mn, ha = ml.direct_pair(hosts)
    for state in parse_keys(keys2):
        if state.mode == 0:  # the MN side needs only the signaling SAs here
            mn.xfrm.add_state(bound_to_addresses(state))
    for hoa in (ml.HOA, HOA2):
        mn_side(mn, ipsec.IRO, hoa, (ml.REQ_BU, ml.REQ_BA))
    (tmp_path / "ha.conf").write_text(config)
    (tmp_path / "ha.keys").write_text(keys2)
    daemon = ml.Daemon(ha, tmp_path / "ha.conf", tmp_path / "ha.keys", tmp_path / "ha.ctl", tmp_path / "ha.log")
    assert ha.xfrm.policy_hash_thresholds6() == (128, 128)  # the kernel's default
    daemon.start()
    try:
        # the binding policies (a /128 on the MN's side only) are hashed, not on the inexact list
        assert ha.xfrm.policy_hash_thresholds6() == (0, 128)
        for seq, hoa in enumerate((ml.HOA, HOA2), start=1):
            register(mn, hoa, seq)
        for toha, tomn in ((ml.SPI_TNL_TOHA, ml.SPI_TNL_TOMN), (spi_tnl2_toha, spi_tnl2_tomn)):
            out, back = ha.xfrm.get_state(ml.HA, toha), ha.xfrm.get_state(COA, tomn)
            assert (out.src, out.dst, back.src, back.dst) == (COA, ml.HA, ml.HA, COA), hex(toha)
        assert [b["tunnel"] for b in daemon.ctl("bindings")] == ["esp", "esp"]  # type: ignore[index]
    finally:
        assert daemon.stop() == 0
    assert ha.xfrm.policy_hash_thresholds6() == (128, 128)  # restored at shutdown


def test_a_first_binding_does_not_take_the_tunnel_sas_of_another_mn_sharing_its_reqids(hosts, tmp_path: Path) -> None:
    """Tunnel SAs installed outside the daemon (as an IKE daemon would), with the
    reqids that one IPsecPolicySet gives two HoAs: only the second MN's SAs exist yet.
    The first MN's binding must not migrate them, being the only ones with those reqids."""
    spi_tnl2_toha, spi_tnl2_tomn = 0x3100, 0x3101
    keys2 = ml.keys_file(payload=False) + (
        f"add {HOA2} {ml.HA} esp {SPI_MN2_HA:#x} -m transport -u {ml.REQ_BU} -E aes-gcm-16 {ml.KEY};\n"
        f"add {ml.HA} {HOA2} esp {SPI_HA_MN2:#x} -m transport -u {ml.REQ_BA} -E aes-gcm-16 {ml.KEY2};\n")
    config = shared_policy_set_config()
    mn, ha = ml.direct_pair(hosts)
    for state in parse_keys(keys2):
        mn.xfrm.add_state(bound_to_addresses(state))
    for hoa in (ml.HOA, HOA2):
        mn_side(mn, ipsec.IRO, hoa, (ml.REQ_BU, ml.REQ_BA))
    outside = (f"add {HOA2} {ml.HA} esp {spi_tnl2_toha:#x} -m tunnel -u {ml.REQ_TNL_TOHA} -E aes-gcm-16 {ml.KEY};\n"
               f"add {ml.HA} {HOA2} esp {spi_tnl2_tomn:#x} -m tunnel -u {ml.REQ_TNL_TOMN} -E aes-gcm-16 {ml.KEY2};\n")
    for state in parse_keys(outside):
        ha.xfrm.add_state(state)  # the second MN's, at its HoA
    assert ha.xfrm.get_state(HOA2, spi_tnl2_tomn).src == ml.HA
    (tmp_path / "ha.conf").write_text(config)
    (tmp_path / "ha.keys").write_text(keys2)
    daemon = ml.Daemon(ha, tmp_path / "ha.conf", tmp_path / "ha.keys", tmp_path / "ha.ctl", tmp_path / "ha.log")
    daemon.start()
    try:
        for seq, hoa in enumerate((ml.HOA, HOA2), start=1):
            register(mn, hoa, seq)
            if hoa == ml.HOA:  # the first MN bound: the second MN's SAs stay where they were
                back = ha.xfrm.get_state(HOA2, spi_tnl2_tomn)
                assert (back.src, back.dst) == (ml.HA, HOA2)
        # the second MN bound: its SAs followed it to its CoA
        out, back = ha.xfrm.get_state(ml.HA, spi_tnl2_toha), ha.xfrm.get_state(COA, spi_tnl2_tomn)
        assert (out.src, out.dst, back.src, back.dst) == (COA, ml.HA, ml.HA, COA)
    finally:
        assert daemon.stop() == 0
