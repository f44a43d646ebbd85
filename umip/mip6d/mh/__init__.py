"""The Mobility Header (RFC 6275): BRR, BU, BA and BE with their options, encoded and strictly decoded."""

from .checksum import address_bytes, checksum_ok, mh_checksum, pseudo_header
from .codec import decode, encode
from .constants import (
    BA_FLAG_KEY_MGMT,
    BU_FLAG_ACK,
    BU_FLAG_HOME,
    BU_FLAG_KEY_MGMT,
    BU_FLAG_LINK_LOCAL,
    IPPROTO_MH,
    IPPROTO_NONE,
    LIFETIME_UNIT,
    MH_MAX_LENGTH,
    ZERO_80_BITS,
    BaStatus,
    BeStatus,
    MhType,
    OptionType,
)
from .errors import MhError, UnknownMhType
from .messages import BindingAcknowledgement, BindingError, BindingRefreshRequest, BindingUpdate, Message
from .options import (
    AlternateCareOfAddress,
    BindingAuthorizationData,
    BindingRefreshAdvice,
    NonceIndices,
    Option,
    UnknownOption,
)

__all__ = [
    "BA_FLAG_KEY_MGMT", "BU_FLAG_ACK", "BU_FLAG_HOME", "BU_FLAG_KEY_MGMT", "BU_FLAG_LINK_LOCAL", "IPPROTO_MH",
    "IPPROTO_NONE", "LIFETIME_UNIT", "MH_MAX_LENGTH", "ZERO_80_BITS",
    "AlternateCareOfAddress", "BaStatus", "BeStatus", "BindingAcknowledgement", "BindingAuthorizationData",
    "BindingError", "BindingRefreshAdvice", "BindingRefreshRequest", "BindingUpdate", "Message", "MhError",
    "MhType", "NonceIndices", "Option", "OptionType", "UnknownMhType", "UnknownOption",
    "address_bytes", "checksum_ok", "decode", "encode", "mh_checksum", "pseudo_header",
]
