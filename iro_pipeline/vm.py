"""Boot a kernel in QEMU with the host's / as a read-only root and run one command.

The guest's kernel console and the command's output go to two serial ports,
saved as files. The exit code comes back through a writable 9p share. A crash
signature on the console fails the run even when the command succeeded.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import steps
from .errors import PipelineError
from .paths import DIST, REPO, cache_root
from .tools import VM_TOOLS, require

GUEST_INIT = REPO / "qemu" / "guest-init.sh"
# What NIPA and syzbot treat as a kernel splat, plus panics.
CRASH_PATTERNS = re.compile(
    r"Kernel panic|\bOops\b|\bBUG: |WARNING: |KASAN: |\] RIP: |\] Call Trace:|"
    r"ref_tracker: |unreferenced object 0x|possible recursive locking|"
    r"possible circular locking|INFO: task .* blocked"
)
PROBE_TIMEOUT = 30.0


@dataclass(frozen=True)
class VmResult:
    exit_code: int
    console: Path
    output: Path
    accel: str
    seconds: float
    first_test_s: float | None  # from QEMU start until the guest's first pytest test began


def kernel_from_dist(dist: Path = DIST) -> Path:
    """Extract the vmlinuz from dist/'s linux-image package, once per package."""
    return _from_image(dist, "vmlinuz")


def system_map_from_dist(dist: Path = DIST) -> Path:
    """The System.map of dist/'s kernel: its symbols' addresses (the vm profile has no KASLR)."""
    return _from_image(dist, "System.map")


def _from_image(dist: Path, name: str) -> Path:
    """/boot/NAME-* from dist/'s linux-image package, extracted once per package."""
    images = sorted(dist.glob("linux-image-*.deb"))
    images = [d for d in images if "-dbg_" not in d.name]
    if not images:
        raise PipelineError(f"no linux-image package in {dist}: run './iro build' first")
    deb = images[-1]
    stat = deb.stat()  # a rebuild keeps the package name: key on its identity too
    target = cache_root() / "vm" / "kernels" / f"{deb.stem}-{stat.st_size}-{stat.st_mtime_ns}.{name}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            steps.capture(["dpkg-deb", "-x", deb, tmp])
            found = list(Path(tmp, "boot").glob(f"{name}-*"))
            if not found:
                raise PipelineError(f"{deb.name}: no /boot/{name}-* inside")
            found[0].replace(target)
    return target


def _qemu_argv(kernel: Path, accel: str, run_dir: Path, memory: str, smp: int,
               plugin: str | None = None) -> list[str]:
    cmdline = " ".join([
        "console=ttyS0", "earlyprintk=serial,ttyS0,115200", "root=/dev/root", "rootfstype=9p",
        "rootflags=trans=virtio,version=9p2000.L,msize=512000", "ro",
        f"init={GUEST_INIT}", "panic=-1", "oops=panic", "tsc=reliable", "clocksource=acpi_pm",
    ])
    accel_args = {
        "kvm": ["-accel", "kvm", "-cpu", "host"],
        "tcg": ["-accel", "tcg,thread=multi", "-cpu", "max"],
        # guest time counts instructions (1 ns each), so the host's load cannot skew a benchmark
        "icount": ["-accel", "tcg", "-icount", "shift=0,sleep=off", "-cpu", "max"],
    }[accel]
    shares = [("/dev/root", "/", True), ("irorepo", str(REPO), True), ("iroout", str(run_dir / "share"), False)]
    shares += [(tag, str(path), True) for tag, path in cached_trees().items()]
    argv = [
        "qemu-system-x86_64", "-machine", "q35", *accel_args, "-smp", str(smp), "-m", memory,
        "-display", "none", "-no-reboot", "-nodefaults", "-kernel", str(kernel), "-append", cmdline,
        "-serial", f"file:{run_dir / 'console.log'}", "-serial", f"file:{run_dir / 'output.log'}",
    ]
    if plugin:
        argv += ["-plugin", plugin]
    for index, (tag, path, readonly) in enumerate(shares):
        ro = ",readonly=on" if readonly else ""
        argv += ["-fsdev", f"local,id=fs{index},path={path},security_model=none{ro}",
                 "-device", f"virtio-9p-pci,fsdev=fs{index},mount_tag={tag}"]
    return argv


def cached_trees() -> dict[str, Path]:
    """Trees the guest mounts again with 9p caching, by mount tag: the Python
    installation and venv, whose imports are slow over the uncached root."""
    trees = sorted({Path(sys.base_prefix).resolve(), Path(sys.prefix)})
    return {f"irocache{i}": path for i, path in enumerate(trees)}


def _follow(path: Path, stop: threading.Event, echo: bool) -> None:
    """Print the guest command's output as it arrives."""
    while not path.exists() and not stop.is_set():
        time.sleep(0.05)
    if not path.exists():
        return
    with path.open("rb") as f:
        while True:
            chunk = f.read(65536)
            if chunk and echo:
                os.write(1, chunk.replace(b"\r\n", b"\n"))
            elif not chunk:
                if stop.is_set():
                    return
                time.sleep(0.05)


def crash_excerpt(console: Path, context: int = 25) -> str | None:
    lines = console.read_text(errors="replace").splitlines() if console.exists() else []
    for index, line in enumerate(lines):
        if CRASH_PATTERNS.search(line):
            return "\n".join(lines[max(0, index - 3) : index + context])
    return None


def boot(
    command: str,
    *,
    kernel: Path | None = None,
    accel: str | None = None,
    timeout: float = 900.0,
    memory: str = "2G",
    smp: int = 2,
    env: dict[str, str] | None = None,
    echo: bool = True,
    plugin: str | None = None,
) -> VmResult:
    """Run a shell command in a fresh guest and return its exit code and logs.
    `plugin` is a TCG plugin with its arguments, as QEMU's -plugin takes them."""
    require(VM_TOOLS)
    kernel = kernel or kernel_from_dist()
    accel = accel or choose_accel(kernel)
    if accel == "icount":
        smp = 1  # single-threaded TCG; here a second vCPU hung the boot at "Booting SMP configuration"
    runs = cache_root() / "vm" / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=runs))
    share = run_dir / "share"
    share.mkdir()
    cached = " ".join(f"{tag}={path}" for tag, path in cached_trees().items())
    guest_env = {"IRO_REPO": str(REPO), "IRO_VM_OUT": "/run/iro-out", "PYTHONDONTWRITEBYTECODE": "1",
                 "HOME": "/run/home", "IRO_IN_GUEST": "1", "IRO_CACHED": cached,
                 "PATH": os.environ.get("PATH", ""), **(env or {})}
    (share / "env.sh").write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in guest_env.items()))
    (share / "cmd.sh").write_text(command + "\n")
    latest = runs.parent / "latest"
    latest.unlink(missing_ok=True)
    latest.symlink_to(run_dir)
    argv = _qemu_argv(kernel, accel, run_dir, memory, smp, plugin)
    (run_dir / "qemu.argv").write_text(shlex.join(argv) + "\n")
    stop = threading.Event()
    follower = threading.Thread(target=_follow, args=(run_dir / "output.log", stop, echo), daemon=True)
    follower.start()
    start, start_wall = time.monotonic(), time.time()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        qemu_out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise PipelineError(
            f"guest hung: no result after {timeout:.0f} s; console saved at {run_dir / 'console.log'}"
        ) from None
    finally:
        stop.set()
        follower.join()
    seconds = time.monotonic() - start
    (run_dir / "qemu.log").write_bytes(qemu_out)
    console = run_dir / "console.log"
    if excerpt := crash_excerpt(console):
        raise PipelineError(
            f"guest kernel reported a crash; full console: {console}\n{excerpt}"
        )
    exit_file = share / "exit-code"
    if not exit_file.exists():
        tail = qemu_out.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise PipelineError(f"guest ended without a result (qemu exit {proc.returncode}); "
                            f"qemu said: {tail[0]}; console: {console}")
    first_test = share / "first-test"
    first_test_s = first_test.stat().st_mtime - start_wall if first_test.exists() else None
    return VmResult(int(exit_file.read_text()), console, run_dir / "output.log", accel, seconds, first_test_s)


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def choose_accel(kernel: Path) -> str:
    """KVM only if a probe boot of this kernel finishes in time; otherwise TCG.

    The probe result is cached per host boot and kernel, since a nested
    hypervisor that hangs guests costs the whole probe timeout.
    """
    if os.environ.get("IRO_ACCEL") in ("kvm", "tcg"):
        return os.environ["IRO_ACCEL"]
    cache = cache_root() / "vm" / "kvm-probe.json"
    key = f"{_boot_id()}:{kernel.name}"
    known = json.loads(cache.read_text()) if cache.exists() else {}
    if key not in known:
        known[key] = _probe_kvm(kernel)
        cache.write_text(json.dumps(known, indent=2) + "\n")
    if known[key] == "kvm":
        return "kvm"
    steps.console.print(f"[yellow]KVM unusable here ({known[key]}); running the guest under TCG[/]")
    return "tcg"


def _probe_kvm(kernel: Path) -> str:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "no /dev/kvm"
    try:
        result = boot("true", kernel=kernel, accel="kvm", timeout=PROBE_TIMEOUT, echo=False)
    except PipelineError as err:
        return f"probe boot: {str(err).split(';')[0].split(':')[0]}"
    return "kvm" if result.exit_code == 0 else f"probe exit {result.exit_code}"
