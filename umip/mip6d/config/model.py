"""The parsed mip6d.conf: typed, frozen dataclasses with UMIP's defaults.

Field names are UMIP's keywords in snake_case (`HaMaxBindingLife` -> `ha_max_binding_life`).
Defaults are those of UMIP's `conf_default()` (src/conf.c) and mip6d.conf(5). Every block
item carries the `Location` of its statement; locations never take part in equality, so
two configs that say the same thing compare equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv6Address, IPv6Interface, IPv6Network
from types import MappingProxyType

from .errors import Location

MAX_BINDING_LIFETIME = 0xFFFF << 2  # 262140 s: a BU lifetime is 16 bits of 4-second units
MAX_RR_BINDING_LIFETIME = 420  # RFC 6275 MAX_RR_BINDING_LIFETIME, UMIP's cap for MnMaxCnBindingLife
MN_IF_MIN_PREFERENCE = 10  # UMIP POL_MN_IF_MIN_PREFERENCE: 1 is most preferred, 10 least, 0 = unused
BA_STATUS_ACCEPTED = 0  # IP6_MH_BAS_ACCEPTED, what `allow` means in a binding ACL
BA_STATUS_PROHIBIT = 129  # IP6_MH_BAS_PROHIBIT, what `deny` means

NOWHERE = Location("<default>", 0, 0)  # location of items not read from a file
UNSPECIFIED = IPv6Address("::")


class Role(Enum):
    """`NodeConfig` (and `IfType`) values."""

    CN = "CN"
    HA = "HA"
    MN = "MN"


class IPsecPolicyType(Enum):
    """The traffic an `IPsecPolicy` protects; values are UMIP's spelling."""

    HOME_REG_BINDING = "HomeRegBinding"  # BU/BA between MN and HA (transport mode)
    MH = "Mh"  # all other Mobility Header messages between MN and HA (transport mode)
    MOB_PFX_DISC = "MobPfxDisc"  # ICMPv6 Mobile Prefix Solicitation/Advertisement (transport mode)
    ICMP = "ICMP"  # ICMPv6 between MN and HA (transport mode)
    ANY = "any"  # everything between MN and HA in transport mode
    TUNNEL_HOME_TESTING = "TunnelHomeTesting"  # HoTI/HoT in the MN-HA tunnel (tunnel mode)
    TUNNEL_MH = "TunnelMh"  # all MH in the MN-HA tunnel (tunnel mode)
    TUNNEL_PAYLOAD = "TunnelPayload"  # all tunnelled payload (tunnel mode)

    @property
    def tunnel(self) -> bool:
        """True for the types UMIP protects with tunnel-mode SAs (and MIGRATEs on movement)."""
        return self.value.startswith("Tunnel")


class IPsecProto(Enum):
    """The protocols of an `IPsecPolicy`; values are UMIP's keywords."""

    ESP = "UseESP"
    AH = "UseAH"
    IPCOMP = "UseIPComp"


@dataclass(frozen=True)
class InterfaceConfig:
    """`Interface "name";` or `Interface "name" { IfType ..; MnIfPreference ..; Tunnel ..; }`."""

    name: str
    if_type: Role | None = None  # None: the node's NodeConfig role
    mn_if_preference: int = MN_IF_MIN_PREFERENCE
    tunnel: bool = False
    location: Location = field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class MnRoPolicy:
    """`MnRoPolicy [ADDR] enabled|disabled;` inside an MnHomeLink block."""

    cn_address: IPv6Address | None  # None: every correspondent (UMIP's unspecified-address wildcard)
    route_optimization: bool
    location: Location = field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class MnHomeLink:
    """`MnHomeLink "ifname" { ... }`: one home address of a mobile node."""

    ifname: str
    home_address: IPv6Interface  # HomeAddress ADDR/PLEN
    home_agent_address: IPv6Address = UNSPECIFIED  # '::' means DHAAD in UMIP
    mobile_network_prefixes: tuple[IPv6Network, ...] = ()  # HomeAddress ADDR/PLEN (PREFIX/PLEN, ...)
    home_prefix: IPv6Network | None = None  # HomePrefix; None: the home address's own prefix
    use_alt_coa: bool = False
    is_mob_rtr: bool = False
    ro_policies: tuple[MnRoPolicy, ...] = ()
    location: Location = field(default=NOWHERE, compare=False, repr=False)

    @property
    def prefix(self) -> IPv6Network:
        """The home link prefix: HomePrefix when given, else derived from HomeAddress."""
        return self.home_prefix or self.home_address.network


@dataclass(frozen=True)
class IPsecPolicy:
    """`IPsecPolicy TYPE UseESP [REQID [REQID]] [enabled|disabled];`

    UMIP (gram.y, mip6d.conf(5)): the numbers are XFRM template reqids, not SPIs. The first
    is used for MN -> HA traffic (`reqid_toha`), the second for HA -> MN (`reqid_tomn`); one
    number sets both; none leaves reqid 0 (no reqid). The trailing boolean is the XFRM policy
    action: allow (default) or block.
    """

    type: IPsecPolicyType
    protocols: tuple[IPsecProto, ...] = (IPsecProto.ESP,)
    reqid_toha: int = 0
    reqid_tomn: int = 0
    allow: bool = True
    location: Location = field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class IPsecPolicySet:
    """`IPsecPolicySet { HomeAgentAddress A; HomeAddress H/P; ... IPsecPolicy ...; ... }`.

    On a home agent, `home_agent_address` is its own address and `home_addresses` lists every
    mobile node the policies apply to.
    """

    home_agent_address: IPv6Address
    home_addresses: tuple[IPv6Interface, ...]
    policies: tuple[IPsecPolicy, ...]
    location: Location = field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class BindingAclPolicy:
    """`BindingAclPolicy HOA [(MNP/PLEN, ...)] allow|deny|STATUS;` (home agent)."""

    home_address: IPv6Address
    mobile_network_prefixes: tuple[IPv6Network, ...] = ()
    status: int = BA_STATUS_ACCEPTED  # Binding Ack status to answer with; < 128 accepts
    location: Location = field(default=NOWHERE, compare=False, repr=False)

    @property
    def allowed(self) -> bool:
        return self.status < 128


@dataclass(frozen=True)
class CnBindingPolicy:
    """One line of `CnBindingPolicySet { PEER_HOA [LOCAL_ADDR] enabled|disabled; }`."""

    remote_hoa: IPv6Address
    local_address: IPv6Address | None
    allow: bool
    location: Location = field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Config:
    """A whole mip6d.conf. Defaults are UMIP's."""

    # common
    node_config: Role = Role.CN
    debug_level: int = 0
    debug_log_file: str | None = None  # None: stderr or syslog, as the command line says
    non_volatile_binding_cache: bool = False  # accepted and ignored, as in UMIP
    interfaces: tuple[InterfaceConfig, ...] = ()
    # IPsec
    use_mn_ha_ipsec: bool = True
    key_mng_mob_capability: bool = False
    tunnel_payload_force_sa_nego: bool = True
    ipsec_policy_sets: tuple[IPsecPolicySet, ...] = ()
    # iro: BU/BA as IPv6/ESP with neither HAO nor RH2 (needs the iro kernel)
    use_mn_ha_iro: bool = False
    # mobile node
    mn_home_links: tuple[MnHomeLink, ...] = ()
    mn_max_ha_binding_life: int = MAX_BINDING_LIFETIME
    mn_max_cn_binding_life: int = MAX_RR_BINDING_LIFETIME
    mn_router_probes: int = 0
    mn_router_probe_timeout: float = 0.0
    mn_discard_ha_param_prob: bool = False
    mn_use_all_interfaces: bool = False
    send_mob_pfx_sols: bool = True
    do_route_optimization_mn: bool = True
    use_cn_bu_ack: bool = False
    optimistic_handoff: bool = False
    no_home_return: bool = False
    mob_rtr_use_explicit_mode: bool = True
    initial_bindack_timeout_first_reg: float = 1.5
    initial_bindack_timeout_rereg: float = 1.0
    initial_solicit_timer: float = 3.0
    # home agent
    ha_max_binding_life: int = MAX_BINDING_LIFETIME
    send_mob_pfx_advs: bool = True
    send_unsol_mob_pfx_advs: bool = True
    min_mob_pfx_adv_interval: int = 600
    max_mob_pfx_adv_interval: int = 86400
    ha_accept_mob_rtr: bool = False
    ha_served_prefixes: tuple[IPv6Network, ...] = ()
    default_binding_acl_policy: int = BA_STATUS_ACCEPTED
    binding_acl_policies: tuple[BindingAclPolicy, ...] = ()
    # correspondent node
    do_route_optimization_cn: bool = True
    cn_binding_policies: tuple[CnBindingPolicy, ...] = ()
    # provenance: every file read (main file first, then includes) and where each
    # single-valued statement was set, by keyword (e.g. locations["UseMnHaIRO"])
    files: tuple[str, ...] = field(default=(), compare=False)
    locations: Mapping[str, Location] = field(default_factory=lambda: MappingProxyType({}), compare=False,
                                              repr=False)

    @property
    def role(self) -> Role:
        return self.node_config

    def interface_role(self, interface: InterfaceConfig) -> Role:
        """The role an interface plays: its IfType, else NodeConfig."""
        return interface.if_type or self.node_config

    @property
    def ha_interfaces(self) -> tuple[InterfaceConfig, ...]:
        """On a home agent, the interfaces it serves as HA on."""
        if self.node_config is not Role.HA:
            return ()
        return tuple(i for i in self.interfaces if self.interface_role(i) is Role.HA)

    def ipsec_policies_for(self, home_agent: IPv6Address, home_address: IPv6Address) -> tuple[IPsecPolicy, ...]:
        """Every IPsecPolicy that applies between this HA address and this home address."""
        return tuple(
            policy
            for policy_set in self.ipsec_policy_sets
            if policy_set.home_agent_address == home_agent
            and any(hoa.ip == home_address for hoa in policy_set.home_addresses)
            for policy in policy_set.policies
        )
