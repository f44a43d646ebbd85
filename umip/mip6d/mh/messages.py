"""The Mobility Header messages this daemon speaks (RFC 6275 6.1): typed values and their fixed parts.

Each message knows its fixed part, the octets between the 6-octet MH header and the options. Integer
fields are as on the wire (lifetimes in 4-second units). Reserved bits are sent as zero and, as RFC
6275 requires, ignored on receipt unless the decoder runs in strict mode.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import ClassVar

from .constants import (
    BA_FLAG_KEY_MGMT,
    BU_FLAG_ACK,
    BU_FLAG_HOME,
    BU_FLAG_KEY_MGMT,
    BU_FLAG_LINK_LOCAL,
    LIFETIME_UNIT,
    MhType,
)
from .errors import MhError
from .options import Option, check_options, check_range, from_wire

HEADER_LENGTH = 6
"""Payload Proto, Header Len, MH Type, Reserved, Checksum."""


def _check_bool(name: str, value: bool) -> None:
    if value is not True and value is not False:
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")


def _reserved(mh: bytes, offset: int, size: int, mask: int, field_name: str, strict: bool) -> None:
    if strict and int.from_bytes(mh[offset : offset + size], "big") & mask:
        raise MhError(offset, field_name, "reserved bits are not zero")


@dataclass(frozen=True, kw_only=True)
class BindingRefreshRequest:
    """Binding Refresh Request (MH type 0, RFC 6275 6.1.2)."""

    options: tuple[Option, ...] = ()

    mh_type: ClassVar[int] = MhType.BRR
    name: ClassVar[str] = "Binding Refresh Request"
    fixed_length: ClassVar[int] = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", check_options(self.options))

    def fixed_part(self) -> bytes:
        return bytes(2)

    @classmethod
    def parse(cls, mh: bytes, options: tuple[Option, ...], strict: bool) -> BindingRefreshRequest:
        _reserved(mh, 6, 2, 0xFFFF, "BRR reserved", strict)
        return cls(options=options)


@dataclass(frozen=True, kw_only=True)
class BindingUpdate:
    """Binding Update (MH type 5, RFC 6275 6.1.7); ``lifetime`` in 4-second units."""

    seq: int
    lifetime: int
    ack: bool = False
    home: bool = False
    link_local: bool = False
    key_mgmt: bool = False
    options: tuple[Option, ...] = ()

    mh_type: ClassVar[int] = MhType.BU
    name: ClassVar[str] = "Binding Update"
    fixed_length: ClassVar[int] = 6

    def __post_init__(self) -> None:
        check_range("sequence number", self.seq, 0xFFFF)
        check_range("lifetime", self.lifetime, 0xFFFF)
        for name in ("ack", "home", "link_local", "key_mgmt"):
            _check_bool(name, getattr(self, name))
        object.__setattr__(self, "options", check_options(self.options))

    @property
    def lifetime_seconds(self) -> int:
        return self.lifetime * LIFETIME_UNIT

    @property
    def flags(self) -> int:
        """The 16-bit flags word as on the wire."""
        return ((BU_FLAG_ACK if self.ack else 0) | (BU_FLAG_HOME if self.home else 0)
                | (BU_FLAG_LINK_LOCAL if self.link_local else 0) | (BU_FLAG_KEY_MGMT if self.key_mgmt else 0))

    def fixed_part(self) -> bytes:
        return struct.pack("!HHH", self.seq, self.flags, self.lifetime)

    @classmethod
    def parse(cls, mh: bytes, options: tuple[Option, ...], strict: bool) -> BindingUpdate:
        seq, flags, lifetime = struct.unpack_from("!HHH", mh, 6)
        known = BU_FLAG_ACK | BU_FLAG_HOME | BU_FLAG_LINK_LOCAL | BU_FLAG_KEY_MGMT
        _reserved(mh, 8, 2, ~known & 0xFFFF, "BU flags", strict)
        return from_wire(cls, seq=seq, lifetime=lifetime, ack=bool(flags & BU_FLAG_ACK),
                          home=bool(flags & BU_FLAG_HOME), link_local=bool(flags & BU_FLAG_LINK_LOCAL),
                          key_mgmt=bool(flags & BU_FLAG_KEY_MGMT), options=options)


@dataclass(frozen=True, kw_only=True)
class BindingAcknowledgement:
    """Binding Acknowledgement (MH type 6, RFC 6275 6.1.8); ``lifetime`` in 4-second units."""

    status: int
    key_mgmt: bool = False
    seq: int
    lifetime: int
    options: tuple[Option, ...] = ()

    mh_type: ClassVar[int] = MhType.BA
    name: ClassVar[str] = "Binding Acknowledgement"
    fixed_length: ClassVar[int] = 6

    def __post_init__(self) -> None:
        check_range("status", self.status, 0xFF)
        _check_bool("key_mgmt", self.key_mgmt)
        check_range("sequence number", self.seq, 0xFFFF)
        check_range("lifetime", self.lifetime, 0xFFFF)
        object.__setattr__(self, "options", check_options(self.options))

    @property
    def lifetime_seconds(self) -> int:
        return self.lifetime * LIFETIME_UNIT

    @property
    def accepted(self) -> bool:
        """Status below 128: the Binding Update was accepted."""
        return self.status < 128

    def fixed_part(self) -> bytes:
        return struct.pack("!BBHH", self.status, BA_FLAG_KEY_MGMT if self.key_mgmt else 0, self.seq, self.lifetime)

    @classmethod
    def parse(cls, mh: bytes, options: tuple[Option, ...], strict: bool) -> BindingAcknowledgement:
        status, flags, seq, lifetime = struct.unpack_from("!BBHH", mh, 6)
        _reserved(mh, 7, 1, ~BA_FLAG_KEY_MGMT & 0xFF, "BA flags", strict)
        return from_wire(cls, status=status, key_mgmt=bool(flags & BA_FLAG_KEY_MGMT), seq=seq,
                          lifetime=lifetime, options=options)


@dataclass(frozen=True, kw_only=True)
class BindingError:
    """Binding Error (MH type 7, RFC 6275 6.1.9); ``home_address`` in canonical (compressed) form."""

    status: int
    home_address: str = "::"
    options: tuple[Option, ...] = field(default=())

    mh_type: ClassVar[int] = MhType.BE
    name: ClassVar[str] = "Binding Error"
    fixed_length: ClassVar[int] = 18

    def __post_init__(self) -> None:
        check_range("status", self.status, 0xFF)
        object.__setattr__(self, "home_address", str(ipaddress.IPv6Address(self.home_address)))
        object.__setattr__(self, "options", check_options(self.options))

    def fixed_part(self) -> bytes:
        return struct.pack("!BB", self.status, 0) + ipaddress.IPv6Address(self.home_address).packed

    @classmethod
    def parse(cls, mh: bytes, options: tuple[Option, ...], strict: bool) -> BindingError:
        _reserved(mh, 7, 1, 0xFF, "BE reserved", strict)
        return cls(status=mh[6], home_address=str(ipaddress.IPv6Address(mh[8:24])), options=options)


Message = BindingRefreshRequest | BindingUpdate | BindingAcknowledgement | BindingError
"""Any message the codec encodes and decodes."""

MESSAGE_CLASSES: dict[int, type[Message]] = {
    cls.mh_type: cls for cls in (BindingRefreshRequest, BindingUpdate, BindingAcknowledgement, BindingError)
}


def minimum_length(cls: type[Message]) -> int:
    """The shortest MH of this type: header and fixed part rounded up to 8 octets (RFC 6275 9.2)."""
    return -(-(HEADER_LENGTH + cls.fixed_length) // 8) * 8
