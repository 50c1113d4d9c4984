"""A wrong address or a missing token at start-up opens the connect dialog showing the error (the
way forward), instead of a fatal box and an exit."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from lea_app.app import Options, run_window
from lea_app.views.connect_dialog import ConnectDialog
from lea_app.views.main_window import MainWindow
from tests.helpers.server import create_token, start_server


@pytest.fixture(autouse=True)
def _signal_handlers() -> Iterator[None]:
    """run_window installs SIGINT/SIGTERM handlers for LEA; give pytest its own back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shown_dialog() -> ConnectDialog | None:
    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, ConnectDialog) and widget.isVisible():
            return widget
    return None


def main_window() -> MainWindow:
    windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
    assert len(windows) == 1, windows
    return windows[0]


def next_dialog(qtbot: QtBot, previous: ConnectDialog | None = None) -> ConnectDialog:
    qtbot.waitUntil(lambda: shown_dialog() not in (None, previous), timeout=15_000)
    dialog = shown_dialog()
    assert dialog is not None
    return dialog


def test_a_wrong_address_opens_the_connect_dialog_with_the_error_and_cancel_exits(
    qtbot: QtBot, aloop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    task = asyncio.ensure_future(run_window(Options(data_dir=tmp_path / "lea", connect=url, token="lea_wrong")))
    dialog = next_dialog(qtbot)
    assert dialog.server.isChecked() and dialog.url.text() == url and dialog.token.text() == "lea_wrong"
    assert dialog.error.isVisibleTo(dialog)
    assert dialog.error.text().startswith("Could not connect: cannot reach") and url in dialog.error.text()
    assert main_window().isVisible()  # the window stays, behind its dialog
    dialog.reject()
    qtbot.waitUntil(task.done, timeout=15_000)
    assert task.result() == 1
    assert not [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]


def test_a_missing_token_is_asked_for_until_the_server_answers(
    qtbot: QtBot, aloop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    data_dir = tmp_path / "server-data"
    token = create_token(data_dir, "editor", "erin")
    server = start_server(data_dir, demo=True)
    try:
        ready: asyncio.Future[MainWindow] = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(run_window(Options(data_dir=tmp_path / "lea", connect=server.url), ready))
        dialog = next_dialog(qtbot)
        assert dialog.url.text() == server.url and dialog.token.text() == ""
        first_error = dialog.error.text()
        assert first_error.startswith("Could not connect:") and "token" in first_error.lower(), first_error

        # A wrong token: the dialog comes back with the server's refusal.
        dialog.token.setText("lea_not-a-token")
        dialog.remember.setChecked(False)
        dialog._accept()
        dialog = next_dialog(qtbot, dialog)
        assert dialog.error.text().startswith("Could not connect:") and dialog.token.text() == "lea_not-a-token"

        # The right one: LEA connects and syncs, as erin.
        dialog.token.setText(token)
        dialog.remember.setChecked(False)
        dialog._accept()
        qtbot.waitUntil(ready.done, timeout=30_000)
        window = ready.result()
        qtbot.waitUntil(lambda: window.controller.live, timeout=30_000)
        assert window.controller.identity.name == "erin" and shown_dialog() is None
        window.close()
        qtbot.waitUntil(task.done, timeout=30_000)
        assert task.result() == 0
    finally:
        server.stop(check=False)
