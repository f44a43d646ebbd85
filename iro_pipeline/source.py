"""Kernel source: Debian's linux-source-6.1 by default, or any tree or tarball.

A source is extracted once into the cache, keyed by its exact version, as a
pristine tree that nothing ever writes to. Patches go into a separate work tree.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path

from . import steps
from .errors import PipelineError
from .paths import cache_root

DEBIAN_PACKAGE = "linux-source-6.1"
DEBIAN_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")


@dataclass(frozen=True)
class KernelSource:
    version: str  # from the tree's Makefile, e.g. 6.1.192
    origin: str  # what it came from: a package version, tarball or directory
    pristine: Path

    @property
    def key(self) -> str:
        digest = hashlib.sha256(self.origin.encode()).hexdigest()[:8]
        return f"{self.version}-{digest}"

    def to_json(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}


def makefile_version(tree: Path) -> str:
    """The version a tree's top Makefile declares; fails if it is not a kernel tree."""
    makefile = tree / "Makefile"
    if not (makefile.is_file() and (tree / "Kconfig").is_file() and (tree / "arch" / "x86").is_dir()):
        raise PipelineError(f"{tree}: not a Linux kernel tree (no Makefile, Kconfig and arch/x86)")
    fields = dict(re.findall(r"^(VERSION|PATCHLEVEL|SUBLEVEL) = (\d+)$", makefile.read_text(), re.M))
    if len(fields) != 3:
        raise PipelineError(f"{makefile}: no VERSION/PATCHLEVEL/SUBLEVEL lines")
    return f"{fields['VERSION']}.{fields['PATCHLEVEL']}.{fields['SUBLEVEL']}"


def _debian_tarball() -> tuple[Path, str]:
    """Install linux-source-6.1 if missing and return its tarball and package version."""
    if not DEBIAN_TARBALL.exists():
        steps.run("apt install linux-source", ["apt-get", "install", "-y", DEBIAN_PACKAGE])
    version = steps.capture(["dpkg-query", "-W", "-f=${Version}", DEBIAN_PACKAGE]).strip()
    return DEBIAN_TARBALL, f"debian:{DEBIAN_PACKAGE}={version}"


def _extract(tarball: Path, origin: str) -> KernelSource:
    """Extract a tarball once per origin; a half-done extraction is never reused."""
    if origin.startswith("debian:"):
        name = origin.split(":", 1)[1].replace("=", "_")  # linux-source-6.1_6.1.192-3
    else:
        name = "tarball-" + hashlib.sha256(origin.encode()).hexdigest()[:8]
    done = cache_root() / "src" / name
    marker = done / "source.json"
    if marker.exists():
        return KernelSource(**{**json.loads(marker.read_text()), "pristine": done / "tree"})
    if not tarfile.is_tarfile(tarball):
        raise PipelineError(f"{tarball}: not a tarball")
    staging = done.with_name(done.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    steps.run("extract kernel source", ["tar", "-xf", tarball, "-C", staging])
    tops = [p for p in staging.iterdir() if p.is_dir()]
    if len(tops) != 1:
        shutil.rmtree(staging)
        raise PipelineError(f"{tarball}: expected one top-level directory, found {len(tops)}")
    try:
        version = makefile_version(tops[0])
    except PipelineError:
        shutil.rmtree(staging)
        raise
    tops[0].rename(staging / "tree")
    source = KernelSource(version=version, origin=origin, pristine=done / "tree")
    (staging / "source.json").write_text(
        json.dumps({"version": version, "origin": origin}, indent=2) + "\n"
    )
    shutil.rmtree(done, ignore_errors=True)
    staging.rename(done)
    return source


def resolve(source: str | None) -> KernelSource:
    """Turn the --source argument (None: Debian's package) into a pristine tree."""
    if source is None:
        tarball, origin = _debian_tarball()
        return _extract(tarball, origin)
    path = Path(source).expanduser().resolve()
    if not path.exists():
        raise PipelineError(f"--source {source}: no such file or directory")
    if path.is_file():
        stat = path.stat()
        return _extract(path, f"tarball:{path}:{stat.st_size}:{int(stat.st_mtime)}")
    version = makefile_version(path)
    if (path / ".config").exists() or (path / "include" / "config").exists():
        raise PipelineError(f"--source {path}: tree is not clean (run 'make mrproper' in it)")
    head = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return KernelSource(version=version, origin=f"tree:{path}" + (f"@{head}" if head else ""), pristine=path)
