"""The Mobility Header codec against scapy's MIPv6 layer, both ways, and its validation of malformed input."""

from __future__ import annotations

import ipaddress
import itertools
import struct

import pytest
from scapy.layers.inet6 import (
    MIP6MH_BA,
    MIP6MH_BE,
    MIP6MH_BRR,
    MIP6MH_BU,
    IPv6,
    MIP6MH_CoT,
    MIP6MH_CoTI,
    MIP6MH_Generic,
    MIP6MH_HoT,
    MIP6MH_HoTI,
    MIP6OptAltCoA,
    MIP6OptBindingAuthData,
    MIP6OptBRAdvice,
    MIP6OptMobNetPrefix,
    MIP6OptNonceIndices,
    MIP6OptUnknown,
    Pad1,
    PadN,
)
from scapy.packet import Packet, Raw

from mip6d.mh import (
    AlternateCareOfAddress,
    BaStatus,
    BeStatus,
    BindingAcknowledgement,
    BindingAuthorizationData,
    BindingError,
    BindingRefreshAdvice,
    BindingRefreshRequest,
    BindingUpdate,
    Message,
    MhError,
    MhType,
    NonceIndices,
    UnknownMhType,
    UnknownOption,
    decode,
    encode,
    mh_checksum,
)

SRC = "2001:db8:1::100"  # a care-of address
DST = "2001:db8:2::1"  # a home agent
AUTH = bytes(range(0xA0, 0xAC))  # a 96-bit authenticator, the length RFC 6275 5.2.6 uses


def scapy_mh(layer: Packet) -> bytes:
    """The MH bytes scapy builds for ``layer`` between SRC and DST, checksum included."""
    return bytes(IPv6(src=SRC, dst=DST) / layer)[40:]


def scapy_parse(mh: bytes) -> Packet:
    """scapy's dissection of our MH bytes, as a receiver would see them."""
    return IPv6(bytes(IPv6(src=SRC, dst=DST, nh=135) / Raw(mh))).payload


def scapy_rebuild(mh: bytes) -> bytes:
    """Our MH dissected by scapy and built again with the checksum recomputed by scapy."""
    packet = IPv6(bytes(IPv6(src=SRC, dst=DST, nh=135) / Raw(mh)))
    packet.payload.cksum = None
    return bytes(packet)[40:]


def refix(mh: bytes) -> bytes:
    """``mh`` with its checksum made right again after an edit."""
    zeroed = mh[:4] + b"\x00\x00" + mh[6:]
    return zeroed[:4] + struct.pack("!H", mh_checksum(_addr(SRC), _addr(DST), zeroed)) + zeroed[6:]


def _addr(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def real_options(layer: Packet) -> list[Packet]:
    return [o for o in layer.options if not isinstance(o, Pad1 | PadN)]


# --- scapy builds, we decode ---------------------------------------------------------------------------


def test_scapy_brr_decodes() -> None:
    assert decode(scapy_mh(MIP6MH_BRR()), SRC, DST) == BindingRefreshRequest()


@pytest.mark.parametrize("flags", ["".join(c) for n in range(5) for c in itertools.combinations("AHLK", n)])
def test_scapy_bu_flags_decode(flags: str) -> None:
    msg = decode(scapy_mh(MIP6MH_BU(seq=0xBEEF, flags=flags, mhtime=0x1234)), SRC, DST)
    assert msg == BindingUpdate(seq=0xBEEF, lifetime=0x1234, ack="A" in flags, home="H" in flags,
                                link_local="L" in flags, key_mgmt="K" in flags)
    assert isinstance(msg, BindingUpdate)
    assert msg.lifetime_seconds == 0x1234 * 4


def test_scapy_bu_with_every_bu_option_decodes() -> None:
    layer = MIP6MH_BU(seq=1, flags="AH", mhtime=150, options=[
        MIP6OptAltCoA(acoa="2001:db8:1::100"),
        MIP6OptNonceIndices(olen=4, hni=0x1111, coni=0x2222),
        MIP6OptBindingAuthData(olen=12, authenticator=int.from_bytes(AUTH, "big")),
    ])
    assert decode(scapy_mh(layer), SRC, DST) == BindingUpdate(
        seq=1, lifetime=150, ack=True, home=True,
        options=(AlternateCareOfAddress("2001:db8:1::100"), NonceIndices(0x1111, 0x2222),
                 BindingAuthorizationData(AUTH)))


@pytest.mark.parametrize("status", [*BaStatus, 255])
def test_scapy_ba_decodes(status: int) -> None:
    layer = MIP6MH_BA(status=status, flags="K", seq=77, mhtime=600, options=[MIP6OptBRAdvice(rinter=300)])
    msg = decode(scapy_mh(layer), SRC, DST)
    assert msg == BindingAcknowledgement(status=status, key_mgmt=True, seq=77, lifetime=600,
                                         options=(BindingRefreshAdvice(300),))
    assert isinstance(msg, BindingAcknowledgement)
    assert msg.accepted == (status < 128)
    assert msg.lifetime_seconds == 2400
    assert msg.options[0] == BindingRefreshAdvice(300) and BindingRefreshAdvice(300).interval_seconds == 1200


def test_scapy_ba_with_auth_data_decodes() -> None:
    layer = MIP6MH_BA(status=0, flags=0, seq=2, mhtime=3, options=[
        MIP6OptBRAdvice(rinter=1), MIP6OptBindingAuthData(olen=12, authenticator=int.from_bytes(AUTH, "big"))])
    assert decode(scapy_mh(layer), SRC, DST) == BindingAcknowledgement(
        status=0, seq=2, lifetime=3, options=(BindingRefreshAdvice(1), BindingAuthorizationData(AUTH)))


@pytest.mark.parametrize("status", list(BeStatus))
def test_scapy_be_decodes(status: int) -> None:
    msg = decode(scapy_mh(MIP6MH_BE(status=status, ha="2001:db8:2::abcd")), SRC, DST)
    assert msg == BindingError(status=status, home_address="2001:db8:2::abcd")


def test_scapy_explicit_pad1_and_padn_are_skipped() -> None:
    # autopad off, so the padding is exactly ours: BU options start at 12; Pad1 (12), Pad1 (13), PadN of 8
    # (14-21), AltCoA at 22 = 8n+6, PadN of 6 (40-45), Nonce Indices at 46 = 2n, Pad1, Pad1, PadN of 2 -> 56
    layer = MIP6MH_BU(seq=5, flags=0, mhtime=1, autopad=0, options=[
        Pad1(), Pad1(), PadN(optdata=b"\x00" * 6), MIP6OptAltCoA(acoa="2001:db8::9"),
        PadN(optdata=b"\x00" * 4), MIP6OptNonceIndices(olen=4, hni=1, coni=2), Pad1(), Pad1(), PadN()])
    mh = scapy_mh(layer)
    assert len(mh) == 56
    assert decode(mh, SRC, DST) == BindingUpdate(
        seq=5, lifetime=1, options=(AlternateCareOfAddress("2001:db8::9"), NonceIndices(1, 2)))


def test_scapy_unknown_options_are_skipped_and_kept() -> None:
    layer = MIP6MH_BU(seq=9, flags="A", mhtime=4, options=[
        MIP6OptUnknown(otype=200, odata=b"hello"),
        MIP6OptMobNetPrefix(plen=48, prefix="2001:db8:77::"),
        MIP6OptAltCoA(acoa="2001:db8::1")])
    msg = decode(scapy_mh(layer), SRC, DST)
    assert isinstance(msg, BindingUpdate)
    assert msg.options[0] == UnknownOption(200, b"hello")
    nemo = msg.options[1]
    assert isinstance(nemo, UnknownOption) and nemo.type == 6 and len(nemo.data) == 18  # NEMO Mobile Network Prefix
    assert msg.options[2] == AlternateCareOfAddress("2001:db8::1")


# --- we encode, scapy parses -----------------------------------------------------------------------------

MESSAGES: list[Message] = [
    BindingRefreshRequest(),
    BindingUpdate(seq=0, lifetime=0),
    BindingUpdate(seq=0xFFFF, lifetime=0xFFFF, ack=True, home=True, link_local=True, key_mgmt=True),
    BindingUpdate(seq=42, lifetime=100, ack=True, home=True,
                  options=(AlternateCareOfAddress("2001:db8:1::100"),)),
    BindingUpdate(seq=43, lifetime=100, options=(NonceIndices(7, 8), BindingAuthorizationData(AUTH))),
    BindingUpdate(seq=44, lifetime=1, link_local=True, options=(
        AlternateCareOfAddress("2001:db8:3::3"), NonceIndices(0xFFFF, 0), BindingAuthorizationData(AUTH))),
    BindingAcknowledgement(status=BaStatus.ACCEPTED, seq=42, lifetime=100),
    BindingAcknowledgement(status=BaStatus.NOT_HOME_SUBNET, key_mgmt=True, seq=1, lifetime=0,
                           options=(BindingRefreshAdvice(25),)),
    BindingAcknowledgement(status=BaStatus.INVALID_COA, seq=9, lifetime=9,
                           options=(BindingRefreshAdvice(0xFFFF), BindingAuthorizationData(AUTH))),
    BindingError(status=BeStatus.UNKNOWN_HOA_BINDING, home_address="2001:db8:2::100"),
    BindingError(status=BeStatus.UNRECOGNIZED_MH_TYPE),
]


def scapy_options(layer: Packet) -> list[object]:
    out: list[object] = []
    for o in real_options(layer):
        if isinstance(o, MIP6OptAltCoA):
            out.append(AlternateCareOfAddress(o.acoa))
        elif isinstance(o, MIP6OptNonceIndices):
            assert o.olen == 4
            out.append(NonceIndices(o.hni, o.coni))
        elif isinstance(o, MIP6OptBindingAuthData):
            assert o.olen == 12
            out.append(BindingAuthorizationData(o.authenticator.to_bytes(12, "big")))
        elif isinstance(o, MIP6OptBRAdvice):
            assert o.olen == 2
            out.append(BindingRefreshAdvice(o.rinter))
        else:
            out.append(UnknownOption(o.otype, bytes(o.odata)))
    return out


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_scapy_parses_what_we_encode(msg: Message) -> None:
    mh = encode(msg, SRC, DST)
    layer = scapy_parse(mh)
    assert len(mh) % 8 == 0 and layer.len == len(mh) // 8 - 1 and layer.nh == 59 and layer.res == 0
    assert layer.mhtype == msg.mh_type
    if isinstance(msg, BindingUpdate):
        assert isinstance(layer, MIP6MH_BU)
        assert (layer.seq, layer.mhtime) == (msg.seq, msg.lifetime)
        flags = layer.flags
        assert [msg.ack, msg.home, msg.link_local, msg.key_mgmt] == [flags.A, flags.H, flags.L, flags.K]
        assert layer.flags.value & 0b111 == 0 and layer.reserved == 0
    elif isinstance(msg, BindingAcknowledgement):
        assert isinstance(layer, MIP6MH_BA)
        assert (layer.status, bool(layer.flags.K), layer.seq, layer.mhtime) == (
            msg.status, msg.key_mgmt, msg.seq, msg.lifetime)
    elif isinstance(msg, BindingError):
        assert isinstance(layer, MIP6MH_BE)
        assert (layer.status, layer.ha) == (msg.status, msg.home_address)
    else:
        assert isinstance(layer, MIP6MH_BRR) and layer.res2 == 0
    assert scapy_options(layer) == list(msg.options)
    # scapy's own checksum over its re-dissection is ours, and so is every other byte
    assert scapy_rebuild(mh) == mh
    assert decode(mh, SRC, DST, strict=True) == msg


def test_our_padding_is_scapys_autopad() -> None:
    msg = MESSAGES[5]
    assert isinstance(msg, BindingUpdate)
    layer = MIP6MH_BU(seq=msg.seq, flags="L", mhtime=msg.lifetime, options=[
        MIP6OptAltCoA(acoa="2001:db8:3::3"), MIP6OptNonceIndices(olen=4, hni=0xFFFF, coni=0),
        MIP6OptBindingAuthData(olen=12, authenticator=int.from_bytes(AUTH, "big"))])
    assert encode(msg, SRC, DST) == scapy_mh(layer)


def test_unknown_option_survives_a_round_trip_unaligned() -> None:
    msg = BindingUpdate(seq=1, lifetime=2, options=(UnknownOption(99, b"abc"), AlternateCareOfAddress("::1")))
    mh = encode(msg, SRC, DST)
    assert mh[12:17] == bytes([99, 3]) + b"abc"  # no alignment for an option we do not know
    assert decode(mh, SRC, DST) == msg
    assert scapy_rebuild(mh) == mh


# --- validation ------------------------------------------------------------------------------------------


def bu_bytes() -> bytes:
    return encode(BindingUpdate(seq=1, lifetime=2, options=(AlternateCareOfAddress("2001:db8::7"),)), SRC, DST)


def expect(mh: bytes, text: str, offset: int, **kwargs: bool) -> MhError:
    with pytest.raises(MhError) as info:
        decode(mh, SRC, DST, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"MH byte {offset}: ")
    assert text in message
    assert info.value.offset == offset
    return info.value


def test_too_short_for_any_mh() -> None:
    expect(b"", "shorter than the 8-byte minimum", 0)
    expect(b"\x3b\x00\x00\x00\x00\x00\x00", "packet of 7 bytes", 0)


def test_bad_payload_proto() -> None:
    mh = scapy_mh(MIP6MH_BU(nh=6, seq=1, flags=0, mhtime=1))  # scapy's checksum, wrong proto
    expect(mh, "payload proto 6 is not 59", 0)


def test_header_length_exceeds_packet() -> None:
    mh = bu_bytes()
    error = expect(mh[:24], "header length 3 (32 bytes) exceeds packet (24 bytes)", 1)
    assert error.field == "header length"
    expect(refix(mh[:1] + b"\x04" + mh[2:]), "header length 4 (40 bytes) exceeds packet (32 bytes)", 1)


def test_header_length_shorter_than_packet() -> None:
    mh = bu_bytes()
    expect(refix(mh[:1] + b"\x02" + mh[2:]), "header length 2 (24 bytes) is shorter than packet (32 bytes)", 1)
    expect(mh + bytes(8), "is shorter than packet (40 bytes)", 1)


@pytest.mark.parametrize(("layer", "need"), [
    (MIP6MH_BU(seq=1, flags=0, mhtime=1), 16),
    (MIP6MH_BA(seq=1, mhtime=1), 16),
    (MIP6MH_BE(status=1), 24),
])
def test_header_length_too_short_for_the_type(layer: Packet, need: int) -> None:
    mh = scapy_mh(layer)
    short = refix(mh[:1] + bytes([need // 8 - 2]) + mh[2 : need - 8])
    expect(short, f"too short for a {type(decode(mh, SRC, DST)).name} (at least {need} bytes)", 1)


def test_bad_checksum() -> None:
    mh = bu_bytes()
    bad = mh[:4] + bytes([mh[4] ^ 0x01, mh[5]]) + mh[6:]
    expect(bad, "checksum", 4)
    assert decode(bad, SRC, DST, verify_checksum=False) == decode(mh, SRC, DST)
    # the pseudo-header counts: the same bytes from another source fail
    with pytest.raises(MhError, match="checksum"):
        decode(mh, "2001:db8:1::101", DST)
    # a corrupted payload byte, checksum left alone
    expect(mh[:20] + bytes([mh[20] ^ 0x80]) + mh[21:], "checksum", 4)


def test_option_length_runs_past_the_end() -> None:
    mh = bytearray(bu_bytes())
    assert mh[14] == 3 and mh[15] == 16  # AltCoA at 14
    mh[15] = 18
    expect(refix(bytes(mh)), "option length 18 of option type 3 runs past the end (32 bytes)", 15)


def test_option_header_cut_off() -> None:
    # BRR whose options area ends with a lone option type byte: Pad1, Pad1, ..., then 0x07
    mh = refix(bytes([59, 1, 0, 0, 0, 0, 0, 0]) + bytes(7) + b"\x07")
    expect(mh, "type 7 is cut off", 15)


@pytest.mark.parametrize(("option", "good"), [
    (MIP6OptNonceIndices(hni=1, coni=2), 4),  # scapy's default olen of 16 is wrong: RFC 6275 6.2.6 says 4
    (MIP6OptAltCoA(olen=18, acoa="::1"), 16),
    (MIP6OptBRAdvice(olen=4, rinter=1), 2),
])
def test_known_option_with_wrong_length(option: Packet, good: int) -> None:
    raw_option = bytes(option)
    raw_option += bytes(raw_option[1] + 2 - len(raw_option))  # data as long as the (wrong) length says
    # a BU with the option at 14, which is 8n+6 and 2n, so only the length is wrong
    body = struct.pack("!HHH", 1, 0, 1) + b"\x01\x00" + raw_option
    body += bytes(-(6 + len(body)) % 8)
    mh = refix(bytes([59, (6 + len(body)) // 8 - 1, 5, 0, 0, 0]) + body)
    error = expect(mh, f"option length {raw_option[1]} of", 15)
    assert str(error).endswith(f"must be {good}")


@pytest.mark.parametrize("option", [
    MIP6OptAltCoA(acoa="2001:db8::1"),
    MIP6OptNonceIndices(olen=4, hni=1, coni=2),
    MIP6OptBRAdvice(rinter=1),
    MIP6OptBindingAuthData(olen=12, authenticator=1),
])
def test_misaligned_option(option: Packet) -> None:
    # autopad off, one Pad1 in front: the option starts at 13, which meets none of 2n, 8n+6, 8n+2
    layer = MIP6MH_BU(seq=1, flags=0, mhtime=1, autopad=0, options=[Pad1(), option])
    mh = scapy_mh(layer)
    mh = refix(mh[:1] + bytes([(len(mh) + 7) // 8 - 1]) + mh[2:] + bytes(-len(mh) % 8))
    expect(mh, "is misaligned", 13)


def test_option_after_auth_data() -> None:
    layer = MIP6MH_BU(seq=1, flags=0, mhtime=1, options=[
        MIP6OptBindingAuthData(olen=12, authenticator=1), MIP6OptAltCoA(acoa="::2")])
    expect(scapy_mh(layer), "type 3 follows Binding Authorization Data (byte 18), which must be last", 38)


@pytest.mark.parametrize("layer", [MIP6MH_HoTI(), MIP6MH_CoTI(), MIP6MH_HoT(), MIP6MH_CoT()])
def test_return_routability_messages_are_unsupported(layer: Packet) -> None:
    with pytest.raises(UnknownMhType, match="not supported") as info:
        decode(scapy_mh(layer), SRC, DST)
    assert info.value.mh_type == layer.mhtype
    assert str(info.value).startswith("MH byte 2: MH type")


@pytest.mark.parametrize("mh_type", [8, 17, 255])
def test_unknown_mh_type(mh_type: int) -> None:
    mh = scapy_mh(MIP6MH_Generic(mhtype=mh_type, msg=b"\x00" * 10))
    with pytest.raises(UnknownMhType) as info:
        decode(mh, SRC, DST)
    assert info.value.mh_type == mh_type
    assert isinstance(info.value, MhError) and isinstance(info.value, ValueError)
    assert str(info.value) == f"MH byte 2: MH type {mh_type} is not recognized"
    # a bad checksum is reported as such, not as a type to answer with a Binding Error
    with pytest.raises(MhError, match="checksum") as info2:
        decode(mh[:4] + b"\x00\x00" + mh[6:], SRC, DST)
    assert not isinstance(info2.value, UnknownMhType)


def test_reserved_fields_ignored_unless_strict() -> None:
    bu = scapy_mh(MIP6MH_BU(res=9, seq=1, flags="MRP", mhtime=1))
    assert decode(bu, SRC, DST) == BindingUpdate(seq=1, lifetime=1)
    expect(bu, "reserved 9 is not zero", 3, strict=True)
    expect(scapy_mh(MIP6MH_BU(seq=1, flags="MRP", mhtime=1)), "BU flags reserved bits", 8, strict=True)
    expect(scapy_mh(MIP6MH_BU(seq=1, flags=0, reserved=1, mhtime=1)), "BU flags reserved bits", 8, strict=True)
    ba = scapy_mh(MIP6MH_BA(seq=1, flags="RP", mhtime=1))
    assert decode(ba, SRC, DST) == BindingAcknowledgement(status=0, seq=1, lifetime=1)
    expect(ba, "BA flags reserved bits", 7, strict=True)
    be = scapy_mh(MIP6MH_BE(status=1, reserved=5))
    assert decode(be, SRC, DST) == BindingError(status=1)
    expect(be, "BE reserved", 7, strict=True)
    brr = scapy_mh(MIP6MH_BRR(res2=1))
    assert decode(brr, SRC, DST) == BindingRefreshRequest()
    expect(brr, "BRR reserved", 6, strict=True)


def test_padn_content_ignored_unless_strict() -> None:
    layer = MIP6MH_BRR(autopad=0, options=[PadN(optdata=b"\x00\x01\x00\x00\x00\x00")])
    mh = scapy_mh(layer)
    assert decode(mh, SRC, DST) == BindingRefreshRequest()
    expect(mh, "PadN data is not all zero", 10, strict=True)
    long_pad = scapy_mh(MIP6MH_BRR(autopad=0, options=[PadN(optdata=bytes(2)), PadN(optdata=bytes(2))]))
    assert decode(long_pad, SRC, DST) == BindingRefreshRequest()
    expect(long_pad, "padding of 8 octets is longer than 7", 8, strict=True)


def test_decode_accepts_bytearray_and_memoryview() -> None:
    mh = bu_bytes()
    assert decode(bytearray(mh), SRC, DST) == decode(memoryview(mh), SRC, DST) == decode(mh, SRC, DST)


# --- encoder and value checks ----------------------------------------------------------------------------


def test_bu_without_options_is_16_bytes_as_rfc_6275_says() -> None:
    mh = encode(BindingUpdate(seq=1, lifetime=1), SRC, DST)
    assert len(mh) == 16 and mh[1] == 1 and mh[12:] == b"\x01\x02\x00\x00"


def test_auth_data_must_be_last() -> None:
    with pytest.raises(ValueError, match="last option"):
        BindingUpdate(seq=1, lifetime=1, options=(BindingAuthorizationData(AUTH), NonceIndices(1, 2)))


def test_message_too_long_for_header_length() -> None:
    msg = BindingUpdate(seq=1, lifetime=1, options=tuple(UnknownOption(200, bytes(255)) for _ in range(8)))
    with pytest.raises(ValueError, match="at most 2048"):
        encode(msg, SRC, DST)


@pytest.mark.parametrize(("make", "error"), [
    (lambda: BindingUpdate(seq=-1, lifetime=1), ValueError),
    (lambda: BindingUpdate(seq=1, lifetime=0x10000), ValueError),
    (lambda: BindingUpdate(seq=1, lifetime=1, ack=1), TypeError),  # type: ignore[arg-type]
    (lambda: BindingAcknowledgement(status=256, seq=1, lifetime=1), ValueError),
    (lambda: BindingError(status=1, home_address="192.0.2.1"), ValueError),
    (lambda: NonceIndices(1, 0x10000), ValueError),
    (lambda: UnknownOption(3, b""), ValueError),
    (lambda: UnknownOption(9, bytes(256)), ValueError),
    (lambda: BindingUpdate(seq=1, lifetime=1, options=(b"\x01\x00",)), TypeError),  # type: ignore[arg-type]
])
def test_values_are_checked(make: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        make()  # type: ignore[operator]


def test_values_are_canonical_and_frozen() -> None:
    be = BindingError(status=1, home_address="2001:DB8:0:0::1")
    assert be.home_address == "2001:db8::1"
    assert AlternateCareOfAddress("2001:0db8::0001") == AlternateCareOfAddress("2001:db8::1")
    listed = BindingUpdate(seq=1, lifetime=1, options=[NonceIndices(1, 2)])  # type: ignore[arg-type]
    assert listed.options == (NonceIndices(1, 2),)
    with pytest.raises(AttributeError):
        be.status = 2  # type: ignore[misc]
    assert MhType.BU == 5 and BindingUpdate.mh_type == MhType.BU
