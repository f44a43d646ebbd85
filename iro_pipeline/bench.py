"""Pipeline benchmark: cold build and tests, the warm edit-one-patch loop, and
guest boot to the first test. Figures are printed side by side; these machines
are noisy, so compare them, don't assert on them."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from rich.table import Table

from . import build, patches, steps, testrun, vm
from .paths import cache_root

# A one-line edit in a file the real series will touch; it only changes a comment.
BENCH_PATCH = """\
--- a/net/xfrm/xfrm_state.c
+++ b/net/xfrm/xfrm_state.c
@@ -1,3 +1,4 @@
+// iro benchmark edit {n}
 // SPDX-License-Identifier: GPL-2.0-only
 /*
  * xfrm_state.c
"""
GOALS = {"cold pipeline": 20 * 60, "vm kernel build (cold)": 10 * 60, "warm loop": 3 * 60,
         "boot to first test": 10}


def _series_with_bench_patch(directory: Path, n: int) -> Path:
    """The project's series plus one benchmark patch at its end."""
    src = patches.series_dir("6.1")
    shutil.copytree(src, directory, dirs_exist_ok=True)
    (directory / "9999-bench.patch").write_text(BENCH_PATCH.format(n=n))
    series = (src / "series").read_text()
    (directory / "series").write_text(series.rstrip("\n") + "\n9999-bench.patch\n")
    return directory


def pipeline(cold: bool = True) -> dict[str, float]:
    figures: dict[str, float] = {}
    work = Path(tempfile.mkdtemp(prefix="iro-bench-"))
    dist = work / "dist"
    saved_cache = os.environ.get("IRO_CACHE")
    try:
        if cold:
            os.environ["IRO_CACHE"] = str(work / "cold-cache")
            start = time.monotonic()
            build.build(dist=dist)
            figures["vm kernel build (cold)"] = steps.timings["kernel build (bindeb-pkg)"]
            result = testrun.run_vm(None, 1800, kernel=vm.kernel_from_dist(dist))
            figures["cold pipeline"] = time.monotonic() - start
            figures["cold pipeline tests exit code"] = result.exit_code
            if result.first_test_s is not None:
                figures["boot to first test"] = result.first_test_s
            if saved_cache is None:
                os.environ.pop("IRO_CACHE")
            else:
                os.environ["IRO_CACHE"] = saved_cache
            shutil.rmtree(work / "cold-cache", ignore_errors=True)
        series = _series_with_bench_patch(work / "series", 1)
        build.build(series_dir=series, dist=dist)  # the warm starting point
        _series_with_bench_patch(series, 2)  # edit the patch
        start = time.monotonic()
        build.build(series_dir=series, dist=dist)
        rebuild = time.monotonic() - start
        result = testrun.run_vm("unknown_spi", 600, kernel=vm.kernel_from_dist(dist))
        figures["warm rebuild after a patch edit"] = rebuild
        if result.first_test_s is not None:
            figures["warm loop"] = rebuild + result.first_test_s
            figures.setdefault("boot to first test", result.first_test_s)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _report(figures)
    return figures


def _report(figures: dict[str, float]) -> None:
    table = Table(title=f"iro pipeline benchmark ({os.cpu_count()} cores, cache {cache_root()})")
    table.add_column("measure")
    table.add_column("seconds", justify="right")
    table.add_column("goal", justify="right")
    table.add_column("ratio to goal", justify="right")
    for name, value in figures.items():
        goal = GOALS.get(name)
        table.add_row(name, f"{value:.1f}", f"{goal}" if goal else "", f"{value / goal:.2f}" if goal else "")
    steps.console.print(table)
