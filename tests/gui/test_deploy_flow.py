"""Deploying a cluster as a user does: click Deploy, watch the bar, read Deployed; undeploy after confirming."""

from __future__ import annotations

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from lea_app.models.table import PROGRESS_ROLE
from resources.kinds import ResourceKind
from resources.state import Deployed, Deploying, Undeployed
from tests.helpers.clusters_page import PROGRESS_COLUMN, cluster_row, deploy_row, undeploy_row
from tests.helpers.qt import Lea


def test_deploy_by_clicking_deploy_then_undeploy(qtbot: QtBot, lea: Lea) -> None:
    lea.window.show_page(2)
    row, data = cluster_row(lea.window, "demo-telematics")
    assert isinstance(data.status, Undeployed) and not data.deployed
    seen_progress: list[tuple[int, int]] = []

    def watch() -> None:
        r, _ = cluster_row(lea.window, "demo-telematics")
        progress = lea.window.clusters.model.index(r, PROGRESS_COLUMN).data(PROGRESS_ROLE)
        if progress:
            seen_progress.append(progress)

    lea.window.clusters.model.flushed.connect(watch)
    deploy_row(qtbot, lea.window, row)
    qtbot.waitUntil(lambda: cluster_row(lea.window, "demo-telematics")[1].deployed, timeout=10_000)
    qtbot.waitUntil(lambda: isinstance(cluster_row(lea.window, "demo-telematics")[1].status, Deployed), timeout=20_000)
    # The bar moved (frames are coalesced, so not every step is painted) and ends at 100 %.
    assert seen_progress, "no progress bar was shown while deploying"
    done = [d for d, _ in seen_progress]
    assert done == sorted(done), "progress went backwards"
    assert len(set(done)) > 1, "the bar never moved"
    row, data = cluster_row(lea.window, "demo-telematics")
    assert lea.window.clusters.model.index(row, 4).data() == "Deployed"
    assert lea.window.clusters.model.index(row, PROGRESS_COLUMN).data() == "every parameter applied"
    # The peers now show as blocked by the cluster.
    lea.window.peers.model.flush()
    rows = [lea.window.peers.model.row_data(id) for id in lea.window.peers.model.ids()]
    blocked = {r.peer.name: r.blocked_by for r in rows if r}
    assert blocked["demo-hil-03"] == "demo-telematics"

    undeploy_row(qtbot, lea.window, row)
    qtbot.waitUntil(lambda: not cluster_row(lea.window, "demo-telematics")[1].deployed, timeout=10_000)
    qtbot.waitUntil(
        lambda: isinstance(cluster_row(lea.window, "demo-telematics")[1].status, Undeployed), timeout=20_000
    )


def test_deploying_a_cluster_whose_peers_are_taken_is_disabled_with_the_reason(qtbot: QtBot, lea: Lea) -> None:
    """demo-vehicle-e2e shares demo-hil-01 with demo-adas-loop: with that one deployed, Deploy says so."""
    lea.window.show_page(2)
    _, adas = cluster_row(lea.window, "demo-adas-loop")
    lea.controller.deploy(adas.cluster.id, "demo-adas-loop")
    qtbot.waitUntil(lambda: cluster_row(lea.window, "demo-adas-loop")[1].deployed, timeout=10_000)
    row, e2e = cluster_row(lea.window, "demo-vehicle-e2e")
    lea.window.clusters.table.selectRow(row)
    deploy = lea.window.clusters.commands["deploy"]
    assert not deploy.isEnabled() and not lea.window.clusters.buttons["deploy"].isEnabled()
    for tip in (deploy.toolTip(), deploy.statusTip()):
        assert "demo-hil-01" in tip and "demo-adas-loop" in tip and "cannot be deployed" in tip, tip
    qtbot.mouseClick(lea.window.clusters.buttons["deploy"], Qt.MouseButton.LeftButton)
    qtbot.keyClick(lea.window.clusters.table, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    qtbot.wait(200)
    assert lea.controller.store.get(ResourceKind.CLUSTER_DEPLOYMENT, e2e.cluster.id) is None
    # Asked anyway (another LEA deployed meanwhile), the backend refuses, and the window says why.
    lea.controller.deploy(e2e.cluster.id, "demo-vehicle-e2e")
    bar = lea.window.message_bar
    qtbot.waitUntil(lambda: bar.isVisible() and bar.level == "error", timeout=10_000)
    assert "demo-hil-01" in bar.text and "demo-adas-loop" in bar.text
    assert lea.controller.store.get(ResourceKind.CLUSTER_DEPLOYMENT, e2e.cluster.id) is None


def test_keyboard_deploy_shows_deploying(qtbot: QtBot, lea: Lea) -> None:
    lea.window.show_page(2)
    row, _ = cluster_row(lea.window, "demo-adas-loop")
    lea.window.clusters.table.selectRow(row)
    qtbot.keyClick(lea.window, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(
        lambda: isinstance(cluster_row(lea.window, "demo-adas-loop")[1].status, Deploying | Deployed), timeout=10_000
    )
