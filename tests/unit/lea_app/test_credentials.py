"""Server tokens in the OS keyring, with a test keyring backend; and the fallback where none exists."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("QT_API", "pyside6")

import keyring
import keyring.backends.fail
import keyring.errors
import pytest
from keyring.backend import KeyringBackend
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from lea_app.credentials import SERVICE, forget_token, keyring_status, load_token, save_token
from lea_app.views.connect_dialog import ConnectDialog, ConnectionChoice

URL = "https://lea.example.org:8421"
TOKEN = "lea_test-token-0123456789"


class MemoryKeyring(KeyringBackend):
    """An in-memory keyring: what an OS keyring does, for tests."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.passwords.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("no such password")


class LockedKeyring(MemoryKeyring):
    """A keyring that exists but refuses every operation (e.g. locked, or the user said no)."""

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("the keyring is locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError("the keyring is locked")


def use_keyring(backend: KeyringBackend) -> Iterator[KeyringBackend]:
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def memory_keyring() -> Iterator[KeyringBackend]:
    yield from use_keyring(MemoryKeyring())


@pytest.fixture
def no_keyring() -> Iterator[KeyringBackend]:
    yield from use_keyring(keyring.backends.fail.Keyring())


def test_save_load_forget(memory_keyring: MemoryKeyring) -> None:
    available, sentence = keyring_status()
    assert available
    assert "saved in the OS keyring" in sentence and "MemoryKeyring" in sentence
    assert load_token(URL) is None
    assert save_token(URL, TOKEN) is True
    assert memory_keyring.passwords == {(SERVICE, URL): TOKEN}
    assert load_token(URL) == TOKEN
    assert load_token("https://other.example.org:8421") is None  # tokens are kept per server
    assert save_token(URL, TOKEN + "-new") is True  # replaced, not added
    assert load_token(URL) == TOKEN + "-new"
    forget_token(URL)
    assert load_token(URL) is None
    forget_token(URL)  # forgetting twice is harmless


def test_without_a_keyring_the_token_is_for_this_session_only(no_keyring: KeyringBackend) -> None:
    available, sentence = keyring_status()
    assert not available
    assert sentence == "No OS keyring is available: the token is used for this session only and not saved."
    assert save_token(URL, TOKEN) is False
    assert load_token(URL) is None
    forget_token(URL)  # no error either


def test_a_refusing_keyring_is_a_warning_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    for _ in use_keyring(LockedKeyring()):
        assert keyring_status()[0]
        assert save_token(URL, TOKEN) is False
        assert load_token(URL) is None
        forget_token(URL)
    assert any("could not save the token" in r.getMessage() for r in caplog.records)
    assert any("could not read the token" in r.getMessage() for r in caplog.records)


# -- the connection dialog (pytest-qt) ---------------------------------------------------------
def _dialog(qtbot: QtBot, current_url: str = "") -> ConnectDialog:
    dialog = ConnectDialog(current_url)
    qtbot.addWidget(dialog)
    return dialog


def test_dialog_without_a_keyring_disables_remember(qtbot: QtBot, no_keyring: KeyringBackend) -> None:
    dialog = _dialog(qtbot, URL)
    assert dialog.server.isChecked()
    assert not dialog.remember.isEnabled() and not dialog.remember.isChecked()
    assert "No OS keyring is available" in dialog.keyring_note.text()
    dialog.token.setText(TOKEN)
    dialog._accept()
    assert dialog.choice is not None
    assert (dialog.choice.remote, dialog.choice.url, dialog.choice.token, dialog.choice.remember) == (
        True,
        URL,
        TOKEN,
        False,
    )


def test_dialog_with_a_keyring_prefills_the_token_of_a_known_server(
    qtbot: QtBot, memory_keyring: KeyringBackend
) -> None:
    assert save_token(URL, TOKEN)
    dialog = _dialog(qtbot)
    dialog.show()
    assert dialog.embedded.isChecked() and not dialog.url.isEnabled()
    dialog.server.setChecked(True)
    assert dialog.remember.isEnabled() and dialog.remember.isChecked()
    assert "saved in the OS keyring" in dialog.keyring_note.text()
    # A server whose token is unknown: nothing is filled in.
    qtbot.keyClicks(dialog.url, "other.example.org:8421")
    qtbot.keyClick(dialog.url, Qt.Key.Key_Return)
    assert dialog.token.text() == ""
    # The known server (typed without a trailing slash difference): its token is filled in.
    dialog.url.clear()
    qtbot.keyClicks(dialog.url, URL + "/")
    dialog.url.editingFinished.emit()
    assert dialog.token.text() == TOKEN
    # A token the user typed is never overwritten.
    dialog.token.setText("typed")
    dialog.url.editingFinished.emit()
    assert dialog.token.text() == "typed"


def test_dialog_prefills_the_token_of_the_current_server(qtbot: QtBot, memory_keyring: KeyringBackend) -> None:
    assert save_token(URL, TOKEN)
    dialog = _dialog(qtbot, URL)
    assert dialog.token.text() == TOKEN


def test_switching_backend_warns_when_the_token_cannot_be_saved(
    tmp_path: Path, no_keyring: KeyringBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connecting with "remember" but no keyring: connected anyway, and a visible warning says so."""
    import lea_app.app as app_module

    shown: list[tuple[str, str]] = []

    class Window:
        data_dir = ""

        def show_message(self, level: str, text: str) -> None:
            shown.append((level, text))

    class Connection:
        description = "server " + URL

    class Controller:
        switched: list[object] = []

        async def switch(self, connection: object) -> None:
            self.switched.append(connection)

    async def open_connection(options: object) -> object:
        return Connection()

    monkeypatch.setattr(app_module, "open_connection", open_connection)
    controller = Controller()
    choice = ConnectionChoice(remote=True, url=URL, token=TOKEN, remember=True)
    asyncio.run(
        app_module.switch_backend(Window(), controller, app_module.Options(data_dir=tmp_path), choice)  # type: ignore[arg-type]
    )
    assert len(controller.switched) == 1
    assert ("warning", "The token could not be saved in a keyring; it is used for this session only.") in shown
