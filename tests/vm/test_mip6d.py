"""mip6d end to end: a home agent and a mobile node daemon, radvd on the access
links, the MN moving AR1 -> AR2 -> home while the CN streams to its HoA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.layers.inet6 import (
    HAO,
    ICMPv6ND_NS,
    ICMPv6ND_RS,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrRouting,
)
from scapy.layers.ipsec import ESP
from scapy.layers.l2 import Ether
from scapy.plist import PacketList

import mobility_lab as ml
from mip6d.bcache import seq_newer
from netlab import Capture

MOVE_TIMEOUT = 30


def registered(lab: ml.MobilityLab, mn: ml.Daemon, ha: ml.Daemon, coa: str):  # type: ignore[no-untyped-def]
    def check():  # type: ignore[no-untyped-def]
        bul = mn.ctl("bindings")[0]  # type: ignore[index]
        cache = {b["hoa"]: b for b in ha.ctl("bindings")}  # type: ignore[union-attr]
        entry = cache.get(ml.HOA)
        if bul["state"] == "registered" and bul["coa"] == coa and entry and entry["coa"] == coa:
            return bul, entry
        return None
    return ml.wait_for(check, MOVE_TIMEOUT, f"registration of {coa}")


def flowing(stream: ml.UdpStream, since: float) -> None:
    ml.wait_for(lambda: stream.received_after(since) >= 5, MOVE_TIMEOUT, "the UDP stream to flow again")


def report(name: str, values: dict[str, object]) -> None:
    out = Path(os.environ.get("IRO_VM_OUT", "/nonexistent"))
    if out.is_dir():
        (out / f"{name}.json").write_text(json.dumps(values, indent=2))
    print(name, values)


@pytest.mark.parametrize("iro", [False, True], ids=["classic", "iro"])
def test_handover_ar1_ar2_home(hosts, tmp_path: Path, iro: bool) -> None:
    lab = ml.build(hosts, tmp_path, iro=iro)
    try:
        _run_moves(lab, tmp_path, iro)
    finally:
        lab.close()
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-4000:]}")


def _run_moves(lab: ml.MobilityLab, tmp_path: Path, iro: bool) -> None:
    before = {"ha": ml.snapshot(lab.ha), "mn": ml.snapshot(lab.mn)}
    captures = {name: Capture(lab.rt, f"br-{name}", tmp_path / f"{name}.pcap") for name in ("ar1", "ar2")}
    lab.mn.run("ip", "link", "set", "mn0", "up")
    ml.wait_for(lambda: ml.coa("ar1") in lab.mn.run("ip", "-6", "addr", "show", "dev", "mn0"), 30, "SLAAC on AR1")
    ha = lab.daemon(lab.ha, "ha", ml.ha_config(iro, lab.payload))
    mn = lab.daemon(lab.mn, "mn", ml.mn_config(iro, lab.payload))
    ha.start()
    mn.start()

    bul, entry = registered(lab, mn, ha, ml.coa("ar1"))
    # the binding cache matches what the MN sent: sequence number, lifetime granted at the HA's maximum
    assert entry["seq"] == bul["seq"] and entry["lifetime"] == bul["lifetime"] == 60
    assert 0 < entry["lifetime_left"] <= 60
    _check_tunnel_sas(lab, ml.coa("ar1"))
    stream = ml.UdpStream(lab.cn, lab.mn)
    stream.start()
    flowing(stream, 0)
    # the TunnelPayload SAs carry the HoA's traffic: the HA makes no ip6ip6 device for it
    assert entry["tunnel"] == "esp" and "mip6ha" not in lab.ha.run("ip", "-o", "link", "show")

    gaps: dict[str, dict[str, float]] = {}
    for to in ("ar2", "home"):
        moved_at = lab.move(to)
        if to == "home":
            ml.wait_for(lambda: mn.ctl("bindings")[0]["state"] == "idle", MOVE_TIMEOUT, "deregistration")  # type: ignore[index]
            ml.wait_for(lambda: not ha.ctl("bindings"), MOVE_TIMEOUT, "the HA to drop the binding")
        else:
            bul2, entry2 = registered(lab, mn, ha, ml.coa(to))
            assert entry2["seq"] == bul2["seq"] and seq_newer(bul2["seq"], bul["seq"])  # later, retransmitted or not
            _check_tunnel_sas(lab, ml.coa(to))
            _check_ha_timing(ha, bul2["seq"], ml.coa(to))
        flowing(stream, moved_at)
        move = mn.ctl("status")["moves"][-1]  # type: ignore[index]
        first_after = min(t for _, t in stream.echoes if t > move["usable_at"])
        gaps["ar1->ar2" if to == "ar2" else "ar2->home"] = {
            "gap_ms": round(stream.gap_around(moved_at) * 1000, 1),
            "new_address_to_traffic_ms": round((first_after - move["usable_at"]) * 1000, 1),
            "registration_ms": move["registration_ms"],
        }
    stream.stop()
    report(f"mip6d-gaps-{'iro' if iro else 'classic'}", {"moves": gaps, "sent": stream.sent,
                                                          "echoed": len(stream.echoes)})

    assert ha.stop() == 0 and mn.stop() == 0
    packets = {name: cap.stop() for name, cap in captures.items()}
    _check_wire(packets, iro)
    _check_router_introduced(packets)
    _check_clean(lab, before)


def test_without_payload_sas_an_ip6ip6_tunnel_carries_the_payload(hosts, tmp_path: Path) -> None:
    """No TunnelPayload SAs: the HA's flow-based ip6ip6 device carries the stream in clear
    (IPv6 in IPv6 on the foreign link) to whatever CoA the HoA's route names, follows
    a move by a route replace, and goes away with the daemon."""
    lab = ml.build(hosts, tmp_path, iro=True, payload=False)
    try:
        before = ml.snapshot(lab.ha)
        captures = {name: Capture(lab.rt, f"br-{name}", tmp_path / f"{name}.pcap") for name in ("ar1", "ar2")}
        lab.mn.run("ip", "link", "set", "mn0", "up")
        ml.wait_for(lambda: ml.coa("ar1") in lab.mn.run("ip", "-6", "addr", "show", "dev", "mn0"), 30, "SLAAC")
        ha = lab.daemon(lab.ha, "ha", ml.ha_config(True, payload=False))
        mn = lab.daemon(lab.mn, "mn", ml.mn_config(True, payload=False))
        ha.start()
        mn.start()
        _, entry = registered(lab, mn, ha, ml.coa("ar1"))
        assert entry["tunnel"] == "mip6ha", entry
        assert "external" in lab.ha.run("ip", "-d", "link", "show", "mip6ha")
        stream = ml.UdpStream(lab.cn, lab.mn)
        stream.start()
        flowing(stream, 0)
        assert _tunnel_route(lab) == ml.coa("ar1")
        moved_at = lab.move("ar2")
        registered(lab, mn, ha, ml.coa("ar2"))
        flowing(stream, moved_at)
        assert _tunnel_route(lab) == ml.coa("ar2")
        stream.stop()
        stats = json.loads(lab.ha.run("ip", "-j", "-s", "link", "show", entry["tunnel"]))[0]["stats64"]
        assert stats["tx"]["packets"] >= 10 and stats["rx"]["packets"] >= 10, stats
        assert ha.stop() == 0 and mn.stop() == 0
        for name, plist in ((name, cap.stop()) for name, cap in captures.items()):
            # decoded by scapy: the outer header straight from HA to this link's CoA, and the
            # HoA's datagram right after it (no encapsulation-limit option: next header 41)
            inner = [p for p in plist if p.haslayer(IPv6) and p[IPv6].nh == 41 and p[IPv6].src == ml.HA
                     and p[IPv6].dst == ml.coa(name) and p[IPv6].payload.dst == ml.HOA]
            assert len(inner) >= 5, f"{name}: {len(inner)} IPv6-in-IPv6 packets HA -> CoA for the HoA"
        assert ml.snapshot(lab.ha) == before
    finally:
        lab.close()
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-4000:]}")


def _tunnel_route(lab: ml.MobilityLab) -> str:
    """Where the HA's route to the HoA encapsulates to, as iproute2 prints it."""
    words = lab.ha.run("ip", "-6", "route", "show", ml.HOA).split()
    assert words[:8] == [ml.HOA, "encap", "ip6", "id", "0", "src", ml.HA, "dst"], words
    assert words[9:15] == ["hoplimit", "64", "tc", "0", "dev", "mip6ha"], words
    return words[8]


def _check_ha_timing(ha: ml.Daemon, seq: int, coa: str) -> None:
    """The HA's status times the move's BU: kernel receive, its kernel batch, BA sent."""
    recent = ha.ctl("status")["recent_bu"]  # type: ignore[index]
    # the accepted BU; a retransmission that crossed the BA would follow it with 135
    last = next(b for b in reversed(recent) if (b["seq"], b["coa"], b["status"]) == (seq, coa, 0))
    assert last["queued_ms"] >= 0 and last["kernel_ms"] > 0, last
    assert last["done_ms"] >= last["queued_ms"] + last["kernel_ms"], last
    text = subprocess.run([sys.executable, "-m", "mip6d.ctl", "--control", str(ha.control), "status"],
                          env={**os.environ, "PYTHONPATH": str(ml.REPO / "umip")}, check=True,
                          capture_output=True, text=True).stdout
    assert f"recent_bu: seq={seq} hoa={ml.HOA} coa={coa} status=0 queued_ms=" in text, text


def _check_tunnel_sas(lab: ml.MobilityLab, coa: str) -> None:
    """TunnelPayload SAs were MIGRATEd to the CoA on both nodes, SPIs unchanged."""
    for host in (lab.mn, lab.ha):
        out = host.xfrm.get_state(ml.HA, ml.SPI_TNL_TOHA)
        back = host.xfrm.get_state(coa, ml.SPI_TNL_TOMN)
        assert (out.src, out.dst, back.src, back.dst) == (coa, ml.HA, ml.HA, coa), host.name


def _check_wire(packets: dict[str, PacketList], iro: bool) -> None:
    for name, plist in packets.items():
        coa = ml.coa(name)
        esp = [p for p in plist if p.haslayer(ESP)]
        bus = [p for p in esp if p[ESP].spi == ml.SPI_MN_HA and p[IPv6].src == coa]
        bas = [p for p in esp if p[ESP].spi == ml.SPI_HA_MN and p[IPv6].dst == coa]
        assert bus and bas, f"{name}: no ESP-protected BU or BA from/to {coa}"
        tunnelled = {p[ESP].spi for p in esp if coa in (p[IPv6].src, p[IPv6].dst)} - {ml.SPI_MN_HA, ml.SPI_HA_MN}
        assert tunnelled == {ml.SPI_TNL_TOHA, ml.SPI_TNL_TOMN}, f"{name}: payload SPIs {tunnelled}"
        for pkt in bus + bas:
            assert ml.HA in (pkt[IPv6].src, pkt[IPv6].dst)
        if iro:
            assert all(p[IPv6].nh == 50 for p in bus + bas)
            assert not [p for p in plist if p.haslayer(IPv6ExtHdrDestOpt) or p.haslayer(IPv6ExtHdrRouting)]
            hoa = bytes.fromhex("20010db8000100000000000000000010")
            assert not [p for p in plist if hoa in bytes(p)], f"{name}: the HoA appears in clear"
        else:
            assert all(p[IPv6].nh == 60 and [o.hoa for o in p[IPv6ExtHdrDestOpt].options if isinstance(o, HAO)]
                       == [ml.HOA] for p in bus)
            assert all(p[IPv6].nh == 43 and list(p[IPv6ExtHdrRouting].addresses) == [ml.HOA] for p in bas)


def _check_router_introduced(packets: dict[str, PacketList]) -> None:
    """On each access link the MN solicited the routers from its new CoA with its MAC,
    so the router delivered the BA and the tunnel's packets to the CoA without
    resolving it first. (It may resolve the CoA once the MN has left.)"""
    for name, plist in packets.items():
        coa = ml.coa(name)
        solicitations = [p for p in plist if p.haslayer(ICMPv6ND_RS) and p[IPv6].src == coa]
        assert solicitations, f"{name}: no RS from {coa}"
        for p in solicitations:
            assert (p[IPv6].dst, p[IPv6].hlim) == ("ff02::2", 255), p.summary()
            assert p[ICMPv6NDOptSrcLLAddr].lladdr == p[Ether].src, p.summary()
        mn_mac = solicitations[0][Ether].src
        start = solicitations[0].time
        delivered = [p for p in plist if p.time >= start and p.haslayer(IPv6) and p[IPv6].dst == coa
                     and p.haslayer(ESP) and p[Ether].dst == mn_mac]
        assert delivered, f"{name}: no ESP to {coa} after its RS"
        resolving = [p for p in plist if start <= p.time <= delivered[0].time and p.haslayer(ICMPv6ND_NS)
                     and p[ICMPv6ND_NS].tgt == coa and p[IPv6].src != "::"]
        assert not resolving, (f"{name}: {coa} was resolved by {resolving[0][IPv6].src} "
                               f"{resolving[0].time - start:.3f} s after the RS, before the first ESP to it")


def _check_clean(lab: ml.MobilityLab, before: dict[str, dict[str, str]]) -> None:
    after_ha = ml.snapshot(lab.ha)
    assert after_ha == before["ha"]
    after_mn = ml.snapshot(lab.mn)
    for key in ("xfrm state", "xfrm policy", "rules", "links", "proxy"):
        assert after_mn[key] == before["mn"][key], key
    assert ml.HOA not in after_mn["addresses"] and "table 252" not in after_mn["routes"]
