"""Phases for the insncount QEMU plugin (run by `./iro bench.iro-flood-instructions`):
bench_iro_spi_flood's home agent with 10,000 SAs receives ESP with unknown SPIs,
without and then with IRO remap states in its namespace, with a mark
(insn_marks.py) around each flood. The figure is exact: the kernel instructions
per unknown-SPI packet, sender and receiver together (one vCPU)."""

from __future__ import annotations

import bench_iro_spi_flood as lab
from insn_marks import mark

REPEATS = 2


def main() -> None:
    peer, ha = lab.setup()
    first_spi = iter(range(0x40000000, 0x7FFFFFFF, lab.PACKETS))
    try:
        for round_ in range(REPEATS + 1):  # round 0 warms up: its phases are unlabelled
            for present, label in ((False, "no remap states"), (True, "remap states")):
                if present:
                    lab.remap_states(ha, True)
                mark("")  # the states' setup stays out of the phase
                lab.flood(peer, ha, next(first_spi))
                mark(label if round_ else "", lab.PACKETS)
                if present:
                    lab.remap_states(ha, False)
    finally:
        peer.close()
        ha.close()


if __name__ == "__main__":
    main()
