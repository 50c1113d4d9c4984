"""The packages, built once per session by packaging/build-linux (tests/packaging/test_*.py share them).

Slow (a few minutes): the tests that use them run when CI=true (so ``make test`` runs them in CI)
or LEA_PACKAGE_TEST=1 (``make package-test``). LEA_PACKAGE_DIST=DIR tests the build already in DIR
instead of building; LEA_VENV is passed on to packaging/build-linux (a venv to build with).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENABLED = os.environ.get("CI") == "true" or os.environ.get("LEA_PACKAGE_TEST") == "1"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
# as packaging/build-linux: 1.0rc1 -> 1.0~rc1, and the Debian revision -1
DEB_VERSION = re.sub(r"\.?(a|b|rc|dev)(\d*)", r"~\1\2", VERSION) + "-1"
PACKAGES = ("lea-desktop", "lea-server", "lea-peer")

#: The marks of a test of the built packages.
SLOW_PACKAGE_TEST = [
    pytest.mark.slow,
    pytest.mark.skipif(not ENABLED, reason="slow packaging test: LEA_PACKAGE_TEST=1 (make package-test) or CI=true"),
    pytest.mark.skipif(
        not sys.platform.startswith("linux") or shutil.which("dpkg-deb") is None, reason="needs Linux with dpkg-deb"
    ),
    pytest.mark.timeout(1800),  # the session's build runs in the first test's set-up
]


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    reuse = os.environ.get("LEA_PACKAGE_DIST")
    if reuse:
        yield Path(reuse).resolve()
        return
    out = tmp_path_factory.mktemp("package")
    env = {**os.environ, "LEA_DIST_DIR": str(out / "dist"), "LEA_BUILD_DIR": str(out / "build")}
    started = time.monotonic()
    build = subprocess.run(
        [str(ROOT / "packaging" / "build-linux")], env=env, capture_output=True, text=True, timeout=1500
    )
    assert build.returncode == 0, f"packaging/build-linux failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    print(f"\npackaging/build-linux: {time.monotonic() - started:.0f} s")
    shutil.rmtree(out / "build")  # PyInstaller's work files and the .deb staging trees
    yield out / "dist"
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="session")
def debs(dist: Path) -> dict[str, Path]:
    """The three .debs by package name."""
    found = {}
    for package in PACKAGES:
        matches = sorted(dist.glob(f"{package}_*.deb"))
        assert len(matches) == 1, f"expected one {package} .deb in {dist}: {matches}"
        found[package] = matches[0]
    return found


@pytest.fixture(scope="session")
def deb(debs: dict[str, Path]) -> Path:
    return debs["lea-desktop"]
