"""mip6d.conf parser: UMIP 1.0's grammar, re-implemented by recursive descent.

Based on UMIP's `src/scan.l`, `src/gram.y`, `src/conf.c` and `man/mip6d.conf.tmpl` (the
umip.org git tree as mirrored on GitHub, e.g. shtrom/umip and lucab/umip). What is kept:

* statements end with `;`; blocks are `{ ... }`; `#` starts a comment; strings are
  double-quoted and may not span lines; keywords are case-sensitive (flex's default);
* booleans are UMIP's BOOL token, accepted wherever a boolean is: `enabled`, `allow`,
  `true` and `disabled`, `deny`, `block`, `false`;
* numbers are decimal digits; the timer options want a DECIMAL with a point (`1.0`, not
  `1`), as UMIP's grammar did; addresses are IPv6, prefixes `ADDR/PLEN` with PLEN <= 128;
* the block layouts and orders: `IPsecPolicySet` is one `HomeAgentAddress`, then one or
  more `HomeAddress`, then one or more `IPsecPolicy`; `Interface` and `MnHomeLink`
  blocks hold at least one option; `MnHomeLink` needs a `HomeAddress`;
* `IPsecPolicy TYPE PROTO... [REQID [REQID]] [BOOL]`: the numbers are reqids (MN->HA,
  then HA->MN), the boolean the policy action; overlapping (HA, HoA, TYPE) entries are an
  error, as in UMIP's `ipsec_policy_entry_check()`;
* UMIP's range checks: binding lifetimes (HaMaxBindingLife, MnMaxHaBindingLife <= 262140,
  MnMaxCnBindingLife <= 420), MnIfPreference 0..10, prefix lengths;
* `include "glob";` (UMIP's scan.l; at most 5 levels). A relative pattern is taken
  relative to the including file's directory; a pattern without wildcards must match.

Differences, on purpose: a `;` may follow a block's closing `}`; a statement that sets a
single value may appear only once (UMIP silently kept the last); `include` is only
allowed between statements, and its `;` is optional; the new `UseMnHaIRO` option; and
semantic checks UMIP left to run time (see `checks.py`).
"""

from __future__ import annotations

import difflib
import glob
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Interface, IPv6Network
from types import MappingProxyType
from typing import Any

from . import checks
from .errors import ConfigError, Location
from .lexer import Kind, Token, TokenStream, tokenize
from .model import (
    BA_STATUS_ACCEPTED,
    BA_STATUS_PROHIBIT,
    MAX_BINDING_LIFETIME,
    MAX_RR_BINDING_LIFETIME,
    MN_IF_MIN_PREFERENCE,
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

WORD_CHARS = "A-Za-z0-9_:.%+-"
PUNCT = "{};/(),="
TRUE_WORDS = ("enabled", "allow", "true")
FALSE_WORDS = ("disabled", "deny", "block", "false")
MAX_INCLUDE_DEPTH = 5  # UMIP's MAX_NESTED_CONF_FILES
U32 = 0xFFFFFFFF
_DIGITS = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+\.[0-9]+")


@dataclass(frozen=True)
class _Scalar:
    field: str
    kind: str  # bool | number | decimal | string | role | status
    low: int = 0
    high: int = U32
    why: str = ""  # appended to range errors


_LIFETIME = "the longest lifetime a Binding Update can carry (65535 units of 4 s)"
SCALARS: dict[str, _Scalar] = {
    "NodeConfig": _Scalar("node_config", "role"),
    "DebugLevel": _Scalar("debug_level", "number"),
    "DebugLogFile": _Scalar("debug_log_file", "string"),
    "NonVolatileBindingCache": _Scalar("non_volatile_binding_cache", "bool"),
    "UseMnHaIPsec": _Scalar("use_mn_ha_ipsec", "bool"),
    "KeyMngMobCapability": _Scalar("key_mng_mob_capability", "bool"),
    "TunnelPayloadForceSANego": _Scalar("tunnel_payload_force_sa_nego", "bool"),
    "UseMnHaIRO": _Scalar("use_mn_ha_iro", "bool"),
    "MnMaxHaBindingLife": _Scalar("mn_max_ha_binding_life", "number", 1, MAX_BINDING_LIFETIME, _LIFETIME),
    "MnMaxCnBindingLife": _Scalar("mn_max_cn_binding_life", "number", 1, MAX_RR_BINDING_LIFETIME,
                                  "MAX_RR_BINDING_LIFETIME of RFC 6275"),
    "MnRouterProbes": _Scalar("mn_router_probes", "number"),
    "MnRouterProbeTimeout": _Scalar("mn_router_probe_timeout", "decimal"),
    "MnDiscardHaParamProb": _Scalar("mn_discard_ha_param_prob", "bool"),
    "MnUseAllInterfaces": _Scalar("mn_use_all_interfaces", "bool"),
    "SendMobPfxSols": _Scalar("send_mob_pfx_sols", "bool"),
    "DoRouteOptimizationMN": _Scalar("do_route_optimization_mn", "bool"),
    "UseCnBuAck": _Scalar("use_cn_bu_ack", "bool"),
    "OptimisticHandoff": _Scalar("optimistic_handoff", "bool"),
    "NoHomeReturn": _Scalar("no_home_return", "bool"),
    "MobRtrUseExplicitMode": _Scalar("mob_rtr_use_explicit_mode", "bool"),
    "InitialBindackTimeoutFirstReg": _Scalar("initial_bindack_timeout_first_reg", "decimal"),
    "InitialBindackTimeoutReReg": _Scalar("initial_bindack_timeout_rereg", "decimal"),
    "InitialSolicitTimer": _Scalar("initial_solicit_timer", "decimal"),
    "HaMaxBindingLife": _Scalar("ha_max_binding_life", "number", 1, MAX_BINDING_LIFETIME, _LIFETIME),
    "SendMobPfxAdvs": _Scalar("send_mob_pfx_advs", "bool"),
    "SendUnsolMobPfxAdvs": _Scalar("send_unsol_mob_pfx_advs", "bool"),
    "MinMobPfxAdvInterval": _Scalar("min_mob_pfx_adv_interval", "number"),
    "MaxMobPfxAdvInterval": _Scalar("max_mob_pfx_adv_interval", "number"),
    "HaAcceptMobRtr": _Scalar("ha_accept_mob_rtr", "bool"),
    "DefaultBindingAclPolicy": _Scalar("default_binding_acl_policy", "status"),
    "DoRouteOptimizationCN": _Scalar("do_route_optimization_cn", "bool"),
}
BLOCKS = ("Interface", "MnHomeLink", "IPsecPolicySet", "CnBindingPolicySet")
LISTS = ("BindingAclPolicy", "HaServedPrefix", "include")
INTERFACE_OPTIONS = ("IfType", "MnIfPreference", "Tunnel")
HOME_LINK_OPTIONS = ("HomeAgentAddress", "HomeAddress", "UseAltCoa", "MnRoPolicy", "IsMobRtr", "HomePrefix")
POLICY_SET_OPTIONS = ("HomeAgentAddress", "HomeAddress", "IPsecPolicy")
# UMIP vocabulary this daemon leaves out, with the reason given in the error
UNSUPPORTED = {
    "UseMovementModule": "movement detection is built in; UMIP's movement modules are not supported",
    "UsePolicyModule": "UMIP's policy plug-in modules are not supported",
    "MnUseDsmip6": "DSMIPv6 (IPv4 support of later UMIP forks) is not supported",
    "HaAcceptDsmip6": "DSMIPv6 (IPv4 support of later UMIP forks) is not supported",
    "MnSupportIPv4Traffic": "DSMIPv6 (IPv4 support of later UMIP forks) is not supported",
    "HomeAgentAddress4": "DSMIPv6 (IPv4 support of later UMIP forks) is not supported",
    "ProxyMipLma": "Proxy Mobile IPv6 (the OAI PMIPv6 fork of UMIP) is not supported",
    "ProxyMipMag": "Proxy Mobile IPv6 (the OAI PMIPv6 fork of UMIP) is not supported",
}
_ALL_KEYWORDS = sorted({*SCALARS, *BLOCKS, *LISTS, *INTERFACE_OPTIONS, *HOME_LINK_OPTIONS, *POLICY_SET_OPTIONS})


@dataclass
class _Builder:
    """What the statements of the main file and its includes add up to."""

    scalars: dict[str, Any] = field(default_factory=dict)
    locations: dict[str, Location] = field(default_factory=dict)  # keyword -> statement location
    interfaces: list[InterfaceConfig] = field(default_factory=list)
    home_links: list[MnHomeLink] = field(default_factory=list)
    policy_sets: list[IPsecPolicySet] = field(default_factory=list)
    policy_keys: dict[tuple[IPv6Address, IPv6Address, IPsecPolicyType], Location] = field(default_factory=dict)
    acls: list[BindingAclPolicy] = field(default_factory=list)
    served_prefixes: list[IPv6Network] = field(default_factory=list)
    cn_policies: list[CnBindingPolicy] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    end: Location | None = None  # end of the main file, for errors about missing statements


def parse(text: str, filename: str = "<string>", *, role: Role | None = None) -> Config:
    """Parse mip6d.conf text. `role` overrides NodeConfig, as `-C`/`-H`/`-M` do."""
    builder = _Builder()
    _parse_file(text, filename, builder, ())
    return _finish(builder, role)


def load(path: str | os.PathLike[str], *, role: Role | None = None) -> Config:
    """Read and parse a mip6d.conf file (and what it includes)."""
    name = os.fspath(path)
    return parse(_read(name, Location(name, 1, 1)), name, role=role)


def _read(path: str, where: Location) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as err:
        raise ConfigError(where, f"cannot read '{path}': {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ConfigError(where, f"cannot read '{path}': not UTF-8 text") from None


def _parse_file(text: str, filename: str, builder: _Builder, stack: tuple[str, ...]) -> None:
    builder.files.append(filename)
    stream = TokenStream(tokenize(text, filename, WORD_CHARS, PUNCT))
    parser = _Parser(stream, builder, (*stack, os.path.abspath(filename)))
    parser.top()
    if not stack:
        builder.end = stream.peek().location


def _finish(builder: _Builder, role: Role | None) -> Config:
    values = dict(builder.scalars)
    if role is not None:
        values["node_config"] = role
    config = Config(
        **values,
        interfaces=tuple(builder.interfaces),
        mn_home_links=tuple(builder.home_links),
        ipsec_policy_sets=tuple(builder.policy_sets),
        binding_acl_policies=tuple(builder.acls),
        ha_served_prefixes=tuple(builder.served_prefixes),
        cn_binding_policies=tuple(builder.cn_policies),
        files=tuple(builder.files),
        locations=MappingProxyType(dict(builder.locations)),
    )
    assert builder.end is not None
    checks.check(config, builder.end, role_forced=role is not None)
    return config


def _unknown(token: Token, context: str, allowed: tuple[str, ...]) -> ConfigError:
    """The error for a word that does not start a statement here."""
    word = token.value
    if token.kind is Kind.EOF and context:
        return ConfigError(token.location, f"unexpected end of file{context}: missing '}}'")
    if token.kind is not Kind.WORD:
        return ConfigError(token.location, f"expected a keyword{context}, found {token.describe()}")
    if word in UNSUPPORTED:
        return ConfigError(token.location, f"unknown keyword '{word}' ({UNSUPPORTED[word]})")
    if word in _ALL_KEYWORDS:
        if context:
            return ConfigError(token.location, f"'{word}' is not allowed{context} (missing '}}'?)")
        where = []
        if word in INTERFACE_OPTIONS:
            where.append("an Interface block")
        if word in HOME_LINK_OPTIONS:
            where.append("an MnHomeLink block")
        if word in POLICY_SET_OPTIONS:
            where.append("an IPsecPolicySet block")
        return ConfigError(token.location, f"'{word}' is only allowed inside {' or '.join(where)}")
    hint = ""
    for candidate in allowed:
        if candidate.lower() == word.lower():
            hint = f" (did you mean '{candidate}'? keywords are case-sensitive)"
            break
    else:
        close = difflib.get_close_matches(word, allowed, n=1, cutoff=0.8)
        if close:
            hint = f" (did you mean '{close[0]}'?)"
    return ConfigError(token.location, f"unknown keyword '{word}'{context}{hint}")


class _Parser:
    def __init__(self, stream: TokenStream, builder: _Builder, stack: tuple[str, ...]) -> None:
        self.s = stream
        self.b = builder
        self.stack = stack

    # --- values
    def word(self, keyword: str, what: str) -> Token:
        token = self.s.peek()
        if token.kind is not Kind.WORD:
            raise ConfigError(token.location, f"{keyword} expects {what}, found {token.describe()}")
        return self.s.next()

    def boolean(self, keyword: str) -> bool:
        token = self.s.peek()
        if token.is_word(*TRUE_WORDS):
            self.s.next()
            return True
        if token.is_word(*FALSE_WORDS):
            self.s.next()
            return False
        raise ConfigError(token.location, f"{keyword} expects enabled or disabled, found {token.describe()}")

    def number(self, keyword: str, low: int = 0, high: int = U32, why: str = "") -> int:
        token = self.word(keyword, "a number")
        if not _DIGITS.fullmatch(token.value):
            raise ConfigError(token.location, f"{keyword} expects a number, found {token.describe()}")
        value = int(token.value)
        if not low <= value <= high:
            because = f": {why}" if why else ""
            raise ConfigError(token.location, f"{keyword} {token.value} is out of range {low}..{high}{because}")
        return value

    def decimal(self, keyword: str) -> float:
        token = self.word(keyword, "a decimal number such as 1.5")
        if not _DECIMAL.fullmatch(token.value):
            raise ConfigError(token.location, f"{keyword} expects a decimal number with a point, such as "
                                              f"1.5 or 3.0, found {token.describe()}")
        return float(token.value)

    def string(self, keyword: str, what: str) -> str:
        token = self.s.peek()
        if token.kind is not Kind.STRING:
            raise ConfigError(token.location, f"{keyword} expects {what} in double quotes, found {token.describe()}")
        return self.s.next().value

    def role(self, keyword: str) -> Role:
        token = self.s.peek()
        if token.is_word(*(r.value for r in Role)):
            return Role(self.s.next().value)
        raise ConfigError(token.location, f"{keyword} expects CN, HA or MN, found {token.describe()}")

    def status(self, keyword: str) -> int:
        """UMIP's bindaclpolval: a boolean (allow = status 0, deny = 129) or a BA status number."""
        token = self.s.peek()
        if token.is_word(*TRUE_WORDS, *FALSE_WORDS):
            return BA_STATUS_ACCEPTED if self.boolean(keyword) else BA_STATUS_PROHIBIT
        if token.kind is Kind.WORD and _DIGITS.fullmatch(token.value):
            return self.number(keyword, 0, 255, "a Binding Acknowledgement status is 8 bits")
        raise ConfigError(token.location, f"{keyword} expects allow, deny or a Binding Acknowledgement "
                                          f"status number, found {token.describe()}")

    def address(self, keyword: str) -> IPv6Address:
        token = self.word(keyword, "an IPv6 address")
        if ":" not in token.value:
            raise ConfigError(token.location, f"{keyword} expects an IPv6 address, found {token.describe()}")
        if "%" in token.value:
            raise ConfigError(token.location, f"{keyword}: scoped address {token.describe()} is not allowed")
        try:
            return IPv6Address(token.value)
        except ValueError:
            raise ConfigError(token.location, f"{keyword}: bad IPv6 address {token.describe()}") from None

    def prefix(self, keyword: str) -> IPv6Interface:
        """ADDR '/' PLEN, the address kept as written (host bits allowed)."""
        addr = self.address(keyword)
        self.s.expect_punct("/", f"and a prefix length after the {keyword} address")
        token = self.s.peek()
        if not (token.kind is Kind.WORD and _DIGITS.fullmatch(token.value)):
            raise ConfigError(token.location, f"{keyword} expects a prefix length after '/', "
                                              f"found {token.describe()}")
        self.s.next()
        plen = int(token.value)
        if plen > 128:
            raise ConfigError(token.location, f"{keyword}: invalid prefix length {plen} (at most 128)")
        return IPv6Interface(f"{addr}/{plen}")

    def prefix_list(self, keyword: str) -> tuple[IPv6Network, ...]:
        """UMIP's prefixlistsub: nothing, or '(' PREFIX/PLEN {',' PREFIX/PLEN} ')'."""
        if not self.s.accept_punct("("):
            return ()
        prefixes = [self.prefix(keyword).network]
        while self.s.accept_punct(","):
            prefixes.append(self.prefix(keyword).network)
        self.s.expect_punct(")", f"or ',' in the {keyword} prefix list")
        return tuple(prefixes)

    def end(self, keyword: str) -> None:
        self.s.expect_punct(";", f"to end the {keyword} statement")

    def open_block(self, keyword: str) -> Token:
        return self.s.expect_punct("{", f"to open the {keyword} block")

    def close_block(self) -> None:
        self.s.next()  # '}'
        self.s.accept_punct(";")

    def set_once(self, seen: dict[str, Location], keyword: str, token: Token) -> None:
        if keyword in seen:
            raise ConfigError(token.location, f"duplicate {keyword} statement "
                                              f"(first at {seen[keyword].ref(token.location)})")
        seen[keyword] = token.location

    # --- top level
    def top(self) -> None:
        handlers: dict[str, Callable[[Token], None]] = {
            "Interface": self.interface, "MnHomeLink": self.home_link, "IPsecPolicySet": self.policy_set,
            "CnBindingPolicySet": self.cn_policy_set, "BindingAclPolicy": self.binding_acl,
            "HaServedPrefix": self.served_prefix, "include": self.include,
        }
        while not self.s.at_eof():
            token = self.s.next()
            if token.kind is Kind.WORD and token.value in SCALARS:
                self.scalar(token)
            elif token.kind is Kind.WORD and token.value in handlers:
                handlers[token.value](token)
            else:
                raise _unknown(token, "", (*SCALARS, *BLOCKS, *LISTS))

    def scalar(self, token: Token) -> None:
        keyword = token.value
        spec = SCALARS[keyword]
        self.set_once(self.b.locations, keyword, token)
        value: Any
        if spec.kind == "bool":
            value = self.boolean(keyword)
        elif spec.kind == "number":
            value = self.number(keyword, spec.low, spec.high, spec.why)
        elif spec.kind == "decimal":
            value = self.decimal(keyword)
        elif spec.kind == "string":
            value = self.string(keyword, "a file name")
        elif spec.kind == "role":
            value = self.role(keyword)
        else:
            value = self.status(keyword)
        self.end(keyword)
        self.b.scalars[spec.field] = value

    def interface_name(self, keyword: str) -> str:
        token = self.s.peek()
        name = self.string(keyword, 'an interface name such as "eth0"')
        if not name or len(name) > 15 or name in (".", "..") or any(c in name for c in "/: \t"):
            raise ConfigError(token.location, f"{keyword}: invalid interface name {token.describe()} "
                                              "(1 to 15 characters, no '/', ':' or blanks)")
        return name

    def interface(self, token: Token) -> None:
        name = self.interface_name("Interface")
        for known in self.b.interfaces:
            if known.name == name:
                raise ConfigError(token.location, f'Interface "{name}" is already defined '
                                                  f"(at {known.location.ref(token.location)})")
        options: dict[str, Any] = {}
        if not self.s.accept_punct(";"):
            brace = self.s.peek()
            if not brace.is_punct("{"):
                raise ConfigError(brace.location, f"expected ';' or '{{' after Interface \"{name}\", "
                                                  f"found {brace.describe()}")
            self.s.next()
            seen: dict[str, Location] = {}
            while not self.s.peek().is_punct("}"):
                option = self.s.next()
                if not option.is_word(*INTERFACE_OPTIONS):
                    raise _unknown(option, " in an Interface block", INTERFACE_OPTIONS)
                self.set_once(seen, option.value, option)
                if option.value == "IfType":
                    options["if_type"] = self.role("IfType")
                elif option.value == "MnIfPreference":
                    options["mn_if_preference"] = self.number("MnIfPreference", 0, MN_IF_MIN_PREFERENCE,
                                                              "1 is the most preferred, 0 leaves it unused")
                else:
                    options["tunnel"] = self.boolean("Tunnel")
                self.end(option.value)
            if not seen:
                raise ConfigError(self.s.peek().location, f'empty Interface "{name}" block: write '
                                  f'Interface "{name}"; or give IfType, MnIfPreference or Tunnel')
            self.close_block()
        self.b.interfaces.append(InterfaceConfig(name, location=token.location, **options))

    def home_link(self, token: Token) -> None:
        name = self.interface_name("MnHomeLink")
        self.open_block("MnHomeLink")
        seen: dict[str, Location] = {}
        values: dict[str, Any] = {}
        ro_policies: list[MnRoPolicy] = []
        while not self.s.peek().is_punct("}"):
            option = self.s.next()
            if not option.is_word(*HOME_LINK_OPTIONS):
                raise _unknown(option, " in an MnHomeLink block", HOME_LINK_OPTIONS)
            keyword = option.value
            if keyword != "MnRoPolicy":
                self.set_once(seen, keyword, option)
            if keyword == "HomeAgentAddress":
                values["home_agent_address"] = self.address(keyword)
            elif keyword == "HomeAddress":
                values["home_address"] = self.prefix(keyword)
                values["mobile_network_prefixes"] = self.prefix_list(keyword)
            elif keyword == "UseAltCoa":
                values["use_alt_coa"] = self.boolean(keyword)
            elif keyword == "IsMobRtr":
                values["is_mob_rtr"] = self.boolean(keyword)
            elif keyword == "HomePrefix":
                values["home_prefix"] = self.prefix(keyword).network
            else:
                cn: IPv6Address | None = None
                if not self.s.peek().is_word(*TRUE_WORDS, *FALSE_WORDS):
                    cn = self.address(keyword)
                ro_policies.append(MnRoPolicy(cn, self.boolean(keyword), option.location))
            self.end(keyword)
        if "home_address" not in values:
            raise ConfigError(token.location, f'MnHomeLink "{name}" has no HomeAddress')
        for other in self.b.home_links:
            if other.home_address.ip == values["home_address"].ip:
                raise ConfigError(seen["HomeAddress"], f"home address {other.home_address.ip} is already "
                                  f"used by the MnHomeLink at {other.location.ref(token.location)}")
        self.close_block()
        self.b.home_links.append(MnHomeLink(name, ro_policies=tuple(ro_policies), location=token.location,
                                            **values))

    def policy_set(self, token: Token) -> None:
        self.open_block("IPsecPolicySet")
        home_agent: IPv6Address | None = None
        ha_location: Location | None = None
        home_addresses: list[IPv6Interface] = []
        policies: list[IPsecPolicy] = []
        while not self.s.peek().is_punct("}"):
            option = self.s.next()
            if not option.is_word(*POLICY_SET_OPTIONS):
                raise _unknown(option, " in an IPsecPolicySet block", POLICY_SET_OPTIONS)
            keyword = option.value
            if keyword == "HomeAgentAddress":
                if ha_location is not None:
                    raise ConfigError(option.location, "only one HomeAgentAddress per IPsecPolicySet "
                                      f"(first at {ha_location.ref(option.location)})")
                if home_addresses or policies:
                    raise ConfigError(option.location, "HomeAgentAddress must be the first statement "
                                                       "of its IPsecPolicySet")
                home_agent, ha_location = self.address(keyword), option.location
            elif keyword == "HomeAddress":
                if home_agent is None:
                    raise ConfigError(option.location, "IPsecPolicySet must start with HomeAgentAddress, "
                                                       "found 'HomeAddress'")
                if policies:
                    raise ConfigError(option.location, "HomeAddress must come before the IPsecPolicy "
                                                       "lines of its IPsecPolicySet")
                home_addresses.append(self.prefix(keyword))
            else:
                if home_agent is None:
                    raise ConfigError(option.location, "IPsecPolicySet must start with HomeAgentAddress, "
                                                       "found 'IPsecPolicy'")
                if not home_addresses:
                    raise ConfigError(option.location, "IPsecPolicy needs a HomeAddress before it in "
                                                       "its IPsecPolicySet")
                policy = self.ipsec_policy(option)
                for hoa in home_addresses:
                    key = (home_agent, hoa.ip, policy.type)
                    if key in self.b.policy_keys:
                        first = self.b.policy_keys[key]
                        raise ConfigError(option.location, f"overlapping IPsec policies: {policy.type.value} "
                                          f"for HA {home_agent} and MN {hoa.ip} is already defined at "
                                          f"{first.ref(option.location)}")
                    self.b.policy_keys[key] = option.location
                policies.append(policy)
            self.end(keyword)
        close = self.s.peek()
        if home_agent is None or not home_addresses or not policies:
            missing = ("a HomeAgentAddress" if home_agent is None else
                       "at least one HomeAddress" if not home_addresses else "at least one IPsecPolicy")
            raise ConfigError(close.location, f"IPsecPolicySet needs {missing} before '}}' "
                                              "(HomeAgentAddress, then HomeAddress lines, then IPsecPolicy lines)")
        self.close_block()
        self.b.policy_sets.append(IPsecPolicySet(home_agent, tuple(home_addresses), tuple(policies), token.location))

    def ipsec_policy(self, option: Token) -> IPsecPolicy:
        types = ", ".join(t.value for t in IPsecPolicyType)
        token = self.s.peek()
        try:
            kind = IPsecPolicyType(token.value) if token.kind is Kind.WORD else None
        except ValueError:
            kind = None
        if kind is None:
            raise ConfigError(token.location, f"IPsecPolicy expects a type ({types}), found {token.describe()}")
        self.s.next()
        protocols: list[IPsecProto] = []
        while self.s.peek().is_word(*(p.value for p in IPsecProto)):
            proto = self.s.next()
            if IPsecProto(proto.value) in protocols:
                raise ConfigError(proto.location, f"IPsecPolicy: duplicate {proto.value}")
            protocols.append(IPsecProto(proto.value))
        if not protocols:
            raise ConfigError(self.s.peek().location, "IPsecPolicy must set at least one protocol (UseESP, "
                                                      f"UseAH or UseIPComp), found {self.s.peek().describe()}")
        reqids: list[int] = []
        while self.s.peek().kind is Kind.WORD and _DIGITS.fullmatch(self.s.peek().value):
            if len(reqids) == 2:
                raise ConfigError(self.s.peek().location, "IPsecPolicy takes at most two reqids "
                                                          "(MN to HA, then HA to MN)")
            reqids.append(self.number("IPsecPolicy"))
        allow = True
        if self.s.peek().is_word(*TRUE_WORDS, *FALSE_WORDS):
            allow = self.boolean("IPsecPolicy")
        toha = reqids[0] if reqids else 0
        tomn = reqids[-1] if reqids else 0
        return IPsecPolicy(kind, tuple(protocols), toha, tomn, allow, option.location)

    def cn_policy_set(self, token: Token) -> None:
        self.open_block("CnBindingPolicySet")
        count = 0
        while not self.s.peek().is_punct("}"):
            first = self.s.peek()
            remote = self.address("CnBindingPolicySet")
            local: IPv6Address | None = None
            if not self.s.peek().is_word(*TRUE_WORDS, *FALSE_WORDS):
                local = self.address("CnBindingPolicySet")
            allow = self.boolean("CnBindingPolicySet")
            self.end("CnBindingPolicySet")
            for other in self.b.cn_policies:
                if other.remote_hoa == remote:
                    raise ConfigError(first.location, f"CnBindingPolicySet already has an entry for {remote} "
                                                      f"(at {other.location.ref(first.location)})")
            self.b.cn_policies.append(CnBindingPolicy(remote, local, allow, first.location))
            count += 1
        if not count:
            raise ConfigError(self.s.peek().location, "empty CnBindingPolicySet block")
        self.close_block()

    def binding_acl(self, token: Token) -> None:
        hoa = self.address("BindingAclPolicy")
        prefixes = self.prefix_list("BindingAclPolicy")
        status = self.status("BindingAclPolicy")
        self.end("BindingAclPolicy")
        for other in self.b.acls:
            if other.home_address == hoa:
                raise ConfigError(token.location, f"BindingAclPolicy for {hoa} is already defined "
                                                  f"(at {other.location.ref(token.location)})")
        self.b.acls.append(BindingAclPolicy(hoa, prefixes, status, token.location))

    def served_prefix(self, token: Token) -> None:
        self.b.served_prefixes.append(self.prefix("HaServedPrefix").network)
        self.end("HaServedPrefix")

    def include(self, token: Token) -> None:
        pattern_token = self.s.peek()
        pattern = self.string("include", "a file name or glob pattern")
        self.s.accept_punct(";")
        if len(self.stack) > MAX_INCLUDE_DEPTH:
            raise ConfigError(token.location, f"too many nested includes (at most {MAX_INCLUDE_DEPTH} levels)")
        base = os.path.dirname(self.stack[-1])
        full = pattern if os.path.isabs(pattern) else os.path.join(base, pattern)
        matches = sorted(glob.glob(full))
        if not matches and not glob.has_magic(pattern):
            raise ConfigError(pattern_token.location, f"included file '{full}' not found")
        for path in matches:
            if os.path.abspath(path) in self.stack:
                raise ConfigError(pattern_token.location, f"include cycle: '{path}' is already being read")
            _parse_file(_read(path, pattern_token.location), path, self.b, self.stack)
