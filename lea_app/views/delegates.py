"""A progress bar painted in a table cell (no widget per row: cheap for thousands of rows)."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionProgressBar, QStyleOptionViewItem

from lea_app.models.table import PROGRESS_ROLE


class ProgressDelegate(QStyledItemDelegate):
    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        progress = index.data(PROGRESS_ROLE)
        if not progress:
            super().paint(painter, option, index)
            return
        done, total = progress
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)
        bar.minimum = 0
        bar.maximum = max(total, 1)
        bar.progress = min(done, bar.maximum)
        # What the bar counts, from the cell's text ("11 of 19 parameters"), and the share of it.
        counted = index.data(Qt.ItemDataRole.DisplayRole) or f"{done} of {total}"
        percent = f"{100 * done // max(total, 1)} %"
        room = bar.rect.width() - 8
        metrics = option.fontMetrics
        bar.text = next(
            (t for t in (f"{counted} ({percent})", counted, f"{done}/{total} ({percent})")
             if metrics.horizontalAdvance(t) <= room),
            percent,
        )
        bar.textVisible = True
        bar.state = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Horizontal  # Qt 6: else vertical
        style = option.widget.style() if option.widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)
