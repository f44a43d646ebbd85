"""Operating mip6d: the kernel check, SIGHUP reload, and mip6d-ctl."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import mobility_lab as ml
from mip6d import ipsec
from mip6d.config import parse_keys
from mip6d.daemon import bound_to_addresses
from mip6d.mh import BaStatus
from netlab import Host, link
from test_mip6d_input import COA, bu, expect_ba, ha_config, keys, mn_side

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


def _lab(hosts, tmp_path: Path, iro: bool):  # type: ignore[no-untyped-def]
    mode = ipsec.IRO if iro else ipsec.CLASSIC
    mn, ha = hosts("mn"), hosts("ha")
    link(mn, "mn0", ha, "ha0")
    mn.add_address("mn0", COA)
    ha.add_address("ha0", ml.HA)
    mn.add_route(ml.HA, "mn0")
    ha.add_route("2001:db8:a1::/64", "ha0")
    for state in parse_keys(keys()):
        mn.xfrm.add_state(bound_to_addresses(state))
    mn_side(mn, mode, ml.HOA, (ml.REQ_BU, ml.REQ_BA))
    (tmp_path / "ha.conf").write_text(ha_config(iro))
    (tmp_path / "ha.keys").write_text(keys())
    daemon = ml.Daemon(ha, tmp_path / "ha.conf", tmp_path / "ha.keys", tmp_path / "ha.ctl", tmp_path / "ha.log")
    daemon.start()
    sock = mn.socket(socket.AF_INET6, socket.SOCK_RAW, 135)
    sock.bind((ml.HOA, 0))
    return mn, ha, daemon, sock


def test_sighup_reloads_lifetimes_in_place_and_keeps_bindings(hosts, tmp_path: Path) -> None:
    _mn, _ha, daemon, sock = _lab(hosts, tmp_path, iro=True)
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
    _mn, _ha, daemon, sock = _lab(hosts, tmp_path, iro=False)
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
