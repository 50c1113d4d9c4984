"""A visible keyboard focus ring: the platform style's focus frame, drawn as a 2 px ring in the
palette's highlight colour (Fusion's is a faint line that is easy to lose on a button or a field).

Tables paint with the platform style itself (``plain_style``): a style written in Python is called
back for every primitive of every cell, 6 of the 15 ms a 200-cell paint of a live table took
(bench/gui_burst.py); a table shows where the keyboard is by its highlighted current row."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QPainter, QPalette, QPen
from PySide6.QtWidgets import QApplication, QProxyStyle, QStyle, QStyleFactory, QStyleOption, QWidget

RING_WIDTH = 2


class FocusRingStyle(QProxyStyle):
    """The application's style with a focus ring that shows where the keyboard is."""

    def drawPrimitive(
        self, element: QStyle.PrimitiveElement, option: QStyleOption, painter: QPainter, widget: QWidget | None = None
    ) -> None:
        if element != QStyle.PrimitiveElement.PE_FrameFocusRect:
            super().drawPrimitive(element, option, painter, widget)
            return
        # As the platform does: a ring after keyboard navigation, not after every mouse click.
        if not option.state & QStyle.StateFlag.State_KeyboardFocusChange:
            return
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(option.palette.color(QPalette.ColorRole.Highlight), RING_WIDTH)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        half = RING_WIDTH / 2
        painter.drawRoundedRect(QRectF(option.rect).adjusted(half, half, -half, -half), 3, 3)
        painter.restore()


def install_focus_ring() -> None:
    """Give the running application the focus ring (once; the platform's style stays underneath)."""
    app = QApplication.instance()
    if not isinstance(app, QApplication) or isinstance(app.style(), FocusRingStyle):
        return
    app.setStyle(FocusRingStyle(app.style().name()))


def plain_style() -> QStyle | None:
    """A new instance of the platform style under the focus ring, for a widget that paints many
    items (a table; PySide makes the widget its owner: one each); None when the application has no
    focus ring (its style is plain already)."""
    app = QApplication.instance()
    ring = app.style() if isinstance(app, QApplication) else None
    if not isinstance(ring, FocusRingStyle):
        return None
    return QStyleFactory.create(ring.baseStyle().name())  # (a proxy's own name is empty)
