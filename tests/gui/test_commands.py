"""Every command is one QAction: its button, its menu item, the row's context menu and its shortcut
are enabled alike, per role (admin / editor / viewer, as backend/tokens.py names them) and per state
(nothing selected, not deployed, deployed, peers taken); a disabled one says why.

Also: Undeploy asks first naming the cluster and its benches; the selection follows its resource
through filtering, or clears; Ctrl+Q with an unsaved editor asks; a keyboard focus ring shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QMenu, QMessageBox, QToolButton
from pytestqt.qtbot import QtBot

from lea_app.connection.base import Identity
from lea_app.views.editors.peer import PeerEditor
from lea_app.views.focus import FocusRingStyle
from lea_app.views.main_window import MainWindow
from lea_app.views.pages import TablePage
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.state import Deployed
from tests.helpers.clusters_page import box_button, cluster_row, undeploy_confirmation
from tests.helpers.factories import make_peer
from tests.helpers.qt import Lea, flushed, run

PEERS, CLUSTERS, DEPLOYMENTS = 1, 2, 3
FREE = "demo-telematics"  # not deployed, its peers free
DEPLOYED = "demo-adas-loop"  # deployed by the tests that need it
TAKEN = "demo-vehicle-e2e"  # shares demo-hil-01 with demo-adas-loop
WRITERS = ("admin", "editor")


def act_as(lea: Lea, role: str) -> None:
    lea.controller.identity = Identity(name=f"{role}-user", role=role)
    lea.controller.identity_changed.emit()


def enabled(page: TablePage) -> set[str]:
    """The keys of the page's enabled commands, after checking each button agrees with its action."""
    for key, action in page.commands.items():
        button = page.buttons[key]
        assert isinstance(button, QToolButton) and button.defaultAction() is action, key
        assert button.isEnabled() == action.isEnabled(), key
    return {key for key, action in page.commands.items() if action.isEnabled()}


def select_cluster(window: MainWindow, name: str) -> UUID:
    row, data = cluster_row(window, name)
    window.clusters.table.selectRow(row)
    assert window.clusters.selected_id() == data.cluster.id
    return data.cluster.id


def deploy_and_wait(qtbot: QtBot, lea: Lea, name: str) -> UUID:
    _, data = cluster_row(lea.window, name)
    lea.controller.deploy(data.cluster.id, name)
    qtbot.waitUntil(lambda: isinstance(cluster_row(lea.window, name)[1].status, Deployed), timeout=20_000)
    return data.cluster.id


@pytest.fixture
def requests(lea: Lea, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, UUID]]]:
    """What the commands ask the controller for (deploy / undeploy), instead of asking the backend."""
    asked: list[tuple[str, UUID]] = []
    monkeypatch.setattr(lea.controller, "deploy", lambda id, name: asked.append(("deploy", id)))
    monkeypatch.setattr(lea.controller, "undeploy", lambda id, name: asked.append(("undeploy", id)))
    yield asked


# -- enablement per role and state ---------------------------------------------------------
@pytest.mark.parametrize("role", ["admin", "editor", "viewer"])
def test_cluster_commands_per_role_and_state(qtbot: QtBot, lea: Lea, role: str) -> None:
    window, page = lea.window, lea.window.clusters
    window.show_page(CLUSTERS)
    deploy_and_wait(qtbot, lea, DEPLOYED)
    act_as(lea, role)
    writer = role in WRITERS

    page.table.clearSelection()
    assert enabled(page) == ({"new"} if writer else set())
    assert page.commands["deploy"].toolTip() == (
        "Select a cluster in the table first" if writer else page.commands["deploy"].toolTip()
    )

    select_cluster(window, FREE)
    assert enabled(page) == ({"new", "edit", "delete", "deploy", "history"} if writer else {"edit", "history"})
    assert "is not deployed" in page.commands["undeploy"].toolTip() or not writer

    select_cluster(window, DEPLOYED)
    assert enabled(page) == ({"new", "edit", "undeploy", "history"} if writer else {"edit", "history"})
    assert page.commands["edit"].text() == "View…"  # a deployed cluster cannot be changed
    if writer:
        assert f"'{DEPLOYED}' is deployed already" in page.commands["deploy"].toolTip()
        assert "is deployed and cannot be deleted" in page.commands["delete"].toolTip()

    select_cluster(window, TAKEN)
    assert enabled(page) == ({"new", "edit", "delete", "history"} if writer else {"edit", "history"})
    if writer:
        tip = page.commands["deploy"].toolTip()
        assert "demo-hil-01" in tip and DEPLOYED in tip
        assert page.commands["deploy"].statusTip() == tip

    if not writer:
        for key in ("new", "delete", "deploy", "undeploy"):
            tip = page.commands[key].toolTip()
            assert tip.startswith("Read-only:") and "viewer" in tip and "editor or admin token" in tip, (key, tip)


@pytest.mark.parametrize("role", ["admin", "editor", "viewer"])
def test_peer_commands_per_role_and_state(qtbot: QtBot, lea: Lea, role: str) -> None:
    window, page = lea.window, lea.window.peers
    spare = make_peer("spare-bench")  # a real bench, in no cluster
    run(qtbot, lea.controller.connection.store_peer_descriptor(spare, expected_version=None))
    qtbot.waitUntil(lambda: flushed(page.model).row_of(spare.id) is not None, timeout=10_000)
    window.show_page(PEERS)
    act_as(lea, role)
    writer = role in WRITERS

    page.table.clearSelection()
    assert enabled(page) == ({"new"} if writer else set())
    assert not page.commands["online"].isVisible()  # no demo bench selected

    demo = next(p for p in lea.controller.store.all(ResourceKind.PEER).values()
                if isinstance(p, PeerDescriptor) and p.demo)
    page.select(demo.id)
    read = {"edit", "history", "configuration"}
    assert enabled(page) == (read | {"new", "online"} if writer else read)
    assert page.commands["online"].isVisible() and page.buttons["online"].isVisibleTo(page)
    assert page.commands["online"].text() in ("Switch demo bench off", "Switch demo bench on")
    assert "used by cluster" in page.commands["delete"].toolTip() or not writer
    assert "demo bench is simulated" in page.commands["bench"].toolTip() or role != "admin"

    page.select(spare.id)
    assert not page.commands["online"].isVisible() and not page.buttons["online"].isVisibleTo(page)
    expected = read | ({"new", "delete"} if writer else set()) | ({"bench"} if role == "admin" else set())
    assert enabled(page) == expected
    if role == "editor":
        assert "needs an admin token" in page.commands["bench"].toolTip()
    if not writer:
        assert page.commands["edit"].text() == "View…"
        assert "viewer" in page.commands["delete"].toolTip() and "viewer" in page.commands["new"].toolTip()


@pytest.mark.parametrize("role", ["editor", "viewer"])
def test_deployment_commands_per_role_and_state(qtbot: QtBot, lea: Lea, role: str) -> None:
    window, page = lea.window, lea.window.deployments
    id = deploy_and_wait(qtbot, lea, DEPLOYED)
    window.show_page(DEPLOYMENTS)
    act_as(lea, role)
    page.table.clearSelection()
    assert enabled(page) == set()
    page.select(id)
    assert page.selected_id() == id
    writer = role in WRITERS
    assert enabled(page) == ({"undeploy", "cluster"} if writer else {"cluster"})
    assert "deployed already" in page.commands["retry"].toolTip() or not writer
    assert "Only a failed deployment" in page.commands["failing"].toolTip()


def test_the_menus_hold_the_pages_own_actions(qtbot: QtBot, lea: Lea) -> None:
    window = lea.window
    file_menu = window.menuBar().actions()[0].menu()
    assert isinstance(file_menu, QMenu)
    file_actions = file_menu.actions()
    assert window.peers.commands["new"] in file_actions and window.clusters.commands["new"] in file_actions
    for index, page in ((PEERS, window.peers), (CLUSTERS, window.clusters), (DEPLOYMENTS, window.deployments)):
        window.show_page(index)
        assert window.page_menu.menuAction().isVisible()
        assert window.page_menu.actions() == [a for k, a in page.commands.items() if k != "new"]
    window.show_page(0)
    assert not window.page_menu.menuAction().isVisible() and window.page_menu.actions() == []


# -- shortcuts have their button's enablement ----------------------------------------------
def test_ctrl_d_on_a_deployed_cluster_does_nothing(qtbot: QtBot, lea: Lea, monkeypatch: pytest.MonkeyPatch) -> None:
    window = lea.window
    window.show_page(CLUSTERS)
    deployed = deploy_and_wait(qtbot, lea, DEPLOYED)
    stored = lea.controller.store.get(ResourceKind.CLUSTER_DEPLOYMENT, deployed)
    assert stored is not None
    version = stored.version
    asked: list[UUID] = []
    monkeypatch.setattr(lea.controller, "deploy", lambda id, name: asked.append(id))

    free = select_cluster(window, FREE)
    qtbot.keyClick(window.clusters.table, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    assert asked == [free]  # enabled: the shortcut deploys
    asked.clear()

    select_cluster(window, DEPLOYED)
    assert not window.clusters.commands["deploy"].isEnabled()
    qtbot.keyClick(window.clusters.table, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    window.clusters.commands["deploy"].trigger()  # the menu item: the same action
    window.clusters.deploy()  # even a direct call: the store says deployed
    select_cluster(window, TAKEN)
    qtbot.keyClick(window.clusters.table, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    qtbot.wait(100)
    assert asked == []
    stored = lea.controller.store.get(ResourceKind.CLUSTER_DEPLOYMENT, deployed)
    assert stored is not None and stored.version == version


def test_a_shortcut_acts_only_on_the_page_in_view(
    qtbot: QtBot, lea: Lea, requests: list[tuple[str, UUID]]
) -> None:
    window = lea.window
    window.show_page(CLUSTERS)
    select_cluster(window, FREE)
    window.show_page(PEERS)  # the Clusters page keeps its selection, hidden
    window.peers.table.setFocus()
    qtbot.keyClick(window.peers.table, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(window.peers.table, Qt.Key.Key_U, Qt.KeyboardModifier.ControlModifier)
    qtbot.wait(50)
    assert requests == []


def test_a_viewer_s_shortcuts_do_nothing(qtbot: QtBot, lea: Lea, requests: list[tuple[str, UUID]]) -> None:
    window = lea.window
    window.show_page(CLUSTERS)
    act_as(lea, "viewer")
    select_cluster(window, FREE)
    window.clusters.table.setFocus()
    for key in (Qt.Key.Key_D, Qt.Key.Key_U, Qt.Key.Key_N):
        qtbot.keyClick(window.clusters.table, key, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(window.clusters.table, Qt.Key.Key_Delete)
    qtbot.wait(50)
    assert requests == [] and window.editors == {}
    assert not [d for d in window.dialogs if d.isVisible()]


def test_enter_and_delete_act_on_the_focused_table(qtbot: QtBot, lea: Lea) -> None:
    window = lea.window
    window.show_page(CLUSTERS)
    id = select_cluster(window, FREE)
    window.clusters.table.setFocus()
    qtbot.keyClick(window.clusters.table, Qt.Key.Key_Return)
    assert ("cluster", id) in window.editors
    window.editors[("cluster", id)].close()
    window.activateWindow()
    window.clusters.table.setFocus()
    qtbot.keyClick(window.clusters.table, Qt.Key.Key_Delete)
    box = window.dialogs[-1]
    assert isinstance(box, QMessageBox) and box.objectName() == "deleteConfirmation" and box.isVisible()
    box.reject()


# -- undeploy asks first -------------------------------------------------------------------
@pytest.mark.parametrize("answer", ["Cancel", "Undeploy"])
def test_undeploy_asks_naming_the_cluster_and_its_benches(qtbot: QtBot, lea: Lea, answer: str) -> None:
    window = lea.window
    id = deploy_and_wait(qtbot, lea, DEPLOYED)
    window.show_page(CLUSTERS)
    select_cluster(window, DEPLOYED)
    qtbot.keyClick(window.clusters.table, Qt.Key.Key_U, Qt.KeyboardModifier.ControlModifier)
    box = undeploy_confirmation(window)
    assert box.text() == f"Undeploy cluster '{DEPLOYED}'?"
    members = [lea.controller.store.get(ResourceKind.PEER, p) for p in lea.controller.store.members(id)]
    names = [p.name for p in members if isinstance(p, PeerDescriptor)]
    assert names and all(name in box.informativeText() for name in names)
    assert "(leader)" in box.informativeText()
    assert box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)  # Enter does not undeploy
    qtbot.mouseClick(box_button(box, answer), Qt.MouseButton.LeftButton)
    if answer == "Cancel":
        qtbot.wait(300)
        assert lea.controller.store.get(ResourceKind.CLUSTER_DEPLOYMENT, id) is not None
    else:
        qtbot.waitUntil(lambda: lea.controller.store.get(ResourceKind.CLUSTER_DEPLOYMENT, id) is None, timeout=10_000)


def test_undeploy_from_the_deployments_page_asks_too(
    qtbot: QtBot, lea: Lea, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = lea.window
    id = deploy_and_wait(qtbot, lea, DEPLOYED)
    asked: list[UUID] = []
    monkeypatch.setattr(lea.controller, "undeploy", lambda id, name: asked.append(id))
    window.show_page(DEPLOYMENTS)
    window.deployments.select(id)
    qtbot.mouseClick(window.deployments.buttons["undeploy"], Qt.MouseButton.LeftButton)
    box = undeploy_confirmation(window)
    assert asked == []
    qtbot.mouseClick(box_button(box, "Undeploy"), Qt.MouseButton.LeftButton)
    assert asked == [id]


# -- selection under filtering -------------------------------------------------------------
def test_filtering_keeps_the_selection_on_its_resource_or_clears_it(qtbot: QtBot, lea: Lea) -> None:
    window, page = lea.window, lea.window.clusters
    window.show_page(CLUSTERS)
    id = select_cluster(window, TAKEN)  # demo-vehicle-e2e: rows sort before it
    # A filter that keeps it (and drops rows before it): still the same cluster, at its new row.
    qtbot.keyClicks(page.filter, "vehicle")
    page.model.flush()
    assert page.model.rowCount() >= 1 and page.selected_id() == id
    # A filter that drops it: nothing is selected, and the commands say so (they act on nothing).
    page.filter.clear()
    page.model.flush()
    assert page.selected_id() == id
    qtbot.keyClicks(page.filter, "telematics")
    page.model.flush()
    assert page.model.rowCount() == 1 and page.model.id_at(0) != id
    assert page.selected_id() is None
    assert not page.commands["deploy"].isEnabled() and not page.commands["edit"].isEnabled()
    assert page.commands["deploy"].toolTip() == "Select a cluster in the table first"
    # Back to every row: still nothing selected (never another cluster).
    page.filter.clear()
    page.model.flush()
    assert page.selected_id() is None


def test_sorting_keeps_the_selection_on_its_resource(qtbot: QtBot, lea: Lea) -> None:
    window, page = lea.window, lea.window.clusters
    window.show_page(CLUSTERS)
    id = select_cluster(window, FREE)
    page.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
    assert page.selected_id() == id


# -- context menu --------------------------------------------------------------------------
def test_a_row_s_context_menu_holds_its_commands(qtbot: QtBot, lea: Lea) -> None:
    window, page = lea.window, lea.window.clusters
    window.show_page(CLUSTERS)
    deploy_and_wait(qtbot, lea, DEPLOYED)
    row, data = cluster_row(window, DEPLOYED)
    page.table.clearSelection()
    pos = page.table.visualRect(page.model.index(row, 0)).center()
    page.table.customContextMenuRequested.emit(pos)
    menu = page.context_menu
    assert menu is not None and menu.isVisible()
    assert page.selected_id() == data.cluster.id  # a right click selects the row it is on
    assert menu.actions() == [page.commands[k] for k in ("edit", "delete", "deploy", "undeploy", "history")]
    assert [a.isEnabled() for a in menu.actions()] == [True, False, False, True, True]
    menu.close()
    below = QPoint(5, page.table.viewport().height() - 3)
    assert not page.table.indexAt(below).isValid()
    assert page.context_menu_for(below).actions() == [page.commands["new"]]


# -- quitting with an unsaved editor -------------------------------------------------------
def test_ctrl_q_with_an_unsaved_editor_asks(qtbot: QtBot, lea: Lea) -> None:
    window = lea.window
    editor = window.open_peer_editor(None)
    assert isinstance(editor, PeerEditor)
    editor.name_edit.setText("unsaved-bench")
    assert editor.is_dirty()
    window.activateWindow()
    closed: list[bool] = []
    window.closed.connect(lambda: closed.append(True))

    window.quit_action.trigger()  # Ctrl+Q
    box = window.quit_box
    assert box is not None and box.isVisible() and "unsaved" in box.text()
    assert window.isVisible() and editor.isVisible() and closed == []
    qtbot.mouseClick(box_button(box, "Cancel"), Qt.MouseButton.LeftButton)
    assert window.isVisible() and editor.isVisible() and editor.name_edit.text() == "unsaved-bench"

    window.close()  # the window's close button: the same question
    box = window.quit_box
    assert box is not None and box.isVisible() and closed == []
    qtbot.mouseClick(box_button(box, "Discard and quit"), Qt.MouseButton.LeftButton)
    assert closed == [True] and not window.isVisible() and not editor.isVisible()


def test_quitting_without_unsaved_changes_does_not_ask(qtbot: QtBot, lea: Lea) -> None:
    window = lea.window
    editor = window.open_peer_editor(None)
    assert isinstance(editor, PeerEditor) and not editor.is_dirty()
    closed: list[bool] = []
    window.closed.connect(lambda: closed.append(True))
    window.quit_action.trigger()
    assert closed == [True] and window.quit_box is None


# -- focus ring ----------------------------------------------------------------------------
def test_keyboard_focus_shows_a_ring(qtbot: QtBot, lea: Lea) -> None:
    window = lea.window
    app = QApplication.instance()
    assert isinstance(app, QApplication) and isinstance(app.style(), FocusRingStyle)
    window.show_page(CLUSTERS)
    select_cluster(window, FREE)
    start, button = window.clusters.buttons["new"], window.clusters.buttons["edit"]
    before = button.grab().toImage()
    start.setFocus()
    qtbot.keyClick(start, Qt.Key.Key_Tab)  # the keyboard moves the focus to the next command
    qtbot.waitUntil(button.hasFocus, timeout=2_000)
    after = button.grab().toImage()
    highlight = button.palette().highlight().color()
    ring = sum(
        1 for x in range(after.width()) for y in range(after.height())
        if after.pixelColor(x, y) != before.pixelColor(x, y)
        and abs(after.pixelColor(x, y).hue() - highlight.hue()) < 30 and after.pixelColor(x, y).saturation() > 80
    )
    # A ring around the label: about twice the button's width and height in highlighted pixels.
    assert ring > after.width() + after.height(), "no visible focus ring on the focused button"


def test_every_command_has_a_tip(qtbot: QtBot, lea: Lea) -> None:
    for page in (lea.window.peers, lea.window.clusters, lea.window.deployments):
        for key, action in page.commands.items():
            assert isinstance(action, QAction) and action.toolTip() and action.statusTip() == action.toolTip(), key
