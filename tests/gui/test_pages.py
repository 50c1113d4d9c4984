"""Pages and models ask by signal; the window connects what they ask for.

A page works on its own, outside any window (it never reaches for the window it sits in); the
Clusters model announces a click on a Deploy toggle as ``deploy_toggled`` and only while the page
lets checks through (the controller's write permission); the window turns each request into an
editor, a confirmation, a history, a page switch or a deployment.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from lea_app.models.resources import ClustersModel
from lea_app.models.table import ResourceTableModel
from lea_app.sync.store import Store
from lea_app.views.editors.cluster import ClusterEditor
from lea_app.views.editors.peer import PeerEditor
from lea_app.views.pages import ClustersPage, DeploymentsPage, PeersPage
from resources.cluster import ClusterDeployment, ClusterDescriptor
from resources.events import StateSnapshot
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from tests.helpers.clusters_page import DEPLOY_COLUMN, cluster_row
from tests.helpers.factories import make_cluster, make_peer
from tests.helpers.qt import Lea

CHECK = Qt.ItemDataRole.CheckStateRole
CHECKED, UNCHECKED = Qt.CheckState.Checked.value, Qt.CheckState.Unchecked.value
CLUSTER = "demo-telematics"


def row_of(model: ResourceTableModel[Any], id: UUID) -> int:
    model.flush()
    row = model.row_of(id)
    assert row is not None
    return row


def first_row(page: PeersPage | ClustersPage | DeploymentsPage) -> UUID:
    """Select the first row of a page's table; its id."""
    page.model.refresh_all()  # a page made after the first snapshot has not heard it
    page.table.selectRow(0)
    id = page.selected_id()
    assert id is not None
    return id


# -- the model -----------------------------------------------------------------------------
def test_the_deploy_column_is_text_not_a_checkbox(qtbot: QtBot) -> None:
    """Deploying goes through the Deploy and Undeploy commands only (docs/decisions.md)."""
    leader, member = make_peer("bench-01"), make_peer("bench-02")
    idle, deployed = make_cluster("idle-loop", leader, member), make_cluster("live-loop", leader, member)
    store = Store()
    store.apply_snapshot(StateSnapshot(
        epoch="pages", revision=0, resources=(leader, member, idle, deployed, ClusterDeployment(id=deployed.id))
    ))
    model = ClustersModel(store)
    model.refresh_all()
    model.checks_enabled = True
    for cluster, text in ((idle, "off"), (deployed, "on")):
        cell = model.index(row_of(model, cluster.id), DEPLOY_COLUMN)
        assert cell.data() == text
        assert cell.data(CHECK) is None
        assert not cell.flags() & Qt.ItemFlag.ItemIsUserCheckable
        assert not model.setData(cell, CHECKED, CHECK)


# -- pages on their own --------------------------------------------------------------------
def test_the_peers_page_asks_by_signal_outside_any_window(qtbot: QtBot, lea: Lea) -> None:
    page = PeersPage(lea.controller)
    qtbot.addWidget(page)
    page.show()
    assert page.window() is page  # no main window to reach for
    id = first_row(page)
    peer = lea.controller.store.get(ResourceKind.PEER, id)
    assert isinstance(peer, PeerDescriptor)

    with qtbot.waitSignal(page.create_requested, timeout=1_000) as new:
        page.buttons["new"].click()
    assert new.args == []
    with qtbot.waitSignal(page.edit_requested, timeout=1_000) as edit:
        page.buttons["edit"].click()
    assert edit.args == [id]
    cell = page.table.visualRect(page.model.index(0, 0)).center()
    qtbot.mouseClick(page.table.viewport(), Qt.MouseButton.LeftButton, pos=cell)
    with qtbot.waitSignal(page.edit_requested, timeout=1_000) as double_click:
        qtbot.mouseDClick(page.table.viewport(), Qt.MouseButton.LeftButton, pos=cell)
    assert double_click.args == [id]
    # A demo bench is in a cluster: Delete is disabled, saying why, rather than refused afterwards.
    assert not page.buttons["delete"].isEnabled()
    assert f"Peer '{peer.name}' cannot be deleted: it is used by cluster" in page.buttons["delete"].toolTip()
    with qtbot.assertNotEmitted(page.delete_requested, wait=50):
        page.buttons["delete"].click()
    with qtbot.waitSignal(page.history_requested, timeout=1_000) as history:
        page.buttons["history"].click()
    assert history.args == [ResourceKind.PEER, id, peer.name]


def test_the_clusters_page_asks_by_signal_and_deploys_through_the_controller(qtbot: QtBot, lea: Lea) -> None:
    page = ClustersPage(lea.controller)
    qtbot.addWidget(page)
    page.resize(1000, 500)
    page.show()
    id = first_row(page)
    cluster = lea.controller.store.get(ResourceKind.CLUSTER, id)
    assert isinstance(cluster, ClusterDescriptor)
    for key, signal, args in (
        ("new", page.create_requested, []),
        ("edit", page.edit_requested, [id]),
        ("delete", page.delete_requested, [id]),
        ("history", page.history_requested, [ResourceKind.CLUSTER, id, cluster.name]),
    ):
        with qtbot.waitSignal(signal, timeout=1_000) as blocker:
            page.buttons[key].click()
        assert blocker.args == args, key

    page.buttons["deploy"].click()
    qtbot.waitUntil(lambda: lea.controller.store.get(ResourceKind.CLUSTER_DEPLOYMENT, id) is not None, timeout=10_000)
    # Undeploy asks the window for a confirmation; the page undeploys nothing itself.
    qtbot.waitUntil(lambda: page.commands["undeploy"].isEnabled(), timeout=5_000)
    with qtbot.waitSignal(page.undeploy_requested, timeout=1_000) as undeploy:
        page.buttons["undeploy"].click()
    assert undeploy.args == [id]
    assert lea.controller.store.get(ResourceKind.CLUSTER_DEPLOYMENT, id) is not None


def test_the_deployments_page_asks_for_the_cluster_by_signal(qtbot: QtBot, lea: Lea) -> None:
    page = DeploymentsPage(lea.controller)
    qtbot.addWidget(page)
    page.show()
    _, data = cluster_row(lea.window, CLUSTER)
    lea.controller.deploy(data.cluster.id, data.cluster.name)
    def one_row() -> bool:
        page.model.flush()
        return page.model.rowCount() == 1

    qtbot.waitUntil(one_row, timeout=10_000)
    assert first_row(page) == data.cluster.id
    with qtbot.waitSignal(page.cluster_requested, timeout=1_000) as show:
        page.buttons["cluster"].click()
    assert show.args == [data.cluster.id]
    with qtbot.waitSignal(page.cluster_requested, timeout=1_000) as activate:
        page.activate()
    assert activate.args == [data.cluster.id]


# -- the window connects them --------------------------------------------------------------
def test_the_window_opens_what_the_pages_ask_for(qtbot: QtBot, lea: Lea) -> None:
    window = lea.window
    _, data = cluster_row(window, CLUSTER)
    cluster = data.cluster
    peer = lea.controller.store.get(ResourceKind.PEER, cluster.leader)
    assert isinstance(peer, PeerDescriptor)

    window.peers.edit_requested.emit(peer.id)
    assert isinstance(window.editors.get(("peer", peer.id)), PeerEditor)
    window.clusters.edit_requested.emit(cluster.id)
    assert isinstance(window.editors.get(("cluster", cluster.id)), ClusterEditor)
    window.peers.create_requested.emit()
    window.clusters.create_requested.emit()
    assert isinstance(window.editors.get(("peer", None)), PeerEditor)
    assert isinstance(window.editors.get(("cluster", None)), ClusterEditor)
    for editor in list(window.editors.values()):
        editor.close()

    window.clusters.delete_requested.emit(cluster.id)
    box = window.dialogs[-1]
    assert isinstance(box, QMessageBox) and box.text() == f"Delete cluster '{cluster.name}'?"
    box.close()
    window.peers.delete_requested.emit(peer.id)
    box = window.dialogs[-1]
    assert isinstance(box, QMessageBox)
    assert box.text().startswith(f"Peer '{peer.name}' cannot be deleted: it is used by")  # the backend's words
    box.close()

    window.clusters.history_requested.emit(ResourceKind.CLUSTER, cluster.id, cluster.name)
    assert window.stack.currentWidget() is window.event_log
    assert window.event_log.history_for == (ResourceKind.CLUSTER, cluster.id)
    window.deployments.cluster_requested.emit(cluster.id)
    assert window.stack.currentWidget() is window.clusters and window.clusters.selected_id() == cluster.id
