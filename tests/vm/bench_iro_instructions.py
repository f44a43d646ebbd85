"""Phases for the insncount QEMU plugin (run by `./iro bench.iro-instructions`):
the flows of bench_iro_throughput's lab each send the same number of 64-byte
UDP datagrams, with a mark (insn_marks.py) before and after each flow.
With IRO_BENCH_STOCK=1 (`./iro bench.iro-stock-instructions`) only the flows
that a kernel without the series runs too: plain ESP and no IPsec. That
comparison is across boots, and the neighbour table's hash is seeded at
random each boot: a datagram to b walks one more entry whenever b's entry
shares a bucket with a multicast one (17 instructions). So b's entry is
permanent and the multicast entries are deleted before each flow.

The sender and the receiver are started once, before the first mark, so that
a phase holds only the datagrams' work: the sender's sends (the receive side
runs in the same softirq, one vCPU) and the receiver's reads."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import bench_iro_throughput as lab
from insn_marks import mark

DATAGRAMS = int(os.environ.get("IRO_BENCH_DATAGRAMS", "20000"))
STOCK = os.environ.get("IRO_BENCH_STOCK") == "1"
FLOWS = lab.STOCK_SOURCES if STOCK else lab.SOURCES
REPEATS = 2
PORT = 5001
END = "0xff"  # the first octet of the datagram that ends a flow, sent after its datagrams
SENDER = f"""
import socket, sys
socks = {{}}
for src in sys.argv[1:]:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind((src, 0)); s.connect(({lab.B!r}, {PORT})); socks[src] = s
data, end = bytes(64), bytes([{END}]) * 64
for line in sys.stdin:
    src, count = line.split()
    send = socks[src].send
    for _ in range(int(count)):
        send(data)
    send(end)
    print("sent", flush=True)
"""
# A blocking receive: a timeout would add a poll() to every datagram. Lost datagrams show
# in the count at the flow's end; a lost end, after a minute without progress.
RECEIVER = f"""
import socket, sys, threading, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 256 << 20)  # SO_RCVBUFFORCE: a whole phase fits, none is dropped
s.bind(({lab.B!r}, {PORT}))
got = 0
def watchdog():
    seen = 0
    while True:
        time.sleep(60)
        if got and got == seen:
            print(got, "and no end", flush=True)
        seen = got
threading.Thread(target=watchdog, daemon=True).start()
print("ready", flush=True)
while True:
    if s.recv(2048)[0] == {END}:
        print(got, flush=True)
        got = 0
    else:
        got += 1
"""


def main() -> None:
    a, b = lab.setup(stock=STOCK)
    py = sys.executable
    receiver = subprocess.Popen(["ip", "netns", "exec", b.name, py, "-c", RECEIVER],
                                stdout=subprocess.PIPE, text=True)
    sender = subprocess.Popen(["ip", "netns", "exec", a.name, py, "-c", SENDER, *FLOWS.values()],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert receiver.stdout and sender.stdin and sender.stdout
    assert receiver.stdout.readline().strip() == "ready"

    if STOCK:
        mac = b.ipr.get_links(b.ifindex("b0"))[0].get_attr("IFLA_ADDRESS")
        a.run("ip", "-6", "neigh", "replace", lab.B, "lladdr", mac, "dev", "a0", "nud", "permanent")

    def flow(kind: str) -> None:
        if STOCK:
            a0 = a.ifindex("a0")
            for neighbour in a.ipr.get_neighbours(family=socket.AF_INET6, ifindex=a0):
                if (dst := neighbour.get_attr("NDA_DST")).startswith("ff"):
                    a.ipr.neigh("del", family=socket.AF_INET6, dst=dst, ifindex=a0)
            mark("")  # the deletions' work is no flow's
        sender.stdin.write(f"{FLOWS[kind]} {DATAGRAMS}\n")  # type: ignore[union-attr]
        sender.stdin.flush()  # type: ignore[union-attr]
        assert sender.stdout.readline().strip() == "sent"  # type: ignore[union-attr]
        got = receiver.stdout.readline().strip()  # type: ignore[union-attr]
        if got != str(DATAGRAMS):
            raise RuntimeError(f"{kind}: the receiver reported {got!r}, not {DATAGRAMS} datagrams")

    try:
        for kind in FLOWS:  # warm-up: bundles built, caches filled
            flow(kind)
        mark("start")
        for _ in range(REPEATS):
            for kind in FLOWS:
                flow(kind)
                mark(kind, DATAGRAMS)
        drops = [line for line in b.run("cat", "/proc/net/snmp6").splitlines()
                 if line.startswith(("Udp6RcvbufErrors", "Udp6InErrors")) and line.split()[1] != "0"]
        if drops:
            raise RuntimeError(f"the receiver dropped datagrams: {drops}")
        if not STOCK:
            lab.check_remapped(a, b)
    finally:
        sender.kill()
        receiver.kill()
        a.close()
        b.close()


if __name__ == "__main__":
    main()
