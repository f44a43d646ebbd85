"""Exact instructions per kernel function, counted by the insncount TCG plugin
(qemu/insncount.c) in a guest on one vCPU, between marks the guest script sets
with syncfs(2). Used by `./iro bench.iro-instructions` to show where a
remapped datagram's extra work goes, without sampling noise."""

from __future__ import annotations

import bisect
import collections
import hashlib
import json
import statistics
import time
from pathlib import Path

from . import steps, vm
from .errors import PipelineError
from .paths import DIST, REPO, cache_root

PLUGIN_SOURCE = REPO / "qemu" / "insncount.c"
TRIGGER = "__x64_sys_syncfs"
KERNEL_SPACE = 0xFFFF800000000000
USER = "[user space]"


def build_plugin() -> Path:
    """The plugin, compiled once per version of its source."""
    digest = hashlib.sha256(PLUGIN_SOURCE.read_bytes()).hexdigest()[:12]
    target = cache_root() / "qemu-plugins" / f"insncount-{digest}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        steps.capture(["gcc", "-O2", "-Wall", "-shared", "-fPIC", "-fvisibility=hidden", "-o", target,
                       PLUGIN_SOURCE])
    return target


class Symbols:
    """Text symbols of a System.map, to name the function an address is in."""

    def __init__(self, system_map: Path) -> None:
        found = []
        for line in system_map.read_text().splitlines():
            address, kind, name = line.split()[:3]
            if kind in "tTwW":
                found.append((int(address, 16), name))
        found.sort()
        self.addresses = [a for a, _ in found]
        self.names = [n for _, n in found]

    def address(self, name: str) -> int:
        try:
            return self.addresses[self.names.index(name)]
        except ValueError:
            raise PipelineError(f"no symbol {name} in the kernel's System.map") from None

    def function(self, address: int) -> str:
        if address < KERNEL_SPACE:
            return USER
        index = bisect.bisect_right(self.addresses, address) - 1
        return self.names[index] if index >= 0 else hex(address)


def snapshots(path: Path, symbols: Symbols) -> list[collections.Counter[str]]:
    """The plugin's snapshots, instructions by function."""
    found: list[collections.Counter[str]] = []
    for line in path.read_text().splitlines():
        if line.startswith("snapshot"):
            found.append(collections.Counter())
            continue
        address, count = line.split()
        found[-1][symbols.function(int(address, 16))] += int(count)
    return found


def report(counts: list[collections.Counter[str]], phases: list[str], datagrams: int, rows: int = 14,
           unit: str = "64-byte datagram") -> str:
    """Per flow: instructions per datagram (or other unit), kernel and user, and the
    functions whose count differs most from the first flow's (the baseline). Phases
    labelled "" or "start" are not flows."""
    by_kind = by_flow(counts, phases)

    def per_datagram(kind: str, function: str) -> float:
        return statistics.mean(c[function] for c in by_kind[kind]) / datagrams

    def kernel(kind: str) -> float:
        return statistics.mean(c.total() - c[USER] for c in by_kind[kind]) / datagrams

    base = next(iter(by_kind))
    lines = [f"instructions per {unit}, sender and receiver together, mean of "
             f"{len(by_kind[base])} phases of {datagrams} {unit}s per flow:",
             f"  {'flow':22s} {'kernel':>9s} {'vs ' + base:>12s} {'user space':>11s}  (phases: kernel)"]
    for kind in by_kind:
        each = ", ".join(f"{(c.total() - c[USER]) / datagrams:.0f}" for c in by_kind[kind])
        lines.append(f"  {kind:22s} {kernel(kind):9.0f} {kernel(kind) - kernel(base):+12.0f} "
                     f"{per_datagram(kind, USER):11.0f}  ({each})")
    for kind in list(by_kind)[1:]:
        functions = set().union(*by_kind[kind], *by_kind[base]) - {USER}
        diff = {f: per_datagram(kind, f) - per_datagram(base, f) for f in functions}
        lines.append(f"{kind} - {base}, by kernel function (instructions per {unit}):")
        for function, d in sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:rows]:
            lines.append(f"  {d:+8.1f}  {per_datagram(base, function):8.1f} -> {per_datagram(kind, function):8.1f}  "
                         f"{function}")
    return "\n".join(lines)


def by_flow(counts: list[collections.Counter[str]], phases: list[str]) -> dict[str, list[collections.Counter[str]]]:
    """Each flow's phases, in the order the flows first ran; phases labelled "" or "start" are not flows."""
    _check(counts, len(phases))
    flows: dict[str, list[collections.Counter[str]]] = collections.defaultdict(list)
    for phase, count in zip(phases, counts, strict=False):
        if phase not in ("", "start"):
            flows[phase].append(count)
    return flows


def kernel_mean(phases: list[collections.Counter[str]], function: str | None = None) -> float:
    """Mean kernel instructions of the phases: all, or one function's."""
    if function is None:
        return statistics.mean(c.total() - c[USER] for c in phases)
    return statistics.mean(c[function] for c in phases)


def phase_report(counts: list[collections.Counter[str]], phases: list[dict[str, object]], rows: int = 20) -> str:
    """Per phase that did countable work: instructions per unit, kernel and user space,
    and its kernel functions with the most instructions per unit."""
    _check(counts, len(phases))
    lines = []
    for phase, count in zip(phases, counts, strict=False):
        units = int(phase["units"])  # type: ignore[call-overload]
        if not units:
            continue
        kernel = count.total() - count[USER]
        lines.append(f"{phase['label']}: {units} units; per unit {count.total() / units:,.0f} instructions, "
                     f"{kernel / units:,.0f} in the kernel, {count[USER] / units:,.0f} in user space (all processes)")
        kernel_only = collections.Counter({f: n for f, n in count.items() if f != USER})
        for function, n in kernel_only.most_common(rows):
            lines.append(f"  {n / units:12,.0f}  {function}")
    return "\n".join(lines)


def _check(counts: list[collections.Counter[str]], phases: int) -> None:
    if len(counts) != phases + 1:  # one more at the guest's exit: a stray syncfs would shift the phases
        raise PipelineError(f"the plugin wrote {len(counts)} snapshots for {phases} phases (and the exit)")


def count(command: str, env: dict[str, str], timeout: float = 3600,
          dist: Path = DIST) -> tuple[list[collections.Counter[str]], list[dict[str, object]], Path]:
    """Boot dist/'s kernel with the plugin and marks on and run `command`:
    the counts per phase, the phases the guest marked, and the counts file."""
    symbols = Symbols(vm.system_map_from_dist(dist))
    out = cache_root() / "vm" / "insncount" / f"{time.strftime('%Y%m%d-%H%M%S')}.counts"
    out.parent.mkdir(parents=True, exist_ok=True)
    plugin = f"{build_plugin()},trigger={symbols.address(TRIGGER):x},out={out}"
    result = vm.boot(command, kernel=vm.kernel_from_dist(dist), accel="icount",
                     env={**env, "IRO_INSN_MARKS": "1"}, plugin=plugin, timeout=timeout)
    if result.exit_code:
        raise PipelineError(f"the counting guest exited with {result.exit_code}; console: {result.console}")
    phases = json.loads((result.output.parent / "share" / "phases.json").read_text())["phases"]
    return snapshots(out, symbols), phases, out


def run(command: str, env: dict[str, str], compare: bool = False, timeout: float = 3600,
        unit: str = "64-byte datagram") -> int:
    """Boot the guest with the plugin and marks on, run `command`, print the report:
    flows compared with the first one (`compare`), or each phase's own counts."""
    counts, phases, out = count(command, env, timeout)
    if compare:
        print(report(counts, [str(p["label"]) for p in phases], int(phases[-1]["units"]), unit=unit))
    else:
        print(phase_report(counts, phases))
    print(f"counts: {out}")
    return 0


def compare_kernels(command: str, env: dict[str, str], kernels: dict[str, Path], boots: int = 3, rows: int = 8,
                    unit: str = "64-byte datagram") -> str:
    """The same flows counted on each kernel (a dist directory), `boots` boots
    each, alternating: per flow, kernel instructions per unit on each kernel
    (each boot's mean in brackets: hash seeds differ per boot), and the
    functions whose count differs most from the first kernel's."""
    flows: dict[str, dict[str, list[collections.Counter[str]]]] = {k: collections.defaultdict(list) for k in kernels}
    per_boot: dict[str, dict[str, list[float]]] = {k: collections.defaultdict(list) for k in kernels}
    units = 0
    for boot in range(boots):
        for name, dist in kernels.items():
            counts, phases, out = count(command, env, dist=dist)
            units = int(phases[-1]["units"])  # type: ignore[call-overload]
            for flow, found in by_flow(counts, [str(p["label"]) for p in phases]).items():
                flows[name][flow] += found
                per_boot[name][flow].append(kernel_mean(found) / units)
            steps.console.print(f"boot {boot + 1}/{boots}, {name}: counts in {out}")
    base, *others = kernels
    lines = [f"kernel instructions per {unit}, sender and receiver together, mean of {boots} boots per kernel "
             f"(each boot's mean in brackets), {units} {unit}s per phase:"]
    for flow in flows[base]:
        means = {k: kernel_mean(flows[k][flow]) / units for k in kernels}
        lines.append(f"  {flow}:")
        for k in kernels:
            each = ", ".join(f"{m:.1f}" for m in per_boot[k][flow])
            lines.append(f"    {k:10s} {means[k]:10.1f}  ({each})")
        for k in others:
            names = set().union(*flows[k][flow], *flows[base][flow]) - {USER}
            diff = {f: (kernel_mean(flows[k][flow], f) - kernel_mean(flows[base][flow], f)) / units for f in names}
            top = sorted(((d, f) for f, d in diff.items() if abs(d) >= 0.5), key=lambda df: -abs(df[0]))[:rows]
            lines.append(f"    {k} - {base}: {means[k] - means[base]:+.1f} ({k} / {base} = "
                         f"{means[k] / means[base]:.5f}); by function: "
                         + (", ".join(f"{f} {d:+.1f}" for d, f in top) if top else "none moved by 0.5 or more"))
    return "\n".join(lines)
