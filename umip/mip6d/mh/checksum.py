"""The Mobility Header checksum: the Internet checksum over the IPv6 pseudo-header and the MH (RFC 6275 6.1.1)."""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys

from .constants import IPPROTO_MH

_SWAP = sys.byteorder == "little"


def address_bytes(address: str | ipaddress.IPv6Address) -> bytes:
    """The 16 octets of an IPv6 address; raises ValueError for anything else.
    inet_pton, not ipaddress: this runs for every MH sent, and ipaddress's parser
    is pure Python (a millisecond per address under emulation)."""
    if isinstance(address, ipaddress.IPv6Address):
        return address.packed
    try:
        return socket.inet_pton(socket.AF_INET6, address)
    except (OSError, TypeError) as err:
        raise ValueError(f"{address!r} is not an IPv6 address") from err


def pseudo_header(src: bytes, dst: bytes, length: int) -> bytes:
    """The IPv6 pseudo-header (RFC 8200 8.1) for an MH of ``length`` octets between 16-octet addresses."""
    return src + dst + struct.pack("!I3xB", length, IPPROTO_MH)


def _ones_complement_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    # The one's complement sum does not depend on byte order (RFC 1071 2(B)): add native words, swap at the end.
    total = sum(memoryview(data).cast("H"))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    if _SWAP:
        total = ((total & 0xFF) << 8) | (total >> 8)
    return total


def mh_checksum(src: bytes, dst: bytes, mh: bytes) -> int:
    """The value for the Checksum field of ``mh``, whose own Checksum field (bytes 4-5) must be zero."""
    return ~_ones_complement_sum(pseudo_header(src, dst, len(mh)) + mh) & 0xFFFF


def checksum_ok(src: bytes, dst: bytes, mh: bytes) -> bool:
    """True if ``mh``, Checksum field included, sums to all ones with its pseudo-header."""
    return _ones_complement_sum(pseudo_header(src, dst, len(mh)) + mh) == 0xFFFF
