"""packaging/make_manpage.py and packaging/licences.py, the build-time generators of the packages'
man pages and licence lists (fast: no build)."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "SOURCE_DATE_EPOCH": "1764720000",
                              "HOME": str(ROOT.parent)})


def test_the_man_page_says_what_help_says(tmp_path: Path) -> None:
    for spec, name, option in (("lea_app.main:build_parser", "lea", "smoke"),
                               ("backend.cli:build_parser", "lea-backend", "config"),
                               ("lea_peer.cli:_parser", "lea-peer", "token")):
        out = tmp_path / f"{name}.1.gz"
        made = run("packaging/make_manpage.py", spec, name, "1", str(out), "9.9")
        assert made.returncode == 0, made.stderr
        page = gzip.decompress(out.read_bytes()).decode()
        escaped = name.replace("-", "\\-")
        assert page.startswith(f'.TH {name.upper()} 1 "2025-12-03" "{escaped} 9.9"'), page[:80]
        assert f"\\-\\-{option}" in page and ".SH OPTIONS" in page
        if name != "lea":
            assert ".SH COMMANDS" in page
        if name == "lea-backend":  # its data directory's default, not the build machine's home
            assert "(default: ~/.local/share/lea\\-desktop)" in page, page
    again = tmp_path / "again.1.gz"
    run("packaging/make_manpage.py", "lea_app.main:build_parser", "lea", "1", str(again), "9.9")
    assert again.read_bytes() == (tmp_path / "lea.1.gz").read_bytes()  # reproducible


def dist_info(where: Path, name: str, version: str, licence: str | None, text: str | None = None) -> None:
    info = where / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.4", f"Name: {name}", f"Version: {version}"]
    if licence:
        lines.append(f"License-Expression: {licence}")
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    if text:
        (info / "licenses").mkdir()
        (info / "licenses" / "LICENSE").write_text(text)


def test_the_licence_list_comes_from_the_bundle(tmp_path: Path) -> None:
    bundle = tmp_path / "lea" / "_internal"
    dist_info(bundle, "alpha", "1.2", "MIT", "MIT text")
    dist_info(bundle, "beta", "3.0", "BSD-3-Clause")
    out = tmp_path / "licenses"
    made = run("packaging/licences.py", str(tmp_path / "lea"), str(out))
    assert made.returncode == 0, made.stderr
    listing = (out / "COMPONENTS.txt").read_text()
    assert "alpha" in listing and "1.2" in listing and "MIT" in listing and "BSD-3-Clause" in listing
    assert (out / "alpha-1.2" / "LICENSE").read_text() == "MIT text"
    assert "LESSER GENERAL PUBLIC LICENSE" in (out / "LGPL-3.0.txt").read_text()
    assert (out / "Apache-2.0.txt").is_file()


def test_a_package_without_a_licence_or_pyside_without_its_metadata_fails_the_build(tmp_path: Path) -> None:
    bundle = tmp_path / "one" / "_internal"
    dist_info(bundle, "gamma", "0.1", None)
    made = run("packaging/licences.py", str(tmp_path / "one"), str(tmp_path / "out1"))
    assert made.returncode == 1 and "gamma 0.1: its metadata states no licence" in made.stderr
    bundle = tmp_path / "two" / "_internal"
    (bundle / "PySide6").mkdir(parents=True)
    made = run("packaging/licences.py", str(tmp_path / "two"), str(tmp_path / "out2"))
    assert made.returncode == 1 and "PySide6-Essentials dist-info" in made.stderr
