"""The host side of the instruction counts: the plugin builds, its snapshots are
named by function, and the report pairs phases with flows."""

from __future__ import annotations

from pathlib import Path

import pytest

from iro_pipeline import insncount
from iro_pipeline.errors import PipelineError

SYSTEM_MAP = """\
ffffffff81000000 T _stext
ffffffff81410180 T xfrm_selector_match
ffffffff81410500 t xfrm6_iro_remap
ffffffff81410600 D some_data
ffffffff811a7de0 T __x64_sys_syncfs
"""
# two phases of 10 datagrams: start, plain, remapped (the last snapshot is the plugin's exit)
COUNTS = """\
snapshot 0
ffffffff81000010 999
snapshot 1
ffffffff81410190 100
ffffffff81410184 80
401000 500
snapshot 2
ffffffff81410190 300
ffffffff81410510 50
401000 500
snapshot 3
ffffffff81000010 7
"""


@pytest.fixture
def symbols(tmp_path: Path) -> insncount.Symbols:
    (tmp_path / "System.map").write_text(SYSTEM_MAP)
    return insncount.Symbols(tmp_path / "System.map")


def test_addresses_are_named_by_the_function_they_fall_in(symbols: insncount.Symbols) -> None:
    assert symbols.address("__x64_sys_syncfs") == 0xFFFFFFFF811A7DE0
    assert symbols.function(0xFFFFFFFF81410190) == "xfrm_selector_match"
    assert symbols.function(0xFFFFFFFF81410600) == "xfrm6_iro_remap"  # data symbols do not end a function
    assert symbols.function(0x401000) == insncount.USER
    with pytest.raises(PipelineError, match="no symbol nope"):
        symbols.address("nope")


def test_report_gives_instructions_per_datagram_and_the_difference(tmp_path: Path,
                                                                    symbols: insncount.Symbols) -> None:
    (tmp_path / "counts").write_text(COUNTS)
    counts = insncount.snapshots(tmp_path / "counts", symbols)
    assert counts[1]["xfrm_selector_match"] == 180
    text = insncount.report(counts, ["start", "plain", "remapped"], datagrams=10)
    assert "plain" in text and "remapped - plain" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines()[2:4]}
    assert rows["plain"][1:4] == ["18", "+0", "50"]
    assert rows["remapped"][1:4] == ["35", "+17", "50"]
    assert "+12.0      18.0 ->     30.0  xfrm_selector_match" in text
    assert "+5.0       0.0 ->      5.0  xfrm6_iro_remap" in text
    for wrong in (counts[:3], [*counts, counts[0]]):  # one missing, or a stray syncfs in the guest
        with pytest.raises(PipelineError, match=f"{len(wrong)} snapshots for 3 phases"):
            insncount.report(wrong, ["start", "plain", "remapped"], datagrams=10)


def test_the_plugin_builds() -> None:
    plugin = insncount.build_plugin()
    assert plugin.exists() and plugin.stat().st_size > 0


def test_phase_report_gives_each_counted_phase_per_unit(tmp_path: Path, symbols: insncount.Symbols) -> None:
    (tmp_path / "counts").write_text(COUNTS)
    counts = insncount.snapshots(tmp_path / "counts", symbols)
    phases = [{"label": "set-up", "units": 0}, {"label": "first registrations", "units": 10},
              {"label": "refreshes", "units": 5}]
    text = insncount.phase_report(counts, phases).splitlines()
    assert text[0] == ("first registrations: 10 units; per unit 68 instructions, 18 in the kernel, "
                       "50 in user space (all processes)")
    assert text[1].split() == ["18", "xfrm_selector_match"]
    assert text[2].startswith("refreshes: 5 units; per unit 170 instructions, 70 in the kernel")
    assert "set-up" not in "\n".join(text)
    with pytest.raises(PipelineError, match="4 snapshots for 2 phases"):
        insncount.phase_report(counts, phases[:2])
