"""Kernel configuration: a base config plus the project's fragments, verified.

kconfiglib 14.1 cannot parse Linux >= 5.13 because of the bare 'modules'
keyword; `KernelKconfig` rewrites that one line as it is read.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import kconfiglib

from . import steps
from .errors import PipelineError
from .paths import CONFIGS, cache_root
from .source import KernelSource

DEBIAN_CONFIG = Path("/usr/src/linux-config-6.1/config.amd64_none_amd64.xz")

# profile -> (base config, fragments applied in order)
PROFILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "vm": ("tinyconfig", ("guest.config", "iro.config")),
    "debug": ("tinyconfig", ("guest.config", "iro.config", "debug.config")),
    "debian": ("debian", ("iro.config",)),
}

_BARE_MODULES = re.compile(r"^(\s*)modules\s*$", re.M)


class KernelKconfig(kconfiglib.Kconfig):
    """kconfiglib that understands 5.13's bare 'modules' keyword."""

    def _open(self, filename: str, mode: str) -> IO[Any]:
        if "r" not in mode or not os.path.basename(filename).startswith("Kconfig"):
            return super()._open(filename, mode)
        with open(filename, encoding="utf-8", errors="surrogateescape") as f:
            text = _BARE_MODULES.sub(r"\1option modules", f.read())
        return io.StringIO(text)


def load_kconfig(tree: Path, version: str) -> KernelKconfig:
    os.environ.update({
        "srctree": str(tree), "ARCH": "x86", "SRCARCH": "x86", "CC": "gcc",
        "LD": "ld", "HOSTCC": "gcc", "HOSTCXX": "g++", "KERNELVERSION": version,
    })
    try:
        return KernelKconfig(str(tree / "Kconfig"), warn=False)
    except kconfiglib.KconfigError as err:
        raise PipelineError(f"kconfiglib cannot parse {tree}: {str(err).strip().splitlines()[0]}") from err


@dataclass(frozen=True)
class Request:
    """One line of a fragment: CONFIG_NAME=value, or '# CONFIG_NAME is not set'."""

    name: str
    value: str
    where: str  # file:line

    @property
    def wanted(self) -> str:
        """The value as kconfiglib's str_value spells it."""
        return self.value[1:-1] if self.value.startswith('"') else self.value


def read_fragment(path: Path) -> list[Request]:
    requests = []
    shown = path.relative_to(CONFIGS.parent.parent) if path.is_relative_to(CONFIGS) else path
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        where = f"{shown}:{lineno}"
        if unset := re.fullmatch(r"# CONFIG_(\w+) is not set", line.strip()):
            requests.append(Request(unset.group(1), "n", where))
        elif match := re.fullmatch(r"CONFIG_(\w+)=(.+)", line.strip()):
            requests.append(Request(match.group(1), match.group(2), where))
        elif line.strip() and not line.lstrip().startswith("#"):
            raise PipelineError(f"{where}: not a config line: {line.strip()!r}")
    return requests


def profile_requests(profile: str) -> list[Request]:
    if profile not in PROFILES:
        raise PipelineError(f"unknown profile '{profile}' (known: {', '.join(PROFILES)})")
    return [r for name in PROFILES[profile][1] for r in read_fragment(CONFIGS / name)]


def _dependency(kconf: kconfiglib.Kconfig, name: str) -> str:
    sym = kconf.syms[name]
    deps = [kconfiglib.expr_str(node.dep) for node in sym.nodes]
    text = " || ".join(d for d in deps if d != "y") or "none"
    if not any(node.prompt for node in sym.nodes):
        text += " (no prompt: only 'select' or a default sets it)"
    return text


def unmet(kconf: kconfiglib.Kconfig, requests: list[Request], values: dict[str, str]) -> list[str]:
    """One message per request whose symbol does not have the requested value."""
    problems = []
    for req in requests:
        got = values.get(req.name, "n")
        if got != req.wanted:
            problems.append(
                f"CONFIG_{req.name}={req.value} ({req.where}) is {got}; depends on: {_dependency(kconf, req.name)}"
            )
    return problems


def apply_requests(kconf: kconfiglib.Kconfig, requests: list[Request]) -> None:
    """Set every requested value; fail naming unknown symbols and unmet dependencies."""
    for req in requests:
        if req.name not in kconf.syms or not kconf.syms[req.name].nodes:
            raise PipelineError(f"{req.where}: unknown symbol CONFIG_{req.name}")
        kconf.syms[req.name].set_value(req.wanted)
    resolved = {name: sym.str_value for name, sym in kconf.syms.items() if sym.nodes}
    if problems := unmet(kconf, requests, resolved):
        raise PipelineError("config requests not met: " + "; ".join(problems))


def read_dotconfig(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if match := re.fullmatch(r"CONFIG_(\w+)=(.*)", line):
            value = match.group(2)
            values[match.group(1)] = value[1:-1] if value.startswith('"') else value
    return values


def _base(profile: str, tree: Path, scratch: Path) -> None:
    base = PROFILES[profile][0]
    if base == "tinyconfig":
        steps.run(f"make tinyconfig ({profile})", ["make", "-C", tree, f"O={scratch}", "ARCH=x86_64", "tinyconfig"])
    else:
        if not DEBIAN_CONFIG.exists():
            steps.run("apt install linux-config", ["apt-get", "install", "-y", "linux-config-6.1"])
        (scratch / ".config").write_bytes(lzma.decompress(DEBIAN_CONFIG.read_bytes()))


def configure(source: KernelSource, tree: Path, profile: str, objdir: Path) -> str:
    """Write a verified .config for the profile into objdir; return its sha256.

    The config is made in a scratch directory and copied into objdir only when it
    differs, so an unchanged config never triggers a rebuild.
    """
    requests = profile_requests(profile)
    scratch = cache_root() / "config" / f"{source.key}-{profile}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    _base(profile, tree, scratch)
    kconf = load_kconfig(tree, source.version)
    kconf.load_config(str(scratch / ".config"))
    apply_requests(kconf, requests)
    kconf.write_config(str(scratch / ".config"), header="")
    steps.run(f"make olddefconfig ({profile})", ["make", "-C", tree, f"O={scratch}", "ARCH=x86_64", "olddefconfig"])
    if problems := unmet(kconf, requests, read_dotconfig(scratch / ".config")):
        raise PipelineError("olddefconfig dropped requests: " + "; ".join(problems))
    final = (scratch / ".config").read_bytes()
    objdir.mkdir(parents=True, exist_ok=True)
    target = objdir / ".config"
    if not target.exists() or target.read_bytes() != final:
        target.write_bytes(final)
    return hashlib.sha256(final).hexdigest()
