"""Driving the Clusters page of a real MainWindow as a user does (shared by the GUI flows)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QMessageBox
from pytestqt.qtbot import QtBot

from lea_app.models.resources import ClusterRow
from lea_app.views.main_window import MainWindow

DEPLOY_COLUMN = 3
PROGRESS_COLUMN = 5


def deploy_row(qtbot: QtBot, window: MainWindow, row: int) -> None:
    """Select ``row`` of the clusters table and click Deploy."""
    window.clusters.table.selectRow(row)
    qtbot.mouseClick(window.clusters.buttons["deploy"], Qt.MouseButton.LeftButton)


def undeploy_row(qtbot: QtBot, window: MainWindow, row: int) -> QMessageBox:
    """Select ``row`` of the clusters table, click Undeploy… and confirm; the confirmation."""
    window.clusters.table.selectRow(row)
    qtbot.mouseClick(window.clusters.buttons["undeploy"], Qt.MouseButton.LeftButton)
    box = undeploy_confirmation(window)
    qtbot.mouseClick(box_button(box, "Undeploy"), Qt.MouseButton.LeftButton)
    return box


def undeploy_confirmation(window: MainWindow) -> QMessageBox:
    """The undeploy confirmation the window shows (the last dialog it opened)."""
    box = window.dialogs[-1] if window.dialogs else None
    assert isinstance(box, QMessageBox) and box.objectName() == "undeployConfirmation", box
    assert box.isVisible()
    return box


def box_button(box: QMessageBox, text: str) -> QAbstractButton:
    for button in box.buttons():
        if button.text().replace("&", "") == text:
            return button
    raise AssertionError(f"no button {text!r} in {[b.text() for b in box.buttons()]}")


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
