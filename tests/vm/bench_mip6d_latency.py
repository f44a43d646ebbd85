"""Registration latency and handover gap of the real mip6d daemons, with netem
adding 20 ms per hop.

The network is mobility_lab's (CN --- router --- home link with the HA; AR1
and AR2 links with radvd; the MN re-plugged AR1 -> AR2 -> home). Every link
gets `netem delay 20ms` on the egress qdisc of both of its ends, so each hop
adds 20 ms in each direction:

    CN  cn0 ----------- rt-cn  router
    HA  ha0 ----------- hap    (port of br-home)
    MN  mn0 ----------- mnp    (port of br-ar1/br-ar2/br-home, moved with the MN)

MN <-> HA is two hops (mn0/mnp, hap/ha0): 80 ms of round trip, as ping from
the care-of address shows. The stream (mobility_lab.UdpStream) goes CN -> HA
-> MN and is echoed back the same way; the MN's receive times are recorded
too, so the gap is seen from both ends:

Registration latency is from the first BU of the move to the BA: the MN
daemon's `registered_at` minus (`detected_at` + `setup_ms`), since the BU
leaves at the end of the setup. The daemon's own `registration_ms` counts
from the last (re)transmission, so it is reported beside it.

* gap at the MN: first CN datagram received after the new CoA became usable
  (`usable_at`: the netlink event that ended its DAD reached the daemon),
  minus `usable_at`. This is the daemon's reaction, BU to the HA, the HA
  switching the tunnel, and the next datagram down: about one RTT.
* gap of the echo at the CN: first echo of such a datagram at the CN, minus
  `usable_at` (the test_mip6d measure). It adds the echo's trip MN -> HA ->
  CN (4 hops, 80 ms), so it exceeds the RTT + 50 ms goal by construction
  whenever the registration alone takes more than ~50 ms."""

from __future__ import annotations

import itertools
import re
import statistics
import time
from pathlib import Path
from typing import Any

import mobility_lab as ml
from netlab import Host

DELAY_MS = 20
NETEM = {"cn": ["cn0"], "rt": ["rt-cn", "hap", "mnp"], "ha": ["ha0"], "mn": ["mn0"]}
TIMEOUT = 90  # TCG: a registration can take seconds
_names = itertools.count()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] latency: {message}", flush=True)


class RecordingStream(ml.UdpStream):
    """mobility_lab's stream, with the MN's receive times recorded as well."""

    def __init__(self, cn: Host, mn: Host, interval: float = 0.01) -> None:
        self.mn_rx: list[tuple[int, float]] = []
        super().__init__(cn, mn, interval)

    def _echo(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.rx.recvfrom(64)
                self.mn_rx.append((int.from_bytes(data[:4], "big"), time.monotonic()))
                self.rx.sendto(data, addr)
            except OSError:
                continue


def ping_rtt(mn: Host, src: str, count: int = 5) -> float | None:
    """Median ICMPv6 echo round trip MN -> HA from `src`, in ms."""
    out = mn.run("ping", "-6", "-n", "-c", str(count), "-i", "0.2", "-W", "3", "-I", src, ml.HA, check=False)
    times = [float(t) for t in re.findall(r"time=([\d.]+) ms", out)]
    return round(statistics.median(times), 1) if times else None


def add_netem(lab: ml.MobilityLab) -> list[str]:
    placed = []
    for role, ifnames in NETEM.items():
        host: Host = getattr(lab, role)
        for ifname in ifnames:
            host.run("tc", "qdisc", "add", "dev", ifname, "root", "netem", "delay", f"{DELAY_MS}ms")
            placed.append(f"{role}:{ifname}")
    return placed


def _move_entry(mn: ml.Daemon, where: str, coa: str | None) -> dict[str, Any] | None:
    for move in reversed(mn.ctl("status")["moves"]):  # type: ignore[index]
        if move["where"] == where and (coa is None or move["coa"] == coa) and "registration_ms" in move:
            return move  # type: ignore[no-any-return]
    return None


def _registered(mn: ml.Daemon, ha: ml.Daemon, coa: str) -> bool:
    bul = mn.ctl("bindings")[0]  # type: ignore[index]
    cache = {b["hoa"]: b for b in ha.ctl("bindings")}  # type: ignore[union-attr]
    entry = cache.get(ml.HOA)
    return bool(bul["state"] == "registered" and bul["coa"] == coa and entry and entry["coa"] == coa)


def _first_after(samples: list[tuple[int, float]], moment: float) -> tuple[int, float] | None:
    return next(((seq, t) for seq, t in samples if t > moment), None)


def move(lab: ml.MobilityLab, to: str) -> dict[str, float]:
    """mobility_lab.MobilityLab.move with timestamps: `down` when the MN's port has
    left its bridge (no packet passes after it), `up` when mn0 is up on the new link."""
    marks = {"start": time.monotonic()}
    lab.rt.run("ip", "link", "set", "mnp", "nomaster")
    marks["down"] = time.monotonic()
    lab.mn.run("ip", "link", "set", "mn0", "down")
    lab.rt.run("ip", "link", "set", "mnp", "master", f"br-{to}")
    lab.mn.run("ip", "link", "set", "mn0", "up")
    marks["up"] = time.monotonic()
    lab.attached = to
    return marks


def signaling(mn_log: Path) -> dict[str, int]:
    """BUs sent and 135 answers since the last movement line of the MN's log."""
    text = mn_log.read_text(errors="replace")
    last = text.rsplit("mip6d.movement: movement:", 1)[-1]
    return {"bu_sent": len(re.findall(r"mip6d\.mn: BU \d+ sent", last)),
            "ba_135": len(re.findall(r"BA 135", last))}


def ha_handling(ha: ml.Daemon) -> dict[str, Any]:
    """The HA's own account of the move's last BU: socket queue and decode, the
    kernel batch, and kernel receive to BA sent."""
    recent = ha.ctl("status")["recent_bu"]  # type: ignore[index]
    if not recent:
        return {}
    last = recent[-1]
    return {"ha_queued_ms": last["queued_ms"], "ha_kernel_ms": last["kernel_ms"], "ha_done_ms": last["done_ms"]}


def measure_move(stream: RecordingStream, move_entry: dict[str, Any], marks: dict[str, float],
                 rtt: float | None) -> dict[str, Any]:
    detected = float(move_entry["detected_at"])
    usable = float(move_entry.get("usable_at") or detected)  # the CoA's usable event reached the daemon
    setup = float(move_entry.get("setup_ms") or 0)
    first_bu = detected + setup / 1000  # _moved takes setup_ms right before it sends the BU
    t_down, t_up = marks["down"], marks["up"]
    mn_first = _first_after(list(stream.mn_rx), usable)
    echoes = list(stream.echoes)
    row: dict[str, Any] = {
        "rtt_ms": rtt, "setup_ms": setup,
        "registration_ms": round((float(move_entry["registered_at"]) - first_bu) * 1000, 1),
        "daemon_registration_ms": move_entry.get("registration_ms"),
        "lab_replug_ms": round((t_up - t_down) * 1000, 1),
        "detected_after_link_up_ms": round((detected - t_up) * 1000, 1),
        "detected_after_usable_ms": round((detected - usable) * 1000, 1),
    }
    row["registration_over_rtt"] = round(row["registration_ms"] / rtt, 2) if rtt else None
    if mn_first is None:
        return row
    seq0, t_mn = mn_first
    echo = next(((s, t) for s, t in echoes if s >= seq0 and t > t_mn), None)
    row["gap_mn_ms"] = round((t_mn - usable) * 1000, 1)
    row["outage_mn_from_link_down_ms"] = round((t_mn - t_down) * 1000, 1)
    if echo is not None:
        t_echo = echo[1]
        before = [t for _, t in echoes if t < t_echo and t <= t_down + 0.2]
        row["gap_echo_ms"] = round((t_echo - usable) * 1000, 1)
        row["outage_echo_from_link_down_ms"] = round((t_echo - t_down) * 1000, 1)
        row["cn_silence_ms"] = round((t_echo - before[-1]) * 1000, 1) if before else None
    if rtt is not None:
        goal = rtt + 50
        row["goal_ms"] = round(goal, 1)
        row["gap_mn_within_goal"] = row["gap_mn_ms"] <= goal
        if "gap_echo_ms" in row:
            row["gap_echo_within_goal"] = row["gap_echo_ms"] <= goal
    return row


def one_run(workdir: Path, iro: bool) -> dict[str, Any]:
    made: list[Host] = []

    def hosts(role: str) -> Host:
        host = Host(f"bl{role}{next(_names)}")
        made.append(host)
        return host

    workdir.mkdir(parents=True, exist_ok=True)
    lab = ml.build(hosts, workdir, iro=iro)
    stream: RecordingStream | None = None
    result: dict[str, Any] = {"mode": "iro" if iro else "classic", "moves": {}}
    try:
        result["netem"] = add_netem(lab)
        lab.mn.run("ip", "link", "set", "mn0", "up")
        ml.wait_for(lambda: ml.coa("ar1") in lab.mn.run("ip", "-6", "addr", "show", "dev", "mn0"), TIMEOUT,
                    "SLAAC on AR1")
        ha = lab.daemon(lab.ha, "ha", ml.ha_config(iro, lab.payload))
        mn = lab.daemon(lab.mn, "mn", ml.mn_config(iro, lab.payload))
        ha.start()
        mn.start()
        ml.wait_for(lambda: _registered(mn, ha, ml.coa("ar1")), TIMEOUT, "registration on AR1")
        first = _move_entry(mn, "away", ml.coa("ar1"))
        if first and "registered_at" in first:
            result["first_registration_ms"] = round(
                (first["registered_at"] - first["detected_at"]) * 1000 - first["setup_ms"], 1)
            result["first_registration_daemon_ms"] = first.get("registration_ms")
        result["rtt_ar1_ms"] = ping_rtt(lab.mn, ml.coa("ar1"))
        stream = RecordingStream(lab.cn, lab.mn)
        stream.start()
        ml.wait_for(lambda: stream.received_after(0) >= 5, TIMEOUT, "the stream to flow")
        time.sleep(1)
        for to in ("ar2", "home"):
            name = "ar1->ar2" if to == "ar2" else "ar2->home"
            marks = move(lab, to)
            moved_at = marks["down"]
            if to == "home":
                ml.wait_for(lambda: mn.ctl("bindings")[0]["state"] == "idle", TIMEOUT, "deregistration")  # type: ignore[index]
                ml.wait_for(lambda: not ha.ctl("bindings"), TIMEOUT, "the HA to drop the binding")
                entry = ml.wait_for(lambda: _move_entry(mn, "home", None), TIMEOUT, "the home move's timings")
                src = ml.HOA
            else:
                ml.wait_for(lambda: _registered(mn, ha, ml.coa(to)), TIMEOUT, f"registration on {to}")  # noqa: B023
                entry = ml.wait_for(lambda: _move_entry(mn, "away", ml.coa(to)), TIMEOUT,  # noqa: B023
                                   "the move's timings")
                src = ml.coa(to)
            ml.wait_for(lambda: stream.received_after(moved_at) >= 5, TIMEOUT, "the stream to flow again")  # noqa: B023
            time.sleep(0.5)
            rtt = ping_rtt(lab.mn, src)
            result["moves"][name] = {**measure_move(stream, entry, marks, rtt), **signaling(workdir / "mn.log"),
                                     **ha_handling(ha)}
            log(f"  {result['mode']} {name}: {result['moves'][name]}")
            time.sleep(1)
        stream.stop()
        stream = None
        result["clean_exit"] = {"ha": ha.stop(), "mn": mn.stop()}
    except Exception as err:
        result["error"] = f"{type(err).__name__}: {err}"
        log(f"  error: {result['error']}")
        for logfile in sorted(workdir.glob("*.log")):
            print(f"--- {logfile.name}\n{logfile.read_text(errors='replace')[-3000:]}", flush=True)
    finally:
        if stream is not None:
            stream.stop()
        lab.close()
        for host in made:
            host.close()
    return result


def run(rounds: int, workdir: Path) -> dict[str, Any]:
    """`rounds` runs per mode, alternating classic and IRO; medians per move."""
    runs: list[dict[str, Any]] = []
    for r in range(rounds):
        for iro in (False, True):
            log(f"round {r + 1}/{rounds}, {'iro' if iro else 'classic'}")
            runs.append({"round": r + 1, **one_run(workdir / f"r{r}-{'iro' if iro else 'classic'}", iro)})
    return {"delay_per_hop_ms": DELAY_MS, "netem": [f"{role}:{i}" for role, ifs in NETEM.items() for i in ifs],
            "rounds": rounds, "runs": runs, "medians": medians(runs)}


MEDIAN_KEYS = ("rtt_ms", "registration_ms", "daemon_registration_ms", "registration_over_rtt", "setup_ms",
               "lab_replug_ms", "detected_after_link_up_ms", "detected_after_usable_ms", "bu_sent", "ba_135",
               "gap_mn_ms", "gap_echo_ms", "goal_ms", "outage_mn_from_link_down_ms", "outage_echo_from_link_down_ms",
               "cn_silence_ms", "ha_queued_ms", "ha_kernel_ms", "ha_done_ms")


def medians(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for mode in ("classic", "iro"):
        for move in ("ar1->ar2", "ar2->home"):
            rows = [r["moves"][move] for r in runs if r["mode"] == mode and move in r.get("moves", {})]
            if not rows:
                continue
            med: dict[str, Any] = {"samples": len(rows)}
            for key in MEDIAN_KEYS:
                values = [row[key] for row in rows if row.get(key) is not None]
                med[key] = round(statistics.median(values), 2) if values else None
            if med["goal_ms"] is not None:
                for key in ("gap_mn_ms", "gap_echo_ms"):
                    med[key.replace("_ms", "_within_goal")] = None if med[key] is None else med[key] <= med["goal_ms"]
                med["runs_gap_mn_within_goal"] = f"{sum(1 for r in rows if r.get('gap_mn_within_goal'))}/{len(rows)}"
                med["runs_gap_echo_within_goal"] = \
                    f"{sum(1 for r in rows if r.get('gap_echo_within_goal'))}/{len(rows)}"
            out[f"{mode} {move}"] = med
    return out
