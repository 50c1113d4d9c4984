"""Open LEA's window as a fresh process would (the screen and QT_SCALE_FACTOR it is given) over the
health fleet, and print where the window, its status bar and the Clusters table's columns ended up.

    QT_QPA_PLATFORM=offscreen:configfile=SCREEN.json QT_SCALE_FACTOR=1.5 \\
        python -m tests.helpers.window_probe SETTINGS.ini [--page N] [--screenshot OUT.png]

A scale factor is read once, when the QApplication starts: hence a process of its own. The JSON on
stdout has logical pixels: "available" (the screen's available area), "frame" (the window with its
frame), "status_bar" (in screen coordinates), "clusters" (viewport width, the end of the last
column, the horizontal scroll bar's maximum).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("QT_API", "pyside6")
import PySide6  # noqa: F401 - before anything that may import qasync
from PySide6.QtCore import QRect, QSettings
from PySide6.QtWidgets import QApplication, QTableView

from lea_app.app import make_application
from lea_app.controller import Controller
from lea_app.views.main_window import MainWindow
from resources.events import StateSnapshot
from tests.helpers.health_fleet import health_fleet


def rect(r: QRect) -> list[int]:
    return [r.x(), r.y(), r.width(), r.height()]


def table_fit(view: QTableView) -> dict[str, int]:
    header = view.horizontalHeader()
    last = header.count() - 1
    return {
        "viewport": view.viewport().width(),
        "end": header.sectionPosition(last) + header.sectionSize(last),
        "last_width": header.sectionSize(last),
        "scroll_max": view.horizontalScrollBar().maximum(),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("settings")
    parser.add_argument("--page", type=int, default=2)
    parser.add_argument("--screenshot")
    args = parser.parse_args(argv)
    app = make_application()
    controller = Controller()
    window = MainWindow(controller, QSettings(args.settings, QSettings.Format.IniFormat), data_dir="(probe)")
    window.show()
    window.show_page(args.page)
    fleet = health_fleet()
    controller.store.apply_snapshot(StateSnapshot(epoch="probe", revision=1, resources=tuple(fleet.resources)))
    for page in (window.peers, window.clusters, window.deployments):
        page.model.refresh_all()
        page.update_actions()
    window.dashboard.refresh()
    for _ in range(20):
        app.processEvents()
    screen = window.screen()
    bar = window.statusBar()
    result = {
        "scale": screen.devicePixelRatio(),
        "available": rect(screen.availableGeometry()),
        "frame": rect(window.frameGeometry()),
        "status_bar": rect(QRect(bar.mapToGlobal(bar.rect().topLeft()), bar.size())),
        "clusters": table_fit(window.clusters.table),
        "font_pt": QApplication.font().pointSizeF(),
    }
    if args.screenshot:
        image = window.grab().toImage()
        if not image.save(args.screenshot):
            print(f"cannot write {args.screenshot}", file=sys.stderr)
            return 1
    print(json.dumps(result))
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
