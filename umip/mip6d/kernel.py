"""Every kernel object the daemon installs goes through here and is recorded,
so shutdown removes exactly what the daemon added and nothing else.

pyroute2's synchronous sockets cannot run inside a running asyncio loop, so
all of this runs in one dedicated thread (see `KernelThread`)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import errno
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from mip6d.xfrm import Migration, Policy, State, XfrmSocket
from mip6d.xfrm.api import XfrmError

log = logging.getLogger("mip6d.kernel")
T = TypeVar("T")

IFA_F_NODAD = 0x02
IFA_F_HOMEADDRESS = 0x10
IP6_TNL_F_IGN_ENCAP_LIMIT = 0x1
IPPROTO_IPV6 = 41
GONE = {errno.ENOENT, errno.ESRCH, errno.ENODEV, errno.EADDRNOTAVAIL}


class KernelError(RuntimeError):
    """A kernel request failed; the message names the object."""


def _gone(err: BaseException) -> bool:
    code = getattr(err, "code", None) or getattr(err, "errno", None)
    return isinstance(code, int) and abs(code) in GONE


class Kernel:
    """Synchronous kernel operations with an undo ledger."""

    def __init__(self) -> None:
        self.ipr = IPRoute()
        self.xfrm = XfrmSocket()
        self._undo: dict[tuple[Any, ...], tuple[str, Callable[[], object]]] = {}
        self._states: dict[tuple[Any, ...], State] = {}  # recorded SAs, so MIGRATE can re-key them

    # -- ledger ---------------------------------------------------------------
    def _record(self, key: tuple[Any, ...], what: str, undo: Callable[[], object]) -> None:
        self._undo.setdefault(key, (what, undo))

    def _forget(self, key: tuple[Any, ...]) -> None:
        self._undo.pop(key, None)

    def installed(self) -> list[str]:
        return [what for what, _ in self._undo.values()]

    def unwind(self) -> list[str]:
        """Remove everything recorded, newest first; returns what could not be removed."""
        failures = []
        for key in reversed(list(self._undo)):
            what, undo = self._undo.pop(key)
            try:
                undo()
            except (NetlinkError, XfrmError, OSError) as err:
                if not _gone(err):
                    failures.append(f"{what}: {err}")
        return failures

    def _undo_now(self, key: tuple[Any, ...]) -> None:
        """Remove one recorded object now (a vanished object is fine)."""
        entry = self._undo.pop(key, None)
        if entry:
            try:
                entry[1]()
            except (NetlinkError, XfrmError, OSError) as err:
                if not _gone(err):
                    raise KernelError(f"{entry[0]}: {err}") from err

    def _do(self, what: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except (NetlinkError, XfrmError, OSError) as err:
            raise KernelError(f"{what}: {err}") from err

    # -- XFRM -----------------------------------------------------------------
    @staticmethod
    def _state_key(state: State) -> tuple[Any, ...]:
        return ("state", state.dst, state.spi, state.proto, state.src)

    def add_state(self, state: State) -> None:
        what = f"xfrm state {state.src} -> {state.dst} proto {state.proto} spi {state.spi:#x}"
        self._do(what, lambda: self.xfrm.add_state(state))
        self._record_state(state, what)

    def _record_state(self, state: State, what: str) -> None:
        key = self._state_key(state)
        self._states[key] = state
        self._record(key, what, lambda: self.xfrm.delete_state(state.dst, state.spi, state.proto, state.src))

    def put_state(self, state: State) -> None:
        """Add, or update in place if this daemon added it before (a new CoA)."""
        if self._state_key(state) in self._undo:
            what = f"xfrm state update {state.src} -> {state.dst} proto {state.proto} coa {state.coaddr}"
            self._do(what, lambda: self.xfrm.update_state(state))
        else:
            self.add_state(state)

    def delete_state(self, state: State) -> None:
        self._forget(self._state_key(state))
        self._states.pop(self._state_key(state), None)
        try:
            self.xfrm.delete_state(state.dst, state.spi, state.proto, state.src)
        except XfrmError as err:
            if not _gone(err):
                raise KernelError(f"xfrm state delete {state.src} -> {state.dst}: {err}") from err

    def state_exists(self, dst: str, spi: int, proto: int, src: str) -> bool:
        try:
            self.xfrm.get_state(dst, spi, proto, src)
        except XfrmError:
            return False
        return True

    @staticmethod
    def _policy_key(policy: Policy) -> tuple[Any, ...]:
        return ("policy", dataclasses.astuple(policy.selector), policy.dir, policy.sub)

    def add_policy(self, policy: Policy) -> None:
        sel = policy.selector
        what = f"xfrm policy {sel.src} -> {sel.dst} proto {sel.proto} dir {policy.dir}{' sub' if policy.sub else ''}"
        self._do(what, lambda: self.xfrm.add_policy(policy))
        self._record(self._policy_key(policy), what,
                     lambda: self.xfrm.delete_policy(policy.selector, policy.dir, policy.sub))

    def delete_policy(self, policy: Policy) -> None:
        self._forget(self._policy_key(policy))
        try:
            self.xfrm.delete_policy(policy.selector, policy.dir, policy.sub)
        except XfrmError as err:
            if not _gone(err):
                raise KernelError(f"xfrm policy delete {policy.selector.src}: {err}") from err

    def migrate(self, policy: Policy, migrations: list[Migration]) -> None:
        self._do(f"xfrm migrate {policy.selector.src} -> {policy.selector.dst}",
                 lambda: self.xfrm.migrate(policy.selector, policy.dir, migrations, sub=policy.sub))
        for move in migrations:  # the SAs we installed now live at their new addresses
            for key, state in list(self._states.items()):
                if (state.src, state.dst, state.proto, state.mode, state.reqid) == (
                        move.old_src, move.old_dst, move.proto, move.mode, move.reqid):
                    self._states.pop(key)
                    self._undo.pop(key, None)
                    moved = dataclasses.replace(state, src=move.new_src, dst=move.new_dst)
                    self._record_state(moved, f"xfrm state {moved.src} -> {moved.dst} spi {moved.spi:#x} (migrated)")

    # -- links, addresses, routes, rules, proxy ND, sysctls --------------------
    def ifindex(self, ifname: str) -> int:
        found = self.ipr.link_lookup(ifname=ifname)
        if not found:
            raise KernelError(f"interface {ifname}: no such device")
        return int(found[0])

    def add_tunnel(self, name: str, local: str, remote: str) -> int:
        """An ip6ip6 tunnel without the encapsulation-limit option (8 bytes per packet)."""
        self._do(f"ip6tnl {name} {local} -> {remote}", lambda: self.ipr.link(
            "add", ifname=name, kind="ip6tnl", ip6tnl_local=local, ip6tnl_remote=remote,
            ip6tnl_proto=IPPROTO_IPV6, ip6tnl_flags=IP6_TNL_F_IGN_ENCAP_LIMIT))
        index = self.ifindex(name)
        self._record(("link", name), f"tunnel {name}", lambda: self.ipr.link("del", index=index))
        self._do(f"ip6tnl {name} up", lambda: self.ipr.link("set", index=index, state="up"))
        return index

    def move_tunnel(self, name: str, local: str, remote: str) -> None:
        index = self.ifindex(name)
        self._do(f"ip6tnl {name} {local} -> {remote}", lambda: self.ipr.link(
            "set", index=index, kind="ip6tnl", ip6tnl_local=local, ip6tnl_remote=remote,
            ip6tnl_proto=IPPROTO_IPV6, ip6tnl_flags=IP6_TNL_F_IGN_ENCAP_LIMIT))

    def delete_link(self, name: str) -> None:
        self._forget(("link", name))
        found = self.ipr.link_lookup(ifname=name)
        if found:
            self.ipr.link("del", index=found[0])

    def add_address(self, ifname: str, address: str, prefixlen: int, flags: int = IFA_F_NODAD) -> None:
        index = self.ifindex(ifname)
        self._do(f"address {address}/{prefixlen} on {ifname}", lambda: self.ipr.addr(
            "add", index=index, address=address, prefixlen=prefixlen, flags=flags))
        self._record(("addr", address, ifname), f"address {address} on {ifname}",
                     lambda: self.ipr.addr("del", index=index, address=address, prefixlen=prefixlen))

    def delete_address(self, ifname: str, address: str, prefixlen: int) -> None:
        self._undo_now(("addr", address, ifname))

    def add_route(self, dst: str, ifname: str, table: int = 254, gateway: str | None = None,
                  metric: int = 1024) -> None:
        index = self.ifindex(ifname)
        spec: dict[str, Any] = {"dst": dst, "oif": index, "table": table, "priority": metric, "family": 10}
        if gateway:
            spec["gateway"] = gateway
        self._do(f"route {dst} dev {ifname} table {table}", lambda: self.ipr.route("replace", **spec))
        self._record(("route", dst, table, metric), f"route {dst} table {table}",
                     lambda: self.ipr.route("del", **spec))

    def delete_route(self, dst: str, table: int = 254, metric: int = 1024) -> None:
        self._undo_now(("route", dst, table, metric))

    def add_rule(self, src: str, table: int, priority: int) -> None:
        spec = {"family": 10, "src": src, "src_len": 128, "table": table, "priority": priority}
        self._do(f"rule from {src} lookup {table}", lambda: self.ipr.rule("add", **spec))
        self._record(("rule", src, table, priority), f"rule from {src} lookup {table}",
                     lambda: self.ipr.rule("del", **spec))

    def delete_rule(self, src: str, table: int, priority: int) -> None:
        self._undo_now(("rule", src, table, priority))

    def add_proxy(self, address: str, ifname: str) -> None:
        index = self.ifindex(ifname)
        spec = {"dst": address, "ifindex": index, "flags": 0x08, "family": 10}  # NTF_PROXY
        self._do(f"proxy ND {address} on {ifname}", lambda: self.ipr.neigh("replace", **spec))
        self._record(("proxy", address, ifname), f"proxy ND {address} on {ifname}",
                     lambda: self.ipr.neigh("del", **spec))

    def delete_proxy(self, address: str, ifname: str) -> None:
        self._undo_now(("proxy", address, ifname))

    def set_sysctl(self, key: str, value: str) -> None:
        """Set a sysctl and restore its old value at shutdown."""
        path = Path("/proc/sys") / key.replace(".", "/")
        old = path.read_text().strip()
        if old != value:
            path.write_text(value)
            self._record(("sysctl", key), f"sysctl {key}={value} (was {old})", lambda: path.write_text(old))

    def close(self) -> None:
        self.ipr.close()
        self.xfrm.close()


class KernelThread:
    """Runs `Kernel` calls in one thread, awaitable from the event loop."""

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kernel")
        self.kernel: Kernel = self._pool.submit(Kernel).result()

    async def __call__(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: func(*args, **kwargs))

    def run(self, func: Callable[..., T], *args: Any) -> T:
        """Blocking call (start-up and shutdown, outside the loop)."""
        return self._pool.submit(func, *args).result()

    def close(self) -> None:
        self._pool.submit(self.kernel.close).result()
        self._pool.shutdown()
