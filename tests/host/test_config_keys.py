"""Manual keys file: setkey `add` lines to mip6d.xfrm.State, XFRM algorithm names, exact error positions."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mip6d.config import ConfigError, load, load_keys, parse_keys
from mip6d.config import keys as keys_module
from mip6d.xfrm import Algorithm, Selector, State
from mip6d.xfrm import messages as m
from mip6d.xfrm.api import IPPROTO_AH, IPPROTO_ESP, XFRM_MODE_TRANSPORT, XFRM_MODE_TUNNEL

EXAMPLES = Path(__file__).resolve().parents[2] / "umip" / "examples"
MN, HA = "2001:db8:1::100", "2001:db8:1::1"
K16 = "00112233445566778899aabbccddeeff"
K20 = K16 + "01020304"
K32 = K16 * 2
ADD = f"add {MN} {HA} esp 0x1000"


def error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_keys(text, "k")
    assert "\n" not in str(info.value)
    return str(info.value)


def test_example_keys_file() -> None:
    states = load_keys(EXAMPLES / "mip6d.keys")
    assert [(s.src, s.dst, s.spi, s.reqid, s.mode) for s in states] == [
        (MN, HA, 0x1001, 1, XFRM_MODE_TRANSPORT), (HA, MN, 0x1002, 2, XFRM_MODE_TRANSPORT),
        (MN, HA, 0x1003, 3, XFRM_MODE_TUNNEL), (HA, MN, 0x1004, 4, XFRM_MODE_TUNNEL),
    ]
    assert all(s.proto == IPPROTO_ESP and s.replay_window == 32 for s in states)
    assert states[0].aead == Algorithm("rfc4106(gcm(aes))", bytes.fromhex("6a1e2f0c9d3b4a5e7f8091a2b3c4d5e6f7081920"),
                                       128)
    assert states[0].crypt is None and states[0].auth is None
    assert states[2].aead is None
    assert states[2].crypt == Algorithm("cbc(aes)", bytes.fromhex("8c1f4e7a2b9d06c35e1a7f40b2d98c61"))
    assert states[2].auth is not None and states[2].auth.name == "hmac(sha256)"
    assert states[2].auth.extra_bits == 128 and len(states[2].auth.key) == 32


def test_example_keys_match_example_policies() -> None:
    """Every reqid the example IPsecPolicySets use has an SA in each direction in the example keys."""
    states = load_keys(EXAMPLES / "mip6d.keys")
    for name in ("mip6d-mn.conf", "mip6d-ha.conf", "mip6d-mn-iro.conf", "mip6d-ha-iro.conf"):
        for policy_set in load(EXAMPLES / name).ipsec_policy_sets:
            ha = str(policy_set.home_agent_address)
            for hoa in policy_set.home_addresses:
                for policy in policy_set.policies:
                    mode = XFRM_MODE_TUNNEL if policy.type.tunnel else XFRM_MODE_TRANSPORT
                    assert any(s.src == str(hoa.ip) and s.dst == ha and s.reqid == policy.reqid_toha
                               and s.mode == mode for s in states), (name, policy)
                    assert any(s.src == ha and s.dst == str(hoa.ip) and s.reqid == policy.reqid_tomn
                               and s.mode == mode for s in states), (name, policy)


def test_aes_cbc_hmac_sha1_all_options() -> None:
    text = f"""
    # comment
    add -6n {MN} {HA} esp 4096 -m tunnel -u 16383 -r 0
        -E rijndael-cbc 0x{K16}{K16[:16]}   # 192-bit key
        -A hmac-sha1 "01234567890123456789" ;
    """
    (state,) = parse_keys(text, "k")
    assert state == State(MN, HA, IPPROTO_ESP, 4096, XFRM_MODE_TUNNEL, 16383, Selector(),
                          crypt=Algorithm("cbc(aes)", bytes.fromhex(K16 + K16[:16])),
                          auth=Algorithm("hmac(sha1)", b"01234567890123456789", 96), replay_window=0)


@pytest.mark.parametrize(("algorithms", "aead", "crypt", "auth"), [
    (f"-E aes-gcm-16 0x{K20}", Algorithm("rfc4106(gcm(aes))", bytes.fromhex(K20), 128), None, None),
    (f"-E aes-gcm-16 0x{K16}{K16[:16]}{'ab' * 4}", Algorithm("rfc4106(gcm(aes))", bytes.fromhex(K16 + K16[:16]) +
                                                            b"\xab" * 4, 128), None, None),
    (f"-E aes-gcm-16 0x{K32}{'cd' * 4}", Algorithm("rfc4106(gcm(aes))", bytes.fromhex(K32) + b"\xcd" * 4, 128),
     None, None),
    (f"-E aes-cbc 0x{K32} -A hmac-sha256 0x{K32}", None, Algorithm("cbc(aes)", bytes.fromhex(K32)),
     Algorithm("hmac(sha256)", bytes.fromhex(K32), 128)),
    (f"-E aes-cbc 0x{K16} -A hmac-sha2-256 0x{K32}", None, Algorithm("cbc(aes)", bytes.fromhex(K16)),
     Algorithm("hmac(sha256)", bytes.fromhex(K32), 128)),
    (f"-E null -A hmac-sha1 0x{K20}", None, Algorithm("ecb(cipher_null)", b""),
     Algorithm("hmac(sha1)", bytes.fromhex(K20), 96)),
])
def test_algorithm_mapping(algorithms: str, aead: Algorithm | None, crypt: Algorithm | None,
                           auth: Algorithm | None) -> None:
    (state,) = parse_keys(f"{ADD} {algorithms};", "k")
    assert (state.aead, state.crypt, state.auth) == (aead, crypt, auth)
    assert (state.mode, state.reqid, state.replay_window) == (XFRM_MODE_TRANSPORT, 0, 32)


def test_ah() -> None:
    (state,) = parse_keys(f"add {HA} {MN} ah 0x2000 -m any -u 7 -A hmac-sha256 0x{K32};", "k")
    assert state == State(HA, MN, IPPROTO_AH, 0x2000, XFRM_MODE_TRANSPORT, 7,
                          auth=Algorithm("hmac(sha256)", bytes.fromhex(K32), 128))


def test_states_encode_as_xfrm_messages() -> None:
    for state in load_keys(EXAMPLES / "mip6d.keys"):
        msg = state.message()
        msg["header"]["type"] = m.XFRM_MSG_NEWSA
        msg.encode()
        assert len(msg.data) > 16 + 224


def test_empty_and_comment_only() -> None:
    assert parse_keys("", "k") == []
    assert parse_keys("# nothing\n\n   # here\n", "k") == []


def test_load_keys_unreadable() -> None:
    with pytest.raises(ConfigError) as info:
        load_keys("/nonexistent/mip6d.keys")
    assert str(info.value) == ("/nonexistent/mip6d.keys:1:1: cannot read '/nonexistent/mip6d.keys': "
                               "No such file or directory")


AES = f"-E aes-gcm-16 0x{K20}"
ERRORS = [
    ("flush;", "k:1:1: 'flush' is not allowed in a keys file: mip6d adds and removes only its own SAs"),
    ("\n  spdflush;", "k:2:3: 'spdflush' is not allowed in a keys file: mip6d installs its IPsec policies from "
                      "IPsecPolicySet in mip6d.conf and removes only those"),
    ("spdadd ::/0 ::/0 any -P out none;", "k:1:1: 'spdadd' is not supported: mip6d installs the IPsec policies "
                                          "itself from IPsecPolicySet in mip6d.conf"),
    ("deleteall ::1 ::2 esp;", "k:1:1: 'deleteall' is not supported: a keys file only adds SAs"),
    ("ad 1 2;", "k:1:1: expected 'add', found 'ad'"),
    ("add 2001:db8::1 2001:db8::2 esp 1 = 2;", "k:1:35: unexpected character '='"),
    # addresses
    (f"add 10.0.0.1 {HA} esp 0x100 {AES};", "k:1:5: bad address '10.0.0.1': expected an IPv6 address as the "
                                            "source address"),
    (f"add {MN} 2001:db8:::1 esp 0x100 {AES};", "k:1:21: bad address '2001:db8:::1': expected an IPv6 address as "
                                                "the destination address"),
    (f"add fe80::1%eth0 {HA} esp 0x100 {AES};", "k:1:5: bad address 'fe80::1%eth0': scoped addresses are not "
                                                "allowed"),
    (f"add -4 {MN} {HA} esp 0x100 {AES};", "k:1:5: -4: mip6d keys are IPv6 only"),
    (f"add {MN};", "k:1:20: expected the destination address, found ';'"),
    # protocol and SPI
    (f"add {MN} {HA} ipcomp 0x100;", "k:1:35: unsupported protocol 'ipcomp': expected esp or ah"),
    (f"add {MN} {HA} esp 12 {AES};", "k:1:39: bad SPI '12': SPIs 0 to 255 are reserved (RFC 4303)"),
    (f"add {MN} {HA} esp 0x1g {AES};", "k:1:39: bad SPI '0x1g': expected a decimal or 0x hex number"),
    (f"add {MN} {HA} esp 0x100000000 {AES};", "k:1:39: bad SPI '0x100000000': an SPI is 32 bits"),
    (f"add {MN} {HA} esp spi {AES};", "k:1:39: bad SPI 'spi': expected a decimal or 0x hex number"),
    # options
    (f"{ADD} -m beet {AES};", "k:1:49: bad mode 'beet': expected transport or tunnel"),
    (f"{ADD} -u 0 {AES};", "k:1:49: bad reqid '0': expected 1 to 16383"),
    (f"{ADD} -u 16384 {AES};", "k:1:49: bad reqid '16384': expected 1 to 16383"),
    (f"{ADD} -r 64 {AES};", "k:1:49: bad replay window '64': at most 32 packets"),
    (f"{ADD} -lh 30 {AES};", "k:1:46: unsupported option '-lh': mip6d keys support -m, -u, -r, -E and -A"),
    (f"{ADD} -f zero-pad {AES};", "k:1:46: unsupported option '-f': mip6d keys support -m, -u, -r, -E and -A"),
    # algorithms
    (f"{ADD} -E des-cbc 0x0011223344556677 -A hmac-sha1 0x{K20};",
     "k:1:49: unknown encryption algorithm 'des-cbc' after -E (supported: aes-cbc, rijndael-cbc, aes-gcm-16, null)"),
    (f"{ADD} -E aes-cbc 0x{K16} -A hmac-md5 0x{K16};",
     "k:1:95: unknown authentication algorithm 'hmac-md5' after -A (supported: hmac-sha1, hmac-sha256, "
     "hmac-sha2-256)"),
    (f"{ADD} -A hmac-sha1 0x{K20};", "k:1:46: expected -E and an encryption algorithm for esp, found '-A'"),
    (f"add {MN} {HA} ah 0x100 {AES};", "k:1:44: expected -A and an authentication algorithm for ah, found '-E'"),
    (f"{ADD} -E aes-cbc 0x{K16};", "k:1:91: esp with aes-cbc needs an authentication algorithm "
                                   "(-A hmac-sha256 KEY), found ';'"),
    (f"{ADD} -E null;", "k:1:53: esp with null needs an authentication algorithm (-A hmac-sha256 KEY), found ';'"),
    (f"{ADD} -E null 0x00 -A hmac-sha1 0x{K20};", "k:1:54: -E null takes no key"),
    (f"{ADD} {AES} -A hmac-sha1 0x{K20};", "k:1:103: aes-gcm-16 already authenticates (AEAD): remove -A"),
    # keys
    (f"{ADD} -E aes-cbc 0x0011 -A hmac-sha1 0x{K20};",
     "k:1:57: bad key length for aes-cbc: 16 bits (2 bytes), expected 128, 192 or 256 bits"),
    (f"{ADD} -E aes-gcm-16 0x{K16};",
     "k:1:60: bad key length for aes-gcm-16: 128 bits (16 bytes), expected 160, 224 or 288 bits"),
    (f"{ADD} -E aes-cbc 0x{K16} -A hmac-sha256 0x{K20};",
     "k:1:107: bad key length for hmac-sha256: 160 bits (20 bytes), expected 256 bits"),
    (f"{ADD} -E aes-cbc 0x{K16} -A hmac-sha1 \"short\";",
     "k:1:105: bad key length for hmac-sha1: 40 bits (5 bytes), expected 160 bits"),
    (f"{ADD} -E aes-gcm-16 0x{K20[:-1]};",
     "k:1:60: bad hex key for aes-gcm-16: 39 hex digits is not a whole number of bytes"),
    (f"{ADD} -E aes-gcm-16 0x;", "k:1:60: bad hex key for aes-gcm-16: 0 hex digits is not a whole number of bytes"),
    (f"{ADD} -E aes-gcm-16 {K20};", "k:1:60: expected a key for aes-gcm-16 (0x followed by hex digits, or a quoted "
                                    f"string), found '{K20}'"),
    (f"{ADD} -E aes-gcm-16 0x{K20[:-2]}zz;", "k:1:60: expected a key for aes-gcm-16 (0x followed by hex digits, or "
                                             f"a quoted string), found '0x{K20[:-2]}zz'"),
    # statement structure
    (f"{ADD} {AES}\n\nadd", "k:1:102: expected ';' to end the add statement, found 'add'"),
    (f"{ADD} {AES};\nadd 2001:db8::9 {HA} esp 4096 {AES};",
     "k:2:1: duplicate SA: esp SPI 0x1000 to 2001:db8:1::1 is already added at line 1"),
]


@pytest.mark.parametrize(("text", "expected"), ERRORS, ids=[e[1].split(": ", 1)[1][:60] for e in ERRORS])
def test_error(text: str, expected: str) -> None:
    assert error(text) == expected


def test_same_spi_to_other_destination_or_protocol_is_fine() -> None:
    text = (f"{ADD} {AES};\nadd {HA} {MN} esp 0x1000 {AES};\n"
            f"add {MN} {HA} ah 0x1000 -A hmac-sha1 0x{K20};")
    assert len(parse_keys(text, "k")) == 3


def test_algorithm_tables_are_the_documented_ones() -> None:
    assert {n: (a.xfrm, a.key_bits, a.extra_bits) for n, a in keys_module.ENCRYPTION.items()} == {
        "aes-cbc": ("cbc(aes)", (128, 192, 256), 0), "rijndael-cbc": ("cbc(aes)", (128, 192, 256), 0),
        "aes-gcm-16": ("rfc4106(gcm(aes))", (160, 224, 288), 128), "null": ("ecb(cipher_null)", (0,), 0),
    }
    assert {n: (a.xfrm, a.key_bits, a.extra_bits) for n, a in keys_module.AUTHENTICATION.items()} == {
        "hmac-sha1": ("hmac(sha1)", (160,), 96), "hmac-sha256": ("hmac(sha256)", (256,), 128),
        "hmac-sha2-256": ("hmac(sha256)", (256,), 128),
    }


_WORDS = ["add", "esp", "ah", MN, HA, "0x1000", "4096", "-m", "tunnel", "-u", "3", "-r", "-E", "-A", "aes-cbc",
          "aes-gcm-16", "null", "hmac-sha1", "hmac-sha256", f"0x{K16}", f"0x{K20}", f"0x{K32}", ";", "#", "\n",
          '"key"', "flush"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), max_size=30) | st.text(max_size=80))
def test_anything_either_parses_or_raises_config_error(source: list[str] | str) -> None:
    text = source if isinstance(source, str) else " ".join(source)
    try:
        states = parse_keys(text, "fuzz.keys")
    except ConfigError as err:
        assert str(err).startswith("fuzz.keys:")
        assert "\n" not in str(err)
    else:
        assert all(isinstance(s, State) for s in states)
