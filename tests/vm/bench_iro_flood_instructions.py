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

    def remap_states(present: bool) -> None:
        for state in lab.REMAP:
            if present:
                ha.xfrm.add_state(state)
            else:
                ha.xfrm.delete_state(state.dst, state.spi, state.proto, state.src)

    try:
        lab.flood(peer, ha, next(first_spi))  # warm-up, without and with remap states
        remap_states(True)
        lab.flood(peer, ha, next(first_spi))
        remap_states(False)
        for _ in range(REPEATS):
            for present, label in ((False, "no remap states"), (True, "remap states")):
                if present:
                    remap_states(True)
                mark("")  # the states' setup stays out of the phase
                lab.flood(peer, ha, next(first_spi))
                mark(label, lab.PACKETS)
                if present:
                    remap_states(False)
    finally:
        peer.close()
        ha.close()


if __name__ == "__main__":
    main()
