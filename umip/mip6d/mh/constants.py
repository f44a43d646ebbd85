"""Mobility Header numbers from RFC 6275 (IANA "Mobile IPv6 parameters")."""

from __future__ import annotations

from enum import IntEnum

IPPROTO_NONE = 59
"""The only Payload Proto an MH may carry (RFC 6275 6.1.1)."""
IPPROTO_MH = 135
"""The IPv6 Next Header value of the Mobility Header, used in the checksum pseudo-header."""

MH_MAX_LENGTH = (255 + 1) * 8
"""The largest MH the 8-bit Header Len field can describe, in octets."""

ZERO_80_BITS = bytes(10)
"""The first 10 octets of ::/80: ::, ::1 and the IPv4-compatible and IPv4-mapped addresses."""


class MhType(IntEnum):
    """MH Type (RFC 6275 6.1.2 - 6.1.9)."""

    BRR = 0
    HOTI = 1
    COTI = 2
    HOT = 3
    COT = 4
    BU = 5
    BA = 6
    BE = 7


class OptionType(IntEnum):
    """Mobility option types (RFC 6275 6.2)."""

    PAD1 = 0
    PADN = 1
    BINDING_REFRESH_ADVICE = 2
    ALTERNATE_COA = 3
    NONCE_INDICES = 4
    BINDING_AUTH_DATA = 5


class BaStatus(IntEnum):
    """Binding Acknowledgement status (RFC 6275 6.1.8); below 128 means accepted."""

    ACCEPTED = 0
    ACCEPTED_PREFIX_DISCOVERY = 1
    REASON_UNSPECIFIED = 128
    ADMINISTRATIVELY_PROHIBITED = 129
    INSUFFICIENT_RESOURCES = 130
    HOME_REGISTRATION_NOT_SUPPORTED = 131
    NOT_HOME_SUBNET = 132
    NOT_HOME_AGENT = 133
    DAD_FAILED = 134
    SEQUENCE_OUT_OF_WINDOW = 135
    EXPIRED_HOME_NONCE_INDEX = 136
    EXPIRED_COA_NONCE_INDEX = 137
    EXPIRED_NONCES = 138
    REGISTRATION_TYPE_CHANGE_DISALLOWED = 139
    INVALID_COA = 174


class BeStatus(IntEnum):
    """Binding Error status (RFC 6275 6.1.9)."""

    UNKNOWN_HOA_BINDING = 1
    UNRECOGNIZED_MH_TYPE = 2


# Flags of the Binding Update's 16-bit flags word and the Binding Acknowledgement's flags byte.
BU_FLAG_ACK = 0x8000
BU_FLAG_HOME = 0x4000
BU_FLAG_LINK_LOCAL = 0x2000
BU_FLAG_KEY_MGMT = 0x1000
BA_FLAG_KEY_MGMT = 0x80

LIFETIME_UNIT = 4
"""Seconds per unit of the BU/BA Lifetime and the Binding Refresh Advice interval."""
