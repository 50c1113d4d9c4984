"""scripts/ensure-system-deps: the Qt libraries for offscreen runs (required) and for a desktop session
(X11/Wayland, the same list the .deb depends on), installed when root, else the command printed."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "ensure-system-deps"


def script_list(name: str) -> list[str]:
    match = re.search(rf'^{name}="([^"]*)"', SCRIPT.read_text(), re.MULTILINE)
    assert match is not None, name
    return match.group(1).split()


def depends_section(start: str, end: str) -> list[str]:
    lines = (ROOT / "packaging" / "linux" / "depends").read_text().splitlines()
    begin = next(i for i, line in enumerate(lines) if line.startswith(start))
    stop = next((i for i, line in enumerate(lines) if i > begin and line.startswith(end)), len(lines))
    return [line for line in lines[begin + 1 : stop] if line and not line.startswith("#")]


def test_the_desktop_packages_are_those_of_the_xcb_and_wayland_plugins() -> None:
    xcb_and_wayland = depends_section("# the xcb platform plugin", "# the end")
    assert script_list("DESKTOP_PKGS") == xcb_and_wayland
    assert {"libxcb-icccm4", "libxcb-keysyms1", "libxcb-cursor0", "libxkbcommon-x11-0", "libwayland-client0"} <= set(
        xcb_and_wayland
    )


def fake_bin(tmp_path: Path, uid: str) -> dict[str, str]:
    """A PATH where nothing is installed (dpkg-query finds no package) and `id -u` says ``uid``."""
    bin = tmp_path / "bin"
    bin.mkdir()
    (bin / "dpkg-query").write_text("#!/bin/sh\nexit 1\n")
    (bin / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    for tool in bin.iterdir():
        tool.chmod(0o755)
    return {**os.environ, "PATH": f"{bin}:/usr/bin:/bin"}


def test_without_root_it_names_what_is_missing_and_fails_only_for_the_offscreen_set(tmp_path: Path) -> None:
    done = subprocess.run(["sh", str(SCRIPT)], env=fake_bin(tmp_path, "1000"), capture_output=True, text=True)
    assert done.returncode == 1
    assert "Qt needs these Debian packages: " + " ".join(script_list("QT_PKGS")) in done.stderr
    assert "for a desktop session: " + " ".join(script_list("DESKTOP_PKGS")) in done.stderr
    assert "sudo apt-get install libx11-6" in done.stderr
