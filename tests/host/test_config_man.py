"""Man pages: render with groff without a single warning, and document what the code supports.

groff comes with Debian's groff-base (man-db depends on it, and lintian on man-db);
the rendering tests skip, saying so, only on a machine without groff.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mip6d.config import keys as keys_module
from mip6d.config import parser as config_parser

MAN = Path(__file__).resolve().parents[2] / "umip" / "man"
PAGES = ["mip6d.8", "mip6d.conf.5", "mip6d-ctl.8", "mip6d.keys.5"]
GROFF = shutil.which("groff")
needs_groff = pytest.mark.skipif(GROFF is None, reason="groff is not installed (Debian package groff-base): "
                                                       "man pages not rendered")


def render(page: str) -> str:
    assert GROFF is not None
    result = subprocess.run([GROFF, "-man", "-Tutf8", "-ww", "-P", "-c", "-rLL=200n", str(MAN / page)],
                            capture_output=True, text=True, env={**os.environ, "LC_ALL": "C.UTF-8"}, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", f"groff warnings for {page}:\n{result.stderr}"
    # undo overstriking, join words hyphenated at line ends, and collapse the spaces of justified lines
    text = re.sub(r".\x08", "", result.stdout).replace("\u2010\n", "")
    return " ".join(re.sub(r"(?<=\w)-\n\s*(?=\w)", "", text).split())


def test_every_page_is_listed() -> None:
    assert sorted(p.name for p in MAN.iterdir()) == sorted(PAGES)


@needs_groff
@pytest.mark.parametrize("page", PAGES)
def test_renders_without_warnings(page: str) -> None:
    text = render(page)
    assert "NAME" in text and "SEE ALSO" in text


@pytest.mark.parametrize("page", PAGES)
def test_man_db_finds_name_and_no_warnings(page: str) -> None:
    lexgrog = shutil.which("lexgrog")
    if lexgrog is None:
        pytest.skip("lexgrog (man-db) is not installed")
    result = subprocess.run([lexgrog, str(MAN / page)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    name = page.rsplit(".", 1)[0]
    assert f'"{name} - ' in result.stdout
    man = shutil.which("man")
    if man is not None:
        checked = subprocess.run([man, "--warnings", "-l", str(MAN / page)], capture_output=True, text=True,
                                 env={**os.environ, "MANPAGER": "cat", "MANWIDTH": "80"}, check=False)
        assert checked.returncode == 0 and checked.stderr == "", checked.stderr


@needs_groff
def test_conf_page_documents_every_statement() -> None:
    text = render("mip6d.conf.5")
    keywords = {*config_parser.SCALARS, *config_parser.BLOCKS, *config_parser.LISTS,
                *config_parser.INTERFACE_OPTIONS, *config_parser.HOME_LINK_OPTIONS, *config_parser.POLICY_SET_OPTIONS}
    missing = sorted(k for k in keywords if not re.search(rf"\b{k}\b", text))
    assert not missing
    for value in ("HomeRegBinding", "MobPfxDisc", "TunnelHomeTesting", "TunnelPayload", "UseESP", "UseAH",
                  "262140", "420", "Default: enabled", "UseMnHaIRO", "Home Address", "Routing Header"):
        assert value in text, value


@needs_groff
def test_daemon_page_documents_the_command_line() -> None:
    text = render("mip6d.8")
    for item in ("-c file", "-d level", "-C", "-H", "-M", "-V", "--foreground", "--syslog", "--keys file",
                 "--control path", "/run/mip6d/control", "SIGHUP", "SIGTERM", "/etc/mip6d.conf", "/etc/mip6d.keys",
                 "mip6d.conf(5)", "mip6d.keys(5)", "mip6d-ctl(8)"):
        assert item in text, item


@needs_groff
def test_ctl_page() -> None:
    text = render("mip6d-ctl.8")
    for item in ("mip6d-ctl [--control path] status [--json]", "bindings", "/run/mip6d/control"):
        assert item in text, item


@needs_groff
def test_keys_page_lists_every_algorithm() -> None:
    text = render("mip6d.keys.5")
    for name, alg in {**keys_module.ENCRYPTION, **keys_module.AUTHENTICATION}.items():
        assert re.search(rf"-[EA] {re.escape(name)}\s+{re.escape(alg.xfrm)}", text), name
    for item in ("flush", "spdflush", "-m transport", "-u reqid", "-r window"):
        assert item in text, item
