"""The Linux installers (issues 6 and 17), end to end.

Builds the bundles, the .debs and the .tar.gz with packaging/build-linux (once per session, in a
temporary directory: tests/packaging/conftest.py), unpacks the desktop .deb into a temporary root
and runs the bundled ``lea --smoke-test`` from there, offscreen, in a clean environment: no venv on
PATH, no PYTHONPATH, HOME in a temporary directory. Slow: CI=true or LEA_PACKAGE_TEST=1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.packaging.conftest import DEB_VERSION, ROOT, SLOW_PACKAGE_TEST, VERSION

DEB_TARGET_BYTES = 80_000_000
BUNDLE = "usr/lib/lea-desktop"  # not /opt (docs/decisions.md, "The lab's packages")

pytestmark = SLOW_PACKAGE_TEST


@pytest.fixture(scope="session")
def deb_root(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("deb-root")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def clean_env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "QT_QPA_PLATFORM": "offscreen"}


def test_deb_control(deb: Path) -> None:
    fields = subprocess.run(
        ["dpkg-deb", "--field", str(deb), "Package", "Version", "Architecture", "Depends"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    control = dict(line.split(": ", 1) for line in fields.splitlines())
    assert control["Package"] == "lea-desktop"
    assert control["Version"] == DEB_VERSION
    assert deb.name == f"lea-desktop_{DEB_VERSION}_{control['Architecture']}.deb"
    depends = {item.split(" (")[0] for item in control["Depends"].split(", ")}
    listed = ROOT / "packaging" / "linux" / "depends"
    wanted = {line for line in listed.read_text().splitlines() if line and not line.startswith("#")}
    assert depends == wanted
    assert {"libegl1", "libgl1", "libxkbcommon0", "libfontconfig1", "libdbus-1-3", "libglib2.0-0"} <= depends
    assert {"libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxkbcommon-x11-0"} <= depends
    assert deb.stat().st_size < DEB_TARGET_BYTES, f"{deb.name}: {deb.stat().st_size / 1e6:.1f} MB"


def test_deb_installs_command_menu_entry_and_icons(deb_root: Path) -> None:
    assert os.readlink(deb_root / "usr/bin/lea") == "../lib/lea-desktop/lea"
    assert not (deb_root / "opt").exists()  # the package does not own /opt
    desktop = (deb_root / "usr/share/applications/lea-desktop.desktop").read_text()
    assert "\nExec=lea\n" in desktop
    assert "\nIcon=lea-desktop\n" in desktop
    assert (deb_root / "usr/share/icons/hicolor/256x256/apps/lea-desktop.png").is_file()
    assert (deb_root / "usr/share/icons/hicolor/scalable/apps/lea-desktop.svg").is_file()
    assert os.access(deb_root / BUNDLE / "lea", os.X_OK)
    assert (deb_root / "usr/share/man/man1/lea.1.gz").is_file()


def test_bundle_is_lean(deb_root: Path) -> None:
    bundle = deb_root / BUNDLE
    names = [path.relative_to(bundle).as_posix() for path in bundle.rglob("*")]
    unwanted = ("WebEngine", "Qt6Qml", "Qt6Quick", "Qt6Network", "Qt6Pdf", "Qt6Multimedia", "Qt6Designer")
    assert not [name for name in names if any(part in name for part in unwanted)]
    assert not [name for name in names if "/translations/" in name or "_tkinter" in name]
    modules = subprocess.run(
        [str(Path(sys.executable).parent / "pyi-archive_viewer"), "-r", "-b", str(bundle / "lea")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert "lea_app.connection.remote" in modules  # `lea --connect` (httpx, websockets, keyring)
    assert "keyring.backends.SecretService" in modules
    # The embedded backend is the bundle's own executable run as `lea __lea-backend__ serve --child`
    # (issue #13): its server comes along, with the modules uvicorn imports from strings.
    for server_side in ("backend.server.child", "backend.cli", "fastapi", "uvicorn", "uvicorn.loops.auto",
                        "uvicorn.lifespan.off"):
        assert server_side in modules
    for unused in ("tkinter", "unittest", "mypy"):
        assert unused not in modules


def test_bundled_version(deb_root: Path, tmp_path: Path) -> None:
    run = subprocess.run(
        [str(deb_root / BUNDLE / "lea"), "--version"],
        env=clean_env(tmp_path / "home"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"lea {VERSION}"


def test_bundled_smoke_test_from_the_unpacked_deb(deb_root: Path, tmp_path: Path) -> None:
    screenshot = tmp_path / "smoke.png"
    started = time.monotonic()
    run = subprocess.run(
        [str(deb_root / BUNDLE / "lea"), "--smoke-test", "--screenshot", str(screenshot)],
        env=clean_env(tmp_path / "home"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    print(f"\nbundled lea --smoke-test: {time.monotonic() - started:.1f} s")
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    assert "smoke test passed" in run.stdout
    # Deployed through the child process the bundle starts from its own executable (issue #13).
    assert "through the embedded backend's process" in run.stdout and "lea __lea-backend__ serve" in run.stdout
    assert_non_blank_png(screenshot)


def test_tarball_holds_the_bundle(dist: Path, tmp_path: Path) -> None:
    tarballs = sorted(dist.glob(f"lea-desktop-{VERSION}-linux-*.tar.gz"))
    assert len(tarballs) == 1, f"expected one tarball in {dist}: {tarballs}"
    unpacked = tmp_path / f"lea-desktop-{VERSION}"
    try:
        with tarfile.open(tarballs[0]) as tar:
            tar.extractall(tmp_path, filter="tar")
        run = subprocess.run(
            [str(unpacked / "lea"), "--version"],
            env=clean_env(tmp_path / "home"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.stdout.strip() == f"lea {VERSION}", run.stderr
        # README, the licences, the desktop file and the icon come along
        for name in ("README", "lea-desktop.desktop", "lea-desktop.svg", "lea-desktop.png", "licenses/COMPONENTS.txt",
                     "licenses/LGPL-3.0.txt", "licenses/GPL-3.0.txt", "licenses/Apache-2.0.txt"):
            assert (unpacked / name).is_file(), name
        components = (unpacked / "licenses/COMPONENTS.txt").read_text()
        for component in ("PySide6_Essentials", "shiboken6", "certifi", "Python", "Qt "):
            assert component in components, component
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)  # 120 MB


def assert_non_blank_png(path: Path) -> None:
    from PySide6.QtGui import QImage

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    image = QImage(str(path))
    assert not image.isNull() and image.width() >= 640 and image.height() >= 400, image.size()
    colours = {image.pixel(x, y) for x in range(0, image.width(), 16) for y in range(0, image.height(), 16)}
    assert len(colours) >= 8, f"{path} looks blank: {len(colours)} colours"
