"""The raw Mobility Header socket, on the event loop.

The kernel computes and verifies the MH checksum of a raw IPPROTO_MH socket
(offset 4) and drops MH with a bad length (mip6_mh_filter), so what arrives
here has passed both. What it delivers besides the payload is how the packet
travelled: the on-wire CoA from a HAO (classic) or from the IRO remap cmsgs."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import struct
from collections.abc import Callable
from typing import NamedTuple

log = logging.getLogger("mip6d.mh")

IPPROTO_MH = 135
IPV6_RECVPKTINFO, IPV6_PKTINFO = 49, 50
IPV6_FREEBIND = 78
IPV6_RECVRTHDR, IPV6_RTHDR = 56, 57
IPV6_RECVDSTOPTS, IPV6_DSTOPTS = 58, 59
IPV6_RECVIROSRC, IPV6_IROSRC, IPV6_RECVIRODST, IPV6_IRODST = 90, 91, 92, 93  # iro kernel series
SO_TIMESTAMPNS = 35  # also SCM_TIMESTAMPNS
_IPV6, _SOCKET = socket.IPPROTO_IPV6, socket.SOL_SOCKET
_TIMESPEC = struct.Struct("=qq")
HAO_TYPE = 201
UNSPECIFIED = "::"


class Received(NamedTuple):  # not a dataclass: one is built per MH, a NamedTuple at a third of the cost
    data: bytes
    src: str  # as the sockets see it: the home address when remapped
    dst: str
    wire_src: str  # the on-wire source (a CoA) if the kernel rewrote it, else `src`
    wire_dst: str
    via_hao: bool = False
    via_rh2: bool = False
    arrived: float = 0.0  # kernel receive time (CLOCK_REALTIME, as time.time()); 0 if unknown


@functools.lru_cache(maxsize=1 << 16)
def _address(packed: bytes) -> str:
    """Cached: a home agent reads the same few addresses in every BU's cmsgs, and
    glibc's inet_ntop formats each group through sprintf (it showed in perf)."""
    return socket.inet_ntop(socket.AF_INET6, packed)


def _hao_address(dstopts: bytes) -> str | None:
    """The address in a Home Address option of a Destination Options header."""
    pos = 2
    while pos < len(dstopts):
        kind = dstopts[pos]
        if kind == 0:  # Pad1
            pos += 1
            continue
        if pos + 2 > len(dstopts):
            return None
        length = dstopts[pos + 1]
        if kind == HAO_TYPE and length == 16 and pos + 18 <= len(dstopts):
            return socket.inet_ntop(socket.AF_INET6, dstopts[pos + 2:pos + 18])
        pos += 2 + length
    return None


class MhSocket:
    """A raw MH socket bound to one local address."""

    def __init__(self, bind: str, iro: bool) -> None:
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_MH)
        self.sock.setblocking(False)
        for option in (IPV6_RECVPKTINFO, IPV6_RECVDSTOPTS, IPV6_RECVRTHDR):
            self.sock.setsockopt(socket.IPPROTO_IPV6, option, 1)
        if iro:
            # fails with ENOPROTOOPT on a kernel without the iro series
            self.sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVIROSRC, 1)
            self.sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVIRODST, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)  # time spent queued for the loop
        if bind != UNSPECIFIED:
            self.sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)  # the HoA may come and go
        self.sock.bind((bind, 0))

    def start(self, on_message: Callable[[Received], None]) -> None:
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._readable, on_message)

    def _readable(self, on_message: Callable[[Received], None]) -> None:
        while True:
            try:
                data, ancdata, _flags, addr = self.sock.recvmsg(65535, 1024)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                log.warning("MH socket: %s", err)
                return
            try:
                on_message(self._parse(data, addr[0], ancdata))
            except Exception:  # one bad packet must not stop the daemon
                log.exception("MH from %s: handler failed", addr[0])

    @staticmethod
    def _parse(data: bytes, src: str, ancdata: list[tuple[int, int, bytes]]) -> Received:
        dst = wire_src = wire_dst = UNSPECIFIED
        via_hao = via_rh2 = False
        arrived = 0.0
        for level, kind, value in ancdata:
            if level == _IPV6:
                if kind == IPV6_PKTINFO and len(value) >= 16:
                    dst = _address(value[:16])
                elif kind == IPV6_IROSRC and len(value) == 16:
                    wire_src = _address(value)
                elif kind == IPV6_IRODST and len(value) == 16:
                    wire_dst = _address(value)
                elif kind == IPV6_DSTOPTS and (hao := _hao_address(value)):
                    wire_src, via_hao = hao, True
                elif kind == IPV6_RTHDR and len(value) >= 24 and value[2] == 2:
                    via_rh2 = True
            elif level == _SOCKET and kind == SO_TIMESTAMPNS and len(value) == 16:
                seconds, nanoseconds = _TIMESPEC.unpack(value)
                arrived = seconds + nanoseconds / 1e9
        return Received(data, src, dst, src if wire_src == UNSPECIFIED else wire_src,
                        dst if wire_dst == UNSPECIFIED else wire_dst, via_hao, via_rh2, arrived)

    def send(self, data: bytes, dst: str) -> None:
        self.sock.sendto(data, (dst, 0))

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()

