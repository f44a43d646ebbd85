"""The mip6d Debian package: the daemon, a bundled pyroute2, its config, man pages and systemd unit.

The source tree is assembled in the build cache from umip/ (code, example config, man pages),
packaging/ (debian/ and the two wrapper scripts) and the pinned pyroute2 wheel, then built with
dpkg-buildpackage and debhelper. Nothing is written into the repository except the package in dist/.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from . import steps
from .errors import PipelineError
from .paths import DIST, REPO, cache_root
from .tools import require

PACKAGING = REPO / "packaging"
UMIP = REPO / "umip"
DEB_REVISION = "1"
# Debian 12 ships pyroute2 0.7.2, too old for mip6d: the package bundles this wheel (pure Python).
PYROUTE2_VERSION = "0.9.7"
PYROUTE2_WHEEL_SHA256 = "01a2a3afe565a6acb0a0d5d8ac86c9682b6564407e3d9589070191ae94b737e8"
MAN_PAGES = ("mip6d.8", "mip6d-ctl.8", "mip6d.conf.5", "mip6d.keys.5")
DEB_TOOLS = {
    "dpkg-buildpackage": "dpkg-dev",
    "dh": "debhelper",
    "dh_strip_nondeterminism": "dh-strip-nondeterminism",
}
# never copied into the package's source tree
SKIP_NAMES = re.compile(r"^(__pycache__|.*\.py[co]|\..*|.*~|.*\.sw[op]|.*\.orig|.*\.rej)$")


def daemon_version(umip: Path = UMIP) -> str:
    """__version__ of umip/mip6d, read without importing the package."""
    init = umip / "mip6d" / "__init__.py"
    if not init.is_file():
        raise PipelineError(f"missing {_show(init)}: the mip6d package needs the daemon's Python package")
    found = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", init.read_text(), re.M)
    if not found:
        raise PipelineError(f"no __version__ = \"...\" line in {_show(init)}")
    version = found.group(1)
    if not re.fullmatch(r"[0-9][A-Za-z0-9.+~]*", version):
        raise PipelineError(f"__version__ {version!r} in {_show(init)} is not a valid Debian upstream version")
    return version


def deb_name(version: str) -> str:
    return f"mip6d_{version}-{DEB_REVISION}_all.deb"


def build_daemon_deb(dist: Path = DIST, *, umip: Path = UMIP, workdir: Path | None = None) -> Path:
    """Build dist/mip6d_<version>-1_all.deb and return its path.

    umip: the tree holding mip6d/, examples/mip6d.conf and man/ (default: the repository's umip/).
    workdir: where the source tree and dpkg-buildpackage's outputs go, emptied first
    (default: ~/.cache/iro/build/mip6d-deb). Raises PipelineError with one line on any failure.
    """
    require(DEB_TOOLS)
    version = daemon_version(umip)
    inputs = _check_inputs(umip)
    _check_changelog(version)
    epoch = source_date_epoch()
    workdir = workdir or cache_root() / "build" / "mip6d-deb"
    with steps.stage("mip6d package"):
        wheel = pyroute2_wheel()
        if workdir.exists():
            shutil.rmtree(workdir)
        srcdir = workdir / f"mip6d-{version}"
        _stage_source(srcdir, umip, inputs, wheel, epoch)
        steps.run("mip6d dpkg-buildpackage", ["dpkg-buildpackage", "--build=all", "--no-sign"], cwd=srcdir,
                  env={"SOURCE_DATE_EPOCH": str(epoch), "LC_ALL": "C.UTF-8", "TZ": "UTC"})
        built = workdir / deb_name(version)
        if not built.is_file():
            raise PipelineError(f"dpkg-buildpackage made no {built.name} in {workdir}")
        dist.mkdir(parents=True, exist_ok=True)
        for old in dist.glob("mip6d_*_all.deb"):
            old.unlink()
        out = dist / built.name
        shutil.copy2(built, out)
    steps.console.print(f"  {_show(out)}")
    return out


def _show(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _check_inputs(umip: Path) -> dict[str, Path]:
    """The files the package installs from umip/, by their name in the source tree; fail on the first missing.

    examples/mip6d.conf becomes /etc/mip6d.conf; every example goes to /usr/share/doc/mip6d/examples.
    """
    conf = umip / "examples" / "mip6d.conf"
    wanted = {"examples/mip6d.conf": conf} | {f"man/{page}": umip / "man" / page for page in MAN_PAGES}
    for path in wanted.values():
        if not path.is_file():
            raise PipelineError(f"missing {_show(path)}: the mip6d package installs it")
    examples = {f"examples/{p.name}": p for p in sorted((umip / "examples").iterdir())
                if p.is_file() and not SKIP_NAMES.match(p.name)}
    man_pages = {f"man/{p.name}": p for p in sorted((umip / "man").glob("*.[1-8]")) if not SKIP_NAMES.match(p.name)}
    return wanted | examples | man_pages


def _check_changelog(version: str) -> None:
    changelog = PACKAGING / "debian" / "changelog"
    top = steps.capture(["dpkg-parsechangelog", "-l", changelog, "-S", "Version"]).strip()
    if top != f"{version}-{DEB_REVISION}":
        raise PipelineError(f"{_show(changelog)} is at {top} but mip6d is {version}: add an entry for "
                            f"{version}-{DEB_REVISION} (dch -c {_show(changelog)} -v {version}-{DEB_REVISION})")


def source_date_epoch() -> int:
    """$SOURCE_DATE_EPOCH if set, else the last commit's date; the changelog's date outside a git checkout."""
    if (given := os.environ.get("SOURCE_DATE_EPOCH", "")).isdigit():
        return int(given)
    git = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%ct"], capture_output=True, text=True)
    if git.returncode == 0 and git.stdout.strip().isdigit():
        return int(git.stdout)
    changelog = PACKAGING / "debian" / "changelog"
    return int(steps.capture(["dpkg-parsechangelog", "-l", changelog, "-S", "Timestamp"]))


def pyroute2_wheel() -> Path:
    """The pinned pyroute2 wheel, downloaded once into ~/.cache/iro/wheels and checked against its sha256."""
    wheels = cache_root() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    wheel = wheels / f"pyroute2-{PYROUTE2_VERSION}-py3-none-any.whl"
    if not wheel.exists():
        with tempfile.TemporaryDirectory(dir=wheels) as tmp:
            steps.run("download pyroute2 wheel",
                      [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                       "--disable-pip-version-check", "--dest", tmp, f"pyroute2=={PYROUTE2_VERSION}"])
            got = Path(tmp) / wheel.name
            if not got.is_file():
                raise PipelineError(f"pip download made no {wheel.name}")
            _check_sha256(got)
            got.replace(wheel)
    _check_sha256(wheel)
    return wheel


def _check_sha256(wheel: Path) -> None:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != PYROUTE2_WHEEL_SHA256:
        raise PipelineError(f"{wheel} has sha256 {digest}, expected {PYROUTE2_WHEEL_SHA256}: delete it and retry")


def _stage_source(srcdir: Path, umip: Path, inputs: dict[str, Path], wheel: Path, epoch: int) -> None:
    """The source tree dpkg-buildpackage builds from; every mtime set to the epoch."""
    srcdir.mkdir(parents=True)
    shutil.copytree(PACKAGING / "debian", srcdir / "debian", ignore=_ignore)
    shutil.copytree(PACKAGING / "bin", srcdir / "bin", ignore=_ignore)
    shutil.copytree(umip / "mip6d", srcdir / "mip6d", ignore=_ignore)
    for name, path in inputs.items():
        (srcdir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, srcdir / name)
    vendor = srcdir / "vendor"
    with zipfile.ZipFile(wheel) as whl:
        for info in whl.infolist():
            parts = Path(info.filename).parts
            if info.is_dir() or parts[0] != "pyroute2" or ".." in parts or any(SKIP_NAMES.match(p) for p in parts):
                continue
            target = vendor.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(whl.read(info))
    for path in [srcdir, *srcdir.rglob("*")]:
        os.utime(path, (epoch, epoch), follow_symlinks=False)


def _ignore(directory: str, names: list[str]) -> set[str]:
    return {name for name in names if SKIP_NAMES.match(name)}
