"""Every kernel object the daemon installs goes through here and is recorded,
so shutdown removes exactly what the daemon added and nothing else.

XFRM states and policies, tunnels, addresses, routes, rules and proxy entries
are packed by mip6d.xfrm.wire / mip6d.rtnl and sent through batch sockets:
inside `with kernel.batch():` they leave in one sendmsg per netlink family at
the end of the block. Lookups and dumps go through pyroute2 (dumps after
whatever is pending). pyroute2's synchronous sockets cannot run inside a
running asyncio loop, so all of this runs in one thread (see `KernelThread`),
except small batches without pyroute2 requests (`KernelThread.now`)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import errno
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from mip6d import rtnl
from mip6d.journal import Entry, Journal
from mip6d.nlbatch import GONE, BatchSocket
from mip6d.xfrm import Migration, Policy, State, XfrmSocket, wire
from mip6d.xfrm import messages as xm
from mip6d.xfrm.api import XfrmError

log = logging.getLogger("mip6d.kernel")
T = TypeVar("T")

IFA_F_NODAD = 0x02
IFA_F_HOMEADDRESS = 0x10
NETLINK_ROUTE, NETLINK_XFRM = 0, 6
TUNNEL_INDEX_BASE = 1 << 20  # ifindexes this daemon gives its tunnels, so a route can follow in the same batch
_CREATE = rtnl.REQUEST | rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL
_NO_GONE: frozenset[int] = frozenset()
_FILTER_GONE = GONE | {errno.EINVAL}  # EINVAL: the qdisc itself is gone ("Parent Qdisc doesn't exists")


class KernelError(RuntimeError):
    """A kernel request failed; the message names the object."""


@dataclasses.dataclass
class _Request:
    protocol: int
    data: bytes
    what: str
    done: Callable[[], None] | None = None  # on success: the ledger learns about it
    failed: Callable[[], None] | None = None
    tolerate: frozenset[int] = _NO_GONE


def _removal(entry: Entry) -> _Request:
    """The request that removes a recorded netlink object; one already gone is fine."""
    return _Request(entry.protocol, entry.request, entry.what, tolerate=GONE)


class Kernel:
    """Kernel operations with an undo ledger."""

    def __init__(self, journal: Journal | None = None) -> None:
        self.journal = journal or Journal()
        self._thread = threading.get_ident()  # the only one where pyroute2's sockets work
        self.ipr = IPRoute()
        self.xfrm = XfrmSocket()
        self._sockets = {NETLINK_XFRM: BatchSocket(NETLINK_XFRM), NETLINK_ROUTE: BatchSocket(NETLINK_ROUTE)}
        self._pending: list[_Request] = []
        self._batching = 0
        self._undo: dict[tuple[Any, ...], Entry] = {}
        self._states: dict[tuple[Any, ...], State] = {}  # recorded SAs, so MIGRATE can re-key them
        self._states_at: dict[tuple[Any, ...], set[tuple[Any, ...]]] = {}  # _placed(SA) -> their keys
        self._links: dict[str, int] = {}  # tunnels this daemon made
        self._pinned: dict[str, int] = {}  # interfaces whose index is looked up once (see pin)
        self._next_index = TUNNEL_INDEX_BASE

    # -- sending --------------------------------------------------------------
    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Requests made in the block leave together at its end; a refusal raises
        KernelError there, after the requests that succeeded have been recorded."""
        self._batching += 1
        try:
            yield
        except BaseException:
            if self._batching == 1:
                self._pending.clear()  # a batch whose building failed is not sent, not even in part
            raise
        finally:
            self._batching -= 1
        if not self._batching:
            self.flush()

    def _send(self, request: _Request) -> None:
        self._pending.append(request)
        if not self._batching:
            self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        failures: list[str] = []
        for protocol, sock in self._sockets.items():
            requests = [r for r in pending if r.protocol == protocol]
            if not requests:
                continue
            try:
                outcomes = sock.request([r.data for r in requests])
            except OSError as err:  # the socket itself failed: the outcomes are unknown
                failures.append(f"{len(requests)} netlink requests ({requests[0].what}, ...): {err}")
                continue
            for request, outcome in zip(requests, outcomes, strict=True):
                if outcome.code == 0 or outcome.code in request.tolerate:
                    if request.done:
                        request.done()
                else:
                    if request.failed:
                        request.failed()
                    failures.append(f"{request.what}: {outcome.describe()}")
        self.journal.sync()
        if failures:
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            raise KernelError(failures[0] + more)

    # -- ledger ---------------------------------------------------------------
    def _record(self, key: tuple[Any, ...], what: str, protocol: int, request: bytes) -> None:
        if key not in self._undo:
            self._keep(key, Entry(what, protocol, request))

    def _keep(self, key: tuple[Any, ...], entry: Entry) -> None:
        self._undo[key] = entry
        self.journal.record(entry)

    def _forget(self, key: tuple[Any, ...]) -> Entry | None:
        entry = self._undo.pop(key, None)
        if entry is not None:
            self.journal.forget(entry, self._undo)
        return entry

    def installed(self) -> list[str]:
        return [undo.what for undo in self._undo.values()]

    def unwind(self) -> list[str]:
        """Remove everything recorded, newest first; returns what could not be removed."""
        failures: list[str] = []
        with contextlib.suppress(KernelError):
            self.flush()

        def send_pending() -> None:
            try:
                self.flush()
            except KernelError as err:
                failures.append(str(err))

        for key in reversed(list(self._undo)):
            entry = self._undo.pop(key)
            if not entry.restore:
                self._pending.append(_removal(entry))
                continue
            send_pending()
            try:
                self._restore(*entry.restore)
            except (OSError, XfrmError, ValueError, IndexError) as err:  # IndexError: a damaged journal entry
                failures.append(f"{entry.what}: {err}")
        send_pending()
        self.journal.reset()
        self._states.clear()
        self._states_at.clear()
        self._links.clear()
        return failures

    def recover(self, left: list[Entry]) -> list[str]:
        """Remove what a daemon that did not stop cleanly recorded in its journal."""
        for serial, entry in enumerate(left):
            self._undo[("journal", serial)] = entry
        return self.unwind()

    def _restore(self, kind: str, *values: str) -> None:
        if kind == "sysctl":
            Path(values[0]).write_text(values[1])
        elif kind == "hthresh6":
            self.xfrm.set_policy_hash_thresholds6(int(values[0]), int(values[1]))
        else:
            raise ValueError(f"unknown value to restore: {kind}")

    def _undo_now(self, key: tuple[Any, ...]) -> None:
        """Remove one recorded netlink object now (or with the batch); a vanished one is fine."""
        entry = self._forget(key)
        if entry is not None:
            self._send(_removal(entry))

    def _do(self, what: str, action: Callable[[], T]) -> T:
        """A pyroute2 request, after everything pending."""
        self._own_thread(what)
        self.flush()
        try:
            return action()
        except (NetlinkError, XfrmError, OSError) as err:
            raise KernelError(f"{what}: {err}") from err

    def _own_thread(self, what: str) -> None:
        """pyroute2 calls made outside the kernel thread fail here, and say which."""
        if threading.get_ident() != self._thread:
            raise KernelError(f"{what}: a pyroute2 request outside the kernel thread")

    # -- XFRM -----------------------------------------------------------------
    @staticmethod
    def _state_key(state: State) -> tuple[Any, ...]:
        return ("state", state.dst, state.spi, state.proto, state.src)

    def add_state(self, state: State) -> None:
        what = f"xfrm state {state.src} -> {state.dst} proto {state.proto} spi {state.spi:#x}"
        self._send(_Request(NETLINK_XFRM, wire.state(state, xm.XFRM_MSG_NEWSA, _CREATE), what,
                            done=lambda: self._record_state(state, what)))

    @staticmethod
    def _placed(src: str, dst: str, proto: int, mode: int, reqid: int) -> tuple[Any, ...]:
        """What a MIGRATE names an SA by; indexed, since a home agent migrates per binding."""
        return (src, dst, proto, mode, reqid)

    def _record_state(self, state: State, what: str) -> None:
        key = self._state_key(state)
        self._drop_state(key)
        self._states[key] = state
        self._states_at.setdefault(self._placed(state.src, state.dst, state.proto, state.mode, state.reqid),
                                   set()).add(key)
        self._record(key, what, NETLINK_XFRM,
                     wire.sa_id(state.dst, state.spi, state.proto, state.src, xm.XFRM_MSG_DELSA, rtnl.REQUEST))

    def put_state(self, state: State) -> None:
        """Add, or update in place if this daemon added it before (a new CoA)."""
        if self._state_key(state) in self._undo:
            what = f"xfrm state update {state.src} -> {state.dst} proto {state.proto} coa {state.coaddr}"
            self._send(_Request(NETLINK_XFRM, wire.state(state, xm.XFRM_MSG_UPDSA, rtnl.REQUEST), what))
        else:
            self.add_state(state)

    def installed_state_at(self, src: str, dst: str, proto: int, mode: int, reqid: int) -> bool:
        """Whether this daemon installed (or moved) an SA there: no dump needed to know."""
        return bool(self._states_at.get(self._placed(src, dst, proto, mode, reqid)))

    def _drop_state(self, key: tuple[Any, ...]) -> None:
        state = self._states.pop(key, None)
        if state is not None:
            placed = self._placed(state.src, state.dst, state.proto, state.mode, state.reqid)
            keys = self._states_at[placed]
            keys.discard(key)
            if not keys:
                del self._states_at[placed]

    def delete_state(self, state: State) -> None:
        key = self._state_key(state)
        self._forget(key)
        self._drop_state(key)
        self._send(_Request(NETLINK_XFRM, wire.sa_id(state.dst, state.spi, state.proto, state.src,
                                                     xm.XFRM_MSG_DELSA, rtnl.REQUEST),
                            f"xfrm state delete {state.src} -> {state.dst} proto {state.proto}", tolerate=GONE))

    def state_exists(self, dst: str, spi: int, proto: int, src: str) -> bool:
        self._own_thread("xfrm state lookup")
        self.flush()
        try:
            self.xfrm.get_state(dst, spi, proto, src)
        except XfrmError:
            return False
        return True

    def dump_states(self) -> list[State]:
        return self._do("xfrm state dump", self.xfrm.dump_states)

    @staticmethod
    def _policy_key(policy: Policy) -> tuple[Any, ...]:
        return ("policy", policy.selector.key(), policy.dir, policy.sub)

    @staticmethod
    def _policy_id(policy: Policy, msg_type: int) -> bytes:
        return wire.policy_id(policy.selector, policy.dir, policy.sub, msg_type, rtnl.REQUEST)

    def add_policy(self, policy: Policy) -> None:
        sel = policy.selector
        what = f"xfrm policy {sel.src} -> {sel.dst} proto {sel.proto} dir {policy.dir}{' sub' if policy.sub else ''}"
        undo = self._policy_id(policy, xm.XFRM_MSG_DELPOLICY)
        self._send(_Request(NETLINK_XFRM, wire.policy(policy, xm.XFRM_MSG_NEWPOLICY, _CREATE), what,
                            done=lambda: self._record(self._policy_key(policy), what, NETLINK_XFRM, undo)))

    def delete_policy(self, policy: Policy) -> None:
        self._forget(self._policy_key(policy))
        self._send(_Request(NETLINK_XFRM, self._policy_id(policy, xm.XFRM_MSG_DELPOLICY),
                            f"xfrm policy delete {policy.selector.src} -> {policy.selector.dst}", tolerate=GONE))

    def migrate(self, policy: Policy, migrations: list[Migration],
                done: Callable[[], object] | None = None) -> None:
        """`done` runs once the kernel has accepted this MIGRATE."""
        def moved() -> None:
            self._rekey(migrations)
            if done:
                done()

        self._send(_Request(NETLINK_XFRM, wire.migrate(policy.selector, policy.dir, migrations, policy.sub,
                                                       rtnl.REQUEST),
                            f"xfrm migrate {policy.selector.src} -> {policy.selector.dst}", done=moved))

    def _rekey(self, migrations: list[Migration]) -> None:
        """The SAs we installed now live at their new addresses."""
        for move in migrations:
            placed = self._placed(move.old_src, move.old_dst, move.proto, move.mode, move.reqid)
            for key in list(self._states_at.pop(placed, ())):
                state = self._states.pop(key)
                self._forget(key)
                moved = dataclasses.replace(state, src=move.new_src, dst=move.new_dst)
                self._record_state(moved, f"xfrm state {moved.src} -> {moved.dst} spi {moved.spi:#x} (migrated)")

    # -- links, addresses, routes, rules, proxy ND, sysctls --------------------
    def pin(self, ifname: str) -> None:
        """Look `ifname` up once from now on: a home agent's home interface, whose
        index its proxy entries need on every first registration."""
        self._pinned[ifname] = self.ifindex(ifname)

    def _lookup(self, ifname: str) -> int | None:
        """A link's index; no flush, since only tunnels made in this batch could be
        pending, and those are in self._links."""
        if ifname in self._links:
            return self._links[ifname]
        if ifname in self._pinned:
            return self._pinned[ifname]
        self._own_thread(f"interface {ifname}")
        try:
            found = self.ipr.link_lookup(ifname=ifname)
        except (NetlinkError, OSError) as err:
            raise KernelError(f"interface {ifname}: {err}") from err
        return int(found[0]) if found else None

    def ifindex(self, ifname: str) -> int:
        index = self._lookup(ifname)
        if index is None:
            raise KernelError(f"interface {ifname}: no such device")
        return index

    def link_exists(self, ifname: str) -> bool:
        return self._lookup(ifname) is not None

    def add_tunnel(self, name: str, local: str, remote: str) -> int:
        """An ip6ip6 tunnel, up, without a link-local address or multicast route, at an
        ifindex chosen here (see rtnl.new_ip6tnl, no_link_local and del_multicast_route)."""
        return self._add_link(name, rtnl.new_ip6tnl, f"ip6tnl {name} {local} -> {remote}", local, remote)

    def add_flow_tunnel(self, name: str, guarded: bool = False) -> int:
        """The namespace's flow-based ip6ip6 device (rtnl.new_flow_ip6tnl), set up as add_tunnel's;
        `guarded`: with clsact and a filter that drops what no put_admit_filter admits, in
        place before the device comes up. Both go with the device: no ledger entries of their own."""
        return self._add_link(name, rtnl.new_flow_ip6tnl, f"ip6tnl {name} external",
                              before_up=self._guard if guarded else None)

    def _guard(self, name: str, index: int) -> None:
        self._send(_Request(NETLINK_ROUTE, rtnl.new_clsact(index), f"qdisc clsact on {name}"))
        self._send(_Request(NETLINK_ROUTE, rtnl.new_drop_filter(index), f"ingress drop filter on {name}"))

    def _add_link(self, name: str, message: Callable[..., bytes], what: str, *endpoints: str,
                  before_up: Callable[[str, int], None] | None = None) -> int:
        index = self._next_index
        self._next_index += 1
        self._links[name] = index
        self._send(_Request(
            NETLINK_ROUTE, message(name, index, *endpoints), what,
            done=lambda: self._record(("link", name), f"tunnel {name}", NETLINK_ROUTE, rtnl.del_link(index)),
            failed=lambda: self._links.pop(name, None)))
        self._send(_Request(NETLINK_ROUTE, rtnl.no_link_local(index), f"addrgenmode none on {name}"))
        if before_up:
            before_up(name, index)
        self._send(_Request(NETLINK_ROUTE, rtnl.set_up(index), f"{name} up"))
        # absent is what is wanted (e.g. IPv6 disabled on new devices gives none)
        self._send(_Request(NETLINK_ROUTE, rtnl.del_multicast_route(index), f"ff00::/8 route of {name}",
                            tolerate=GONE))
        return index

    def move_tunnel(self, name: str, local: str, remote: str) -> None:
        self._send(_Request(NETLINK_ROUTE, rtnl.move_ip6tnl(self.ifindex(name), local, remote),
                            f"ip6tnl {name} {local} -> {remote}"))

    def delete_link(self, name: str) -> None:
        self._forget(("link", name))
        index = self._links.pop(name, None)
        if index is None:
            index = self._lookup(name)
            if index is None:
                return
        self._send(_Request(NETLINK_ROUTE, rtnl.del_link(index), f"delete {name}", tolerate=GONE))

    def put_tunnel_route(self, dst: str, name: str, encap: rtnl.Ip6Encap,
                         failed: Callable[[], None] | None = None) -> None:
        """Add or replace a route through this daemon's device NAME. It goes with the
        device, so it has no ledger entry (nor journal line) of its own."""
        self._send(_Request(NETLINK_ROUTE, rtnl.replace_route(dst, self._links[name], encap=encap),
                            f"route {dst} encap ip6 dst {encap.dst} dev {name}", failed=failed))

    def delete_tunnel_route(self, dst: str, name: str) -> None:
        self._delete_on_link(name, lambda index: rtnl.del_route(dst, index), f"delete route {dst} dev {name}", GONE)

    def _delete_on_link(self, name: str, message: Callable[[int], bytes], what: str,
                        tolerate: frozenset[int]) -> None:
        """A removal from this daemon's device NAME; none once the device is gone with the ledger."""
        index = self._links.get(name)
        if index is not None:
            self._send(_Request(NETLINK_ROUTE, message(index), what, tolerate=tolerate))

    def put_admit_filter(self, name: str, handle: int, inner_src: str, outer_src: str,
                         done: Callable[[], None] | None = None) -> None:
        """Add or replace filter HANDLE on NAME's ingress (rtnl.put_admit_filter)."""
        self._send(_Request(NETLINK_ROUTE, rtnl.put_admit_filter(self._links[name], handle, inner_src, outer_src),
                            f"ingress filter {handle} on {name}: {inner_src} from {outer_src}", done=done))

    def delete_admit_filter(self, name: str, handle: int) -> None:
        self._delete_on_link(name, lambda index: rtnl.del_admit_filter(index, handle),
                             f"delete ingress filter {handle} on {name}", _FILTER_GONE)

    def add_address(self, ifname: str, address: str, prefixlen: int, flags: int = IFA_F_NODAD) -> None:
        index = self.ifindex(ifname)
        key, what = ("addr", address, ifname), f"address {address}/{prefixlen} on {ifname}"
        undo = rtnl.del_address(index, address, prefixlen)
        self._send(_Request(NETLINK_ROUTE, rtnl.new_address(index, address, prefixlen, flags), what,
                            done=lambda: self._record(key, what, NETLINK_ROUTE, undo)))

    def delete_address(self, ifname: str, address: str, prefixlen: int) -> None:
        self._undo_now(("addr", address, ifname))

    def add_route(self, dst: str, ifname: str, table: int = 254, gateway: str | None = None,
                  metric: int = 1024, encap: rtnl.Ip6Encap | None = None) -> None:
        """Add or replace (a new gateway or encapsulation for the same destination)."""
        oif = self.ifindex(ifname)
        key = ("route", dst, table, metric)
        via = f" via {gateway}" if gateway else f" encap ip6 dst {encap.dst}" if encap else ""
        what = f"route {dst}{via} dev {ifname} table {table}"
        undo = rtnl.del_route(dst, oif, table, metric)
        self._send(_Request(NETLINK_ROUTE, rtnl.replace_route(dst, oif, table, metric, gateway, encap), what,
                            done=lambda: self._record(key, what, NETLINK_ROUTE, undo)))

    def delete_route(self, dst: str, table: int = 254, metric: int = 1024) -> None:
        self._undo_now(("route", dst, table, metric))

    def add_rule(self, src: str, table: int, priority: int) -> None:
        key, what = ("rule", src, table, priority), f"rule from {src} lookup {table}"
        undo = rtnl.del_rule(src, table, priority)
        self._send(_Request(NETLINK_ROUTE, rtnl.new_rule(src, table, priority), what,
                            done=lambda: self._record(key, what, NETLINK_ROUTE, undo)))

    def delete_rule(self, src: str, table: int, priority: int) -> None:
        self._undo_now(("rule", src, table, priority))

    def add_proxy(self, address: str, ifname: str) -> None:
        index = self.ifindex(ifname)
        key, what = ("proxy", address, ifname), f"proxy ND {address} on {ifname}"
        undo = rtnl.del_proxy(address, index)
        self._send(_Request(NETLINK_ROUTE, rtnl.replace_proxy(address, index), what,
                            done=lambda: self._record(key, what, NETLINK_ROUTE, undo)))

    def delete_proxy(self, address: str, ifname: str) -> None:
        self._undo_now(("proxy", address, ifname))

    def set_policy_hash_thresholds6(self, lbits: int, rbits: int) -> None:
        """Hash IPv6 policies from these prefix lengths (local, remote) on, and restore the
        old thresholds at shutdown. Only lookup speed depends on them, not the policies a
        lookup finds, so a kernel that refuses is logged and the daemon goes on."""
        try:
            old = self.xfrm.policy_hash_thresholds6()
        except (XfrmError, OSError) as err:
            log.warning("xfrm policy hthresh6 not read, so not set: %s", err)
            return
        if old == (lbits, rbits) or ("hthresh6",) in self._undo:
            return
        # journaled before the change: a crash right after it still finds the old value
        self._keep_restore(("hthresh6",), f"xfrm policy hthresh6 {lbits} {rbits} (was {old[0]} {old[1]})",
                           ("hthresh6", str(old[0]), str(old[1])))
        try:
            self.xfrm.set_policy_hash_thresholds6(lbits, rbits)
        except (XfrmError, OSError) as err:
            self._forget(("hthresh6",))
            log.warning("xfrm policy hthresh6 %d %d not set (policies stay on the inexact list): %s",
                        lbits, rbits, err)

    def set_sysctl(self, key: str, value: str) -> None:
        """Set a sysctl and restore its old value at shutdown."""
        path = Path("/proc/sys") / key.replace(".", "/")
        old = path.read_text().strip()
        if old != value:
            self._keep_restore(("sysctl", key), f"sysctl {key}={value} (was {old})", ("sysctl", str(path), old))
            path.write_text(value)

    def _keep_restore(self, key: tuple[Any, ...], what: str, restore: tuple[str, ...]) -> None:
        """Record a value to restore, first on disk, unless an older one is recorded."""
        if key not in self._undo:
            self._keep(key, Entry(what, restore=restore))
            self.journal.sync()

    def close(self) -> None:
        self.ipr.close()
        self.xfrm.close()
        for sock in self._sockets.values():
            sock.close()


class KernelThread:
    """Runs `Kernel` calls in one thread, awaitable from the event loop; one call at a
    time, in this thread or (`now`) in the loop's."""

    def __init__(self, journal: Journal | None = None) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kernel")
        self.kernel: Kernel = self._pool.submit(Kernel, journal).result()
        # held by the call that runs: a coroutine that awaited one and was cancelled
        # (stop() cancels the expiry loop) leaves it running here
        self._exclusive = threading.Lock()

    def _exclusively(self, func: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        with self._exclusive:
            return func(*args, **kwargs)

    async def __call__(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._exclusively, func, args, kwargs)

    def now(self, func: Callable[..., T], *args: Any) -> T:
        """Run a call in the caller's thread: a binding's batch costs less than the hop
        to the kernel thread and back (two thread wake-ups). Only for calls that make no
        pyroute2 request (Kernel refuses them there). A kernel-thread call that is
        running finishes first: both use the same batch sockets."""
        return self._exclusively(func, args, {})

    def run(self, func: Callable[..., T], *args: Any) -> T:
        """Blocking call (start-up and shutdown, outside the loop)."""
        return self._pool.submit(self._exclusively, func, args, {}).result()

    def close(self) -> None:
        self._pool.submit(self.kernel.close).result()
        self._pool.shutdown()
