"""The manual keys file (/etc/mip6d.keys): static SAs in setkey(8)'s `add` syntax.

UMIP users keyed MN-HA IPsec by hand with ipsec-tools' setkey; mip6d installs the SPD
itself from mip6d.conf, so a keys file holds only SAs. This is the subset of setkey's
grammar (ipsec-tools src/setkey/parse.y and token.l) that applies:

    add [-6n] SRC DST esp SPI [-m transport|tunnel|any] [-u REQID] [-r WINDOW]
        -E ENC_ALG [KEY] [-A AUTH_ALG KEY] ;
    add [-6n] SRC DST ah SPI [-m ...] [-u REQID] [-r WINDOW] -A AUTH_ALG KEY ;

as in setkey, the options come before the algorithms and `-E` before `-A`; a KEY is
`0x` followed by hex digits, or a double-quoted string whose bytes are the key; `#`
starts a comment; a statement may span lines. SPIs are decimal or `0x` hex.

Algorithms, by setkey name -> Linux XFRM name:

    -E aes-cbc (rijndael-cbc)  cbc(aes)            128, 192 or 256-bit key
    -E aes-gcm-16              rfc4106(gcm(aes))   AEAD, 16-byte ICV; key is the AES key
                                                   plus a 4-byte salt (160, 224, 288 bits)
    -E null                    ecb(cipher_null)    no key
    -A hmac-sha1               hmac(sha1)          160-bit key, truncated to 96 bits
    -A hmac-sha256             hmac(sha256)        256-bit key, truncated to 128 bits
       (hmac-sha2-256)

Differences from setkey: addresses are IPv6 only; `-r` is the replay window in packets
(0 to 32, default 32, where setkey defaults to no replay protection); an ESP SA without
an AEAD algorithm must have `-A` (integrity is what protects Mobile IPv6 signaling);
`-u` takes 1 to 16383 (setkey's manual reqid range). `flush`, `spdflush`, `spdadd` and
the other commands are refused with the reason.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from ipaddress import IPv6Address

from mip6d.xfrm.api import (
    IPPROTO_AH,
    IPPROTO_ESP,
    XFRM_MODE_TRANSPORT,
    XFRM_MODE_TUNNEL,
    Algorithm,
    State,
)

from .errors import ConfigError, Location
from .lexer import Kind, Token, TokenStream, tokenize

WORD_CHARS = r"A-Za-z0-9_:.%+/,\[\]-"  # wide, so setkey lines we refuse still lex
PUNCT = ";"
MAX_MANUAL_REQID = 0x3FFF  # ipsec-tools IPSEC_MANUAL_REQID_MAX
MAX_REPLAY_WINDOW = 32  # XFRM's legacy replay bitmap
DEFAULT_REPLAY_WINDOW = 32


@dataclass(frozen=True)
class _Alg:
    xfrm: str
    key_bits: tuple[int, ...]
    extra_bits: int = 0  # ICV length (AEAD) or truncation length (auth)
    aead: bool = False


ENCRYPTION: dict[str, _Alg] = {
    "aes-cbc": _Alg("cbc(aes)", (128, 192, 256)),
    "rijndael-cbc": _Alg("cbc(aes)", (128, 192, 256)),
    "aes-gcm-16": _Alg("rfc4106(gcm(aes))", (160, 224, 288), 128, aead=True),
    "null": _Alg("ecb(cipher_null)", (0,)),
}
AUTHENTICATION: dict[str, _Alg] = {
    "hmac-sha1": _Alg("hmac(sha1)", (160,), 96),
    "hmac-sha256": _Alg("hmac(sha256)", (256,), 128),
    "hmac-sha2-256": _Alg("hmac(sha256)", (256,), 128),
}
_REFUSED = {
    "flush": "'flush' is not allowed in a keys file: mip6d adds and removes only its own SAs",
    "spdflush": "'spdflush' is not allowed in a keys file: mip6d installs its IPsec policies from "
                "IPsecPolicySet in mip6d.conf and removes only those",
    "spdadd": "'spdadd' is not supported: mip6d installs the IPsec policies itself from IPsecPolicySet "
              "in mip6d.conf",
    "spdupdate": "'spdupdate' is not supported: policies come from IPsecPolicySet in mip6d.conf",
    "spddelete": "'spddelete' is not supported: a keys file only adds SAs",
    "delete": "'delete' is not supported: a keys file only adds SAs",
    "deleteall": "'deleteall' is not supported: a keys file only adds SAs",
    "get": "'get' is not supported: a keys file only adds SAs",
    "getspi": "'getspi' is not supported: a keys file only adds SAs",
    "dump": "'dump' is not supported: a keys file only adds SAs",
    "spddump": "'spddump' is not supported: a keys file only adds SAs",
}
_UNSUPPORTED_OPTIONS = ("-f", "-lh", "-ls", "-bh", "-bs", "-ctx", "-C", "-R", "-P")
_MODES = {"transport": XFRM_MODE_TRANSPORT, "any": XFRM_MODE_TRANSPORT, "tunnel": XFRM_MODE_TUNNEL}
_HEX = re.compile(r"0[xX]([0-9A-Fa-f]*)")


def parse_keys(text: str, filename: str = "<string>") -> list[State]:
    """Parse keys file text into the SAs to install, in file order."""
    stream = TokenStream(tokenize(text, filename, WORD_CHARS, PUNCT))
    states: list[State] = []
    seen: dict[tuple[str, int, int], Location] = {}
    while not stream.at_eof():
        command = stream.next()
        if command.is_word("add"):
            state = _add(stream, command)
            key = (state.dst, state.proto, state.spi)
            if key in seen:
                proto = "esp" if state.proto == IPPROTO_ESP else "ah"
                raise ConfigError(command.location, f"duplicate SA: {proto} SPI {state.spi:#x} to {state.dst} "
                                                    f"is already added at {seen[key].ref(command.location)}")
            seen[key] = command.location
            states.append(state)
        elif command.kind is Kind.WORD and command.value in _REFUSED:
            raise ConfigError(command.location, _REFUSED[command.value])
        else:
            raise ConfigError(command.location, f"expected 'add', found {command.describe()}")
    return states


def load_keys(path: str | os.PathLike[str]) -> list[State]:
    """Read and parse a keys file."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as err:
        raise ConfigError(Location(name, 1, 1), f"cannot read '{name}': {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ConfigError(Location(name, 1, 1), f"cannot read '{name}': not UTF-8 text") from None
    return parse_keys(text, name)


def _word(stream: TokenStream, what: str) -> Token:
    token = stream.peek()
    if token.kind is not Kind.WORD:
        raise ConfigError(token.location, f"expected {what}, found {token.describe()}")
    return stream.next()


def _address(stream: TokenStream, what: str) -> str:
    token = _word(stream, what)
    if "%" in token.value:
        raise ConfigError(token.location, f"bad address {token.describe()}: scoped addresses are not allowed")
    try:
        return str(IPv6Address(token.value))
    except ValueError:
        raise ConfigError(token.location, f"bad address {token.describe()}: expected an IPv6 address "
                                          f"as {what}") from None


def _integer(token: Token, what: str) -> int:
    text = token.value
    try:
        if text[:2].lower() == "0x":
            return int(text[2:], 16)
        if text.isdigit():
            return int(text)
    except ValueError:
        pass
    raise ConfigError(token.location, f"bad {what} {token.describe()}: expected a decimal or 0x hex number")


def _spi(stream: TokenStream) -> int:
    token = _word(stream, "an SPI")
    spi = _integer(token, "SPI")
    if spi < 256:
        raise ConfigError(token.location, f"bad SPI {token.describe()}: SPIs 0 to 255 are reserved (RFC 4303)")
    if spi > 0xFFFFFFFF:
        raise ConfigError(token.location, f"bad SPI {token.describe()}: an SPI is 32 bits")
    return spi


def _key(stream: TokenStream, name: str, alg: _Alg) -> bytes:
    token = stream.peek()
    if token.kind is Kind.STRING:
        stream.next()
        key = token.value.encode()
    else:
        match = _HEX.fullmatch(token.value) if token.kind is Kind.WORD else None
        if match is None:
            raise ConfigError(token.location, f"expected a key for {name} (0x followed by hex digits, or a "
                                              f"quoted string), found {token.describe()}")
        digits = match.group(1)
        if not digits or len(digits) % 2:
            raise ConfigError(token.location, f"bad hex key for {name}: {len(digits)} hex digits "
                                              "is not a whole number of bytes")
        stream.next()
        key = bytes.fromhex(digits)
    bits = len(key) * 8
    if bits not in alg.key_bits:
        sizes = ", ".join(str(b) for b in alg.key_bits[:-1])
        allowed = f"{sizes} or {alg.key_bits[-1]}" if sizes else str(alg.key_bits[0])
        raise ConfigError(token.location, f"bad key length for {name}: {bits} bits ({len(key)} bytes), "
                                          f"expected {allowed} bits")
    return key


def _algorithm(stream: TokenStream, flag: Token, table: dict[str, _Alg], kind: str) -> tuple[str, _Alg]:
    token = stream.peek()
    if token.kind is not Kind.WORD or token.value not in table:
        supported = ", ".join(table)
        raise ConfigError(token.location, f"unknown {kind} algorithm {token.describe()} after {flag.value} "
                                          f"(supported: {supported})")
    stream.next()
    return token.value, table[token.value]


def _add(stream: TokenStream, command: Token) -> State:
    while stream.peek().kind is Kind.WORD and re.fullmatch(r"-[46n]+", stream.peek().value):
        flag = stream.next()
        if "4" in flag.value:
            raise ConfigError(flag.location, "-4: mip6d keys are IPv6 only")
    src = _address(stream, "the source address")
    dst = _address(stream, "the destination address")
    proto_token = _word(stream, "a protocol (esp or ah)")
    if proto_token.value not in ("esp", "ah"):
        raise ConfigError(proto_token.location, f"unsupported protocol {proto_token.describe()}: "
                                                "expected esp or ah")
    esp = proto_token.value == "esp"
    spi = _spi(stream)
    mode, reqid, replay = XFRM_MODE_TRANSPORT, 0, DEFAULT_REPLAY_WINDOW
    while (option := stream.peek()).is_word("-m", "-u", "-r", *_UNSUPPORTED_OPTIONS):
        stream.next()
        if option.value == "-m":
            token = _word(stream, "a mode after -m")
            if token.value not in _MODES:
                raise ConfigError(token.location, f"bad mode {token.describe()}: expected transport or tunnel")
            mode = _MODES[token.value]
        elif option.value == "-u":
            token = _word(stream, "a reqid after -u")
            reqid = _integer(token, "reqid")
            if not 1 <= reqid <= MAX_MANUAL_REQID:
                raise ConfigError(token.location, f"bad reqid {token.describe()}: expected 1 to "
                                                  f"{MAX_MANUAL_REQID}")
        elif option.value == "-r":
            token = _word(stream, "a replay window size after -r")
            replay = _integer(token, "replay window")
            if replay > MAX_REPLAY_WINDOW:
                raise ConfigError(token.location, f"bad replay window {token.describe()}: at most "
                                                  f"{MAX_REPLAY_WINDOW} packets")
        else:
            raise ConfigError(option.location, f"unsupported option '{option.value}': mip6d keys support "
                                               "-m, -u, -r, -E and -A")
    state = State(src, dst, IPPROTO_ESP if esp else IPPROTO_AH, spi, mode, reqid, replay_window=replay)
    flag = stream.peek()
    if esp:
        if not flag.is_word("-E"):
            raise ConfigError(flag.location, f"expected -E and an encryption algorithm for esp, "
                                             f"found {flag.describe()}")
        stream.next()
        name, alg = _algorithm(stream, flag, ENCRYPTION, "encryption")
        if alg.key_bits == (0,):
            key = b""
            extra = stream.peek()
            if extra.kind is Kind.STRING or (extra.kind is Kind.WORD and _HEX.fullmatch(extra.value)):
                raise ConfigError(extra.location, f"-E {name} takes no key")
        else:
            key = _key(stream, name, alg)
        if alg.aead:
            state.aead = Algorithm(alg.xfrm, key, alg.extra_bits)
        else:
            state.crypt = Algorithm(alg.xfrm, key)
        flag = stream.peek()
        if flag.is_word("-A"):
            if alg.aead:
                raise ConfigError(flag.location, f"{name} already authenticates (AEAD): remove -A")
            stream.next()
            auth_name, auth = _algorithm(stream, flag, AUTHENTICATION, "authentication")
            state.auth = Algorithm(auth.xfrm, _key(stream, auth_name, auth), auth.extra_bits)
        elif not alg.aead:
            raise ConfigError(flag.location, f"esp with {name} needs an authentication algorithm "
                                             f"(-A hmac-sha256 KEY), found {flag.describe()}")
    else:
        if not flag.is_word("-A"):
            raise ConfigError(flag.location, f"expected -A and an authentication algorithm for ah, "
                                             f"found {flag.describe()}")
        stream.next()
        auth_name, auth = _algorithm(stream, flag, AUTHENTICATION, "authentication")
        state.auth = Algorithm(auth.xfrm, _key(stream, auth_name, auth), auth.extra_bits)
    stream.expect_punct(";", "to end the add statement")
    return state
