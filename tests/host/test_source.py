"""--source validation: only kernel trees and tarballs of one are accepted."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from iro_pipeline import source
from iro_pipeline.errors import PipelineError


def fake_kernel(root: Path) -> Path:
    (root / "arch" / "x86").mkdir(parents=True)
    (root / "Kconfig").write_text("")
    (root / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 7\nEXTRAVERSION =\n")
    return root


def test_tree_version(tmp_path: Path) -> None:
    src = source.resolve(str(fake_kernel(tmp_path / "linux")))
    assert src.version == "6.1.7" and src.origin.startswith("tree:")


def test_not_a_kernel_tree(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"not a Linux kernel tree"):
        source.resolve(str(tmp_path))


def test_missing_path() -> None:
    with pytest.raises(PipelineError, match=r"--source /nonexistent: no such file"):
        source.resolve("/nonexistent")


def test_dirty_tree(tmp_path: Path) -> None:
    tree = fake_kernel(tmp_path / "linux")
    (tree / ".config").write_text("")
    with pytest.raises(PipelineError, match="not clean"):
        source.resolve(str(tree))


def test_tarball_extracts_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRO_CACHE", str(tmp_path / "cache"))
    fake_kernel(tmp_path / "linux-6.1.7")
    tarball = tmp_path / "linux.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tmp_path / "linux-6.1.7", arcname="linux-6.1.7")
    first = source.resolve(str(tarball))
    assert first.version == "6.1.7" and (first.pristine / "Makefile").exists()
    assert source.resolve(str(tarball)) == first


def test_not_a_tarball(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRO_CACHE", str(tmp_path / "cache"))
    bogus = tmp_path / "x.tar"
    bogus.write_text("hello")
    with pytest.raises(PipelineError, match="not a tarball"):
        source.resolve(str(bogus))
