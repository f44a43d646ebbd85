"""The home agent: Binding Updates in, Binding Acks out, and for each binding
the kernel state that carries the mobile node's traffic: the host route to the
HoA through the flow-based ip6ip6 device, encapsulated to the CoA, proxy ND on
the home link, the mode's route-optimization state, and the migrated ESP tunnel
SAs."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from mip6d import ipsec, nd
from mip6d.bcache import Binding, BindingCache, Decision, HomePolicy
from mip6d.config.model import Config, IPsecPolicyType
from mip6d.kernel import Kernel, KernelError, KernelThread
from mip6d.mh import (
    LIFETIME_UNIT,
    ZERO_80_BITS,
    AlternateCareOfAddress,
    BaStatus,
    BeStatus,
    BindingAcknowledgement,
    BindingError,
    BindingUpdate,
    MhError,
    UnknownMhType,
    address_bytes,
    decode,
    encode,
)
from mip6d.mhsock import MhSocket, Received
from mip6d.rtnl import Ip6Encap
from mip6d.xfrm import Migration
from mip6d.xfrm.api import IPPROTO_ESP, XFRM_MODE_TUNNEL

log = logging.getLogger("mip6d.ha")
TUNNEL = "mip6ha"  # the flow-based ip6ip6 device every tunnelled binding's route goes through


@functools.lru_cache(maxsize=1 << 16)
def _routable_unicast(address: str) -> bool:
    """Cached: every BU asks it. By octets: ipaddress's properties are pure Python,
    and every first registration brings a new address. ::/80 holds the unspecified and
    loopback addresses and the IPv4-compatible and IPv4-mapped ones: none is a CoA."""
    octets = address_bytes(address)
    link_local = octets[0] == 0xFE and octets[1] & 0xC0 == 0x80  # fe80::/10
    return not (octets.startswith(ZERO_80_BITS) or octets[0] == 0xFF or link_local)


@dataclass
class Peer:
    """What the configuration says about one mobile node."""

    hoa: str
    reqid_toha: int = 0  # TunnelPayload reqids (0: no ESP on the payload)
    reqid_tomn: int = 0
    signaling_toha: int = 0  # HomeRegBinding reqids
    signaling_tomn: int = 0
    payload_coa: str | None = None  # where the TunnelPayload policies point (None: not installed)
    sa_end: str | None = None  # where this daemon last moved the tunnel SAs (None: not yet)


def _esp_tunnelled(peer: Peer) -> bool:
    """TunnelPayload ESP both ways: the tunnel-mode SAs carry the HoA's traffic to and
    from the CoA (the same IPv6/ESP/IPv6 on the wire), and XFRM's bundle bypasses any
    ip6ip6 device, so the binding needs no route through TUNNEL."""
    return bool(peer.reqid_toha and peer.reqid_tomn)


def _needs_no_lookup(peer: Peer) -> bool:
    """Whether binding the peer is only requests: without TunnelPayload SAs there is no
    MIGRATE, whose first one may dump the SAs (pyroute2, in the kernel thread)."""
    return not (peer.reqid_toha or peer.reqid_tomn)


class _Timing(NamedTuple):
    """How one BU was handled, in wall-clock seconds (kernel_ms: its kernel batch)."""

    seq: int
    hoa: str
    coa: str
    status: int
    arrived: float
    started: float
    kernel_ms: float
    done: float

    def report(self) -> dict[str, object]:
        return {"seq": self.seq, "hoa": self.hoa, "coa": self.coa, "status": self.status,
                "queued_ms": round((self.started - self.arrived) * 1000, 1), "kernel_ms": round(self.kernel_ms, 1),
                "done_ms": round((self.done - self.arrived) * 1000, 1)}


class HomeAgent:
    def __init__(self, config: Config, kernel: KernelThread, mode: ipsec.Mode,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.kernel = kernel
        self.mode = mode
        self.clock = clock
        self.ha = self._ha_address(config)
        self.ifname = config.ha_interfaces[0].name
        self.announcer = nd.Announcer(self.ifname)  # unsolicited NAs for newly proxied HoAs
        self.peers = self._peers(config)
        self.cache = BindingCache(self._home_policy(config))
        self.tunnelled: dict[str, str] = {}  # HoA routed through TUNNEL -> its CoA (and admitted from it)
        self._filters = {hoa: handle for handle, hoa in enumerate(self.peers, 1)}  # HoA -> its admit filter
        self.proxied: set[str] = set()
        self._tunnel_ends: dict[int, set[str]] = {}  # TunnelPayload reqid -> where its HA->MN SAs pointed
        self.lock = asyncio.Lock()
        self.sock: MhSocket | None = None
        self._expiry: asyncio.Task[None] | None = None
        self.stats = {"bu": 0, "ba": 0, "rejected": 0, "malformed": 0}
        self._queued = 0  # BUs waiting for or holding the lock
        self.timings: deque[_Timing] = deque(maxlen=8)  # the last BUs' handling, for status

    def _home_policy(self, config: Config) -> HomePolicy:
        prefixes = {hoa.network for s in config.ipsec_policy_sets for hoa in s.home_addresses}
        prefixes.update(config.ha_served_prefixes)
        denied = {str(acl.home_address) for acl in config.binding_acl_policies if not acl.allowed}
        if config.default_binding_acl_policy >= 128:
            allowed = {str(acl.home_address) for acl in config.binding_acl_policies if acl.allowed}
            denied |= set(self.peers) - allowed
        return HomePolicy(tuple(sorted(prefixes)), frozenset(self.peers), frozenset(denied),
                          config.ha_max_binding_life)

    def reconfigure(self, config: Config) -> None:
        """SIGHUP with only lifetimes or ACLs changed: existing bindings stay."""
        self.config = config
        self.cache.policy = self._home_policy(config)

    @staticmethod
    def _ha_address(config: Config) -> str:
        addresses = {str(s.home_agent_address) for s in config.ipsec_policy_sets}
        if len(addresses) != 1:
            raise ValueError("a home agent needs exactly one HomeAgentAddress in its IPsecPolicySet blocks, "
                             f"found {sorted(addresses) or 'none'}")
        return addresses.pop()

    @staticmethod
    def _peers(config: Config) -> dict[str, Peer]:
        peers: dict[str, Peer] = {}
        for policy_set in config.ipsec_policy_sets:
            for hoa in policy_set.home_addresses:
                peer = peers.setdefault(str(hoa.ip), Peer(str(hoa.ip)))
                for policy in policy_set.policies:
                    if policy.type is IPsecPolicyType.TUNNEL_PAYLOAD:
                        peer.reqid_toha, peer.reqid_tomn = policy.reqid_toha, policy.reqid_tomn
                    elif policy.type is IPsecPolicyType.HOME_REG_BINDING and not peer.signaling_toha:
                        peer.signaling_toha, peer.signaling_tomn = policy.reqid_toha, policy.reqid_tomn
        return peers

    # -- life cycle -------------------------------------------------------------
    def _install_base(self, k: Kernel) -> None:
        k.pin(self.ifname)
        k.set_sysctl("net.ipv6.conf.all.forwarding", "1")
        k.set_sysctl(f"net.ipv6.conf.{self.ifname}.proxy_ndp", "1")
        # Every policy of a binding has a /128 on the MN's side and, for the TunnelPayload
        # ones, nothing on the HA's. By default (128 128) those sit on the inexact list, which
        # each insert and MIGRATE walked: 25 % of the HA's CPU per first registration at
        # 4,000 MNs. Hashed on the remote side alone, they are all found by hash.
        k.set_policy_hash_thresholds6(0, 128)
        with k.batch():
            k.add_state(ipsec.ha_wildcard_state(self.mode))
            if self.config.use_mn_ha_ipsec:
                k.add_policy(ipsec.ha_unprotected_mh_guard(self.ha))
            for hoa, peer in self.peers.items():
                if self.config.use_mn_ha_ipsec:
                    for policy in ipsec.esp_signaling_policies(self.ha, hoa, peer.signaling_tomn,
                                                               peer.signaling_toha):
                        k.add_policy(policy)
                for policy in ipsec.ha_sub_policies(self.mode, hoa, self.ha):
                    k.add_policy(policy)
            if not all(_esp_tunnelled(peer) for peer in self.peers.values()):
                k.add_flow_tunnel(TUNNEL, guarded=True)

    async def start(self) -> None:
        await self.kernel(self._install_base, self.kernel.kernel)
        self.sock = MhSocket(self.ha, iro=self.mode is ipsec.IRO)
        self.sock.start(self._on_mh)
        self._expiry = asyncio.create_task(self._expire_loop())
        log.info("home agent %s on %s, %s mode, %d home addresses", self.ha, self.ifname, self.mode.name,
                 len(self.peers))

    async def stop(self) -> None:
        if self._expiry:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
        if self.sock:
            self.sock.close()
        await self.kernel(self.announcer.close)  # its users run one at a time (under the lock)

    # -- signaling --------------------------------------------------------------
    def _on_mh(self, received: Received) -> None:
        try:
            message = decode(received.data, received.src, received.dst or self.ha, verify_checksum=False)
        except UnknownMhType:
            asyncio.get_running_loop().create_task(self._send_be(received.src))
            return
        except MhError as err:
            self.stats["malformed"] += 1
            log.warning("MH from %s (on the wire %s) discarded: %s", received.src, received.wire_src, err)
            return
        if isinstance(message, BindingUpdate):
            coa = self._care_of_address(received, message)
            if coa is None:
                self.stats["malformed"] += 1
                return
            self._on_bu(received, message, coa)
        else:
            log.info("MH %s from %s ignored", type(message).__name__, received.src)

    def _care_of_address(self, received: Received, bu: BindingUpdate) -> str | None:
        """The CoA a BU asks for: its Alternate CoA, else the on-wire source; None
        (and the BU is discarded, as UMIP did) if that is no routable unicast address."""
        alt = [o.address for o in bu.options if isinstance(o, AlternateCareOfAddress)]
        coa = alt[0] if alt else received.wire_src
        if not _routable_unicast(coa) or coa == self.ha:
            log.warning("BU %d from %s: care-of address %s is not a routable unicast address: discarded",
                        bu.seq, received.src, coa)
            return None
        return coa

    async def _send_be(self, hoa: str) -> None:
        """Under the lock: a rejected BU's temporary return path must not catch the BE."""
        async with self.lock:
            self._send(BindingError(status=BeStatus.UNRECOGNIZED_MH_TYPE, home_address=hoa), hoa)

    def _on_bu(self, received: Received, bu: BindingUpdate, coa: str) -> None:
        """A BU is handled at once when no other BU is queued or being handled (so that
        the order of BUs is kept) and its kernel work needs no trip to the kernel thread:
        a refresh (same CoA, kernel state in place), or any binding of a MN without
        TunnelPayload SAs. Anything else waits its turn in a task."""
        self.stats["bu"] += 1
        if not self._queued and not self.lock.locked():
            started = time.time()
            settled = self._settle_now(received, coa, bu, self._decide(received, bu, coa))
            if settled:
                decision, kernel_ms = settled
                if decision.accepted:
                    self._answer(received, bu, coa, decision)
                    self._record(received, bu, coa, decision, started, kernel_ms)
                else:  # the kernel refused: the BA may need a return path of its own (awaited)
                    self._queued += 1
                    asyncio.get_running_loop().create_task(
                        self._reply_in_turn(received, bu, coa, decision, started, kernel_ms))
                return
        self._queued += 1
        asyncio.get_running_loop().create_task(self._handle_bu(received, bu, coa))

    def _decide(self, received: Received, bu: BindingUpdate, coa: str) -> Decision:
        return self.cache.decide(received.src, coa, bu.seq, bu.lifetime * LIFETIME_UNIT, bu.home, self.clock())

    def _settle_now(self, received: Received, coa: str, bu: BindingUpdate,
                    decision: Decision) -> tuple[Decision, float] | None:
        """An accepted decision committed, its kernel batch (if any) made in this thread;
        or the refusal that replaces it; and the batch's milliseconds. None if the
        decision is a refusal or its batch needs the kernel thread."""
        if not decision.accepted:
            return None
        if self._in_place(decision):
            self.cache.commit(decision)  # a refresh: the kernel already holds all of it
            return decision, 0.0
        binding = decision.binding or decision.previous
        if binding is None or not _needs_no_lookup(self.peers[binding.hoa]):
            return None
        batch_started = time.time()
        try:
            self.kernel.now(self._apply, self.kernel.kernel, decision)
        except KernelError as err:
            return self._refused(received, coa, bu, decision, err), (time.time() - batch_started) * 1000
        self.cache.commit(decision)
        return decision, (time.time() - batch_started) * 1000

    @staticmethod
    def _refused(received: Received, coa: str, bu: BindingUpdate, decision: Decision, err: KernelError) -> Decision:
        log.error("binding %s -> %s: %s", received.src, coa, err)
        return Decision(BaStatus.REASON_UNSPECIFIED, bu.seq, 0, decision.previous, decision.previous, str(err))

    async def _handle_bu(self, received: Received, bu: BindingUpdate, coa: str) -> None:
        kernel_ms = 0.0
        try:
            async with self.lock:
                started = time.time()
                decision = self._decide(received, bu, coa)
                settled = self._settle_now(received, coa, bu, decision)
                if settled:
                    decision, kernel_ms = settled
                elif decision.accepted:
                    batch_started = time.time()
                    try:
                        await self.kernel(self._apply, self.kernel.kernel, decision)
                    except KernelError as err:
                        decision = self._refused(received, coa, bu, decision, err)
                    else:
                        self.cache.commit(decision)
                    kernel_ms = (time.time() - batch_started) * 1000
                await self._reply(received, bu, coa, decision, started, kernel_ms)
        finally:
            self._queued -= 1

    async def _reply_in_turn(self, received: Received, bu: BindingUpdate, coa: str, decision: Decision,
                             started: float, kernel_ms: float) -> None:
        try:
            async with self.lock:
                await self._reply(received, bu, coa, decision, started, kernel_ms)
        finally:
            self._queued -= 1

    async def _reply(self, received: Received, bu: BindingUpdate, coa: str, decision: Decision,
                     started: float, kernel_ms: float) -> None:
        if decision.accepted:
            self._answer(received, bu, coa, decision)
        else:
            self._log_rejection(received, bu, coa, decision)
            await self._send_ba(self._ack(decision), received.src, coa, decision)
        self._record(received, bu, coa, decision, started, kernel_ms)

    @staticmethod
    def _ack(decision: Decision) -> BindingAcknowledgement:
        return BindingAcknowledgement(status=decision.status, key_mgmt=False, seq=decision.seq,
                                      lifetime=decision.lifetime // LIFETIME_UNIT)

    def _answer(self, received: Received, bu: BindingUpdate, coa: str, decision: Decision) -> None:
        """An accepted BU: logged, and acknowledged if it asked for it (the BA follows the binding)."""
        log.info("BU %s: %s -> %s, lifetime %d s", bu.seq, received.src, coa if decision.binding else "home",
                 decision.lifetime)
        if bu.ack:
            self._send(self._ack(decision), received.src)
            self.stats["ba"] += 1

    def _log_rejection(self, received: Received, bu: BindingUpdate, coa: str, decision: Decision) -> None:
        self.stats["rejected"] += 1
        log.warning("BU %s from %s (CoA %s) rejected with %d: %s", bu.seq, received.src, coa, decision.status,
                    decision.reason)

    def _record(self, received: Received, bu: BindingUpdate, coa: str, decision: Decision, started: float,
                kernel_ms: float) -> None:
        """Raw times only: status() rounds them (rounding per BU showed in the refresh profile)."""
        self.timings.append(_Timing(bu.seq, received.src, coa, int(decision.status), received.arrived or started,
                                    started, kernel_ms, time.time()))

    async def _send_ba(self, ba: BindingAcknowledgement, hoa: str, coa: str, decision: Decision) -> None:
        """The BA follows the binding's return path; a rejected BU from a CoA that is
        not bound gets its BA through a route-optimization state held only for it."""
        bound = decision.binding or (decision.previous if not decision.accepted else None)
        if decision.accepted or (bound and bound.coa == coa) or hoa not in self.peers or hoa == coa:
            self._send(ba, hoa)
            self.stats["ba"] += 1
            return
        k = self.kernel.kernel
        state = ipsec.ha_binding_state(self.mode, hoa, self.ha, coa)
        await self.kernel(k.put_state, state)
        try:
            self._send(ba, hoa)
            self.stats["ba"] += 1
        finally:
            if bound:
                await self.kernel(k.put_state, ipsec.ha_binding_state(self.mode, hoa, self.ha, bound.coa))
            else:
                await self.kernel(k.delete_state, state)

    def _send(self, message: BindingAcknowledgement | BindingError, dst: str) -> None:
        assert self.sock is not None
        try:
            self.sock.send(encode(message, self.ha, dst, checksum=False), dst)  # the MH socket sums it
        except OSError as err:
            log.warning("%s to %s: %s", type(message).__name__, dst, err)

    def _in_place(self, decision: Decision) -> bool:
        """Whether the kernel already holds the binding as decided (same CoA, tunnel
        and proxy entry in place), so the BU needs no trip to the kernel thread."""
        binding, previous = decision.binding, decision.previous
        if binding is None or previous is None or previous.coa != binding.coa or binding.hoa not in self.proxied:
            return False
        peer = self.peers[binding.hoa]
        if _esp_tunnelled(peer):
            return peer.payload_coa == binding.coa  # the tunnel SAs did move there
        return self.tunnelled.get(binding.hoa) == binding.coa

    # -- kernel state per binding (runs in the kernel thread) --------------------
    def _apply(self, k: Kernel, decision: Decision) -> None:
        """One batch of requests per BU; a refresh (same CoA) needs none."""
        fresh = decision.binding is not None and decision.binding.hoa not in self.proxied
        try:
            with k.batch():
                if decision.binding is not None:
                    self._bind(k, decision.binding, decision.previous)
                elif decision.previous is not None:
                    self._unbind(k, decision.previous)
        except KernelError:
            binding, previous = decision.binding, decision.previous
            with contextlib.suppress(KernelError), k.batch():
                if binding is not None and previous is None:
                    self._unbind(k, binding)  # leave no half-made first binding
                elif binding is not None and previous is not None:
                    self.proxied.discard(binding.hoa)  # its request may have been the refused one
                    self._bind(k, previous, None)  # a refused move: everything back to the bound CoA
            raise
        if fresh and decision.binding is not None:
            self.announcer.announce(decision.binding.hoa)  # now that the proxy entry is in

    def _bind(self, k: Kernel, binding: Binding, previous: Binding | None) -> None:
        hoa, coa = binding.hoa, binding.coa
        peer = self.peers[hoa]
        # the kernel applies a batch in order: the payload towards the MN moves first,
        # since on a handover the next packet for the HoA is waiting on it
        self._migrate_payload(k, peer, coa)
        k.put_state(ipsec.ha_binding_state(self.mode, hoa, self.ha, coa))
        if not _esp_tunnelled(peer):
            # RFC 6275 10.4.5: what TUNNEL decapsulates from the HoA must come from its CoA. The
            # filter goes first (the MN's packets are admitted before any is sent to it), and
            # `tunnelled` holds the CoA once both are in: the kernel answers them in this order
            k.put_admit_filter(TUNNEL, self._filters[hoa], hoa, coa,
                               done=functools.partial(self.tunnelled.__setitem__, hoa, coa))
            k.put_tunnel_route(hoa + "/128", TUNNEL, Ip6Encap(self.ha, coa),  # replaces the old CoA's
                               failed=functools.partial(self.tunnelled.pop, hoa, None))
        if hoa not in self.proxied:
            k.add_proxy(hoa, self.ifname)
            self.proxied.add(hoa)

    def _unbind(self, k: Kernel, binding: Binding) -> None:
        hoa = binding.hoa
        k.delete_proxy(hoa, self.ifname)
        self.proxied.discard(hoa)
        self.tunnelled.pop(hoa, None)
        peer = self.peers[hoa]
        if not _esp_tunnelled(peer):  # either may be in after a refused batch
            k.delete_tunnel_route(hoa + "/128", TUNNEL)
            k.delete_admit_filter(TUNNEL, self._filters[hoa])
        k.delete_state(ipsec.ha_binding_state(self.mode, hoa, self.ha, binding.coa))
        if peer.payload_coa:
            for policy in ipsec.payload_policies_ha(hoa, self.ha, peer.payload_coa, peer.reqid_tomn,
                                                    peer.reqid_toha):
                k.delete_policy(policy)
            peer.payload_coa = None

    def _migrate_payload(self, k: Kernel, peer: Peer, coa: str) -> None:
        """TunnelPayload: the ESP tunnel SAs follow the CoA, SPIs unchanged."""
        if not (peer.reqid_toha or peer.reqid_tomn) or peer.payload_coa == coa:
            return
        old = peer.payload_coa
        if old is None:
            # the policies start where the SAs point (keys file), then move with them
            old = self._payload_endpoint(k, peer) or coa
            for policy in ipsec.payload_policies_ha(peer.hoa, self.ha, old, peer.reqid_tomn, peer.reqid_toha):
                k.add_policy(policy)
            peer.payload_coa = old  # removed from there if the batch fails
        if old == coa:
            return

        def moved() -> None:  # only once the kernel has moved them: a refused MIGRATE leaves them at `old`
            peer.payload_coa = peer.sa_end = coa

        for policy in ipsec.payload_policies_ha(peer.hoa, self.ha, old, peer.reqid_tomn, peer.reqid_toha):
            moves = [Migration(t.src, t.dst, coa if t.src == old else t.src, coa if t.dst == old else t.dst,
                               reqid=t.reqid) for t in policy.templates]
            k.migrate(policy, moves, done=moved)

    def _payload_endpoint(self, k: Kernel, peer: Peer) -> str | None:
        """Where the peer's tunnel SAs point: where this daemon moved them, or before its
        first binding where the keys put them. The reqids of one IPsecPolicySet are shared
        by its HoAs, so the SAs are told apart by address: each MN's start at its HoA, or
        are the only ones with that reqid that start at no other MN's HoA. One dump of the
        SAs serves every peer (a dump per first binding costs O(SAs) each); a reqid not
        seen yet dumps again."""
        if peer.sa_end:
            return peer.sa_end
        if k.installed_state_at(self.ha, peer.hoa, IPPROTO_ESP, XFRM_MODE_TUNNEL, peer.reqid_tomn):
            return peer.hoa  # from the keys file: a dump of every SA is not needed
        if peer.reqid_tomn not in self._tunnel_ends:
            self._tunnel_ends = {}
            for state in k.dump_states():
                if state.mode == XFRM_MODE_TUNNEL and state.src == self.ha:
                    self._tunnel_ends.setdefault(state.reqid, set()).add(state.dst)
        ends = self._tunnel_ends.get(peer.reqid_tomn, set())
        if peer.hoa in ends:
            return peer.hoa
        ends = {end for end in ends if end not in self.peers}  # SAs at another MN's HoA are that MN's
        return next(iter(ends)) if len(ends) == 1 else None

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(1)
            for binding in self.cache.expired(self.clock()):
                async with self.lock:
                    if self.cache.get(binding.hoa) is not binding:
                        continue  # refreshed or removed while an earlier one was unbound
                    log.info("binding %s -> %s expired", binding.hoa, binding.coa)
                    with contextlib.suppress(KernelError):
                        await self.kernel(self._unbind, self.kernel.kernel, binding)
                    self.cache.remove(binding.hoa)

    # -- control socket ----------------------------------------------------------
    def bindings(self) -> list[dict[str, object]]:
        now = self.clock()
        return [{"hoa": b.hoa, "coa": b.coa, "seq": b.seq, "lifetime": b.lifetime,
                 "lifetime_left": round(b.left(now), 1), "state": "registered",
                 "tunnel": TUNNEL if b.hoa in self.tunnelled else "esp"} for b in self.cache]

    def status(self) -> dict[str, object]:
        return {"role": "HA", "mode": self.mode.name, "address": self.ha, "interface": self.ifname,
                "bindings": len(self.cache), **self.stats, "recent_bu": [t.report() for t in self.timings]}

