"""Applying a quilt series: all or nothing, idempotent, mtimes kept."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from iro_pipeline import patches
from iro_pipeline.errors import PipelineError
from iro_pipeline.source import KernelSource


@pytest.fixture
def pristine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KernelSource:
    monkeypatch.setenv("IRO_CACHE", str(tmp_path / "cache"))
    tree = tmp_path / "pristine"
    (tree / "net").mkdir(parents=True)
    (tree / "net" / "a.c").write_text("int a;\nint b;\nint c;\n")
    (tree / "net" / "gone.c").write_text("int gone;\n")
    return KernelSource("6.1.0", "test", tree)


def make_patch(tree: Path, name: str, edits: dict[str, str | None], into: Path) -> None:
    """Write a unified diff turning tree's files into `edits` (None deletes)."""
    old, new = into / "old", into / "new"
    for base in (old, new):
        subprocess.run(["rm", "-rf", str(base)], check=True)
        subprocess.run(["cp", "-a", str(tree), str(base)], check=True)
    for rel, text in edits.items():
        if text is None:
            (new / rel).unlink()
        else:
            (new / rel).parent.mkdir(parents=True, exist_ok=True)
            (new / rel).write_text(text)
    diff = subprocess.run(["diff", "-ruN", "old", "new"], cwd=into, capture_output=True, text=True).stdout
    (into / name).write_text(diff.replace("--- old/", "--- a/").replace("+++ new/", "+++ b/"))


@pytest.fixture
def series(tmp_path: Path, pristine: KernelSource) -> Path:
    directory = tmp_path / "series"
    directory.mkdir()
    make_patch(pristine.pristine, "0001-b.patch", {"net/a.c": "int a;\nint B;\nint c;\n"}, directory)
    make_patch(pristine.pristine, "0002-new.patch", {"net/new.c": "int n;\n", "net/gone.c": None}, directory)
    (directory / "series").write_text("# test\n0001-b.patch\n0002-new.patch -p1\n")
    return directory


def test_apply_and_reapply(pristine: KernelSource, series: Path) -> None:
    tree, applied, changed = patches.apply(pristine, series)
    assert [p.path.name for p in applied] == ["0001-b.patch", "0002-new.patch"]
    assert changed == ["net/a.c", "net/gone.c", "net/new.c"]
    assert (tree / "net/a.c").read_text() == "int a;\nint B;\nint c;\n"
    assert (tree / "net/new.c").exists() and not (tree / "net/gone.c").exists()
    assert (pristine.pristine / "net/a.c").read_text() == "int a;\nint b;\nint c;\n"  # links broken
    mtime = os.stat(tree / "net/a.c").st_mtime_ns
    _, _, again = patches.apply(pristine, series)
    assert again == [] and os.stat(tree / "net/a.c").st_mtime_ns == mtime


def test_failing_patch_names_patch_and_file_and_changes_nothing(pristine: KernelSource, series: Path) -> None:
    tree, _, _ = patches.apply(pristine, series)
    before = {p: p.read_bytes() for p in (tree / "net").iterdir()}
    bad = series / "0003-bad.patch"
    bad.write_text(textwrap.dedent("""\
        --- a/net/a.c
        +++ b/net/a.c
        @@ -1,3 +1,3 @@
         int x;
        -int y;
        +int z;
         int c;
        """))
    (series / "series").write_text("0001-b.patch\n0003-bad.patch\n")
    with pytest.raises(PipelineError, match=r"patch 0003-bad.patch does not apply: rejected in net/a.c"):
        patches.apply(pristine, series)
    assert {p: p.read_bytes() for p in (tree / "net").iterdir()} == before


def test_dropping_a_patch_restores_pristine(pristine: KernelSource, series: Path) -> None:
    patches.apply(pristine, series)
    (series / "series").write_text("0001-b.patch\n")
    tree, _, changed = patches.apply(pristine, series)
    assert changed == ["net/gone.c", "net/new.c"]
    assert (tree / "net/gone.c").read_text() == "int gone;\n" and not (tree / "net/new.c").exists()


def test_series_errors(pristine: KernelSource, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PipelineError, match="missing series file"):
        patches.read_series(empty)
    (empty / "series").write_text("0001-x.patch\n")
    with pytest.raises(PipelineError, match=r"series:1: patch '0001-x.patch' not found"):
        patches.read_series(empty)
    (empty / "0001-x.patch").write_text("x")
    (empty / "series").write_text("0001-x.patch -R\n")
    with pytest.raises(PipelineError, match=r"series:1: unknown option '-R'"):
        patches.read_series(empty)


def test_empty_series_is_fine(pristine: KernelSource, tmp_path: Path) -> None:
    directory = tmp_path / "s"
    directory.mkdir()
    (directory / "series").write_text("# nothing yet\n")
    tree, applied, changed = patches.apply(pristine, directory)
    assert applied == [] and changed == [] and (tree / "net/a.c").exists()


def test_project_series_parses() -> None:
    patches.read_series(patches.series_dir("6.1.192"))
