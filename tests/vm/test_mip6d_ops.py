"""Operating mip6d: the kernel check, SIGHUP reload, and mip6d-ctl."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mobility_lab as ml
from mip6d.mh import BaStatus
from netlab import Host
from test_mip6d_input import COA, bu, expect_ba, ha_config, ha_lab, keys

ENV = {**os.environ, "PYTHONPATH": str(ml.REPO / "umip")}


def mip6d(host: Host, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", host.name, sys.executable, "-m", "mip6d", *args],
                          capture_output=True, text=True, env=ENV, timeout=60)


def test_check_accepts_both_modes_on_the_iro_kernel(hosts, tmp_path: Path) -> None:
    host = hosts("chk")
    for iro in (False, True):
        conf = tmp_path / f"ha-{iro}.conf"
        conf.write_text(ha_config(iro))
        result = mip6d(host, "-c", str(conf), "--check")
        mode = "iro" if iro else "classic"
        assert result.returncode == 0, result.stderr
        assert f"HA, {mode} mode" in result.stdout
    assert host.run("ip", "-6", "xfrm", "state") == ""  # the probe leaves nothing behind


def test_bad_config_fails_with_file_line_col(hosts, tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("NodeConfig HA;\nHaMaxBindingLife sixty;\n")
    result = mip6d(hosts("bad"), "-c", str(conf), "--foreground")
    assert result.returncode == 2
    assert result.stderr.startswith(f"mip6d: {conf}:2:18: ") and len(result.stderr.strip().splitlines()) == 1


def test_sighup_reloads_lifetimes_in_place_and_keeps_bindings(hosts, tmp_path: Path) -> None:
    _mn, _ha, daemon, sock = ha_lab(hosts, tmp_path, iro=True)
    try:
        sock.sendto(bu(1, lifetime=1000), (ml.HA, 0))
        assert expect_ba(sock).lifetime == 15  # 60 s
        # a broken file on SIGHUP: refused, the daemon runs on with its old configuration
        good = daemon.config.read_text()
        daemon.config.write_text(good + "NoSuchStatement 1;\n")
        daemon.hup()
        ml.wait_for(lambda: "reload refused" in daemon.log.read_text(), 20, "the refused reload in the log")
        # a new maximum lifetime: applied to the next BU, the binding stays
        daemon.config.write_text(good.replace("HaMaxBindingLife 60;", "HaMaxBindingLife 20;"))
        daemon.hup()
        ml.wait_for(lambda: "reloaded in place" in daemon.log.read_text(), 20, "the in-place reload")
        assert [b["seq"] for b in daemon.ctl("bindings")] == [1]  # type: ignore[union-attr]
        sock.sendto(bu(2, lifetime=1000), (ml.HA, 0))
        ba = expect_ba(sock)
        assert (ba.status, ba.seq, ba.lifetime) == (BaStatus.ACCEPTED, 2, 5)  # 20 s
    finally:
        sock.close()
        assert daemon.stop() == 0


def test_mip6d_ctl_prints_the_binding_cache(hosts, tmp_path: Path) -> None:
    _mn, _ha, daemon, sock = ha_lab(hosts, tmp_path, iro=False)
    try:
        sent_at = time.monotonic()
        sock.sendto(bu(7, lifetime=1000), (ml.HA, 0))
        expect_ba(sock)
        ctl = [sys.executable, "-m", "mip6d.ctl", "--control", str(daemon.control)]
        table = subprocess.run([*ctl, "bindings"], capture_output=True, text=True, env=ENV, check=True).stdout
        header, row = table.splitlines()
        assert header.split()[:4] == ["HOA", "COA", "SEQ", "LIFETIME"]
        assert row.split()[:4] == [ml.HOA, COA, "7", "60"]
        raw = subprocess.run([*ctl, "bindings", "--json"], capture_output=True, text=True, env=ENV, check=True)
        [entry] = json.loads(raw.stdout)
        assert 60 - (time.monotonic() - sent_at) - 1 <= entry["lifetime_left"] <= 60
        status = json.loads(subprocess.run([*ctl, "status", "--json"], capture_output=True, text=True, env=ENV,
                                           check=True).stdout)
        assert (status["role"], status["mode"], status["bindings"]) == ("HA", "classic", 1)
        gone = subprocess.run([sys.executable, "-m", "mip6d.ctl", "--control", str(daemon.control) + ".x",
                               "status"], capture_output=True, text=True, env=ENV)
        assert gone.returncode == 1 and "No such file" in gone.stderr
    finally:
        sock.close()
        assert daemon.stop() == 0


def _mn_config(lifetime: int) -> str:
    return (f"NodeConfig MN;\nDebugLevel 1;\nUseMnHaIPsec enabled;\nUseMnHaIRO enabled;\n"
            f"MnMaxHaBindingLife {lifetime};\nInterface \"mn0\";\n"
            f"MnHomeLink \"mn0\" {{\n    HomeAgentAddress {ml.HA};\n    HomeAddress {ml.HOA}/64;\n}}\n"
            f"IPsecPolicySet {{\n    HomeAgentAddress {ml.HA};\n    HomeAddress {ml.HOA}/64;\n"
            f"    IPsecPolicy HomeRegBinding UseESP {ml.REQ_BU} {ml.REQ_BA};\n}}\n")


def _pair(hosts, tmp_path: Path, lifetime: int):  # type: ignore[no-untyped-def]
    mn, ha = ml.direct_pair(hosts)
    for name, text in (("mn.conf", _mn_config(lifetime)), ("ha.conf", ha_config(True)), ("keys", keys())):
        (tmp_path / name).write_text(text)
    mn_daemon = ml.Daemon(mn, tmp_path / "mn.conf", tmp_path / "keys", tmp_path / "mn.ctl", tmp_path / "mn.log")
    ha_daemon = ml.Daemon(ha, tmp_path / "ha.conf", tmp_path / "keys", tmp_path / "ha.ctl", tmp_path / "ha.log")
    return mn, ha, mn_daemon, ha_daemon


def test_mn_retransmits_with_exponential_backoff(hosts, tmp_path: Path) -> None:
    """No home agent answers: BUs at 0, 1.5, 4.5, 10.5 s (RFC 6275 11.8, InitialBindackTimeoutFirstReg)."""
    from scapy.layers.ipsec import ESP

    from netlab import Capture

    mn, _ha, mn_daemon, _ = _pair(hosts, tmp_path, lifetime=60)
    capture = Capture(mn, "mn0", tmp_path / "bu.pcap", bpf="ip6 and src host " + COA)
    mn_daemon.start()
    try:
        time.sleep(12)
    finally:
        assert mn_daemon.stop() == 0
    bus = [p for p in capture.stop() if p.haslayer(ESP) and p[ESP].spi == ml.SPI_MN_HA]
    times = [float(p.time) for p in bus]
    intervals = [round(b - a, 2) for a, b in itertools.pairwise(times)]
    assert len(intervals) >= 3, intervals
    for got, want in zip(intervals, (1.5, 3.0, 6.0), strict=False):
        assert abs(got - want) < 0.4, intervals


def test_mn_refreshes_and_ha_expires_a_silent_binding(hosts, tmp_path: Path) -> None:
    _mn, ha, mn_daemon, ha_daemon = _pair(hosts, tmp_path, lifetime=8)
    ha_daemon.start()
    mn_daemon.start()
    try:
        first = ml.wait_for(lambda: ha_daemon.ctl("bindings"), 30, "the first registration")[0]
        assert (first["seq"], first["lifetime"]) == (1, 8)
        # refreshed before the lifetime ends, without any move
        refreshed = ml.wait_for(lambda: [b for b in ha_daemon.ctl("bindings") if b["seq"] == 2], 12, "a refresh")
        assert refreshed[0]["coa"] == COA
        assert ha.run("ip", "-6", "neigh", "show", "proxy").strip().startswith(ml.HOA)
        assert "dev mip6ha" in ha.run("ip", "-6", "route", "show", ml.HOA)
        # the MN dies without deregistering: the HA drops the binding and its kernel state on expiry
        mn_daemon.stop(sig=9)
        ml.wait_for(lambda: not ha_daemon.ctl("bindings"), 15, "the binding to expire")
        assert ha.run("ip", "-6", "neigh", "show", "proxy").strip() == ""
        assert ml.HOA not in ha.run("ip", "-6", "route")
    finally:
        assert ha_daemon.stop() == 0


def test_a_start_after_sigkill_removes_what_the_killed_daemon_left(hosts, tmp_path: Path) -> None:
    _mn, ha, daemon, sock = ha_lab(hosts, tmp_path, iro=True, start=False)
    before = {**ml.snapshot(ha), "thresholds": ha.xfrm.policy_hash_thresholds6()}
    daemon.start()
    try:
        started = ml.snapshot(ha)
        sock.sendto(bu(1, lifetime=1000), (ml.HA, 0))
        assert expect_ba(sock).status == BaStatus.ACCEPTED
        assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
        left = ml.snapshot(ha)
        assert left["xfrm state"] != started["xfrm state"] and left["proxy"] != started["proxy"]  # the binding's
        # the next start removes all of it first, then installs what any start installs, and nothing more
        daemon.start()
        assert "removed" in daemon.log.read_text() and "left by a mip6d that did not stop" in daemon.log.read_text()
        assert ml.snapshot(ha) == started
        # a second daemon on the same control socket may not start while the first holds its journal
        rival = mip6d(ha, "-c", str(daemon.config), "--keys", str(daemon.keys), "--control", str(daemon.control),
                      "--foreground")
        assert rival.returncode == 4 and "another mip6d" in rival.stderr, rival.stderr
    finally:
        sock.close()
        assert daemon.stop() == 0
    assert {**ml.snapshot(ha), "thresholds": ha.xfrm.policy_hash_thresholds6()} == before
    assert not Path(f"{daemon.control}.journal").exists()
