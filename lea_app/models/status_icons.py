"""Small status icons painted once: a shape per state, so a status never rests on colour alone.

Each icon has its own shape (a tick, a cross, a warning triangle, a clock, a part-filled circle,
a hollow circle) as well as its colour; ``stale`` gives the greyed version shown while LEA is not
live. Icons are painted, not loaded: no image plugin or theme is needed, and they scale with the
device pixel ratio.
"""

from __future__ import annotations

from enum import Enum

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap

SIZE = 16


class StatusIcon(Enum):
    OK = "ok"  # deployed and healthy; a peer online
    DEGRADED = "degraded"  # deployed, but members are offline
    FAILED = "failed"
    WAITING = "waiting"
    BUSY = "busy"  # deploying or undeploying
    IDLE = "idle"  # undeployed; a peer offline nothing needs
    NEEDED_OFFLINE = "needed-offline"  # a peer offline that a deployed cluster needs


COLOURS = {
    StatusIcon.OK: "#1b7f3b",
    StatusIcon.DEGRADED: "#b86e00",
    StatusIcon.FAILED: "#b3261e",
    StatusIcon.WAITING: "#8a5a00",
    StatusIcon.BUSY: "#1f5fa8",
    StatusIcon.IDLE: "#6b6b6b",
    StatusIcon.NEEDED_OFFLINE: "#b3261e",
}
STALE_COLOUR = "#9a9a9a"

_cache: dict[tuple[StatusIcon, bool], QIcon] = {}


def status_icon(kind: StatusIcon, stale: bool = False) -> QIcon:
    """The icon of ``kind`` (greyed when ``stale``), painted at 1x and 2x once and cached."""
    key = (kind, stale)
    icon = _cache.get(key)
    if icon is None:
        icon = QIcon()
        for ratio in (1.0, 2.0):
            icon.addPixmap(_paint(kind, QColor(STALE_COLOUR if stale else COLOURS[kind]), ratio))
        _cache[key] = icon
    return icon


def _paint(kind: StatusIcon, colour: QColor, ratio: float) -> QPixmap:
    pixmap = QPixmap(int(SIZE * ratio), int(SIZE * ratio))
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    p = QPainter(pixmap)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    white = QPen(QColor("white"), 2.0, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin)
    disc = QRectF(1.5, 1.5, 13, 13)
    if kind == StatusIcon.OK:
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(colour)
        p.drawEllipse(disc)
        p.setPen(white)
        p.drawPolyline([QPointF(4.5, 8.5), QPointF(7, 11), QPointF(11.5, 5.5)])
    elif kind in (StatusIcon.FAILED, StatusIcon.NEEDED_OFFLINE):
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(colour)
        p.drawEllipse(disc)
        p.setPen(white)
        p.drawLine(QPointF(5.5, 5.5), QPointF(10.5, 10.5))
        p.drawLine(QPointF(10.5, 5.5), QPointF(5.5, 10.5))
    elif kind == StatusIcon.DEGRADED:
        triangle = QPainterPath(QPointF(8, 1.5))
        triangle.lineTo(15, 14.5)
        triangle.lineTo(1, 14.5)
        triangle.closeSubpath()
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(colour)
        p.drawPath(triangle)
        p.setPen(white)
        p.drawLine(QPointF(8, 6), QPointF(8, 9.5))
        p.drawPoint(QPointF(8, 12.2))
    elif kind == StatusIcon.WAITING:
        p.setPen(QPen(colour, 1.8))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawEllipse(disc.adjusted(0.5, 0.5, -0.5, -0.5))
        p.setPen(QPen(colour, 1.8, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        p.drawPolyline([QPointF(8, 4.5), QPointF(8, 8), QPointF(10.5, 9.5)])
    elif kind == StatusIcon.BUSY:
        p.setPen(QPen(colour, 1.6))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawEllipse(disc.adjusted(0.5, 0.5, -0.5, -0.5))
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(colour)
        p.drawPie(disc.adjusted(2.5, 2.5, -2.5, -2.5), 90 * 16, -180 * 16)  # half done
    else:  # IDLE: a hollow circle
        p.setPen(QPen(colour, 1.6))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawEllipse(disc.adjusted(1, 1, -1, -1))
    p.end()
    return pixmap
