"""The mip6d Debian package: build, lintian, contents, and `apt install` on a clean Debian 12.

The install tests need root and debootstrap. The first run bootstraps a minbase bookworm chroot from
the machine's apt mirror into ~/.cache/iro/chroot/ (atomically: built aside, then renamed); every run
installs the package in a throwaway overlay of it, so the cached base stays clean.
IRO_MIP6D_DEB=path/to/mip6d_*.deb tests that package instead of building one.
"""

from __future__ import annotations

import base64
import configparser
import contextlib
import csv
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from iro_pipeline import daemon_deb
from iro_pipeline.errors import PipelineError
from iro_pipeline.paths import REPO, cache_root, logs_dir

SUITE = "bookworm"
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root: debootstrap, mounts and chroot")
CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LC_ALL": "C.UTF-8",
              "DEBIAN_FRONTEND": "noninteractive"}
APT = "apt-get -q -o DPkg::Lock::Timeout=300"
# not compared before/after a purge: kernel file systems, temporary files, apt and dpkg state, logs
VOLATILE = {"proc", "sys", "dev", "run", "tmp", "var/tmp", "var/cache", "var/lib/apt", "var/lib/dpkg", "var/log"}


def say(request: pytest.FixtureRequest, line: str) -> None:
    """A line on the terminal, even with output captured (timings)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        reporter.write_line(f"\n[mip6d deb] {line}")


# --- the package -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    deb: Path
    workdir: Path | None  # None: the package came from IRO_MIP6D_DEB


@dataclass(frozen=True)
class Contents:
    members: dict[str, tarfile.TarInfo]  # "usr/sbin/mip6d" -> entry of data.tar
    files: dict[str, bytes]  # regular files
    control: dict[str, str]  # DEBIAN/control fields
    scripts: dict[str, str]  # the other control members: conffiles, postinst, prerm, ...


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Built:
    if given := os.environ.get("IRO_MIP6D_DEB"):
        return Built(Path(given).resolve(), None)
    tmp = tmp_path_factory.mktemp("mip6d-deb")
    start = time.monotonic()
    try:
        deb = daemon_deb.build_daemon_deb(tmp / "dist", workdir=tmp / "build")
    except PipelineError as err:
        pytest.fail(f"build_daemon_deb: {err}", pytrace=False)
    say(request, f"built {deb.name} in {time.monotonic() - start:.1f} s")
    return Built(deb, tmp / "build")


@pytest.fixture(scope="module")
def contents(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Contents:
    fsys = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(built.deb)], capture_output=True, check=True).stdout
    members: dict[str, tarfile.TarInfo] = {}
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(fsys)) as tar:
        for info in tar:
            name = info.name.removeprefix("./").rstrip("/")
            members[name] = info
            if info.isfile():
                data = tar.extractfile(info)
                assert data is not None
                files[name] = data.read()
    control_dir = tmp_path_factory.mktemp("mip6d-control")
    subprocess.run(["dpkg-deb", "-e", str(built.deb), str(control_dir)], check=True)
    scripts = {p.name: p.read_text() for p in control_dir.iterdir() if p.name != "control"}
    return Contents(members, files, parse_control((control_dir / "control").read_text()), scripts)


def parse_control(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line[:1] in (" ", "\t"):
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def make_umip(root: Path, leave_out: str) -> Path:
    """A umip/ tree with everything the package needs but one file."""
    (root / "mip6d").mkdir(parents=True)
    (root / "mip6d" / "__init__.py").write_text(f'__version__ = "{daemon_deb.daemon_version()}"\n')
    for name in ("examples/mip6d.conf", *(f"man/{page}" for page in daemon_deb.MAN_PAGES)):
        if name != leave_out:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text("stand-in\n")
    return root


@pytest.mark.parametrize("missing", ["examples/mip6d.conf", "man/mip6d.8", "man/mip6d.keys.5"])
def test_missing_input_fails_in_one_line(tmp_path: Path, missing: str) -> None:
    umip = make_umip(tmp_path / "umip", missing)
    with pytest.raises(PipelineError) as err:
        daemon_deb.build_daemon_deb(tmp_path / "dist", umip=umip, workdir=tmp_path / "work")
    assert "\n" not in str(err.value)
    assert f"missing {umip / missing}" in str(err.value)
    assert not (tmp_path / "dist").exists() and not (tmp_path / "work").exists()


def test_changelog_is_at_the_daemon_version() -> None:
    changelog = REPO / "packaging" / "debian" / "changelog"
    top = subprocess.run(["dpkg-parsechangelog", "-l", str(changelog), "-S", "Version"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert top == f"{daemon_deb.daemon_version()}-{daemon_deb.DEB_REVISION}"


def test_bundled_pyroute2_is_the_pinned_one() -> None:
    pins = re.findall(r"^pyroute2==(\S+)", (REPO / "requirements.txt").read_text(), re.M)
    assert pins == [daemon_deb.PYROUTE2_VERSION], "requirements.txt and daemon_deb.PYROUTE2_VERSION differ"
    assert f"pyroute2 {daemon_deb.PYROUTE2_VERSION}" in (REPO / "packaging" / "debian" / "copyright").read_text()
    assert not list((REPO / "packaging").rglob("__init__.py")), "packaging/ must not become a Python package"


def test_build_is_reproducible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two builds of one snapshot of umip/, in different directories, give the same bytes."""
    umip = tmp_path / "umip"
    shutil.copytree(daemon_deb.UMIP, umip, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(daemon_deb.source_date_epoch()))  # HEAD may move meanwhile
    first = daemon_deb.build_daemon_deb(tmp_path / "dist1", umip=umip, workdir=tmp_path / "a" / "build")
    second = daemon_deb.build_daemon_deb(tmp_path / "dist2", umip=umip, workdir=tmp_path / "elsewhere" / "b")
    assert first.name == second.name
    assert hashlib.sha256(first.read_bytes()).hexdigest() == hashlib.sha256(second.read_bytes()).hexdigest()


def test_lintian_has_no_errors_or_warnings(built: Built, tmp_path: Path) -> None:
    if shutil.which("lintian") is None:
        pytest.fail("lintian missing: apt-get install lintian", pytrace=False)
    proc = subprocess.run(["lintian", "-I", "-E", "--pedantic", "--fail-on", "error,warning", str(built.deb)],
                          capture_output=True, text=True, env={**os.environ, "TMPDIR": str(tmp_path)})  # it leaks files
    tags = [line for line in proc.stdout.splitlines() if re.match(r"[EWIPX]: ", line)]
    print("\n".join(tags))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not [tag for tag in tags if tag[0] in "EW"]


def test_control(built: Built, contents: Contents) -> None:
    control = contents.control
    version = daemon_deb.daemon_version()
    assert built.deb.name == f"mip6d_{version}-1_all.deb"
    assert (control["Package"], control["Version"], control["Architecture"]) == ("mip6d", f"{version}-1", "all")
    depends = [d.strip() for d in control["Depends"].split(",")]
    assert "python3 (>= 3.11)" in depends and "iproute2" in depends
    assert not [d for d in depends if "pyroute2" in d], "pyroute2 is bundled, not a dependency"
    assert contents.scripts["conffiles"].split() == ["/etc/mip6d.conf"]
    info = subprocess.run(["dpkg-deb", "-I", str(built.deb)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^\s+\d+ bytes,\s+1 lines\s+conffiles\s*$", info, re.M), info
    assert "py3compile -p mip6d /usr/lib/mip6d" in contents.scripts["postinst"]
    assert "py3clean -p mip6d" in contents.scripts["prerm"]
    # installed, not enabled: no `deb-systemd-helper enable` on first install
    assert "was-enabled" in contents.scripts["postinst"]
    assert "deb-systemd-helper purge 'mip6d.service'" in contents.scripts["postrm"]


def test_file_list(built: Built) -> None:
    listing = subprocess.run(["dpkg-deb", "-c", str(built.deb)], capture_output=True, text=True, check=True).stdout
    entries = {line.split()[-1].removeprefix("./"): line.split() for line in listing.splitlines()}
    wanted = {
        "usr/sbin/mip6d": "-rwxr-xr-x",
        "usr/sbin/mip6d-ctl": "-rwxr-xr-x",
        "etc/mip6d.conf": "-rw-r--r--",
        "lib/systemd/system/mip6d.service": "-rw-r--r--",
        "usr/lib/mip6d/mip6d/__init__.py": "-rw-r--r--",
        "usr/lib/mip6d/pyroute2/__init__.py": "-rw-r--r--",
        "usr/share/doc/mip6d/copyright": "-rw-r--r--",
        "usr/share/doc/mip6d/changelog.Debian.gz": "-rw-r--r--",
        "usr/share/doc/mip6d/README.Debian": "-rw-r--r--",
        "usr/share/doc/mip6d/examples/mip6d.conf": "-rw-r--r--",
        **{f"usr/share/man/man{page[-1]}/{page}.gz": "-rw-r--r--" for page in daemon_deb.MAN_PAGES},
    }
    for path, mode in wanted.items():
        assert path in entries, f"{path} not in the package"
        assert entries[path][:2] == [mode, "root/root"], entries[path]
    assert {fields[1] for fields in entries.values()} == {"root/root"}
    assert "etc/mip6d.keys" not in entries, "the example keys are public: never installed as live keys"
    assert not [p for p in entries if "__pycache__" in p or p.endswith((".pyc", ".pyo"))]
    assert not [p for p in entries if ".dist-info" in p or re.search(r"/(LICENSE|COPYING)[^/]*$", p)]


def test_file_metadata(built: Built, contents: Contents) -> None:
    mtimes = {info.mtime for info in contents.members.values()}
    assert len(mtimes) == 1, "every file gets SOURCE_DATE_EPOCH (a commit date: HEAD may have moved since)"
    for name, info in contents.members.items():
        if name.startswith("usr/lib/mip6d/") and info.isfile():
            assert info.mode == 0o644, name
    build_paths = [str(REPO), str(cache_root()), str(Path.home() / ".cache")]
    if built.workdir is not None:
        build_paths.append(str(built.workdir))
    for name, data in contents.files.items():
        for build_path in build_paths:
            assert build_path.encode() not in data, f"{name} mentions {build_path}"


def test_man_pages_are_gzipped_reproducibly(contents: Contents) -> None:
    pages = {name: data for name, data in contents.files.items() if name.startswith("usr/share/man/")}
    assert set(pages) >= {f"usr/share/man/man{page[-1]}/{page}.gz" for page in daemon_deb.MAN_PAGES}
    for name, data in pages.items():
        assert data[:3] == b"\x1f\x8b\x08", f"{name} is not gzip"
        assert data[3] & 0x08 == 0, f"{name} stores a file name (gzip without -n)"
        assert data[4:8] == b"\0\0\0\0", f"{name} stores a time stamp (gzip without -n)"
        assert data[8] == 2, f"{name} is not compressed with -9"


def test_bundled_pyroute2_is_the_wheel(contents: Contents) -> None:
    with zipfile.ZipFile(daemon_deb.pyroute2_wheel()) as wheel:
        record = wheel.read(f"pyroute2-{daemon_deb.PYROUTE2_VERSION}.dist-info/RECORD").decode()
    expected = {path: digest for path, digest, _ in csv.reader(record.splitlines()) if path.startswith("pyroute2/")}
    shipped = {name.removeprefix("usr/lib/mip6d/"): data for name, data in contents.files.items()
               if name.startswith("usr/lib/mip6d/pyroute2/")}
    assert sorted(shipped) == sorted(expected)
    for path, data in shipped.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert expected[path] == f"sha256={digest}", f"{path} differs from the wheel"


@pytest.mark.parametrize(("wrapper", "module"), [("mip6d", "mip6d.main"), ("mip6d-ctl", "mip6d.ctl")])
def test_wrappers(contents: Contents, wrapper: str, module: str) -> None:
    text = contents.files[f"usr/sbin/{wrapper}"].decode()
    assert text.startswith("#!/usr/bin/python3\n")
    assert 'sys.path.insert(0, "/usr/lib/mip6d")' in text
    assert f"from {module} import main" in text
    compile(text, wrapper, "exec")


def test_systemd_unit(contents: Contents) -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(contents.files["lib/systemd/system/mip6d.service"].decode())
    service = unit["Service"]
    assert service["Type"] == "simple"
    assert service["ExecStart"] == "/usr/sbin/mip6d --foreground -c /etc/mip6d.conf"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "network-online.target" in unit["Unit"]["After"].split()
    assert set(service["CapabilityBoundingSet"].split()) == {"CAP_NET_ADMIN", "CAP_NET_RAW"}
    assert {"AF_UNIX", "AF_NETLINK", "AF_INET6"} <= set(service["RestrictAddressFamilies"].split())
    assert service["RuntimeDirectory"] == "mip6d", "the control socket is /run/mip6d/control"
    assert "ProtectKernelTunables" not in service, "mip6d writes /proc/sys/net/ipv6"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


# --- apt install on a clean Debian 12 ---------------------------------------------------------


def host_apt_entries() -> list[tuple[str, str, str]]:
    """(URI, suite, components) of every enabled `deb` source of this machine, as apt reads them."""
    entries: list[tuple[str, str, str]] = []
    sources_d = Path("/etc/apt/sources.list.d")
    for path in [Path("/etc/apt/sources.list"), *sorted(sources_d.glob("*.list"))]:
        for line in path.read_text().splitlines() if path.is_file() else []:
            words = line.split("#", 1)[0].split()
            if not words or words[0] != "deb":
                continue
            words = words[1:]
            if words and words[0].startswith("["):  # [arch=... signed-by=...]
                while words and not words[0].endswith("]"):
                    words.pop(0)
                words = words[1:]
            if len(words) >= 2:
                entries.append((words[0], words[1], " ".join(words[2:])))
    for path in sorted(sources_d.glob("*.sources")):
        for stanza in re.split(r"\n[ \t]*\n", path.read_text()):
            fields: dict[str, str] = {}
            key = ""
            for line in stanza.splitlines():
                if line.startswith("#"):
                    continue
                if line[:1] in (" ", "\t") and key:
                    fields[key] += " " + line.strip()
                elif ":" in line:
                    key, _, value = line.partition(":")
                    key = key.strip().lower()
                    fields[key] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                entries.extend((uri, suite, fields.get("components", "")) for suite in fields.get("suites", "").split())
    return entries


def chroot_sources() -> tuple[str, str]:
    """The mirror for debootstrap and the chroot's sources.list: this machine's bookworm entries."""
    ours = [e for e in dict.fromkeys(host_apt_entries()) if e[1] == SUITE or e[1].startswith(f"{SUITE}-")]
    mirror = next((uri for uri, suite, _ in ours if suite == SUITE), None)
    if mirror is None:
        pytest.fail(f"no `deb URI {SUITE}` entry in this machine's apt sources", pytrace=False)
    return mirror, "".join(f"deb {uri} {suite} {components or 'main'}\n" for uri, suite, components in ours)


def mounts_below(path: Path) -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")  # \040 for a space
        if point == str(path) or point.startswith(f"{path}/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def unmount(point: str | Path) -> None:
    if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(point)], check=True)


def remove_tree(path: Path) -> None:
    """rm -rf, but never through a mount point."""
    for point in mounts_below(path):
        unmount(point)
    if mounts_below(path):
        raise RuntimeError(f"{path} still has mounts, not removing it")
    shutil.rmtree(path, ignore_errors=True)


def run_in(root: Path, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["chroot", str(root), "sh", "-c", command], env=CHROOT_ENV,
                          capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip().splitlines()
        pytest.fail(f"in the chroot: {command}: exit {proc.returncode}\n" + "\n".join(output[-30:]), pytrace=False)
    return proc


def base_chroot(request: pytest.FixtureRequest) -> Path:
    """The cached minbase chroot for this machine's mirror, bootstrapped once."""
    mirror, sources = chroot_sources()
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    key = hashlib.sha256(f"{mirror}\n{sources}minbase {arch}\n".encode()).hexdigest()[:12]
    parent = cache_root() / "chroot"
    parent.mkdir(parents=True, exist_ok=True)
    base = parent / f"{SUITE}-{key}"
    if base.is_dir():
        say(request, f"chroot base {base} reused")
        return base
    if shutil.which("debootstrap") is None:
        pytest.fail("debootstrap missing: apt-get install debootstrap", pytrace=False)
    for stale in parent.glob(f".{base.name}.*"):  # left by an interrupted run
        if time.time() - stale.stat().st_mtime > 3600:
            remove_tree(stale)
    tmp = Path(tempfile.mkdtemp(prefix=f".{base.name}.", dir=parent))
    tmp.chmod(0o755)
    log = logs_dir() / f"debootstrap-{base.name}.log"
    start = time.monotonic()
    try:
        with log.open("w") as out:
            code = subprocess.run(["debootstrap", "--variant=minbase", f"--arch={arch}", SUITE, str(tmp), mirror],
                                  stdout=out, stderr=subprocess.STDOUT).returncode
        if code != 0:
            pytest.fail(f"debootstrap {SUITE} from {mirror} failed (exit {code}); log: {log}", pytrace=False)
        (tmp / "etc" / "apt" / "sources.list").write_text(sources)
        run_in(tmp, "apt-get clean")
        try:
            tmp.rename(base)
        except OSError:
            if not base.is_dir():
                raise  # else another run finished first: use its base
    finally:
        if tmp.exists():
            remove_tree(tmp)
    say(request, f"chroot base {base} created in {time.monotonic() - start:.1f} s (debootstrap from {mirror})")
    return base


def snapshot(root: Path) -> set[str]:
    """Every path of the chroot outside VOLATILE, relative to its root."""
    paths: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        prefix = "" if rel == "." else f"{rel}/"
        dirnames[:] = [d for d in dirnames if f"{prefix}{d}" not in VOLATILE]
        paths.update(f"{prefix}{name}" for name in [*dirnames, *filenames])
    return paths


@dataclass
class Installed:
    base: Path
    root: Path
    deb: str  # its file name in /tmp of the chroot
    apt_output: str
    installed_paths: set[str]  # snapshot right after `apt-get install`

    def run(self, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_in(self.root, command, check)


@pytest.fixture(scope="module")
def installed(built: Built, request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """`apt-get install ./mip6d_*.deb` in a fresh overlay of the cached clean chroot."""
    if not IS_ROOT:
        pytest.skip("needs root: debootstrap, mounts and chroot")
    base = base_chroot(request)
    work = tmp_path_factory.mktemp("mip6d-chroot")
    root = work / "root"
    for name in ("upper", "work", "root"):
        (work / name).mkdir()
    try:
        options = f"lowerdir={base},upperdir={work / 'upper'},workdir={work / 'work'}"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(root)], check=True)
        # downloaded packages and index files are kept across runs, outside the base
        caches = {"apt-archives": "var/cache/apt/archives", f"apt-lists-{base.name}": "var/lib/apt/lists"}
        for cache, inside in caches.items():
            (base.parent / cache / "partial").mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", "--bind", str(base.parent / cache), str(root / inside)], check=True)
        (root / "etc" / "resolv.conf").unlink(missing_ok=True)
        shutil.copyfile("/etc/resolv.conf", root / "etc" / "resolv.conf")
        shutil.copyfile(built.deb, root / "tmp" / built.deb.name)
        start = time.monotonic()
        run_in(root, f"{APT} update")
        apt = run_in(root, f"cd /tmp && {APT} install -y ./{built.deb.name}")
        say(request, f"apt-get update + install ./{built.deb.name} in the chroot: {time.monotonic() - start:.1f} s")
        yield Installed(base, root, built.deb.name, apt.stdout, snapshot(root))
    finally:
        remove_tree(work)


@needs_root
def test_apt_resolves_the_dependencies_on_a_clean_system(installed: Installed) -> None:
    assert not (installed.base / "usr" / "bin" / "python3").exists(), "the base chroot must not have python3"
    for package in ("python3", "iproute2", "mip6d"):
        assert re.search(rf"^Setting up {package} \(", installed.apt_output, re.M), f"apt did not install {package}"


@needs_root
def test_dpkg_status(installed: Installed) -> None:
    status = installed.run("dpkg -s mip6d").stdout
    assert "Status: install ok installed" in status
    assert f"Version: {daemon_deb.daemon_version()}-{daemon_deb.DEB_REVISION}" in status
    conffiles = installed.run("dpkg-query -W -f='${Conffiles}' mip6d").stdout.split()
    assert conffiles[0] == "/etc/mip6d.conf" and re.fullmatch(r"[0-9a-f]{32}", conffiles[1])


@needs_root
def test_bundled_pyroute2_and_mip6d_import(installed: Installed) -> None:
    script = ("import sys; sys.path.insert(0, '/usr/lib/mip6d'); import mip6d, pyroute2; "
              "print(pyroute2.__version__, pyroute2.__file__, mip6d.__version__)")
    out = installed.run(f'cd / && python3 -c "{script}"').stdout.split()
    assert out == [daemon_deb.PYROUTE2_VERSION, "/usr/lib/mip6d/pyroute2/__init__.py", daemon_deb.daemon_version()]


@needs_root
def test_mip6d_version(installed: Installed) -> None:
    if not (installed.root / "usr/lib/mip6d/mip6d/main.py").exists():
        pytest.skip("umip/mip6d/main.py not written yet: the import test covers the wrapper's path")
    proc = installed.run("mip6d -V")
    assert daemon_deb.daemon_version() in proc.stdout + proc.stderr


@needs_root
def test_mip6d_ctl_help(installed: Installed) -> None:
    if not (installed.root / "usr/lib/mip6d/mip6d/ctl.py").exists():
        pytest.skip("umip/mip6d/ctl.py not written yet")
    assert "usage" in installed.run("mip6d-ctl --help").stdout.lower()


@needs_root
def test_bytecode_compiled_at_install(installed: Installed) -> None:
    for package in ("mip6d", "pyroute2"):
        assert list((installed.root / "usr/lib/mip6d" / package / "__pycache__").glob("__init__.cpython-3*.pyc"))


@needs_root
def test_service_installed_not_enabled(installed: Installed) -> None:
    assert (installed.root / "usr/lib/systemd/system/mip6d.service").is_file()
    assert not list((installed.root / "etc/systemd/system").glob("*/mip6d.service"))


@needs_root
def test_purge_leaves_nothing(installed: Installed) -> None:
    """Runs last: purge, then a second install, run and purge must leave the system as the first purge did."""
    installed.run(f"{APT} purge -y mip6d")
    purged = snapshot(installed.root)
    assert installed.run("dpkg -s mip6d", check=False).returncode != 0
    assert sorted(p for p in purged if "mip6d" in p) == []
    assert not list((installed.root / "var/lib/dpkg/info").glob("mip6d.*"))
    assert sorted(purged - installed.installed_paths) == [], "created after the install and left behind"
    installed.run(f"cd /tmp && {APT} install -y ./{installed.deb}")
    imports = "cd / && python3 -c 'import sys; sys.path.insert(0, \"/usr/lib/mip6d\"); import mip6d, pyroute2'"
    installed.run("mip6d -V" if (installed.root / "usr/lib/mip6d/mip6d/main.py").exists() else imports)
    installed.run(f"{APT} purge -y mip6d")
    again = snapshot(installed.root)
    assert sorted(again - purged) == [] and sorted(purged - again) == []
