"""Save a PNG of every page of the real window with demo data, for a reviewer to look at.

Written to tests/screenshots/ (git-ignored), or to $LEA_SCREENSHOT_DIR: `LEA_SCREENSHOT_DIR=docs/screenshots
make unit ARGS=tests/gui/test_screenshots.py` refreshes the ones in docs/.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from pathlib import Path
from uuid import UUID

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QLabel, QToolTip
from pytestqt.qtbot import QtBot

from lea_app.app import settings
from lea_app.connection.child import ChildConnection
from lea_app.controller import Controller
from lea_app.models.parameters import parameter_rows, summarise
from lea_app.views.bench_dialog import BenchSetupDialog
from lea_app.views.configuration_dialog import PeerConfigurationDialog
from lea_app.views.main_window import MainWindow
from resources.agent import CanSupport, Capabilities, Configure, TunnelType
from resources.cluster import ClusterDescriptor
from resources.configuration import (
    ParameterKind,
    ParameterPresent,
    ParameterReport,
    PeerConfiguration,
    PeerConfigurationState,
)
from resources.kinds import ResourceKind
from resources.peer import CanConfiguration, Device, EthernetConfiguration, NetworkInterface, PeerDescriptor
from resources.state import ClusterState, Deployed, Deploying
from tests.helpers.agent_client import RawAgent, agent_connection, applied
from tests.helpers.child import child_options
from tests.helpers.clusters_page import cluster_row, undeploy_confirmation
from tests.helpers.factories import make_cluster, make_peer
from tests.helpers.fake_connection import FakeBackend
from tests.helpers.qt import Lea, flushed, run

PAGES = ("dashboard", "peers", "clusters", "deployments", "event-log")


def screenshot_dir() -> Path:
    path = Path(os.environ.get("LEA_SCREENSHOT_DIR") or Path(__file__).parents[1] / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def distinct_colours(image: QImage) -> int:
    colours = set()
    for y in range(0, image.height(), 7):
        for x in range(0, image.width(), 7):
            colours.add(image.pixel(x, y))
    return len(colours)


def save(widget: object, path: Path) -> None:
    image = widget.grab().toImage()  # type: ignore[attr-defined]
    assert image.save(str(path)), f"could not write {path}"
    assert distinct_colours(image) > 20, f"{path.name} looks blank"


def save_dialog(qtbot: QtBot, dialog: object, path: Path) -> None:
    assert dialog is not None
    dialog.resize(dialog.sizeHint())  # type: ignore[attr-defined]
    qtbot.wait(300)
    save(dialog, path)
    dialog.close()  # type: ignore[attr-defined]


def qtbot_wait_partly_reported(qtbot: QtBot, controller: Controller, cluster_id: object) -> UUID:
    """A member of the cluster that has reported some of its parameters, not all (the view mid-deployment)."""
    found: list[UUID] = []

    def partly() -> bool:
        for configuration in controller.store.all(ResourceKind.PEER_CONFIGURATION).values():
            if not isinstance(configuration, PeerConfiguration) or configuration.cluster != cluster_id:
                continue
            summary = summarise(parameter_rows(configuration, _reports(controller, configuration.id)))
            if 2 <= summary.reached < summary.total - 2:
                found[:] = [configuration.id]
                return True
        return False

    qtbot.waitUntil(partly, timeout=30_000)
    return found[0]


def _reports(controller: Controller, peer_id: UUID) -> PeerConfigurationState | None:
    state = controller.store.get(ResourceKind.PEER_CONFIGURATION_STATE, peer_id)
    return state if isinstance(state, PeerConfigurationState) else None


def state_of(controller: Controller, cluster_id: object) -> object:
    state = controller.store.get(ResourceKind.CLUSTER_STATE, cluster_id)  # type: ignore[arg-type]
    return state.state if isinstance(state, ClusterState) else None


def connect_agent(
    qtbot: QtBot, connection: ChildConnection, agents: contextlib.ExitStack, peer: PeerDescriptor,
    underlay: str, version: str, can: CanSupport,
) -> RawAgent:
    """A raw agent for ``peer`` on the child's agent endpoint, kept connected by ``agents``."""
    token = run(qtbot, connection.create_peer_token(peer.id, peer.name))
    info = connection.process.info
    assert info is not None
    agent = agents.enter_context(agent_connection(info.url, token))
    agent.hello(peer.id, underlay=underlay, version=version, capabilities=Capabilities(
        tunnels=(TunnelType.GRETAP, TunnelType.VXLAN), can=can, underlay_mtu=1500,
    ))
    return agent


def add_real_benches(
    qtbot: QtBot, connection: ChildConnection, agents: contextlib.ExitStack
) -> tuple[PeerDescriptor, RawAgent]:
    """Two real (non-demo) benches next to the demo fleet: one with its agent online (kernel CAN),
    one offline."""
    online, offline = make_peer("bench-hil-07", can=True), make_peer("bench-hil-08")
    for peer in (online, offline):
        run(qtbot, connection.store_peer_descriptor(peer))
    return online, connect_agent(qtbot, connection, agents, online, "192.168.40.17", "0.1.0", CanSupport.KERNEL)


#: What a userspace agent with simulated ECU endpoints reports for each kind (as issue #12 says it does).
CAN_DETAILS = {
    ParameterKind.DEVICE_INTERFACE: "up",
    ParameterKind.ETHERNET_BRIDGE: "created",
    ParameterKind.GRE_INTERFACE: "gretap, mtu 1462",
    ParameterKind.INTERFACE_JOIN: "joined",
    ParameterKind.CAN_BRIDGE: "userspace frame hub",
    ParameterKind.CAN_LOCAL_ROUTE: "through the hub to the simulated ECU endpoint",
}
RELAY_METRICS = {
    "frames_sent": 1204, "frames_received": 1187, "datagrams_lost": 2, "datagrams_malformed": 0,
    "datagrams_out_of_order": 0,
}


def configure_of(agent: RawAgent, cluster: UUID) -> Configure:
    """The first configure for ``cluster`` (earlier ones, e.g. the empty one after the welcome, skipped)."""
    while True:
        message = agent.expect(Configure)
        if message.configuration.cluster == cluster:
            return message


def can_member_report(configuration: PeerConfiguration) -> tuple[ParameterReport, ...]:
    reports = []
    for parameter in configuration.parameters:
        if parameter.kind == ParameterKind.CAN_CONNECTION:
            state = ParameterPresent(detail="relay up, keepalives every 1 s", metrics=RELAY_METRICS)
        elif parameter.kind == ParameterKind.DEVICE_INTERFACE and "can" in parameter.value:
            state = ParameterPresent(detail=f"{parameter.value['interface']}: simulated ECU endpoint udp:0.0.0.0:30001")
        else:
            state = ParameterPresent(detail=CAN_DETAILS[parameter.kind])
        reports.append(ParameterReport(id=parameter.id, state=state))
    return tuple(reports)


def add_can_cluster(
    qtbot: QtBot, connection: ChildConnection, agents: contextlib.ExitStack, leader: PeerDescriptor,
    leader_agent: RawAgent,
) -> UUID:
    """A CAN cluster of two real benches, deployed through their (raw) agents: the member runs
    userspace CAN with a simulated ECU endpoint, and its relay reports frames and losses. Returns
    the member's id."""
    can_fd = CanConfiguration(
        bitrate=500_000, sample_point=0.8, fd=True, data_bitrate=2_000_000, data_sample_point=0.75
    )
    eth = NetworkInterface(id=uuid.uuid4(), name="eth0", configuration=EthernetConfiguration())
    can = NetworkInterface(id=uuid.uuid4(), name="can0", configuration=can_fd)
    member = PeerDescriptor(
        id=uuid.uuid4(), name="bench-hil-09", interfaces=(eth, can),
        devices=(Device(id=uuid.uuid4(), name="adas-camera", interface=eth.id),
                 Device(id=uuid.uuid4(), name="steering-ecu", interface=can.id)),
    )
    run(qtbot, connection.store_peer_descriptor(member))
    member_agent = connect_agent(qtbot, connection, agents, member, "192.168.40.23", "0.2.0", CanSupport.USERSPACE)
    cluster = make_cluster("hil-can-loop", leader, member)
    run(qtbot, connection.store_cluster_descriptor(cluster))
    run(qtbot, connection.store_cluster_deployment(cluster.id))
    lead = configure_of(leader_agent, cluster.id)
    leader_agent.report(lead.generation, applied(lead.configuration))
    mine = configure_of(member_agent, cluster.id)
    member_agent.report(mine.generation, can_member_report(mine.configuration))
    return member.id


def test_screenshot_every_page(
    qtbot: QtBot, aloop: asyncio.AbstractEventLoop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "demo"
    options = child_options(data_dir, demo=True, demo_delay_scale=0.6, extra_args=("--agent-timeout", "600"))
    connection = run(qtbot, ChildConnection.open(options))
    agents = contextlib.ExitStack()
    controller = Controller()
    window = MainWindow(controller, settings(), data_dir=str(data_dir), demo=True)
    qtbot.addWidget(window)
    window.show()
    window.resize(1280, 780)  # after the first show, which fits the window to the (800x600 offscreen) screen
    try:
        run(qtbot, controller.start(connection))
        qtbot.waitUntil(lambda: controller.live and len(controller.store.all(ResourceKind.PEER)) == 6, timeout=10_000)
        bench, bench_agent = add_real_benches(qtbot, connection, agents)
        qtbot.waitUntil(lambda: controller.store.get(ResourceKind.PEER_CONNECTION_STATE, bench.id) is not None)
        clusters = {
            c.name: c for c in controller.store.all(ResourceKind.CLUSTER).values() if isinstance(c, ClusterDescriptor)
        }
        telematics, adas = clusters["demo-telematics"], clusters["demo-adas-loop"]
        controller.deploy(telematics.id, telematics.name)
        qtbot.waitUntil(lambda: isinstance(state_of(controller, telematics.id), Deployed), timeout=30_000)
        controller.deploy(adas.id, adas.name)

        def halfway() -> bool:
            state = state_of(controller, adas.id)
            return isinstance(state, Deploying) and state.total > 0 and state.done >= state.total // 3

        qtbot.waitUntil(halfway, timeout=30_000)
        out = screenshot_dir()
        # The configuration of a member while the cluster deploys: some parameters reported, some not.
        member = qtbot_wait_partly_reported(qtbot, controller, adas.id)
        view = window.open_configuration(member)
        assert view is not None
        view.resize(1240, 470)
        save(view, out / "peer-configuration.png")
        view.close()
        for index, name in enumerate(PAGES):
            window.show_page(index)
            window.current_table_page() and window.current_table_page().model.flush()  # type: ignore[union-attr]
            qtbot.wait(120)
            if name == "peers":
                window.peers.select(bench.id)  # a real bench: Set up bench… is offered
                qtbot.wait(120)
            if name == "event-log":
                window.event_log.live.flush()
                window.event_log.live_table.selectRow(0)
                qtbot.wait(300)
            image = window.grab().toImage()
            path = out / f"{name}.png"
            assert image.save(str(path)), f"could not write {path}"
            assert path.stat().st_size > 10_000
            assert distinct_colours(image) > 20, f"{name} looks blank"
        # A CAN cluster's member, as a userspace agent reports it (added after the pages were taken).
        can_member = add_can_cluster(qtbot, connection, agents, bench, bench_agent)
        qtbot.waitUntil(lambda: _reports(controller, can_member) is not None, timeout=10_000)
        view = window.open_configuration(can_member)
        assert isinstance(view, PeerConfigurationDialog)
        qtbot.waitUntil(lambda: flushed(view.model).rowCount() > 0 and "userspace" in view.can.text(), timeout=10_000)
        view.resize(1360, 470)
        qtbot.wait(200)
        save(view, out / "peer-configuration-can.png")
        view.close()
        # Set up bench, first on this embedded backend (it accepts no agents: the dialog says so) ...
        window.show_page(PAGES.index("peers"))
        save_dialog(qtbot, window.open_bench_setup(bench.id), out / "bench-setup-disabled.png")
        # ... then on a backend that accepts agents (its token calls answered in memory).
        tokens = FakeBackend()
        tokens.agent_url = "https://lea.lab.example:8421"
        monkeypatch.setattr(ChildConnection, "agent_url", tokens.agent_url)  # the class: agent_url is a property
        for call in ("create_peer_token", "peer_tokens", "revoke_token"):
            monkeypatch.setattr(connection, call, getattr(tokens, call))
        dialog = window.open_bench_setup(bench.id)
        assert isinstance(dialog, BenchSetupDialog)
        qtbot.waitUntil(lambda: dialog.tokens_listed)
        dialog.create_button.click()
        qtbot.waitUntil(lambda: dialog.token is not None and dialog.tokens_table.rowCount() == 1)
        dialog.resize(dialog.sizeHint())
        qtbot.wait(300)
        save(dialog, out / "bench-setup.png")
        dialog.ways.setCurrentIndex(1)  # the systemd service
        qtbot.wait(200)
        save_dialog(qtbot, dialog, out / "bench-setup-systemd.png")
        peers = {p.name: p for p in controller.store.all(ResourceKind.PEER).values() if isinstance(p, PeerDescriptor)}
        editors = {
            "peer-editor": window.open_peer_editor(peers["demo-vehicle-01"].id),
            "cluster-editor": window.open_cluster_editor(clusters["demo-vehicle-e2e"].id),
        }
        invalid = window.open_peer_editor(None)
        assert invalid is not None
        invalid.name_edit.setText("-bench")  # type: ignore[attr-defined]
        invalid.location_edit.setText("Lab C")  # type: ignore[attr-defined]
        editors["peer-editor-invalid"] = invalid
        for name, editor in editors.items():
            assert editor is not None
            editor.resize(900, 640)
            qtbot.wait(200)
            image = editor.grab().toImage()
            assert image.save(str(out / f"{name}.png"))
            assert distinct_colours(image) > 20, f"{name} looks blank"
    finally:
        agents.close()
        window.force_close()
        run(qtbot, controller.close())


def test_screenshot_health_degraded_and_narrow(qtbot: QtBot, aloop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    """A deployed cluster with a member switched off (Degraded, under Need attention, the peer in red),
    the deployment news in the floating message bar, and the window at 1024x700."""
    data_dir = tmp_path / "demo"
    connection = run(qtbot, ChildConnection.open(child_options(data_dir, demo=True, demo_delay_scale=0.1)))
    controller = Controller()
    window = MainWindow(controller, settings(), data_dir=str(data_dir), demo=True)
    qtbot.addWidget(window)
    window.show()
    window.resize(1280, 780)
    try:
        run(qtbot, controller.start(connection))
        qtbot.waitUntil(lambda: controller.live and len(controller.store.all(ResourceKind.PEER)) == 6, timeout=10_000)
        clusters = {
            c.name: c for c in controller.store.all(ResourceKind.CLUSTER).values() if isinstance(c, ClusterDescriptor)
        }
        telematics, adas = clusters["demo-telematics"], clusters["demo-adas-loop"]
        controller.deploy(telematics.id, telematics.name)
        controller.deploy(adas.id, adas.name)
        for cluster in (telematics, adas):

            def deployed(c: ClusterDescriptor = cluster) -> bool:
                return isinstance(state_of(controller, c.id), Deployed)

            qtbot.waitUntil(deployed, timeout=30_000)
        member = next(m for m in controller.store.members(telematics.id) if m != telematics.leader)
        run(qtbot, connection.set_demo_peer_online(member, False))

        def degraded() -> bool:
            state = state_of(controller, telematics.id)
            return isinstance(state, Deployed) and state.health == "degraded"

        qtbot.waitUntil(degraded, timeout=10_000)
        out = screenshot_dir()
        window.show_page(PAGES.index("clusters"))
        window.clusters.model.flush()
        qtbot.waitUntil(lambda: "degraded" in window.message_bar.text, timeout=5_000)
        qtbot.wait(300)
        save(window, out / "clusters-degraded.png")
        window.show_page(PAGES.index("dashboard"))
        window.dashboard.refresh()
        qtbot.wait(200)
        save(window, out / "dashboard-attention.png")
        window.show_page(PAGES.index("peers"))
        window.peers.model.flush()
        qtbot.wait(200)
        save(window, out / "peers-needed-offline.png")
        window.message_bar.clear()
        window.resize(1024, 700)
        window.show_page(PAGES.index("clusters"))
        qtbot.wait(300)
        assert window.size().width() == 1024
        save(window, out / "window-1024x700.png")
    finally:
        window.close()
        run(qtbot, controller.close())


def test_screenshot_window_at_150_percent(tmp_path: Path) -> None:
    """The first window on a 1366x768 screen at 150 % scaling (911x512 logical pixels): on screen,
    status bar included (tests/gui/test_window_fit.py checks the geometry)."""
    from tests.gui.test_window_fit import probe

    path = screenshot_dir() / "window-150-percent.png"
    result = probe(tmp_path, (1366, 768), 1.5, screenshot=path)
    image = QImage(str(path))
    assert image.width() == 1366 or image.width() >= 1300  # grabbed at the device pixel ratio
    assert distinct_colours(image) > 20 and result["scale"] == 1.5
def test_screenshot_history_event_log_and_editors(
    qtbot: QtBot, aloop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    """A cluster's history after a deploy and an undeploy; the event log filtered, with a change's
    fields before and after; the editors as they open and after some input."""
    data_dir = tmp_path / "demo"
    connection = run(qtbot, ChildConnection.open(child_options(data_dir, demo=True, demo_delay_scale=0.05)))
    controller = Controller()
    window = MainWindow(controller, settings(), data_dir=str(data_dir), demo=True)
    qtbot.addWidget(window)
    window.show()
    window.resize(1280, 780)  # after the first show, which fits the window to the (800x600 offscreen) screen
    out = screenshot_dir()
    try:
        run(qtbot, controller.start(connection))
        qtbot.waitUntil(lambda: controller.live and len(controller.store.all(ResourceKind.PEER)) == 6, timeout=10_000)
        store = controller.store
        clusters = {c.name: c for c in store.all(ResourceKind.CLUSTER).values() if isinstance(c, ClusterDescriptor)}
        telematics = clusters["demo-telematics"]
        run(qtbot, connection.store_cluster_deployment(telematics.id))
        qtbot.waitUntil(lambda: isinstance(state_of(controller, telematics.id), Deployed), timeout=30_000)
        run(qtbot, connection.delete_cluster_deployment(telematics.id))
        peers = {p.name: p for p in store.all(ResourceKind.PEER).values() if isinstance(p, PeerDescriptor)}
        hil = peers["demo-hil-01"]
        result = run(qtbot, connection.store_peer_descriptor(hil.model_copy(update={"location": "Lab B, rack 4"})))
        qtbot.waitUntil(lambda: (controller.engine.revision or 0) >= result.revision, timeout=10_000)
        log = window.event_log
        # The event log, filtered to peers, with the change of the selected event.
        window.show_page(PAGES.index("event-log"))
        log.kind_combo.setCurrentIndex(log.kind_combo.findText("Peers"))
        log.filter.setText("hil-01")
        qtbot.waitUntil(lambda: log.live.event_filter.text == "hil-01", timeout=2_000)
        log.live_table.selectRow(0)
        qtbot.waitUntil(lambda: bool(log.change.changes) and log.history.rowCount() > 0, timeout=10_000)
        qtbot.wait(200)
        save(window, out / "event-log-filtered.png")
        # A cluster's history: created, deployed, undeployed, with who and when.
        log.filter.clear()
        log.kind_combo.setCurrentIndex(0)  # applies the cleared text too
        window.show_history(ResourceKind.CLUSTER, telematics.id, telematics.name)
        qtbot.waitUntil(lambda: "undeployed by" in log.history_title.text(), timeout=10_000)
        log.history_table.selectRow(0)
        qtbot.wait(200)
        save(window, out / "cluster-history.png")
        # The editors as they open (no errors yet) and after some input.
        cluster_editor = window.open_cluster_editor(None)
        peer_editor = window.open_peer_editor(None)
        assert cluster_editor is not None and peer_editor is not None
        for editor, name in ((cluster_editor, "cluster-editor-new"), (peer_editor, "peer-editor-new")):
            editor.resize(900, 640)
            qtbot.wait(200)
            save(editor, out / f"{name}.png")
        cluster_editor.name_edit.setText("hil loop")  # type: ignore[attr-defined]
        picker = cluster_editor.picker  # type: ignore[attr-defined]
        picker.filter.setText("hil")
        first = picker.item_for("demo-hil-01", next(iter(sorted(d.name for d in hil.devices))))
        assert first is not None
        first.setCheckState(0, Qt.CheckState.Checked)
        peer_editor.name_edit.setText("bench-12")  # type: ignore[attr-defined]
        row = peer_editor.interfaces.add_row()  # type: ignore[attr-defined]
        row.name_edit.setText("can0")
        row.type_combo.setCurrentIndex(row.type_combo.findData("can"))
        row.bitrate.setText("500k")
        row.sample_point.setText("0.875")
        for editor, name in ((cluster_editor, "cluster-editor-input"), (peer_editor, "peer-editor-input")):
            qtbot.wait(200)
            save(editor, out / f"{name}.png")
            editor.discard()  # type: ignore[attr-defined]
    finally:
        window.close()
        run(qtbot, controller.close())


def test_screenshot_undeploy_confirmation_and_row_menu(qtbot: QtBot, lea: Lea) -> None:
    """The undeploy confirmation naming the cluster and its benches; a deployed row's context menu;
    Deploy disabled with its reason for a cluster whose peers are taken."""
    out = screenshot_dir()
    window, page = lea.window, lea.window.clusters
    window.show_page(PAGES.index("clusters"))
    row, data = cluster_row(window, "demo-adas-loop")
    lea.controller.deploy(data.cluster.id, data.cluster.name)
    qtbot.waitUntil(lambda: isinstance(cluster_row(window, "demo-adas-loop")[1].status, Deployed), timeout=20_000)
    row, _ = cluster_row(window, "demo-adas-loop")
    page.table.selectRow(row)
    page.buttons["undeploy"].click()
    box = undeploy_confirmation(window)
    box.adjustSize()
    qtbot.wait(200)
    save(box, out / "undeploy-confirmation.png")
    box.reject()
    pos = page.table.visualRect(page.model.index(row, 0)).center()
    menu = page.context_menu_for(pos)
    menu.adjustSize()
    menu.show()
    qtbot.wait(100)
    image = menu.grab().toImage()
    assert image.save(str(out / "cluster-row-menu.png"))
    menu.close()
    taken, _ = cluster_row(window, "demo-vehicle-e2e")
    page.table.selectRow(taken)
    qtbot.wait(100)
    assert not page.commands["deploy"].isEnabled()
    save(window, out / "clusters-deploy-blocked.png")
    button = page.buttons["deploy"]
    QToolTip.showText(button.mapToGlobal(button.rect().bottomLeft()), button.toolTip(), button)  # as hovering does
    qtbot.waitUntil(lambda: tooltip() is not None, timeout=2_000)
    tip = tooltip()
    assert tip is not None and "demo-hil-01" in tip.text()
    save(tip, out / "deploy-blocked-tooltip.png")
    QToolTip.hideText()


def tooltip() -> QLabel | None:
    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, QLabel) and widget.objectName() == "qtooltip_label" and widget.isVisible():
            return widget
    return None
