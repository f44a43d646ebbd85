"""kconfiglib workaround, fragment parsing and requested-symbol verification."""

from __future__ import annotations

import textwrap
from pathlib import Path

import kconfiglib
import pytest

from iro_pipeline import kconfig
from iro_pipeline.errors import PipelineError

KCONFIG = """
config MODULES
\tbool "modules"
\tmodules

config NET
\tbool "net"

config XFRM_USER
\ttristate "xfrm user"
\tdepends on NET && MODULES

config HIDDEN
\tbool
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "Kconfig").write_text(textwrap.dedent(KCONFIG))
    return tmp_path


def test_stock_kconfiglib_fails_on_bare_modules(tree: Path) -> None:
    with pytest.raises(kconfiglib.KconfigError, match="modules"):
        kconfiglib.Kconfig(str(tree / "Kconfig"), warn=False)


def test_workaround_parses_bare_modules(tree: Path) -> None:
    kconf = kconfig.load_kconfig(tree, "6.1.0")
    assert kconf.modules is kconf.syms["MODULES"]
    assert {"NET", "XFRM_USER", "HIDDEN"} <= set(kconf.syms)


def fragment(tmp_path: Path, text: str) -> list[kconfig.Request]:
    path = tmp_path / "frag.config"
    path.write_text(textwrap.dedent(text))
    return kconfig.read_fragment(path)


def test_fragment_lines(tmp_path: Path) -> None:
    reqs = fragment(tmp_path, """\
        # comment
        CONFIG_NET=y
        # CONFIG_MODULES is not set
        CONFIG_CMDLINE="a b"
        """)
    assert [(r.name, r.wanted) for r in reqs] == [("NET", "y"), ("MODULES", "n"), ("CMDLINE", "a b")]
    assert reqs[0].where.endswith("frag.config:2")


def test_fragment_garbage_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"frag.config:2: not a config line: 'XFRM=y'"):
        fragment(tmp_path, "CONFIG_NET=y\nXFRM=y\n")


def test_unmet_dependency_names_symbol_and_expression(tree: Path, tmp_path: Path) -> None:
    kconf = kconfig.load_kconfig(tree, "6.1.0")
    reqs = fragment(tmp_path, "CONFIG_XFRM_USER=y\nCONFIG_NET=y\n")
    with pytest.raises(PipelineError) as err:
        kconfig.apply_requests(kconf, reqs)
    assert "CONFIG_XFRM_USER=y (" in str(err.value) and "depends on: NET && MODULES" in str(err.value)
    assert "CONFIG_NET" not in str(err.value)


def test_promptless_symbol_is_reported(tree: Path, tmp_path: Path) -> None:
    kconf = kconfig.load_kconfig(tree, "6.1.0")
    with pytest.raises(PipelineError, match=r"CONFIG_HIDDEN=y .*\(no prompt"):
        kconfig.apply_requests(kconf, fragment(tmp_path, "CONFIG_HIDDEN=y\n"))


def test_unknown_symbol(tree: Path, tmp_path: Path) -> None:
    kconf = kconfig.load_kconfig(tree, "6.1.0")
    with pytest.raises(PipelineError, match=r"frag.config:1: unknown symbol CONFIG_NOPE"):
        kconfig.apply_requests(kconf, fragment(tmp_path, "CONFIG_NOPE=y\n"))


def test_requests_met(tree: Path, tmp_path: Path) -> None:
    kconf = kconfig.load_kconfig(tree, "6.1.0")
    kconfig.apply_requests(kconf, fragment(tmp_path, "CONFIG_MODULES=y\nCONFIG_NET=y\nCONFIG_XFRM_USER=m\n"))
    assert kconf.syms["XFRM_USER"].str_value == "m"


def test_olddefconfig_result_is_rechecked(tree: Path, tmp_path: Path) -> None:
    kconf = kconfig.load_kconfig(tree, "6.1.0")
    reqs = fragment(tmp_path, "CONFIG_NET=y\nCONFIG_XFRM_USER=y\n")
    dotconfig = tmp_path / ".config"
    dotconfig.write_text("CONFIG_NET=y\n# CONFIG_XFRM_USER is not set\n")
    problems = kconfig.unmet(kconf, reqs, kconfig.read_dotconfig(dotconfig))
    assert len(problems) == 1 and problems[0].startswith("CONFIG_XFRM_USER=y")


def test_profiles_read(tmp_path: Path) -> None:
    for profile in kconfig.PROFILES:
        assert kconfig.profile_requests(profile)
    with pytest.raises(PipelineError, match="unknown profile 'nope'"):
        kconfig.profile_requests("nope")
