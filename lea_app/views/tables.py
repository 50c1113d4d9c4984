"""What every LEA table view shares: row selection, fixed row heights, progress bars in cells."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import shiboken6
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableView, QWidget

from lea_app.models.table import Coalescing, ResourceTableModel
from lea_app.views.delegates import ProgressDelegate
from lea_app.views.focus import plain_style

ROW_HEIGHT = 26  # at the usual 9-10 pt font; rows grow with a larger font (row_height)
#: The average character width the preferred column widths were chosen at.
BASE_CHAR_WIDTH = 7.0


def row_height(view: QWidget) -> int:
    """A row's height for the view's font: the text's height and room around it."""
    return max(ROW_HEIGHT, view.fontMetrics().height() + 10)


def setup_table_view(
    view: QTableView, widths: Sequence[int], minimums: Sequence[int] = (), stretch: int | None = None
) -> None:
    """Row selection, rows as high as the font needs, columns that share the viewport's width
    (no ResizeToContents: on a live table it re-measures every row on each update); ``stretch``:
    the column that takes the spare width (default: the last)."""
    style = plain_style()
    if style is not None:
        view.setStyle(style)  # its cells are painted without calls into Python (lea_app/views/focus.py)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    view.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    view.verticalHeader().setDefaultSectionSize(row_height(view))
    header = view.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setStretchLastSection(True)
    header.setHighlightSections(False)
    header.setMinimumSectionSize(40)
    ColumnFitter(view, widths, minimums, stretch)
    model = view.model()
    if isinstance(model, Coalescing):
        SeenFollower(view, model)
    if isinstance(model, ResourceTableModel):
        model.visible_rows = functools.partial(visible_rows, view)


def visible_rows(view: QTableView) -> tuple[int, int]:
    """The rows ``view`` shows now, (first, last); (0, -1) when it shows none (hidden or empty)."""
    if not shiboken6.isValid(view) or not view.isVisible():
        return 0, -1
    first = view.rowAt(0)
    if first < 0:
        return 0, -1
    last = view.rowAt(view.viewport().height() - 1)
    return first, last if last >= 0 else view.model().rowCount() - 1


class SeenFollower(QObject):
    """Tells a live model whether its table is seen: hidden (its page is not shown), the model
    coalesces its changes for longer and waits behind the models that are seen
    (lea_app/models/table.py: BACKGROUND_MS); shown, it is brought up to date at once."""

    def __init__(self, view: QAbstractItemView, model: Coalescing) -> None:
        super().__init__(view)
        self._model = model
        model.set_background(not view.isVisible())
        view.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind in (QEvent.Type.Show, QEvent.Type.Hide) and shiboken6.isValid(self._model):
            self._model.set_background(kind == QEvent.Type.Hide)
        return False


class ColumnFitter(QObject):
    """Keeps a table's columns within its viewport: each column's preferred width (scaled to the
    font) while they fit, else shrunk in proportion towards what its title needs; the last column
    (or the ``stretch`` column) takes the rest. Refitted when the viewport's width or the font
    changes; a column the user dragged keeps its width until then."""

    def __init__(
        self, view: QTableView, widths: Sequence[int], minimums: Sequence[int] = (), stretch: int | None = None
    ) -> None:
        super().__init__(view)
        self.view = view
        self.widths = list(widths)
        self.stretch = len(self.widths) - 1 if stretch is None else stretch
        self.minimums = [*minimums, *[0] * (len(self.widths) - len(minimums))]
        self._width = -1
        self._viewport = view.viewport()
        self._viewport.installEventFilter(self)
        view.installEventFilter(self)
        self.fit()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if not shiboken6.isValid(self.view):  # events of its viewport while the view is deleted
            return False
        if watched is self.view and kind in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self.view.verticalHeader().setDefaultSectionSize(row_height(self.view))
            self.fit(force=True)
        elif watched is self._viewport and kind == QEvent.Type.Resize:
            self.fit()
        return False

    def preferred(self) -> tuple[list[int], list[int]]:
        """Each column's preferred and smallest width for the current font."""
        metrics = self.view.fontMetrics()
        scale = max(1.0, metrics.averageCharWidth() / BASE_CHAR_WIDTH)
        model = self.view.model()
        titles = [str(model.headerData(i, Qt.Orientation.Horizontal) or "") for i in range(len(self.widths))]
        header_metrics = self.view.horizontalHeader().fontMetrics()
        smallest = [  # room for the sort arrow
            max(40, header_metrics.horizontalAdvance(t) + 28, int(least * scale))
            for t, least in zip(titles, self.minimums, strict=True)
        ]
        wanted = [max(int(w * scale), low) for w, low in zip(self.widths, smallest, strict=True)]
        return wanted, smallest

    def fit(self, force: bool = False) -> None:
        available = self.view.viewport().width()
        if available <= 0 or (available == self._width and not force) or not self.widths:
            return
        self._width = available
        wanted, smallest = self.preferred()
        for i in range(len(wanted)):  # a hidden column takes no room
            if self.view.isColumnHidden(i):
                wanted[i] = smallest[i] = 0
        total, floor = sum(wanted), sum(smallest)
        if total <= available:
            widths = wanted
        elif floor >= available:  # titles elided: each column's share of what there is
            widths = [max(36, low * available // floor) if low else 0 for low in smallest]
        else:
            share = (available - floor) / (total - floor)
            widths = [low + int((w - low) * share) for w, low in zip(wanted, smallest, strict=True)]
        stretch = self.stretch
        for i, width in enumerate(widths):  # the stretch column takes what is left
            if i != stretch and width:
                self.view.setColumnWidth(i, width)
        header = self.view.horizontalHeader()
        header.setMinimumSectionSize(min(40, *(w for w in widths if w)))
        last = stretch == len(widths) - 1
        # Set here too: the header stretches it on its next resize only.
        header.setStretchLastSection(False)
        rest = available - sum(w for i, w in enumerate(widths) if i != stretch)
        header.resizeSection(stretch, max(rest, header.minimumSectionSize()))
        header.setStretchLastSection(last)


def configure_table(view: QTableView, model: ResourceTableModel[Any]) -> None:
    """A resource table: sorted inside the model, progress columns painted as bars."""
    view.setModel(model)
    view.setSortingEnabled(True)
    view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
    setup_table_view(view, [c.width for c in model.columns], [c.min_width for c in model.columns])
    for i, column in enumerate(model.columns):
        if column.progress is not None:
            view.setItemDelegateForColumn(i, ProgressDelegate(view))


class EmptyState(QLabel):
    """What to do next, centred inside a table's viewport while the table has no rows (it shifts
    nothing: it floats over the empty viewport, and clicks go through to the table)."""

    def __init__(self, view: QAbstractItemView) -> None:
        super().__init__(view.viewport())
        self.setObjectName("emptyState")
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setStyleSheet("color:#6b6b6b; padding:12px;")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self._view = view
        view.viewport().installEventFilter(self)
        self.hide()

    def set_text(self, text: str) -> None:
        if text != self.text():
            self.setText(text)
            self.setAccessibleName(text)
            self._place()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize and shiboken6.isValid(self._view) and shiboken6.isValid(self):
            self._place()
        return False

    def showEvent(self, event: QShowEvent) -> None:
        self._place()
        super().showEvent(event)

    def _place(self) -> None:
        area = self._view.viewport().rect()
        width = min(area.width() - 24, max(320, area.width() * 2 // 3))
        height = min(area.height(), self.heightForWidth(width) if self.hasHeightForWidth() else 60)
        self.setGeometry(area.x() + (area.width() - width) // 2, area.y() + max(8, area.height() // 5), width, height)
