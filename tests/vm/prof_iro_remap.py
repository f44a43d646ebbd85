"""Where the remapped flow's extra work goes: kernel and user symbols sampled
by `perf record -a -e cpu-clock` while iperf3 sends 64-byte UDP through the
plain and the remapped SA of bench_iro_throughput's lab, as samples per 1,000
received packets, and the difference (two plain/remapped pairs). Meant for a
guest whose clock counts instructions:

    ./iro vm.run --accel icount -- ~/.cache/iro/venv/bin/python tests/vm/prof_iro_remap.py [--one-policy]

(with absolute paths: the guest's HOME is /run/home). `--one-policy` profiles
the remapped SA whose remap template sits in the main policy, which leaves out
the sub-policy's cost."""

from __future__ import annotations

import collections
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[2] / "umip")]
import bench_iro_throughput as lab  # noqa: E402

from netlab import Host  # noqa: E402

SECONDS = 4
PERIOD_NS = 5000  # short: the differences sought are a few % of a packet's cost
ROWS = 30


def sampled(a: Host, src: str, data: Path) -> tuple[int, collections.Counter[str]]:
    """Packets received and perf samples per symbol for one iperf3 run from `src`."""
    perf = subprocess.Popen(["perf", "record", "-q", "-a", "-e", "cpu-clock", "-c", str(PERIOD_NS), "-o", str(data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    out = a.run("iperf3", "-c", lab.B, "-B", src, "-u", "-b", "0", "-l", "64", "-t", str(SECONDS), "-J")
    perf.send_signal(2)
    perf.wait()
    end = json.loads(out)["end"]["sum"]
    report = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--sort", "sym", "-F", "sample,sym",
                             "--percent-limit", "0"], capture_output=True, text=True, check=True).stdout
    samples: collections.Counter[str] = collections.Counter()
    for line in report.splitlines():
        if m := re.match(r"\s*(\d+)\s+\[[k.]\]\s+(\S+)", line):
            samples[m.group(2)] += int(m.group(1))
    return end["packets"] - end["lost_packets"], samples


def main() -> None:
    remapped = lab.HOA_ONE_POLICY if "--one-policy" in sys.argv[1:] else lab.HOA
    with lab.iperf_lab(pin=False) as (a, _):
        for pair in (1, 2):
            (pp, ps), (rp, rs) = (sampled(a, src, Path(f"/tmp/perf-{kind}{pair}.data"))
                                  for kind, src in (("plain", lab.A), ("remapped", remapped)))
            total_p, total_r = sum(ps.values()) / pp * 1000, sum(rs.values()) / rp * 1000
            print(f"pair {pair}: {pp} and {rp} packets; samples per 1000 packets, plain {total_p:.1f}, "
                  f"remapped {total_r:.1f} (+{total_r - total_p:.1f})")
            diff = {s: rs[s] / rp * 1000 - ps[s] / pp * 1000 for s in set(ps) | set(rs)}
            for symbol, d in sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:ROWS]:
                print(f"  {d:+7.2f}  {ps[symbol] / pp * 1000:7.2f} -> {rs[symbol] / rp * 1000:7.2f}  {symbol}")


if __name__ == "__main__":
    main()
