"""Helpers of the PyInstaller recipes (packaging/lea.spec, packaging/lea-services.spec)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

from PyInstaller.utils.hooks import copy_metadata

HERE = Path(__file__).resolve().parent
#: Metadata files that say nothing about a component's version or licence (and differ per install).
SKIPPED = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")


def bundled_metadata(analysis: Any) -> list[tuple[str, str, str]]:
    """The dist-info of every distribution whose modules the bundle carries (its licence and version:
    packaging/licences.py lists them), as TOC entries; PyInstaller's hooks copy only some (none for
    PySide6, shiboken6 or certifi)."""
    tops = {name.split(".")[0] for name, *_ in analysis.pure}
    tops |= {re.split(r"[/\\.]", dest)[0] for dest, src, kind in analysis.binaries if kind == "EXTENSION"}
    owners = packages_distributions()
    have = {dest.replace("\\", "/").split("/")[0] for dest, *_ in analysis.datas}
    entries: list[tuple[str, str, str]] = []
    for dist in sorted({dist for top in tops for dist in owners.get(top, ())}):
        for src, dest in copy_metadata(dist):
            if dest in have:
                continue
            for file in sorted(Path(src).rglob("*")):
                if file.is_file() and file.name not in SKIPPED:
                    entries.append((f"{dest}/{file.relative_to(src).as_posix()}", str(file), "DATA"))
    return entries


def write_licences(bundle_dir: Path, out_dir: Path) -> None:
    """The licences of the components in bundle_dir into out_dir (packaging/licences.py)."""
    subprocess.run([sys.executable, str(HERE / "licences.py"), str(bundle_dir), str(out_dir)], check=True)


#: Where the build machine's system libraries live: the .debs depend on their packages instead.
SYSTEM_DIRS = ("/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/")
#: Bundled all the same: Python's own OpenSSL and SQLite, so their versions do not depend on the target.
BUNDLED_SYSTEM_LIBS = re.compile(r"^lib(python3|ssl|crypto|sqlite3)[.\d]*\.so")


def without_system_libraries(binaries: list[Any]) -> list[Any]:
    """``binaries`` less the shared libraries of the build machine's system (zlib, libffi, libgcc, ...):
    the target's own copies come with the .deb's Depends (packaging/build-linux checks the list)."""
    import os

    def from_system(dest: str, src: str) -> bool:
        real = os.path.realpath(src)
        return real.startswith(SYSTEM_DIRS) and not BUNDLED_SYSTEM_LIBS.match(Path(dest).name)

    kept = [entry for entry in binaries if entry[2] == "SYMLINK" or not from_system(entry[0], entry[1])]
    present = {dest for dest, src, kind in kept if kind != "SYMLINK"}
    return [
        (dest, src, kind) for dest, src, kind in kept
        if kind != "SYMLINK" or os.path.normpath(os.path.join(os.path.dirname(dest), src)) in present
    ]
