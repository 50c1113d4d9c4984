"""Render packaging/icons/lea.svg into the icon files the installers need.

    python packaging/make_icons.py OUT_DIR

writes OUT_DIR/lea-<size>.png for the hicolor sizes (rendered with Qt's SVG renderer) and, when
Pillow is installed (the ``package`` extra), OUT_DIR/lea.ico (Windows) and OUT_DIR/lea.icns (macOS).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SVG = Path(__file__).resolve().parent / "icons" / "lea.svg"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def render_pngs(out: Path) -> list[Path]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication([])
    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        raise SystemExit(f"make_icons: cannot read {SVG}")
    written = []
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        path = out / f"lea-{size}.png"
        if not image.save(str(path), "PNG"):
            raise SystemExit(f"make_icons: cannot write {path}")
        written.append(path)
    del app
    return written


def write_ico_icns(out: Path) -> list[Path]:
    try:
        from PIL import Image
    except ImportError:  # only the Windows and macOS builds need these
        return []
    largest = Image.open(out / "lea-512.png")
    largest.save(out / "lea.ico", sizes=[(s, s) for s in (16, 24, 32, 48, 64, 128, 256)])
    largest.save(out / "lea.icns")
    return [out / "lea.ico", out / "lea.icns"]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    written = render_pngs(out) + write_ico_icns(out)
    print(f"make_icons: {len(written)} files in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
