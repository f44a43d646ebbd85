"""Checks on a whole parsed configuration, each reported at the statement it is about.

* a mobile node has at least one MnHomeLink, each with a HomeAgentAddress (no DHAAD);
* home and home agent addresses are global unicast;
* a home agent has at least one Interface acting as HA, and none of those is a Tunnel;
* UseMnHaIRO enabled needs UseMnHaIPsec enabled and, on an MN or HA, an IPsecPolicy
  HomeRegBinding (or any) for every home agent / home address pair.

UMIP did some of these at run time (an HA interface must exist, a tunnel interface cannot
serve as HA interface) or not at all; here a config that cannot work is refused at load
time, before the daemon touches the kernel. Range checks and duplicates are found while
parsing (parser.py).
"""

from __future__ import annotations

from ipaddress import IPv6Address

from .errors import ConfigError, Location
from .model import Config, IPsecPolicyType, Role

_BU_POLICIES = {IPsecPolicyType.HOME_REG_BINDING, IPsecPolicyType.ANY}


def check(config: Config, end: Location, *, role_forced: bool = False) -> None:
    """Raise ConfigError for the first problem found. `end` is the end of the main file,
    used when the statement at fault is a missing one; `role_forced` says the role came
    from the command line (`-C`, `-H`, `-M`) rather than from NodeConfig."""
    if role_forced:
        role_at, role_name = end, f"role {config.node_config.value} (from the command line)"
    else:
        role_at = config.locations.get("NodeConfig", end)
        role_name = f"NodeConfig {config.node_config.value}"
    if config.node_config is Role.MN:
        if not config.mn_home_links:
            raise ConfigError(role_at, f"{role_name} needs at least one MnHomeLink block "
                                       "with HomeAgentAddress and HomeAddress")
        for link in config.mn_home_links:
            if link.home_agent_address.is_unspecified:
                raise ConfigError(link.location, f'MnHomeLink "{link.ifname}" needs a HomeAgentAddress '
                                                 "(dynamic home agent address discovery is not supported)")
    for link in config.mn_home_links:
        hoa = link.home_address.ip
        if hoa.is_unspecified or hoa.is_multicast or hoa.is_loopback or hoa.is_link_local:
            raise ConfigError(link.location, f'MnHomeLink "{link.ifname}": HomeAddress {hoa} is not a '
                                             "global unicast address")
        ha = link.home_agent_address
        if ha.is_multicast or ha.is_loopback or ha.is_link_local:
            raise ConfigError(link.location, f'MnHomeLink "{link.ifname}": HomeAgentAddress {ha} is not a '
                                             "global unicast address")
    if config.node_config is Role.HA:
        if not config.ha_interfaces:
            raise ConfigError(role_at, f"{role_name} needs at least one Interface statement "
                                       "naming a home link interface (IfType HA or no IfType)")
        for interface in config.ha_interfaces:
            if interface.tunnel:
                raise ConfigError(interface.location, f'Interface "{interface.name}": a tunnel interface '
                                                      "cannot be a home agent interface")
    if config.use_mn_ha_iro and not config.use_mn_ha_ipsec:
        ipsec_at = config.locations["UseMnHaIPsec"]  # disabled can only come from a statement
        iro_at = config.locations["UseMnHaIRO"]
        raise ConfigError(iro_at, "UseMnHaIRO enabled requires UseMnHaIPsec enabled "
                                  f"(disabled at {ipsec_at.ref(iro_at)})")
    if config.use_mn_ha_iro:
        _check_iro(config)


def _check_iro(config: Config) -> None:
    """With IRO the Binding Update is IPv6/ESP and the SA is what names the home address,
    so every MN-HA pair needs an ESP policy covering Binding Updates."""
    iro_at = config.locations["UseMnHaIRO"]
    if config.node_config is Role.MN:
        for link in config.mn_home_links:
            ha, hoa = link.home_agent_address, link.home_address.ip
            if not {p.type for p in config.ipsec_policies_for(ha, hoa)} & _BU_POLICIES:
                raise ConfigError(link.location, f'MnHomeLink "{link.ifname}": UseMnHaIRO needs an IPsecPolicySet '
                                                 f"for HomeAgentAddress {ha} and HomeAddress {hoa} with "
                                                 "IPsecPolicy HomeRegBinding (Binding Updates travel as IPv6/ESP)")
    elif config.node_config is Role.HA:
        if not config.ipsec_policy_sets:
            raise ConfigError(iro_at, "UseMnHaIRO on a home agent needs an IPsecPolicySet with IPsecPolicy "
                                      "HomeRegBinding for its mobile nodes (Binding Updates travel as IPv6/ESP)")
        types: dict[tuple[IPv6Address, IPv6Address], set[IPsecPolicyType]] = {}  # one pass: 10,000 HoAs
        for policy_set in config.ipsec_policy_sets:
            kinds = {p.type for p in policy_set.policies}
            for hoa in policy_set.home_addresses:
                types.setdefault((policy_set.home_agent_address, hoa.ip), set()).update(kinds)
        for policy_set in config.ipsec_policy_sets:
            for hoa in policy_set.home_addresses:
                if not types[policy_set.home_agent_address, hoa.ip] & _BU_POLICIES:
                    raise ConfigError(policy_set.location, f"UseMnHaIRO needs IPsecPolicy HomeRegBinding for home "
                                                           f"address {hoa.ip} (Binding Updates travel as IPv6/ESP)")
