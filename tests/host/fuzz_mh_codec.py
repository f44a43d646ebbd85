#!/usr/bin/env python3
"""Fuzz the Mobility Header decoder: ``python tests/host/fuzz_mh_codec.py [--count N]`` (default 100000).

Inputs come from hypothesis with a fixed seed (SEED; derandomized: the same sequence on every run), a mix of: random
bytes; random MH-shaped bytes (right payload proto and header length, any type and body); and valid
encoded messages mutated by bit flips, byte sets, truncation, Header Len edits, inserted or deleted
bytes and inserted option TLVs, with the checksum recomputed in most cases so the checks behind it
are reached. For every input, decode must return a message or raise MhError, and a decoded message
must survive encode/decode unchanged; every valid message generated must round-trip too.

``fuzz(count, on_message)`` is the reusable entry point: ``on_message`` gets every input's bytes
(an MH from FUZZ_SRC to FUZZ_DST) after the codec checks, e.g. to feed the daemon's binding cache.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

try:
    import mip6d.mh as mh
except ImportError:  # run as a script from anywhere: the daemon package lives in umip/
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "umip"))
    import mip6d.mh as mh

FUZZ_SRC = "2001:db8:1::100"
FUZZ_DST = "2001:db8:2::1"
SEED = 0x6275  # RFC 6275
_SRC_PACKED = ipaddress.IPv6Address(FUZZ_SRC).packed
_DST_PACKED = ipaddress.IPv6Address(FUZZ_DST).packed

# --- strategies ----------------------------------------------------------------------------------------

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
addresses = st.ip_addresses(v=6).map(str)

plain_options = st.one_of(
    st.builds(mh.BindingRefreshAdvice, u16),
    st.builds(mh.AlternateCareOfAddress, addresses),
    st.builds(mh.NonceIndices, u16, u16),
    st.builds(mh.UnknownOption, st.integers(6, 0xFF), st.binary(max_size=24)),
)


@st.composite
def option_tuples(draw: st.DrawFn) -> tuple[mh.Option, ...]:
    options: list[mh.Option] = draw(st.lists(plain_options, max_size=4))
    if draw(st.booleans()):
        options.append(mh.BindingAuthorizationData(draw(st.binary(max_size=32))))
    return tuple(options)


messages: st.SearchStrategy[mh.Message] = st.one_of(
    st.builds(mh.BindingRefreshRequest, options=option_tuples()),
    st.builds(mh.BindingUpdate, seq=u16, lifetime=u16, ack=st.booleans(), home=st.booleans(),
              link_local=st.booleans(), key_mgmt=st.booleans(), options=option_tuples()),
    st.builds(mh.BindingAcknowledgement, status=u8, key_mgmt=st.booleans(), seq=u16, lifetime=u16,
              options=option_tuples()),
    st.builds(mh.BindingError, status=u8, home_address=addresses, options=option_tuples()),
)


def fix_checksum(data: bytes) -> bytes:
    """``data`` with bytes 4-5 set to the right MH checksum for FUZZ_SRC -> FUZZ_DST (if it has them)."""
    if len(data) < 6:
        return data
    zeroed = data[:4] + b"\x00\x00" + data[6:]
    return zeroed[:4] + mh.mh_checksum(_SRC_PACKED, _DST_PACKED, zeroed).to_bytes(2, "big") + zeroed[6:]


def fix_length(data: bytes) -> bytes:
    """``data`` zero-padded to a multiple of 8 with Header Len to match."""
    data += bytes(-len(data) % 8)
    if 8 <= len(data) <= mh.MH_MAX_LENGTH:
        data = data[:1] + bytes([len(data) // 8 - 1]) + data[2:]
    return data


@st.composite
def mh_shaped(draw: st.DrawFn) -> bytes:
    """Right Payload Proto and Header Len, checksum usually right; any type, reserved byte and body."""
    mh_type = draw(st.one_of(st.sampled_from(list(mh.MhType)), u8))
    body = draw(st.binary(min_size=2, max_size=58))
    data = fix_length(bytes([mh.IPPROTO_NONE, 0, mh_type, draw(st.sampled_from([0, 0, 0, 1, 0xFF]))]) + body)
    return fix_checksum(data) if draw(st.integers(0, 9)) else data


MUTATIONS = ("flip", "set", "truncate", "hlen", "insert_option", "insert", "delete", "append")


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One random edit of ``data``; the option insertion fixes Header Len and padding half the time."""
    kind = rng.choice(MUTATIONS)
    where = rng.randint(0, len(data))
    if kind == "flip" and data:
        where %= len(data)
        return data[:where] + bytes([data[where] ^ (1 << rng.randint(0, 7))]) + data[where + 1 :]
    if kind == "set" and data:
        where %= len(data)
        return data[:where] + bytes([rng.randint(0, 0xFF)]) + data[where + 1 :]
    if kind == "truncate":
        return data[:where]
    if kind == "hlen" and len(data) >= 2:
        return data[:1] + bytes([rng.choice((rng.randint(0, 8), rng.randint(0, 0xFF)))]) + data[2:]
    if kind == "insert_option":
        otype = rng.choice((rng.randint(0, 6), rng.randint(0, 0xFF)))
        payload = rng.randbytes(rng.randint(0, 20))
        olen = rng.choice((len(payload), len(payload), rng.choice((0, 2, 4, 12, 16)), rng.randint(0, 0xFF)))
        tlv = bytes([otype]) if otype == 0 else bytes([otype, olen]) + payload
        start = min(len(data), 6 + where % max(1, len(data) - 5))
        data = data[:start] + tlv + data[start:]
        return fix_length(data) if rng.random() < 0.5 else data
    if kind == "insert":
        return data[:where] + rng.randbytes(rng.randint(1, 8)) + data[where:]
    if kind == "delete":
        return data[:where] + data[where + rng.randint(1, 8) :]
    return data + rng.randbytes(rng.randint(1, 16))


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, mh.Message]:
    """A valid message, its encoding mutated 0-3 times (Header Len then fixed up half the time, the checksum
    four times in five, so that later checks are reached); the message comes along for the round trip.

    The message is drawn from hypothesis (so a failure shrinks to a small one); the mutations come from a
    ``random.Random`` seeded by one draw, which keeps the fuzz several times faster than a draw per edit
    while staying reproducible.
    """
    msg = draw(messages)
    rng = random.Random(draw(st.integers(0, 2**64 - 1)))
    data = mh.encode(msg, FUZZ_SRC, FUZZ_DST)
    for _ in range(rng.randint(0, 3)):
        data = mutate(rng, data)
    if rng.random() < 0.5:
        data = fix_length(data)
    if rng.random() < 0.8:
        data = fix_checksum(data)
    return data, msg


inputs: st.SearchStrategy[tuple[bytes, mh.Message | None]] = st.one_of(
    st.tuples(st.binary(max_size=64), st.none()),
    st.tuples(mh_shaped(), st.none()),
    mutated(),
)
"""Fuzz inputs: (MH bytes for FUZZ_SRC -> FUZZ_DST, the valid message they were made from or None)."""

# --- checks ----------------------------------------------------------------------------------------------


@dataclass
class FuzzStats:
    examples: int = 0
    decoded: int = 0
    unknown_type: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.examples / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        top = ", ".join(f"{name} {n}" for name, n in self.rejected.most_common(8))
        return (f"{self.examples} examples in {self.seconds:.1f} s ({self.rate:.0f}/s): decoded {self.decoded}, "
                f"unknown MH type {self.unknown_type}, rejected {sum(self.rejected.values())} ({top})")


def check(data: bytes, original: mh.Message | None, stats: FuzzStats) -> None:
    """Decode must give a message or MhError; decoded and original messages must round-trip."""
    if original is not None:
        assert mh.decode(mh.encode(original, FUZZ_SRC, FUZZ_DST), FUZZ_SRC, FUZZ_DST) == original
    for strict in (False, True):
        with contextlib.suppress(mh.MhError):
            mh.decode(data, FUZZ_SRC, FUZZ_DST, verify_checksum=False, strict=strict)
    try:
        msg = mh.decode(data, FUZZ_SRC, FUZZ_DST)
    except mh.UnknownMhType as error:
        stats.unknown_type += 1
        assert error.mh_type == data[2]
        return
    except mh.MhError as error:
        assert "\n" not in str(error) and str(error).startswith(f"MH byte {error.offset}: ")
        stats.rejected[error.field] += 1
        return
    stats.decoded += 1
    again = mh.encode(msg, FUZZ_SRC, FUZZ_DST)
    assert mh.decode(again, FUZZ_SRC, FUZZ_DST) == msg


def fuzz(count: int, on_message: Callable[[bytes], None] | None = None) -> FuzzStats:
    """Run ``count`` hypothesis examples through the codec checks, then ``on_message`` if given."""
    stats = FuzzStats()

    @seed(SEED)
    @settings(max_examples=count, derandomize=True, database=None, deadline=None, print_blob=True,
              phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
    @given(inputs)
    def run(case: tuple[bytes, mh.Message | None]) -> None:
        data, original = case
        stats.examples += 1
        check(data, original, stats)
        if on_message is not None:
            on_message(data)

    started = time.perf_counter()
    try:
        run()
    finally:
        stats.seconds = time.perf_counter() - started
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="hypothesis examples to run (default 100000)")
    args = parser.parse_args(argv)
    stats = fuzz(args.count)
    print(f"fuzz_mh_codec: {stats.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
