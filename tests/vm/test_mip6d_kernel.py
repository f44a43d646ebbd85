"""mip6d's kernel layer on the real kernel: batched requests, per-request
refusals, the ledger, and an unwind that leaves nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time

import pytest
from pyroute2 import netns

from mip6d import ipsec, kernelcheck
from mip6d.kernel import IFA_F_HOMEADDRESS, IFA_F_NODAD, Kernel, KernelError, KernelThread
from mip6d.rtnl import Ip6Encap
from mip6d.xfrm import Algorithm, Policy, Selector, State, Template
from mip6d.xfrm.api import IPPROTO_AH, XFRM_MODE_ROUTEOPTIMIZATION, XFRM_POLICY_OUT, XFRM_PROTO_IRO_DST
from netlab import Host

HA, HOA, COA, COA2 = "2001:db8:1::1", "2001:db8:1::10", "2001:db8:a1::10", "2001:db8:a2::10"


def kernel_in(host: Host) -> Kernel:
    netns.pushns(host.name)
    try:
        return Kernel()
    finally:
        netns.popns()


def esp(spi: int) -> State:
    return State(HA, HOA, spi=spi, selector=Selector.host(HA, HOA),
                 aead=Algorithm("rfc4106(gcm(aes))", bytes(20), 128))


def snapshot(host: Host) -> dict[str, str]:
    return {"links": host.run("ip", "-o", "link", "show", "type", "ip6tnl"),
            "routes": host.run("ip", "-6", "route", "show", "table", "all"),
            "proxy": host.run("ip", "-6", "neigh", "show", "proxy"),
            "addresses": host.run("ip", "-6", "-o", "addr"), "rules": host.run("ip", "-6", "rule"),
            "states": host.run("ip", "-6", "xfrm", "state"), "policies": host.run("ip", "-6", "xfrm", "policy")}


@pytest.fixture
def ha(hosts) -> Host:  # type: ignore[no-untyped-def]
    host = hosts("kha")
    host.run("ip", "link", "add", "home0", "type", "dummy")
    host.run("ip", "link", "set", "home0", "up")
    host.add_address("home0", HA)
    return host


def test_a_home_agent_tunnel_is_one_flow_based_device_and_a_route_per_binding(ha: Host) -> None:
    """As the HA makes it: one `external` ip6ip6 device without multicast route (an address
    added to a device brings the kernel's ff00::/8 route back), and each binding a host
    route encapsulated to its CoA, which a move replaces."""
    before = snapshot(ha)
    k = kernel_in(ha)
    with k.batch():
        k.add_flow_tunnel("mip6ha", guarded=True)
        k.put_admit_filter("mip6ha", 7, HOA, COA)
        k.put_tunnel_route(HOA + "/128", "mip6ha", Ip6Encap(HA, COA))
    time.sleep(1.5)  # past the link watch's NETDEV_CHANGE
    filters = ha.run("tc", "filter", "show", "dev", "mip6ha", "ingress")  # iproute2's reading of the guard
    admit, drop = filters.split("filter protocol all pref 2", 1)
    assert "pref 1 flower" in admit and "handle 0x7" in admit and f"src_ip {HOA}" in admit, filters
    assert f"enc_src_ip {COA}" in admit and "skip_hw" in admit and "action" not in admit, filters
    assert "gact action drop" in drop and "skip_hw" in drop, filters
    multicast = ha.run("ip", "-6", "route", "show", "table", "local", "ff00::/8")
    assert "dev mip6ha" not in multicast and "dev home0" in multicast
    link = ha.run("ip", "-d", "-o", "link", "show", "mip6ha")
    assert "UP" in link and "external" in link and "addrgenmode none" in link, link
    route = f"{HOA} encap ip6 id 0 src {HA} dst {COA} hoplimit 64 tc 0 dev mip6ha proto static metric 1024"
    assert route.split() == ha.run("ip", "-6", "route", "show", HOA).split()[:-2]  # then "pref medium"
    with k.batch():
        k.put_admit_filter("mip6ha", 7, HOA, COA2)
        k.put_tunnel_route(HOA + "/128", "mip6ha", Ip6Encap(HA, COA2))
    routes = ha.run("ip", "-6", "route", "show", HOA).splitlines()
    assert len(routes) == 1 and f"dst {COA2} hoplimit 64" in routes[0], routes
    admit = ha.run("tc", "filter", "show", "dev", "mip6ha", "ingress", "pref", "1")
    assert admit.count(" handle ") == 1 and f"enc_src_ip {COA2}" in admit, admit
    assert k.unwind() == []  # the device, and with it its routes, qdisc and filters
    assert snapshot(ha) == before


def test_the_home_agents_kernel_check_leaves_no_probe_route(ha: Host) -> None:
    before = snapshot(ha)
    netns.pushns(ha.name)
    try:
        kernelcheck.check(ipsec.IRO, home_agent=True)
    finally:
        netns.popns()
    assert snapshot(ha) == before


def test_a_binding_in_one_batch_then_unwound(ha: Host) -> None:
    before = snapshot(ha)
    k = kernel_in(ha)
    with k.batch():
        k.add_state(esp(0x100))
        k.put_state(ipsec.ha_binding_state(ipsec.IRO, HOA, HA, COA))
        index = k.add_tunnel("mip6ha1", HA, COA)
        k.add_route(HOA + "/128", "mip6ha1")
        k.add_proxy(HOA, "home0")
        k.add_address("mip6ha1", HOA, 128, IFA_F_NODAD | IFA_F_HOMEADDRESS)
        k.add_rule(HOA, 252, 1000)
        for policy in ipsec.payload_policies_ha(HOA, HA, COA, 5, 6):
            k.add_policy(policy)
    now = snapshot(ha)
    assert f"{index}: mip6ha1@NONE: <POINTOPOINT,NOARP,UP,LOWER_UP>" in now["links"]
    assert "remote 2001:db8:a1::10 local 2001:db8:1::1" in ha.run("ip", "-6", "-d", "link", "show", "mip6ha1")
    assert f"{HOA} dev mip6ha1 proto static metric 1024" in now["routes"]
    assert f"{HOA} dev home0 proxy" in now["proxy"]
    assert "proto 254" in now["states"] and "coa 2001:db8:a1::10" in now["states"]
    assert now["policies"].count("tmpl src") == 3
    assert f"mip6ha1    inet6 {HOA}/128 scope global nodad home" in now["addresses"]
    # no link-local address (addrgenmode none), so no fe80::/64 route through the tunnel
    assert "fe80" not in ha.run("ip", "-6", "-o", "addr", "show", "dev", "mip6ha1")
    assert "dev mip6ha1" not in ha.run("ip", "-6", "route", "show", "fe80::/64")
    assert "addrgenmode none" in ha.run("ip", "-d", "link", "show", "mip6ha1")
    assert f"1000:\tfrom {HOA} lookup 252" in now["rules"]
    assert len(k.installed()) == 10
    # a move: the state's CoA and the tunnel's remote change in place
    with k.batch():
        k.put_state(ipsec.ha_binding_state(ipsec.IRO, HOA, HA, COA2))
        k.move_tunnel("mip6ha1", HA, COA2)
    assert "coa 2001:db8:a2::10" in ha.ip_xfrm()
    assert "remote 2001:db8:a2::10" in ha.run("ip", "-6", "-d", "link", "show", "mip6ha1")
    assert k.unwind() == []
    assert snapshot(ha) == before
    k.close()


def test_thousands_of_small_requests_are_unwound_in_one_flush(ha: Host) -> None:
    """A home agent's shutdown sends every deletion in one flush. Each ACK takes about 1 KiB
    of the receive buffer; chunked by bytes alone, 3,000 proxy deletions overran it (ENOBUFS)
    and the unwind stopped with everything left."""
    before = snapshot(ha)
    k = kernel_in(ha)
    hoas = [f"2001:db8:1::{i + 0x1000:x}" for i in range(3000)]
    with k.batch():
        for hoa in hoas:
            k.add_proxy(hoa, "home0")
    assert ha.run("ip", "-6", "neigh", "show", "proxy").count("home0 proxy") == 3000
    assert k.unwind() == []
    assert snapshot(ha) == before
    k.close()


def test_a_refusal_names_its_request_and_the_rest_is_recorded(ha: Host) -> None:
    k = kernel_in(ha)
    k.add_state(esp(0x200))
    with pytest.raises(KernelError) as err, k.batch():
        k.add_proxy(HOA, "home0")
        k.add_state(esp(0x200))  # already there
        k.add_state(esp(0x201))
        k.add_route("2001:db8:99::/64", "home0")
        k.add_state(esp(0x200))
    assert str(err.value) == f"xfrm state {HA} -> {HOA} proto 50 spi 0x200: File exists (and 1 more)"
    assert json.dumps(sorted(k.installed())) == json.dumps(sorted([
        f"xfrm state {HA} -> {HOA} proto 50 spi 0x200", f"xfrm state {HA} -> {HOA} proto 50 spi 0x201",
        f"proxy ND {HOA} on home0", "route 2001:db8:99::/64 dev home0 table 254"]))
    assert k.unwind() == []
    assert ha.ip_xfrm() == "" and ha.run("ip", "-6", "neigh", "show", "proxy") == ""
    k.close()


def test_a_kernel_refusal_carries_the_extended_ack(ha: Host) -> None:
    """Remap states go with ESP only: the series refuses AH with an extack message."""
    k = kernel_in(ha)
    with pytest.raises(KernelError) as err:
        k.add_policy(Policy(Selector.host(HA, HOA), XFRM_POLICY_OUT, [
            Template(proto=IPPROTO_AH), Template(proto=XFRM_PROTO_IRO_DST, mode=XFRM_MODE_ROUTEOPTIMIZATION)]))
    assert str(err.value).endswith(": Invalid argument (IRO remapping cannot be used with AH)"), str(err.value)
    assert k.installed() == [] and ha.run("ip", "-6", "xfrm", "policy") == ""
    k.close()


def test_pyroute2_requests_are_refused_outside_the_kernel_thread(ha: Host) -> None:
    """KernelThread.now runs small batches in the event loop's thread, where pyroute2's
    synchronous sockets cannot work: a lookup there fails and names itself, while requests
    that need none go through."""
    before = snapshot(ha)
    k = kernel_in(ha)
    k.pin("home0")
    outcome: list[object] = []

    def elsewhere() -> None:
        try:
            k.add_proxy(HOA, "home0")  # pinned: no lookup
            k.add_route(HOA + "/128", "dummy-not-pinned")
        except KernelError as err:
            outcome.append(err)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert [str(e) for e in outcome] == ["interface dummy-not-pinned: a pyroute2 request outside the kernel thread"]
    assert f"{HOA} dev home0 proxy" in ha.run("ip", "-6", "neigh", "show", "proxy")
    assert k.unwind() == []
    assert snapshot(ha) == before


def test_now_waits_for_a_kernel_thread_call_whose_caller_was_cancelled() -> None:
    """stop() cancels the expiry loop while its unbind may still run in the kernel
    thread: a BU handled at once (now) must not use the batch sockets beside it."""
    kernel = KernelThread()
    order: list[str] = []

    def slow_unbind() -> None:
        order.append("unbind starts")
        time.sleep(0.5)
        order.append("unbind ends")

    async def cancel_then_now() -> None:
        expiry = asyncio.create_task(kernel(slow_unbind))
        await asyncio.sleep(0.1)
        expiry.cancel()  # the coroutine ends; the call goes on in the kernel thread
        with contextlib.suppress(asyncio.CancelledError):
            await expiry
        kernel.now(order.append, "now")

    try:
        asyncio.run(cancel_then_now())
        assert order == ["unbind starts", "unbind ends", "now"]
        assert kernel.now(len, "ab") == 2
    finally:
        kernel.close()
