"""Run mip6d under cProfile in every thread (the event loop and the kernel
thread), for `bench_mip6d.py --profile`: where a home agent's time goes.

    python bench_mip6d_prof.py OUT.pstats [mip6d arguments...]

The daemon is unchanged; only threading.Thread.run is wrapped so that the
executor's kernel thread is profiled too. The merged statistics are written
when the daemon returns (SIGTERM)."""

from __future__ import annotations

import cProfile
import pstats
import sys
import threading

profiles: list[cProfile.Profile] = []
_run = threading.Thread.run


def _profiled_run(self: threading.Thread) -> None:
    profile = cProfile.Profile()
    profiles.append(profile)
    profile.enable()
    try:
        _run(self)
    finally:
        profile.disable()


def main() -> int:
    out = sys.argv[1]
    threading.Thread.run = _profiled_run  # type: ignore[method-assign]
    from mip6d.main import main as mip6d_main

    profile = cProfile.Profile()
    profiles.append(profile)
    profile.enable()
    try:
        code = mip6d_main(sys.argv[2:])
    finally:
        profile.disable()
        stats = pstats.Stats(profiles[0])
        for other in profiles[1:]:
            stats.add(other)
        stats.dump_stats(out)
    return code


if __name__ == "__main__":
    sys.exit(main())
