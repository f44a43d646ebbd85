"""Encode and decode whole Mobility Headers (RFC 6275 6.1.1, checks in the order of 9.2)."""

from __future__ import annotations

import ipaddress
import struct

from .checksum import address_bytes, checksum_ok, mh_checksum
from .constants import IPPROTO_NONE, MH_MAX_LENGTH, MhType
from .errors import MhError, UnknownMhType
from .messages import HEADER_LENGTH, MESSAGE_CLASSES, Message, minimum_length
from .options import Option, decode_options, encode_options, padding

_UNSUPPORTED: dict[int, str] = {
    MhType.HOTI: "HoTI",
    MhType.COTI: "CoTI",
    MhType.HOT: "HoT",
    MhType.COT: "CoT",
}
_OPTIONS_SEEN: dict[tuple[bytes, int, bool], tuple[Option, ...]] = {}
_OPTIONS_SEEN_MAX = 1 << 15
# a BU's Alternate CoA with its padding takes 20-26 octets; larger areas are not kept, so that
# senders of varied option areas cannot grow the memo past about 20 MiB (32,768 areas, measured)
_OPTIONS_SEEN_OCTETS = 64


def _decoded_options(mh: bytes, start: int, strict: bool) -> tuple[Option, ...]:
    """decode_options, remembered by the option octets and where they start (its result
    depends on nothing else, and the values are immutable): a home agent receives the same
    options, the MN's Alternate CoA, in every refresh. Errors are not remembered."""
    if len(mh) - start > _OPTIONS_SEEN_OCTETS:
        return decode_options(mh, start, strict)
    key = (mh[start:], start, strict)
    options = _OPTIONS_SEEN.get(key)
    if options is None:
        options = decode_options(mh, start, strict)
        if len(_OPTIONS_SEEN) >= _OPTIONS_SEEN_MAX:
            _OPTIONS_SEEN.clear()
        _OPTIONS_SEEN[key] = options
    return options


_MINIMUM_LENGTHS = {mh_type: minimum_length(cls) for mh_type, cls in MESSAGE_CLASSES.items()}


def encode(msg: Message, src: str | ipaddress.IPv6Address, dst: str | ipaddress.IPv6Address,
           checksum: bool = True) -> bytes:
    """The complete MH for ``msg`` sent from ``src`` to ``dst``: options aligned, padded, checksummed.
    ``checksum=False`` leaves the checksum zero, for a raw IPPROTO_MH socket, where the kernel
    computes it (at offset 4, over the addresses the socket sends from and to).

    Raises ValueError if an address is not IPv6 or the options make the message longer than 2048 octets.
    """
    if type(msg) not in MESSAGE_CLASSES.values():
        raise TypeError(f"not a Mobility Header message: {type(msg).__name__}")
    fixed = msg.fixed_part()
    start = HEADER_LENGTH + len(fixed)
    body = fixed + (encode_options(msg.options, start) if msg.options else padding(-start % 8))
    length = HEADER_LENGTH + len(body)
    if length > MH_MAX_LENGTH:
        raise ValueError(f"{msg.name} would be {length} bytes; an MH holds at most {MH_MAX_LENGTH}")
    mh = struct.pack("!BBBBH", IPPROTO_NONE, length // 8 - 1, msg.mh_type, 0, 0) + body
    if not checksum:
        return mh
    return mh[:4] + struct.pack("!H", mh_checksum(address_bytes(src), address_bytes(dst), mh)) + mh[6:]


def decode(data: bytes | bytearray | memoryview, src: str | ipaddress.IPv6Address, dst: str | ipaddress.IPv6Address,
           verify_checksum: bool = True, *, strict: bool = False) -> Message:
    """The message in ``data``, a whole MH (the IPv6 payload after any extension headers) from ``src`` to ``dst``.

    Raises MhError, with the offending byte offset, for anything RFC 6275 says to drop: Payload Proto not
    59, a Header Len that disagrees with ``data`` or is short for the type, a bad checksum, options that
    overrun, have the wrong length for their type, or are misaligned (see ``options``), an option after
    Binding Authorization Data. An MH type other than BRR/BU/BA/BE (including the return routability
    messages, which this daemon does not implement) raises UnknownMhType, after the checksum is known to
    be good, so that the caller can answer with a Binding Error, status 2.

    Reserved fields and PadN contents are ignored, as RFC 6275 6.1 and 6.2.2 require of a receiver;
    ``strict=True`` rejects non-zero values there too (for tests of senders). Bad ``src``/``dst`` raise
    ValueError; nothing but MhError comes out for any ``data``.
    """
    mh = bytes(data)
    size = len(mh)
    if size < 8:
        raise MhError(0, "packet", f"of {size} bytes is shorter than the 8-byte minimum Mobility Header")
    if mh[0] != IPPROTO_NONE:
        raise MhError(0, "payload proto", f"{mh[0]} is not {IPPROTO_NONE} (no next header)")
    length = (mh[1] + 1) * 8
    if length != size:
        relation = "exceeds" if length > size else "is shorter than"
        raise MhError(1, "header length", f"{mh[1]} ({length} bytes) {relation} packet ({size} bytes)")
    if verify_checksum and not checksum_ok(address_bytes(src), address_bytes(dst), mh):
        raise MhError(4, "checksum", f"0x{mh[4]:02x}{mh[5]:02x} is wrong")
    mh_type = mh[2]
    cls = MESSAGE_CLASSES.get(mh_type)
    if cls is None:
        if mh_type in _UNSUPPORTED:
            raise UnknownMhType(mh_type, f"({_UNSUPPORTED[mh_type]}) is not supported: no return routability")
        raise UnknownMhType(mh_type)
    if length < _MINIMUM_LENGTHS[mh_type]:
        raise MhError(1, "header length", f"{mh[1]} ({length} bytes) is too short for a {cls.name} "
                      f"(at least {_MINIMUM_LENGTHS[mh_type]} bytes)")
    if strict and mh[3]:
        raise MhError(3, "reserved", f"{mh[3]} is not zero")
    options = _decoded_options(mh, HEADER_LENGTH + cls.fixed_length, strict)
    return cls.parse(mh, options, strict)
