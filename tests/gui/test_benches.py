"""Real benches in LEA (issue #11): the agent connection on the Peers page, Set up bench, the
per-peer configuration view and an undeploy that waits for offline benches.

Driven by a FakeBackend (tests/helpers/fake_connection.py) behind the real Controller, so each test
says which answers the backend gives: agent_url set or not, tokens, errors.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from lea_app.app import settings
from lea_app.connection.base import Identity, PeerToken
from lea_app.controller import Controller
from lea_app.models.bench_setup import joined
from lea_app.models.configuration import PeerConfigurationModel
from lea_app.models.resources import GREY, ClustersModel, DeploymentsModel, PeersModel
from lea_app.models.table import ResourceTableModel
from lea_app.sync.store import Store
from lea_app.views.bench_dialog import BenchSetupDialog
from lea_app.views.configuration_dialog import PeerConfigurationDialog
from lea_app.views.main_window import MainWindow
from lea_app.views.pages import PeersPage
from resources.agent import CanSupport, Capabilities, TunnelType
from resources.cluster import ClusterDeployment
from resources.configuration import (
    Parameter,
    ParameterError,
    ParameterKind,
    ParameterPresent,
    ParameterReport,
    PeerConfiguration,
    PeerConfigurationState,
    Target,
)
from resources.errors import LeaError
from resources.events import Event, EventType, StateSnapshot
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.resource import AnyResource
from resources.state import AgentInfo, ClusterState, Failed, Offline, Online, PeerConnectionState, Undeploying
from tests.helpers.factories import make_cluster, make_peer
from tests.helpers.fake_connection import FakeBackend, make_event
from tests.helpers.qt import Lea, flushed, run

URL = "https://lea.lab.example:8421"
SINCE = datetime(2026, 12, 2, 6, 30, tzinfo=UTC)


def text(model: ResourceTableModel[Any], id: UUID, title: str, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
    model.flush()
    row = model.row_of(id)
    assert row is not None, f"{id} is no row"
    column = [c.title for c in model.columns].index(title)
    return model.index(row, column).data(role)


def online(peer: PeerDescriptor, host: str, agent: AgentInfo | None, since: datetime = SINCE) -> PeerConnectionState:
    return PeerConnectionState(id=peer.id, state=Online(remote_host=host, since=since, agent=agent))


AGENT = AgentInfo(version="0.1.0", capabilities=Capabilities(tunnels=(TunnelType.VXLAN,), underlay_mtu=1500))


@dataclass
class Bench:
    controller: Controller
    backend: FakeBackend
    real: PeerDescriptor  # online with an agent
    demo: PeerDescriptor


@pytest.fixture
def bench(qtbot: QtBot, aloop: asyncio.AbstractEventLoop) -> Iterator[Bench]:
    """The real Controller, live on a FakeBackend that holds a real bench (online) and a demo one."""
    backend = FakeBackend()
    backend.role = "admin"
    backend.agent_url = URL
    real, demo = make_peer("bench-07"), make_peer("demo-01", demo=True)
    backend.write([
        (EventType.CREATED, real), (EventType.CREATED, demo),
        (EventType.CREATED, online(real, "10.0.0.7", AGENT)), (EventType.CREATED, online(demo, "demo", None)),
    ])
    controller = Controller()
    run(qtbot, controller.start(backend))
    qtbot.waitUntil(lambda: controller.live, timeout=10_000)
    yield Bench(controller, backend, real, demo)
    run(qtbot, controller.close())


@pytest.fixture
def holder(qapp: Any) -> Iterator[QObject]:
    parent = QObject()
    yield parent
    parent.deleteLater()


# -- the Peers page --------------------------------------------------------------------------
def test_the_peers_table_shows_each_real_benchs_agent_and_labels_demo_benches(qtbot: QtBot, holder: QObject) -> None:
    real, demo, offline = make_peer("bench-07"), make_peer("demo-01", demo=True), make_peer("bench-08")
    gretap = AgentInfo(version="0.2.0", capabilities=Capabilities(
        tunnels=(TunnelType.GRETAP, TunnelType.VXLAN), can=CanSupport.KERNEL, underlay_mtu=9000
    ))
    store = Store()
    store.apply_snapshot(StateSnapshot(epoch="e", revision=0, resources=(
        real, demo, offline, online(real, "10.0.0.7", gretap), online(demo, "192.0.2.1", None),
    )))
    model = PeersModel(store)
    model.setParent(holder)
    model.refresh_all()
    since = SINCE.astimezone().strftime("%d %b %H:%M")
    assert [text(model, real.id, t) for t in ("State", "Online since", "Underlay", "Agent")] == [
        "Online", since, "10.0.0.7 · MTU 9000", "0.2.0 · gretap, vxlan",
    ]
    tooltip = text(model, real.id, "Agent", Qt.ItemDataRole.ToolTipRole)
    assert "Tunnel types: gretap, vxlan" in tooltip and "CAN: kernel" in tooltip and "Underlay MTU: 9000" in tooltip
    assert text(model, demo.id, "Name") == "demo-01 (demo)"
    assert text(model, demo.id, "Agent") == "demo simulation"
    assert [text(model, offline.id, t) for t in ("State", "Online since", "Underlay", "Agent", "CAN")] == [
        "Offline", "", "", "", "",
    ]

    # The agent reconnects later, from another address: the row follows the store.
    later = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    store.apply_events([_put(store, online(real, "10.0.1.7", AGENT, later))])
    assert text(model, real.id, "Underlay") == "10.0.1.7 · MTU 1500"
    assert text(model, real.id, "Agent") == "0.1.0 · vxlan"
    assert text(model, real.id, "CAN") == "none"  # AGENT announced no CAN

    # Sorted inside the model by when the peer came online; offline peers last.
    column = [c.title for c in model.columns].index("Online since")
    model.sort(column, Qt.SortOrder.AscendingOrder)
    assert model.ids() == [demo.id, real.id, offline.id]


def test_the_peers_table_shows_each_benchs_can_capability(qtbot: QtBot, holder: QObject) -> None:
    benches = {can: make_peer(f"bench-{can.value}") for can in CanSupport}
    demo, silent = make_peer("demo-02", demo=True), make_peer("bench-silent")
    store = Store()
    store.apply_snapshot(StateSnapshot(epoch="e", revision=0, resources=(
        *benches.values(), demo, silent,
        *(online(peer, "10.0.0.9", AgentInfo(version="0.2.0", capabilities=Capabilities(can=can)))
          for can, peer in benches.items()),
        online(demo, "demo", None), online(silent, "10.0.0.10", None),
    )))
    model = PeersModel(store)
    model.setParent(holder)
    model.refresh_all()
    assert {can: text(model, peer.id, "CAN") for can, peer in benches.items()} == {
        CanSupport.KERNEL: "kernel", CanSupport.USERSPACE: "userspace", CanSupport.NONE: "none",
    }
    tip = {can: text(model, peer.id, "CAN", Qt.ItemDataRole.ToolTipRole) for can, peer in benches.items()}
    assert "simulated ECU endpoints" in tip[CanSupport.USERSPACE]
    assert "refuses every CAN parameter" in tip[CanSupport.NONE]
    assert "cangw" in tip[CanSupport.KERNEL]
    # A demo bench's CAN is a simulation, and says so (in grey, like its agent column).
    assert text(model, demo.id, "CAN") == "simulated"
    assert "simulated" in text(model, demo.id, "CAN", Qt.ItemDataRole.ToolTipRole)
    assert text(model, demo.id, "CAN", Qt.ItemDataRole.ForegroundRole) == GREY
    assert text(model, silent.id, "CAN") == "unknown"
    # Sorted inside the model like every column.
    model.sort([c.title for c in model.columns].index("CAN"), Qt.SortOrder.AscendingOrder)
    assert [text(model, i, "CAN") for i in model.ids()] == sorted(
        ["kernel", "userspace", "none", "simulated", "unknown"]
    )


def _put(store: Store, resource: AnyResource) -> Event:
    """The event that stores ``resource`` (created or updated), to apply to ``store``."""
    exists = store.get(resource.kind, resource.id) is not None
    return make_event("e", 1, EventType.UPDATED if exists else EventType.CREATED, resource)


def test_set_up_bench_is_offered_to_admins_for_real_benches_only(qtbot: QtBot, bench: Bench) -> None:
    page = PeersPage(bench.controller)
    qtbot.addWidget(page)
    page.model.refresh_all()
    page.select(bench.demo.id)
    assert not page.buttons["bench"].isEnabled()
    assert "demo" in page.buttons["bench"].toolTip()
    assert page.buttons["configuration"].isEnabled()  # a demo bench has a configuration too
    page.select(bench.real.id)
    assert page.buttons["bench"].isEnabled()
    with qtbot.waitSignal(page.bench_setup_requested, timeout=1_000) as asked:
        page.buttons["bench"].click()
    assert asked.args == [bench.real.id]

    bench.controller.identity = Identity(name="erin", role="editor")
    bench.controller.identity_changed.emit()
    assert not page.buttons["bench"].isEnabled()
    assert "admin" in page.buttons["bench"].toolTip()


def open_setup(qtbot: QtBot, bench: Bench) -> BenchSetupDialog:
    dialog = BenchSetupDialog(bench.controller, bench.real)
    qtbot.addWidget(dialog)
    dialog.show()
    if bench.backend.agent_url is not None:
        qtbot.waitUntil(lambda: dialog.tokens_listed, timeout=5_000)
    return dialog


def test_set_up_bench_creates_the_token_once_and_shows_exactly_what_to_run(qtbot: QtBot, bench: Bench) -> None:
    bench.backend.bench_tokens = [PeerToken(name="bench-07", peer_id=bench.real.id, created_at="2026-12-01")]
    dialog = open_setup(qtbot, bench)
    qtbot.waitUntil(lambda: dialog.tokens_table.rowCount() == 1, timeout=5_000)
    assert dialog.token_name() == "bench-07-2"  # the bench's name is taken by its older token
    peer_id = bench.real.id
    command = f"lea-peer run --backend {URL} --peer-id {peer_id} --token-file /etc/lea-peer/bench-07-2.token"
    assert joined(dialog.run_box.text()) == command
    unit = joined(dialog.unit_box.text()).splitlines()
    assert "LoadCredential=token:/etc/lea-peer/bench-07-2.token" in unit
    run_line = f"lea-peer run --backend {URL} --peer-id {peer_id} --token-file ${{CREDENTIALS_DIRECTORY}}/token"
    assert f"ExecStart=/usr/bin/{run_line}" in unit
    assert not dialog.warning.isVisible() and not dialog.token_box.copy_button.isEnabled()

    dialog.create_button.click()
    qtbot.waitUntil(lambda: dialog.token is not None, timeout=5_000)
    secret = bench.backend.secrets["bench-07-2"]
    assert dialog.token == secret
    assert [t.peer_id for t in bench.backend.bench_tokens if t.name == "bench-07-2"] == [peer_id]
    assert secret in dialog.token_box.text()
    assert "/etc/lea-peer/bench-07-2.token" in dialog.token_box.text()
    assert dialog.warning.isVisible() and "shown only now" in dialog.warning.text()
    assert not dialog.create_button.isEnabled() and dialog.name_edit.isReadOnly()  # one token per dialog
    qtbot.waitUntil(lambda: dialog.tokens_table.rowCount() == 2, timeout=5_000)

    for box in (dialog.token_box, dialog.run_box, dialog.unit_box):
        box.copy_button.click()
        assert QGuiApplication.clipboard().text() == box.text()
    assert joined(QGuiApplication.clipboard().text()) == joined(dialog.unit_box.text())


def test_a_name_the_backend_would_refuse_is_caught_and_a_refusal_is_shown(qtbot: QtBot, bench: Bench) -> None:
    dialog = open_setup(qtbot, bench)
    qtbot.keyClicks(dialog.name_edit, "/x")
    assert dialog.name_problem.isVisible() and not dialog.create_button.isEnabled()
    assert "<token-name>" in dialog.run_box.text()
    dialog.name_edit.clear()
    qtbot.keyClicks(dialog.name_edit, "bench-07")
    assert dialog.create_button.isEnabled()

    bench.backend.token_errors = [LeaError("the token store is read-only")]
    dialog.create_button.click()
    qtbot.waitUntil(lambda: dialog.message.isVisible(), timeout=5_000)
    assert dialog.message.label.text() == "Could not create the token: the token store is read-only"
    assert dialog.token is None and dialog.create_button.isEnabled() and not dialog.name_edit.isReadOnly()
    assert bench.backend.bench_tokens == []


def test_without_an_agent_url_the_dialog_says_how_to_enable_agents_and_creates_nothing(
    qtbot: QtBot, bench: Bench
) -> None:
    bench.backend.agent_url = None
    dialog = open_setup(qtbot, bench)
    assert dialog.hint.isVisible()
    assert "lea --agents-listen HOST:PORT" in dialog.hint.text()
    assert not hasattr(dialog, "create_button")
    qtbot.wait(50)
    assert bench.backend.bench_tokens == [] and not dialog.message.isVisible()  # nothing was even asked


def test_a_benchs_token_is_revoked_after_a_confirmation(qtbot: QtBot, bench: Bench) -> None:
    other = uuid.uuid4()
    bench.backend.bench_tokens = [
        PeerToken(name="bench-07", peer_id=bench.real.id, created_at="2026-12-01"),
        PeerToken(name="bench-99", peer_id=other, created_at="2026-12-01"),
    ]
    dialog = open_setup(qtbot, bench)
    qtbot.waitUntil(lambda: dialog.tokens_table.rowCount() == 1, timeout=5_000)  # only this bench's
    assert not dialog.revoke_button.isEnabled()
    dialog.tokens_table.selectRow(0)
    assert dialog.selected_token() == "bench-07"
    dialog.revoke_button.click()
    box = dialog.confirmation
    assert isinstance(box, QMessageBox) and box.text() == "Revoke token 'bench-07' of bench 'bench-07'?"
    revoke = next(b for b in box.buttons() if b.text() == "Revoke")
    revoke.click()
    qtbot.waitUntil(lambda: dialog.tokens_table.rowCount() == 0, timeout=5_000)
    assert [t.name for t in bench.backend.bench_tokens] == ["bench-99"]
    assert dialog.message.label.text() == "Token 'bench-07' revoked."


# -- the configuration view ------------------------------------------------------------------
def test_the_configuration_view_shows_every_parameter_and_follows_the_reports_live(
    qtbot: QtBot, bench: Bench
) -> None:
    peer = bench.real
    other = make_peer("bench-08")
    cluster = make_cluster("hil-loop", peer, other)
    bridge = Parameter(id=uuid.uuid4(), kind=ParameterKind.ETHERNET_BRIDGE, target=Target.PRESENT,
                       value={"name": "br-lea"})
    tunnel = Parameter(id=uuid.uuid4(), kind=ParameterKind.GRE_INTERFACE, target=Target.PRESENT,
                       dependencies=(bridge.id,), value={
                           "name": "gre-1", "local": "10.0.0.7", "remote": "10.0.0.8",
                           "encapsulation": "vxlan", "vni": 4711, "mtu": 1450})
    bench.backend.write([(EventType.CREATED, other), (EventType.CREATED, cluster)])
    dialog = PeerConfigurationDialog(bench.controller, peer.id)
    qtbot.addWidget(dialog)
    dialog.show()
    model = dialog.model
    assert model.rowCount() == 0 and "No configuration" in dialog.summary.text()

    bench.backend.write([(EventType.CREATED, PeerConfiguration(id=peer.id, cluster=cluster.id,
                                                               parameters=(tunnel, bridge)))])
    qtbot.waitUntil(lambda: flushed(model).rowCount() == 2, timeout=5_000)
    assert [model.index(0, c).data() for c in range(model.columnCount())] == [
        "1", "Ethernet bridge", "br-lea", "Present", "Not reported", "", "",
    ]
    assert text(model, tunnel.id, "Value") == "vxlan vni 4711 gre-1: 10.0.0.7 -> 10.0.0.8, mtu 1450"
    assert "Cluster <b>hil-loop</b>" in dialog.status.text() and "Bench online" in dialog.status.text()

    bench.backend.write([(EventType.CREATED, PeerConfigurationState(id=peer.id, parameters=(
        ParameterReport(id=bridge.id, state=ParameterPresent(detail="created")),
        ParameterReport(id=tunnel.id, state=ParameterError(reason="vxlan: underlay 10.0.0.8 unreachable")),
    )))])
    qtbot.waitUntil(lambda: text(model, tunnel.id, "State") == "Error", timeout=5_000)
    assert text(model, tunnel.id, "Detail") == "vxlan: underlay 10.0.0.8 unreachable"
    assert text(model, bridge.id, "Detail") == "created"
    assert dialog.summary.text() == "<b>1 of 2 parameters as wanted, 1 error</b>"
    # Sorted by State, errors come first.
    model.sort([c.title for c in model.columns].index("State"))
    assert model.ids() == [tunnel.id, bridge.id]


def can_configuration(peer: PeerDescriptor, cluster: UUID) -> tuple[PeerConfiguration, dict[str, Parameter]]:
    """A CAN member's parameters as the backend computes them (values of the issue #12 table)."""
    def p(kind: ParameterKind, value: dict[str, str | int | bool], *deps: Parameter) -> Parameter:
        return Parameter(id=uuid.uuid4(), kind=kind, target=Target.PRESENT, dependencies=tuple(d.id for d in deps),
                         value=value)

    device = p(ParameterKind.DEVICE_INTERFACE, {
        "interface": "can1", "can": "can", "bitrate": 500_000, "sample_point": 800, "fd": True,
        "data_bitrate": 2_000_000, "data_sample_point": 750,
    })
    bridge = p(ParameterKind.CAN_BRIDGE, {"name": "vcan-lea"})
    relay = p(ParameterKind.CAN_CONNECTION,
              {"role": "client", "local": "10.0.0.7", "remote": "10.0.0.8", "port": 20001}, bridge)
    to_bridge = p(ParameterKind.CAN_LOCAL_ROUTE, {"source": "can1", "destination": "vcan-lea", "fd": True},
                  device, bridge)
    from_bridge = p(ParameterKind.CAN_LOCAL_ROUTE, {"source": "vcan-lea", "destination": "can1", "fd": True},
                    device, bridge)
    named = {"device": device, "bridge": bridge, "relay": relay, "to": to_bridge, "from": from_bridge}
    return PeerConfiguration(id=peer.id, cluster=cluster, parameters=tuple(named.values())), named


def test_the_configuration_view_shows_can_parameters_metrics_and_the_benchs_can_capability(
    qtbot: QtBot, bench: Bench
) -> None:
    peer, other = bench.real, make_peer("bench-08")
    cluster = make_cluster("can-loop", peer, other)
    userspace = AgentInfo(version="0.2.0", capabilities=Capabilities(
        tunnels=(TunnelType.VXLAN,), can=CanSupport.USERSPACE, underlay_mtu=1500,
    ))
    configuration, p = can_configuration(peer, cluster.id)
    bench.backend.write([
        (EventType.CREATED, other), (EventType.CREATED, cluster), (EventType.CREATED, configuration),
        (EventType.UPDATED, online(peer, "10.0.0.7", userspace)),
    ])
    dialog = PeerConfigurationDialog(bench.controller, peer.id)
    qtbot.addWidget(dialog)
    dialog.show()
    model = dialog.model
    qtbot.waitUntil(lambda: flushed(model).rowCount() == 5, timeout=5_000)
    qtbot.waitUntil(lambda: "userspace" in dialog.can.text(), timeout=5_000)
    assert "CAN: <b>userspace</b>" in dialog.can.text() and "simulated ECU endpoints" in dialog.can.text()
    assert dialog.can.isVisible()
    values = {name: text(model, parameter.id, "Value") for name, parameter in p.items()}
    assert values == {
        "device": "can1: CAN FD 500 kbit/s / 2 Mbit/s, sample points 80.0 % / 75.0 %",
        "bridge": "vcan-lea",
        "relay": "client 10.0.0.7:20001 <-> 10.0.0.8:20001",
        "to": "can1 -> vcan-lea (+FD)",
        "from": "vcan-lea -> can1 (+FD)",
    }
    assert [text(model, parameter.id, "Kind") for parameter in p.values()] == [
        "Device interface", "CAN bridge", "CAN connection", "CAN local route", "CAN local route",
    ]

    # The bench reports: the relay with its counters, the routes to a simulated ECU endpoint.
    sim = "can1 is a simulated ECU endpoint (udp:10.0.0.7:30001)"
    bench.backend.write([(EventType.CREATED, PeerConfigurationState(id=peer.id, parameters=(
        ParameterReport(id=p["device"].id, state=ParameterPresent(detail=sim)),
        ParameterReport(id=p["bridge"].id, state=ParameterPresent(detail="userspace frame hub")),
        ParameterReport(id=p["relay"].id, state=ParameterPresent(detail="relay 10.0.0.7:20001 <-> 10.0.0.8:20001",
                                                                 metrics={"frames_sent": 120, "frames_received": 118,
                                                                          "datagrams_lost": 0})),
        ParameterReport(id=p["to"].id, state=ParameterPresent(detail=sim)),
        ParameterReport(id=p["from"].id, state=ParameterError(
            reason="no datagram from 10.0.0.8:20001 for 3.0 s: relay peer lost", metrics={"datagrams_lost": 2})),
    )))])
    qtbot.waitUntil(lambda: text(model, p["from"].id, "State") == "Error", timeout=5_000)
    assert text(model, p["relay"].id, "Metrics") == "frames sent 120, received 118, lost 0"
    relay_tip = text(model, p["relay"].id, "Metrics", Qt.ItemDataRole.ToolTipRole)
    assert "CAN frames sent to the remote relay: 120" in relay_tip
    assert text(model, p["from"].id, "Metrics") == "lost 2"
    assert text(model, p["bridge"].id, "Metrics") == ""
    # A simulation stays labelled where it cannot be cut off: in the State column, and in its tooltip.
    assert text(model, p["to"].id, "State") == "Present (simulated)"
    assert text(model, p["to"].id, "Detail") == sim
    assert "simulation" in text(model, p["to"].id, "State", Qt.ItemDataRole.ToolTipRole)
    assert text(model, p["relay"].id, "State") == "Present"
    assert dialog.summary.text() == "<b>4 of 5 parameters as wanted, 1 error</b>"
    # The capability follows the agent: a reconnect with kernel CAN shows at once.
    kernel = userspace.model_copy(update={"capabilities": userspace.capabilities.model_copy(
        update={"can": CanSupport.KERNEL})})
    bench.backend.write([(EventType.UPDATED, online(peer, "10.0.0.7", kernel))])
    qtbot.waitUntil(lambda: "CAN: <b>kernel</b>" in dialog.can.text(), timeout=5_000)


def test_a_demo_benchs_configuration_view_labels_its_can_as_simulated(qtbot: QtBot, bench: Bench) -> None:
    configuration, _ = can_configuration(bench.demo, uuid.uuid4())
    bench.backend.write([(EventType.CREATED, configuration)])
    dialog = PeerConfigurationDialog(bench.controller, bench.demo.id)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: flushed(dialog.model).rowCount() == 5, timeout=5_000)
    assert "demo simulation" in dialog.heading.text()
    assert "CAN: <b>simulated</b>" in dialog.can.text()
    # Offline, a real bench's capability is not known (and the view does not pretend it is).
    bench.backend.write([(EventType.UPDATED, PeerConnectionState(id=bench.real.id, state=Offline()))])
    view = PeerConfigurationDialog(bench.controller, bench.real.id)
    qtbot.addWidget(view)
    qtbot.waitUntil(lambda: "not known while offline" in view.can.text(), timeout=5_000)


def test_the_configuration_model_keeps_rows_in_place_when_the_undeploy_flips_the_target(
    qtbot: QtBot, holder: QObject, qtmodeltester: Any
) -> None:
    peer = make_peer("bench-07")
    bridge = Parameter(id=uuid.uuid4(), kind=ParameterKind.ETHERNET_BRIDGE, target=Target.PRESENT,
                       value={"name": "br-lea"})
    store = Store()
    store.apply_snapshot(StateSnapshot(epoch="e", revision=0, resources=(
        peer, PeerConfiguration(id=peer.id, parameters=(bridge,)),
    )))
    model = PeerConfigurationModel(store, peer.id)
    model.setParent(holder)
    model.refresh_all()
    qtmodeltester.check(model)
    inserted: list[object] = []
    model.rowsInserted.connect(lambda *args: inserted.append(args))
    absent = bridge.model_copy(update={"target": Target.ABSENT})
    store.apply_events([_put(store, PeerConfiguration(id=peer.id, parameters=(absent,)))])
    assert text(model, bridge.id, "Target") == "Absent" and inserted == []
    store.apply_events([_put(store, PeerConfiguration(id=peer.id))])  # cleared
    model.flush()
    assert model.rowCount() == 0


# -- an undeploy waiting for offline benches -------------------------------------------------
def test_an_undeploy_waiting_for_offline_benches_names_them(qtbot: QtBot, holder: QObject) -> None:
    leader, member = make_peer("bench-07"), make_peer("bench-08")
    cluster = make_cluster("hil-loop", leader, member)
    state = ClusterState(id=cluster.id, state=Undeploying(done=3, total=5, waiting_for=(member.id, leader.id)))
    store = Store()
    store.apply_snapshot(StateSnapshot(epoch="e", revision=0, resources=(leader, member, cluster, state)))
    clusters, deployments = ClustersModel(store), DeploymentsModel(store)
    for model in (clusters, deployments):
        model.setParent(holder)
        model.refresh_all()
    reason = "bench-07, bench-08 still hold the configuration: removed when they reconnect"
    assert text(clusters, cluster.id, "Reason") == reason
    assert text(clusters, cluster.id, "State", Qt.ItemDataRole.ToolTipRole) == reason
    assert text(deployments, cluster.id, "Reason") == reason
    assert text(deployments, cluster.id, "Per peer") == "still held by bench-07, bench-08 (offline)"
    assert text(deployments, cluster.id, "Progress") == "3 of 5 parameters removed"

    # A renamed bench is shown by its new name; once it is back, only the other one is named.
    renamed = member.model_copy(update={"name": "bench-08b", "version": member.version + 1})
    store.apply_events([_put(store, renamed)])
    assert text(deployments, cluster.id, "Per peer") == "still held by bench-07, bench-08b (offline)"
    store.apply_events([_put(store, ClusterState(id=cluster.id, state=Undeploying(
        done=4, total=5, waiting_for=(leader.id,))))])
    assert text(clusters, cluster.id, "Reason") == "bench-07 still holds the configuration: removed when it reconnects"
    # A deployment that is not waiting says nothing of the kind.
    store.apply_events([_put(store, ClusterDeployment(id=cluster.id))])
    store.apply_events([_put(store, ClusterState(id=cluster.id, state=Undeploying(done=4, total=5)))])
    assert text(deployments, cluster.id, "Reason") == ""


# -- the window ------------------------------------------------------------------------------
def test_the_window_opens_one_set_up_bench_and_one_configuration_window_per_peer(qtbot: QtBot, lea: Lea) -> None:
    window, store = lea.window, lea.controller.store
    real = make_peer("bench-07")
    run(qtbot, lea.connection.store_peer_descriptor(real))
    qtbot.waitUntil(lambda: store.get(ResourceKind.PEER, real.id) is not None, timeout=10_000)
    demo = next(p for p in store.all(ResourceKind.PEER).values() if isinstance(p, PeerDescriptor) and p.demo)

    window.peers.bench_setup_requested.emit(real.id)
    setup = window.windows[("bench", real.id)]
    assert isinstance(setup, BenchSetupDialog) and setup.isVisible()
    # The embedded backend accepts no agents unless the user enables them: the dialog says how.
    assert setup.hint.isVisible() and "--agents-listen" in setup.hint.text()
    assert window.open_bench_setup(real.id) is setup  # asked again: the same window, raised
    window.peers.bench_setup_requested.emit(demo.id)
    assert ("bench", demo.id) not in window.windows  # a demo bench runs no agent

    window.peers.configuration_requested.emit(demo.id)
    view = window.windows[("configuration", demo.id)]
    assert isinstance(view, PeerConfigurationDialog) and view.isVisible()
    assert "demo simulation" in view.heading.text()
    window.close()
    assert not setup.isVisible() and not view.isVisible()


def test_a_failed_deployment_leads_to_the_failing_parameter_of_its_bench(qtbot: QtBot, bench: Bench) -> None:
    peer, other = bench.real, make_peer("bench-08")
    cluster = make_cluster("hil-loop", peer, other)
    bridge = Parameter(id=uuid.uuid4(), kind=ParameterKind.ETHERNET_BRIDGE, target=Target.PRESENT,
                       value={"name": "br-lea"})
    join = Parameter(id=uuid.uuid4(), kind=ParameterKind.INTERFACE_JOIN, target=Target.PRESENT,
                     dependencies=(bridge.id,), value={"interface": "eth0", "bridge": "br-lea"})
    bench.backend.write([
        (EventType.CREATED, other), (EventType.CREATED, cluster), (EventType.CREATED, ClusterDeployment(id=cluster.id)),
        (EventType.CREATED, PeerConfiguration(id=peer.id, cluster=cluster.id, parameters=(bridge, join))),
        (EventType.CREATED, PeerConfigurationState(id=peer.id, parameters=(
            ParameterReport(id=bridge.id, state=ParameterPresent()),
            ParameterReport(id=join.id, state=ParameterError(reason="eth0 does not exist")),
        ))),
        (EventType.CREATED, ClusterState(id=cluster.id, state=Failed(
            peer=peer.id, parameter=join.id, reason="bench-07: interface join eth0 into br-lea: eth0 does not exist"
        ))),
    ])
    window = MainWindow(bench.controller, settings())
    qtbot.addWidget(window)
    window.show()
    page = window.deployments
    qtbot.waitUntil(lambda: flushed(page.model).row_of(cluster.id) is not None, timeout=5_000)
    page.select(cluster.id)
    assert page.buttons["failing"].isEnabled()
    page.buttons["failing"].click()
    view = window.windows[("configuration", peer.id)]
    assert isinstance(view, PeerConfigurationDialog)
    assert view.selected_parameter() == join.id
    assert text(view.model, join.id, "Detail") == "eth0 does not exist"
    assert "Failed" in view.status.text() and "eth0 does not exist" in view.status.text()
    window.close()
