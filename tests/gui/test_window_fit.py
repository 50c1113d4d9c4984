"""The window fits every screen and font (issue #16): columns share the width (the Reason column is on
screen at 1024x700, no horizontal scroll bar on an empty table), the first window stays within the
screen's available area (at 150 % scaling the status bar is on screen), navigation, rows and tables
follow the application's font; a window icon and the desktop's names for LEA; About names the log,
the licence and links; empty tables say what to do next.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QRect, QSize
from PySide6.QtGui import QFont, QImage
from PySide6.QtWidgets import QApplication, QMessageBox, QTableView
from pytestqt.qtbot import QtBot

from lea_app.app import settings
from lea_app.controller import Controller
from lea_app.views.app_icon import ASSETS
from lea_app.views.main_window import MainWindow
from lea_app.views.navigation import NARROWEST, ROOM
from lea_app.views.tables import row_height
from resources.events import StateSnapshot
from tests.helpers.health_fleet import health_fleet

ROOT = Path(__file__).resolve().parents[2]


def make_window(qtbot: QtBot, size: QSize, *, filled: bool = True) -> MainWindow:
    controller = Controller()
    window = MainWindow(controller, settings(), data_dir="(test)", log_path="/tmp/lea-test/logs/lea.log")
    qtbot.addWidget(window)
    window.show()
    window.resize(size)  # after the first show, which fits the window to the (800x600 offscreen) screen
    if filled:
        controller.store.apply_snapshot(
            StateSnapshot(epoch="fit", revision=1, resources=tuple(health_fleet().resources))
        )
    for page in (window.peers, window.clusters, window.deployments):
        page.model.refresh_all()
        page.update_actions()
    qtbot.wait(50)
    return window


def fits(view: QTableView) -> bool:
    header = view.horizontalHeader()
    last = header.count() - 1
    end = header.sectionPosition(last) + header.sectionSize(last)
    return end <= view.viewport().width() and view.horizontalScrollBar().maximum() == 0


@pytest.mark.parametrize("filled", [True, False], ids=["filled", "empty"])
def test_columns_fit_the_width_at_1024x700(qtbot: QtBot, filled: bool) -> None:
    window = make_window(qtbot, QSize(1024, 700), filled=filled)
    for index, page in ((1, window.peers), (2, window.clusters), (3, window.deployments)):
        window.show_page(index)
        qtbot.wait(30)
        assert fits(page.table), f"{page.title}: columns wider than the table"
    window.show_page(4)
    qtbot.wait(30)
    assert fits(window.event_log.live_table)
    # The Reason column is on screen, and wide enough to read a reason.
    table = window.clusters.table
    window.show_page(2)
    qtbot.wait(30)
    header = table.horizontalHeader()
    reason = [c.title for c in window.clusters.model.columns].index("Reason")
    assert header.sectionViewportPosition(reason) + header.sectionSize(reason) <= table.viewport().width()
    assert header.sectionSize(reason) >= 170
    # Wider again: each column gets back its preferred width (the last one takes the rest).
    window.resize(1600, 900)
    qtbot.wait(50)
    assert window.width() == 1600 and header.sectionSize(0) == window.clusters.model.columns[0].width and fits(table)


@pytest.fixture
def big_font(qapp: QApplication) -> Iterator[QFont]:
    before = QApplication.font()
    font = QFont(before)
    font.setPointSizeF(before.pointSizeF() * 1.6)
    QApplication.setFont(font)
    yield font
    QApplication.setFont(before)


def test_navigation_rows_and_tables_follow_the_application_font(qtbot: QtBot, big_font: QFont) -> None:
    window = make_window(qtbot, QSize(1400, 900))
    nav = window.nav
    assert nav.font().pointSizeF() == pytest.approx(big_font.pointSizeF())
    widest = max(nav.fontMetrics().horizontalAdvance(nav.item(i).text()) for i in range(nav.count()))
    assert nav.width() >= widest + 24  # names are not cut
    table = window.clusters.table
    assert table.font().pointSizeF() == pytest.approx(big_font.pointSizeF())
    assert table.verticalHeader().defaultSectionSize() == row_height(table) >= table.fontMetrics().height() + 10
    size = window.dashboard.peers_card.value.styleSheet()
    assert f"font-size: {big_font.pointSizeF() * 2.2:.0f}pt" in size  # the big figures scale too
    # The font changes while the window is open: the rows and the navigation follow.
    smaller = QFont(big_font)
    smaller.setPointSizeF(big_font.pointSizeF() / 1.6)
    QApplication.setFont(smaller)
    qtbot.wait(50)
    assert table.verticalHeader().defaultSectionSize() == row_height(table)
    assert nav.width() == max(NARROWEST, nav.fontMetrics().horizontalAdvance("Deployments") + ROOM)
    assert nav.width() < widest + ROOM


def probe(tmp_path: Path, screen: tuple[int, int], scale: float, screenshot: Path | None = None) -> dict[str, object]:
    """tests/helpers/window_probe.py in a process of its own on an offscreen screen of ``screen``
    physical pixels at ``scale``."""
    config = tmp_path / "screen.json"
    config.write_text(json.dumps({"screens": [
        {"name": "probe", "x": 0, "y": 0, "width": screen[0], "height": screen[1], "logicalDpi": 96, "dpr": 1}
    ]}))
    env = {
        **os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={config}", "QT_SCALE_FACTOR": str(scale),
        "PYTHONPATH": str(ROOT), "HOME": str(tmp_path),
    }
    command = [sys.executable, "-m", "tests.helpers.window_probe", str(tmp_path / "lea.ini")]
    if screenshot is not None:
        command += ["--screenshot", str(screenshot)]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(("screen", "scale"), [((1366, 768), 1.5), ((1920, 1080), 1.5), ((1024, 700), 1.0)])
def test_the_first_window_fits_the_available_screen(tmp_path: Path, screen: tuple[int, int], scale: float) -> None:
    result = probe(tmp_path, screen, scale)
    assert result["scale"] == scale
    available = QRect(*result["available"])  # type: ignore[misc]
    frame = QRect(*result["frame"])  # type: ignore[misc]
    status_bar = QRect(*result["status_bar"])  # type: ignore[misc]
    assert available.contains(frame), (available, frame)
    assert available.contains(status_bar), (available, status_bar)  # the status bar is on screen
    clusters = result["clusters"]
    assert isinstance(clusters, dict)
    assert clusters["end"] <= clusters["viewport"] and clusters["scroll_max"] == 0


# -- identity: icon, WM_CLASS, desktop file -------------------------------------------------
def test_the_application_is_named_as_the_desktop_entry_and_has_an_icon(tmp_path: Path) -> None:
    script = (
        "from lea_app.app import make_application\n"
        "app = make_application()\n"
        "print(app.arguments()[0], app.applicationName(), app.desktopFileName(), app.windowIcon().isNull(), sep='|')\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    instance, name, desktop_file, icon_null = done.stdout.strip().splitlines()[-1].split("|")
    # X11's WM_CLASS is (argv[0]'s name, the application name): not the script's name.
    assert instance == "lea-desktop" and name == "LEA desktop" and icon_null == "False"
    entry = (ROOT / "packaging" / "linux" / f"{desktop_file}.desktop").read_text()
    assert f"StartupWMClass={name}\n" in entry and "Icon=lea-desktop\n" in entry


def test_the_bundled_icons_are_the_svg_rendered(tmp_path: Path) -> None:
    """lea_app/assets/lea-*.png are packaging/make_icons.py's rendering of packaging/icons/lea.svg."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "packaging" / "make_icons.py"), str(tmp_path)], env=env, capture_output=True,
        text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    bundled = sorted(ASSETS.glob("lea-*.png"))
    assert [p.name for p in bundled] == ["lea-16.png", "lea-256.png", "lea-32.png", "lea-48.png"]
    for png in bundled:
        # Within one level per channel: Qt's rasteriser rounds a few edge pixels differently on
        # another CPU (seen: 24 pixels of lea-256.png one level apart on an AVX-512 machine).
        assert largest_difference(QImage(str(png)), QImage(str(tmp_path / png.name))) <= 1, (
            f"{png.name} differs from the SVG's rendering"
        )


def largest_difference(a: QImage, b: QImage) -> int:
    """The largest difference of one channel of one pixel (255: not even the same size)."""
    if a.size() != b.size():
        return 255
    worst = 0
    for x in range(a.width()):
        for y in range(a.height()):
            p, q = a.pixelColor(x, y), b.pixelColor(x, y)
            for u, v in ((p.red(), q.red()), (p.green(), q.green()), (p.blue(), q.blue()), (p.alpha(), q.alpha())):
                worst = max(worst, abs(u - v))
    return worst


def test_the_window_has_the_icon(qtbot: QtBot) -> None:
    window = make_window(qtbot, QSize(1000, 700), filled=False)
    assert not window.windowIcon().isNull()


# -- About, empty states -------------------------------------------------------------------
def test_about_shows_the_log_path_licence_and_links(qtbot: QtBot) -> None:
    window = make_window(qtbot, QSize(1000, 700), filled=False)
    window.show_about()
    box = window.dialogs[-1]
    assert isinstance(box, QMessageBox)
    text = box.text()
    assert "/tmp/lea-test/logs/lea.log" in text and 'href="file:///tmp/lea-test/logs/lea.log"' in text
    assert "Apache License 2.0" in text and "https://www.apache.org/licenses/LICENSE-2.0" in text
    assert "https://opendut.eclipse.dev/" in text
    box.close()


def test_empty_tables_say_what_to_do_next_inside_the_table(qtbot: QtBot) -> None:
    window = make_window(qtbot, QSize(1100, 700), filled=False)
    window.show_page(1)
    qtbot.wait(30)
    hint = window.peers.empty_hint
    assert hint.isVisible() and hint.text().startswith("No benches yet — ") and "--demo" in hint.text()
    assert hint.parent() is window.peers.table.viewport()  # inside the table's area
    assert window.peers.table.viewport().rect().contains(hint.geometry())
    window.peers.filter.setText("nothing-like-this")
    assert "Nothing matches the filter" in hint.text()
    window.show_page(2)
    qtbot.wait(30)
    assert window.clusters.empty_hint.isVisible() and "New cluster…" in window.clusters.empty_hint.text()
    # Once there are rows, the hint goes.
    window.controller.store.apply_snapshot(
        StateSnapshot(epoch="fit", revision=1, resources=tuple(health_fleet().resources))
    )
    window.clusters.model.flush()
    window.clusters.update_actions()
    assert not window.clusters.empty_hint.isVisible()
