"""LEA's window icon: the desktop theme's ``lea-desktop`` icon (installed by the .deb), else the
PNGs rendered from packaging/icons/lea.svg that ship inside the package (lea_app/assets)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QIcon

from resources.app import APP_NAME

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SIZES = (16, 32, 48, 256)


def app_icon() -> QIcon:
    bundled = QIcon()
    for size in SIZES:
        path = ASSETS / f"lea-{size}.png"
        if path.is_file():
            bundled.addFile(str(path))
    return QIcon.fromTheme(APP_NAME, bundled)
