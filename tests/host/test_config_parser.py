"""mip6d.conf parser: UMIP's grammar and defaults, the shipped examples, and exact error positions."""

from __future__ import annotations

import os
from ipaddress import IPv6Address, IPv6Interface, IPv6Network
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mip6d.config import (
    BA_STATUS_PROHIBIT,
    BindingAclPolicy,
    CnBindingPolicy,
    Config,
    ConfigError,
    InterfaceConfig,
    IPsecPolicy,
    IPsecPolicySet,
    IPsecPolicyType,
    IPsecProto,
    Location,
    MnHomeLink,
    MnRoPolicy,
    Role,
    load,
    parse,
)
from mip6d.config import parser as config_parser

EXAMPLES = Path(__file__).resolve().parents[2] / "umip" / "examples"
HA = IPv6Address("2001:db8:1::1")
HOA = IPv6Interface("2001:db8:1::100/64")
MN_LINK = 'MnHomeLink "eth0" {\n HomeAgentAddress 2001:db8:1::1;\n HomeAddress 2001:db8:1::100/64;\n}\n'


def error(text: str, filename: str = "t.conf", **kwargs: Role) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text, filename, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- shipped examples


@pytest.mark.parametrize(("name", "role", "iro"), [
    ("mip6d-mn.conf", Role.MN, False), ("mip6d-ha.conf", Role.HA, False),
    ("mip6d-mn-iro.conf", Role.MN, True), ("mip6d-ha-iro.conf", Role.HA, True),
    ("mip6d.conf", Role.HA, False),
])
def test_examples_parse(name: str, role: Role, iro: bool) -> None:
    config = load(EXAMPLES / name)
    assert config.node_config is role
    assert config.use_mn_ha_iro is iro
    assert config.use_mn_ha_ipsec
    assert config.files == (str(EXAMPLES / name),)


def test_every_example_conf_is_tested() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.conf")) == [
        "mip6d-ha-iro.conf", "mip6d-ha.conf", "mip6d-mn-iro.conf", "mip6d-mn.conf", "mip6d.conf"]


def test_mn_example_model() -> None:
    policies = (IPsecPolicy(IPsecPolicyType.HOME_REG_BINDING, (IPsecProto.ESP,), 1, 2),
                IPsecPolicy(IPsecPolicyType.TUNNEL_MH, (IPsecProto.ESP,), 3, 4))
    expected = Config(
        node_config=Role.MN, debug_level=0, do_route_optimization_mn=False, do_route_optimization_cn=False,
        mn_max_ha_binding_life=3600,
        interfaces=(InterfaceConfig("eth0", mn_if_preference=1), InterfaceConfig("wlan0", mn_if_preference=2)),
        mn_home_links=(MnHomeLink("eth0", HOA, HA),),
        use_mn_ha_ipsec=True, key_mng_mob_capability=False,
        ipsec_policy_sets=(IPsecPolicySet(HA, (HOA,), policies),),
    )
    config = load(EXAMPLES / "mip6d-mn.conf")
    assert config == expected
    assert config.mn_home_links[0].prefix == IPv6Network("2001:db8:1::/64")
    assert config.ipsec_policies_for(HA, HOA.ip) == policies
    assert load(EXAMPLES / "mip6d-mn-iro.conf") == Config(**{**expected.__dict__, "use_mn_ha_iro": True})


def test_ha_example_model() -> None:
    config = load(EXAMPLES / "mip6d-ha.conf")
    assert config.ha_interfaces == (InterfaceConfig("eth0"),)
    assert config.ha_max_binding_life == 3600
    assert config.default_binding_acl_policy == BA_STATUS_PROHIBIT
    assert config.binding_acl_policies == (BindingAclPolicy(HOA.ip),)
    assert config.binding_acl_policies[0].allowed
    (policy_set,) = config.ipsec_policy_sets
    assert policy_set.home_agent_address == HA
    assert policy_set.home_addresses == (HOA,)
    assert [(p.type, p.reqid_toha, p.reqid_tomn) for p in policy_set.policies] == [
        (IPsecPolicyType.HOME_REG_BINDING, 1, 2), (IPsecPolicyType.TUNNEL_MH, 3, 4)]


# --- defaults and vocabulary


def test_defaults_are_umips() -> None:
    config = parse("", "empty.conf")
    assert config == Config()
    assert config.node_config is Role.CN
    assert config.debug_level == 0
    assert config.ha_max_binding_life == config.mn_max_ha_binding_life == 262140
    assert config.mn_max_cn_binding_life == 420
    assert config.use_mn_ha_ipsec and config.do_route_optimization_cn and config.do_route_optimization_mn
    assert config.tunnel_payload_force_sa_nego and config.send_mob_pfx_sols and config.mob_rtr_use_explicit_mode
    assert not (config.use_mn_ha_iro or config.key_mng_mob_capability or config.use_cn_bu_ack)
    assert config.default_binding_acl_policy == 0
    assert (config.min_mob_pfx_adv_interval, config.max_mob_pfx_adv_interval) == (600, 86400)
    assert (config.initial_bindack_timeout_first_reg, config.initial_bindack_timeout_rereg,
            config.initial_solicit_timer) == (1.5, 1.0, 3.0)


def test_every_statement() -> None:
    text = """
    # every statement of the common, IPsec, HA, MN and CN vocabulary
    NodeConfig MN; DebugLevel 7; DebugLogFile "/var/log/mip6d.log"; NonVolatileBindingCache enabled;
    UseMnHaIPsec enabled; KeyMngMobCapability enabled; TunnelPayloadForceSANego disabled; UseMnHaIRO enabled;
    MnMaxHaBindingLife 1000; MnMaxCnBindingLife 300; MnRouterProbes 2; MnRouterProbeTimeout 0.5;
    MnDiscardHaParamProb enabled; MnUseAllInterfaces enabled; SendMobPfxSols disabled;
    DoRouteOptimizationMN disabled; UseCnBuAck enabled; OptimisticHandoff enabled; NoHomeReturn enabled;
    MobRtrUseExplicitMode disabled; InitialBindackTimeoutFirstReg 2.5; InitialBindackTimeoutReReg 1.25;
    InitialSolicitTimer 4.0; HaMaxBindingLife 2000; SendMobPfxAdvs disabled; SendUnsolMobPfxAdvs disabled;
    MinMobPfxAdvInterval 60; MaxMobPfxAdvInterval 600; HaAcceptMobRtr enabled; DefaultBindingAclPolicy 130;
    DoRouteOptimizationCN disabled;
    HaServedPrefix 2001:db8:100::/48; HaServedPrefix 2001:db8:200::1/48;
    BindingAclPolicy 2001:db8:1::100 (2001:db8:2::/64, 2001:db8:3::/64) allow;
    BindingAclPolicy 2001:db8:1::101 deny;
    BindingAclPolicy 2001:db8:1::102 133;
    Interface "eth0";
    Interface "wlan0" { IfType CN; MnIfPreference 0; Tunnel enabled; };
    MnHomeLink "eth0" {
        HomeAgentAddress 2001:db8:1::1;
        HomeAddress 2001:db8:1::100/64 (2001:db8:2::/64);
        HomePrefix 2001:db8:1::/48;
        UseAltCoa enabled;
        IsMobRtr true;
        MnRoPolicy 2001:db8:9::1 enabled;
        MnRoPolicy false;
    };
    CnBindingPolicySet {
        2001:db8:5::1 disabled;
        2001:db8:5::2 2001:db8:1::100 enabled;
    }
    IPsecPolicySet {
        HomeAgentAddress 2001:db8:1::1;
        HomeAddress 2001:db8:1::100/64;
        HomeAddress 2001:db8:1::101/64;
        IPsecPolicy HomeRegBinding UseESP;
        IPsecPolicy Mh UseAH UseESP 7;
        IPsecPolicy MobPfxDisc UseESP 8 9 disabled;
        IPsecPolicy ICMP UseESP block;
        IPsecPolicy any UseESP UseAH UseIPComp 10 11 enabled;
        IPsecPolicy TunnelHomeTesting UseESP 12 13;
        IPsecPolicy TunnelMh UseESP 14 15;
        IPsecPolicy TunnelPayload UseESP 16 17;
    };
    """
    c = parse(text, "all.conf")
    assert (c.node_config, c.debug_level, c.debug_log_file, c.non_volatile_binding_cache) == (
        Role.MN, 7, "/var/log/mip6d.log", True)
    assert (c.use_mn_ha_ipsec, c.key_mng_mob_capability, c.tunnel_payload_force_sa_nego, c.use_mn_ha_iro) == (
        True, True, False, True)
    assert (c.mn_max_ha_binding_life, c.mn_max_cn_binding_life, c.mn_router_probes, c.mn_router_probe_timeout) == (
        1000, 300, 2, 0.5)
    assert (c.mn_discard_ha_param_prob, c.mn_use_all_interfaces, c.send_mob_pfx_sols, c.do_route_optimization_mn,
            c.use_cn_bu_ack, c.optimistic_handoff, c.no_home_return, c.mob_rtr_use_explicit_mode) == (
        True, True, False, False, True, True, True, False)
    assert (c.initial_bindack_timeout_first_reg, c.initial_bindack_timeout_rereg, c.initial_solicit_timer) == (
        2.5, 1.25, 4.0)
    assert (c.ha_max_binding_life, c.send_mob_pfx_advs, c.send_unsol_mob_pfx_advs, c.min_mob_pfx_adv_interval,
            c.max_mob_pfx_adv_interval, c.ha_accept_mob_rtr, c.default_binding_acl_policy,
            c.do_route_optimization_cn) == (2000, False, False, 60, 600, True, 130, False)
    assert c.ha_served_prefixes == (IPv6Network("2001:db8:100::/48"), IPv6Network("2001:db8:200::/48"))
    assert c.binding_acl_policies == (
        BindingAclPolicy(HOA.ip, (IPv6Network("2001:db8:2::/64"), IPv6Network("2001:db8:3::/64")), 0),
        BindingAclPolicy(IPv6Address("2001:db8:1::101"), (), BA_STATUS_PROHIBIT),
        BindingAclPolicy(IPv6Address("2001:db8:1::102"), (), 133),
    )
    assert c.interfaces == (InterfaceConfig("eth0"), InterfaceConfig("wlan0", Role.CN, 0, True))
    assert c.interface_role(c.interfaces[0]) is Role.MN
    assert c.interface_role(c.interfaces[1]) is Role.CN
    assert c.mn_home_links == (MnHomeLink(
        "eth0", HOA, HA, (IPv6Network("2001:db8:2::/64"),), IPv6Network("2001:db8:1::/48"), True, True,
        (MnRoPolicy(IPv6Address("2001:db8:9::1"), True), MnRoPolicy(None, False))),)
    assert c.mn_home_links[0].prefix == IPv6Network("2001:db8:1::/48")
    assert c.cn_binding_policies == (CnBindingPolicy(IPv6Address("2001:db8:5::1"), None, False),
                                     CnBindingPolicy(IPv6Address("2001:db8:5::2"), HOA.ip, True))
    (policy_set,) = c.ipsec_policy_sets
    assert policy_set.home_addresses == (HOA, IPv6Interface("2001:db8:1::101/64"))
    esp, ah, comp = IPsecProto.ESP, IPsecProto.AH, IPsecProto.IPCOMP
    assert policy_set.policies == (
        IPsecPolicy(IPsecPolicyType.HOME_REG_BINDING, (esp,), 0, 0, True),
        IPsecPolicy(IPsecPolicyType.MH, (ah, esp), 7, 7, True),
        IPsecPolicy(IPsecPolicyType.MOB_PFX_DISC, (esp,), 8, 9, False),
        IPsecPolicy(IPsecPolicyType.ICMP, (esp,), 0, 0, False),
        IPsecPolicy(IPsecPolicyType.ANY, (esp, ah, comp), 10, 11, True),
        IPsecPolicy(IPsecPolicyType.TUNNEL_HOME_TESTING, (esp,), 12, 13),
        IPsecPolicy(IPsecPolicyType.TUNNEL_MH, (esp,), 14, 15),
        IPsecPolicy(IPsecPolicyType.TUNNEL_PAYLOAD, (esp,), 16, 17),
    )
    assert [p.type.tunnel for p in policy_set.policies] == [False] * 5 + [True] * 3
    assert len(c.ipsec_policies_for(HA, IPv6Address("2001:db8:1::101"))) == 8
    assert c.ipsec_policies_for(HA, IPv6Address("2001:db8:1::999")) == ()


@pytest.mark.parametrize(("word", "value"), [
    ("enabled", True), ("true", True), ("allow", True),
    ("disabled", False), ("false", False), ("deny", False), ("block", False),
])
def test_umip_boolean_words(word: str, value: bool) -> None:
    assert parse(f"UseCnBuAck {word};").use_cn_bu_ack is value


def test_block_semicolon_is_optional_and_comments_anywhere() -> None:
    with_semicolons = parse('NodeConfig HA; Interface "eth0" { MnIfPreference 3; };  # trailing')
    without = parse('NodeConfig HA;\n# a comment\nInterface "eth0" {MnIfPreference 3;}')
    assert with_semicolons == without


def test_locations() -> None:
    text = f"NodeConfig MN;\n  UseCnBuAck enabled;\nInterface \"eth0\";\n{MN_LINK}"
    config = parse(text, "loc.conf")
    assert config.locations["NodeConfig"] == Location("loc.conf", 1, 1)
    assert config.locations["UseCnBuAck"] == Location("loc.conf", 2, 3)
    assert "UseMnHaIPsec" not in config.locations
    assert config.interfaces[0].location == Location("loc.conf", 3, 1)
    assert config.mn_home_links[0].location == Location("loc.conf", 4, 1)
    assert str(config.mn_home_links[0].location) == "loc.conf:4:1"


def test_role_override() -> None:
    config = parse('NodeConfig HA;\nInterface "eth0";\n' + MN_LINK, "r.conf", role=Role.MN)
    assert config.node_config is Role.MN
    assert config.role is Role.MN
    assert error("DebugLevel 1;\n", "r.conf", role=Role.MN) == (
        "r.conf:2:1: role MN (from the command line) needs at least one MnHomeLink block with HomeAgentAddress "
        "and HomeAddress")
    assert error('NodeConfig MN;\n' + MN_LINK, "r.conf", role=Role.HA) == (
        "r.conf:6:1: role HA (from the command line) needs at least one Interface statement naming a home link "
        "interface (IfType HA or no IfType)")


def test_hash_and_immutability() -> None:
    config = load(EXAMPLES / "mip6d-ha.conf")
    assert hash(config) == hash(load(EXAMPLES / "mip6d-ha.conf"))
    with pytest.raises(AttributeError):
        config.debug_level = 3  # type: ignore[misc]


# --- include


def test_include(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "10-iface.conf").write_text('Interface "eth0";\n')
    (tmp_path / "conf.d" / "20-acl.conf").write_text("BindingAclPolicy 2001:db8:1::100 allow;\n")
    (tmp_path / "debug.conf").write_text("DebugLevel 2;\n")
    main = tmp_path / "mip6d.conf"
    main.write_text('NodeConfig HA;\ninclude "debug.conf"\ninclude "conf.d/*.conf";\ninclude "none.d/*.conf";\n')
    config = load(main)
    assert config.debug_level == 2
    assert [i.name for i in config.interfaces] == ["eth0"]
    assert len(config.binding_acl_policies) == 1
    assert config.files == (str(main), str(tmp_path / "debug.conf"), str(tmp_path / "conf.d" / "10-iface.conf"),
                            str(tmp_path / "conf.d" / "20-acl.conf"))
    assert config.locations["DebugLevel"] == Location(str(tmp_path / "debug.conf"), 1, 1)


def load_error(path: Path | str) -> str:
    with pytest.raises(ConfigError) as info:
        load(path)
    return str(info.value)


def test_include_errors(tmp_path: Path) -> None:
    main = tmp_path / "main.conf"
    bad = tmp_path / "bad.conf"
    bad.write_text("\n  DebugLevel x;\n")
    main.write_text('DebugLevel 1;\ninclude "bad.conf";\n')
    assert load_error(main) == f"{bad}:2:3: duplicate DebugLevel statement (first at {main}:1)"
    main.write_text('NodeConfig CN;\ninclude "bad.conf";\n')
    assert load_error(main) == f"{bad}:2:14: DebugLevel expects a number, found 'x'"
    main.write_text('include "missing.conf";\n')
    assert load_error(main) == f"{main}:1:9: included file '{tmp_path}/missing.conf' not found"
    main.write_text('include "main.conf";\n')
    assert load_error(main) == f"{main}:1:9: include cycle: '{main}' is already being read"
    main.write_text("include missing.conf;\n")
    assert load_error(main) == (f"{main}:1:9: include expects a file name or glob pattern in double quotes, "
                                "found 'missing.conf'")
    for level in range(7):
        (tmp_path / f"n{level}.conf").write_text(f'include "n{level + 1}.conf";\n')
    (tmp_path / "n7.conf").write_text("")
    assert load_error(tmp_path / "n0.conf") == f"{tmp_path}/n5.conf:1:1: too many nested includes (at most 5 levels)"


def test_load_unreadable(tmp_path: Path) -> None:
    assert load_error("/nonexistent/mip6d.conf") == (
        "/nonexistent/mip6d.conf:1:1: cannot read '/nonexistent/mip6d.conf': No such file or directory")
    latin = tmp_path / "latin.conf"
    latin.write_bytes(b"# caf\xe9\n")
    assert load_error(os.fspath(latin)) == f"{latin}:1:1: cannot read '{latin}': not UTF-8 text"


# --- errors: exact file:line:col and message

HOME = "IPsecPolicySet {\n HomeAgentAddress 2001:db8::1;\n HomeAddress 2001:db8::5/64;\n"
ERRORS = [
    # lexical
    ("DebugLevel 1; $", "t.conf:1:15: unexpected character '$'"),
    ('Interface "eth0;\n', "t.conf:1:11: unterminated string: a quoted string must end on the same line"),
    # keywords
    ("Foo 1;", "t.conf:1:1: unknown keyword 'Foo'"),
    ("debuglevel 1;", "t.conf:1:1: unknown keyword 'debuglevel' (did you mean 'DebugLevel'? keywords are "
                      "case-sensitive)"),
    ("HaMaxBindlingLife 3;", "t.conf:1:1: unknown keyword 'HaMaxBindlingLife' (did you mean 'HaMaxBindingLife'?)"),
    ('UsePolicyModule "x.so";', "t.conf:1:1: unknown keyword 'UsePolicyModule' (UMIP's policy plug-in modules "
                                "are not supported)"),
    ("{ DebugLevel 1; }", "t.conf:1:1: expected a keyword, found '{'"),
    ("HomeAgentAddress 2001:db8::1;", "t.conf:1:1: 'HomeAgentAddress' is only allowed inside an MnHomeLink block "
                                      "or an IPsecPolicySet block"),
    ('MnHomeLink "eth0" {\n HomeAddress 2001:db8::5/64;\n DebugLevel 1;\n}',
     "t.conf:3:2: 'DebugLevel' is not allowed in an MnHomeLink block (missing '}'?)"),
    ('Interface "eth0" {\n  Bogus 1;\n}', "t.conf:2:3: unknown keyword 'Bogus' in an Interface block"),
    ('Interface "eth0" {\n  MnIfPreference 1;\n', "t.conf:3:1: unexpected end of file in an Interface block: "
                                                  "missing '}'"),
    ('MnHomeLink "eth0" { HomeAddress 2001:db8::5/64; ; }',
     "t.conf:1:49: expected a keyword in an MnHomeLink block, found ';'"),
    # values
    ("DebugLevel 3\nNodeConfig HA;", "t.conf:1:13: expected ';' to end the DebugLevel statement, found 'NodeConfig'"),
    ("DebugLevel 3 4;", "t.conf:1:14: expected ';' to end the DebugLevel statement, found '4'"),
    ("DebugLevel x;", "t.conf:1:12: DebugLevel expects a number, found 'x'"),
    ("DebugLevel -1;", "t.conf:1:12: DebugLevel expects a number, found '-1'"),
    ("DebugLevel 99999999999;", "t.conf:1:12: DebugLevel 99999999999 is out of range 0..4294967295"),
    ("DebugLevel;", "t.conf:1:11: DebugLevel expects a number, found ';'"),
    ("DebugLevel", "t.conf:1:11: DebugLevel expects a number, found end of file"),
    ("DebugLogFile /tmp/x;", "t.conf:1:14: DebugLogFile expects a file name in double quotes, found '/'"),
    ("UseMnHaIPsec yes;", "t.conf:1:14: UseMnHaIPsec expects enabled or disabled, found 'yes'"),
    ("NodeConfig XX;", "t.conf:1:12: NodeConfig expects CN, HA or MN, found 'XX'"),
    ("InitialSolicitTimer 3;", "t.conf:1:21: InitialSolicitTimer expects a decimal number with a point, such as "
                               "1.5 or 3.0, found '3'"),
    ("HaMaxBindingLife 262141;", "t.conf:1:18: HaMaxBindingLife 262141 is out of range 1..262140: the longest "
                                 "lifetime a Binding Update can carry (65535 units of 4 s)"),
    ("MnMaxHaBindingLife 0;", "t.conf:1:20: MnMaxHaBindingLife 0 is out of range 1..262140: the longest "
                              "lifetime a Binding Update can carry (65535 units of 4 s)"),
    ("MnMaxCnBindingLife 421;", "t.conf:1:20: MnMaxCnBindingLife 421 is out of range 1..420: "
                                "MAX_RR_BINDING_LIFETIME of RFC 6275"),
    ("DefaultBindingAclPolicy maybe;", "t.conf:1:25: DefaultBindingAclPolicy expects allow, deny or a Binding "
                                       "Acknowledgement status number, found 'maybe'"),
    ("DefaultBindingAclPolicy 256;", "t.conf:1:25: DefaultBindingAclPolicy 256 is out of range 0..255: a Binding "
                                     "Acknowledgement status is 8 bits"),
    # duplicates
    ("DebugLevel 1;\n\n  DebugLevel 2;", "t.conf:3:3: duplicate DebugLevel statement (first at line 1)"),
    ('Interface "eth0";\nInterface "eth0" { MnIfPreference 2; }',
     't.conf:2:1: Interface "eth0" is already defined (at line 1)'),
    ('Interface "eth0" { MnIfPreference 2;\n MnIfPreference 3; }',
     "t.conf:2:2: duplicate MnIfPreference statement (first at line 1)"),
    ('MnHomeLink "eth0" {\n HomeAddress 2001:db8::5/64;\n HomeAddress 2001:db8::6/64;\n}',
     "t.conf:3:2: duplicate HomeAddress statement (first at line 2)"),
    ("BindingAclPolicy 2001:db8::5 allow;\nBindingAclPolicy 2001:db8::5 deny;",
     "t.conf:2:1: BindingAclPolicy for 2001:db8::5 is already defined (at line 1)"),
    ('MnHomeLink "eth0" { HomeAddress 2001:db8::5/64; }\nMnHomeLink "eth1" {\n HomeAddress 2001:db8::5/64; }',
     "t.conf:3:2: home address 2001:db8::5 is already used by the MnHomeLink at line 1"),
    ("CnBindingPolicySet {\n 2001:db8::7 enabled;\n 2001:db8::7 2001:db8::5 disabled;\n}",
     "t.conf:3:2: CnBindingPolicySet already has an entry for 2001:db8::7 (at line 2)"),
    # interfaces
    ("Interface eth0;", 't.conf:1:11: Interface expects an interface name such as "eth0" in double quotes, '
                        "found 'eth0'"),
    ('Interface "eth0"', "t.conf:1:17: expected ';' or '{' after Interface \"eth0\", found end of file"),
    ('Interface "a-very-long-interface";', "t.conf:1:11: Interface: invalid interface name "
                                           '"a-very-long-interface" (1 to 15 characters, no \'/\', \':\' or blanks)'),
    ('Interface "eth0" {}', 't.conf:1:19: empty Interface "eth0" block: write Interface "eth0"; or give IfType, '
                            "MnIfPreference or Tunnel"),
    ('Interface "eth0" { MnIfPreference 11; }', "t.conf:1:35: MnIfPreference 11 is out of range 0..10: 1 is the "
                                                "most preferred, 0 leaves it unused"),
    ('Interface "eth0" { IfType XX; }', "t.conf:1:27: IfType expects CN, HA or MN, found 'XX'"),
    # addresses and prefixes
    ('MnHomeLink "eth0" {\n HomeAddress 2001:db8::5/129;\n}',
     "t.conf:2:26: HomeAddress: invalid prefix length 129 (at most 128)"),
    ('MnHomeLink "eth0" {\n HomeAddress 2001:db8::5;\n}',
     "t.conf:2:25: expected '/' and a prefix length after the HomeAddress address, found ';'"),
    ('MnHomeLink "eth0" {\n HomeAddress 2001:db8::5/x;\n}',
     "t.conf:2:26: HomeAddress expects a prefix length after '/', found 'x'"),
    ('MnHomeLink "eth0" {\n HomeAddress 2001:db8:::5/64;\n}', "t.conf:2:14: HomeAddress: bad IPv6 address "
                                                              "'2001:db8:::5'"),
    ('MnHomeLink "eth0" {\n HomeAgentAddress fe80::1%eth0;\n}', "t.conf:2:19: HomeAgentAddress: scoped address "
                                                               "'fe80::1%eth0' is not allowed"),
    ('MnHomeLink "eth0" {\n HomeAgentAddress 10.0.0.1;\n}',
     "t.conf:2:19: HomeAgentAddress expects an IPv6 address, found '10.0.0.1'"),
    ('MnHomeLink "eth0" {\n HomeAddress 2001:db8::5/64 (2001:db8:2::/64 2001:db8:3::/64);\n}',
     "t.conf:2:46: expected ')' or ',' in the HomeAddress prefix list, found '2001:db8:3::'"),
    ('MnHomeLink "eth0" {\n HomeAgentAddress 2001:db8::1;\n}', 't.conf:1:1: MnHomeLink "eth0" has no HomeAddress'),
    # IPsecPolicySet layout
    ("IPsecPolicySet {\n HomeAddress 2001:db8::5/64;\n}",
     "t.conf:2:2: IPsecPolicySet must start with HomeAgentAddress, found 'HomeAddress'"),
    ("IPsecPolicySet {\n HomeAgentAddress 2001:db8::1;\n IPsecPolicy Mh UseESP;\n}",
     "t.conf:3:2: IPsecPolicy needs a HomeAddress before it in its IPsecPolicySet"),
    (HOME + " IPsecPolicy Mh UseESP;\n HomeAddress 2001:db8::6/64;\n}",
     "t.conf:5:2: HomeAddress must come before the IPsecPolicy lines of its IPsecPolicySet"),
    (HOME + " HomeAgentAddress 2001:db8::2;\n}",
     "t.conf:4:2: only one HomeAgentAddress per IPsecPolicySet (first at line 2)"),
    (HOME + "}", "t.conf:4:1: IPsecPolicySet needs at least one IPsecPolicy before '}' (HomeAgentAddress, then "
                 "HomeAddress lines, then IPsecPolicy lines)"),
    ("IPsecPolicySet { }", "t.conf:1:18: IPsecPolicySet needs a HomeAgentAddress before '}' (HomeAgentAddress, "
                           "then HomeAddress lines, then IPsecPolicy lines)"),
    ("IPsecPolicySet {\n HomeAgentAddress 2001:db8::1;\n}", "t.conf:3:1: IPsecPolicySet needs at least one "
     "HomeAddress before '}' (HomeAgentAddress, then HomeAddress lines, then IPsecPolicy lines)"),
    (HOME + " IPsecPolicy HomeRegBinding 1 2;\n}",
     "t.conf:4:29: IPsecPolicy must set at least one protocol (UseESP, UseAH or UseIPComp), found '1'"),
    (HOME + " IPsecPolicy Foo UseESP;\n}", "t.conf:4:14: IPsecPolicy expects a type (HomeRegBinding, Mh, MobPfxDisc, "
                                           "ICMP, any, TunnelHomeTesting, TunnelMh, TunnelPayload), found 'Foo'"),
    (HOME + " IPsecPolicy Mh UseESP 1 2 3;\n}",
     "t.conf:4:28: IPsecPolicy takes at most two reqids (MN to HA, then HA to MN)"),
    (HOME + " IPsecPolicy Mh UseESP UseESP;\n}", "t.conf:4:24: IPsecPolicy: duplicate UseESP"),
    (HOME + " IPsecPolicy Mh UseESP 1 enabled 2;\n}",
     "t.conf:4:34: expected ';' to end the IPsecPolicy statement, found '2'"),
    (HOME + " IPsecPolicy Mh UseESP;\n IPsecPolicy Mh UseAH;\n}",
     "t.conf:5:2: overlapping IPsec policies: Mh for HA 2001:db8::1 and MN 2001:db8::5 is already defined at line 4"),
    (HOME + " IPsecPolicy Mh UseESP;\n}\n" + HOME + " IPsecPolicy Mh UseESP 5;\n}",
     "t.conf:9:2: overlapping IPsec policies: Mh for HA 2001:db8::1 and MN 2001:db8::5 is already defined at line 4"),
    # semantic checks
    ("NodeConfig MN;", "t.conf:1:1: NodeConfig MN needs at least one MnHomeLink block with HomeAgentAddress and "
                       "HomeAddress"),
    ('NodeConfig MN;\nMnHomeLink "eth0" {\n HomeAddress 2001:db8::5/64;\n}',
     't.conf:2:1: MnHomeLink "eth0" needs a HomeAgentAddress (dynamic home agent address discovery is not '
     "supported)"),
    ('NodeConfig MN;\nMnHomeLink "eth0" {\n HomeAgentAddress ::;\n HomeAddress 2001:db8::5/64;\n}',
     't.conf:2:1: MnHomeLink "eth0" needs a HomeAgentAddress (dynamic home agent address discovery is not '
     "supported)"),
    ('MnHomeLink "eth0" {\n HomeAddress fe80::5/64;\n}',
     't.conf:1:1: MnHomeLink "eth0": HomeAddress fe80::5 is not a global unicast address'),
    ('MnHomeLink "eth0" {\n HomeAgentAddress ff02::2;\n HomeAddress 2001:db8::5/64;\n}',
     't.conf:1:1: MnHomeLink "eth0": HomeAgentAddress ff02::2 is not a global unicast address'),
    ("\nNodeConfig HA;", "t.conf:2:1: NodeConfig HA needs at least one Interface statement naming a home link "
                         "interface (IfType HA or no IfType)"),
    ('NodeConfig HA;\nInterface "eth0" { IfType CN; }', "t.conf:1:1: NodeConfig HA needs at least one Interface "
     "statement naming a home link interface (IfType HA or no IfType)"),
    ('NodeConfig HA;\nInterface "eth0";\nInterface "tun0" { Tunnel enabled; }',
     't.conf:3:1: Interface "tun0": a tunnel interface cannot be a home agent interface'),
    ("UseMnHaIPsec disabled;\n\nUseMnHaIRO enabled;",
     "t.conf:3:1: UseMnHaIRO enabled requires UseMnHaIPsec enabled (disabled at line 1)"),
    ("UseMnHaIRO enabled;\nUseMnHaIPsec false;",
     "t.conf:1:1: UseMnHaIRO enabled requires UseMnHaIPsec enabled (disabled at line 2)"),
    ('NodeConfig MN;\nUseMnHaIRO enabled;\n' + MN_LINK,
     't.conf:3:1: MnHomeLink "eth0": UseMnHaIRO needs an IPsecPolicySet for HomeAgentAddress 2001:db8:1::1 and '
     "HomeAddress 2001:db8:1::100 with IPsecPolicy HomeRegBinding (Binding Updates travel as IPv6/ESP)"),
    ('NodeConfig MN;\nUseMnHaIRO enabled;\n' + MN_LINK + HOME.replace("db8::1", "db8:1::1") +
     " IPsecPolicy TunnelMh UseESP;\n}",
     't.conf:3:1: MnHomeLink "eth0": UseMnHaIRO needs an IPsecPolicySet for HomeAgentAddress 2001:db8:1::1 and '
     "HomeAddress 2001:db8:1::100 with IPsecPolicy HomeRegBinding (Binding Updates travel as IPv6/ESP)"),
    ('NodeConfig HA;\nInterface "eth0";\n  UseMnHaIRO enabled;',
     "t.conf:3:3: UseMnHaIRO on a home agent needs an IPsecPolicySet with IPsecPolicy HomeRegBinding for its "
     "mobile nodes (Binding Updates travel as IPv6/ESP)"),
    ('NodeConfig HA;\nInterface "eth0";\nUseMnHaIRO enabled;\n' + HOME + " IPsecPolicy any UseESP;\n}\n" +
     HOME.replace("db8::5", "db8::6") + " IPsecPolicy TunnelMh UseESP;\n}",
     "t.conf:9:1: UseMnHaIRO needs IPsecPolicy HomeRegBinding for home address 2001:db8::6 (Binding Updates "
     "travel as IPv6/ESP)"),
]


@pytest.mark.parametrize(("text", "expected"), ERRORS, ids=[e[1].split(": ", 1)[1][:60] for e in ERRORS])
def test_error(text: str, expected: str) -> None:
    assert error(text) == expected


def test_config_error_is_a_value_error_with_its_location() -> None:
    with pytest.raises(ValueError) as info:
        parse("DebugLevel x;", "x.conf")
    assert isinstance(info.value, ConfigError)
    assert info.value.location == Location("x.conf", 1, 12)
    assert info.value.message == "DebugLevel expects a number, found 'x'"


def test_iro_without_ipsec_is_fine_when_iro_is_off() -> None:
    assert not parse("UseMnHaIPsec disabled;\nUseMnHaIRO disabled;").use_mn_ha_iro


def test_iro_bu_policy_may_come_from_any_set_or_type_any() -> None:
    text = ('NodeConfig HA;\nInterface "eth0";\nUseMnHaIRO enabled;\n' + HOME + " IPsecPolicy any UseESP;\n}\n"
            + HOME.replace("db8::5", "db8::6") + " IPsecPolicy TunnelMh UseESP;\n}\n"
            + HOME.replace("db8::5", "db8::6") + " IPsecPolicy HomeRegBinding UseESP;\n}\n")
    assert parse(text).use_mn_ha_iro
    assert parse("NodeConfig CN;\nUseMnHaIRO enabled;").use_mn_ha_iro


# --- robustness

# no include: it would read files
_VOCABULARY = [*config_parser.SCALARS, *config_parser.BLOCKS, *(k for k in config_parser.LISTS if k != "include"),
               "HomeAddress", "HomeAgentAddress", "IPsecPolicy", "UseESP", "enabled", "MN", "HA", '"eth0"',
               "2001:db8::1", "2001:db8::1/64", "64", "1.5", "{", "}", ";", "(", ")", ",", "/", "#", "\n"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_VOCABULARY), max_size=40) | st.text(max_size=80))
def test_anything_either_parses_or_raises_config_error(source: list[str] | str) -> None:
    text = source if isinstance(source, str) else " ".join(source)
    try:
        config = parse(text, "fuzz.conf")
    except ConfigError as err:
        assert str(err).startswith("fuzz.conf:")
        assert "\n" not in str(err)
    else:
        assert isinstance(config, Config)
