"""What the mobility daemon relies on to detect IRO support: a kernel without
the iro series refuses the IRO socket options (the host runs a stock kernel)."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

IPV6_RECVIROSRC, IPV6_RECVIRODST = 90, 92


@pytest.mark.skipif("iro" in os.uname().release, reason="the host runs an iro kernel")
@pytest.mark.parametrize("option", [IPV6_RECVIROSRC, IPV6_RECVIRODST])
def test_stock_kernel_refuses_iro_options(option: int) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock, pytest.raises(OSError) as err:
        sock.setsockopt(socket.IPPROTO_IPV6, option, 1)
    assert err.value.errno == errno.ENOPROTOOPT


@pytest.mark.skipif("iro" in os.uname().release, reason="the host runs an iro kernel")
def test_mip6d_refuses_iro_mode_on_a_stock_kernel() -> None:
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "mip6d", "-c", str(repo / "umip/examples/mip6d-ha-iro.conf"), "--check"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(repo / "umip")}, timeout=60)
    assert result.returncode == 3
    assert result.stderr.strip() == (f"mip6d: kernel {os.uname().release} has no IRO support (IPV6_RECVIROSRC: "
                                     "ENOPROTOOPT); UseMnHaIRO needs a kernel built with the iro patch series")
