"""Apply a quilt series to a work tree that shares files with the pristine tree.

The work tree is a hard-link copy of the pristine tree. A series is first applied
to a scratch copy of just the files it touches; only if every patch applies are
the results written into the work tree, by rename (which breaks the hard link).
A file whose content does not change is not rewritten, so its mtime (and the
incremental build) survives re-applying the same or a slightly edited series.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import steps
from .errors import PipelineError
from .paths import PATCHES, cache_root
from .source import KernelSource

STATE_FILE = ".iro-applied.json"


@dataclass(frozen=True)
class Patch:
    path: Path
    strip: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def touched_files(self) -> set[str]:
        """Files named by the patch's '--- a/x' and '+++ b/x' headers, stripped of -pN."""
        names: set[str] = set()
        for match in re.finditer(r"^(?:---|\+\+\+) (\S+)", self.path.read_text(errors="replace"), re.M):
            name = match.group(1)
            if name != "/dev/null":
                names.add("/".join(name.split("/")[self.strip :]))
        if not names:
            raise PipelineError(f"{self.path}: no file headers, not a unified diff")
        return names


def series_dir(version: str) -> Path:
    major_minor = ".".join(version.split(".")[:2])
    return PATCHES / f"linux-{major_minor}"


def read_series(directory: Path) -> list[Patch]:
    """Parse a quilt 'series' file: one patch per line, '#' comments, optional -pN."""
    series = directory / "series"
    if not series.exists():
        raise PipelineError(f"{series}: missing series file")
    patches = []
    for lineno, raw in enumerate(series.read_text().splitlines(), 1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        strip = 1
        for option in words[1:]:
            if not re.fullmatch(r"-p\d", option):
                raise PipelineError(f"{series}:{lineno}: unknown option '{option}'")
            strip = int(option[2:])
        path = directory / words[0]
        if not path.is_file():
            raise PipelineError(f"{series}:{lineno}: patch '{words[0]}' not found")
        patches.append(Patch(path, strip))
    return patches


def series_id(patches: list[Patch]) -> str:
    """A short hash of the series' content, used for LOCALVERSION and package versions."""
    digest = hashlib.sha256()
    for patch in patches:
        digest.update(patch.path.name.encode() + b"\0" + patch.sha256.encode())
    return digest.hexdigest()[:8]


def _rejected_file(output: str) -> str:
    """The file patch(1) was working on when it failed."""
    files = re.findall(r"^(?:patching file|checking file) '?([^'\n]+)'?$", output, re.M)
    missing = re.search(r"can't find file to patch|No file to patch", output)
    if missing:
        return "a file that does not exist in the tree"
    return files[-1] if files else "unknown file"


def _apply_to_scratch(source: KernelSource, patches: list[Patch], scratch: Path) -> set[str]:
    """Apply the series to copies of the files it touches; return those file names."""
    touched: set[str] = set()
    for patch in patches:
        for name in patch.touched_files() - touched:
            original = source.pristine / name
            if original.is_file():
                target = scratch / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(original, target)
        touched |= patch.touched_files()
        proc = subprocess.run(
            ["patch", f"-p{patch.strip}", "--batch", "--forward", "--no-backup-if-mismatch",
             "--reject-file=-", "-d", str(scratch), "-i", str(patch.path)],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            output = proc.stdout + proc.stderr
            raise PipelineError(
                f"patch {patch.path.name} does not apply: rejected in {_rejected_file(output)}"
            )
    return touched


def _sync(work: Path, pristine: Path, scratch: Path, touched: set[str], previous: set[str]) -> list[str]:
    """Make touched files equal to the scratch result, and files only the previous series
    touched equal to pristine. A file the series deletes is absent from scratch."""
    changed = []
    for name in sorted(touched | previous):
        want = scratch / name if name in touched else pristine / name
        have = work / name
        want_bytes = want.read_bytes() if want.exists() else None
        have_bytes = have.read_bytes() if have.exists() else None
        if want_bytes == have_bytes:
            continue
        changed.append(name)
        if want_bytes is None:
            have.unlink()
            continue
        have.parent.mkdir(parents=True, exist_ok=True)
        tmp = have.with_name(have.name + ".iro-tmp")
        tmp.write_bytes(want_bytes)
        os.chmod(tmp, want.stat().st_mode)
        tmp.replace(have)
    return changed


def work_tree(source: KernelSource, purpose: str = "") -> Path:
    """The hard-link copy of the pristine tree that patches are applied to;
    another purpose (the per-patch build check) gets a tree of its own."""
    work = cache_root() / "work" / (source.key + (f"-{purpose}" if purpose else ""))
    if not work.exists():
        partial = work.with_name(work.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        steps.run("link work tree", ["cp", "-al", source.pristine, partial])
        partial.rename(work)
    return work


def apply(
    source: KernelSource, directory: Path | None = None, *, count: int | None = None, purpose: str = ""
) -> tuple[Path, list[Patch], list[str]]:
    """Bring the work tree to pristine + series (or its first `count` patches).
    Returns (tree, patches, changed files)."""
    directory = directory or series_dir(source.version)
    patches = read_series(directory)[:count]
    work = work_tree(source, purpose)
    state = work / STATE_FILE
    previous = set(json.loads(state.read_text())["files"]) if state.exists() else set()
    with tempfile.TemporaryDirectory(prefix="iro-series-") as tmp:
        touched = _apply_to_scratch(source, patches, Path(tmp))
        changed = _sync(work, source.pristine, Path(tmp), touched, previous)
    state.write_text(json.dumps({
        "series": str(directory),
        "files": sorted(touched),
        "patches": [{"name": p.path.name, "sha256": p.sha256} for p in patches],
    }, indent=2) + "\n")
    return work, patches, changed
