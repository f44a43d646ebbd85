"""What ESP with unknown SPIs costs a home agent that holds many SAs, with and
without IRO remap states in its namespace, side by side (run in the guest by
`./iro bench.iro`). Without patch 10 every such packet walked the SPI table once
any remap state existed; with it the ratio should stay near 1."""

from __future__ import annotations

import json
import os
import socket
import statistics
import struct
import time

from iro_lab import RO
from mip6_lab import GCM
from mip6d.xfrm import State
from mip6d.xfrm.api import XFRM_PROTO_IRO_DST, XFRM_PROTO_IRO_SRC, XFRM_STATE_WILDRECV
from netlab import Host, link

HA, PEER, HOA, COA = "2001:db8:1::1", "2001:db8:1::2", "2001:db8:100::10", "2001:db8:200::10"
SAS = int(os.environ.get("IRO_BENCH_SAS", "10000"))
PACKETS = int(os.environ.get("IRO_BENCH_FLOOD", "2000"))
ROUNDS = int(os.environ.get("IRO_BENCH_ROUNDS", "5"))


def flood(peer: Host, ha: Host, first_spi: int) -> float:
    """Seconds until the HA has dropped PACKETS ESP packets with unknown SPIs."""
    sock = peer.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ESP)
    payload = bytes(64)
    before = ha.xfrm_stat()["XfrmInNoStates"]
    start = time.perf_counter()
    for n in range(PACKETS):
        sock.sendto(struct.pack("!II", first_spi + n, 1) + payload, (HA, 0))
    sock.close()
    while ha.xfrm_stat()["XfrmInNoStates"] - before < PACKETS:
        if time.perf_counter() - start > 600:
            raise RuntimeError("the HA did not count every packet")
        time.sleep(0.01)
    return time.perf_counter() - start


REMAP = [State("::", "::", XFRM_PROTO_IRO_SRC, mode=RO, coaddr="::", flags=XFRM_STATE_WILDRECV),
         State(HA, HOA, XFRM_PROTO_IRO_DST, mode=RO, coaddr=COA)]


def remap_states(ha: Host, present: bool) -> None:
    """Add the HA's remap states, or delete them."""
    for state in REMAP:
        if present:
            ha.xfrm.add_state(state)
        else:
            ha.xfrm.delete_state(state.dst, state.spi, state.proto, state.src)


def setup() -> tuple[Host, Host]:
    """A peer, and a HA that holds SAS SAs (one per simulated mobile node, keyed on its HoA)."""
    peer, ha = Host("flood-peer"), Host("flood-ha")
    link(peer, "p0", ha, "h0")
    peer.add_address("p0", PEER)
    ha.add_address("h0", HA)
    for i in range(SAS):
        ha.xfrm.add_state(State(f"2001:db8:100::{i // 65536:x}:{i % 65536:x}", HA, spi=0x100000 + i, aead=GCM))
    return peer, ha


def main() -> None:
    started = time.perf_counter()
    peer, ha = setup()
    setup_s = time.perf_counter() - started
    times: dict[str, list[float]] = {"plain": [], "iro": []}
    spi = 0x40000000
    for _ in range(ROUNDS):
        for kind in ("plain", "iro"):
            if kind == "iro":
                remap_states(ha, True)
            times[kind].append(flood(peer, ha, spi))
            spi += PACKETS
            if kind == "iro":
                remap_states(ha, False)
    plain, iro = statistics.median(times["plain"]), statistics.median(times["iro"])
    result = {"sas": SAS, "packets": PACKETS, "rounds": ROUNDS, "setup_s": round(setup_s, 1),
              "plain_s": round(plain, 3), "iro_s": round(iro, 3), "iro_over_plain": round(iro / plain, 3)}
    print(f"unknown-SPI flood to a HA with {SAS} SAs, {PACKETS} packets, median of {ROUNDS} alternating rounds:")
    print(f"  without remap states {plain:.3f} s, with remap states {iro:.3f} s: ratio {iro / plain:.3f}")
    out = os.environ.get("IRO_VM_OUT")
    if out and os.path.isdir(out):
        with open(os.path.join(out, "bench-spi-flood.json"), "w") as handle:
            json.dump(result, handle, indent=2)
    peer.close()
    ha.close()


if __name__ == "__main__":
    main()
