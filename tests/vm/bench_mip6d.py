"""The mobility daemon's performance benchmark (run in the guest):

    PYTHONPATH=tests/vm:umip python tests/vm/bench_mip6d.py [--part latency|scale|all]
        [--rounds 3] [--sizes 1000,10000] [--modes iro,classic] [--budget 900] [--window 32]

Part 1, latency (bench_mip6d_latency): netem adds 20 ms per hop; per move and
mode (classic, IRO): RTT MN -> HA, registration latency (BU sent -> BA
received, from the MN daemon), its ratio to the RTT, the gap after the new CoA
is usable against the goal of RTT + 50 ms, and the outage from link down;
medians over --rounds.

Part 2, scale (bench_mip6d_scale): one real mip6d home agent configured for N
home addresses and a simulator of N mobile nodes sending real BUs over real
SAs; first registrations (bindings/s), refreshes (BU/s), memory per binding
(HA RSS, kernel Slab/Percpu), the binding count from mip6d-ctl. Goal: 10,000
bindings at >= 1,000 BU/s.

Prints a table per part; writes $IRO_VM_OUT/bench-mip6d.json when that
directory exists."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_mip6d_kernelops as kernelops
import bench_mip6d_latency as latency
import bench_mip6d_scale as scale

GOAL_BINDINGS = 10_000
GOAL_RATE = 1_000


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.{digits if abs(value) >= 1 or value == 0 else 3}f}"
    return str(value)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True)))]
    lines += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
              for row in cells]
    return "\n".join(lines)


def print_latency(result: dict[str, Any]) -> None:
    print(f"\n== Part 1: registration latency and handover gap, netem {result['delay_per_hop_ms']} ms per hop "
          f"({', '.join(result['netem'])}), median of {result['rounds']} rounds ==")
    headers = ["mode move", "RTT", "reg", "reg/RTT", "daemon reg", "BUs", "135s", "gap@MN", "gap echo@CN",
               "goal RTT+50", "MN ok", "CN ok", "replug", "up->seen", "usable->seen", "from down@MN", "from down@CN",
               "setup",
               "HA queue", "HA kernel", "HA BU->BA"]
    rows = [[name, m["rtt_ms"], m["registration_ms"], m["registration_over_rtt"], m["daemon_registration_ms"],
             m["bu_sent"], m["ba_135"], m["gap_mn_ms"], m["gap_echo_ms"], m["goal_ms"],
             m.get("runs_gap_mn_within_goal"), m.get("runs_gap_echo_within_goal"), m["lab_replug_ms"],
             m["detected_after_link_up_ms"], m["detected_after_usable_ms"],
             m["outage_mn_from_link_down_ms"], m["outage_echo_from_link_down_ms"], m["setup_ms"],
             m.get("ha_queued_ms"), m.get("ha_kernel_ms"), m.get("ha_done_ms")]
            for name, m in result["medians"].items()]
    print(table(headers, rows))
    print("(ms, medians; reg: first BU sent -> BA received; daemon reg: the MN daemon's registration_ms, from the "
          "last retransmission; BUs/135s: BUs the MN sent and BA 135 it got for the move; gap@MN: first CN datagram "
          "at the MN after the new CoA became usable (usable_at); gap echo@CN: its echo back at the CN; "
          "ok: runs within RTT + 50 ms; replug: the lab's ip commands moving the MN's port (link down to up); "
          "up->seen: link up to detected_at (RA, SLAAC, detection); usable->seen: the CoA's usable event to the "
          "daemon acting on it; from down: from the MN's port "
          "leaving its bridge; setup: the MN daemon's kernel work before the BU; HA queue: the BU's kernel receive "
          "to its handling (event loop, decode); HA kernel: the binding's kernel batch; HA BU->BA: kernel receive "
          "to BA sent)")
    first = [r["first_registration_ms"] for r in result["runs"] if r.get("first_registration_ms") is not None]
    if first:
        print(f"first registration at start (AR1), median: {statistics.median(first):.1f} ms")
    errors = [f"round {r['round']} {r['mode']}: {r['error']}" for r in result["runs"] if "error" in r]
    for error in errors:
        print(f"  FAILED {error}")


def print_scale(results: list[dict[str, Any]]) -> None:
    print(f"\n== Part 2: home agent scale (goal: {GOAL_BINDINGS} bindings at >= {GOAL_RATE} BU/s) ==")
    headers = ["mode N", "sim setup s", "HA start s", "HA RSS MiB", "register s", "bindings/s", "BU->BA med ms",
               "HA CPU ms/BU", "refresh BU/s", "HA CPU ms/ref", "user B/bind", "slab B/bind", "percpu B/bind",
               "ctl count", "HA stop s"]
    rows = []
    for r in results:
        start = r.get("ha_startup", {})
        reg, ref, mem = r.get("registration", {}), r.get("refresh", {}), r.get("memory", {})
        started = start.get("seconds") if start.get("complete") else \
            f">{start.get('after_s')} ({start.get('states')}/{start.get('expected_states')} SAs, " \
            f"{start.get('policies')}/{start.get('expected_policies')} pol)" if start else None
        rows.append([
            f"{r['mode']}{'+payload' if r.get('payload') else ''} {r['n']}", r.get("sim_setup", {}).get("total_s"),
            started,
            round(start["rss_kib"] / 1024, 1) if start.get("rss_kib") else None,
            reg.get("wall_s"), reg.get("rate_per_s"), reg.get("bu_to_ba_ms_median"), reg.get("ha_cpu_ms_per_bu"),
            ref.get("rate_per_s"), ref.get("ha_cpu_ms_per_bu"), mem.get("user_bytes_per_binding"),
            mem.get("kernel_slab_bytes_per_binding"), mem.get("kernel_percpu_bytes_per_binding"),
            f"{r['check']['ctl_bindings']}/{r['n']}" if "check" in r else None, r.get("ha_shutdown_s")])
    print(table(headers, rows))
    for r in results:
        reg = r.get("registration", {})
        if reg and not reg.get("complete"):
            print(f"  {r['mode']} {r['n']}: registrations incomplete within the budget: {reg.get('answered')} answered "
                  f"({reg.get('accepted_status_0')} accepted) in {reg.get('wall_s')} s = {reg.get('rate_per_s')}/s")
        if "error" in r:
            print(f"  {r['mode']} {r['n']}: FAILED {r['error']}")
        if len(r.get("refresh", {}).get("rounds_rate_per_s", [])) > 1:
            print(f"  {r['mode']} {r['n']}: refresh rounds {r['refresh']['rounds_rate_per_s']} BU/s (median reported)")
        goal = r["n"] >= GOAL_BINDINGS and bool(r.get("check", {}).get("ok")) and \
            min(reg.get("rate_per_s", 0), r.get("refresh", {}).get("rate_per_s", 0)) >= GOAL_RATE
        if r["n"] >= GOAL_BINDINGS:
            print(f"  {r['mode']} {r['n']}: goal {GOAL_BINDINGS} bindings at >= {GOAL_RATE} BU/s: "
                  f"{'met' if goal else 'NOT met'}")


def print_ops(result: dict[str, Any]) -> None:
    print(f"\n== One binding's kernel objects, {result['m']} bindings: daemon path against raw netlink "
          "(ms per binding, wall) ==")
    if "error" in result:
        print(f"  FAILED: {result['error']}")
        return
    paths = {"daemon (mip6d.kernel + nd)": result["daemon_ms_per_binding"],
             "raw netlink, one per sendmsg": result["raw_one_per_sendmsg_ms_per_binding"],
             "raw netlink, batched": result["raw_batched_ms_per_binding"]}
    keys = ["ro_state", "tunnel", "route", "proxy", "announce", "total"]
    print(table(["path", *keys], [[name, *(row.get(k) for k in keys)] for name, row in paths.items()]))
    print(f"daemon refresh (state update + route replace): {result['daemon_refresh_ms']}; one trivial pyroute2 "
          f"request (link get): {result['pyroute2_trivial_request_ms']} ms; daemon unwind: "
          f"{result['daemon_unwind_ms_per_binding']} ms per binding")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["latency", "scale", "all", "ops"], default="all",
                        help="all = latency + scale; ops (not in all): one binding's kernel objects through the "
                             "daemon's netlink layer against raw netlink, per object")
    parser.add_argument("--ops-count", type=int, default=300, help="bindings for --part ops (default 300)")
    parser.add_argument("--rounds", type=int, default=3, help="latency rounds per mode (default 3)")
    parser.add_argument("--sizes", default="1000,10000", help="numbers of mobile nodes (default 1000,10000)")
    parser.add_argument("--modes", default="iro", help="scale modes, in order: iro,classic (default iro)")
    parser.add_argument("--budget", type=float, default=900,
                        help="guest seconds per size and mode for HA start, registrations and refreshes "
                             "(the simulator's setup not counted; default 900)")
    parser.add_argument("--refreshes", type=int, default=1,
                        help="scale: refresh rounds in one run; the median one is reported (default 1)")
    parser.add_argument("--window", type=int, default=32, help="outstanding BUs (default 32)")
    parser.add_argument("--payload", action="store_true",
                        help="scale: every MN also has TunnelPayload ESP tunnel-mode SAs at the HA, which it "
                             "migrates per binding instead of making an ip6ip6 tunnel")
    parser.add_argument("--profile", action="store_true",
                        help="run the scale HA under cProfile (all threads) and print where its time goes; "
                             "slows it down: diagnostics only")
    parser.add_argument("--perf", action="store_true",
                        help="perf record the scale HA during first registrations and during refreshes, and "
                             "print its hottest kernel and user symbols (needs Debian's linux-perf on the host)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    report: dict[str, Any] = {"kernel": platform.release(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "cpus": os.cpu_count(), "args": vars(args)}
    workdir = Path(tempfile.mkdtemp(prefix="bench-mip6d-"))
    out = Path(os.environ.get("IRO_VM_OUT", "/nonexistent"))

    def save() -> None:
        if out.is_dir():
            (out / "bench-mip6d.json").write_text(json.dumps(report, indent=2) + "\n")

    try:
        if args.part == "ops":
            report["ops"] = kernelops.run(args.ops_count)
            save()
        if args.part in ("latency", "all"):
            t = time.monotonic()
            report["latency"] = latency.run(args.rounds, workdir / "latency")
            report["latency"]["seconds"] = round(time.monotonic() - t, 1)
            save()
            print_latency(report["latency"])
        if args.part in ("scale", "all"):
            report["scale"] = []
            for mode in modes:
                for n in sizes:
                    t = time.monotonic()
                    profile = workdir / f"ha-{mode}-{n}.pstats" if args.profile else None
                    result = scale.run(n, mode == "iro", args.budget, args.window, workdir / f"scale-{mode}-{n}",
                                       profile, args.perf, args.payload, args.refreshes)
                    result["seconds"] = round(time.monotonic() - t, 1)
                    report["scale"].append(result)
                    save()
                    if profile:
                        scale.print_profile(profile)
    finally:
        save()
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n== Summary ==")
    if "latency" in report:
        print_latency(report["latency"])
    if "scale" in report:
        print_scale(report["scale"])
    if "ops" in report:
        print_ops(report["ops"])
    if out.is_dir():
        print(f"\nJSON: {out / 'bench-mip6d.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
