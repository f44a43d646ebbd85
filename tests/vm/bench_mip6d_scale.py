"""Home agent scale: one real mip6d home agent serving N home addresses, and a
simulator of N mobile nodes sending real Binding Updates over real SAs.

    namespace HA                             namespace SIM0 (access router + MNs 0-499)
    ha0 2001:db8:1::1/64  ---- veth ------   sim0 2001:db8:1::fe/64
    2001:db8:a1:0::/64 via 2001:db8:1::fe    lo: HoA_i 2001:db8:1::1:i/128 (HOMEADDRESS, NODAD)
                                             local 2001:db8:a1:0::/64 dev lo: CoA_i 2001:db8:a1:0::1:i
    hs1 2001:db8:f:1::1/64 ---- veth -----   namespace SIM1 (MNs 500-999), sim0 2001:db8:f:1::2/64
    2001:db8:a1:1::/64 via 2001:db8:f:1::2   local 2001:db8:a1:1::/64 dev lo
    ...

Each simulated MN has its own care-of address, behind the simulator acting as
the access router, as N real MNs on a visited network would be: the HA keeps
one neighbour (the router) and N host routes encapsulated to distinct CoAs. The
CoAs are local to the simulator through one AnyIP route rather than N
addresses: each IPv6 address added walks all the namespace's addresses
(addrconf_verify_rtnl), which made 20,000 addresses take minutes under TCG.
The MNs are split over namespaces of SHARD_SIZE, so that no namespace holds
far more SAs than a real MN: in IRO mode a BA reaches its MN at the CoA, and
before patch 13 it was matched by SPI alone, walking every SA of the namespace
(charged to the HA, whose send delivers it).

The simulator holds, per HoA, what a mobile node daemon installs
(test_mip6d_input.mn_side): the HoA on lo, the two ESP transport SAs of the
keys file, the ESP signaling policies, the mode's sub-policies and its two
route-optimization states (HAO/RH2 or IRO_SRC/IRO_DST) with the CoA. It sends
BUs (ack + home, Alternate CoA) from the HoA on one raw MH socket, the source
chosen per packet with IPV6_PKTINFO, keeps a window of BUs outstanding and
counts the BAs. The home agent gets nothing but its configuration and keys
file: every binding costs it the full per-binding work (RO state, route
through its ip6ip6 device, proxy ND with unsolicited NAs)."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_mip6d_netlink import (
    NETLINK_ROUTE,
    NETLINK_XFRM,
    P_COA,
    P_HOA,
    P_SPI,
    BatchSocket,
    Template,
    newaddr,
    policy_template,
    state_template,
)
from insn_marks import mark
from pyroute2 import netns

from mip6d import ipsec
from mip6d.config import parse_keys
from mip6d.daemon import bound_to_addresses
from mip6d.kernel import IFA_F_HOMEADDRESS, IFA_F_NODAD
from mip6d.mh import AlternateCareOfAddress, BindingAcknowledgement, BindingUpdate, MhError, decode, encode
from netlab import Host, link

HA = "2001:db8:1::1"
SIM_RTR = "2001:db8:1::fe"
COA_SPACE = "2001:db8:a1::/48"  # one /64 per simulator namespace
SHARD_SIZE = 500  # simulated MNs per namespace
# one MN's ESP SAs (with their SPI bases), RO states and policies
MnTemplates = tuple[list[tuple[Template, int]], list[Template], list[Template]]
REQID_TOHA, REQID_TOMN = 1, 2
REQID_TNL_TOHA, REQID_TNL_TOMN = 3, 4  # --payload: TunnelPayload ESP tunnel-mode SAs
SPI_TOHA, SPI_TOMN = 0x100000, 0x200000
SPI_TNL_TOHA, SPI_TNL_TOMN = 0x300000, 0x400000
KEY = "0x" + bytes(range(20)).hex()
KEY2 = "0x" + bytes(range(20, 40)).hex()
LIFETIME = 3600  # s: no binding expires during a run
REPO = Path(__file__).resolve().parents[2]
MEMINFO_KEYS = ("MemFree", "MemAvailable", "Slab", "SReclaimable", "SUnreclaim", "Percpu", "VmallocUsed",
                "KernelStack", "PageTables")


def hoa(i: int) -> str:
    return str(ipaddress.IPv6Address("2001:db8:1::1:0") + i)


def shard_of(i: int) -> int:
    return i // SHARD_SIZE


def coa_prefix(shard: int) -> str:
    return f"2001:db8:a1:{shard:x}::/64"


def coa(i: int) -> str:
    return str(ipaddress.IPv6Address(f"2001:db8:a1:{shard_of(i):x}::1:0") + i)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] scale: {message}", flush=True)


# -- configuration ---------------------------------------------------------------
def ha_config(n: int, iro: bool, payload: bool = False) -> str:
    homes = "".join(f"    HomeAddress {hoa(i)}/64;\n" for i in range(n))
    tunnel = f"    IPsecPolicy TunnelPayload UseESP {REQID_TNL_TOHA} {REQID_TNL_TOMN};\n" if payload else ""
    return (f"NodeConfig HA;\nDebugLevel 0;\nUseMnHaIPsec enabled;\nUseMnHaIRO {'enabled' if iro else 'disabled'};\n"
            f"HaMaxBindingLife {LIFETIME};\nInterface \"ha0\";\n"
            f"IPsecPolicySet {{\n    HomeAgentAddress {HA};\n{homes}"
            f"    IPsecPolicy HomeRegBinding UseESP {REQID_TOHA} {REQID_TOMN};\n{tunnel}}}\n")


def key_lines(i: int, payload: bool = False) -> str:
    """The two ESP transport SAs of mobile node i, as on both ends, and with `payload` its
    two ESP tunnel-mode SAs, which start at its HoA (the HA migrates them to the CoA).
    The reqids are those of the one IPsecPolicySet (shared by all HoAs: the SA addresses
    tell them apart); the SPIs are unique."""
    h = hoa(i)
    lines = (f"add {h} {HA} esp {SPI_TOHA + i:#x} -m transport -u {REQID_TOHA} -E aes-gcm-16 {KEY};\n"
             f"add {HA} {h} esp {SPI_TOMN + i:#x} -m transport -u {REQID_TOMN} -E aes-gcm-16 {KEY2};\n")
    if payload:
        lines += (f"add {h} {HA} esp {SPI_TNL_TOHA + i:#x} -m tunnel -u {REQID_TNL_TOHA} -E aes-gcm-16 {KEY};\n"
                  f"add {HA} {h} esp {SPI_TNL_TOMN + i:#x} -m tunnel -u {REQID_TNL_TOMN} -E aes-gcm-16 {KEY2};\n")
    return lines


def keys_file(n: int, payload: bool = False) -> str:
    return "".join(key_lines(i, payload) for i in range(n))


# -- measurements -------------------------------------------------------------------
def meminfo() -> dict[str, int]:
    """Selected /proc/meminfo fields in KiB (the whole guest)."""
    values = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in MEMINFO_KEYS:
            values[name] = int(rest.split()[0])
    return values


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_split(pid: int) -> tuple[float, float]:
    """User and system time of the whole process (all threads): Python vs the kernel's work."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    return sum(cpu_split(pid))


def find_daemon_pid(pid: int) -> int:
    """`ip netns exec` execs the command; if it forked, find the python child."""
    for _ in range(50):
        with contextlib.suppress(OSError):
            if b"mip6d" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
            for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
                if b"mip6d" in Path(f"/proc/{child}/cmdline").read_bytes():
                    return int(child)
        time.sleep(0.1)
    raise RuntimeError(f"no mip6d process under {pid}")


def xfrm_counts(host: Host) -> tuple[int, int]:
    """(SAs, policies) in a namespace, from SADINFO/SPDINFO."""
    states = policies = 0
    out = host.run("ip", "-6", "xfrm", "state", "count", check=False)
    with contextlib.suppress(ValueError, IndexError):
        states = int(out.split()[-1])
    out = host.run("ip", "-6", "xfrm", "policy", "count", check=False)
    for line in out.splitlines():  # "SPD IN  4 OUT 4 FWD 0" (the socket policies on another line)
        words = line.split()
        if words[:2] == ["SPD", "IN"]:
            with contextlib.suppress(ValueError, IndexError):
                policies = sum(int(words[words.index(d) + 1]) for d in ("IN", "OUT", "FWD"))
    return states, policies


def guard_filters(host: Host) -> int:
    """The tunnel guard's per-binding filters on mip6ha's ingress (0 in --payload mode)."""
    out = host.run("tc", "filter", "show", "dev", "mip6ha", "ingress", "pref", "1", check=False)
    return sum(1 for line in out.splitlines() if " handle " in line)


def left_behind(host: Host) -> dict[str, int]:
    """The daemon's kind of objects in the HA's namespace after it stopped (it held none before)."""
    states, policies = xfrm_counts(host)
    tunnels = host.run("ip", "-o", "link", "show", "type", "ip6tnl", check=False).splitlines()
    routes = host.run("ip", "-6", "route", "show", check=False).splitlines()
    return {"sas": states, "policies": policies, "tunnels": sum(1 for line in tunnels if "mip6ha" in line),
            "tunnel_routes": sum(1 for line in routes if "encap ip6" in line)}


# -- the home agent -----------------------------------------------------------------
@dataclass
class HaProcess:
    host: Host
    workdir: Path
    profile: Path | None = None  # run under bench_mip6d_prof.py (diagnostics only: slower)
    proc: subprocess.Popen[bytes] | None = None
    pid: int = 0

    @property
    def control(self) -> Path:
        return self.workdir / "ha.ctl"

    @property
    def logfile(self) -> Path:
        return self.workdir / "ha.log"

    def start(self, deadline: float, progress: list[dict[str, float]]) -> float | None:
        """Start mip6d and wait for its control socket; None if `deadline` came first."""
        env = {**os.environ, "PYTHONPATH": str(REPO / "umip")}
        started = time.monotonic()
        program = [str(Path(__file__).with_name("bench_mip6d_prof.py")), str(self.profile)] if self.profile \
            else ["-m", "mip6d"]
        with self.logfile.open("ab") as out:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.host.name, sys.executable, *program, "-c",
                 str(self.workdir / "ha.conf"), "--keys", str(self.workdir / "ha.keys"), "--control",
                 str(self.control), "--foreground"], stdout=out, stderr=out, env=env)
        self.pid = find_daemon_pid(self.proc.pid)
        last_poll = 0.0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mip6d exited with {self.proc.returncode}: {self.log_tail()}")
            if self.control.exists():
                with contextlib.suppress(OSError, ValueError):
                    self.ctl("status")
                    return time.monotonic() - started
            now = time.monotonic()
            if now - last_poll >= 5:
                last_poll = now
                states, policies = xfrm_counts(self.host)
                progress.append({"t": round(now - started, 1), "states": states, "policies": policies,
                                 "cpu_s": round(cpu_seconds(self.pid), 1), "rss_kib": rss_kib(self.pid)})
                log(f"  HA starting: {now - started:6.0f} s, {states} SAs, {policies} policies in its kernel, "
                    f"{cpu_seconds(self.pid):.0f} CPU s")
            time.sleep(0.2)
        return None

    def ctl(self, command: str, timeout: float = 5.0) -> Any:
        from mip6d.ctl import request

        answer = request(str(self.control), command, timeout=timeout)
        if not answer.get("ok"):
            raise RuntimeError(f"mip6d-ctl {command}: {answer}")
        return answer[command]

    def stop(self, timeout: float) -> float | None:
        """SIGTERM (the daemon unwinds everything it installed); seconds taken, or
        None if it had not finished after `timeout` (then SIGKILL)."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
            return time.monotonic() - started
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=60)
            return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)

    def log_tail(self, size: int = 3000) -> str:
        return self.logfile.read_text(errors="replace")[-size:] if self.logfile.exists() else ""


# -- the simulator ------------------------------------------------------------------
@dataclass
class Round:
    """One Binding Update per mobile node, pipelined."""

    n: int
    wall_s: float = 0.0
    accepted: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    retransmissions: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    complete: bool = False

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {
            "bus": self.n, "answered": sum(self.statuses.values()), "accepted_status_0": self.accepted,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())}, "complete": self.complete,
            "retransmissions": self.retransmissions, "wall_s": round(self.wall_s, 2),
            "rate_per_s": round(self.accepted / self.wall_s, 1) if self.wall_s else 0.0,
            "bu_to_ba_ms_median": round(statistics.median(lat), 1) if lat else None,
            "bu_to_ba_ms_p95": round(lat[int(len(lat) * 0.95) - 1], 1) if len(lat) >= 20 else None,
        }


def add_shard_hosts(ha_host: Host, n: int, tag: str, shards: list[Host]) -> None:
    """The simulator's namespaces, each an access router for its MNs' CoA prefix:
    the first on the home link (ha0), the others on links of their own. Each goes
    into `shards` as soon as it exists, so that a failure part-way leaks none."""
    for k in range(shard_of(n - 1) + 1):
        shard = Host(f"bssim{tag}-{k}")
        shards.append(shard)
        if k == 0:
            link(ha_host, "ha0", shard, "sim0")
            ha_host.add_address("ha0", HA)
            shard.add_address("sim0", SIM_RTR)
            ha_host.add_route(coa_prefix(k), "ha0", gateway=SIM_RTR)
            continue
        near, far = f"2001:db8:f:{k:x}::1", f"2001:db8:f:{k:x}::2"
        link(ha_host, f"hs{k}", shard, "sim0")
        ha_host.add_address(f"hs{k}", near)
        shard.add_address("sim0", far)
        shard.add_route(f"{HA}/128", "sim0", gateway=near)
        ha_host.add_route(coa_prefix(k), f"hs{k}", gateway=far)


class Simulator:
    def __init__(self, shards: list[Host], n: int, mode: ipsec.Mode) -> None:
        self.shards = shards
        self.n = n
        self.mode = mode
        self.hoas = [ipaddress.IPv6Address(hoa(i)).packed for i in range(n)]
        self.index = {h: i for i, h in enumerate(self.hoas)}
        self.socks: list[socket.socket] = []

    def setup(self) -> dict[str, Any]:
        """Addresses, SAs, states and policies of N mobile nodes; timed per kind,
        summed over the simulator's namespaces."""
        timings: dict[str, Any] = {"namespaces": len(self.shards), "mns_per_namespace": SHARD_SIZE}
        started = time.monotonic()
        templates = self._templates()
        for k, shard in enumerate(self.shards):
            self._setup_shard(shard, range(k * SHARD_SIZE, min(self.n, (k + 1) * SHARD_SIZE)), templates, timings)
            if k % 5 == 4 or k == len(self.shards) - 1:
                log(f"  simulator: {k + 1}/{len(self.shards)} namespaces after {time.monotonic() - started:.0f} s")
        timings["total_s"] = round(time.monotonic() - started, 2)
        counts = [xfrm_counts(shard) for shard in self.shards]
        timings["kernel_objects"] = {"addresses": self.n, "states": sum(c[0] for c in counts),
                                     "policies": sum(c[1] for c in counts)}
        for shard in self.shards:
            sock = netns.create_socket(shard.name, socket.AF_INET6, socket.SOCK_RAW, 135)
            sock.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE: no BA lost here
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            sock.setblocking(False)
            self.socks.append(sock)
        return timings

    def _templates(self) -> MnTemplates:
        """One MN's ESP SAs (with their SPI bases), RO states and policies, rendered per HoA."""
        p_hoa, p_coa = str(ipaddress.IPv6Address(P_HOA)), str(ipaddress.IPv6Address(P_COA))
        toha, tomn = (bound_to_addresses(s) for s in parse_keys(
            f"add {p_hoa} {HA} esp {P_SPI:#x} -m transport -u {REQID_TOHA} -E aes-gcm-16 {KEY};\n"
            f"add {HA} {p_hoa} esp {P_SPI:#x} -m transport -u {REQID_TOMN} -E aes-gcm-16 {KEY2};\n"))
        sa_templates = [(state_template(toha), SPI_TOHA), (state_template(tomn), SPI_TOMN)]
        ro_templates = [state_template(s) for s in ipsec.mn_states(self.mode, p_hoa, HA, p_coa)]
        pol_templates = [policy_template(p) for p in (ipsec.esp_signaling_policies(p_hoa, HA, REQID_TOHA, REQID_TOMN)
                                                      + ipsec.mn_sub_policies(self.mode, p_hoa, HA))]
        return sa_templates, ro_templates, pol_templates

    def _setup_shard(self, host: Host, mns: range, templates: MnTemplates, timings: dict[str, Any]) -> None:
        def phase(name: str, sock: BatchSocket, messages: Iterable[bytearray]) -> None:
            t = time.monotonic()
            sock.send_all(messages)
            timings[f"{name}_s"] = round(timings.get(f"{name}_s", 0.0) + time.monotonic() - t, 2)

        sa_templates, ro_templates, pol_templates = templates
        # Policies first: every XFRM policy change walks the namespace's whole IPv6
        # FIB (rt_genid_bump_ipv6 -> fib6_flush_trees), which the HoAs' local routes
        # would make 10,000 entries long.
        xfrm = BatchSocket(netns.create_socket(host.name, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_XFRM))
        hoas = [self.hoas[i] for i in mns]
        coas = [ipaddress.IPv6Address(coa(i)).packed for i in mns]
        phase("policies", xfrm, (tmpl.render(h) for h in hoas for tmpl in pol_templates))
        phase("esp_sas", xfrm, (tmpl.render(self.hoas[i], spi=base + i) for i in mns
                                for tmpl, base in sa_templates))
        phase("ro_states", xfrm, (tmpl.render(h, c) for h, c in zip(hoas, coas, strict=True)
                                  for tmpl in ro_templates))
        xfrm.close()
        rtnl = BatchSocket(netns.create_socket(host.name, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE))
        lo = host.ifindex("lo")
        phase("hoa_addresses", rtnl, (newaddr(lo, hoa(i), 128, IFA_F_NODAD | IFA_F_HOMEADDRESS) for i in mns))
        rtnl.close()
        # The CoAs: the whole visited prefix is local (AnyIP), so that each MN has its
        # own CoA without N more addresses (adding an IPv6 address walks all the
        # namespace's addresses: addrconf_verify_rtnl).
        host.run("ip", "-6", "route", "add", "local", coa_prefix(shard_of(mns.start)), "dev", "lo")

    def _bu(self, i: int, seq: int) -> bytes:
        message = BindingUpdate(seq=seq, lifetime=LIFETIME // 4, ack=True, home=True,
                                options=(AlternateCareOfAddress(address=coa(i)),))
        return encode(message, hoa(i), HA)

    def run_round(self, seq: int, window: int, deadline: float, min_rto: float = 10.0) -> Round:
        """Send BU `seq` for every MN, at most `window` outstanding; stop at `deadline`.
        A BU unanswered for 3 times the window's expected queueing delay (at least
        `min_rto`) is sent again, same sequence number."""
        assert self.socks
        socks = self.socks
        bus = [self._bu(i, seq) for i in range(self.n)]  # encoded before the clock starts
        cmsgs = [[(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, h + bytes(4))] for h in self.hoas]
        result = Round(self.n)
        outstanding: dict[int, float] = {}
        first_sent: dict[int, float] = {}
        done = 0
        next_i = 0
        last_report = started = time.monotonic()

        def send(i: int) -> None:
            with contextlib.suppress(BlockingIOError):  # a full queue counts as a loss: resent after rto
                socks[shard_of(i)].sendmsg([bus[i]], cmsgs[i], 0, (HA, 0))
            outstanding[i] = time.monotonic()

        while done < self.n:
            now = time.monotonic()
            if now >= deadline:
                break
            while len(outstanding) < window and next_i < self.n:
                send(next_i)
                first_sent[next_i] = outstanding[next_i]
                next_i += 1
            ready, _, _ = select.select(socks, [], [], 0.2)
            for data, ancdata, addr in self._receive(ready):
                got = time.monotonic()
                dst = next((v[:16] for lvl, kind, v in ancdata
                            if lvl == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO), None)
                i = self.index.get(dst) if dst else None
                if i is None or i not in outstanding:
                    continue
                try:
                    ba = decode(data, addr[0], hoa(i), verify_checksum=False)
                except MhError:
                    continue
                if not isinstance(ba, BindingAcknowledgement) or (ba.seq != seq and ba.status != 135):
                    continue
                del outstanding[i]
                done += 1
                result.statuses[ba.status] = result.statuses.get(ba.status, 0) + 1
                if ba.status == 0:
                    result.accepted += 1
                result.latencies_ms.append((got - first_sent[i]) * 1000)
            now = time.monotonic()
            rto = max(min_rto, 3 * window * (now - started) / max(done, 1))
            for i, sent_at in list(outstanding.items()):
                if now - sent_at > rto:
                    result.retransmissions += 1
                    send(i)
            if now - last_report >= 15:
                last_report = now
                log(f"  seq {seq}: {done}/{self.n} answered after {now - started:.0f} s "
                    f"({done / (now - started):.0f}/s), {result.retransmissions} retransmitted")
        result.wall_s = time.monotonic() - started
        result.complete = done == self.n
        return result

    @staticmethod
    def _receive(ready: list[socket.socket]) -> Iterator[tuple[bytes, list[tuple[int, int, bytes]], Any]]:
        """Everything queued on the ready sockets."""
        for sock in ready:
            while True:
                try:
                    data, ancdata, _flags, addr = sock.recvmsg(2048, 256)
                except (BlockingIOError, InterruptedError):
                    break
                yield data, ancdata, addr

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


# -- one size ----------------------------------------------------------------------
@contextlib.contextmanager
def kernel_profile(pid: int, out: Path | None) -> Iterator[None]:
    """`perf record` of one process (kernel and user, all threads) while the block runs, then
    its hottest symbols on stdout: where a home agent's system time goes (diagnostics only)."""
    if out is None:
        yield
        return
    perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "499", "-g", "-p", str(pid),
                             "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1)  # perf attaches
    try:
        yield
    finally:
        perf.send_signal(signal.SIGINT)
        _, err = perf.communicate(timeout=120)
        for sort in ("dso", "dso,sym"):  # the shares of kernel, Python and libc first
            report = subprocess.run(["perf", "report", "-i", str(out), "--stdio", "--no-children", "-g", "none",
                                     "--sort", sort, "--percent-limit", "0.5"],
                                    capture_output=True, text=True, check=False)
            print(f"== perf by {sort} (HA pid {pid}) ==\n{err.decode(errors='replace')[-500:]}{report.stdout}"
                  f"{report.stderr[-500:]}", flush=True)


def run(n: int, iro: bool, budget: float, window: int, workdir: Path, profile: Path | None = None,
        perf: bool = False, payload: bool = False, refreshes: int = 1) -> dict[str, Any]:
    """Everything for N mobile nodes in one mode; `budget` seconds from the home agent's start
    (the simulator's setup is timed apart), the clean shutdown within what is left of it."""
    mode = ipsec.IRO if iro else ipsec.CLASSIC
    deadline = time.monotonic() + budget  # set again once the simulator is ready
    workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"n": n, "mode": mode.name, "budget_s": budget, "window": window, "payload": payload,
                              "coa": "distinct per MN (behind the simulator as access router)"}
    tag = f"{'i' if iro else 'c'}{n}"
    ha_host: Host | None = None
    shards: list[Host] = []
    ha: HaProcess | None = None
    sim: Simulator | None = None
    try:
        ha_host = Host(f"bsha{tag}")
        add_shard_hosts(ha_host, n, tag, shards)
        ha_host.sysctl("net.ipv6.conf.ha0.accept_ra", "0")

        t = time.monotonic()
        (workdir / "ha.conf").write_text(ha_config(n, iro, payload))
        (workdir / "ha.keys").write_text(keys_file(n, payload))
        result["config_bytes"] = (workdir / "ha.conf").stat().st_size + (workdir / "ha.keys").stat().st_size
        result["config_write_s"] = round(time.monotonic() - t, 2)

        log(f"N={n} {mode.name}: simulator setup ({n} HoAs, CoAs, {2 * n} ESP SAs, RO states, policies)")
        sim = Simulator(shards, n, mode)
        result["sim_setup"] = sim.setup()
        log(f"  simulator ready in {result['sim_setup']['total_s']} s: {result['sim_setup']['kernel_objects']}")
        deadline = time.monotonic() + budget  # the budget is the home agent's: start, registrations, refreshes

        mem_before_ha = meminfo()
        ha = HaProcess(ha_host, workdir, profile)
        progress: list[dict[str, float]] = []
        sas = (4 if payload else 2) * n
        log(f"N={n} {mode.name}: starting the home agent ({n} home addresses, {sas} SAs in its keys file)")
        startup = ha.start(deadline, progress)
        result["ha_start_progress"] = progress
        # before its first SA the daemon was importing, parsing and checking its configuration
        first_sa = next((p["t"] for p in progress if p["states"] > 0), None)
        result["ha_first_sa_after_s"] = first_sa
        if startup is None:
            states, policies = xfrm_counts(ha_host)
            result["ha_startup"] = {"complete": False, "after_s": round(budget, 1), "states": states,
                                    "policies": policies, "expected_states": sas + 1,
                                    "expected_policies": 4 * n + 1, "cpu_s": round(cpu_seconds(ha.pid), 1)}
            log(f"  HA not ready within the budget: {states}/{sas + 1} SAs, {policies}/{4 * n + 1} policies")
            return result
        states, policies = xfrm_counts(ha_host)
        result["ha_startup"] = {"complete": True, "seconds": round(startup, 2), "cpu_s": round(cpu_seconds(ha.pid), 2),
                                "states": states, "policies": policies}
        time.sleep(2)  # let the start-up settle (allocator, late frees)
        mem0, rss0, cpu0, split0 = meminfo(), rss_kib(ha.pid), cpu_seconds(ha.pid), cpu_split(ha.pid)
        result["ha_startup"]["rss_kib"] = rss0
        result["ha_startup"]["kernel_slab_delta_kib"] = mem0["Slab"] - mem_before_ha["Slab"]
        log(f"  HA ready in {startup:.1f} s ({result['ha_startup']['cpu_s']} CPU s), RSS {rss0} KiB, "
            f"kernel: {states} SAs, {policies} policies")

        log(f"N={n} {mode.name}: first registrations, window {window}")
        mark(f"N={n} {mode.name}: set-up")
        with kernel_profile(ha.pid, workdir / "ha.perf" if perf else None):
            first = sim.run_round(1, window, deadline)
        mark(f"N={n} {mode.name}: first registrations (per BU)", first.accepted)
        time.sleep(1)
        mem1, rss1, cpu1, split1 = meminfo(), rss_kib(ha.pid), cpu_seconds(ha.pid), cpu_split(ha.pid)
        status = ha.ctl("status", timeout=120)
        bound_now = max(1, first.accepted)
        result["registration"] = {**first.summary(), "ha_cpu_s": round(cpu1 - cpu0, 2),
                                  "ha_cpu_ms_per_bu": round((cpu1 - cpu0) * 1000 / max(1, first.accepted), 2),
                                  "ha_user_ms_per_bu": round((split1[0] - split0[0]) * 1000 / bound_now, 2),
                                  "ha_system_ms_per_bu": round((split1[1] - split0[1]) * 1000 / bound_now, 2),
                                  "ha_bindings": status["bindings"], "ha_stats": {
                                      k: status[k] for k in ("bu", "ba", "rejected", "malformed")}}
        bound = max(1, status["bindings"])
        result["memory"] = {
            "bindings": status["bindings"],
            "ha_rss_kib_before": rss0, "ha_rss_kib_after": rss1,
            "user_bytes_per_binding": round((rss1 - rss0) * 1024 / bound),
            "kernel_slab_bytes_per_binding": round((mem1["Slab"] - mem0["Slab"]) * 1024 / bound),
            "kernel_percpu_bytes_per_binding": round((mem1["Percpu"] - mem0["Percpu"]) * 1024 / bound),
            "kernel_vmalloc_bytes_per_binding": round((mem1["VmallocUsed"] - mem0["VmallocUsed"]) * 1024 / bound),
            "memfree_drop_bytes_per_binding": round((mem0["MemFree"] - mem1["MemFree"]) * 1024 / bound),
            "meminfo_before_kib": mem0, "meminfo_after_kib": mem1,
            "guard_filters": guard_filters(ha_host),
        }
        r = result["registration"]
        log(f"  {r['accepted_status_0']}/{n} accepted in {r['wall_s']} s: {r['rate_per_s']} bindings/s, "
            f"HA {r['ha_cpu_ms_per_bu']} CPU ms per BU ({r['ha_user_ms_per_bu']} user, "
            f"{r['ha_system_ms_per_bu']} system); RSS {rss0} -> {rss1} KiB, "
            f"Slab {mem0['Slab']} -> {mem1['Slab']} KiB; {result['memory']['guard_filters']} guard filters")
        if not first.complete:
            return result

        # several rounds in one run: this machine's speed moves by a third between runs
        rounds: list[dict[str, Any]] = []
        last_seq = 1
        for seq in range(2, 2 + refreshes):
            log(f"N={n} {mode.name}: refreshes, round {seq - 1} of {refreshes} (same CoA, sequence {seq})")
            mark(f"N={n} {mode.name}: before refresh round {seq - 1}")
            with kernel_profile(ha.pid, workdir / f"ha-refresh-{seq}.perf" if perf and seq == 2 else None):
                refresh = sim.run_round(seq, window, deadline)
            mark(f"N={n} {mode.name}: refresh round {seq - 1} (per BU)", refresh.accepted)
            cpu2, rss2 = cpu_seconds(ha.pid), rss_kib(ha.pid)
            r = {**refresh.summary(), "ha_cpu_s": round(cpu2 - cpu1, 2),
                 "ha_cpu_ms_per_bu": round((cpu2 - cpu1) * 1000 / max(1, refresh.accepted), 2),
                 "ha_rss_kib_after": rss2}
            cpu1 = cpu2
            rounds.append(r)
            log(f"  {r['accepted_status_0']}/{n} refreshed in {r['wall_s']} s: {r['rate_per_s']} BU/s, "
                f"HA {r['ha_cpu_ms_per_bu']} CPU ms per BU")
            if not refresh.complete:
                break
            last_seq = seq
        # the median round by rate (the lower middle one for an even count)
        result["refresh"] = {**sorted(rounds, key=lambda r: r["rate_per_s"])[(len(rounds) - 1) // 2],
                             "rounds_rate_per_s": [r["rate_per_s"] for r in rounds]}
        t = time.monotonic()
        bindings = ha.ctl("bindings", timeout=300)
        result["ctl_bindings_s"] = round(time.monotonic() - t, 2)
        expected = {hoa(i): coa(i) for i in range(n)}
        good = sum(1 for b in bindings if expected.get(b["hoa"]) == b["coa"]
                   and b["seq"] == (last_seq if refresh.complete else b["seq"]))
        result["check"] = {"ctl_bindings": len(bindings), "matching": good,
                           "ok": len(bindings) == n and good == n}
        log(f"  mip6d-ctl bindings: {len(bindings)} entries, {good} with the right CoA and sequence "
            f"({result['ctl_bindings_s']} s)")
    except Exception as err:  # report what we have
        result["error"] = f"{type(err).__name__}: {err}"
        log(f"  error: {result['error']}")
        if ha is not None:
            result["ha_log_tail"] = ha.log_tail()
    finally:
        if ha is not None:
            # the daemon's own clean shutdown (unwinding every object) is timed when the budget allows
            left = deadline - time.monotonic()
            shutdown = ha.stop(timeout=max(5.0, min(left, 300.0))) if ha.proc and ha.proc.poll() is None else None
            result["ha_shutdown_s"] = round(shutdown, 1) if shutdown is not None else None
            ha.kill()
            result["left_after_stop"] = left_behind(ha_host)
            if any(result["left_after_stop"].values()):
                log(f"  left behind by the HA: {result['left_after_stop']}")
                result.setdefault("ha_log_tail", ha.log_tail())
            if "error" in result or not result.get("check", {}).get("ok", True):
                result.setdefault("ha_log_tail", ha.log_tail())
        if sim is not None:
            sim.close()
        for host in (*shards, *([ha_host] if ha_host else [])):
            host.close()
    return result


def print_profile(path: Path, lines: int = 45) -> None:
    import pstats

    if not path.exists():
        print(f"no profile at {path}")
        return
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(lines)
    stats.sort_stats("cumulative").print_stats(lines)
    # a BU's own work, without the start-up's (keys, 40,000 policies) that dominates the lists above
    stats.sort_stats("cumulative").print_callees(r"ha.py:\d+\(_on_mh\)|ha.py:\d+\(_apply\)|kernel.py:\d+\(flush\)")


if __name__ == "__main__":  # a quick manual run: N [iro|classic] [profile]
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    prof = Path(f"/tmp/bench-scale-{size}/ha.pstats") if "profile" in sys.argv[3:] else None
    out = run(size, (sys.argv[2] if len(sys.argv) > 2 else "iro") == "iro", 900, 32, Path(f"/tmp/bench-scale-{size}"),
              prof)
    print(json.dumps(out, indent=2))
    if prof:
        print_profile(prof)
