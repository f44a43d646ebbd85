"""Network-namespace lab for VM tests: hosts, veth links, captures, XFRM counters."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import IPRoute, config, netns
from scapy.plist import PacketList
from scapy.utils import rdpcap

from mip6d.xfrm import XfrmSocket

# pyroute2 gives the child that creates a namespace 2 s; under TCG, right after a
# namespace with thousands of devices was removed, its cleanup holds the locks
# that creating one needs for longer than that.
config.default_communicate_timeout = 60


def sh(*argv: str, check: bool = True) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


@dataclass
class Host:
    """A network namespace with its own IPRoute and XFRM sockets."""

    name: str
    ipr: IPRoute = field(init=False)
    _xfrm: XfrmSocket | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        netns.create(self.name)
        self.ipr = IPRoute(netns=self.name)
        self.ipr.link("set", index=self.ipr.link_lookup(ifname="lo")[0], state="up")
        self.sysctl("net.ipv6.conf.all.accept_dad", "0")
        self.sysctl("net.ipv6.conf.default.accept_dad", "0")

    @property
    def xfrm(self) -> XfrmSocket:
        if self._xfrm is None:
            self._xfrm = XfrmSocket(netns=self.name)
        return self._xfrm

    def run(self, *argv: str, check: bool = True) -> str:
        return sh("ip", "netns", "exec", self.name, *argv, check=check)

    def sysctl(self, key: str, value: str) -> None:
        self.run("sysctl", "-qw", f"{key}={value}")

    def ifindex(self, ifname: str) -> int:
        return self.ipr.link_lookup(ifname=ifname)[0]

    def add_address(self, ifname: str, address: str, prefix: int = 64) -> None:
        self.ipr.addr("add", index=self.ifindex(ifname), address=address, prefixlen=prefix, flags=0x80)  # NODAD

    def add_route(self, dst: str, ifname: str, gateway: str | None = None, **extra: object) -> None:
        kw: dict[str, object] = {"dst": dst, "oif": self.ifindex(ifname), **extra}
        if gateway:
            kw["gateway"] = gateway
        self.ipr.route("add", family=socket.AF_INET6, **kw)

    def socket(self, family: int, kind: int, proto: int = 0) -> socket.socket:
        return netns.create_socket(self.name, family=family, socket_type=kind, proto=proto)

    def xfrm_stat(self) -> dict[str, int]:
        lines = self.run("cat", "/proc/net/xfrm_stat").splitlines()
        return {name: int(value) for name, value in (line.split() for line in lines)}

    def ip_xfrm(self, what: str = "state") -> str:
        return self.run("ip", "-6", "xfrm", what)

    def close(self) -> None:
        if self._xfrm is not None:
            self._xfrm.close()
        self.ipr.close()
        netns.remove(self.name)


def link(a: Host, a_if: str, b: Host, b_if: str) -> None:
    """A veth pair between two hosts, both ends up."""
    with IPRoute() as ipr:
        ipr.link("add", ifname=a_if, kind="veth", peer={"ifname": b_if, "net_ns_fd": b.name})
        ipr.link("set", index=ipr.link_lookup(ifname=a_if)[0], net_ns_fd=a.name)
    for host, ifname in ((a, a_if), (b, b_if)):
        host.ipr.link("set", index=host.ifindex(ifname), state="up")


class Capture:
    """tcpdump on one interface of a host; stop() returns what scapy decodes."""

    def __init__(self, host: Host, ifname: str, path: Path, bpf: str = "ip6") -> None:
        self.path = path
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", host.name, "tcpdump", "-Z", "root", "--immediate-mode", "-U", "-n",
             "-i", ifname, "-s", "0", "-w", str(path), bpf],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # "listening on ..." once the socket is open
        if "listening" not in line:
            raise RuntimeError(f"tcpdump did not start: {line.strip()}")

    def stop(self) -> PacketList:
        time.sleep(0.2)  # let the last packets reach the ring
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=10)
        return rdpcap(str(self.path)) if os.path.getsize(self.path) > 24 else PacketList()


def counter_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
