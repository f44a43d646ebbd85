"""A Mobile IPv6 network for the daemon tests, with real mip6d processes and radvd:

    CN --- router ---- home link (HA; the MN when at home)
              |------- AR1 link (radvd)
              `------- AR2 link (radvd)

The router's three links are bridges; the MN's veth peer is re-plugged from one
bridge to another and the MN's link flaps, as on an L2 handover."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from netlab import Host, link

HOME_PREFIX = "2001:db8:1::"
HA = "2001:db8:1::1"
HOA = "2001:db8:1::10"
ROUTER_HOME = "2001:db8:1::fe"
CN = "2001:db8:c::2"
ROUTER_CN = "2001:db8:c::1"
LINKS = {"home": "2001:db8:1::", "ar1": "2001:db8:a1::", "ar2": "2001:db8:a2::"}
MN_MAC = "02:00:00:00:00:10"
MN_IID = "ff:fe00:10"  # EUI-64 of MN_MAC: the CoA is the link prefix + this
SPI_MN_HA, SPI_HA_MN, SPI_TNL_TOHA, SPI_TNL_TOMN = 0x2000, 0x2001, 0x3000, 0x3001
REQ_BU, REQ_BA, REQ_TNL_TOHA, REQ_TNL_TOMN = 11, 12, 21, 22
KEY = "0x" + bytes(range(20)).hex()
KEY2 = "0x" + bytes(range(20, 40)).hex()
REPO = Path(__file__).resolve().parents[2]


def coa(link_name: str) -> str:
    return LINKS[link_name] + MN_IID


def keys_file(payload: bool) -> str:
    """The same manual SAs on both nodes; the tunnel SAs start at the HoA and are
    migrated to the first CoA."""
    lines = [
        f"add {HOA} {HA} esp {SPI_MN_HA:#x} -m transport -u {REQ_BU} -E aes-gcm-16 {KEY};",
        f"add {HA} {HOA} esp {SPI_HA_MN:#x} -m transport -u {REQ_BA} -E aes-gcm-16 {KEY2};",
    ]
    if payload:
        lines += [
            f"add {HOA} {HA} esp {SPI_TNL_TOHA:#x} -m tunnel -u {REQ_TNL_TOHA} -E aes-gcm-16 {KEY};",
            f"add {HA} {HOA} esp {SPI_TNL_TOMN:#x} -m tunnel -u {REQ_TNL_TOMN} -E aes-gcm-16 {KEY2};",
        ]
    return "\n".join(lines) + "\n"


def _policy_set(payload: bool) -> str:
    tunnel = f"    IPsecPolicy TunnelPayload UseESP {REQ_TNL_TOHA} {REQ_TNL_TOMN};\n" if payload else ""
    return (f"IPsecPolicySet {{\n    HomeAgentAddress {HA};\n    HomeAddress {HOA}/64;\n"
            f"    IPsecPolicy HomeRegBinding UseESP {REQ_BU} {REQ_BA};\n{tunnel}}}\n")


def mn_config(iro: bool, payload: bool, lifetime: int = 120) -> str:
    return (f"NodeConfig MN;\nDebugLevel 1;\nUseMnHaIPsec enabled;\nUseMnHaIRO {'enabled' if iro else 'disabled'};\n"
            f"MnMaxHaBindingLife {lifetime};\nInterface \"mn0\";\n"
            f"MnHomeLink \"mn0\" {{\n    HomeAgentAddress {HA};\n    HomeAddress {HOA}/64;\n}}\n"
            + _policy_set(payload))


def ha_config(iro: bool, payload: bool, lifetime: int = 60) -> str:
    return (f"NodeConfig HA;\nDebugLevel 1;\nUseMnHaIPsec enabled;\nUseMnHaIRO {'enabled' if iro else 'disabled'};\n"
            f"HaMaxBindingLife {lifetime};\nInterface \"ha0\";\n" + _policy_set(payload))


RADVD = """interface {ifname} {{
    AdvSendAdvert on;
    MinRtrAdvInterval 0.5;
    MaxRtrAdvInterval 1.5;
    MinDelayBetweenRAs 0.05;
    AdvIntervalOpt on;
    prefix {prefix}/64 {{ AdvOnLink on; AdvAutonomous on; }};
}};
"""


@dataclass
class Daemon:
    """A mip6d process in a namespace."""

    host: Host
    config: Path
    keys: Path
    control: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO / "umip")}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.host.name, sys.executable, "-m", "mip6d", "-c", str(self.config),
                 "--keys", str(self.keys), "--control", str(self.control), "--foreground", *extra],
                stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + 120  # Python's imports are slow under TCG on a loaded host
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mip6d exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            if self.control.exists():
                try:
                    self.ctl("status")
                    return
                except (OSError, ValueError):
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"mip6d did not start: {self.log.read_text()[-2000:]}")

    def ctl(self, command: str) -> object:
        from mip6d.ctl import request

        answer = request(str(self.control), command)
        assert answer["ok"], answer
        return answer[command]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def hup(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)


@dataclass
class MobilityLab:
    cn: Host
    rt: Host
    ha: Host
    mn: Host
    workdir: Path
    iro: bool
    payload: bool
    radvd: subprocess.Popen[bytes] | None = None
    daemons: list[Daemon] = field(default_factory=list)
    attached: str = "ar1"

    def daemon(self, host: Host, role: str, config: str) -> Daemon:
        conf = self.workdir / f"{role}.conf"
        conf.write_text(config)
        keys = self.workdir / f"{role}.keys"
        keys.write_text(keys_file(self.payload))
        daemon = Daemon(host, conf, keys, self.workdir / f"{role}.ctl", self.workdir / f"{role}.log")
        self.daemons.append(daemon)
        return daemon

    def move(self, to: str) -> float:
        """Re-plug the MN into another link; returns when the link came back up."""
        self.rt.run("ip", "link", "set", "mnp", "nomaster")
        self.mn.run("ip", "link", "set", "mn0", "down")
        self.rt.run("ip", "link", "set", "mnp", "master", f"br-{to}")
        self.mn.run("ip", "link", "set", "mn0", "up")
        self.attached = to
        return time.monotonic()

    def close(self) -> None:
        for daemon in self.daemons:
            if daemon.proc and daemon.proc.poll() is None:
                daemon.stop(signal.SIGKILL)
        if self.radvd and self.radvd.poll() is None:
            self.radvd.terminate()
            self.radvd.wait(timeout=10)


def build(hosts, workdir: Path, iro: bool, payload: bool = True) -> MobilityLab:  # type: ignore[no-untyped-def]
    cn, rt, ha, mn = hosts("cn"), hosts("rt"), hosts("ha"), hosts("mn")
    rt.sysctl("net.ipv6.conf.all.forwarding", "1")
    link(cn, "cn0", rt, "rt-cn")
    cn.add_address("cn0", CN)
    rt.add_address("rt-cn", ROUTER_CN)
    cn.add_route("::/0", "cn0", gateway=ROUTER_CN)
    for name, prefix in LINKS.items():
        bridge = f"br-{name}"
        rt.run("ip", "link", "add", bridge, "type", "bridge", "forward_delay", "0")
        # a stub port keeps the bridge's carrier up while the MN is elsewhere
        rt.run("ip", "link", "add", f"stub-{name}", "type", "veth", "peer", "name", f"stubp-{name}")
        rt.run("ip", "link", "set", f"stub-{name}", "master", bridge, "up")
        rt.run("ip", "link", "set", f"stubp-{name}", "up")
        rt.run("ip", "link", "set", bridge, "up")
        rt.add_address(bridge, prefix + ("fe" if name == "home" else "1"))
    link(ha, "ha0", rt, "hap")
    rt.run("ip", "link", "set", "hap", "master", "br-home")
    ha.sysctl("net.ipv6.conf.ha0.accept_ra", "0")
    ha.add_address("ha0", HA)
    ha.add_route("::/0", "ha0", gateway=ROUTER_HOME)
    link(mn, "mn0", rt, "mnp")
    mn.run("ip", "link", "set", "mn0", "down")
    mn.run("ip", "link", "set", "mn0", "address", MN_MAC)
    rt.run("ip", "link", "set", "mnp", "master", "br-ar1")
    radvd_conf = workdir / "radvd.conf"
    radvd_conf.write_text("".join(RADVD.format(ifname=f"br-{name}", prefix=prefix) for name, prefix in LINKS.items()))
    radvd = subprocess.Popen(["ip", "netns", "exec", rt.name, "radvd", "-n", "-C", str(radvd_conf),
                              "-p", str(workdir / "radvd.pid"), "-m", "stderr"],
                             stdout=subprocess.DEVNULL, stderr=(workdir / "radvd.log").open("wb"))
    lab = MobilityLab(cn, rt, ha, mn, workdir, iro, payload, radvd)
    return lab


DIRECT_COA = "2001:db8:a1::10"


def direct_pair(hosts) -> tuple[Host, Host]:  # type: ignore[no-untyped-def]
    """A MN and its HA on one link, the MN at DIRECT_COA: for tests of one exchange."""
    mn, ha = hosts("mn"), hosts("ha")
    link(mn, "mn0", ha, "ha0")
    mn.add_address("mn0", DIRECT_COA)
    ha.add_address("ha0", HA)
    mn.add_route(HA, "mn0")
    ha.add_route("2001:db8:a1::/64", "ha0")
    return mn, ha


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class UdpStream:
    """CN -> HoA datagrams every `interval`, echoed by the MN; records echo times."""

    def __init__(self, cn: Host, mn: Host, interval: float = 0.01) -> None:
        self.tx = cn.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.tx.bind((CN, 0))
        self.tx.settimeout(0.2)
        self.rx = mn.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.rx.setsockopt(socket.IPPROTO_IPV6, 78, 1)  # IPV6_FREEBIND: the HoA moves between interfaces
        self.rx.bind((HOA, 7777))
        self.rx.settimeout(0.2)
        self.interval = interval
        self.echoes: list[tuple[int, float]] = []
        self.sent = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=f, daemon=True) for f in (self._send, self._echo, self._collect)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _send(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.tx.sendto(self.sent.to_bytes(4, "big"), (HOA, 7777))
            self.sent += 1
            time.sleep(self.interval)

    def _echo(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.rx.recvfrom(64)
                self.rx.sendto(data, addr)
            except OSError:
                continue

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.tx.recv(64)
            except OSError:
                continue
            self.echoes.append((int.from_bytes(data[:4], "big"), time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self.tx.close()
        self.rx.close()

    def gap_around(self, moment: float) -> float:
        """Seconds without an echo across `moment` (last before it to first after it)."""
        before = [t for _, t in self.echoes if t <= moment]
        after = [t for _, t in self.echoes if t > moment]
        if not before or not after:
            return float("inf")
        return after[0] - before[-1]

    def received_after(self, moment: float) -> int:
        return sum(1 for _, t in self.echoes if t > moment)


def snapshot(host: Host) -> dict[str, str]:
    """Everything a daemon may install, for a before/after comparison."""
    return {
        "xfrm state": host.run("ip", "-6", "xfrm", "state"),
        "xfrm policy": host.run("ip", "-6", "xfrm", "policy"),
        "routes": host.run("ip", "-6", "route", "show", "table", "all"),
        "rules": host.run("ip", "-6", "rule"),
        "links": "\n".join(line.split(":")[1] for line in host.run("ip", "-o", "link").splitlines()),
        "proxy": host.run("ip", "-6", "neigh", "show", "proxy"),
        "addresses": host.run("ip", "-6", "-o", "addr"),
        "qdiscs": host.run("tc", "qdisc", "show"),
    }


def ctl_json(daemon: Daemon, command: str) -> object:
    return json.loads(json.dumps(daemon.ctl(command)))
