"""The VM runner against the real built kernel: exit codes, panics and hangs.
These boot QEMU (a few seconds each under TCG), so they need `./iro build` first."""

from __future__ import annotations

import pytest

from iro_pipeline import vm
from iro_pipeline.errors import PipelineError
from iro_pipeline.paths import DIST

pytestmark = pytest.mark.skipif(not list(DIST.glob("linux-image-*.deb")), reason="no kernel built: ./iro build")


def test_exit_code_and_output_come_back() -> None:
    result = vm.boot("echo hello from $(uname -r); exit 7", timeout=120, echo=False)
    assert result.exit_code == 7
    assert "hello from 6.1" in result.output.read_text()
    assert "iro-guest: running command" in result.console.read_text()


def test_panic_fails_with_console_excerpt() -> None:
    with pytest.raises(PipelineError, match=r"guest kernel reported a crash; full console: .*console.log") as err:
        vm.boot("echo c > /proc/sysrq-trigger", timeout=120, echo=False)
    assert "sysrq" in str(err.value).lower() or "panic" in str(err.value).lower()


def test_warning_fails_even_when_the_command_succeeds(tmp_path) -> None:
    # a WARNING printed into the kernel log, as a buggy path would
    with pytest.raises(PipelineError, match="crash"):
        vm.boot("echo 'WARNING: CPU: 0 PID: 1 at test' > /dev/kmsg; true", timeout=120, echo=False)


def test_hang_times_out_and_keeps_console() -> None:
    with pytest.raises(PipelineError, match=r"guest hung: no result after 25 s; console saved at .*console.log"):
        vm.boot("sleep 600", timeout=25, echo=False)
