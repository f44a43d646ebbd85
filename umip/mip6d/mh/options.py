"""Mobility options (RFC 6275 6.2): typed values, and their TLV encoding with Pad1/PadN alignment.

Padding is not represented as values: the encoder inserts Pad1/PadN where an option's alignment and the
8-octet multiple require it, and the decoder checks and drops it.

Alignment on receipt. RFC 6275 6.2 gives each option an alignment requirement "xn+y" (counted from the
start of the MH) so that multi-octet fields fall on natural boundaries, and every conforming sender pads
to meet it. The decoder rejects a known option that is misaligned as malformed instead of reading it
anyway: only a broken or forged sender produces one; a receiver that tolerated it would disagree with
implementations that read the fields in place (UMIP overlays C structs on the buffer); and for the
Binding Authorization Data option the position is part of what the authenticator covers (6.2.7: it
is the last option, hence at 8n+2), so a misplaced one cannot be valid. RFC 6275 9.2 has the receiver
discard malformed Mobility Headers, which is what an MhError tells the caller to do.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import struct
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from .constants import LIFETIME_UNIT, ZERO_80_BITS, OptionType
from .errors import MhError

MAX_OPTION_DATA = 255


def check_range(name: str, value: int, high: int) -> None:
    if type(value) is int and 0 <= value <= high:  # the common case, first: a BA is built per BU
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise ValueError(f"{name} must be an integer in 0..{high}, not {value!r}")


_Decoded = TypeVar("_Decoded")


def from_wire(cls: type[_Decoded], **fields: object) -> _Decoded:
    """A decoded option or message, without its constructor's checks: each integer was
    unpacked from a field of its own width, each flag is a bool, each address is canonical,
    and decode_options checked the options. (The checks were a third of the time to decode
    a BU, which a home agent does at every refresh.)"""
    value = object.__new__(cls)
    value.__dict__.update(fields)
    return value


def _check_data(name: str, value: bytes) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    if len(value) > MAX_OPTION_DATA:
        raise ValueError(f"{name} is {len(value)} bytes; an option holds at most {MAX_OPTION_DATA}")


@dataclass(frozen=True)
class BindingRefreshAdvice:
    """Binding Refresh Advice (type 2, in a BA): ``interval`` in 4-second units, as on the wire."""

    interval: int

    option_type: ClassVar[int] = OptionType.BINDING_REFRESH_ADVICE
    name: ClassVar[str] = "Binding Refresh Advice"
    alignment: ClassVar[tuple[int, int]] = (2, 0)
    data_length: ClassVar[int | None] = 2

    def __post_init__(self) -> None:
        check_range("refresh interval", self.interval, 0xFFFF)

    @property
    def interval_seconds(self) -> int:
        return self.interval * LIFETIME_UNIT

    def data(self) -> bytes:
        return struct.pack("!H", self.interval)

    @classmethod
    def from_data(cls, data: bytes) -> BindingRefreshAdvice:
        return cls(int.from_bytes(data, "big"))


@dataclass(frozen=True)
class AlternateCareOfAddress:
    """Alternate Care-of Address (type 3, in a BU); ``address`` is kept in canonical (compressed) form."""

    address: str

    option_type: ClassVar[int] = OptionType.ALTERNATE_COA
    name: ClassVar[str] = "Alternate Care-of Address"
    alignment: ClassVar[tuple[int, int]] = (8, 6)
    data_length: ClassVar[int | None] = 16

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", _canonical(self.address))

    def data(self) -> bytes:
        return ipaddress.IPv6Address(self.address).packed

    @classmethod
    def from_data(cls, data: bytes) -> AlternateCareOfAddress:
        return from_wire(cls, address=_canonical(data))


@functools.lru_cache(maxsize=1 << 16)
def _canonical(address: str | bytes) -> str:
    """Cached: a home agent decodes the same CoAs at every refresh, and ipaddress
    parses and formats in pure Python (a third of a BU's decoding otherwise). Octets
    off the wire (a new CoA in every first registration) go through inet_ntop, whose
    RFC 5952 form is ipaddress's except where it prints an embedded IPv4 address."""
    if isinstance(address, bytes) and len(address) == 16 and not address.startswith(ZERO_80_BITS):
        return socket.inet_ntop(socket.AF_INET6, address)
    return str(ipaddress.IPv6Address(address))


@dataclass(frozen=True)
class NonceIndices:
    """Nonce Indices (type 4, in a BU to a correspondent)."""

    home: int
    care_of: int

    option_type: ClassVar[int] = OptionType.NONCE_INDICES
    name: ClassVar[str] = "Nonce Indices"
    alignment: ClassVar[tuple[int, int]] = (2, 0)
    data_length: ClassVar[int | None] = 4

    def __post_init__(self) -> None:
        check_range("home nonce index", self.home, 0xFFFF)
        check_range("care-of nonce index", self.care_of, 0xFFFF)

    def data(self) -> bytes:
        return struct.pack("!HH", self.home, self.care_of)

    @classmethod
    def from_data(cls, data: bytes) -> NonceIndices:
        home, care_of = struct.unpack("!HH", data)
        return cls(home, care_of)


@dataclass(frozen=True)
class BindingAuthorizationData:
    """Binding Authorization Data (type 5): must be the last option (RFC 6275 6.2.7)."""

    authenticator: bytes

    option_type: ClassVar[int] = OptionType.BINDING_AUTH_DATA
    name: ClassVar[str] = "Binding Authorization Data"
    alignment: ClassVar[tuple[int, int]] = (8, 2)
    data_length: ClassVar[int | None] = None

    def __post_init__(self) -> None:
        _check_data("authenticator", self.authenticator)

    def data(self) -> bytes:
        return self.authenticator

    @classmethod
    def from_data(cls, data: bytes) -> BindingAuthorizationData:
        return cls(data)


@dataclass(frozen=True)
class UnknownOption:
    """An option this codec does not understand: skipped on receipt (RFC 6275 6.2.1), kept for the caller."""

    type: int
    data: bytes

    name: ClassVar[str] = "unknown"
    alignment: ClassVar[tuple[int, int]] = (1, 0)

    def __post_init__(self) -> None:
        check_range("option type", self.type, 0xFF)
        if self.type in _KNOWN_TYPES:
            raise ValueError(f"option type {self.type} is not unknown: use its own class")
        _check_data("option data", self.data)


Option = BindingRefreshAdvice | AlternateCareOfAddress | NonceIndices | BindingAuthorizationData | UnknownOption
"""Any mobility option value that a message's ``options`` tuple may hold."""

KnownOption = BindingRefreshAdvice | AlternateCareOfAddress | NonceIndices | BindingAuthorizationData

OPTION_CLASSES: dict[int, type[KnownOption]] = {
    cls.option_type: cls
    for cls in (BindingRefreshAdvice, AlternateCareOfAddress, NonceIndices, BindingAuthorizationData)
}
_KNOWN_TYPES = frozenset({OptionType.PAD1, OptionType.PADN, *OPTION_CLASSES})
_PAD1, _PADN = int(OptionType.PAD1), int(OptionType.PADN)  # plain ints: an enum lookup per octet showed in profiles
_OPTION_TYPES = (BindingRefreshAdvice, AlternateCareOfAddress, NonceIndices, BindingAuthorizationData, UnknownOption)


def check_options(options: object) -> tuple[Option, ...]:
    """``options`` as a tuple of option values; raises TypeError/ValueError for anything else."""
    if options == ():  # most messages, and every BA a home agent sends
        return ()
    if not isinstance(options, tuple | list):
        raise TypeError(f"options must be a tuple of options, not {type(options).__name__}")
    for index, option in enumerate(options):
        if not isinstance(option, _OPTION_TYPES):
            raise TypeError(f"options[{index}] is a {type(option).__name__}, not a mobility option")
        if isinstance(option, BindingAuthorizationData) and index != len(options) - 1:
            raise ValueError("Binding Authorization Data must be the last option (RFC 6275 6.2.7)")
    return tuple(options)


def padding(length: int) -> bytes:
    """``length`` octets of padding: nothing, a Pad1, or one PadN of zeros."""
    if length == 0:
        return b""
    if length == 1:
        return bytes([_PAD1])
    return bytes([_PADN, length - 2]) + bytes(length - 2)


def encode_options(options: tuple[Option, ...], start: int) -> bytes:
    """The options area of an MH whose options begin at octet ``start``: aligned, padded to a multiple of 8."""
    out = bytearray()
    for option in options:
        x, y = option.alignment
        out += padding((y - start - len(out)) % x)
        if isinstance(option, UnknownOption):
            out += bytes([option.type, len(option.data)]) + option.data
        else:
            data = option.data()
            out += bytes([option.option_type, len(data)]) + data
    out += padding(-(start + len(out)) % 8)
    return bytes(out)


MAX_PAD_RUN = 7
"""Strict mode: the most consecutive padding octets accepted; a sender never needs more (as Linux for IPv6 options)."""


def decode_options(mh: bytes, start: int, strict: bool = False) -> tuple[Option, ...]:
    """The options in ``mh[start:]``, padding dropped; raises MhError naming the byte at fault.

    ``strict`` also rejects PadN data that is not zero and padding runs longer than 7 octets, which
    RFC 6275 6.2.2 tells receivers to ignore.
    """
    end = len(mh)
    options: list[Option] = []
    pos = start
    pad_start = pos
    pad_run = 0
    auth_at = -1
    while pos < end:
        otype = mh[pos]
        if otype == _PAD1:
            olen = -1
            data_end = pos + 1
        else:
            if pos + 2 > end:
                raise MhError(pos, "option", f"type {otype} is cut off: its length byte is past the end ({end} bytes)")
            olen = mh[pos + 1]
            data_end = pos + 2 + olen
            if data_end > end:
                raise MhError(pos + 1, "option length",
                              f"{olen} of option type {otype} runs past the end ({end} bytes)")
        if otype in (_PAD1, _PADN):
            if pad_run == 0:
                pad_start = pos
            pad_run += data_end - pos
            if strict:
                if any(mh[pos + 2 : data_end]):
                    raise MhError(pos + 2, "PadN data", "is not all zero")
                if pad_run > MAX_PAD_RUN:
                    raise MhError(pad_start, "padding", f"of {pad_run} octets is longer than {MAX_PAD_RUN}")
            pos = data_end
            continue
        pad_run = 0
        if auth_at >= 0:
            raise MhError(pos, "option", f"type {otype} follows Binding Authorization Data (byte {auth_at}), "
                          "which must be last")
        cls = OPTION_CLASSES.get(otype)
        if cls is None:
            options.append(UnknownOption(otype, mh[pos + 2 : data_end]))
        else:
            if cls.data_length is not None and olen != cls.data_length:
                raise MhError(pos + 1, "option length", f"{olen} of {cls.name} option, must be {cls.data_length}")
            x, y = cls.alignment
            if pos % x != y:
                raise MhError(pos, f"{cls.name} option", f"is misaligned: must start at {x}n+{y}")
            if cls is BindingAuthorizationData:
                auth_at = pos
            options.append(cls.from_data(mh[pos + 2 : data_end]))
        pos = data_end
    return tuple(options)
