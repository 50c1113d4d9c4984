"""packaging/linux/lea-desktop.desktop: ``desktop-file-validate`` passes, and the entry has one main
category (two made it appear twice in menus, issue #17)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DESKTOP = Path(__file__).resolve().parents[2] / "packaging" / "linux" / "lea-desktop.desktop"
#: The freedesktop.org menu specification's main categories.
MAIN_CATEGORIES = {"AudioVideo", "Audio", "Video", "Development", "Education", "Game", "Graphics", "Network",
                   "Office", "Science", "Settings", "System", "Utility"}
VALIDATE = shutil.which("desktop-file-validate")


def validate(path: Path) -> list[str]:
    result = subprocess.run([VALIDATE or "desktop-file-validate", str(path)], capture_output=True, text=True)
    said = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    return [*said, f"exit status {result.returncode}"] if result.returncode else said


@pytest.mark.skipif(VALIDATE is None, reason="desktop-file-validate is not installed (Debian: desktop-file-utils)")
def test_desktop_file_validate_passes(tmp_path: Path) -> None:
    assert validate(DESKTOP) == []
    broken = tmp_path / "lea-desktop.desktop"
    broken.write_text(DESKTOP.read_text().replace("Type=Application\n", "Type=Application\nVersion=1.5\n"))
    assert validate(broken), "the validator would have caught Version=1.5"


def test_one_main_category_and_the_names_the_package_installs() -> None:
    entry = dict(line.split("=", 1) for line in DESKTOP.read_text().splitlines() if "=" in line and line[0] != "#")
    categories = [c for c in entry["Categories"].split(";") if c]
    assert len([c for c in categories if c in MAIN_CATEGORIES]) == 1, categories
    assert entry["Exec"] == "lea" and entry["Icon"] == "lea-desktop"
    assert "Version" not in entry
