"""A visible keyboard focus ring: the platform style's focus frame, drawn as a 2 px ring in the
palette's highlight colour (Fusion's is a faint line that is easy to lose on a button or a cell)."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QPainter, QPalette, QPen
from PySide6.QtWidgets import QApplication, QProxyStyle, QStyle, QStyleOption, QWidget

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
