"""The home agent's binding cache (RFC 6275 10.1, 10.3.1): pure bookkeeping,
no kernel calls, so the decision for every BU is testable on its own."""

from __future__ import annotations

import functools
import heapq
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from mip6d.mh import BaStatus, address_bytes

SEQ_WINDOW = 1 << 15  # RFC 6275 9.5.1: modulo 2**16, "less than" within half the space





def seq_newer(seq: int, than: int) -> bool:
    """True if `seq` comes after `than` in 16-bit serial arithmetic."""
    return 0 < (seq - than) % (1 << 16) < SEQ_WINDOW


class Binding(NamedTuple):
    """A binding cache entry. NamedTuples, as Decision: two are built per BU, at a
    third of a frozen dataclass's cost."""

    hoa: str
    coa: str
    seq: int
    lifetime: int  # granted, seconds
    registered_at: float  # monotonic
    flags: int = 0

    @property
    def expires_at(self) -> float:
        return self.registered_at + self.lifetime

    def left(self, now: float) -> float:
        return max(0.0, self.expires_at - now)


class Decision(NamedTuple):
    """What to answer a BU with and what the cache becomes."""

    status: int
    seq: int  # the BA's sequence number (the cache's on status 135)
    lifetime: int  # granted seconds (0 on rejection or deregistration)
    binding: Binding | None  # the new entry; None when nothing is bound afterwards
    previous: Binding | None
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return self.status < 128


@dataclass(frozen=True, eq=False)  # hashed by identity: a cache key that costs nothing to hash
class HomePolicy:
    """Which home addresses this home agent serves and on what terms."""

    home_prefixes: tuple[ipaddress.IPv6Network, ...]
    served: frozenset[str]  # HoAs with IPsec configured (IPsecPolicySet HomeAddress)
    denied: frozenset[str] = frozenset()  # BindingAclPolicy ... deny
    max_lifetime: int = 86400
    max_bindings: int = 100_000


# plain ints: decide() runs per BU, and an enum member lookup costs a dict walk each time
_ACCEPTED = int(BaStatus.ACCEPTED)
_NOT_HOME_REGISTRATION = int(BaStatus.HOME_REGISTRATION_NOT_SUPPORTED)
_NOT_HOME_SUBNET = int(BaStatus.NOT_HOME_SUBNET)
_PROHIBITED = int(BaStatus.ADMINISTRATIVELY_PROHIBITED)
_NOT_HOME_AGENT = int(BaStatus.NOT_HOME_AGENT)
_OUT_OF_WINDOW = int(BaStatus.SEQUENCE_OUT_OF_WINDOW)
_NO_RESOURCES = int(BaStatus.INSUFFICIENT_RESOURCES)


def _rejected(status: int, reason: str, seq: int, previous: Binding | None) -> Decision:
    """The cache stays as it was; ``seq`` is the BA's (the cache's own on status 135)."""
    return Decision(status, seq, 0, previous, previous, reason)


@functools.lru_cache(maxsize=1 << 16)
def _in_prefixes(hoa: str, policy: HomePolicy) -> bool:
    """Cached: every BU asks it. Integers, not ipaddress: every first registration brings a new HoA."""
    address = int.from_bytes(address_bytes(hoa), "big")
    return any(address & int(prefix.netmask) == int(prefix.network_address) for prefix in policy.home_prefixes)


class BindingCache:
    def __init__(self, policy: HomePolicy) -> None:
        self.policy = policy
        self._entries: dict[str, Binding] = {}
        # (expires_at, hoa) of every commit: expiry looks at the due ones only, not at
        # every binding each second; entries a refresh or removal made stale are skipped
        self._deadlines: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Binding]:
        return iter(sorted(self._entries.values(), key=lambda b: b.hoa))

    def get(self, hoa: str) -> Binding | None:
        return self._entries.get(hoa)

    def decide(self, hoa: str, coa: str, seq: int, lifetime: int, home: bool, now: float,
               flags: int = 0) -> Decision:
        """Check a home registration BU (RFC 6275 10.3.1) without changing the cache."""
        previous = self._entries.get(hoa)
        policy = self.policy
        if not home:
            return _rejected(_NOT_HOME_REGISTRATION, "H flag clear: not a home registration", seq, previous)
        if not _in_prefixes(hoa, policy):
            return _rejected(_NOT_HOME_SUBNET, f"{hoa} is not in a home prefix", seq, previous)
        if hoa in policy.denied:
            return _rejected(_PROHIBITED, f"{hoa} denied by BindingAclPolicy", seq, previous)
        if hoa not in policy.served:
            return _rejected(_NOT_HOME_AGENT, f"no IPsecPolicySet for {hoa}", seq, previous)
        if previous is not None and not seq_newer(seq, previous.seq):
            return _rejected(_OUT_OF_WINDOW, f"sequence {seq} not after {previous.seq}", previous.seq, previous)
        if lifetime == 0 or coa == hoa or address_bytes(coa) == address_bytes(hoa):
            return Decision(_ACCEPTED, seq, 0, None, previous, "deregistration")
        if previous is None and len(self._entries) >= policy.max_bindings:
            return _rejected(_NO_RESOURCES, f"binding cache full ({policy.max_bindings})", seq, previous)
        granted = min(lifetime, policy.max_lifetime)
        return Decision(_ACCEPTED, seq, granted, Binding(hoa, coa, seq, granted, now, flags), previous)

    def commit(self, decision: Decision) -> None:
        """Apply an accepted decision (after the kernel state is in place)."""
        if not decision.accepted:
            return
        if decision.binding is None:
            if decision.previous is not None:
                self._entries.pop(decision.previous.hoa, None)
        else:
            self._entries[decision.binding.hoa] = decision.binding
            heapq.heappush(self._deadlines, (decision.binding.expires_at, decision.binding.hoa))

    def expired(self, now: float) -> list[Binding]:
        """The bindings whose lifetime has run out; they stay due until removed."""
        due: list[Binding] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            at, hoa = heapq.heappop(self._deadlines)
            binding = self._entries.get(hoa)
            if binding is not None and binding.expires_at == at:
                due.append(binding)
        for binding in due:
            heapq.heappush(self._deadlines, (binding.expires_at, binding.hoa))
        return due

    def remove(self, hoa: str) -> Binding | None:
        return self._entries.pop(hoa, None)
