"""The test suite: host unit tests, then one guest boot running all VM tests."""

from __future__ import annotations

import subprocess
import sys

from . import steps, vm
from .paths import TESTS
from .tools import TEST_TOOLS, require


def run_all(*, host_only: bool, keyword: str | None, timeout: float) -> int:
    select = ["-k", keyword] if keyword else []
    steps.console.print("[bold]host unit tests[/]")
    host = subprocess.run([sys.executable, "-m", "pytest", str(TESTS / "host"), *select]).returncode
    if host_only:
        return host
    require(TEST_TOOLS)
    steps.console.print("[bold]VM tests[/] (one guest boot for the whole run)")
    pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(TESTS / "vm"), *select]
    result = vm.boot(" ".join(pytest), timeout=timeout)
    steps.console.print(f"guest pytest exit {result.exit_code} after {result.seconds:.1f} s under "
                        f"{result.accel}; console: {result.console}")
    return host or result.exit_code
