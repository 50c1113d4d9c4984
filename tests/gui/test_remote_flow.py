"""LEA against a real ``lea-backend serve --demo`` over the network (pytest-qt, qasync).

The deploy flow of test_deploy_flow.py, but through RemoteConnection (HTTP + WebSocket); a viewer's
read-only window; the offline banner when the server is killed and the resync once it is back on
the same port and data directory; the event log and the history view over the network.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from uuid import UUID

import httpx
import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from lea_app.app import Options, open_connection, settings
from lea_app.connection.remote import RemoteConnection
from lea_app.controller import Controller
from lea_app.models.table import PROGRESS_ROLE
from lea_app.views.connect_dialog import ConnectDialog
from lea_app.views.main_window import SYNC_TEXT, MainWindow
from resources.errors import Forbidden
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.state import Deployed, Undeployed
from tests.helpers.clusters_page import PROGRESS_COLUMN, cluster_row, deploy_row, undeploy_row
from tests.helpers.qt import run
from tests.helpers.server import ServerProcess, create_token, start_server

STATE_COLUMN = 4
CLUSTERS_PAGE = 2
CLUSTER = "demo-telematics"


@dataclass
class RemoteLea:
    controller: Controller
    connection: RemoteConnection
    window: MainWindow
    server: ServerProcess
    token: str


@dataclass
class Site:
    """A --demo server on a data directory of the test's, with an editor and a viewer token."""

    data_dir: Path
    editor: str
    viewer: str
    server: ServerProcess

    def restart(self) -> ServerProcess:
        """Start the server again on the same data directory and port (after a crash)."""
        port = urlsplit(self.server.url).port
        assert port is not None
        self.server = start_server(self.data_dir, demo=True, extra_args=["--port", str(port)])
        return self.server


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    data_dir = tmp_path / "server-data"
    editor = create_token(data_dir, "editor", "erin")
    viewer = create_token(data_dir, "viewer", "vic")
    s = Site(data_dir, editor, viewer, start_server(data_dir, demo=True))
    yield s
    s.server.stop(check=False)


@pytest.fixture
def open_lea(
    qtbot: QtBot, aloop: asyncio.AbstractEventLoop, tmp_path: Path
) -> Iterator[Callable[[Site, str], RemoteLea]]:
    opened: list[RemoteLea] = []

    def open_(site: Site, token: str) -> RemoteLea:
        # The path `lea --connect URL` takes (LEA_TOKEN -> Options.token).
        options = Options(data_dir=tmp_path / "lea", connect=site.server.url, token=token)
        connection = run(qtbot, open_connection(options))
        assert isinstance(connection, RemoteConnection)
        controller = Controller()
        window = MainWindow(controller, settings(), data_dir="(on the server)")
        # Not qtbot.addWidget: pytest-qt would delete the window before this fixture's teardown
        # stops the controller, whose last state change then reaches deleted pages.
        window.show()
        window.resize(1280, 780)  # after the first show, which fits the window to the (800x600 offscreen) screen
        run(qtbot, controller.start(connection))
        qtbot.waitUntil(lambda: controller.live, timeout=20_000)
        lea = RemoteLea(controller, connection, window, site.server, token)
        opened.append(lea)
        return lea

    yield open_
    for lea in opened:
        run(qtbot, lea.controller.close(), timeout=30_000)
        lea.window.force_close()
        lea.window.deleteLater()
    qtbot.wait(10)  # let the deferred deletes run


# -- helpers -----------------------------------------------------------------------------------




def server_get(site: Site, path: str) -> object:
    with httpx.Client(base_url=site.server.url, headers={"Authorization": f"Bearer {site.viewer}"}, timeout=30) as c:
        response = c.get("/api/v1" + path)
        response.raise_for_status()
        return response.json()


def persisted(items: object) -> dict[tuple[str, str], int]:
    """{(kind, id): version} of the persisted resources in a list of resources (dicts or models)."""
    out: dict[tuple[str, str], int] = {}
    for r in items:  # type: ignore[attr-defined]
        data = r if isinstance(r, dict) else r.model_dump(mode="json")
        if ResourceKind(data["kind"]).persisted:
            out[(data["kind"], data["id"])] = data["version"]
    return out


def write_buttons_enabled(window: MainWindow) -> dict[str, bool]:
    return {
        "clusters.new": window.clusters.buttons["new"].isEnabled(),
        "clusters.delete": window.clusters.buttons["delete"].isEnabled(),
        "clusters.deploy": window.clusters.buttons["deploy"].isEnabled(),
        "peers.new": window.peers.buttons["new"].isEnabled(),
    }


def deploy_enabled(window: MainWindow, cluster: str) -> bool:
    """Whether Deploy (button, menu, Ctrl+D: one action) is enabled with ``cluster`` selected."""
    row, _ = cluster_row(window, cluster)
    window.clusters.table.selectRow(row)
    return window.clusters.commands["deploy"].isEnabled()


def select_rows(window: MainWindow, cluster: str) -> None:
    """Select a cluster and a peer, so that only the role or the connection can disable buttons."""
    row, _ = cluster_row(window, cluster)
    window.clusters.table.selectRow(row)
    window.peers.model.flush()
    window.peers.table.selectRow(0)


# -- tests -------------------------------------------------------------------------------------
def test_deploy_by_clicking_deploy_over_the_network(
    qtbot: QtBot, site: Site, open_lea: Callable[[Site, str], RemoteLea]
) -> None:
    lea = open_lea(site, site.editor)
    window = lea.window
    assert lea.controller.identity.name == "erin" and lea.controller.identity.role == "editor"
    assert site.server.url in window.backend_label.text() and "erin (editor)" in window.backend_label.text()
    window.open_connect_dialog()  # offers the server LEA is connected to
    dialog = window.dialogs[-1]
    assert isinstance(dialog, ConnectDialog)
    assert dialog.server.isChecked() and dialog.url.text() == lea.connection.address == site.server.url
    dialog.reject()
    window.show_page(CLUSTERS_PAGE)
    row, data = cluster_row(window, CLUSTER)
    assert isinstance(data.status, Undeployed) and not data.deployed
    seen_progress: list[tuple[int, int]] = []

    def watch() -> None:
        r, _ = cluster_row(window, CLUSTER)
        progress = window.clusters.model.index(r, PROGRESS_COLUMN).data(PROGRESS_ROLE)
        if progress:
            seen_progress.append(progress)

    window.clusters.model.flushed.connect(watch)
    deploy_row(qtbot, window, row)
    qtbot.waitUntil(lambda: cluster_row(window, CLUSTER)[1].deployed, timeout=20_000)
    qtbot.waitUntil(lambda: isinstance(cluster_row(window, CLUSTER)[1].status, Deployed), timeout=60_000)
    assert seen_progress, "no progress bar was shown while deploying"
    done = [d for d, _ in seen_progress]
    assert done == sorted(done), "progress went backwards"
    assert len(set(done)) > 1, "the bar never moved"
    row, data = cluster_row(window, CLUSTER)
    assert window.clusters.model.index(row, STATE_COLUMN).data() == "Deployed"
    assert window.clusters.model.index(row, PROGRESS_COLUMN).data() == "every parameter applied"
    # The server agrees, and the request's actor is the token's name.
    deployment = server_get(site, f"/cluster_deployment/{data.cluster.id}")
    assert isinstance(deployment, dict)
    history = server_get(site, f"/cluster_deployment/{data.cluster.id}/history")
    assert isinstance(history, list) and history[-1]["actor"] == "erin"
    window.peers.model.flush()
    rows = [window.peers.model.row_data(id) for id in window.peers.model.ids()]
    blocked = {r.peer.name: r.blocked_by for r in rows if r}
    assert blocked["demo-hil-03"] == CLUSTER

    undeploy_row(qtbot, window, row)
    qtbot.waitUntil(lambda: not cluster_row(window, CLUSTER)[1].deployed, timeout=20_000)
    qtbot.waitUntil(lambda: isinstance(cluster_row(window, CLUSTER)[1].status, Undeployed), timeout=60_000)
    assert lea.controller.store.get(ResourceKind.CLUSTER_DEPLOYMENT, data.cluster.id) is None


def test_a_viewer_gets_a_read_only_window(
    qtbot: QtBot, site: Site, open_lea: Callable[[Site, str], RemoteLea], monkeypatch: pytest.MonkeyPatch
) -> None:
    lea = open_lea(site, site.viewer)
    window = lea.window
    assert lea.controller.identity.role == "viewer" and not lea.controller.can_write
    assert "vic (viewer)" in window.backend_label.text()
    window.show_page(CLUSTERS_PAGE)
    select_rows(window, CLUSTER)
    assert window.clusters.buttons["edit"].isEnabled() and window.clusters.buttons["edit"].text() == "View…"
    assert window.clusters.buttons["history"].isEnabled()
    assert not any(write_buttons_enabled(window).values()), write_buttons_enabled(window)
    assert not window.clusters.buttons["undeploy"].isEnabled()
    # (a demo peer is in a cluster: its Delete is disabled for everyone; here for the role first)
    assert not window.peers.buttons["delete"].isEnabled() and "viewer" in window.peers.buttons["delete"].toolTip()
    row, data = cluster_row(window, CLUSTER)
    assert not deploy_enabled(window, CLUSTER)
    assert "viewer" in window.clusters.commands["deploy"].toolTip()
    # Clicking Deploy or pressing Ctrl+D asks the backend for nothing.
    asked: list[UUID] = []
    monkeypatch.setattr(lea.controller, "deploy", lambda cluster_id, name: asked.append(cluster_id))
    window.clusters.table.selectRow(row)
    qtbot.mouseClick(window.clusters.buttons["deploy"], Qt.MouseButton.LeftButton)
    qtbot.keyClick(window, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    assert asked == []
    assert window.open_cluster_editor(None) is None  # no "new cluster" editor for a viewer
    # And the server refuses a viewer's write anyway.
    with pytest.raises(Forbidden) as refused:
        run(qtbot, lea.connection.store_cluster_deployment(data.cluster.id))
    assert "viewer" in refused.value.message
    assert lea.controller.store.get(ResourceKind.CLUSTER_DEPLOYMENT, data.cluster.id) is None


def test_server_killed_shows_offline_then_resyncs_when_back(
    qtbot: QtBot, site: Site, open_lea: Callable[[Site, str], RemoteLea]
) -> None:
    lea = open_lea(site, site.editor)
    window, controller = lea.window, lea.controller
    window.show_page(CLUSTERS_PAGE)
    select_rows(window, CLUSTER)
    assert all(write_buttons_enabled(window).values()), write_buttons_enabled(window)
    assert deploy_enabled(window, CLUSTER)
    epoch = controller.engine.epoch
    resyncs = controller.engine.resyncs

    site.server.kill()  # kill -9: no goodbye on the event stream
    bar = window.message_bar
    qtbot.waitUntil(lambda: controller.engine.state == "resuming", timeout=20_000)
    qtbot.waitUntil(lambda: bar.isVisible() and bar.level == "warning", timeout=5_000)
    assert "lost" in bar.text and "read-only" in bar.text
    assert window.sync_label.text().startswith(SYNC_TEXT["resuming"] + " — data as of ")
    assert not controller.can_write
    assert not any(write_buttons_enabled(window).values()), write_buttons_enabled(window)
    assert not deploy_enabled(window, CLUSTER)
    assert window.open_cluster_editor(None) is None
    # The store is kept while offline: the views still show the fleet.
    assert cluster_row(window, CLUSTER)[1].cluster.name == CLUSTER
    assert controller.engine.last_error  # why, for the log

    site.restart()  # same data directory and port: a new epoch
    qtbot.waitUntil(lambda: controller.live, timeout=45_000)
    assert controller.engine.epoch != epoch, "a restarted server starts a new epoch"
    assert controller.engine.resyncs > resyncs, "a new epoch means a resync"
    qtbot.waitUntil(lambda: not bar.isVisible() or bar.level != "warning", timeout=5_000)
    assert window.sync_label.text() == SYNC_TEXT["live"]
    select_rows(window, CLUSTER)
    assert all(write_buttons_enabled(window).values()), write_buttons_enabled(window)
    assert deploy_enabled(window, CLUSTER)
    # The store equals the server's again (persisted resources, kind/id/version).
    qtbot.waitUntil(
        lambda: persisted(lea.controller.store.resources()) == persisted(server_get(site, "/snapshot")["resources"]),  # type: ignore[index]
        timeout=20_000,
    )
    # And writing works again, through the same connection.
    peer = next(p for p in controller.store.all(ResourceKind.PEER).values() if isinstance(p, PeerDescriptor))
    moved = peer.model_copy(update={"location": "moved after the restart"})
    result = run(qtbot, controller.connection.store_peer_descriptor(moved, expected_version=peer.version))
    qtbot.waitUntil(lambda: (controller.engine.revision or 0) >= result.revision, timeout=20_000)
    stored = controller.store.get(ResourceKind.PEER, peer.id)
    assert isinstance(stored, PeerDescriptor) and stored.location == "moved after the restart"


def test_event_log_and_history_over_the_network(
    qtbot: QtBot, site: Site, open_lea: Callable[[Site, str], RemoteLea]
) -> None:
    lea = open_lea(site, site.editor)
    window, controller = lea.window, lea.controller
    # Changes made elsewhere arrive in the live event log.
    log = window.event_log
    before = log.live.rowCount()
    peer = next(p for p in controller.store.all(ResourceKind.PEER).values() if isinstance(p, PeerDescriptor))
    for n in range(3):
        current = controller.store.get(ResourceKind.PEER, peer.id)
        assert isinstance(current, PeerDescriptor)
        updated = current.model_copy(update={"location": f"shelf {n}"})
        with httpx.Client(base_url=site.server.url, headers={"Authorization": f"Bearer {site.editor}"}) as http:
            response = http.put(
                f"/api/v1/peer/{peer.id}", content=updated.model_dump_json(),
                headers={"If-Match": f'"{current.version}"', "Content-Type": "application/json"},
            )
            assert response.status_code == 200, response.text
        revision = response.json()["revision"]
        qtbot.waitUntil(lambda r=revision: (controller.engine.revision or 0) >= r, timeout=20_000)  # type: ignore[misc]
    qtbot.waitUntil(lambda: log.live.rowCount() >= before + 3, timeout=10_000)
    newest = log.live.event_at(0)
    assert newest is not None and newest.id == peer.id and newest.actor == "erin"

    # The history of a cluster lists its stored events, fetched from the server.
    window.show_page(CLUSTERS_PAGE)
    row, data = cluster_row(window, CLUSTER)
    window.clusters.table.selectRow(row)
    qtbot.mouseClick(window.clusters.buttons["history"], Qt.MouseButton.LeftButton)
    assert window.stack.currentWidget() is log
    qtbot.waitUntil(lambda: "stored change" in log.history_title.text(), timeout=20_000)
    stored = server_get(site, f"/cluster/{data.cluster.id}/history")
    assert isinstance(stored, list) and stored
    assert log.history.rowCount() == len(stored)
    revisions = sorted(
        (e.revision for e in (log.history.event_at(i) for i in range(log.history.rowCount())) if e), reverse=True
    )
    assert revisions == sorted((e["revision"] for e in stored), reverse=True)
    assert f"History of cluster {CLUSTER}" in log.history_title.text()
    # The history of the peer changed above holds the three updates.
    started = time.monotonic()
    window.show_history(ResourceKind.PEER, peer.id, peer.name)
    qtbot.waitUntil(lambda: f"History of peer {peer.name}" in log.history_title.text()
                    and "stored change" in log.history_title.text(), timeout=20_000)
    shown = [log.history.event_at(i) for i in range(log.history.rowCount())]
    assert sum(1 for e in shown if e and e.actor == "erin") == 3
    assert time.monotonic() - started < 20
