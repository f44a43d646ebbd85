"""Fuzz the IRO input hook (run in the guest by `./iro fuzz`, on the debug
profile: KASAN, lockdep, kmemleak). Random and malformed ESP packets go at the
remapped addresses of an IRO lab, as raw Ethernet frames; deterministic phases
check their counters exactly, the console check catches splats, and kmemleak
is scanned at the end."""

from __future__ import annotations

import os
import random
import socket
import struct
import sys
import time
from collections.abc import Callable

from iro_lab import install_ha, install_mn, iro_state
from mip6_lab import COA, COA2, HA, HOA, SPI_HA_MN, SPI_MN_HA, build
from mip6d.xfrm.api import XFRM_PROTO_IRO_SRC
from netlab import Host, counter_delta

ETH_P_IPV6 = 0x86DD
rng = random.Random(int(os.environ.get("IRO_FUZZ_SEED", "1")))


def addr(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, text)


def ipv6(src: bytes, dst: bytes, nh: int, payload: bytes, plen: int | None = None) -> bytes:
    length = len(payload) if plen is None else plen
    return struct.pack("!IHBB", 6 << 28, length, nh, 64) + src + dst + payload


def esp(spi: int, size: int) -> bytes:
    return struct.pack("!II", spi, rng.randrange(1, 1 << 32)) + rng.randbytes(size)


def random_spi() -> int:
    return rng.choice([rng.randrange(1, 1 << 32), SPI_HA_MN ^ rng.randrange(1, 256), 0])


def ext(nh: int, body: bytes) -> bytes:
    """An extension header (hop-by-hop, destination options, routing) padded to 8n."""
    body += bytes(-(len(body) + 2) % 8)
    return struct.pack("!BB", nh, (len(body) + 2) // 8 - 1) + body


def malformed(src: bytes, dst: bytes) -> bytes:
    kind = rng.randrange(7)
    if kind == 0:  # truncated ESP header
        return ipv6(src, dst, 50, rng.randbytes(rng.randrange(0, 8)))
    if kind == 1:  # payload length larger or smaller than the packet
        body = esp(SPI_HA_MN, rng.randrange(0, 64))
        return ipv6(src, dst, 50, body, plen=rng.randrange(0, 0xFFFF))
    if kind == 2:  # fragment header before ESP, first or later fragment
        offset = rng.choice([0, rng.randrange(1, 8192)])
        frag = struct.pack("!BBHI", 50, 0, offset << 3 | rng.randrange(2), rng.randrange(1 << 32))
        return ipv6(src, dst, 44, frag + esp(random_spi(), rng.randrange(0, 80)))
    if kind == 3:  # hop-by-hop and destination options (possibly a HAO) before ESP
        hao = struct.pack("!BB", 201, 16) + rng.choice([addr(HOA), rng.randbytes(16)])
        dest = ext(50, bytes(4) + hao if rng.random() < 0.5 else rng.randbytes(rng.randrange(0, 30)))
        return ipv6(src, dst, 0, ext(60, bytes(4)) + dest + esp(SPI_HA_MN, 40))
    if kind == 4:  # a type 2 routing header before ESP
        rh = struct.pack("!BBBBI", 50, 2, 2, rng.randrange(2), 0) + rng.choice([addr(HOA), rng.randbytes(16)])
        return ipv6(src, dst, 43, rh + esp(SPI_HA_MN, 40))
    if kind == 5:  # random bytes as ESP with a known SPI
        return ipv6(src, dst, 50, esp(rng.choice([SPI_HA_MN, SPI_MN_HA]), rng.randrange(0, 200)))
    return ipv6(src, dst, 50, rng.randbytes(rng.randrange(0, 200)))  # anything


class Injector:
    """Raw Ethernet frames out of one end of the lab's veth pair."""

    def __init__(self, host: Host, ifname: str, peer: Host, peer_if: str) -> None:
        self.sock = host.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IPV6))
        self.sock.bind((ifname, 0))
        mac = peer.ipr.get_links(peer.ifindex(peer_if))[0].get_attr("IFLA_ADDRESS")
        self.header = bytes.fromhex(mac.replace(":", "")) + bytes(6) + struct.pack("!H", ETH_P_IPV6)

    def send(self, packet: bytes) -> None:
        self.sock.send(self.header + packet)


def phase(name: str, target: Host, count: int, make: Callable[[], bytes], injector: Injector,
          expect: dict[str, int] | None) -> int:
    before = target.xfrm_stat()
    for _ in range(count):
        injector.send(make())
    time.sleep(1)
    delta = counter_delta(before, target.xfrm_stat())
    ok = expect is None or all(delta.get(k, 0) == v for k, v in expect.items())
    print(f"{name}: {count} packets, xfrm_stat delta {delta}" + ("" if ok else f", expected {expect}"))
    return 0 if ok else 1


def main(total: int) -> int:
    lab = build(lambda role: Host(f"fz-{role}"))
    install_mn(lab)
    install_ha(lab)
    # the HA also holds an exact rule for this MN, expecting it at CoA2
    lab.ha.xfrm.add_state(iro_state(HOA, HA, XFRM_PROTO_IRO_SRC, COA2))
    to_mn = Injector(lab.ha, "ha0", lab.mn, "mn0")
    to_ha = Injector(lab.mn, "mn0", lab.ha, "ha0")
    ha, coa, coa2, hoa = addr(HA), addr(COA), addr(COA2), addr(HOA)
    exact = total // 10
    failures = 0
    failures += phase("unknown SPI to the CoA", lab.mn, exact,
                      lambda: ipv6(ha, coa, 50, esp(rng.randrange(0x10000, 1 << 31), 48)), to_mn,
                      {"XfrmInNoStates": exact})
    failures += phase("BU from a CoA the exact rule rejects", lab.ha, exact,
                      lambda: ipv6(coa, ha, 50, esp(SPI_MN_HA, 48)), to_ha, {"XfrmInStateMismatch": exact})
    failures += phase("remapped BA with a bad ICV", lab.mn, exact,
                      lambda: ipv6(ha, coa, 50, esp(SPI_HA_MN, 48)), to_mn, {"XfrmInStateProtoError": exact})
    rest = total - 3 * exact
    targets = [(to_mn, ha, coa), (to_mn, ha, coa2), (to_ha, coa, ha), (to_ha, coa2, ha), (to_mn, ha, hoa)]

    start = time.monotonic()
    for _ in range(rest):
        injector, src, dst = rng.choice(targets)
        injector.send(malformed(rng.choice([src, rng.randbytes(16)]), dst))
    print(f"malformed and random: {rest} packets in {time.monotonic() - start:.1f} s")
    print(f"total sent: {3 * exact + rest}")
    # Delete every state while the namespaces still exist and let the state GC
    # run the types' destructors, so the console check covers them too (the
    # netns teardown that would otherwise do it is asynchronous).
    for host in (lab.mn, lab.ha):
        host.xfrm.flush_states(0)
    time.sleep(3)
    print("all states flushed; waited 3 s for the state GC")
    for host in (lab.mn, lab.ha):
        host.close()
    return failures


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
