"""The test suite: host unit tests, then one guest boot running all VM tests."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from . import patches, steps, vm
from .errors import PipelineError
from .paths import DIST, TESTS
from .tools import TEST_TOOLS, require

NO_TESTS_COLLECTED = 5  # pytest's exit code


def run_vm(keyword: str | None, timeout: float, kernel: Path | None = None) -> vm.VmResult:
    """One guest boot running every selected VM test."""
    require(TEST_TOOLS)
    select = ["-k", shlex.quote(keyword)] if keyword else []
    pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--color=no", str(TESTS / "vm"), *select]
    result = vm.boot(" ".join(pytest), kernel=kernel, timeout=timeout)
    first = f"{result.first_test_s:.1f} s" if result.first_test_s is not None else "never"
    steps.console.print(f"guest pytest exit {result.exit_code} after {result.seconds:.1f} s under "
                        f"{result.accel} (first test after {first}); console: {result.console}")
    return result


def check_dist_matches_series() -> None:
    """Refuse to test a kernel built from another patch series than the checkout's."""
    metadata = DIST / "metadata.json"
    if not metadata.exists():
        raise PipelineError(f"{metadata} missing: run './iro build' first")
    built = json.loads(metadata.read_text())
    current = patches.series_id(patches.read_series(patches.series_dir(built["kernel_version"])))
    if built["series_id"] != current:
        raise PipelineError(
            f"dist/ holds a kernel built from series {built['series_id']}, the checkout has {current}: "
            "run './iro build' first"
        )


def run_all(*, host_only: bool, keyword: str | None, timeout: float) -> int:
    select = ["-k", keyword] if keyword else []
    steps.console.print("[bold]host unit tests[/]")
    host = subprocess.run([sys.executable, "-m", "pytest", str(TESTS / "host"), *select]).returncode
    if host == NO_TESTS_COLLECTED and keyword:
        host = 0  # -k chose only VM tests
    if host_only:
        return host
    check_dist_matches_series()
    steps.console.print("[bold]VM tests[/] (one guest boot for the whole run)")
    return host or run_vm(keyword, timeout).exit_code
