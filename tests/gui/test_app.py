"""LEA as a program: the command line, a second LEA on the same data directory, remembered state."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from backend.backend import Backend
from lea_app.app import Options, run_window, settings
from lea_app.controller import Controller
from lea_app.views.connect_dialog import ConnectDialog
from lea_app.views.main_window import MainWindow
from resources.app import default_data_dir
from tests.helpers.qt import Lea


def test_version_and_help() -> None:
    out = subprocess.run([sys.executable, "-m", "lea_app.main", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("lea ")
    out = subprocess.run([sys.executable, "-m", "lea_app.main", "--help"], capture_output=True, text=True)
    assert "--demo" in out.stdout and "--data-dir" in out.stdout


def test_demo_uses_its_own_data_directory() -> None:
    assert default_data_dir(demo=True) != default_data_dir(demo=False)
    assert default_data_dir(demo=True).name.endswith("-demo")


def test_second_lea_on_the_same_data_directory_is_told(
    qtbot: QtBot, aloop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    first = Backend(tmp_path)
    try:
        task = asyncio.ensure_future(run_window(Options(data_dir=tmp_path)))

        def fatal_box() -> QMessageBox | None:
            for widget in QApplication.topLevelWidgets():
                if isinstance(widget, QMessageBox) and widget.isVisible():
                    return widget
            return None

        qtbot.waitUntil(lambda: fatal_box() is not None, timeout=10_000)
        box = fatal_box()
        assert box is not None
        assert box.windowTitle() == "LEA is already running"
        assert "already in use" in box.text() and str(tmp_path) in box.text()
        box.button(QMessageBox.StandardButton.Ok).click()
        qtbot.waitUntil(task.done, timeout=10_000)
        assert task.result() == 1
    finally:
        first.close()


def test_window_geometry_and_last_page_are_remembered(qtbot: QtBot, lea: Lea) -> None:
    lea.window.show_page(3)
    lea.window.resize(777, 505)  # within the offscreen screen (800x600): restored as it was
    lea.window.save_settings()
    again = MainWindow(Controller(), settings(), data_dir=str(lea.data_dir))
    qtbot.addWidget(again)
    assert again.nav.currentRow() == 3
    assert again.size() == QSize(777, 505)
    # Tests never touch the user's settings: the file is under the test's temporary home.
    assert str(Path.home()) in settings().fileName()


def test_demo_and_real_sessions_keep_separate_window_settings(qtbot: QtBot, lea: Lea) -> None:
    real, demo = settings(), settings(demo=True)
    assert Path(real.fileName()).name == "lea.ini" and Path(demo.fileName()).name == "lea-demo.ini"
    assert Path(real.fileName()).parent == Path(demo.fileName()).parent
    lea.window.show_page(3)
    lea.window.save_settings()
    demo_window = MainWindow(Controller(), settings(demo=True), data_dir=str(lea.data_dir), demo=True)
    qtbot.addWidget(demo_window)
    assert demo_window.nav.currentRow() == 0  # the real session's page is not the demo's
    demo_window.show_page(1)
    demo_window.save_settings()
    assert settings().value("window/page") in (3, "3")  # the demo left the real session's alone


def test_the_smoke_test_never_touches_the_users_settings(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = home / ".config"
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(config), "XDG_DATA_HOME": str(home / "data"),
           "PATH": "/usr/bin:/bin", "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(Path.cwd()),
           "LANG": "C.UTF-8"}
    run = subprocess.run([sys.executable, "-m", "lea_app.main", "--smoke-test"], env=env, capture_output=True,
                         text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    assert "smoke test passed" in run.stdout
    left = sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) if home.exists() else []
    assert not [p for p in left if p.endswith(".ini")], left


def test_about_box_names_version_data_directory_and_backend(qtbot: QtBot, lea: Lea) -> None:
    lea.window.show_about()
    box = lea.window.dialogs[-1]
    assert isinstance(box, QMessageBox)
    assert "LEA desktop" in box.text() and str(lea.data_dir) in box.text() and "embedded backend" in box.text()
    box.close()


def test_the_connect_dialog_starts_from_the_embedded_backend(qtbot: QtBot, lea: Lea) -> None:
    assert lea.connection.address == ""
    lea.window.open_connect_dialog()
    dialog = lea.window.dialogs[-1]
    assert isinstance(dialog, ConnectDialog)
    assert dialog.embedded.isChecked() and dialog.url.text() == "" and not dialog.url.isEnabled()
    dialog.reject()


def test_logs_are_written_under_the_data_directory(tmp_path: Path) -> None:
    import logging

    from lea_app.app import setup_logging

    path = setup_logging(tmp_path)
    try:
        assert path is not None and path.parent == tmp_path / "logs"
        logging.getLogger("lea-test").warning("hello log")
        for handler in logging.getLogger().handlers:
            handler.flush()
        assert "hello log" in path.read_text()
    finally:
        root = logging.getLogger()
        for handler in list(root.handlers):
            if getattr(handler, "baseFilename", "").startswith(str(tmp_path)):
                root.removeHandler(handler)
                handler.close()


def test_sigterm_closes_lea_cleanly(tmp_path: Path) -> None:
    """Ctrl+C / SIGTERM close the window: the backend shuts down with its final checkpoint."""
    import os
    import signal
    import time

    data_dir = tmp_path / "data"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "lea_app.main", "--demo", "--data-dir", str(data_dir)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    log = data_dir / "logs" / "lea.log"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (log.exists() and "-> live" in log.read_text()):
        time.sleep(0.1)
    assert log.exists() and "-> live" in log.read_text(), "LEA never went live"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    verify = subprocess.run(
        [sys.executable, "-m", "backend", "--data-dir", str(data_dir), "verify"], capture_output=True, text=True
    )
    assert verify.returncode == 0 and "matches the checkpoint" in verify.stdout, verify.stdout + verify.stderr


def test_the_window_freezes_its_start_up_once_live_and_schedules_its_collections(qtbot: QtBot) -> None:
    import gc

    from lea_app.app import tune_gc

    threshold = gc.get_threshold()
    gc.unfreeze()
    try:
        controller = Controller()
        schedule = tune_gc(controller)
        assert gc.get_freeze_count() == 0 and gc.isenabled()
        full = gc.get_stats()[2]["collections"]
        controller.sync_state_changed.emit("syncing")
        assert gc.get_freeze_count() == 0
        controller.sync_state_changed.emit("live")
        assert gc.get_freeze_count() > 0
        assert gc.get_stats()[2]["collections"] == full  # no 100+ ms collection before the first paint
        assert not gc.isenabled()  # collections run on the event loop's timer from now on
        assert schedule.collector is not None and schedule.timer is not None and schedule.timer.isActive()
        young = gc.get_stats()[0]["collections"]
        qtbot.waitUntil(lambda: gc.get_stats()[0]["collections"] > young, timeout=2_000)
        schedule.stop()
        assert gc.isenabled() and not schedule.timer.isActive()
    finally:
        gc.unfreeze()
        gc.enable()
        gc.set_threshold(*threshold)
