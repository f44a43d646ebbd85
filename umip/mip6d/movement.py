"""Movement detection from netlink address and link events.

The mobile node is where its usable global addresses say it is: an address
(other than the HoA) inside the home prefix means home; otherwise the newest
global address on the most preferred interface is the care-of address. SLAAC
addresses appear after a router advertisement and vanish with the link."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.rtnl import RTMGRP_IPV6_IFADDR, RTMGRP_LINK

log = logging.getLogger("mip6d.movement")

IFA_F_TENTATIVE = 0x40
IFA_F_DADFAILED = 0x08
IFA_F_HOMEADDRESS = 0x10
RT_SCOPE_UNIVERSE = 0
IFF_UP, IFF_LOWER_UP = 0x1, 0x10000


@dataclass(frozen=True)
class Attachment:
    where: str  # "home", "away" or "detached"
    ifname: str | None = None
    coa: str | None = None
    home_link_address: str | None = None  # at home: an autoconfigured address other than the HoA
    usable_since: float = field(default=0.0, compare=False)  # when its address was seen usable (monotonic)


@dataclass
class _Address:
    ifname: str
    address: str
    order: int


class MovementDetector:
    """Calls `on_move` with each new Attachment; events are coalesced briefly so
    a burst (link up, address, route) yields one decision."""

    def __init__(self, interfaces: dict[str, int], hoa: str, home_prefix: ipaddress.IPv6Network,
                 on_move: Callable[[Attachment], Awaitable[None]], settle: float = 0.02) -> None:
        self.preference = interfaces  # ifname -> preference (1 is best)
        self.hoa = hoa
        self.home_prefix = home_prefix
        self.on_move = on_move
        self.settle = settle
        self.current = Attachment("detached")
        self._addresses: dict[tuple[str, str], _Address] = {}
        self._up: dict[str, bool] = {}
        self._order = 0
        self._ipr: AsyncIPRoute | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: asyncio.TimerHandle | None = None
        self._names: dict[int, str] = {}
        self._moving = asyncio.Lock()
        self._usable_since = 0.0

    async def start(self) -> None:
        self._ipr = AsyncIPRoute()
        await self._ipr.setup_endpoint()
        await self._ipr.bind(groups=RTMGRP_IPV6_IFADDR | RTMGRP_LINK)
        dump = AsyncIPRoute()
        await dump.setup_endpoint()
        async for link in await dump.link("dump"):
            self._link(link)
        async for addr in await dump.addr("dump", family=10):
            self._addr(addr)
        dump.close()
        self._task = asyncio.create_task(self._listen())
        await self._decide()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if self._ipr:
            self._ipr.close()

    async def _listen(self) -> None:
        assert self._ipr is not None
        while True:
            async for msg in self._ipr.get():
                event = msg.get("event")
                if event in ("RTM_NEWLINK", "RTM_DELLINK"):
                    self._link(msg)
                elif event in ("RTM_NEWADDR", "RTM_DELADDR"):
                    if self._addr(msg):
                        self._usable_since = self._usable_since or time.monotonic()
                        self._schedule(0)
                        continue
                else:
                    continue
                self._schedule(self.settle)

    def _schedule(self, delay: float) -> None:
        """A decision after `delay`; a later event postpones one still waiting, not one due now."""
        loop = asyncio.get_running_loop()
        if self._pending:
            if self._pending.when() <= loop.time():
                return
            self._pending.cancel()
        self._pending = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._pending = None
        asyncio.get_running_loop().create_task(self._decide())

    def _link(self, msg: dict) -> None:  # type: ignore[type-arg]
        name = msg.get_attr("IFLA_IFNAME")  # type: ignore[attr-defined]
        if name is None:
            return
        self._names[msg["index"]] = name
        up = msg.get("event") != "RTM_DELLINK" and bool(msg["flags"] & IFF_UP and msg["flags"] & IFF_LOWER_UP)
        self._up[name] = up
        if not up:
            for key in [k for k in self._addresses if k[0] == name]:
                del self._addresses[key]

    def _addr(self, msg: dict) -> bool:  # type: ignore[type-arg]
        """Records an address event; True if it made a new address usable."""
        ifname = self._names.get(msg["index"])
        address = msg.get_attr("IFA_ADDRESS")  # type: ignore[attr-defined]
        if ifname not in self.preference or address is None:
            return False
        flags = msg.get_attr("IFA_FLAGS") or msg["flags"]  # type: ignore[attr-defined]
        key = (ifname, address)
        usable = (msg.get("event") == "RTM_NEWADDR" and msg["scope"] == RT_SCOPE_UNIVERSE
                  and not flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED | IFA_F_HOMEADDRESS) and address != self.hoa)
        if usable and key not in self._addresses:
            self._order += 1
            self._addresses[key] = _Address(ifname, address, self._order)
            return True
        if not usable:
            self._addresses.pop(key, None)
        return False

    def locate(self) -> Attachment:
        candidates = [a for a in self._addresses.values() if self._up.get(a.ifname)]
        home = [a for a in candidates if ipaddress.IPv6Address(a.address) in self.home_prefix]
        if home:
            return Attachment("home", home[0].ifname, home_link_address=home[0].address)
        if not candidates:
            return Attachment("detached")
        best = min(candidates, key=lambda a: (self.preference[a.ifname], -a.order))
        return Attachment("away", best.ifname, best.address)

    async def _decide(self) -> None:
        async with self._moving:
            where = replace(self.locate(), usable_since=self._usable_since)
            self._usable_since = 0.0
            if where == self.current:
                return
            log.info("movement: %s -> %s", self.current, where)
            self.current = where
            await self.on_move(where)
