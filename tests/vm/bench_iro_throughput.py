"""Throughput and packet rate through a remapped ESP transport SA against a plain
one, on the same kernel, in one run (run in the guest by `./iro bench.iro`).

The remapped SA is measured with its remap template in the two policy layouts
a deployment can choose:

- "remapped": a MIPv6 sub-policy carries the template, as the daemon and
  classic HAO/RH2 route optimization install it; the main policy, which an
  IKE daemon may own, keeps only the ESP template. This is the figure the
  goal applies to.
- "remapped, one policy": the ESP and remap templates in one main policy.
  The receiver then checks one policy instead of two, so the difference
  between the two figures is the sub-policy's stock cost, and this one is
  the remap's own.
- "sender's share": a remap state whose care-of address is the home address
  itself. The sender's bundle gets the remap layer and its output pass, but
  the packet keeps its source, so the receiver does plain ESP: this is what
  the remap costs the sender alone.

Each round runs all four, in an order that is reversed every other round,
so that a drift of the machine's speed within a round does not favour one
side. The ratio reported is the median of the rounds' own
remapped/plain ratios, with their interquartile range: under TCG the speed of
the whole guest varies by tens of percent within minutes, and a ratio taken
within a round cancels that. The iperf3 client and server are pinned to one
vCPU each, so both paths see the same placement."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import time
from collections.abc import Iterator

from iro_lab import RO
from mip6_lab import GCM
from mip6d.xfrm import Policy, Selector, State, Template
from mip6d.xfrm.api import XFRM_POLICY_IN, XFRM_POLICY_OUT, XFRM_PROTO_IRO_SRC
from netlab import Host, link

A, B = "2001:db8:1::1", "2001:db8:1::2"
UNPROTECTED = "2001:db8:1::3"  # a source no policy covers
HOA, HOA_ONE_POLICY, HOA_SENDER_ONLY = "2001:db8:100::10", "2001:db8:100::12", "2001:db8:100::13"
# Addresses and SPIs chosen so that the four flows' policies (hashed on their
# address pair) and SAs (on destination, SPI and protocol) each sit alone in a
# bucket of the kernel's initial 8-bucket tables: a shared chain would make
# one flow's lookup walk past another's entry, a bias of its own.
SPI_PLAIN, SPI_REMAPPED, SPI_ONE_POLICY, SPI_SENDER_ONLY = 0x1000, 0x2000, 0x3000, 0x4000
ROUNDS = int(os.environ.get("IRO_BENCH_ROUNDS", "10"))
SECONDS = 2
CLIENT_CPU, SERVER_CPU = ("0", "1") if (os.cpu_count() or 1) > 1 else ("0", "0")
SIZES = {"throughput (1200-byte datagrams)": 1200, "packet rate (64-byte datagrams)": 64}


def setup(stock: bool = False) -> tuple[Host, Host]:
    """The lab of SOURCES, or with `stock` that of STOCK_SOURCES, which a kernel
    without the series runs too: no remap state anywhere."""
    a, b = Host("bench-a"), Host("bench-b")
    link(a, "a0", b, "b0")
    a.add_address("a0", A)
    b.add_address("b0", B)
    if stock:
        a.add_address("a0", UNPROTECTED)
        for host in (a, b):
            host.xfrm.add_state(State(A, B, spi=SPI_PLAIN, aead=GCM))
        sel = Selector.host(A, B, proto=17)
        a.xfrm.add_policy(Policy(sel, XFRM_POLICY_OUT, [Template()]))
        b.xfrm.add_policy(Policy(sel, XFRM_POLICY_IN, [Template()]))
        return a, b
    for hoa in (HOA, HOA_ONE_POLICY, HOA_SENDER_ONLY):
        a.add_address("lo", hoa, 128)
        b.add_route(hoa, "b0", gateway=A)  # the HoAs are on a's loopback: no neighbour answers for them
    for host in (a, b):
        host.xfrm.add_state(State(A, B, spi=SPI_PLAIN, aead=GCM))
        for spi, hoa in ((SPI_REMAPPED, HOA), (SPI_ONE_POLICY, HOA_ONE_POLICY), (SPI_SENDER_ONLY, HOA_SENDER_ONLY)):
            host.xfrm.add_state(State(hoa, B, spi=spi, aead=GCM))
        for hoa in (HOA, HOA_ONE_POLICY):
            host.xfrm.add_state(State(hoa, B, XFRM_PROTO_IRO_SRC, mode=RO, coaddr=A))
    a.xfrm.add_state(State(HOA_SENDER_ONLY, B, XFRM_PROTO_IRO_SRC, mode=RO, coaddr=HOA_SENDER_ONLY))
    esp, remap = Template(), Template(XFRM_PROTO_IRO_SRC, RO)
    # (source, sender's templates, receiver's templates, in a sub-policy)
    layouts = ((A, [esp], [esp], False), (HOA, [esp], [esp], False), (HOA, [remap], [remap], True),
               (HOA_ONE_POLICY, [esp, remap], [esp, remap], False), (HOA_SENDER_ONLY, [esp, remap], [esp], False))
    for src, out, back, sub in layouts:
        sel = Selector.host(src, B, proto=17)
        a.xfrm.add_policy(Policy(sel, XFRM_POLICY_OUT, out, sub=sub))
        b.xfrm.add_policy(Policy(sel, XFRM_POLICY_IN, back, sub=sub))
    return a, b


def run_iperf(a: Host, src: str, size: int) -> tuple[float, float]:
    """Received bits/s and packets/s of one UDP run."""
    out = a.run("taskset", "-c", CLIENT_CPU, "iperf3", "-c", B, "-B", src, "-u", "-b", "0", "-l", str(size),
                "-t", str(SECONDS), "-J")
    report = json.loads(out)
    if "error" in report:
        raise RuntimeError(f"iperf3 from {src}: {report['error']}")
    end = report["end"]["sum"]
    received = end["packets"] - end["lost_packets"]
    return received * size * 8 / end["seconds"], received / end["seconds"]


@contextlib.contextmanager
def iperf_lab(pin: bool = True) -> Iterator[tuple[Host, Host]]:
    """The two hosts of `setup`, an iperf3 server on b (pinned to SERVER_CPU), and
    everything removed afterwards."""
    a, b = setup()
    taskset = ["taskset", "-c", SERVER_CPU] if pin else []
    server = subprocess.Popen(["ip", "netns", "exec", b.name, *taskset, "iperf3", "-s", "-B", B],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    try:
        yield a, b
    finally:
        server.terminate()
        server.wait()
        a.close()
        b.close()


SOURCES = {"plain": A, "remapped": HOA, "remapped, one policy": HOA_ONE_POLICY, "sender's share": HOA_SENDER_ONLY}
STOCK_SOURCES = {"plain": A, "no IPsec": UNPROTECTED}


def main() -> None:
    with iperf_lab() as (a, b):
        for title, size in SIZES.items():
            results: dict[str, list[tuple[float, float]]] = {kind: [] for kind in SOURCES}
            for r in range(ROUNDS):
                order = list(SOURCES) if r % 2 == 0 else list(reversed(SOURCES))
                for kind in order:
                    results[kind].append(run_iperf(a, SOURCES[kind], size))
            med = {k: (statistics.median(v[0] for v in runs), statistics.median(v[1] for v in runs))
                   for k, runs in results.items()}
            print(f"{title}, {ROUNDS} rounds of {len(SOURCES)} {SECONDS}-second runs, order reversed every round:")
            for kind, (bps, pps) in med.items():
                print(f"  {kind:21s} {bps / 1e6:8.1f} Mbit/s {pps:10.0f} packets/s (median)")
            # one datagram size per part: the throughput and packet-rate ratios are the same number
            for kind in list(SOURCES)[1:]:
                ratios = [rem[1] / plain[1] for rem, plain in zip(results[kind], results["plain"], strict=True)]
                q1, _, q3 = statistics.quantiles(ratios, n=4)
                print(f"  ratio {kind}/plain: median of rounds {statistics.median(ratios):.3f} "
                      f"(interquartile {q1:.3f}-{q3:.3f}); ratio of medians {med[kind][1] / med['plain'][1]:.3f}")
        check_remapped(a, b)


def check_remapped(a: Host, b: Host) -> None:
    """Every packet of the remapped flows went through the sender's remap state,
    else the figures above would be plain ESP under another name."""
    flows = ((SPI_REMAPPED, HOA), (SPI_ONE_POLICY, HOA_ONE_POLICY), (SPI_SENDER_ONLY, HOA_SENDER_ONLY))
    for spi, hoa in flows:
        sent = a.xfrm.get_state(B, spi).packets
        remapped = a.xfrm.get_state(B, 0, XFRM_PROTO_IRO_SRC, hoa).packets
        received = b.xfrm.get_state(B, spi).packets
        print(f"SA {spi:#x} from {hoa}: {sent} packets sent, {remapped} through the remap state, {received} received")
        if not sent or remapped != sent:
            raise RuntimeError(f"SA {spi:#x}: {remapped} of {sent} packets went through the remap state")


if __name__ == "__main__":
    main()
