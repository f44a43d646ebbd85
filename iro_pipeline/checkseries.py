"""Check every patch of the series on its own: checkpatch.pl --strict, and a
build of the kernel with the series applied up to that patch.

The builds use a work tree and build directory of their own, so the main
build stays incremental; ccache makes a second check fast."""

from __future__ import annotations

import shutil
import subprocess

from . import kconfig, patches, source, steps
from .build import make_base, make_env
from .errors import PipelineError
from .paths import cache_root


def checkpatch(src: source.KernelSource, series: list[patches.Patch]) -> list[str]:
    """One line per patch that checkpatch.pl --strict does not pass cleanly."""
    problems = []
    for patch in series:
        proc = subprocess.run(
            ["perl", "scripts/checkpatch.pl", "--strict", "--quiet", "--showfile", str(patch.path)],
            cwd=src.pristine, capture_output=True, text=True,
        )
        findings = [line for line in proc.stdout.splitlines() if line.startswith(("ERROR", "WARNING", "CHECK"))]
        if proc.returncode != 0 or findings:
            problems.append(f"{patch.path.name}: {findings[0] if findings else 'checkpatch failed'}")
    return problems


def check_series(source_arg: str | None, profile: str = "vm") -> None:
    src = source.resolve(source_arg)
    series = patches.read_series(patches.series_dir(src.version))
    if problems := checkpatch(src, series):
        raise PipelineError("checkpatch --strict: " + "; ".join(problems))
    steps.console.print(f"checkpatch --strict: {len(series)} patches clean")
    objdir = cache_root() / "build" / f"{src.key}-{profile}-check" / "obj"
    tree, _, _ = patches.apply(src, count=0, purpose="check")
    main_config = cache_root() / "build" / f"{src.key}-{profile}" / "obj" / ".config"
    objdir.mkdir(parents=True, exist_ok=True)
    if main_config.exists():
        shutil.copy2(main_config, objdir / ".config")
    else:
        kconfig.configure(src, tree, profile, objdir)
    for count, patch in enumerate(series, 1):
        patches.apply(src, count=count, purpose="check")
        with steps.stage(f"build with {count}/{len(series)}: {patch.path.name}"):
            try:
                steps.run(f"check build {count}", [*make_base(tree, objdir), "olddefconfig", "vmlinux"],
                          env=make_env())
            except PipelineError as err:
                raise PipelineError(f"{patch.path.name} does not build: {err}") from None
