"""One running mip6d: the role (MN or HA), its kernel ledger, its control
socket, and the signals: SIGHUP reloads, SIGTERM/SIGINT shut down cleanly."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import signal
from dataclasses import dataclass

from mip6d import __version__, ipsec
from mip6d.config import Config, ConfigError, Role, load, load_keys
from mip6d.control import ControlServer
from mip6d.ha import HomeAgent
from mip6d.journal import FileJournal
from mip6d.kernel import Kernel, KernelThread
from mip6d.mn import MobileNode
from mip6d.xfrm import Selector, State
from mip6d.xfrm.api import XFRM_MODE_TRANSPORT

log = logging.getLogger("mip6d")
# what a SIGHUP may change without restarting the role
LIVE_FIELDS = {"debug_level", "debug_log_file", "ha_max_binding_life", "mn_max_ha_binding_life",
               "binding_acl_policies", "default_binding_acl_policy", "files", "locations"}


@dataclass
class Options:
    config_path: str
    keys_path: str | None
    control_path: str
    role: Role | None = None


def mode_of(config: Config) -> ipsec.Mode:
    return ipsec.IRO if config.use_mn_ha_iro else ipsec.CLASSIC


def bound_to_addresses(state: State) -> State:
    """A transport SA from a keys file carries only its own addresses, so a
    packet with another HoA under it fails the kernel's selector check."""
    if state.mode == XFRM_MODE_TRANSPORT and state.selector == Selector():
        return dataclasses.replace(state, selector=Selector.host(state.src, state.dst))
    return state


class Daemon:
    def __init__(self, options: Options, config: Config, keys: list[State], journal: FileJournal) -> None:
        self.options = options
        self.journal = journal
        self.config = config
        self.keys = [bound_to_addresses(s) for s in keys]
        self.kernel: KernelThread | None = None
        self.role: HomeAgent | MobileNode | None = None
        self.control = ControlServer(options.control_path, {"status": self._status, "bindings": self._bindings})
        self._stop = asyncio.Event()

    def _make_role(self, kernel: KernelThread) -> HomeAgent | MobileNode:
        if self.config.role is Role.HA:
            return HomeAgent(self.config, kernel, mode_of(self.config))
        if self.config.role is Role.MN:
            return MobileNode(self.config, kernel, mode_of(self.config))
        raise ConfigError(self.config.locations.get("NodeConfig", _nowhere(self.options)),
                          "NodeConfig CN: the correspondent node role is not implemented yet")

    def _install_keys(self, k: Kernel) -> None:
        with k.batch():
            for state in self.keys:
                k.add_state(state)

    def _recover(self) -> None:
        """Remove what a daemon killed on this control socket left behind."""
        left = self.journal.leftovers()
        if left:
            kernel = KernelThread(self.journal)
            try:
                failures = kernel.run(kernel.kernel.recover, left)
            finally:
                kernel.close()
            but = ", but for the failures below" if failures else ""
            log.warning("removed or restored the %d objects left by a mip6d that did not stop cleanly "
                        "(journal %s)%s", len(left), self.journal.path, but)
            for failure in failures:
                log.error("recovery: %s", failure)
        self.journal.reset()

    async def _start_role(self) -> None:
        self.kernel = KernelThread(self.journal)
        await self.kernel(self._install_keys, self.kernel.kernel)
        self.role = self._make_role(self.kernel)
        await self.role.start()
        # what start-up built (the configuration, the peers, the ledger of the keys) lives as
        # long as the role: out of the collector's sight, full collections do not walk it
        gc.freeze()

    async def _stop_role(self) -> None:
        if self.role:
            if isinstance(self.role, MobileNode):
                await self.role.deregister()
            await self.role.stop()
            self.role = None
        if self.kernel:
            left = self.kernel.run(self.kernel.kernel.unwind)
            for failure in left:
                log.error("cleanup: %s", failure)
            self.kernel.close()
            self.kernel = None
        gc.unfreeze()  # the role's objects may be garbage now (a reload starts another)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))
        recovered = False  # until then the journal is kept, for the next start to try again
        try:
            self._recover()
            recovered = True
            await self._start_role()
            await self.control.start()
            log.info("mip6d %s running as %s (%s mode)", __version__, self.config.role.value,
                     mode_of(self.config).name)
            await self._stop.wait()
            log.info("shutting down")
        finally:
            await self.control.stop()
            await self._stop_role()
            self.journal.close(remove=recovered)

    async def reload(self) -> None:
        try:
            new = load(self.options.config_path, role=self.options.role)
            keys = [bound_to_addresses(s) for s in load_keys(self.options.keys_path)] if self.options.keys_path \
                else []
        except ConfigError as err:
            log.error("reload refused, keeping the running configuration: %s", err)
            return
        changed = {f.name for f in dataclasses.fields(Config)
                   if getattr(new, f.name) != getattr(self.config, f.name)}
        if keys == self.keys and changed <= LIVE_FIELDS:
            self.config = new
            if self.role:
                self.role.reconfigure(new)
            log.info("configuration reloaded in place (%s)", ", ".join(sorted(changed - {"files", "locations"}))
                     or "no change")
            return
        log.info("configuration reloaded; restarting the %s role (%s changed)", new.role.value,
                 ", ".join(sorted(changed)) or "keys")
        await self._stop_role()
        self.config, self.keys = new, keys
        await self._start_role()

    def _status(self) -> dict[str, object]:
        return self.role.status() if self.role else {"role": None}

    def _bindings(self) -> list[dict[str, object]]:
        return self.role.bindings() if self.role else []


def _nowhere(options: Options):  # type: ignore[no-untyped-def]
    from mip6d.config import Location

    return Location(options.config_path, 1, 1)
