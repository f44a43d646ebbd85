"""The home agent's binding cache (RFC 6275 10.1, 10.3.1): pure bookkeeping,
no kernel calls, so the decision for every BU is testable on its own."""

from __future__ import annotations

import functools
import heapq
import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from mip6d.mh import BaStatus

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

    def in_home_prefix(self, hoa: str) -> bool:
        return _in_prefixes(hoa, self)


@functools.lru_cache(maxsize=1 << 16)
def _in_prefixes(hoa: str, policy: HomePolicy) -> bool:
    """Cached: every BU asks it, and ipaddress parses in pure Python."""
    address = ipaddress.IPv6Address(hoa)
    return any(address in prefix for prefix in policy.home_prefixes)


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
        last_seq = previous.seq if previous else seq

        def reject(status: int, reason: str) -> Decision:
            answer_seq = last_seq if status == BaStatus.SEQUENCE_OUT_OF_WINDOW else seq
            return Decision(status, answer_seq, 0, previous, previous, reason)

        if not home:
            return reject(BaStatus.HOME_REGISTRATION_NOT_SUPPORTED, "H flag clear: not a home registration")
        if not self.policy.in_home_prefix(hoa):
            return reject(BaStatus.NOT_HOME_SUBNET, f"{hoa} is not in a home prefix")
        if hoa in self.policy.denied:
            return reject(BaStatus.ADMINISTRATIVELY_PROHIBITED, f"{hoa} denied by BindingAclPolicy")
        if hoa not in self.policy.served:
            return reject(BaStatus.NOT_HOME_AGENT, f"no IPsecPolicySet for {hoa}")
        if previous is not None and not seq_newer(seq, previous.seq):
            return reject(BaStatus.SEQUENCE_OUT_OF_WINDOW, f"sequence {seq} not after {previous.seq}")
        if lifetime == 0 or socket.inet_pton(socket.AF_INET6, coa) == socket.inet_pton(socket.AF_INET6, hoa):
            return Decision(BaStatus.ACCEPTED, seq, 0, None, previous, "deregistration")
        if previous is None and len(self._entries) >= self.policy.max_bindings:
            return reject(BaStatus.INSUFFICIENT_RESOURCES, f"binding cache full ({self.policy.max_bindings})")
        granted = min(lifetime, self.policy.max_lifetime)
        return Decision(BaStatus.ACCEPTED, seq, granted, Binding(hoa, coa, seq, granted, now, flags), previous)

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
