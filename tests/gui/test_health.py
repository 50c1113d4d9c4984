"""Health is visible (issue #16): Degraded is a state of its own, counted under Need attention; status
has an icon as well as a colour; progress says what it counts; offline peers a deployment needs are
red; data is greyed "as of" its time while LEA is not live; deployments that finish or fail are
news, in the window and on the desktop; messages queue and never move the page.

LEA runs on a FakeBackend (tests/helpers/fake_connection.py): the test writes the backend's events.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import QSystemTrayIcon, QWidget
from pytestqt.qtbot import QtBot

from lea_app.app import settings
from lea_app.controller import Controller
from lea_app.models.resources import AMBER, GREEN, RED
from lea_app.models.status_icons import StatusIcon
from lea_app.models.table import STALE, ResourceTableModel
from lea_app.views.configuration_dialog import PeerConfigurationDialog
from lea_app.views.main_window import MainWindow
from lea_app.views.message_bar import MAX_WAITING_INFO, MessageBar
from resources.events import EventType
from resources.resource import AnyResource
from resources.state import ClusterState, Deployed, Deploying, Failed, Offline, Online, PeerConnectionState, Progress
from tests.helpers.fake_connection import FakeBackend
from tests.helpers.health_fleet import SINCE, HealthFleet, health_fleet
from tests.helpers.qt import run

DISPLAY, FOREGROUND, DECORATION, TOOLTIP = (
    Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ForegroundRole, Qt.ItemDataRole.DecorationRole,
    Qt.ItemDataRole.ToolTipRole,
)


@dataclass
class FakeLea:
    backend: FakeBackend
    controller: Controller
    window: MainWindow
    fleet: HealthFleet

    def put(self, *resources: AnyResource) -> None:
        self.backend.write([(EventType.UPDATED, r) for r in resources])


@pytest.fixture
def fake_lea(qtbot: QtBot, aloop: asyncio.AbstractEventLoop) -> Iterator[FakeLea]:
    fleet = health_fleet()
    backend = FakeBackend(ring_size=1000)
    backend.write([(EventType.CREATED, r) for r in fleet.resources])
    controller = Controller()
    window = MainWindow(controller, settings(), data_dir="(test)")
    qtbot.addWidget(window)
    window.show()
    window.resize(1280, 780)  # after the first show, which fits the window to the (800x600 offscreen) screen
    run(qtbot, controller.start(backend))
    qtbot.waitUntil(lambda: controller.live, timeout=5_000)
    for page in (window.peers, window.clusters, window.deployments):
        page.model.flush()
    yield FakeLea(backend, controller, window, fleet)
    window.close()
    run(qtbot, controller.close())


def cell(model: ResourceTableModel[Any], id: UUID, title: str, role: Qt.ItemDataRole = DISPLAY) -> Any:
    model.flush()
    row = model.row_of(id)
    assert row is not None, f"{id} is no row"
    column = [c.title for c in model.columns].index(title)
    return model.index(row, column).data(role)


def colour(brush: Any) -> str:
    assert isinstance(brush, QBrush)
    return str(brush.color().name())


# -- Degraded and the other states ---------------------------------------------------------
def test_a_degraded_cluster_is_a_state_of_its_own_with_its_reason_and_offline_benches(fake_lea: FakeLea) -> None:
    clusters = fake_lea.window.clusters.model
    adas = fake_lea.fleet.clusters["adas-loop"].id
    assert cell(clusters, adas, "State") == "Degraded"
    assert colour(cell(clusters, adas, "State", FOREGROUND)) == colour(AMBER)
    assert not cell(clusters, adas, "State", DECORATION).isNull()  # an icon as well as the colour
    assert cell(clusters, adas, "Reason") == "peer 'bench-04' offline"
    assert cell(clusters, adas, "State", TOOLTIP) == "peer 'bench-04' offline"
    assert cell(clusters, adas, "Progress") == "offline: bench-04"
    # Every state has an icon; each has its own (a shape, not only a colour).
    icons = {name: fake_lea.window.clusters.model.row_data(c.id) for name, c in fake_lea.fleet.clusters.items()}
    kinds = {name: clusters.columns[4].decoration(row) for name, row in icons.items()}  # type: ignore[misc]
    assert kinds == {
        "hil-loop": StatusIcon.OK, "adas-loop": StatusIcon.DEGRADED, "body-control": StatusIcon.BUSY,
        "telematics": StatusIcon.WAITING, "gateway-loop": StatusIcon.FAILED, "spare-loop": StatusIcon.IDLE,
    }
    # The deployments page says the same.
    deployments = fake_lea.window.deployments.model
    assert cell(deployments, adas, "State") == "Degraded"
    assert cell(deployments, adas, "Reason") == "peer 'bench-04' offline"


def test_progress_says_what_it_counts_and_waiting_what_it_waits_for(fake_lea: FakeLea) -> None:
    clusters, c = fake_lea.window.clusters.model, fake_lea.fleet.clusters
    assert cell(clusters, c["body-control"].id, "Progress") == "11 of 19 parameters"
    assert cell(clusters, c["telematics"].id, "Progress") == "waiting for bench-06"
    assert cell(clusters, c["hil-loop"].id, "Progress") == "every parameter applied"
    assert cell(clusters, c["spare-loop"].id, "Progress") == ""


def test_offline_peers_that_a_deployment_needs_are_red(fake_lea: FakeLea) -> None:
    peers, p = fake_lea.window.peers.model, fake_lea.fleet.peers
    needed, spare, online = p["bench-04"].id, p["bench-10"].id, p["bench-03"].id
    assert cell(peers, needed, "State") == "Offline"
    assert colour(cell(peers, needed, "State", FOREGROUND)) == colour(RED)
    assert "adas-loop" in cell(peers, needed, "State", TOOLTIP)
    # bench-10 leads spare-loop, which is not deployed: offline, and nothing needs it.
    assert colour(cell(peers, spare, "State", FOREGROUND)) != colour(RED)
    assert colour(cell(peers, online, "State", FOREGROUND)) == colour(GREEN)
    row = peers.row_data(needed)
    assert row is not None and row.state_icon == StatusIcon.NEEDED_OFFLINE


def test_degraded_counts_under_need_attention_and_the_offline_card_says_what_is_true(
    qtbot: QtBot, fake_lea: FakeLea
) -> None:
    dashboard = fake_lea.window.dashboard
    dashboard.refresh()
    _, _, _, by_state = dashboard.counts()
    assert by_state["degraded"] == 1 and by_state["deployed"] == 1  # hil-loop only: adas-loop is degraded
    assert dashboard.clusters_card.value.text() == "1"
    assert "1 more deployed but degraded" in dashboard.clusters_card.detail.full_text()
    assert dashboard.attention_card.value.text() == "3"  # failed, degraded, waiting
    lines = dashboard.attention_card.detail.full_text().split("\n")
    assert lines[0] == "1 failed, 1 degraded, 1 waiting"
    assert lines[1].startswith("• gateway-loop: failed — GreInterface")
    assert lines[2] == "• adas-loop: degraded — peer 'bench-04' offline"
    assert lines[3] == "• telematics: waiting — peer 'bench-06' offline"
    assert "#b3261e" in dashboard.attention_card.value.styleSheet()
    # Three peers are offline; two of them are needed by deployed clusters (adas-loop, telematics).
    assert dashboard.offline_card.value.text() == "3"
    assert dashboard.offline_card.detail.full_text() == "2 needed by a deployed cluster: bench-04, bench-06"
    assert "#b3261e" in dashboard.offline_card.value.styleSheet()
    # What the cards say never changes their height: the table below stays where it is.
    table_at = dashboard.table.mapTo(dashboard, dashboard.table.rect().topLeft())
    detail = dashboard.attention_card.detail
    shown = detail.text().split("\n")  # wrapped and cut to the lines there are and the card's width
    assert len(shown) == detail.lines_shown
    assert all(detail.fontMetrics().horizontalAdvance(line) <= detail.width() for line in shown)
    assert shown[0] == "1 failed, 1 degraded, 1 waiting" and shown[1].startswith("• gateway-loop: failed")
    # Once they are back (and the spare bench too) the card says so.
    p = fake_lea.fleet.peers
    fake_lea.put(*(
        PeerConnectionState(id=p[n].id, state=Online(remote_host="10.0.0.9", since=SINCE))
        for n in ("bench-04", "bench-06")
    ))
    qtbot.waitUntil(lambda: dashboard.offline_card.value.text() == "1", timeout=3_000)
    assert dashboard.offline_card.detail.full_text() == "no deployed cluster needs them"
    fake_lea.put(PeerConnectionState(id=p["bench-10"].id, state=Online(remote_host="10.0.0.10", since=SINCE)))
    qtbot.waitUntil(lambda: dashboard.offline_card.detail.full_text() == "every peer is connected", timeout=3_000)
    for name in ("gateway-loop", "adas-loop", "telematics"):  # nothing needs attention any more
        fake_lea.put(ClusterState(id=fake_lea.fleet.clusters[name].id, state=Deployed()))
    qtbot.waitUntil(lambda: dashboard.attention_card.value.text() == "0", timeout=3_000)
    assert dashboard.table.mapTo(dashboard, dashboard.table.rect().topLeft()) == table_at


# -- stale while not live ------------------------------------------------------------------
def test_while_disconnected_the_data_is_greyed_and_says_as_of_when(qtbot: QtBot, fake_lea: FakeLea) -> None:
    window, controller = fake_lea.window, fake_lea.controller
    hil = fake_lea.fleet.clusters["hil-loop"].id
    assert colour(cell(window.clusters.model, hil, "State", FOREGROUND)) == colour(GREEN)
    assert not window.clusters.stale_label.isVisible()
    configuration = window.open_configuration(fake_lea.fleet.peers["bench-01"].id)
    assert isinstance(configuration, PeerConfigurationDialog) and not configuration.model.stale
    gate = asyncio.Event()
    fake_lea.backend.subscribe_gate = gate  # reconnecting hangs until the test lets it through
    fake_lea.backend.drop()
    qtbot.waitUntil(lambda: controller.engine.state == "resuming", timeout=5_000)
    window.show_page(2)
    assert controller.stale
    for model in (window.clusters.model, window.peers.model, window.deployments.model, window.dashboard.active):
        assert model.stale
    log = window.event_log.live
    assert log.stale and window.event_log.history.stale
    if log.rowCount():
        assert colour(log.data(log.index(0, 0), FOREGROUND)) == colour(STALE)
    # Not green as if live: every cell greyed, the icons too.
    assert colour(cell(window.clusters.model, hil, "State", FOREGROUND)) == colour(STALE)
    assert colour(cell(window.clusters.model, hil, "Name", FOREGROUND)) == colour(STALE)
    peer = fake_lea.fleet.peers["bench-01"].id
    assert colour(cell(window.peers.model, peer, "State", FOREGROUND)) == colour(STALE)
    as_of = re.compile(r"as of \d\d:\d\d:\d\d")
    assert window.clusters.stale_label.isVisible() and as_of.search(window.clusters.stale_label.text())
    assert as_of.search(window.sync_label.text())
    assert window.dashboard.stale_label.text() == window.clusters.stale_label.text()
    assert "#9a9a9a" in window.dashboard.peers_card.value.styleSheet()
    assert configuration.model.stale
    gate.set()
    fake_lea.backend.subscribe_gate = None
    qtbot.waitUntil(lambda: controller.live, timeout=10_000)
    assert not controller.stale and not window.clusters.model.stale and not window.event_log.live.stale
    assert colour(cell(window.clusters.model, hil, "State", FOREGROUND)) == colour(GREEN)
    assert not window.clusters.stale_label.isVisible() and not configuration.model.stale
    assert not as_of.search(window.sync_label.text())
    configuration.close()


# -- news: finished, failed ----------------------------------------------------------------
@pytest.fixture
def desktop(fake_lea: FakeLea, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The desktop notifications shown (title, text), on a desktop with a tray, while the user looks
    elsewhere (LEA's window is not the active one)."""
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: True))
    monkeypatch.setattr(QSystemTrayIcon, "show", lambda self: None)
    monkeypatch.setattr(QSystemTrayIcon, "showMessage", lambda self, title, text, *_: shown.append((title, text)))
    monkeypatch.setattr(fake_lea.window, "isActiveWindow", lambda: False)
    return shown


def test_a_finished_or_failed_deployment_is_news_in_the_window_and_on_the_desktop(
    qtbot: QtBot, fake_lea: FakeLea, desktop: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = desktop
    bar = fake_lea.window.message_bar
    fake_lea.window.show_message("info", "Connected to fake connection")
    fake_lea.window.show_message("info", "Deployment of 'body-control' requested")  # what the click said
    body = fake_lea.fleet.clusters["body-control"]
    p = fake_lea.fleet.peers
    per_peer = {p["bench-05"].id: Progress(done=10, total=10), p["bench-07"].id: Progress(done=9, total=9)}
    fake_lea.put(ClusterState(id=body.id, state=Deploying(done=19, total=19, peers=per_peer)))
    fake_lea.put(ClusterState(id=body.id, state=Deployed()))
    finished = "Cluster 'body-control' deployed: 19 parameters on 2 benches"
    qtbot.waitUntil(lambda: bar.text == finished, timeout=6_000)
    assert bar.pending() == []  # the news replaced its "requested", which waited
    assert bar.isVisible() and bar.level == "info"
    assert shown == [("Deployment finished", finished)]
    hil = fake_lea.fleet.clusters["hil-loop"]
    fake_lea.put(ClusterState(id=hil.id, state=Failed(peer=p["bench-02"].id, reason="EthernetBridge br-lea: busy")))
    failed = "Deployment of 'hil-loop' failed on bench-02: EthernetBridge br-lea: busy"
    qtbot.waitUntil(lambda: bar.text == failed, timeout=3_000)
    assert bar.level == "error"  # before the info message, which waits behind it
    assert [m.text for m in bar.pending()] == [finished]
    assert shown[-1] == ("Deployment failed", failed)
    # Degraded, and healthy again.
    fake_lea.put(
        PeerConnectionState(id=p["bench-05"].id, state=Offline()),
        ClusterState(id=body.id, state=Deployed(health="degraded", reason="peer 'bench-05' offline",
                                                peers=(p["bench-05"].id,))),
    )
    qtbot.waitUntil(lambda: shown[-1][0] == "Cluster degraded", timeout=3_000)
    assert shown[-1][1] == "Cluster 'body-control' is degraded: peer 'bench-05' offline"
    # While the window is active, the desktop is left alone: the window's own bar says it.
    monkeypatch.setattr(fake_lea.window, "isActiveWindow", lambda: True)
    count = len(shown)
    fake_lea.put(ClusterState(id=body.id, state=Deployed()))
    healthy = "Cluster 'body-control' is healthy again: every member is back"
    qtbot.waitUntil(lambda: any(m.text == healthy for m in bar.pending()) or bar.text == healthy, timeout=3_000)
    assert len(shown) == count


def test_many_deployments_failing_at_once_are_one_message_and_one_notification(
    qtbot: QtBot, fake_lea: FakeLea, desktop: list[tuple[str, str]]
) -> None:
    shown = desktop
    bar = fake_lea.window.message_bar
    names = ("hil-loop", "adas-loop", "body-control", "telematics")
    for name in names:
        fake_lea.window.show_message("info", f"Deployment of '{name}' requested")
    p = fake_lea.fleet.peers
    fake_lea.put(*(
        ClusterState(id=fake_lea.fleet.clusters[name].id, state=Failed(peer=p["bench-01"].id, reason="busy"))
        for name in names
    ))
    failed = "4 deployments failed (the event log says why): 'adas-loop', 'body-control', 'hil-loop' and 1 more"
    qtbot.waitUntil(lambda: bar.text == failed, timeout=3_000)
    assert bar.level == "error" and bar.pending() == []  # every "requested" it answers is withdrawn
    assert shown == [("Deployments failed", failed)]


def test_the_first_snapshot_is_no_news(fake_lea: FakeLea) -> None:
    """What LEA finds at start-up (a failed cluster, a degraded one) is shown in the tables, not announced."""
    bar = fake_lea.window.message_bar
    assert bar.isHidden() and bar.pending() == []


# -- the message bar -----------------------------------------------------------------------
def test_messages_queue_errors_first_and_repeats_are_dropped(qtbot: QtBot) -> None:
    host = QWidget()
    qtbot.addWidget(host)
    host.resize(900, 500)
    host.show()
    bar = MessageBar(queued=True, host=host)
    bar.show_message("info", "first")
    bar.show_message("info", "second")
    bar.show_message("info", "second")  # said already
    assert bar.text == "first" and [m.text for m in bar.pending()] == ["second"]
    assert bar.more.text() == "+1 more" and bar.more.isVisible()
    bar.show_message("warning", "careful")  # a warning goes first; the info shown waits again
    assert bar.text == "careful" and [m.text for m in bar.pending()] == ["first", "second"]
    bar.show_message("error", "broken")  # an error goes before the warning
    assert bar.text == "broken" and bar.level == "error"
    assert [m.text for m in bar.pending()] == ["careful", "first", "second"]
    bar.show_message("error", "also broken")  # behind the error shown, before the warning
    assert [m.text for m in bar.pending()] == ["also broken", "careful", "first", "second"]
    bar.dismiss("also broken")
    bar.dismiss_current()
    assert bar.text == "careful"
    bar.dismiss("first")  # no longer true: withdrawn from the queue
    assert [m.text for m in bar.pending()] == ["second"]
    bar.dismiss_level("warning")
    assert bar.text == "second" and bar.pending() == [] and not bar.more.isVisible()
    # An info message with nothing behind it fades by itself.
    with qtbot.waitSignal(bar._timer.timeout, timeout=8_000):
        pass
    assert bar.isHidden()


def test_at_most_a_few_info_messages_wait_the_oldest_goes_first(qtbot: QtBot) -> None:
    host = QWidget()
    qtbot.addWidget(host)
    bar = MessageBar(queued=True, host=host)
    bar.show_message("info", "shown")
    bar.show_message("error", "broken")  # errors are never pushed out
    for i in range(MAX_WAITING_INFO + 3):
        bar.show_message("info", f"news {i}")
    assert bar.text == "broken"
    assert [m.text for m in bar.pending()] == [f"news {i}" for i in range(3, MAX_WAITING_INFO + 3)]
    assert bar.more.text() == f"+{MAX_WAITING_INFO} more"


def test_a_message_shifts_nothing_on_the_page(qtbot: QtBot, fake_lea: FakeLea) -> None:
    window = fake_lea.window
    window.show_page(2)
    page = window.clusters
    qtbot.wait(50)
    watched: list[QWidget] = [page.table, page.filter, *page.buttons.values(), window.nav, page]

    def geometries() -> list[QRect]:
        return [QRect(w.mapTo(window, w.rect().topLeft()), w.size()) for w in watched]

    before = geometries()
    window.show_message("error", "Peer 'bench-03' is already in deployed cluster 'adas-loop': " + "long words " * 30)
    qtbot.waitUntil(window.message_bar.isVisible)
    qtbot.wait(50)
    assert geometries() == before
    bar = window.message_bar
    # It floats over the bottom of the pages, inside them, above the page's widgets.
    area = QRect(window.stack.mapTo(window, window.stack.rect().topLeft()), window.stack.size())
    placed = QRect(bar.mapTo(window, bar.rect().topLeft()), bar.size())
    assert area.contains(placed) and placed.height() >= bar.minimumSizeHint().height()
    assert placed.bottom() > area.center().y()  # at the bottom, not over the heading and the filter
    # On top of whichever page is shown (a page switch raises the page).
    for index in (1, 2):
        window.show_page(index)
        qtbot.wait(20)
        centre = window.stack.mapFromGlobal(bar.mapToGlobal(bar.rect().center()))
        found = window.stack.childAt(centre)
        assert found is not None and (found is bar or bar.isAncestorOf(found)), found
    window.message_bar.dismiss_current()
    qtbot.wait(50)
    assert geometries() == before
