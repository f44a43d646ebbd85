"""Build the patched kernel as Debian packages, out of tree, with ccache."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import kconfig, patches, source, steps
from .errors import PipelineError
from .paths import DIST, cache_root
from .tools import BUILD_TOOLS, require


@dataclass(frozen=True)
class BuildPlan:
    src: source.KernelSource
    tree: Path
    profile: str
    series: list[patches.Patch]
    series_id: str  # taken when the series was applied: the files may change during a build
    patch_hashes: list[dict[str, str]]
    stock: bool = False  # Debian's kernel without the series: the baseline that "exactly stock" is measured on

    @property
    def localversion(self) -> str:
        return "-stock" if self.stock else f"-iro-{self.series_id}"

    @property
    def release(self) -> str:
        return self.src.version + self.localversion

    @property
    def pkgversion(self) -> str:
        if self.stock:
            return f"{self.src.version}-0+stock"
        return f"{self.src.version}-{len(self.series)}+iro{self.series_id}"

    @property
    def outdir(self) -> Path:
        """bindeb-pkg writes its packages into the parent of O=."""
        return cache_root() / "build" / f"{self.src.key}-{self.profile}{'-stock' if self.stock else ''}"

    @property
    def objdir(self) -> Path:
        return self.outdir / "obj"


def prepare(source_arg: str | None, profile: str, series_dir: Path | None = None, stock: bool = False) -> BuildPlan:
    """Resolve the source and apply the series (none if `stock`, in a work tree of
    its own): the steps before any config or build."""
    with steps.stage("kernel source"):
        src = source.resolve(source_arg)
    with steps.stage("apply patch series"):
        tree, series, changed = patches.apply(src, series_dir, count=0 if stock else None,
                                              purpose="stock" if stock else "")
    steps.console.print(f"  Linux {src.version} from {src.origin}; {len(series)} patches, {len(changed)} files changed")
    hashes = [{"name": p.path.name, "sha256": p.sha256} for p in series]
    return BuildPlan(src, tree, profile, series, patches.series_id(series), hashes, stock)


def make_env() -> dict[str, str]:
    ccache_dir = cache_root() / "ccache"
    return {
        "CCACHE_DIR": str(ccache_dir),
        "CCACHE_MAXSIZE": "5G",
        "KBUILD_BUILD_USER": "iro",
        "KBUILD_BUILD_HOST": "iro",
        "KBUILD_BUILD_TIMESTAMP": "2024-01-01",
    }


def make_base(tree: Path, objdir: Path) -> list[str]:
    """make, out of tree, with ccache, on every core."""
    return ["make", "-C", str(tree), f"O={objdir}", "ARCH=x86_64", f"-j{os.cpu_count() or 2}", "CC=ccache gcc"]


def make_args(plan: BuildPlan) -> list[str]:
    return [*make_base(plan.tree, plan.objdir),
            f"LOCALVERSION={plan.localversion}", f"KDEB_PKGVERSION={plan.pkgversion}"]


def build_debs(plan: BuildPlan, config_hash: str, reproducer: str, dist: Path = DIST) -> dict[str, object]:
    """Run bindeb-pkg, move the packages to dist/ and write dist/metadata.json."""
    require(BUILD_TOOLS)
    for old in plan.outdir.glob("*.deb"):
        old.unlink()
    with steps.stage("kernel build (bindeb-pkg)"):
        steps.run(f"bindeb-pkg {plan.profile}", [*make_args(plan), "bindeb-pkg"], env=make_env())
    debs = sorted(plan.outdir.glob("*.deb"))
    wanted = ("linux-image", "linux-headers", "linux-libc-dev")
    if missing := [kind for kind in wanted if not any(d.name.startswith(kind) for d in debs)]:
        raise PipelineError(f"bindeb-pkg produced no {', '.join(missing)} package in {plan.outdir}")
    dist.mkdir(parents=True, exist_ok=True)
    for old in dist.glob("linux-*.deb"):
        old.unlink()
    for deb in debs:
        shutil.copy2(deb, dist / deb.name)
    metadata = {
        "kernel_version": plan.src.version,
        "kernel_release": plan.release,
        "package_version": plan.pkgversion,
        "profile": plan.profile,
        "source": plan.src.to_json(),
        "patches": plan.patch_hashes,
        "series_id": plan.series_id,
        "config_sha256": config_hash,
        "packages": [d.name for d in debs],
        "timings_s": dict(steps.timings),
        "reproducer": reproducer,
    }
    (dist / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def build(source_arg: str | None = None, profile: str = "vm", series_dir: Path | None = None,
          dist: Path = DIST, stock: bool = False) -> dict[str, object]:
    """The whole kernel pipeline: source, patches (none if `stock`), config, packages."""
    plan = prepare(source_arg, profile, series_dir, stock)
    with steps.stage("kernel config"):
        config_hash = kconfig.configure(plan.src, plan.tree, profile, plan.objdir)
    reproducer = "./iro bench.iro-stock-instructions" if stock else f"./iro kernel.build --profile {profile}"
    if source_arg:
        reproducer += f" --source {shlex.quote(source_arg)}"
    return build_debs(plan, config_hash, reproducer, dist)
