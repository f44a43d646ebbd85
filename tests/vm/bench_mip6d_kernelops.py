"""Where a home agent's per-binding time goes: the kernel objects of one binding
(route-optimization state, host route encapsulated to the CoA through the one
flow-based ip6ip6 device, proxy ND entry, and the unsolicited NAs), made M
times through the daemon's own code (mip6d.kernel Kernel, in the order
HomeAgent._bind calls it, and mip6d.nd.announce), then M times as raw netlink requests, one per sendmsg and in batches
(bench_mip6d_netlink.BatchSocket). The difference is what the daemon's
netlink layer (pyroute2) adds to the kernel's own work.

The raw rtnetlink requests are packed here:

    RTM_NEWLINK  ip6tnl external, created up once, with its ifindex chosen
    RTM_NEWROUTE dst HoA/128 oif tunnel encap ip6 src HA dst CoA, replace
    RTM_NEWNEIGH NTF_PROXY HoA on the home interface

Runs in the HA's namespace as a child process (`--inside M`), so that the
daemon's Kernel class works there unchanged."""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_mip6d_scale as sc
from bench_mip6d_netlink import CREATE, NETLINK_ROUTE, NETLINK_XFRM, P_COA, P_HOA, BatchSocket, state_template

from mip6d import ipsec, nd
from mip6d.kernel import Kernel
from mip6d.rtnl import IP6_TNL_F_IGN_ENCAP_LIMIT, IPPROTO_IPV6, Ip6Encap
from netlab import Host, link

RTM_NEWLINK, RTM_NEWROUTE, RTM_NEWNEIGH = 16, 24, 28
NLM_F_REPLACE = 0x100
IFF_UP = 0x1
NTF_PROXY, NUD_PERMANENT = 0x08, 0x80
IFLA_IFNAME, IFLA_LINKINFO, IFLA_INFO_KIND, IFLA_INFO_DATA = 3, 18, 1, 2
IFLA_IPTUN_FLAGS, IFLA_IPTUN_PROTO, IFLA_IPTUN_COLLECT_METADATA = 8, 9, 19
RTA_DST, RTA_OIF, RTA_PRIORITY, RTA_ENCAP_TYPE, RTA_ENCAP = 1, 4, 6, 21, 22
LWTUNNEL_ENCAP_IP6, LWTUNNEL_IP6_DST, LWTUNNEL_IP6_SRC, LWTUNNEL_IP6_HOPLIMIT = 4, 2, 3, 4
NDA_DST = 1
RAW_IFINDEX = 20000
REPO = Path(__file__).resolve().parents[2]


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + bytes((4 - length % 4) % 4)


def _nlmsg(kind: int, flags: int, body: bytes) -> bytearray:
    return bytearray(struct.pack("=IHHII", 16 + len(body), kind, flags, 0, 0) + body)


def _ip(address: str) -> bytes:
    return ipaddress.IPv6Address(address).packed


def newlink_flow_ip6tnl(name: str, index: int) -> bytearray:
    data = (_attr(IFLA_IPTUN_COLLECT_METADATA, b"")
            + _attr(IFLA_IPTUN_FLAGS, struct.pack("=I", IP6_TNL_F_IGN_ENCAP_LIMIT))
            + _attr(IFLA_IPTUN_PROTO, struct.pack("=B", IPPROTO_IPV6)))
    info = _attr(IFLA_INFO_KIND, b"ip6tnl\0") + _attr(IFLA_INFO_DATA, data)
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP)
    body += _attr(IFLA_IFNAME, name.encode() + b"\0") + _attr(IFLA_LINKINFO, info)
    return _nlmsg(RTM_NEWLINK, CREATE, body)


def newroute(dst: str, oif: int, src: str, remote: str) -> bytearray:
    body = struct.pack("=BBBBBBBBI", socket.AF_INET6, 128, 0, 0, 254, 3, 0, 1, 0)
    body += _attr(RTA_DST, _ip(dst)) + _attr(RTA_OIF, struct.pack("=i", oif)) + _attr(RTA_PRIORITY,
                                                                                      struct.pack("=I", 1024))
    encap = (_attr(LWTUNNEL_IP6_DST, _ip(remote)) + _attr(LWTUNNEL_IP6_SRC, _ip(src))
             + _attr(LWTUNNEL_IP6_HOPLIMIT, b"\x40"))
    body += _attr(RTA_ENCAP_TYPE, struct.pack("=H", LWTUNNEL_ENCAP_IP6)) + _attr(RTA_ENCAP, encap)
    return _nlmsg(RTM_NEWROUTE, (CREATE & ~0x200) | NLM_F_REPLACE, body)


def newproxy(dst: str, ifindex: int) -> bytearray:
    body = struct.pack("=BxxxiHBB", socket.AF_INET6, ifindex, NUD_PERMANENT, NTF_PROXY, 0) + _attr(NDA_DST, _ip(dst))
    return _nlmsg(RTM_NEWNEIGH, (CREATE & ~0x200) | NLM_F_REPLACE, body)


def _timed(times: dict[str, float], key: str, action: Callable[[], object]) -> None:
    t = time.perf_counter()
    action()
    times[key] = times.get(key, 0.0) + time.perf_counter() - t


def inside(m: int) -> dict[str, Any]:
    """In the HA namespace: the daemon's path, then raw netlink, M bindings each."""
    mode = ipsec.IRO
    out: dict[str, Any] = {"m": m}
    k = Kernel()
    home = k.ifindex("ha0")
    daemon: dict[str, float] = {}
    k.add_flow_tunnel("mip6ha", guarded=True)  # as HomeAgent._install_base does, once
    for i in range(m):  # as HomeAgent._bind does for a first registration
        hoa, coa = sc.hoa(i), sc.coa(i)
        _timed(daemon, "ro_state", lambda: k.put_state(ipsec.ha_binding_state(mode, hoa, sc.HA, coa)))  # noqa: B023
        _timed(daemon, "filter", lambda: k.put_admit_filter("mip6ha", i + 1, hoa, coa))  # noqa: B023
        _timed(daemon, "route", lambda: k.put_tunnel_route(hoa + "/128", "mip6ha", Ip6Encap(sc.HA, coa)))  # noqa: B023
        _timed(daemon, "proxy", lambda: k.add_proxy(hoa, "ha0"))  # noqa: B023
        _timed(daemon, "announce", lambda: nd.announce("ha0", hoa))  # noqa: B023
    refresh: dict[str, float] = {}
    for i in range(m):  # a refresh: the state updated, the route replaced
        hoa, coa = sc.hoa(i), sc.coa(i)
        _timed(refresh, "ro_state", lambda: k.put_state(ipsec.ha_binding_state(mode, hoa, sc.HA, coa)))  # noqa: B023
        _timed(refresh, "filter", lambda: k.put_admit_filter("mip6ha", i + 1, hoa, coa))  # noqa: B023
        _timed(refresh, "route", lambda: k.put_tunnel_route(hoa + "/128", "mip6ha", Ip6Encap(sc.HA, coa)))  # noqa: B023
    trivial: dict[str, float] = {}
    for _ in range(m):
        _timed(trivial, "link_lookup", lambda: k.ifindex("ha0"))
    t = time.perf_counter()
    failures = k.unwind()
    out["daemon_unwind_ms_per_binding"] = round((time.perf_counter() - t) * 1000 / m, 2)
    k.close()
    out["daemon_ms_per_binding"] = {key: round(v * 1000 / m, 2) for key, v in daemon.items()}
    out["daemon_ms_per_binding"]["total"] = round(sum(daemon.values()) * 1000 / m, 2)
    out["daemon_refresh_ms"] = {key: round(v * 1000 / m, 2) for key, v in refresh.items()}
    out["daemon_refresh_ms"]["total"] = round(sum(refresh.values()) * 1000 / m, 2)
    out["pyroute2_trivial_request_ms"] = round(trivial["link_lookup"] * 1000 / m, 2)
    out["unwind_failures"] = failures[:3]

    ro = state_template(ipsec.ha_binding_state(mode, str(ipaddress.IPv6Address(P_HOA)), sc.HA,
                                               str(ipaddress.IPv6Address(P_COA))))
    device = BatchSocket(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE), 1)
    device.send_all([newlink_flow_ip6tnl("rawtnl", RAW_IFINDEX)])  # the daemon's one is gone with its unwind
    device.close()
    for label, chunk in (("raw_one_per_sendmsg", 1), ("raw_batched", 60_000)):
        base = m if chunk == 1 else 2 * m  # fresh HoAs and CoAs for each pass
        hoas = [sc.hoa(base + i) for i in range(m)]
        coas = [sc.coa(base + i) for i in range(m)]
        xfrm = BatchSocket(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_XFRM), chunk)
        rtnl = BatchSocket(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE), chunk)
        raw: dict[str, float] = {}
        _timed(raw, "ro_state", lambda: xfrm.send_all(ro.render(_ip(h), _ip(c))  # noqa: B023
                                                       for h, c in zip(hoas, coas, strict=True)))  # noqa: B023
        _timed(raw, "route", lambda: rtnl.send_all(newroute(h, RAW_IFINDEX, sc.HA, c)  # noqa: B023
                                                   for h, c in zip(hoas, coas, strict=True)))  # noqa: B023
        _timed(raw, "proxy", lambda: rtnl.send_all(newproxy(h, home) for h in hoas))  # noqa: B023
        xfrm.close()
        rtnl.close()
        out[f"{label}_ms_per_binding"] = {key: round(v * 1000 / m, 3) for key, v in raw.items()}
        out[f"{label}_ms_per_binding"]["total"] = round(sum(raw.values()) * 1000 / m, 3)
    return out


def run(m: int = 300) -> dict[str, Any]:
    ha, peer = Host("bkha"), Host("bkpeer")
    try:
        link(ha, "ha0", peer, "peer0")
        ha.add_address("ha0", sc.HA)
        peer.add_address("peer0", sc.SIM_RTR)
        ha.add_route(sc.COA_SPACE, "ha0", gateway=sc.SIM_RTR)
        ha.sysctl("net.ipv6.conf.all.forwarding", "1")
        ha.sysctl("net.ipv6.conf.ha0.proxy_ndp", "1")
        env_path = f"{Path(__file__).parent}:{REPO / 'umip'}"
        proc = subprocess.run(["ip", "netns", "exec", ha.name, "env", f"PYTHONPATH={env_path}", sys.executable,
                               __file__, "--inside", str(m)], capture_output=True, text=True, timeout=3000)
        if proc.returncode != 0:
            return {"m": m, "error": proc.stderr[-3000:]}
        return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]
    finally:
        ha.close()
        peer.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--inside"]:
        print(json.dumps(inside(int(sys.argv[2]))))
    else:
        print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 300), indent=2))
