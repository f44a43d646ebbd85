"""What the mobility daemon relies on to detect IRO support: a kernel without
the iro series refuses the IRO socket options (the host runs a stock kernel)."""

from __future__ import annotations

import errno
import os
import socket

import pytest

IPV6_RECVIROSRC, IPV6_RECVIRODST = 90, 92


@pytest.mark.skipif("iro" in os.uname().release, reason="the host runs an iro kernel")
@pytest.mark.parametrize("option", [IPV6_RECVIROSRC, IPV6_RECVIRODST])
def test_stock_kernel_refuses_iro_options(option: int) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock, pytest.raises(OSError) as err:
        sock.setsockopt(socket.IPPROTO_IPV6, option, 1)
    assert err.value.errno == errno.ENOPROTOOPT
