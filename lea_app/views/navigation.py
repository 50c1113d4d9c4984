"""The list of pages on the window's left: in the application's font, as wide as its names need.

No style sheet: a widget with one keeps the font it was polished with when the application's font
changes, and a size in points would not follow the user's font at all.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QSize
from PySide6.QtWidgets import QFrame, QListWidget, QWidget

#: Room beside the longest name: the items' padding, the frame, a scroll bar's edge.
ROOM = 2 * 12 + 24 + 8
NARROWEST = 150


class Navigation(QListWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("navigation")
        self.setAccessibleName("Pages")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setViewportMargins(12, 8, 0, 0)
        self.setSpacing(1)
        self.fit()

    def fit(self) -> None:
        """As wide as the longest page name in the current font needs; items as high as the text
        and room around it."""
        metrics = self.fontMetrics()
        widest = max((metrics.horizontalAdvance(self.item(i).text()) for i in range(self.count())), default=0)
        self.setFixedWidth(max(NARROWEST, widest + ROOM))
        for i in range(self.count()):
            self.item(i).setSizeHint(QSize(0, metrics.height() + 16))

    def event(self, event: QEvent) -> bool:
        handled = super().event(event)
        if event.type() == QEvent.Type.FontChange:
            self.fit()
        return handled
