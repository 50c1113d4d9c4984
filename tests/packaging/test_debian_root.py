"""The three .debs installed as a new user or admin would, in a fresh Debian 12 (issue #17).

A minimal Debian 12 root (``debootstrap --variant=minbase bookworm``; the finished root is cached as
a tarball in LEA_CACHE_DIR, default ~/.cache/lea-desktop/debootstrap, so a second run unpacks it in
seconds) gets each package with ``apt-get install ./package.deb`` (its dependencies from Debian's
registry), runs its smoke test inside the root (chroot), then ``apt-get purge``; afterwards nothing
of the package is left but the user's data (the server's /var/lib/lea). The Debian mirror is the
one this machine's apt uses (LEA_DEBIAN_MIRROR overrides it).

Skipped, with the reason, where a root cannot be made: not root, no debootstrap, no /proc mount,
no mirror, or debootstrap failing (no network). Slow: CI=true or LEA_PACKAGE_TEST=1. Prints the
install times; docs/performance.md records them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.packaging.conftest import SLOW_PACKAGE_TEST, VERSION

pytestmark = SLOW_PACKAGE_TEST
SUITE = "bookworm"
#: Read when the module loads: the tests' autouse fixture points HOME and XDG_CACHE_HOME elsewhere.
CACHE = Path(
    os.environ.get("LEA_CACHE_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lea-desktop"
) / "debootstrap"
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
#: Not compared before and after: the package manager's own state, caches, logs, scratch space.
UNWATCHED = ("proc", "sys", "dev", "run", "tmp", "var/cache", "var/lib/apt", "var/lib/dpkg", "var/log")
#: A path of ours: one of its parts is named lea, or starts with lea- / lea. / lea_ (lea-server.service, lea.toml).
OURS = re.compile(r"(^|/)lea([-._][^/]*)?(/|$)")
#: What purge keeps on purpose: the lab server's data (docs/server.md).
USER_DATA = {"lea-server": ("var/lib/lea",)}


def host_mirror() -> str | None:
    if os.environ.get("LEA_DEBIAN_MIRROR"):
        return os.environ["LEA_DEBIAN_MIRROR"]
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    listing = Path("/etc/apt/sources.list")
    if listing.exists():
        for line in listing.read_text().splitlines():
            words = line.split()
            if len(words) >= 3 and words[0] == "deb" and "security" not in words[1] and "debian" in words[1]:
                return words[1]
    return None


def why_no_root() -> str | None:
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot, mount)"
    if shutil.which("debootstrap") is None:
        return "debootstrap is not installed (scripts/ensure-packaging-deps installs it)"
    if host_mirror() is None:
        return "no Debian mirror: set LEA_DEBIAN_MIRROR"
    return None


def in_root(root: Path, *command: str, user: str | None = None, timeout: float = 300,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    prefix = [CHROOT, *([f"--userspec={user}:{user}"] if user else []), str(root)]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root",
           "DEBIAN_FRONTEND": "noninteractive"}
    run = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=timeout, env=env)
    if check:
        said = f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
        assert run.returncode == 0, f"{' '.join(command)}: exit {run.returncode}\n{said}"
    return run


def make_root(root: Path) -> None:
    """The minbase root in ``root``, from the cached tarball, else made (and cached)."""
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    cached = CACHE / f"{SUITE}-minbase-{arch}.tar.gz"
    started = time.monotonic()
    if cached.exists():
        subprocess.run(["tar", "-xzf", str(cached), "--numeric-owner", "-C", str(root)], check=True)
        print(f"\nDebian root: unpacked {cached} in {time.monotonic() - started:.1f} s")
        return
    made = subprocess.run(
        ["debootstrap", "--variant=minbase", SUITE, str(root), str(host_mirror())],
        capture_output=True, text=True, timeout=1200,
    )
    if made.returncode != 0:
        pytest.skip(f"debootstrap cannot make a Debian root here: {(made.stdout + made.stderr)[-600:]}")
    print(f"\nDebian root: debootstrap --variant=minbase {SUITE}: {time.monotonic() - started:.0f} s")
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial")
    subprocess.run(["tar", "-czf", str(partial), "--numeric-owner", "-C", str(root), "."], check=True)
    partial.rename(cached)


@pytest.fixture(scope="module")
def debian_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    reason = why_no_root()
    if reason is not None:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("debian-root")
    mounted = False
    try:
        make_root(root)
        root.chmod(0o755)  # its / (pytest makes 0700 directories): the user lea goes through it
        shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
        mount = subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], capture_output=True, text=True)
        if mount.returncode != 0:
            pytest.skip(f"cannot mount /proc in the Debian root: {mount.stderr.strip()}")
        mounted = True
        in_root(root, "apt-get", "update", "-qq", timeout=600)
        yield root
    finally:
        # /proc, and what ran inside mounted (pyroute2 makes /run/netns a mount point, as `ip netns`
        # does): unmounted before anything is deleted, so that no deletion reaches through a mount
        if mounted and unmount_all(root):
            shutil.rmtree(root, ignore_errors=True)


def mounts_under(root: Path) -> list[str]:
    points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    return [p for p in points if p == str(root) or p.startswith(f"{root}/")]


def unmount_all(root: Path) -> bool:
    """Unmount every mount point under ``root``, deepest first; whether none is left."""
    for point in sorted(mounts_under(root), key=len, reverse=True):
        subprocess.run(["umount", point], check=False, capture_output=True)
    left = mounts_under(root)
    if left:
        print(f"\nDebian root: still mounted, not deleted: {left}")
    return not left


def snapshot(root: Path) -> set[str]:
    """Every path of the root that is not the package manager's state, a cache, a log or scratch."""
    paths: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root).as_posix()
        dirnames[:] = [d for d in dirnames if f"{rel}/{d}".lstrip("./") not in UNWATCHED]
        paths.update(f"{rel}/{name}".removeprefix("./") for name in dirnames + filenames)
    return paths


def ours(paths: set[str], package: str) -> set[str]:
    kept = USER_DATA.get(package, ())
    return {p for p in paths if OURS.search(p) and not any(p == k or p.startswith(k + "/") for k in kept)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def smoke_desktop(root: Path) -> None:
    home = root / "tmp/home"
    home.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(
        [CHROOT, str(root), "env", "-i", "HOME=/tmp/home", "PATH=/usr/bin:/bin", "LANG=C.UTF-8",
         "QT_QPA_PLATFORM=offscreen", "lea", "--smoke-test"],
        capture_output=True, text=True, timeout=180,
    )
    assert run.returncode == 0 and "smoke test passed" in run.stdout, run.stdout + run.stderr
    assert list(home.rglob("*")) == [], "the smoke test wrote into the user's home"
    assert in_root(root, "lea", "--version").stdout.strip() == f"lea {VERSION}"
    assert in_root(root, "man", "-w", "lea", check=False).returncode in (0, 16, 127)  # man-db is not in minbase


def smoke_server(root: Path) -> None:
    port = free_port()
    out = root / "tmp/serve.out"
    with out.open("w") as stdout:
        server = subprocess.Popen(
            [CHROOT, "--userspec=lea:lea", str(root), "lea-backend", "--data-dir", "/var/lib/lea", "serve",
             "--config", "/etc/lea/lea.toml", "--port", str(port)],
            stdout=stdout, stderr=subprocess.STDOUT, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
    try:
        deadline, health = time.monotonic() + 60, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None and health.status_code == 200, out.read_text()
        assert health.json()["status"] == "ok"
    finally:
        server.terminate()  # the pid is lea-backend's: chroot execs it
        code = server.wait(timeout=30)
    said = out.read_text()
    assert code == 0, said
    assert "no API token yet" in said and "token create --role admin" in said, said
    assert "verify: ok" in in_root(root, "lea-backend", "--data-dir", "/var/lib/lea", "verify", user="lea").stdout
    token = in_root(root, "lea-backend", "--data-dir", "/var/lib/lea", "token", "create", "--role", "admin",
                    "--name", "ada", user="lea").stdout.strip()
    assert token and " " not in token
    assert (root / "lib/systemd/system/lea-server.service").is_file()
    assert (root / WANTS / "lea-server.service").is_symlink()  # enabled: it starts at boot


def smoke_peer(root: Path) -> None:
    assert in_root(root, "lea-peer", "--version").stdout.strip() == f"lea-peer {VERSION}"
    probe = json.loads(in_root(root, "lea-peer", "probe").stdout)
    assert {"tunnels", "can"} <= set(probe)
    assert not (root / WANTS / "lea-peer.service").exists()  # not enabled before the bench is configured
    assert (root / "etc/lea/peer.toml").is_file() and not (root / "etc/lea/peer.token").exists()


WANTS = "etc/systemd/system/multi-user.target.wants"
SMOKE = {"lea-desktop": smoke_desktop, "lea-server": smoke_server, "lea-peer": smoke_peer}


@pytest.mark.parametrize("package", ["lea-desktop", "lea-server", "lea-peer"])
def test_installs_works_and_purges_without_leftovers(package: str, debs: dict[str, Path],
                                                     debian_root: Path) -> None:
    root = debian_root
    before = snapshot(root)
    shutil.copyfile(debs[package], root / "tmp" / debs[package].name)
    started = time.monotonic()
    installed = in_root(root, "sh", "-c", f"cd /tmp && apt-get install -y -q ./{debs[package].name}", timeout=900)
    seconds = time.monotonic() - started
    newly = re.search(r"(\d+) newly installed", installed.stdout)
    print(f"\n{package}: apt-get install ./{debs[package].name}: {seconds:.1f} s, "
          f"{newly.group(1) if newly else '?'} packages newly installed")
    SMOKE[package](root)
    in_root(root, "apt-get", "purge", "-y", "-q", package)
    status = in_root(root, "dpkg-query", "-W", "-f=${Status}", package, check=False).stdout
    assert status in ("", "unknown ok not-installed"), status
    left = ours(snapshot(root) - before, package)
    assert not left, f"left after purging {package}: {sorted(left)[:20]}"
    for kept in USER_DATA.get(package, ()):
        assert (root / kept).is_dir(), f"purge deleted the user's data {kept}"
