"""A short run of the Mobility Header fuzz (tests/host/fuzz_mh_codec.py runs 100000 examples)."""

from __future__ import annotations

from fuzz_mh_codec import FUZZ_DST, FUZZ_SRC, fuzz

from mip6d.mh import MhError, decode


def test_mh_fuzz_smoke() -> None:
    seen: list[bytes] = []
    stats = fuzz(2000, on_message=seen.append)
    assert stats.examples >= 2000 and len(seen) == stats.examples
    # the mix reaches every stage: messages decode, types are unknown, and later checks reject
    assert stats.decoded > 100 and stats.unknown_type > 50
    for field in ("payload proto", "header length", "checksum", "option length"):
        assert stats.rejected[field] > 0, field
    # the bytes handed on are what the codec saw, from FUZZ_SRC to FUZZ_DST
    decoded = 0
    for data in seen:
        try:
            decode(data, FUZZ_SRC, FUZZ_DST)
            decoded += 1
        except MhError:
            pass
    assert decoded == stats.decoded


def test_mh_fuzz_is_deterministic() -> None:
    first: list[bytes] = []
    second: list[bytes] = []
    fuzz(200, on_message=first.append)
    fuzz(200, on_message=second.append)
    assert first == second
