"""Driving the Clusters page of a real MainWindow as a user does (shared by the GUI flows)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QStyle, QStyleOptionViewItem, QTableView
from pytestqt.qtbot import QtBot

from lea_app.models.resources import ClusterRow
from lea_app.views.main_window import MainWindow

DEPLOY_COLUMN = 3
PROGRESS_COLUMN = 5


def click_checkbox(qtbot: QtBot, window: MainWindow, row: int) -> None:
    """Click the deploy toggle's check indicator in ``row`` of the clusters table."""
    click_check_indicator(qtbot, window.clusters.table, row)


def click_check_indicator(qtbot: QtBot, view: QTableView, row: int, column: int = DEPLOY_COLUMN) -> None:
    """Click the check indicator of a cell, where a user's mouse would."""
    index = view.model().index(row, column)
    view.scrollTo(index)
    rect = view.visualRect(index)
    option = QStyleOptionViewItem()
    option.initFrom(view)
    option.rect = rect
    option.features |= QStyleOptionViewItem.ViewItemFeature.HasCheckIndicator
    check = view.style().subElementRect(QStyle.SubElement.SE_ItemViewItemCheckIndicator, option, view)
    target = check.center() if check.isValid() else rect.center()
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=target)


def cluster_row(window: MainWindow, name: str) -> tuple[int, ClusterRow]:
    """The row number and row data of the cluster called ``name`` (pending updates applied first)."""
    model = window.clusters.model
    model.flush()
    for row in range(model.rowCount()):
        id = model.id_at(row)
        data = model.row_data(id) if id else None
        if data is not None and data.cluster.name == name:
            return row, data
    raise AssertionError(f"no cluster {name}")
