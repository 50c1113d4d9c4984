"""Starting LEA: logging, the Qt application on an asyncio (qasync) loop, the window, the backend."""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("QT_API", "pyside6")  # qasync must bind to PySide6, imported first

import platformdirs
import qasync
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication, QMessageBox

from lea_app.connection.base import Connection
from lea_app.controller import Controller
from lea_app.views.main_window import MainWindow
from resources.errors import LeaError

log = logging.getLogger(__name__)
APP_NAME = "lea-desktop"


@dataclass
class Options:
    data_dir: Path
    demo: bool = False
    demo_delay_scale: float = 1.0


def default_data_dir(demo: bool) -> Path:
    """The user's data folder; --demo gets a folder of its own and never touches the user's data."""
    return Path(platformdirs.user_data_dir(APP_NAME + ("-demo" if demo else ""), appauthor=False))


def settings() -> QSettings:
    """Window geometry and the last page, in the user's config folder (tests point it elsewhere)."""
    path = Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "lea.ini"
    return QSettings(str(path), QSettings.Format.IniFormat)


def setup_logging(data_dir: Path) -> Path | None:
    logs = data_dir / "logs"
    try:
        logs.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            logs / "lea.log", maxBytes=2_000_000, backupCount=3, encoding="utf-8"
        )
    except OSError:
        return None  # the backend reports an unusable data directory itself, clearly
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    return logs / "lea.log"


async def open_embedded(options: Options) -> Connection:
    from lea_app.connection.embedded import EmbeddedConnection

    return await EmbeddedConnection.open(
        options.data_dir, demo=options.demo, demo_delay_scale=options.demo_delay_scale
    )


async def show_fatal(title: str, text: str) -> None:
    """A critical message that does not block the loop (qasync keeps running while it is open)."""
    box = QMessageBox(QMessageBox.Icon.Critical, title, text)
    done = asyncio.get_running_loop().create_future()
    box.finished.connect(lambda *_: None if done.done() else done.set_result(None))
    box.open()
    await done


async def run_window(options: Options, window_ready: asyncio.Future[MainWindow] | None = None) -> int:
    """Show the window at once, then open the backend and sync; returns the exit code."""
    controller = Controller()
    window = MainWindow(controller, settings(), data_dir=str(options.data_dir), demo=options.demo)
    window.show()
    closed = asyncio.Event()
    window.closed.connect(closed.set)
    try:
        connection = await open_embedded(options)
    except LeaError as exc:
        log.error("cannot open the backend: %s", exc.message)
        window.hide()
        title = "LEA is already running" if exc.code == "data_dir_locked" else "LEA cannot start"
        await show_fatal(title, exc.message)
        window.close()
        return 1
    await controller.start(connection)
    if window_ready is not None:
        window_ready.set_result(window)
    await closed.wait()
    await controller.close()
    return 0


def run(options: Options) -> int:
    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    app.setApplicationName("LEA desktop")
    app.setOrganizationName(APP_NAME)
    app.setQuitOnLastWindowClosed(False)  # we quit after the backend has shut down cleanly
    setup_logging(options.data_dir)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        return int(loop.run_until_complete(run_window(options)))
    finally:
        loop.close()  # before the QApplication goes away
