"""Neighbor discovery the daemons send themselves.

Unsolicited Neighbor Advertisements: the HA claims a HoA on the home link
when it starts proxying it (RFC 6275 10.4.1), and a MN back home takes it back
(11.5.4). Without them the router keeps the old owner's MAC until NUD fails.
A MN on a new link makes its CoA known to its router (`solicit_router`)."""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("mip6d.nd")
ALL_NODES, ALL_ROUTERS = "ff02::1", "ff02::2"
NA_OVERRIDE = 0x20000000
ICMP6_FILTER = 1
ICMP6_FILTER_BLOCK_ALL = b"\xff" * 32  # struct icmp6_filter: a set bit blocks that type


def neighbor_advertisement(target: str, mac: bytes) -> bytes:
    """ICMPv6 NA with the Override flag and a Target Link-Layer Address option;
    the kernel fills in the checksum for an ICMPv6 raw socket."""
    body = struct.pack("!BBHI", 136, 0, 0, NA_OVERRIDE) + socket.inet_pton(socket.AF_INET6, target)
    return body + struct.pack("!BB", 2, 1) + mac


def router_solicitation(mac: bytes) -> bytes:
    """ICMPv6 RS with a Source Link-Layer Address option."""
    return struct.pack("!BBHI", 133, 0, 0, 0) + struct.pack("!BB", 1, 1) + mac


def interface_mac(ifname: str) -> bytes:
    return bytes.fromhex(Path(f"/sys/class/net/{ifname}/address").read_text().strip().replace(":", ""))


def _on_icmp6_socket(ifname: str, what: str, use: Callable[[socket.socket], None]) -> None:
    """Run `use` with a raw ICMPv6 socket on `ifname`. Sending ND is best effort:
    an OSError is logged as `what`, it does not fail the caller."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
            use(sock)
    except OSError as err:
        log.warning("%s on %s: %s", what, ifname, err)


class Announcer:
    """Unsolicited NAs on one interface through one socket, kept open: a home agent
    announces on every first registration, and a socket, its options and a sysfs
    read of the MAC per NA cost more than the NA itself."""

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self._sock: socket.socket | None = None
        self._index = 0
        self._mac = b""

    def announce(self, target: str, count: int = 2) -> None:
        """Multicast `count` unsolicited NAs for `target` with this interface's MAC.
        Best effort: an OSError is logged, and the next call opens a new socket."""
        try:
            if self._sock is None:
                self._open()
            assert self._sock is not None
            packet = neighbor_advertisement(target, self._mac)
            for _ in range(count):
                self._sock.sendto(packet, (ALL_NODES, 0, 0, self._index))
        except OSError as err:
            log.warning("unsolicited NA for %s on %s: %s", target, self.ifname, err)
            self.close()

    def _open(self) -> None:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.ifname.encode())
            # send only: without a filter the kernel would clone every ICMPv6 packet of the
            # home link (NS, MLD, echo) into a queue nobody reads
            sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, ICMP6_FILTER_BLOCK_ALL)
            index = socket.if_nametoindex(self.ifname)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            # no copy back to ourselves: each would walk the interface's multicast list twice
            # (out and in), and on a home agent that list holds a group per proxied HoA
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
            self._mac = interface_mac(self.ifname)
        except OSError:
            sock.close()
            raise
        self._sock, self._index = sock, index

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def announce(ifname: str, target: str, count: int = 2) -> None:
    """One-off unsolicited NAs for `target` (a mobile node back home)."""
    announcer = Announcer(ifname)
    try:
        announcer.announce(target, count)
    finally:
        announcer.close()


def resolve_from(src: str, dst: str, ifname: str) -> None:
    """Get `dst` into the neighbor cache with a Neighbor Solicitation from `src`.

    A MN back home must not solicit its HA from the HoA: until the HA has
    processed the deregistration, it routes the HoA into the tunnel, so its
    answer would leave by the tunnel (RFC 6275 11.5.4 has the MN learn the
    HA's link-layer address without its HoA). An echo request from another
    address of the home link makes the kernel solicit from that address."""
    def send(sock: socket.socket) -> None:
        sock.bind((src, 0))
        sock.sendto(struct.pack("!BBHHH", 128, 0, 0, 0x6d36, 1), (dst, 0))

    _on_icmp6_socket(ifname, f"resolving {dst} from {src}", send)


def solicit_router(coa: str, ifname: str) -> None:
    """A Router Solicitation from the new `coa` (RFC 4861 6.3.7 allows any address
    of the interface) with this interface's MAC: a router records its source and
    MAC (6.2.6), so the BA and the first tunnelled packets to the CoA need no
    address resolution on the access link, whose round trip would delay both.
    Sent before the BU, it reaches the router before either comes back."""
    def send(sock: socket.socket) -> None:
        index = socket.if_nametoindex(ifname)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.bind((coa, 0))
        sock.sendto(router_solicitation(interface_mac(ifname)), (ALL_ROUTERS, 0, 0, index))

    _on_icmp6_socket(ifname, f"router solicitation from {coa}", send)
