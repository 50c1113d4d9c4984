"""The three .debs as a packager or an IT department checks them (issue #17): lintian reports no
error and no warning (its overrides in packaging/linux/lintian-overrides each say why), the
desktop entry validates, each package has its man page, changelog, copyright and the licences of
what it bundles, and the server and agent packages carry no Qt. Slow: CI=true or LEA_PACKAGE_TEST=1."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.packaging.conftest import DEB_VERSION, PACKAGES, SLOW_PACKAGE_TEST

pytestmark = SLOW_PACKAGE_TEST
COMMANDS = {"lea-desktop": "lea", "lea-server": "lea-backend", "lea-peer": "lea-peer"}


@pytest.fixture(scope="module")
def unpacked(debs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    roots = {}
    for package, deb in debs.items():
        roots[package] = tmp_path_factory.mktemp(package)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(roots[package])], check=True)
        subprocess.run(["dpkg-deb", "-e", str(deb), str(roots[package] / "DEBIAN")], check=True)
    yield roots
    for root in roots.values():
        shutil.rmtree(root, ignore_errors=True)


def field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "--field", str(deb), name], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.mark.skipif(shutil.which("lintian") is None, reason="lintian is not installed (scripts/ensure-packaging-deps)")
def test_lintian_reports_no_error_and_no_warning(debs: dict[str, Path]) -> None:
    run = subprocess.run(["lintian", "--fail-on", "error,warning", *map(str, debs.values())],
                         capture_output=True, text=True, timeout=600)
    said = [line for line in run.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert run.returncode == 0 and not said, run.stdout + run.stderr


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-validate is not installed")
def test_the_installed_desktop_entry_validates(unpacked: dict[str, Path]) -> None:
    entry = unpacked["lea-desktop"] / "usr/share/applications/lea-desktop.desktop"
    run = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True, text=True)
    assert run.returncode == 0 and not run.stdout.strip(), run.stdout + run.stderr


@pytest.mark.parametrize("package", PACKAGES)
def test_man_page_changelog_copyright_and_licences(package: str, debs: dict[str, Path],
                                                   unpacked: dict[str, Path]) -> None:
    root, command = unpacked[package], COMMANDS[package]
    assert field(debs[package], "Version") == DEB_VERSION
    assert field(debs[package], "Section") in ("utils", "net")
    maintainer = field(debs[package], "Maintainer")
    assert "@" in maintainer and "localhost" not in maintainer
    page = gzip.decompress((root / f"usr/share/man/man1/{command}.1.gz").read_bytes()).decode()
    assert page.startswith(f".TH {command.upper()} 1") and "\\-\\-help" in page
    changelog = gzip.decompress((root / f"usr/share/doc/{package}/changelog.Debian.gz").read_bytes()).decode()
    assert changelog.startswith(f"{package} ({DEB_VERSION}) ")
    assert "Apache-2.0" in (root / f"usr/share/doc/{package}/copyright").read_text()
    components = (root / f"usr/share/doc/{package}/licenses/COMPONENTS.txt").read_text()
    assert "Python " in components and "pydantic " in components
    assert not (root / "opt").exists()
    assert (root / "usr/bin" / command).resolve().is_relative_to(root / f"usr/lib/{package}")


def test_the_desktop_package_lists_and_ships_the_lgpl_of_qt(unpacked: dict[str, Path]) -> None:
    doc = unpacked["lea-desktop"] / "usr/share/doc/lea-desktop"
    components = (doc / "licenses/COMPONENTS.txt").read_text()
    for name in ("PySide6_Essentials", "shiboken6", "certifi", "Qt "):
        assert name in components, name
    assert "LESSER GENERAL PUBLIC LICENSE" in (doc / "licenses/LGPL-3.0.txt").read_text()
    assert "/usr/share/common-licenses/LGPL-3" in (doc / "copyright").read_text()
    bundled = unpacked["lea-desktop"] / "usr/lib/lea-desktop/_internal"
    for dist_info in ("pyside6_essentials-*.dist-info", "shiboken6-*.dist-info", "certifi-*.dist-info"):
        assert list(bundled.glob(dist_info)), dist_info


@pytest.mark.parametrize("package", ["lea-server", "lea-peer"])
def test_server_and_agent_carry_no_qt_and_their_service(package: str, debs: dict[str, Path],
                                                        unpacked: dict[str, Path]) -> None:
    root = unpacked[package]
    names = [p.name.lower() for p in root.rglob("*")]
    assert not [n for n in names if "qt" in n.split(".")[0] or "pyside" in n or "shiboken" in n]
    depends = field(debs[package], "Depends")
    assert "libgl1" not in depends and "libxcb" not in depends
    unit = "lea-server.service" if package == "lea-server" else "lea-peer.service"
    repo_unit = Path(__file__).resolve().parents[2] / "packaging" / unit
    assert (root / "lib/systemd/system" / unit).read_text() == repo_unit.read_text()
    config = "lea.toml" if package == "lea-server" else "peer.toml"
    assert (root / "etc/lea" / config).is_file()
    assert (root / "DEBIAN/conffiles").read_text().split() == [f"/etc/lea/{config}"]
    assert debs[package].stat().st_size < 20_000_000, f"{debs[package].name}: {debs[package].stat().st_size} bytes"
