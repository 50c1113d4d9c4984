"""A non-modal message strip: errors stay until dismissed, info fades.

Two ways to use it. Inside a layout (an editor's refusal): a newer message replaces the older.
Floating over a host widget (``MessageBar(queued=True, host=...)``, the main window): it covers
the bottom of the host instead of pushing its content down (clicks never land on something that
moved), and messages queue rather than replace each other: an error or a warning goes before the
messages of lower priority waiting (errors, then warnings, then info), one of lower priority on
show is put back behind it, and the same text is never queued twice. At most MAX_WAITING_INFO info
messages wait: a newer one pushes out the oldest (info is news that fades; errors and warnings wait
until they are seen or withdrawn).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import shiboken6
from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

STYLES = {
    "error": "background:#fde7e9; color:#8c1d18; border:1px solid #e8a5a0;",
    "warning": "background:#fff4ce; color:#5c4400; border:1px solid #e6cf7a;",
    "info": "background:#e8f1fb; color:#163f6b; border:1px solid #a9c7ea;",
}
INFO_MS = 6000
#: An info message shows at least this long when others wait behind it.
QUEUED_INFO_MS = 3000
#: Distance from the host's edges when floating.
MARGIN = 12  # the pages' own margins: the bar lines up with their tables
MAX_WIDTH = 720
#: Which messages go first: errors, then warnings, then info.
PRIORITY = {"error": 2, "warning": 1, "info": 0}
#: Info messages waiting behind the one shown, at most (the oldest goes first).
MAX_WAITING_INFO = 5


@dataclass(frozen=True)
class Message:
    level: str
    text: str
    timeout_ms: int  # 0: until dismissed

    @property
    def urgent(self) -> bool:
        return self.level in ("error", "warning")

    @property
    def priority(self) -> int:
        return PRIORITY.get(self.level, 0)


class MessageBar(QFrame):
    def __init__(self, parent: QWidget | None = None, *, queued: bool = False, host: QWidget | None = None) -> None:
        super().__init__(host if host is not None else parent)
        self.setObjectName("messageBar")
        self.queued = queued
        self._host = host
        self._current: Message | None = None
        self._waiting: deque[Message] = deque()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.label, 1)
        #: "+2 more" while messages wait behind the one shown.
        self.more = QLabel()
        self.more.setObjectName("moreMessages")
        self.more.hide()
        layout.addWidget(self.more)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.setAccessibleName("Dismiss message")
        close.clicked.connect(self.dismiss_current)
        layout.addWidget(close)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.dismiss_current)
        self.level = ""
        if host is not None:
            host.installEventFilter(self)
        self.hide()

    # -- what callers use ------------------------------------------------------------------
    def show_message(self, level: str, text: str, timeout_ms: int | None = None) -> None:
        if timeout_ms is None:
            timeout_ms = INFO_MS if level == "info" else 0
        message = Message(level, text, timeout_ms)
        if not self.queued or self._current is None:
            self._show(message)
            return
        if message.text == self._current.text or any(m.text == message.text for m in self._waiting):
            return  # said already
        if message.priority > self._current.priority:
            self._waiting.appendleft(self._current)  # shown again after it
            self._show(message)
            return
        # Behind the messages of its priority and above, before those below.
        position = sum(1 for m in self._waiting if m.priority >= message.priority)
        self._waiting.insert(position, message)
        if not message.urgent:
            info = [m for m in self._waiting if not m.urgent]
            for old in info[: max(0, len(info) - MAX_WAITING_INFO)]:
                self._waiting.remove(old)
        self._update_more()
        if not self._current.urgent and self._current.timeout_ms:
            remaining = self._timer.remainingTime()
            if remaining > QUEUED_INFO_MS:
                self._timer.start(QUEUED_INFO_MS)

    def dismiss_current(self) -> None:
        """Close the message shown; the next one waiting (if any) takes its place."""
        if self._waiting:
            self._show(self._waiting.popleft())
        else:
            self._current = None
            self._timer.stop()
            self.hide()

    def dismiss(self, *texts: str) -> None:
        """Withdraw messages that are no longer true, shown or waiting."""
        self._waiting = deque(m for m in self._waiting if m.text not in texts)
        if self._current is not None and self._current.text in texts:
            self.dismiss_current()
        else:
            self._update_more()

    def dismiss_level(self, level: str) -> None:
        """Withdraw every message of ``level`` (the warnings about a connection that is back)."""
        self._waiting = deque(m for m in self._waiting if m.level != level)
        if self._current is not None and self._current.level == level:
            self.dismiss_current()
        else:
            self._update_more()

    def clear(self) -> None:
        self._waiting.clear()
        self.dismiss_current()

    def hide(self) -> None:
        """Hiding the bar (its ✕, a caller) closes the message shown: the next one follows."""
        if self._waiting and self._current is not None:
            self.dismiss_current()
            return
        self._current = None
        self._timer.stop()
        super().hide()

    def pending(self) -> list[Message]:
        """The messages waiting behind the one shown, in the order they will show."""
        return list(self._waiting)

    def has_urgent(self) -> bool:
        """An error or a warning is shown or waiting."""
        return (self._current is not None and self._current.urgent) or any(m.urgent for m in self._waiting)

    @property
    def text(self) -> str:
        return self.label.text()

    # -- showing ---------------------------------------------------------------------------
    def _show(self, message: Message) -> None:
        self._current = message
        self.level = message.level
        self.setStyleSheet(f"#messageBar {{{STYLES.get(message.level, STYLES['info'])} border-radius:4px;}}")
        self.label.setText(message.text)
        self.label.setAccessibleDescription(message.text)
        self._update_more()
        self.show()
        if self._host is not None:
            self.place()
            self.raise_()
        timeout = message.timeout_ms
        if timeout and self._waiting:
            timeout = min(timeout, QUEUED_INFO_MS)
        if timeout:
            self._timer.start(timeout)
        else:
            self._timer.stop()

    def _update_more(self) -> None:
        count = len(self._waiting)
        self.more.setVisible(count > 0)
        self.more.setText(f"+{count} more" if count else "")
        if self._host is not None and self.isVisible():
            self.place()

    def place(self) -> None:
        """Float over the bottom of the host, as wide as it allows, as high as the text needs."""
        if self._host is None:
            return
        area = self._host.rect()
        width = max(200, min(MAX_WIDTH, area.width() - 2 * MARGIN))
        height = self.heightForWidth(width) if self.hasHeightForWidth() else self.sizeHint().height()
        height = max(height, self.minimumSizeHint().height())
        self.setGeometry(area.right() - MARGIN - width + 1, area.bottom() - MARGIN - height + 1, width, height)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        resized = watched is self._host and event.type() == QEvent.Type.Resize
        if resized and shiboken6.isValid(self) and self.isVisible():
            self.place()
        return False
