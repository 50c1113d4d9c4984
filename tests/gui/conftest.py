"""GUI fixtures: a qasync loop driven by pytest-qt, and LEA on its embedded backend - the real child
process (``lea-backend serve --child``) - in a tmp dir.

qasync runs asyncio on Qt's event loop; marking it ``already_running`` lets qtbot.wait/waitUntil
drive both. Everything is closed before the QApplication goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_API", "pyside6")
import PySide6  # noqa: F401 - PySide6 before qasync
import pytest
import qasync
from pytestqt.qtbot import QtBot

from lea_app.app import settings
from lea_app.connection.child import ChildConnection
from lea_app.controller import Controller
from lea_app.views.main_window import MainWindow
from tests.helpers.child import child_options
from tests.helpers.qt import Lea, run


@pytest.fixture
def aloop(qapp: Any) -> Iterator[asyncio.AbstractEventLoop]:
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    yield loop
    # Let what the test left behind (a websocket's keepalive, an httpx pool) finish on this loop,
    # while it still runs: tasks finalised later, on a closed loop, can take Qt down with them.
    leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in leftovers:
        task.cancel()
    deadline = time.monotonic() + 5
    while any(not task.done() for task in leftovers) and time.monotonic() < deadline:
        qapp.processEvents()
        time.sleep(0.005)
    gc.collect()
    qapp.processEvents()
    # Undo "already running" by hand: loop.stop() would call app.exit(), which makes every later
    # nested QEventLoop (qtbot.waitSignal, dialogs) return at once for the rest of the session.
    asyncio.events._set_running_loop(None)
    with contextlib.suppress(RuntimeError, TypeError):
        qapp.aboutToQuit.disconnect(loop._after_run_forever)
    loop._after_run_forever()
    loop._QEventLoop__is_running = False
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def lea(qtbot: QtBot, aloop: asyncio.AbstractEventLoop, tmp_path: Path) -> Iterator[Lea]:
    """The real window on its embedded backend's child process with the demo fleet (fast simulated benches)."""
    data_dir = tmp_path / "lea-data"
    connection = run(qtbot, ChildConnection.open(child_options(data_dir, demo=True, demo_delay_scale=0.05)))
    controller = Controller()
    window = MainWindow(controller, settings(), data_dir=str(data_dir), demo=True)
    qtbot.addWidget(window)
    window.show()
    window.resize(1280, 780)  # after the first show, which fits the window to the (800x600 offscreen) screen
    run(qtbot, controller.start(connection))
    qtbot.waitUntil(lambda: controller.live, timeout=10_000)
    yield Lea(controller, connection, window, data_dir)
    window.force_close()  # no question about an editor a test left unsaved
    run(qtbot, controller.close())
