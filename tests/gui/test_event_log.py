"""The event log on the real window and its embedded backend: a cluster's history says who deployed
and undeployed it and when; the live log filters by kind, resource, actor and time, hides volatile
states unless asked, shows kinds in words and the change itself (fields before and after)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from lea_app.models.event_text import local_time
from lea_app.models.events import ACTOR, CHANGE, RESOURCE, TIME
from lea_app.views.event_log import EventLogPage
from resources.events import Event
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from tests.helpers.clusters_page import cluster_row
from tests.helpers.qt import Lea, run

CLUSTER = "demo-telematics"


def shown(log: EventLogPage) -> list[Event]:
    log.live.flush()
    return [e for e in (log.live.event_at(r) for r in range(log.live.rowCount())) if e is not None]


def history_rows(log: EventLogPage) -> list[tuple[str, str, str]]:
    model = log.history
    return [(model.index(r, CHANGE).data(), model.index(r, ACTOR).data(), model.index(r, TIME).data())
            for r in range(model.rowCount())]


def test_a_clusters_history_names_who_deployed_and_undeployed_it_and_when(qtbot: QtBot, lea: Lea) -> None:
    window, controller = lea.window, lea.controller
    _, data = cluster_row(window, CLUSTER)
    cluster_id = data.cluster.id
    deployed = run(qtbot, lea.connection.store_cluster_deployment(cluster_id))
    undeployed = run(qtbot, lea.connection.delete_cluster_deployment(cluster_id))
    qtbot.waitUntil(lambda: (controller.engine.revision or 0) >= undeployed.revision, timeout=10_000)
    actor = controller.identity.name
    window.show_history(ResourceKind.CLUSTER, cluster_id, CLUSTER)
    log = window.event_log
    qtbot.waitUntil(lambda: "stored change" in log.history_title.text(), timeout=10_000)
    rows = history_rows(log)  # newest first
    assert [change for change, _, _ in rows[:2]] == ["Undeployed", "Deployed"]
    assert rows[-1][0] == "Cluster created"
    assert {who for _, who, _ in rows[:2]} == {actor}
    stored = run(qtbot, lea.connection.history(ResourceKind.CLUSTER, cluster_id))
    by_revision = {e.revision: e for e in stored}
    assert rows[0][2] == local_time(by_revision[undeployed.revision].at)
    assert rows[1][2] == local_time(by_revision[deployed.revision].at)
    title = log.history_title.text()
    assert f"{len(stored)} stored changes" in title
    assert f"deployed by {actor}" in title and f"undeployed by {actor}" in title
    # the change of the undeploy, and the history asked for by a page selects no live event
    assert not log.live_table.selectionModel().selectedRows()
    log.history_table.selectRow(0)
    assert [tuple(c) for c in log.change.changes] == [("deployed", "yes", "no")]
    assert "Undeployed" in log.change.title.text() and actor in log.change.title.text()
    # UTC on hover
    tip = log.history.index(0, TIME).data(Qt.ItemDataRole.ToolTipRole)
    assert tip == by_revision[undeployed.revision].at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _move_peer(qtbot: QtBot, lea: Lea, name: str, location: str) -> PeerDescriptor:
    store = lea.controller.store
    peer_id = store.id_by_name(ResourceKind.PEER, name)
    assert peer_id is not None
    peer = store.get(ResourceKind.PEER, peer_id)
    assert isinstance(peer, PeerDescriptor)
    result = run(qtbot, lea.connection.store_peer_descriptor(peer.model_copy(update={"location": location})))
    qtbot.waitUntil(lambda: (lea.controller.engine.revision or 0) >= result.revision, timeout=10_000)
    return peer


def test_the_live_log_filters_hides_volatile_states_and_shows_the_change(qtbot: QtBot, lea: Lea) -> None:
    window = lea.window
    log = window.event_log
    window.show_page(window.pages.index(log))
    peer = _move_peer(qtbot, lea, "demo-hil-01", "Lab Q, rack 9")
    _, data = cluster_row(window, CLUSTER)
    run(qtbot, lea.connection.store_cluster_deployment(data.cluster.id))  # floods progress and reports
    # volatile states are hidden by default; the toggle shows them
    assert not log.volatile_check.isChecked()
    log.volatile_check.setChecked(True)
    qtbot.waitUntil(lambda: any(not e.kind.persisted for e in shown(log)), timeout=10_000)
    log.volatile_check.setChecked(False)
    events = shown(log)
    assert events and all(e.kind.persisted for e in events)
    assert "volatile states hidden" in log.count.text()
    # kinds in words; by kind
    log.kind_combo.setCurrentIndex(log.kind_combo.findText("Deployments"))
    assert [log.live.index(r, CHANGE).data() for r in range(log.live.rowCount())] == ["Deployed"]
    log.kind_combo.setCurrentIndex(log.kind_combo.findText("Peers"))
    assert {e.kind for e in shown(log)} == {ResourceKind.PEER}
    # by resource (name, typed)
    log.filter.setText("HIL-01")  # applied after a pause in typing
    qtbot.waitUntil(lambda: log.live.event_filter.text == "HIL-01", timeout=2_000)
    rows = shown(log)
    assert [e.id for e in rows] == [peer.id]
    assert log.live.index(0, RESOURCE).data() == "demo-hil-01"
    assert log.live.index(0, CHANGE).data() == "Peer changed"
    # by actor
    actor = lea.controller.identity.name
    log.actor_combo.setCurrentIndex(log.actor_combo.findText(actor))
    assert [e.id for e in shown(log)] == [peer.id]
    log.actor_combo.setCurrentIndex(log.actor_combo.findText("All actors"))
    # by time: the change was made just now
    log.time_combo.setCurrentIndex(log.time_combo.findText("Last 5 minutes"))
    assert [e.id for e in shown(log)] == [peer.id]
    old = log.current_filter()
    assert old.since is not None and datetime.now(UTC) - old.since < timedelta(minutes=5, seconds=5)
    # the change itself: the field, before and after
    log.live_table.selectRow(0)
    qtbot.waitUntil(lambda: bool(log.change.changes), timeout=10_000)
    assert [tuple(c) for c in log.change.changes] == [("location", peer.location or "(none)", "Lab Q, rack 9")]
    after = log.change.table.item(0, 2)
    assert log.change.table.rowCount() == 1 and after is not None and after.text() == "Lab Q, rack 9"
    assert "Peer changed" in log.change.title.text() and actor in log.change.title.text()
    # the same change from the resource's history
    qtbot.waitUntil(lambda: log.history.rowCount() >= 2, timeout=10_000)
    log.change.clear()
    log.history_table.selectRow(0)
    assert [c.field for c in log.change.changes] == ["location"]


def test_ctrl_f_focuses_the_event_logs_filter(qtbot: QtBot, lea: Lea) -> None:
    window = lea.window
    window.show_page(window.pages.index(window.event_log))
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    window.event_log.live_table.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.event_log.filter.hasFocus(), timeout=2_000)
