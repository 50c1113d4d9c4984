"""A non-modal message strip at the top of the window: errors stay until dismissed, info fades."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

STYLES = {
    "error": "background:#fde7e9; color:#8c1d18; border:1px solid #e8a5a0;",
    "warning": "background:#fff4ce; color:#5c4400; border:1px solid #e6cf7a;",
    "info": "background:#e8f1fb; color:#163f6b; border:1px solid #a9c7ea;",
}


class MessageBar(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageBar")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.label, 1)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.setAccessibleName("Dismiss message")
        close.clicked.connect(self.hide)
        layout.addWidget(close)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)
        self.level = ""
        self.hide()

    def show_message(self, level: str, text: str, timeout_ms: int | None = None) -> None:
        self.level = level
        self.setStyleSheet(f"#messageBar {{{STYLES.get(level, STYLES['info'])} border-radius:4px;}}")
        self.label.setText(text)
        self.label.setAccessibleDescription(text)
        self.show()
        if timeout_ms is None:
            timeout_ms = 6000 if level == "info" else 0
        if timeout_ms:
            self._timer.start(timeout_ms)
        else:
            self._timer.stop()

    @property
    def text(self) -> str:
        return self.label.text()
