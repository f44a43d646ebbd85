"""iro tasks: `./iro --list` shows them, `./iro --help TASK` explains one."""

from __future__ import annotations

import functools
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from invoke import Collection, Context, task

from iro_pipeline import bench as bench_mod
from iro_pipeline import build as build_mod
from iro_pipeline import checkseries, insncount, kconfig, patches, steps, testrun, vm
from iro_pipeline import source as kernel_sources
from iro_pipeline.daemon_deb import build_daemon_deb
from iro_pipeline.errors import PipelineError
from iro_pipeline.paths import DIST, cache_root

SOURCE_HELP = "kernel tree or tarball to use instead of Debian's linux-source-6.1"
PROFILE_HELP = f"config profile: {', '.join(kconfig.PROFILES)} (default vm)"


def one_line_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print a PipelineError as one line (plus any excerpt) and exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PipelineError as err:
            steps.console.print(f"[red]error:[/] {err}", soft_wrap=True)
            sys.exit(1)

    return wrapper


def words_after_dashes() -> list[str]:
    """What the command line holds after `--` (invoke leaves it to the task)."""
    return sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []


def guest_script(name: str, *args: str) -> str:
    """The command that runs a script of tests/vm in the guest, with the test helpers importable."""
    tests = Path(__file__).parent / "tests" / "vm"
    return shlex.join([f"PYTHONPATH={tests}:{tests.parent.parent / 'umip'}", sys.executable, str(tests / name), *args])


@task(help={"source": SOURCE_HELP})
@one_line_errors
def kernel_source(c: Context, source: str | None = None) -> None:
    """Extract the kernel source into the cache and print its exact version."""
    src = kernel_sources.resolve(source)
    print(f"Linux {src.version} ({src.origin}) at {src.pristine}")


@task(help={"source": SOURCE_HELP})
@one_line_errors
def kernel_patch(c: Context, source: str | None = None) -> None:
    """Apply patches/linux-X.Y/series to the work tree (all or nothing; re-applying is harmless)."""
    src = kernel_sources.resolve(source)
    tree, series, changed = patches.apply(src)
    print(f"{len(series)} patches applied in {tree}; {len(changed)} files changed")


@task(help={"source": SOURCE_HELP, "profile": PROFILE_HELP})
@one_line_errors
def kernel_config(c: Context, source: str | None = None, profile: str = "vm") -> None:
    """Make the profile's .config with kconfiglib and verify every requested symbol."""
    plan = build_mod.prepare(source, profile)
    digest = kconfig.configure(plan.src, plan.tree, profile, plan.objdir)
    print(f"{plan.objdir / '.config'} verified (sha256 {digest[:16]})")


@task(help={"source": SOURCE_HELP, "profile": PROFILE_HELP})
@one_line_errors
def kernel_check_series(c: Context, source: str | None = None, profile: str = "vm") -> None:
    """checkpatch.pl --strict on every patch, then build the kernel after each patch in turn."""
    checkseries.check_series(source, profile)


@task(help={"source": SOURCE_HELP, "profile": PROFILE_HELP})
@one_line_errors
def kernel_build(c: Context, source: str | None = None, profile: str = "vm") -> None:
    """Build linux-image, linux-headers and linux-libc-dev .debs into dist/."""
    metadata = build_mod.build(source, profile)
    print(f"built {metadata['kernel_release']}: {', '.join(metadata['packages'])} in dist/")  # type: ignore[arg-type]


@task(help={"kernel": "bzImage to boot (default: the one in dist/'s linux-image package)",
            "timeout": "seconds before the guest counts as hung",
            "accel": "force kvm, tcg or icount (TCG, one vCPU, clock counts instructions)"})
@one_line_errors
def vm_run(c: Context, kernel: str | None = None, timeout: float = 600, accel: str | None = None) -> None:
    """Boot the built kernel and run the command after `--`: ./iro vm.run -- uname -a"""
    words = words_after_dashes() or ["uname -a"]
    command = words[0] if len(words) == 1 else shlex.join(words)  # one word: a shell command line
    result = vm.boot(command, kernel=Path(kernel) if kernel else None, timeout=timeout, accel=accel)
    steps.console.print(f"guest exit {result.exit_code} after {result.seconds:.1f} s under {result.accel}; "
                        f"console: {result.console}")
    sys.exit(result.exit_code)


@task(help={"profile": PROFILE_HELP, "source": SOURCE_HELP})
@one_line_errors
def build(c: Context, profile: str = "vm", source: str | None = None) -> None:
    """Build everything iro ships into dist/: the mip6d package, then the patched kernel packages."""
    daemon_deb(c)
    kernel_build(c, source=source, profile=profile)


@task
@one_line_errors
def daemon_deb(c: Context) -> None:
    """Build the mip6d Debian package (daemon, bundled pyroute2, config, man pages, systemd unit) into dist/."""
    print(build_daemon_deb(DIST))


@task(help={"host_only": "run only the host unit tests (no VM)", "k": "pytest -k expression",
            "timeout": "seconds before the guest counts as hung"})
@one_line_errors
def test(c: Context, host_only: bool = False, k: str | None = None, timeout: float = 1800) -> None:
    """Run the host unit tests, then boot the built kernel once and run the VM tests in it."""
    sys.exit(testrun.run_all(host_only=host_only, keyword=k, timeout=timeout))


@task
def lint(c: Context) -> None:
    """ruff over the Python code."""
    c.run(f"{sys.executable} -m ruff check .", pty=False)


@task(help={"warm_only": "skip the cold run (empty cache, about 10 minutes more)"})
@one_line_errors
def bench_pipeline(c: Context, warm_only: bool = False) -> None:
    """Pipeline benchmark: cold build and tests, warm loop after a patch edit, VM boot to first test."""
    bench_mod.pipeline(cold=not warm_only)


@task(help={"rounds": "rounds per datagram size, each a plain and a remapped run in ABBA order (default 10)",
            "icount": "run the guest with QEMU's -icount: its clock counts instructions, so the host's "
                      "load does not move the figures (slower; TCG only)"})
@one_line_errors
def bench_iro(c: Context, rounds: int = 10, icount: bool = False) -> None:
    """In the guest: UDP throughput and packet rate, remapped vs plain ESP transport SA, and the cost of
    unknown-SPI floods on a home agent with and without remap states, as ratios."""
    scripts = " && ".join(guest_script(name) for name in ("bench_iro_throughput.py", "bench_iro_spi_flood.py"))
    result = vm.boot(scripts, timeout=2400 * (3 if icount else 1), env={"IRO_BENCH_ROUNDS": str(rounds)},
                     accel="icount" if icount else None)
    sys.exit(result.exit_code)


@task(help={"datagrams": "64-byte datagrams per flow and phase (default 20000)"})
@one_line_errors
def bench_iro_instructions(c: Context, datagrams: int = 20_000) -> None:
    """In a guest whose instructions a QEMU plugin counts: the exact kernel instructions per datagram
    of bench.iro's flows (plain, remapped with a sub-policy, one policy, sender's share), and the
    kernel functions that make the difference. No sampling: the same kernel gives the same figures."""
    sys.exit(insncount.run(guest_script("bench_iro_instructions.py"), {"IRO_BENCH_DATAGRAMS": str(datagrams)},
                           compare=True))


@task(help={"datagrams": "64-byte datagrams per flow and phase (default 20000)",
            "boots": "guest boots per kernel, alternating (default 3)"})
@one_line_errors
def bench_iro_stock_instructions(c: Context, datagrams: int = 20_000, boots: int = 3) -> None:
    """Build Debian's kernel without the series (vm profile, into dist/stock), then count the exact kernel
    instructions per 64-byte datagram of plain ESP and of UDP without IPsec, with no remap state installed,
    on it and on dist/'s patched kernel: what the series costs traffic that does not use it."""
    testrun.check_dist_matches_series()
    build_mod.build(None, "vm", dist=DIST / "stock", stock=True)
    env = {"IRO_BENCH_DATAGRAMS": str(datagrams), "IRO_BENCH_STOCK": "1"}
    print(insncount.compare_kernels(guest_script("bench_iro_instructions.py"), env,
                                    {"stock": DIST / "stock", "patched": DIST}, boots=boots))


@task
@one_line_errors
def bench_iro_flood_instructions(c: Context) -> None:
    """In a guest whose instructions a QEMU plugin counts: the exact kernel instructions per ESP
    packet with an unknown SPI at a home agent with 10,000 SAs, without and with remap states."""
    sys.exit(insncount.run(guest_script("bench_iro_flood_instructions.py"), {}, compare=True,
                           unit="unknown-SPI ESP packet"))


@task(help={"timeout": "seconds before the guest counts as hung (default 4200; 3x with --icount)",
            "icount": "one vCPU whose clock counts instructions (1 ns each): rates in guest seconds do not "
                      "depend on the host's load, and the simulator shares the CPU with the daemon",
            "instructions": "count every instruction by kernel function (a QEMU plugin; implies --icount) and "
                            "print, per first registration and per refreshed BU, where they go"})
@one_line_errors
def bench_mip6d(c: Context, timeout: float = 4200, icount: bool = False, instructions: bool = False) -> None:
    """In the guest: the mobility daemon's benchmark (handover with netem, home agent scale); its
    options go after `--`: ./iro bench.mip6d -- --part scale --sizes 1000,4000 --perf"""
    command = guest_script("bench_mip6d.py", *words_after_dashes())
    if instructions:
        sys.exit(insncount.run(command, {}, timeout=timeout * 3))
    result = vm.boot(command, timeout=timeout * (3 if icount else 1), accel="icount" if icount else None)
    sys.exit(result.exit_code)


@task(help={"count": "hypothesis examples (default 100000)"})
@one_line_errors
def fuzz_codec(c: Context, count: int = 100_000) -> None:
    """Fuzz the Mobility Header codec on the host (tests/host/fuzz_mh_codec.py, derandomized):
    no exception may escape, and every message that decodes is encoded and decoded to itself."""
    c.run(shlex.join([sys.executable, str(Path(__file__).parent / "tests/host/fuzz_mh_codec.py"),
                      "--count", str(count)]), pty=False)


@task(help={"count": "inputs per mode (default 100000)", "mode": "classic, iro or both (default both)"})
@one_line_errors
def fuzz_mip6d(c: Context, count: int = 100_000, mode: str = "both") -> None:
    """Fuzz a real mip6d home agent's MH input through ESP in the guest; the inputs (the MH codec
    fuzzer's, derandomized) are generated on the host, where hypothesis is 30 times faster."""
    inputs = cache_root() / "fuzz-mip6d" / f"inputs-{count}.bin"
    if not inputs.exists():
        inputs.parent.mkdir(parents=True, exist_ok=True)
        c.run(shlex.join([sys.executable, str(Path(__file__).parent / "tests/vm/fuzz_mip6d.py"),
                          "--generate", str(inputs), "--count", str(count)]))
    command = guest_script("fuzz_mip6d.py", "--count", str(count), "--mode", mode, "--inputs", str(inputs))
    sys.exit(vm.boot(command, timeout=9000).exit_code)


@task(help={"count": "packets to send (default 100000)"})
@one_line_errors
def fuzz(c: Context, count: int = 100_000) -> None:
    """Build the debug kernel (KASAN, lockdep, kmemleak) and fuzz the IRO input hook in it."""
    build_mod.build(None, "debug", dist=DIST / "debug")
    script = f"""set -e
mount -t debugfs none /sys/kernel/debug
echo clear > /sys/kernel/debug/kmemleak
{guest_script("fuzz_iro_input.py", str(count))}
echo scan > /sys/kernel/debug/kmemleak; sleep 5; echo scan > /sys/kernel/debug/kmemleak
leaks=$(cat /sys/kernel/debug/kmemleak)
if [ -n "$leaks" ]; then echo "$leaks"; echo "kmemleak reports: FAIL"; exit 1; fi
echo "kmemleak: no reports"
"""
    result = vm.boot(script, kernel=vm.kernel_from_dist(DIST / "debug"), timeout=3000, memory="3G")
    sys.exit(result.exit_code)


@task
def clean(c: Context) -> None:
    """Remove dist/ (the build cache in ~/.cache/iro stays)."""
    c.run("rm -rf dist")
    print(f"cache kept at {cache_root()}")


kernel = Collection("kernel")
kernel.add_task(kernel_source, "source")
kernel.add_task(kernel_patch, "patch")
kernel.add_task(kernel_config, "config")
kernel.add_task(kernel_build, "build")
kernel.add_task(kernel_check_series, "check-series")
bench = Collection("bench")
bench.add_task(bench_pipeline, "pipeline")
bench.add_task(bench_iro, "iro")
bench.add_task(bench_iro_instructions, "iro-instructions")
bench.add_task(bench_iro_flood_instructions, "iro-flood-instructions")
bench.add_task(bench_iro_stock_instructions, "iro-stock-instructions")
bench.add_task(bench_mip6d, "mip6d")
daemon = Collection("daemon")
daemon.add_task(daemon_deb, "deb")
vm_ns = Collection("vm")
vm_ns.add_task(vm_run, "run")
ns = Collection(build, test, lint, fuzz, fuzz_codec, fuzz_mip6d, clean, kernel, daemon, bench, vm_ns)
