"""Phases for the insncount QEMU plugin (run by `./iro bench.iro-instructions`):
the flows of bench_iro_throughput's lab each send the same number of 64-byte
UDP datagrams, and a syncfs(2) before and after each flow marks the phase:
the plugin writes its counts whenever the guest enters the syncfs system
call, which nothing else in the guest makes.

The sender and the receiver are started once, before the first mark, so that
a phase holds only the datagrams' work: the sender's sends (the receive side
runs in the same softirq, one vCPU) and the receiver's reads. The phase list
goes to $IRO_VM_OUT/phases.json for the host to pair with the snapshots."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import bench_iro_throughput as lab

DATAGRAMS = int(os.environ.get("IRO_BENCH_DATAGRAMS", "20000"))
REPEATS = 2
PORT = 5001
SENDER = f"""
import socket, sys
socks = {{}}
for src in sys.argv[1:]:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind((src, 0)); s.connect(({lab.B!r}, {PORT})); socks[src] = s
data = bytes(64)
for line in sys.stdin:
    src, count = line.split()
    send = socks[src].send
    for _ in range(int(count)):
        send(data)
    print("sent", flush=True)
"""
RECEIVER = f"""
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 256 << 20)  # SO_RCVBUFFORCE: a whole phase fits, none is dropped
s.bind(({lab.B!r}, {PORT}))
s.settimeout(60)  # a lost datagram: report the count instead of waiting for ever
want, got = int(sys.argv[1]), 0
print("ready", flush=True)
while True:
    try:
        s.recv(2048)
        got += 1
    except TimeoutError:
        if not got:
            continue  # between phases
    else:
        if got < want:
            continue
    print(got, flush=True)
    got = 0
"""


def mark() -> None:
    """The end of a phase, for the plugin (see above)."""
    fd = os.open("/", os.O_RDONLY)
    try:
        ctypes.CDLL(None, use_errno=True).syncfs(fd)
    finally:
        os.close(fd)


def main() -> None:
    a, b = lab.setup()
    py = sys.executable
    receiver = subprocess.Popen(["ip", "netns", "exec", b.name, py, "-c", RECEIVER, str(DATAGRAMS)],
                                stdout=subprocess.PIPE, text=True)
    sender = subprocess.Popen(["ip", "netns", "exec", a.name, py, "-c", SENDER, *lab.SOURCES.values()],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert receiver.stdout and sender.stdin and sender.stdout
    assert receiver.stdout.readline().strip() == "ready"

    def flow(kind: str) -> None:
        sender.stdin.write(f"{lab.SOURCES[kind]} {DATAGRAMS}\n")  # type: ignore[union-attr]
        sender.stdin.flush()  # type: ignore[union-attr]
        assert sender.stdout.readline().strip() == "sent"  # type: ignore[union-attr]
        got = receiver.stdout.readline().strip()  # type: ignore[union-attr]
        if got != str(DATAGRAMS):
            raise RuntimeError(f"{kind}: the receiver reported {got!r}, not {DATAGRAMS} datagrams")

    try:
        for kind in lab.SOURCES:  # warm-up: bundles built, caches filled
            flow(kind)
        phases = ["start"]
        mark()
        for _ in range(REPEATS):
            for kind in lab.SOURCES:
                flow(kind)
                mark()
                phases.append(kind)
        drops = [line for line in b.run("cat", "/proc/net/snmp6").splitlines()
                 if line.startswith(("Udp6RcvbufErrors", "Udp6InErrors")) and line.split()[1] != "0"]
        if drops:
            raise RuntimeError(f"the receiver dropped datagrams: {drops}")
        lab.check_remapped(a, b)
    finally:
        sender.kill()
        receiver.kill()
        a.close()
        b.close()
    Path(os.environ["IRO_VM_OUT"], "phases.json").write_text(json.dumps({"datagrams": DATAGRAMS, "phases": phases}))


if __name__ == "__main__":
    main()
