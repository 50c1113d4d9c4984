"""What every LEA table view shares: row selection, fixed row heights, progress bars in cells."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView

from lea_app.models.table import ResourceTableModel
from lea_app.views.delegates import ProgressDelegate

ROW_HEIGHT = 26


def setup_table_view(view: QTableView, widths: Sequence[int]) -> None:
    """Row selection, fixed row heights, interactive column widths (no ResizeToContents: on a live
    table it re-measures every row on each update)."""
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    view.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
    header = view.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setStretchLastSection(True)
    header.setHighlightSections(False)
    for i, width in enumerate(widths):
        view.setColumnWidth(i, width)


def configure_table(view: QTableView, model: ResourceTableModel[Any]) -> None:
    """A resource table: sorted inside the model, progress columns painted as bars."""
    view.setModel(model)
    view.setSortingEnabled(True)
    view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
    setup_table_view(view, [column.width for column in model.columns])
    for i, column in enumerate(model.columns):
        if column.progress is not None:
            view.setItemDelegateForColumn(i, ProgressDelegate(view))
