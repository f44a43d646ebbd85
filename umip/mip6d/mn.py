"""The mobile node: registers its care-of address with the home agent on every
move, keeps the binding fresh, and deregisters on return home.

Order on a move (UMIP does the same): kernel state first (tunnel endpoint,
route-optimization states with the new CoA, ESP tunnel SAs migrated), then
the BU, so the BU and everything after it leave with the new CoA."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from mip6d import ipsec, nd
from mip6d.config.model import Config, IPsecPolicyType
from mip6d.kernel import IFA_F_HOMEADDRESS, IFA_F_NODAD, Kernel, KernelError, KernelThread
from mip6d.mh import (
    LIFETIME_UNIT,
    AlternateCareOfAddress,
    BaStatus,
    BindingAcknowledgement,
    BindingRefreshRequest,
    BindingUpdate,
    MhError,
    decode,
    encode,
)
from mip6d.mhsock import MhSocket, Received
from mip6d.movement import Attachment, MovementDetector
from mip6d.xfrm import Migration
from mip6d.xfrm.api import XFRM_MODE_TUNNEL

log = logging.getLogger("mip6d.mn")

MAX_BINDACK_TIMEOUT = 32.0  # RFC 6275 12
TUNNEL = "mip6mn"
TABLE = 252  # UMIP's "from HoA" routing table
RULE_PRIORITY = 1000


@dataclass
class BulEntry:
    """The binding update list entry for the home registration."""

    seq: int = 0
    coa: str | None = None  # None: at home
    lifetime: int = 0  # requested, seconds
    granted: int = 0
    state: str = "idle"  # idle, waiting, registered, deregistering
    sent_at: float = 0.0
    registered_at: float = 0.0
    timeout: float = 0.0
    retransmissions: int = 0
    last_status: int | None = None
    ever_registered: bool = False


class MobileNode:
    def __init__(self, config: Config, kernel: KernelThread, mode: ipsec.Mode,
                 clock: Callable[[], float] = time.monotonic) -> None:
        link = config.mn_home_links[0]
        self.config = config
        self.kernel = kernel
        self.mode = mode
        self.clock = clock
        self.hoa = str(link.home_address.ip)
        self.plen = link.home_address.network.prefixlen
        self.ha = str(link.home_agent_address)
        self.home_prefix = link.prefix
        self.home_ifname = link.ifname
        prefs = {i.name: i.mn_if_preference for i in config.interfaces} or {link.ifname: 1}
        prefs.setdefault(link.ifname, max(prefs.values()))
        self.detector = MovementDetector(prefs, self.hoa, self.home_prefix, self._moved)
        self.bul = BulEntry()
        self.where = Attachment("detached")
        self.sock: MhSocket | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._hoa_on: str | None = None
        self._tunnel_local: str | None = None  # the CoA the tunnel starts from
        self._routed = False  # the from-HoA rule and the tunnel's default route are in
        self._payload = self._payload_reqids(config)
        self._payload_coa: str | None = None
        self.moves: list[dict[str, object]] = []

    def _payload_reqids(self, config: Config) -> tuple[int, int] | None:
        for policy in config.ipsec_policies_for(ipaddress.IPv6Address(self.ha), ipaddress.IPv6Address(self.hoa)):
            if policy.type is IPsecPolicyType.TUNNEL_PAYLOAD and (policy.reqid_toha or policy.reqid_tomn):
                return policy.reqid_toha, policy.reqid_tomn
        return None

    def _signaling_reqids(self) -> tuple[int, int]:
        for policy in self.config.ipsec_policies_for(ipaddress.IPv6Address(self.ha),
                                                     ipaddress.IPv6Address(self.hoa)):
            if policy.type is IPsecPolicyType.HOME_REG_BINDING:
                return policy.reqid_toha, policy.reqid_tomn
        return 0, 0

    # -- life cycle -------------------------------------------------------------
    def _install_base(self, k: Kernel) -> None:
        if self.config.use_mn_ha_ipsec:
            toha, tomn = self._signaling_reqids()
            for policy in ipsec.esp_signaling_policies(self.hoa, self.ha, toha, tomn):
                k.add_policy(policy)
        for policy in ipsec.mn_sub_policies(self.mode, self.hoa, self.ha):
            k.add_policy(policy)

    async def start(self) -> None:
        await self.kernel(self._install_base, self.kernel.kernel)
        self.sock = MhSocket(self.hoa, iro=self.mode is ipsec.IRO)
        self.sock.start(self._on_mh)
        log.info("mobile node %s, home agent %s, %s mode", self.hoa, self.ha, self.mode.name)
        await self.detector.start()

    async def stop(self) -> None:
        """Deregister if away (best effort, one try), then let the ledger clean up."""
        await self.detector.stop()
        if self._timer:
            self._timer.cancel()
        if self.sock:
            self.sock.close()

    def reconfigure(self, config: Config) -> None:
        """SIGHUP with only lifetimes changed: used from the next BU on."""
        self.config = config

    async def deregister(self, timeout: float = 1.5) -> None:
        """At shutdown while registered away: lifetime 0, so the HA drops the binding now."""
        bul = self.bul
        if bul.state != "registered" or bul.coa is None:
            return
        bul.seq = (bul.seq + 1) & 0xFFFF
        bul.lifetime, bul.state, bul.timeout = 0, "deregistering", timeout
        self._send_bu()
        deadline = self.clock() + timeout
        while bul.state == "deregistering" and self.clock() < deadline:
            await asyncio.sleep(0.05)

    # -- movement ---------------------------------------------------------------
    async def _moved(self, where: Attachment) -> None:
        started = self.clock()
        self.where = where
        move: dict[str, object] = {"where": where.where, "coa": where.coa, "detected_at": started,
                                   "usable_at": where.usable_since or started}
        self.moves.append(move)
        try:
            if where.where == "away" and where.coa:
                # the BU needs only the HoA and the route-optimization states; the
                # tunnel and the payload SAs follow while it is on its way
                await self.kernel(self._batched, self._ready_to_signal, where.coa)
                if where.ifname:
                    nd.solicit_router(where.coa, where.ifname)
                move["setup_ms"] = round((self.clock() - started) * 1000, 1)
                self._register(where.coa)
                await self.kernel(self._batched, self._go_away, where.coa)
            elif where.where == "home":
                await self.kernel(self._batched, self._go_home, where.ifname)
                if where.home_link_address and where.ifname:
                    nd.resolve_from(where.home_link_address, self.ha, where.ifname)
                move["setup_ms"] = round((self.clock() - started) * 1000, 1)
                if self.bul.ever_registered:
                    self._register(None)
        except KernelError as err:
            log.error("move to %s: %s", where, err)
        move["done_ms"] = round((self.clock() - started) * 1000, 1)
        move.setdefault("setup_ms", move["done_ms"])

    def _batched(self, step: Callable[[Kernel, str | None], None], arg: str | None) -> None:
        """A move's tunnel, route, state and SA requests leave in one batch per netlink family."""
        k = self.kernel.kernel
        with k.batch():
            step(k, arg)

    def _ready_to_signal(self, k: Kernel, coa: str | None) -> None:
        """What a BU from this CoA needs: the HoA off the home link and on the
        tunnel (the BA is delivered to it), and the states that map it to the CoA."""
        assert coa is not None
        if self._hoa_on != TUNNEL:
            if self._hoa_on:
                k.delete_address(self._hoa_on, self.hoa, self.plen)
            if k.link_exists(TUNNEL):
                k.move_tunnel(TUNNEL, coa, self.ha)
            else:
                k.add_tunnel(TUNNEL, coa, self.ha)
            self._tunnel_local = coa
            k.add_address(TUNNEL, self.hoa, 128, IFA_F_NODAD | IFA_F_HOMEADDRESS)
            self._hoa_on = TUNNEL
        for state in ipsec.mn_states(self.mode, self.hoa, self.ha, coa):
            k.put_state(state)

    def _go_away(self, k: Kernel, coa: str | None) -> None:
        """The rest of a move away, after the BU: the tunnel's local end and routes, the payload SAs."""
        assert coa is not None
        if self._tunnel_local != coa:
            k.move_tunnel(TUNNEL, coa, self.ha)
            self._tunnel_local = coa
        if not self._routed:
            k.add_route("::/0", TUNNEL, table=TABLE)
            k.add_rule(self.hoa, TABLE, RULE_PRIORITY)
            self._routed = True
        self._migrate_payload(k, coa)

    def _go_home(self, k: Kernel, ifname: str | None) -> None:
        for state in ipsec.mn_states(self.mode, self.hoa, self.ha, "::"):
            k.delete_state(state)
        if self._routed:
            k.delete_rule(self.hoa, TABLE, RULE_PRIORITY)
            k.delete_route("::/0", table=TABLE)
            self._routed = False
        if self._hoa_on == TUNNEL:
            k.delete_address(TUNNEL, self.hoa, 128)
            self._hoa_on = None
        if ifname and self._hoa_on is None:
            k.add_address(ifname, self.hoa, self.plen)
            self._hoa_on = ifname
            k.flush()  # the address is back before the NA claims it
            nd.announce(ifname, self.hoa)
        if self._payload_coa:
            for policy in ipsec.payload_policies_mn(self.hoa, self.ha, self._payload_coa, *self._payload):
                k.delete_policy(policy)
            self._payload_coa = None

    def _migrate_payload(self, k: Kernel, coa: str) -> None:
        """TunnelPayload: the ESP tunnel SAs follow the CoA (XFRM_MSG_MIGRATE, SPIs kept)."""
        if not self._payload or self._payload_coa == coa:
            return
        toha, tomn = self._payload
        old = self._payload_coa
        if old is None:
            # the policies start where the SAs point (keys file), then move with them
            old = next((s.src for s in k.dump_states()
                        if s.mode == XFRM_MODE_TUNNEL and s.reqid == toha and s.dst == self.ha), coa)
            for policy in ipsec.payload_policies_mn(self.hoa, self.ha, old, toha, tomn):
                k.add_policy(policy)
        if old != coa:
            for policy in ipsec.payload_policies_mn(self.hoa, self.ha, old, toha, tomn):
                moves = [Migration(t.src, t.dst, coa if t.src == old else t.src, coa if t.dst == old else t.dst,
                                   reqid=t.reqid) for t in policy.templates]
                k.migrate(policy, moves)
        self._payload_coa = coa

    # -- binding updates ----------------------------------------------------------
    def _register(self, coa: str | None) -> None:
        bul = self.bul
        bul.coa = coa
        bul.seq = (bul.seq + 1) & 0xFFFF
        bul.lifetime = 0 if coa is None else self.config.mn_max_ha_binding_life
        bul.state = "deregistering" if coa is None else "waiting"
        bul.retransmissions = 0
        bul.timeout = (self.config.initial_bindack_timeout_rereg if bul.ever_registered
                       else self.config.initial_bindack_timeout_first_reg)
        self._send_bu()

    def _send_bu(self) -> None:
        bul = self.bul
        options = (AlternateCareOfAddress(address=bul.coa),) if bul.coa else ()
        bu = BindingUpdate(seq=bul.seq, lifetime=bul.lifetime // LIFETIME_UNIT, ack=True, home=True,
                           key_mgmt=self.config.key_mng_mob_capability, options=options)
        assert self.sock is not None
        try:
            self.sock.send(encode(bu, self.hoa, self.ha), self.ha)
        except OSError as err:
            log.warning("BU %d to %s: %s", bul.seq, self.ha, err)
        bul.sent_at = self.clock()
        log.info("BU %d sent: CoA %s, lifetime %d s", bul.seq, bul.coa or "home", bul.lifetime)
        self._arm(bul.timeout, self._retransmit)

    def _arm(self, delay: float, action: Callable[[], None]) -> None:
        if self._timer:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, action)

    def _retransmit(self) -> None:
        bul = self.bul
        if bul.state not in ("waiting", "deregistering"):
            return
        bul.retransmissions += 1
        bul.seq = (bul.seq + 1) & 0xFFFF  # RFC 6275 11.8: each retransmission takes a new sequence number
        bul.timeout = min(bul.timeout * 2, MAX_BINDACK_TIMEOUT)
        self._send_bu()

    def _refresh(self) -> None:
        if self.bul.state == "registered" and self.bul.coa:
            self._register(self.bul.coa)

    def _on_mh(self, received: Received) -> None:
        try:
            message = decode(received.data, received.src, received.dst or self.hoa, verify_checksum=False)
        except MhError as err:
            log.warning("MH from %s discarded: %s", received.src, err)
            return
        if isinstance(message, BindingAcknowledgement):
            self._on_ba(message, received)
        elif isinstance(message, BindingRefreshRequest) and self.bul.state == "registered" and self.bul.coa:
            self._register(self.bul.coa)
        else:
            log.info("MH %s from %s ignored", type(message).__name__, received.src)

    def _on_ba(self, ba: BindingAcknowledgement, received: Received) -> None:
        bul = self.bul
        if received.src != self.ha:
            log.warning("BA from %s, not my home agent %s: ignored", received.src, self.ha)
            return
        if ba.status == BaStatus.SEQUENCE_OUT_OF_WINDOW:
            log.warning("BA 135: home agent's last sequence is %d; resending", ba.seq)
            bul.seq = ba.seq
            self._register(bul.coa)
            return
        if ba.seq != bul.seq:
            log.info("BA for sequence %d, waiting for %d: ignored", ba.seq, bul.seq)
            return
        bul.last_status = ba.status
        if ba.status >= 128:
            log.error("home registration refused with status %d", ba.status)
            bul.state = "refused"
            if self._timer:
                self._timer.cancel()
            return  # no retry: a refusal needs a configuration change, a move or a SIGHUP
        now = self.clock()
        if bul.coa is None or bul.lifetime == 0:
            bul.state, bul.granted = "idle", 0
            if self._timer:
                self._timer.cancel()
            if self.moves and "registered_at" not in self.moves[-1]:
                self.moves[-1].update(registered_at=now, registration_ms=round((now - bul.sent_at) * 1000, 1))
            log.info("deregistered (at home), %.0f ms after the BU", (now - bul.sent_at) * 1000)
            return
        bul.granted = ba.lifetime * LIFETIME_UNIT
        if self.moves and "registered_at" not in self.moves[-1]:
            self.moves[-1].update(registered_at=now, registration_ms=round((now - bul.sent_at) * 1000, 1))
        bul.state, bul.registered_at, bul.ever_registered = "registered", now, True
        log.info("registered %s -> %s for %d s, %.0f ms after the BU", self.hoa, bul.coa, bul.granted,
                 (now - bul.sent_at) * 1000)
        if bul.granted:
            self._arm(max(1.0, bul.granted * 0.8), self._refresh)

    # -- control socket ----------------------------------------------------------
    def bindings(self) -> list[dict[str, object]]:
        bul = self.bul
        left = 0.0
        if bul.state == "registered":
            left = max(0.0, bul.registered_at + bul.granted - self.clock())
        return [{"hoa": self.hoa, "ha": self.ha, "coa": bul.coa, "seq": bul.seq, "lifetime": bul.granted,
                 "lifetime_left": round(left, 1), "state": bul.state, "retransmissions": bul.retransmissions,
                 "last_status": bul.last_status}]

    def status(self) -> dict[str, object]:
        return {"role": "MN", "mode": self.mode.name, "hoa": self.hoa, "ha": self.ha, "where": self.where.where,
                "coa": self.where.coa, "interface": self.where.ifname, "moves": self.moves}

