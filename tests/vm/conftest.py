"""VM test fixtures: these tests need root and a kernel built from this repo."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netlab import Host

if os.environ.get("IRO_IN_GUEST") != "1":
    pytest.skip("VM tests run inside the guest: use './iro test'", allow_module_level=True)

_names = itertools.count()


@pytest.fixture
def hosts() -> Iterator[Callable[[str], Host]]:
    """Factory of network namespaces, all removed after the test."""
    made: list[Host] = []

    def make(role: str) -> Host:
        host = Host(f"{role}{next(_names)}")
        made.append(host)
        return host

    yield make
    for host in made:
        host.close()


@pytest.fixture
def capture_dir(tmp_path: Path) -> Path:
    return tmp_path


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    """Tell the host when the first test starts (the boot-to-first-test benchmark)."""
    marker = Path(os.environ.get("IRO_VM_OUT", "/nonexistent")) / "first-test"
    if marker.parent.is_dir() and not marker.exists():
        marker.write_text(nodeid + "\n")
