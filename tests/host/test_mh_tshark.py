"""Wireshark's MIPv6 dissector reads what our encoder writes: no malformed packets, no expert warnings, same fields."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

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
    NonceIndices,
    encode,
)

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None,
                                reason="tshark is not installed (apt-get install tshark)")

SRC = "2001:db8:1::100"
DST = "2001:db8:2::1"
AUTH = bytes(range(0x10, 0x1C))

MESSAGES: list[Message] = [
    BindingUpdate(seq=7, lifetime=150, ack=True, home=True, options=(AlternateCareOfAddress("2001:db8:1::100"),)),
    BindingAcknowledgement(status=BaStatus.ACCEPTED, key_mgmt=True, seq=7, lifetime=150,
                           options=(BindingRefreshAdvice(100),)),
    BindingError(status=BeStatus.UNRECOGNIZED_MH_TYPE, home_address="2001:db8:2::100"),
    BindingRefreshRequest(),
    BindingUpdate(seq=8, lifetime=3, link_local=True, key_mgmt=True,
                  options=(NonceIndices(0x1234, 0x5678), BindingAuthorizationData(AUTH))),
    BindingAcknowledgement(status=BaStatus.SEQUENCE_OUT_OF_WINDOW, seq=9, lifetime=0,
                           options=(BindingRefreshAdvice(1), BindingAuthorizationData(AUTH))),
    BindingUpdate(seq=0xFFFF, lifetime=0xFFFF, options=(
        AlternateCareOfAddress("2001:db8:3::3"), NonceIndices(1, 2), BindingAuthorizationData(AUTH))),
]

FIELDS = [
    "mip6.proto", "mip6.hlen", "mip6.mhtype", "mip6.reserved", "mip6.csum",
    "mip6.bu.seqnr", "mip6.bu.a_flag", "mip6.bu.h_flag", "mip6.bu.l_flag", "mip6.bu.k_flag", "mip6.bu.lifetime",
    "mip6.ba.status", "mip6.ba.k_flag", "mip6.ba.seqnr", "mip6.ba.lifetime",
    "mip6.be.status", "mip6.be.haddr",
    "mip6.bra.interval", "mip6.acoa.acoa", "mip6.ni.hni", "mip6.ni.cni", "mip6.bad.auth",
]


def expected_fields(msg: Message, mh: bytes) -> dict[str, str]:
    row = dict.fromkeys(FIELDS, "")
    row.update({"mip6.proto": "59", "mip6.hlen": str(mh[1]), "mip6.mhtype": str(msg.mh_type),
                "mip6.reserved": "0x00", "mip6.csum": f"0x{mh[4]:02x}{mh[5]:02x}"})
    if isinstance(msg, BindingUpdate):
        row.update({"mip6.bu.seqnr": str(msg.seq), "mip6.bu.a_flag": str(int(msg.ack)),
                    "mip6.bu.h_flag": str(int(msg.home)), "mip6.bu.l_flag": str(int(msg.link_local)),
                    "mip6.bu.k_flag": str(int(msg.key_mgmt)), "mip6.bu.lifetime": str(msg.lifetime)})
    elif isinstance(msg, BindingAcknowledgement):
        row.update({"mip6.ba.status": str(msg.status), "mip6.ba.k_flag": str(int(msg.key_mgmt)),
                    "mip6.ba.seqnr": str(msg.seq), "mip6.ba.lifetime": str(msg.lifetime)})
    elif isinstance(msg, BindingError):
        row.update({"mip6.be.status": str(msg.status), "mip6.be.haddr": msg.home_address})
    for option in msg.options:
        if isinstance(option, BindingRefreshAdvice):
            row["mip6.bra.interval"] = str(option.interval)
        elif isinstance(option, AlternateCareOfAddress):
            row["mip6.acoa.acoa"] = option.address
        elif isinstance(option, NonceIndices):
            row["mip6.ni.hni"], row["mip6.ni.cni"] = str(option.home), str(option.care_of)
        elif isinstance(option, BindingAuthorizationData):
            row["mip6.bad.auth"] = option.authenticator.hex()
    return row


def tshark(*args: str) -> str:
    done = subprocess.run(["tshark", *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[bytes]]:
    encoded = [encode(msg, SRC, DST) for msg in MESSAGES]
    frames = [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IPv6(src=SRC, dst=DST, nh=135) / Raw(mh)
              for mh in encoded]
    path = tmp_path_factory.mktemp("mh") / "mh.pcap"
    wrpcap(str(path), frames)
    return path, encoded


def test_tshark_finds_nothing_malformed(capture: tuple[Path, list[bytes]]) -> None:
    path, encoded = capture
    verbose = tshark("-r", str(path), "-V")
    assert verbose.count("Mobile IPv6\n") == len(encoded)
    assert "Malformed" not in verbose
    assert "Expert Info" not in verbose
    for name in ("Binding Update", "Binding Acknowledgement", "Binding Error", "Binding Refresh Request",
                 "Alternate Care-of Address", "Binding Refresh Advice", "Nonce Indices", "Authorization Data"):
        assert name in verbose, name


def test_tshark_expert_has_no_warnings_or_errors(capture: tuple[Path, list[bytes]]) -> None:
    path, _ = capture
    expert = tshark("-r", str(path), "-q", "-z", "expert")
    assert "Errors (" not in expert and "Warns (" not in expert, expert


def test_tshark_fields_match(capture: tuple[Path, list[bytes]]) -> None:
    path, encoded = capture
    out = tshark("-r", str(path), "-T", "fields", "-E", "separator=|", *[a for f in FIELDS for a in ("-e", f)])
    rows = [dict(zip(FIELDS, line.split("|"), strict=True)) for line in out.splitlines()]
    assert len(rows) == len(MESSAGES)
    for row, msg, mh in zip(rows, MESSAGES, encoded, strict=True):
        assert row == expected_fields(msg, mh), msg
