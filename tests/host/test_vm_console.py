"""Crash detection on the guest console, and tool checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from iro_pipeline import tools, vm
from iro_pipeline.errors import PipelineError

CLEAN = "[    0.000000] Linux version 6.1.192-iro\n[    1.2] iro-guest: running command\n"


@pytest.mark.parametrize("splat", [
    "[    2.1] Kernel panic - not syncing: Attempted to kill init!",
    "[    2.1] BUG: KASAN: slab-out-of-bounds in xfrm_input+0x1",
    "[    2.1] WARNING: CPU: 0 PID: 1 at net/xfrm/xfrm_state.c:100",
    "[    2.1] Oops: 0000 [#1] SMP",
    "[    2.1] unreferenced object 0xffff888003a4c000 (size 64):",
    "[    2.1] BUG: kernel NULL pointer dereference, address: 0000000000000000",
])
def test_splats_are_found(tmp_path: Path, splat: str) -> None:
    console = tmp_path / "console.log"
    console.write_text(CLEAN + splat + "\n[    2.2] more\n")
    excerpt = vm.crash_excerpt(console)
    assert excerpt is not None and splat in excerpt


def test_clean_console(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_text(CLEAN)
    assert vm.crash_excerpt(console) is None


def test_missing_tool_names_package() -> None:
    with pytest.raises(PipelineError, match="missing tool 'no-such-tool': install it with 'apt-get install pkg'"):
        tools.require({"no-such-tool": "pkg"})
