"""Choose the backend: embedded on this computer, or a server (URL and token)."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from lea_app.connection.remote import normalise_urls
from lea_app.credentials import keyring_status, load_token
from resources.errors import LeaError


@dataclass(frozen=True)
class ConnectionChoice:
    remote: bool
    url: str = ""
    token: str = ""
    remember: bool = False


class ConnectDialog(QDialog):
    def __init__(self, current_url: str = "", parent: QWidget | None = None, *, token: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Connect to a backend")
        self.setMinimumWidth(460)
        layout = QVBoxLayout(self)
        self.embedded = QRadioButton("This computer (embedded backend, single user)")
        self.server = QRadioButton("A shared server")
        group = QButtonGroup(self)
        group.addButton(self.embedded)
        group.addButton(self.server)
        layout.addWidget(self.embedded)
        layout.addWidget(self.server)
        form = QFormLayout()
        self.url = QLineEdit(current_url)
        self.url.setPlaceholderText("https://lea.example.org:8421")
        self.url.setAccessibleName("Server address")
        self.url.setToolTip("One server, or an active server and its standbys: https://a:8421,https://b:8421")
        self.token = QLineEdit(token)
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("lea_… (from `lea-backend token create`)")
        self.token.setAccessibleName("Token")
        form.addRow("Server &address:", self.url)
        form.addRow("&Token:", self.token)
        layout.addLayout(form)
        available, sentence = keyring_status()
        self.remember = QCheckBox("Remember the token in the OS keyring")
        self.remember.setEnabled(available)
        self.remember.setChecked(available)
        layout.addWidget(self.remember)
        self.keyring_note = QLabel(sentence)
        self.keyring_note.setWordWrap(True)
        self.keyring_note.setStyleSheet("color:#6b6b6b;")
        layout.addWidget(self.keyring_note)
        self.error = QLabel()
        self.error.setStyleSheet("color:#b3261e;")
        self.error.setWordWrap(True)
        self.error.hide()
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Connect")
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.server.toggled.connect(self._update)
        self.url.editingFinished.connect(self._prefill_token)
        (self.server if current_url else self.embedded).setChecked(True)
        self._update()
        self._prefill_token()
        self.choice: ConnectionChoice | None = None

    def show_error(self, text: str) -> None:
        """Why the last attempt failed (a wrong address, a missing or refused token), above the buttons."""
        self.error.setText(text)
        self.error.setVisible(bool(text))

    def _update(self) -> None:
        remote = self.server.isChecked()
        for widget in (self.url, self.token):
            widget.setEnabled(remote)
        self.remember.setEnabled(remote and keyring_status()[0])

    def _prefill_token(self) -> None:
        if self.token.text():
            return
        try:
            saved = load_token(normalise_urls(self.url.text()))
        except LeaError:
            return
        if saved:
            self.token.setText(saved)

    def _accept(self) -> None:
        if not self.server.isChecked():
            self.choice = ConnectionChoice(remote=False)
            self.accept()
            return
        try:
            url = normalise_urls(self.url.text())
        except LeaError as exc:
            self.show_error(exc.message)
            self.url.setFocus()
            return
        self.choice = ConnectionChoice(True, url, self.token.text().strip(), self.remember.isChecked())
        self.accept()
