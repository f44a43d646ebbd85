"""mip6d's configuration: mip6d.conf (UMIP's grammar plus UseMnHaIRO) and the manual keys file.

    from mip6d.config import load, load_keys, ConfigError
    config = load("/etc/mip6d.conf")          # -> Config
    states = load_keys("/etc/mip6d.keys")     # -> list[mip6d.xfrm.State]

Every error is a ConfigError (a ValueError) whose str() is `FILE:LINE:COL: message`.
"""

from .errors import ConfigError, Location
from .keys import load_keys, parse_keys
from .model import (
    BA_STATUS_ACCEPTED,
    BA_STATUS_PROHIBIT,
    MAX_BINDING_LIFETIME,
    MAX_RR_BINDING_LIFETIME,
    BindingAclPolicy,
    CnBindingPolicy,
    Config,
    InterfaceConfig,
    IPsecPolicy,
    IPsecPolicySet,
    IPsecPolicyType,
    IPsecProto,
    MnHomeLink,
    MnRoPolicy,
    Role,
)
from .parser import load, parse

__all__ = [
    "BA_STATUS_ACCEPTED", "BA_STATUS_PROHIBIT", "MAX_BINDING_LIFETIME", "MAX_RR_BINDING_LIFETIME",
    "BindingAclPolicy", "CnBindingPolicy", "Config", "ConfigError", "IPsecPolicy", "IPsecPolicySet",
    "IPsecPolicyType", "IPsecProto", "InterfaceConfig", "Location", "MnHomeLink", "MnRoPolicy", "Role",
    "load", "load_keys", "parse", "parse_keys",
]
