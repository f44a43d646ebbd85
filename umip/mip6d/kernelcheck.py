"""Refuse to start when the running kernel cannot do the configured mode."""

from __future__ import annotations

import errno
import os
import socket

from mip6d import ipsec, rtnl
from mip6d.mhsock import IPPROTO_MH, IPV6_RECVIROSRC
from mip6d.nlbatch import BatchSocket
from mip6d.xfrm import State, XfrmError, XfrmSocket


class UnsupportedKernelError(RuntimeError):
    pass


def _release() -> str:
    return os.uname().release


def check(mode: ipsec.Mode, home_agent: bool = False) -> None:
    try:
        xfrm = XfrmSocket()
    except OSError as err:
        raise UnsupportedKernelError(f"kernel {_release()}: no XFRM netlink (CONFIG_XFRM_USER): {err}") from err
    with xfrm:
        if mode is ipsec.IRO:
            _check_iro()
        # a throw-away route-optimization state proves the mode's xfrm type is there
        probe = State("100::1", "100::2", mode.source_proto, mode=ipsec.RO, coaddr="100::3")
        try:
            xfrm.add_state(probe)
        except XfrmError as err:
            need = "the iro kernel series (XFRM_PROTO_IRO_SRC)" if mode is ipsec.IRO else "CONFIG_IPV6_MIP6"
            raise UnsupportedKernelError(f"kernel {_release()}: {mode.name} mode needs {need}: {err}") from err
        xfrm.delete_state(probe.dst, probe.spi, probe.proto, probe.src)
    if home_agent:
        _check_lightweight_tunnels()
        _check_tunnel_guard()


# A route in the discard-only prefix (RFC 6666) at a metric nobody uses, never replacing one
_PROBE_ROUTE, _PROBE_METRIC = "100::/64", 0xFFFFFFF0
_LOOPBACK = 1


def _check_lightweight_tunnels() -> None:
    """A home agent routes each binding with `encap ip6 dst CoA` (see rtnl.new_flow_ip6tnl)."""
    encap = rtnl.Ip6Encap("100::1", "100::2")
    add = rtnl.new_route(_PROBE_ROUTE, _LOOPBACK, 254, _PROBE_METRIC, encap=encap)
    sock = BatchSocket(0)
    try:
        outcome = sock.request([add])[0]
        if outcome.code == 0:
            sock.request([rtnl.del_route(_PROBE_ROUTE, _LOOPBACK, metric=_PROBE_METRIC)])
        elif outcome.code == errno.EOPNOTSUPP:
            raise UnsupportedKernelError(
                f"kernel {_release()}: a home agent needs lightweight tunnels (CONFIG_LWTUNNEL) for its "
                f"`encap ip6` routes: {outcome.describe()}")
        elif outcome.code != errno.EEXIST:  # e.g. lo down: not the kernel's build
            raise UnsupportedKernelError(f"lightweight tunnel probe route {_PROBE_ROUTE}: {outcome.describe()}")
    finally:
        sock.sock.close()


# A device of the probe's own, down, at an ifindex below the daemon's tunnels' (kernel.TUNNEL_INDEX_BASE)
_PROBE_LINK, _PROBE_INDEX = "mip6d-probe", (1 << 20) - 1


def _check_tunnel_guard() -> None:
    """A home agent guards its flow-based device with clsact, flower and gact (see
    rtnl.put_admit_filter): the probe builds that guard on a device of its own, then
    deletes the device, and the guard with it."""
    steps = [
        (rtnl.new_ip6tnl(_PROBE_LINK, _PROBE_INDEX, "100::1", "100::2"),
         f"an ip6tnl device {_PROBE_LINK} at ifindex {_PROBE_INDEX} (CONFIG_IPV6_TUNNEL)"),
        (rtnl.new_clsact(_PROBE_INDEX), "the clsact qdisc (CONFIG_NET_SCH_INGRESS)"),
        (rtnl.new_drop_filter(_PROBE_INDEX), "a flower filter with a gact action (CONFIG_NET_CLS_FLOWER, "
                                             "CONFIG_NET_ACT_GACT)"),
        (rtnl.put_admit_filter(_PROBE_INDEX, 1, "100::3", "100::4"), "a flower filter on tunnel metadata"),
    ]
    sock = BatchSocket(0)
    try:
        sock.request([rtnl.del_link_named(_PROBE_LINK)])  # one a killed daemon left (else ENODEV)
        outcomes = sock.request([message for message, _ in steps])
        if outcomes[0].code == 0:
            sock.request([rtnl.del_link(_PROBE_INDEX)])
        for (_, need), outcome in zip(steps, outcomes, strict=True):
            if outcome.code:
                raise UnsupportedKernelError(f"kernel {_release()}: a home agent's tunnel guard needs {need}: "
                                             f"{outcome.describe()}")
    finally:
        sock.sock.close()


def _check_iro() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_MH) as sock:
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVIROSRC, 1)
        except OSError as err:
            if err.errno == errno.ENOPROTOOPT:
                raise UnsupportedKernelError(
                    f"kernel {_release()} has no IRO support (IPV6_RECVIROSRC: ENOPROTOOPT); "
                    "UseMnHaIRO needs a kernel built with the iro patch series") from err
            raise
