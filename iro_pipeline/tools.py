"""Host tools the pipeline needs, and the Debian package that provides each."""

from __future__ import annotations

import shutil

from .errors import PipelineError

# tool -> Debian package
BUILD_TOOLS = {
    "make": "make",
    "gcc": "gcc",
    "bc": "bc",
    "bison": "bison",
    "flex": "flex",
    "pahole": "dwarves",
    "cpio": "cpio",
    "rsync": "rsync",
    "ccache": "ccache",
    "dpkg-buildpackage": "dpkg-dev",
    "dh_testdir": "debhelper",
    "fakeroot": "fakeroot",
    "patch": "patch",
    "xz": "xz-utils",
    "depmod": "kmod",
}
VM_TOOLS = {"qemu-system-x86_64": "qemu-system-x86"}
TEST_TOOLS = {"tcpdump": "tcpdump", "ip": "iproute2", "ping": "iputils-ping"}


def require(tools: dict[str, str]) -> None:
    """Fail with one line naming the first missing tool and its package."""
    for tool, package in tools.items():
        if shutil.which(tool) is None:
            raise PipelineError(f"missing tool '{tool}': install it with 'apt-get install {package}'")
