"""The licences of what a PyInstaller bundle carries, generated from the bundle at build time.

    python packaging/licences.py BUNDLE_DIR OUT_DIR

Reads every ``*.dist-info`` the bundle holds (importlib.metadata), and writes to OUT_DIR:

- ``COMPONENTS.txt``: every bundled component with its version and licence: the Python packages,
  the Python interpreter itself, and Qt (the libraries PySide6-Essentials carries);
- ``<name>-<version>/``: the licence files each Python package ships in its dist-info;
- ``Python-LICENSE.txt``: the interpreter's licence (PSF), from the building interpreter (the one
  PyInstaller bundled);
- ``LGPL-3.0.txt``, ``GPL-3.0.txt``: the texts Qt for Python (PySide6, shiboken6) and Qt are used
  under (LGPL-3.0; the LGPL-3.0 is the GPL-3.0 plus its additional permissions), from
  packaging/licenses/ (the wheels carry none), and ``Apache-2.0.txt``: LEA's own licence.

Fails, naming the package, when a bundled package states no licence, or when PySide6 or shiboken6
is bundled without its dist-info (packaging/lea.spec copies their metadata). Runs on Linux, Windows
and macOS (packaging/lea.spec calls it after COLLECT; packaging/build-linux for the server and
agent bundles).
"""

from __future__ import annotations

import re
import shutil
import sys
import sysconfig
from importlib.metadata import Distribution, PathDistribution
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEXTS = ("LGPL-3.0.txt", "GPL-3.0.txt", "Apache-2.0.txt")
LICENCE_FILE = re.compile(r"^(licen[cs]e|copying|notice|authors)", re.IGNORECASE)
#: Distributions whose modules a bundle may carry only with their dist-info (their licence).
MUST_HAVE_METADATA = {"pyside6": "PySide6-Essentials", "shiboken6": "shiboken6"}


class LicenceError(Exception):
    pass


def licence_of(dist: Distribution) -> str:
    """The SPDX expression (License-Expression), else a one-line License field, else the classifiers."""
    meta = dist.metadata

    def first(name: str) -> str:
        values = meta.get_all(name) or []
        return str(values[0]).strip() if values else ""

    expression = first("License-Expression")
    if expression:
        return expression
    field = first("License")
    if field and "\n" not in field and len(field) <= 80 and field.upper() != "UNKNOWN":
        return field
    classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    classifiers = [c for c in classifiers if c != "OSI Approved"]
    if classifiers:
        return " OR ".join(classifiers)
    if field:
        return field.splitlines()[0].strip()
    raise LicenceError(f"{meta['Name']} {dist.version}: its metadata states no licence")


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def licence_files(info: Path) -> list[Path]:
    found = [p for p in sorted(info.rglob("*")) if p.is_file() and LICENCE_FILE.match(p.name)]
    return found


def components(bundle: Path) -> list[tuple[str, str, str, list[Path]]]:
    """(name, version, licence, licence files) of every dist-info in the bundle, by name."""
    found: dict[tuple[str, str], tuple[str, str, str, list[Path]]] = {}
    for info in sorted(bundle.rglob("*.dist-info")):  # (macOS: also as symlinks in Contents/Frameworks)
        dist = PathDistribution(info)
        name = str(dist.metadata["Name"])
        found.setdefault((normalised(name), dist.version), (name, dist.version, licence_of(dist), licence_files(info)))
    return sorted(found.values(), key=lambda item: item[0].lower())


def check_metadata(bundle: Path, names: set[str]) -> None:
    for top, dist_name in MUST_HAVE_METADATA.items():
        carried = any(p.name.lower() == top for p in bundle.rglob("*") if p.is_dir())
        if carried and normalised(dist_name) not in names:
            raise LicenceError(f"the bundle carries {top} without the {dist_name} dist-info (its licence)")


def qt_version() -> str | None:
    try:
        from PySide6 import QtCore
    except ImportError:
        return None
    return str(QtCore.qVersion())


def write(bundle: Path, out: Path) -> list[str]:
    found = components(bundle)
    names = {normalised(name) for name, *_ in found}
    check_metadata(bundle, names)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rows = [("Python", sys.version.split()[0], "PSF-2.0", "Python-LICENSE.txt")]
    python_licence = Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt"
    if python_licence.is_file():
        shutil.copyfile(python_licence, out / "Python-LICENSE.txt")
    else:
        rows[0] = ("Python", sys.version.split()[0], "PSF-2.0", "https://docs.python.org/3/license.html")
    qt = qt_version() if "pyside6-essentials" in names else None
    if qt is not None:
        rows.append(("Qt (QtCore, QtGui, QtWidgets, QtDBus; in PySide6)", qt, "LGPL-3.0-only", "LGPL-3.0.txt"))
    for name, version, licence, files in found:
        where = f"{name}-{version}/"
        for file in files:
            (out / where).mkdir(exist_ok=True)
            shutil.copyfile(file, out / where / file.name)
        if normalised(name) in ("pyside6-essentials", "shiboken6"):
            where = "LGPL-3.0.txt"  # the wheels carry no licence text: shipped from packaging/licenses
        elif not files:
            where = "(no licence file in its dist-info)"
        rows.append((name, version, licence, where))
    for text in TEXTS:
        shutil.copyfile(HERE / "licenses" / text, out / text)
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        f"Components bundled with {bundle.name} (generated at build time from the bundle's metadata).",
        "LEA itself: Apache-2.0 (Apache-2.0.txt). Qt for Python and Qt are used under the LGPL-3.0",
        "(LGPL-3.0.txt, which adds its permissions to GPL-3.0.txt); their sources: https://download.qt.io/.",
        "",
        f"{'component':<{width[0]}}  {'version':<{width[1]}}  {'licence':<{width[2]}}  licence text",
    ]
    lines += [f"{n:<{width[0]}}  {v:<{width[1]}}  {lic:<{width[2]}}  {w}" for n, v, lic, w in rows]
    (out / "COMPONENTS.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: licences.py BUNDLE_DIR OUT_DIR", file=sys.stderr)
        return 2
    try:
        lines = write(Path(argv[1]), Path(argv[2]))
    except LicenceError as exc:
        print(f"licences.py: {exc}", file=sys.stderr)
        return 1
    print(f"licences.py: {len(lines) - 5} components listed in {Path(argv[2]) / 'COMPONENTS.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
