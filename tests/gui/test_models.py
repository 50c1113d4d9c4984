"""The table models, fed by a hand-built Store: qtmodeltester, incremental signals, coalescing, sort, filter.

Each model is fed the way the sync engine feeds it (a snapshot, then event batches in revision
order), flushed and handed to pytest-qt's ``qtmodeltester`` (Qt's QAbstractItemModelTester, which
keeps watching every signal while the test goes on inserting, updating, removing, sorting and
filtering); at the end it must show exactly what a model built afresh from the final store shows.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from PySide6.QtCore import QObject, QPersistentModelIndex, Qt
from PySide6.QtWidgets import QAbstractItemView, QTableView
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from lea_app.controller import Controller
from lea_app.models import table
from lea_app.models.event_text import EventFilter
from lea_app.models.events import ACTOR, CHANGE, RESOURCE, REVISION, TIME, EventTableModel, LiveEventLogModel
from lea_app.models.resources import ClustersModel, DeploymentsModel, PeersModel
from lea_app.models.table import ID_ROLE, PROGRESS_ROLE, ResourceTableModel
from lea_app.sync.store import Store
from lea_app.views.dashboard import DashboardPage
from lea_app.views.tables import configure_table
from resources.cluster import ClusterDeployment, ClusterDescriptor
from resources.events import Event, EventType, StateSnapshot
from resources.kinds import ResourceKind
from resources.peer import Device, PeerDescriptor
from resources.resource import AnyResource
from resources.state import (
    ClusterState,
    Deployed,
    Deploying,
    Failed,
    Offline,
    Online,
    PeerConnectionState,
    Progress,
    Undeployed,
    Undeploying,
    Waiting,
)
from tests.helpers.factories import make_cluster, make_peer

EPOCH = "models-epoch"
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ROLES = (
    Qt.ItemDataRole.DisplayRole,
    Qt.ItemDataRole.ToolTipRole,
    Qt.ItemDataRole.CheckStateRole,
    ID_ROLE,
    PROGRESS_ROLE,
)


# -- feeding a store -------------------------------------------------------------------------
class Feed:
    """A Store fed as the sync engine feeds it: a snapshot, then batches in revision order."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store if store is not None else Store()
        self.revision = 0
        self.events: list[Event] = []

    def snapshot(self, *resources: AnyResource) -> None:
        self.store.apply_snapshot(StateSnapshot(epoch=EPOCH, revision=self.revision, resources=resources))

    def put(self, *resources: AnyResource) -> None:
        self._apply([(r.kind, r.id, r) for r in resources])

    def delete(self, *resources: AnyResource) -> None:
        self._apply([(r.kind, r.id, None) for r in resources])

    def _apply(self, changes: list[tuple[ResourceKind, UUID, AnyResource | None]]) -> None:
        tx = uuid.uuid4()
        batch = []
        for kind, id, resource in changes:
            self.revision += 1
            if resource is None:
                type = EventType.DELETED
            else:
                type = EventType.UPDATED if self.store.get(kind, id) is not None else EventType.CREATED
            batch.append(
                Event(
                    epoch=EPOCH, revision=self.revision, type=type, kind=kind, id=id, resource=resource,
                    actor="tester", at=AT, tx=tx,
                )
            )
        self.store.apply_events(batch)
        self.events += batch


def online(peer: PeerDescriptor, host: str = "10.0.0.1") -> PeerConnectionState:
    return PeerConnectionState(id=peer.id, state=Online(remote_host=host, since=AT))


def offline(peer: PeerDescriptor) -> PeerConnectionState:
    return PeerConnectionState(id=peer.id, state=Offline())


def state(cluster: ClusterDescriptor, status: Any) -> ClusterState:
    return ClusterState(id=cluster.id, state=status)


@dataclass
class Fleet:
    feed: Feed
    peers: list[PeerDescriptor] = field(default_factory=list)
    clusters: list[ClusterDescriptor] = field(default_factory=list)

    @property
    def store(self) -> Store:
        return self.feed.store


def make_fleet(store: Store | None = None) -> Fleet:
    """8 peers (one demo, some online), 3 clusters: deployed, deploying, failed."""
    feed = Feed(store)
    peers = [
        make_peer(f"bench-{i:02d}", devices=1 + i % 3, can=i % 2 == 0, demo=i == 5) for i in range(8)
    ]
    clusters = [
        make_cluster("adas-loop", peers[0], peers[1]),
        make_cluster("body-control", peers[2], peers[3]),
        make_cluster("telematics", peers[4], peers[5], peers[6]),
    ]
    deploying = Deploying(
        done=1, total=4, peers={peers[2].id: Progress(done=1, total=2), peers[3].id: Progress(done=0, total=2)}
    )
    feed.snapshot(
        *peers,
        *clusters,
        online(peers[0]),
        online(peers[2], "10.0.0.2"),
        offline(peers[1]),
        ClusterDeployment(id=clusters[0].id),
        state(clusters[0], Deployed()),
        ClusterDeployment(id=clusters[1].id),
        state(clusters[1], deploying),
        state(clusters[2], Failed(reason="bench-06 refused the configuration")),
    )
    return Fleet(feed, peers, clusters)


@pytest.fixture
def fleet() -> Fleet:
    return make_fleet()


MODELS: dict[str, Callable[[Store], ResourceTableModel[Any]]] = {
    "peers": PeersModel,
    "clusters": ClustersModel,
    "deployments": DeploymentsModel,
    "active-deployments": lambda store: DeploymentsModel(store, active_only=True),
}


@pytest.fixture
def holder(qapp: Any) -> Iterator[QObject]:
    """Parent of the models of one test, deleted (and so unsubscribed from its store) afterwards."""
    parent = QObject()
    yield parent
    parent.deleteLater()


def build(name: str, store: Store, parent: QObject) -> ResourceTableModel[Any]:
    """A model over ``store``, loaded with what the store already holds.

    (A model hears store changes from its creation on; LEA creates its models before it connects,
    over an empty store. ``refresh_all`` loads a model created over a store that is not empty.)
    """
    model = MODELS[name](store)
    model.setParent(parent)
    model.refresh_all()
    return model


# -- checking --------------------------------------------------------------------------------
def failures_reported(qtlog: Any) -> list[str]:
    """What Qt's QAbstractItemModelTester reported so far (it warns ``FAIL! ...``; pytest-qt also
    fails the test for such warnings at its end, this says which step broke the model)."""
    return [r.message for r in qtlog.records if "FAIL" in r.message]


def check(tester: ModelTester, model: Any) -> None:
    tester.check(model)


def cells(model: Any) -> list[list[Any]]:
    return [
        [[model.index(r, c).data(role) for role in ROLES] for c in range(model.columnCount())]
        for r in range(model.rowCount())
    ]


def assert_matches_a_fresh_model(
    name: str,
    model: ResourceTableModel[Any],
    parent: QObject,
    sort: tuple[int, Qt.SortOrder] = (0, Qt.SortOrder.AscendingOrder),
) -> None:
    model.flush()
    fresh = build(name, model.store, parent)
    fresh.sort(*sort)
    fresh.set_filter_text(model.filter_text)  # loads every row
    assert model.ids() == fresh.ids()
    assert cells(model) == cells(fresh)
    for id in model.ids():
        assert model.row_data(id) == fresh.row_data(id)


def churn(f: Fleet) -> list[Callable[[], None]]:
    """Inserts, updates (some moving rows), removals, across every kind the tables show."""
    p, c = f.peers, f.clusters
    newcomer = make_peer("bench-new", devices=3)
    return [
        lambda: f.feed.put(newcomer),
        lambda: f.feed.put(online(p[1]), online(p[3], "10.0.0.3"), offline(p[0])),
        lambda: f.feed.put(p[4].model_copy(update={"name": "aaa-first", "location": "lab 2"})),
        lambda: f.feed.put(state(c[1], Deploying(done=3, total=4, peers={p[2].id: Progress(done=2, total=2)}))),
        lambda: f.feed.put(state(c[1], Deployed())),
        lambda: f.feed.put(make_cluster("new-cluster", newcomer, p[7])),
        lambda: f.feed.delete(ClusterDeployment(id=c[0].id)),
        lambda: f.feed.put(state(c[0], Undeploying(done=1, total=2))),
        lambda: f.feed.put(state(c[2], Waiting(reason="bench-06 is offline", peers=(p[6].id,)))),
        lambda: f.feed.put(p[0].model_copy(update={"name": "zz-renamed-leader"})),
        lambda: f.feed.put(state(c[0], Undeployed())),
        lambda: f.feed.delete(c[2], state(c[2], Undeployed())),
        lambda: f.feed.delete(p[5], online(p[5])),
        lambda: f.feed.put(ClusterDeployment(id=c[2].id)),  # a deployment of a deleted cluster: no row
    ]


# -- qtmodeltester ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(MODELS))
def test_resource_models_pass_the_model_tester_while_fed(
    name: str, fleet: Fleet, holder: QObject, qtmodeltester: ModelTester, qtlog: Any
) -> None:
    model = build(name, fleet.store, holder)
    assert model.rowCount() > 0
    check(qtmodeltester, model)
    for step in churn(fleet):
        step()
        model.flush()
    for column in range(model.columnCount()):
        for order in (Qt.SortOrder.DescendingOrder, Qt.SortOrder.AscendingOrder):
            model.sort(column, order)
    model.sort(2, Qt.SortOrder.DescendingOrder)
    model.set_filter_text("bench")
    fleet.feed.put(make_peer("bench-late", devices=2), make_peer("other-late", devices=2))
    fleet.feed.put(state(fleet.clusters[1], Failed(reason="bench-03 refused")))
    model.flush()
    model.set_filter_text("  ")
    model.flush()
    assert failures_reported(qtlog) == []
    assert_matches_a_fresh_model(name, model, holder, (2, Qt.SortOrder.DescendingOrder))


def test_a_resync_snapshot_is_diffed_into_the_models(
    fleet: Fleet, holder: QObject, qtmodeltester: ModelTester, qtlog: Any
) -> None:
    """A snapshot after a resync changes rows in place: no reset for a handful of differences."""
    model = build("clusters", fleet.store, holder)
    model.flush()
    check(qtmodeltester, model)
    resets: list[int] = []
    model.modelReset.connect(lambda: resets.append(1))
    p, c = fleet.peers, fleet.clusters
    keep = [r for r in fleet.store.resources() if r.id != c[2].id]
    fleet.feed.snapshot(*keep, make_cluster("fresh-cluster", p[6], p[7]), state(c[0], Undeploying(done=0, total=1)))
    model.flush()
    assert resets == []
    assert failures_reported(qtlog) == []
    assert_matches_a_fresh_model("clusters", model, holder)


def test_live_event_log_passes_the_model_tester(
    fleet: Fleet, holder: QObject, qtmodeltester: ModelTester, qtlog: Any
) -> None:
    model = LiveEventLogModel(fleet.store, capacity=6, parent=holder)
    check(qtmodeltester, model)
    steps = churn(fleet)
    for step in steps[:3]:
        step()
    model.flush()
    for step in steps[3:]:
        step()
        model.flush()
    assert failures_reported(qtlog) == []
    newest_first = list(reversed(fleet.feed.events))[:6]
    assert model.rowCount() == 6
    assert [model.event_at(r) for r in range(6)] == newest_first
    assert [model.index(r, REVISION).data() for r in range(6)] == [str(e.revision) for e in newest_first]
    local = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    assert model.index(0, TIME).data() == local  # local time, UTC on hover
    assert model.index(0, TIME).data(Qt.ItemDataRole.ToolTipRole) == "2026-01-02 03:04:05 UTC"
    assert model.index(0, CHANGE).data(Qt.ItemDataRole.ToolTipRole).endswith(("(stored)", "never stored)"))
    assert model.index(0, ACTOR).data() == newest_first[0].actor
    assert model.index(0, 0).data(ID_ROLE) == str(newest_first[0].id)


def test_live_event_log_names_the_resource_as_it_arrived(fleet: Fleet, holder: QObject) -> None:
    """A volatile state is labelled with its peer's name when it is shown, a descriptor with its own."""
    model = LiveEventLogModel(fleet.store, parent=holder)
    peer = fleet.peers[1]
    fleet.feed.put(online(peer))
    model.flush()
    fleet.feed.put(peer.model_copy(update={"name": "renamed-bench"}))
    model.flush()
    assert [model.index(r, RESOURCE).data() for r in range(2)] == ["renamed-bench", "bench-01"]
    assert [model.index(r, CHANGE).data() for r in range(2)] == ["Peer changed", "Peer online"]
    stranger = uuid.uuid4()
    fleet.feed.put(ClusterDeployment(id=stranger))
    model.flush()
    assert model.index(0, RESOURCE).data() == str(stranger)  # nothing knows its name
    assert model.index(0, CHANGE).data() == "Deployed"
    gone = fleet.peers[2]
    fleet.feed.delete(gone)
    model.flush()
    assert (model.index(0, CHANGE).data(), model.index(0, RESOURCE).data()) == ("Peer deleted", gone.name)
    history = EventTableModel(fleet.store, holder)
    deleted = model.event_at(0)
    assert deleted is not None
    history.set_events([deleted])
    assert history.index(0, RESOURCE).data() == gone.name  # the store remembers the names of deletes


def test_the_live_log_filters_inside_the_model_and_keeps_stored_changes_through_a_flood(
    fleet: Fleet, holder: QObject, qtmodeltester: ModelTester, qtlog: Any
) -> None:
    model = LiveEventLogModel(fleet.store, capacity=20, parent=holder)
    check(qtmodeltester, model)
    model.set_filter(EventFilter(volatile=False))
    peer = fleet.peers[0]
    fleet.feed.put(peer.model_copy(update={"location": "Lab 9"}))
    for i in range(50):  # a flood of volatile states, more than the capacity
        fleet.feed.put(online(fleet.peers[i % len(fleet.peers)], f"10.9.0.{i}"))
    model.flush()
    assert [model.index(r, CHANGE).data() for r in range(model.rowCount())] == ["Peer changed"]
    assert model.newest_revision() == fleet.feed.events[-1].revision  # taken in, though hidden
    model.set_filter(EventFilter(volatile=True))
    assert model.rowCount() == 20 and model.index(0, CHANGE).data() == "Peer online"
    model.set_filter(EventFilter(volatile=True, text=peer.name))
    shown = [model.event_at(r) for r in range(model.rowCount())]
    assert shown and all(e is not None and e.id == peer.id for e in shown)
    # a stored change stays findable after the volatile flood pushed it out of the shown rows
    model.set_filter(EventFilter(volatile=True, kinds=frozenset({ResourceKind.PEER})))
    assert [model.index(r, CHANGE).data() for r in range(model.rowCount())] == ["Peer changed"]
    changed = model.event_at(0)
    assert changed is not None
    assert model.event_before(changed) is None  # the version before came with the snapshot, not as an event
    model.set_filter(EventFilter(volatile=True, actor="nobody"))
    assert model.rowCount() == 0
    assert failures_reported(qtlog) == []


def test_event_table_model_passes_the_model_tester(
    fleet: Fleet, holder: QObject, qtmodeltester: ModelTester, qtlog: Any
) -> None:
    model = EventTableModel(fleet.store, holder)
    check(qtmodeltester, model)
    for step in churn(fleet)[:5]:
        step()
    model.set_events(list(reversed(fleet.feed.events)))
    assert model.rowCount() == len(fleet.feed.events)
    model.set_events(fleet.feed.events[:2])
    model.set_events([])
    assert failures_reported(qtlog) == []
    assert model.rowCount() == 0 and model.event_at(0) is None


def random_step(rng: random.Random, f: Fleet) -> None:
    """One random change of the kind LEA sees: renames, devices moving between peers, clusters
    edited, deployments requested and withdrawn, states moving, things deleted and created."""
    store = f.store
    peers = [p for p in store.all(ResourceKind.PEER).values() if isinstance(p, PeerDescriptor)]
    clusters = [c for c in store.all(ResourceKind.CLUSTER).values() if isinstance(c, ClusterDescriptor)]
    roll = rng.randrange(10)
    if roll == 0 or len(peers) < 3:
        f.feed.put(make_peer(f"peer-{rng.randrange(10_000):04d}", devices=rng.randint(1, 3)))
    elif roll == 1:
        f.feed.put(rng.choice(peers).model_copy(update={"name": f"renamed-{rng.randrange(10_000):04d}"}))
    elif roll == 2:  # a device moves to another peer, in one batch
        givers = [p for p in peers if p.devices]
        if givers:
            giver = rng.choice(givers)
            taker = rng.choice([p for p in peers if p.id != giver.id])
            device = rng.choice(giver.devices)
            kept = tuple(d for d in giver.devices if d.id != device.id)
            moved = Device(id=device.id, name=f"moved-{rng.randrange(1000)}", interface=taker.interfaces[0].id)
            f.feed.put(
                giver.model_copy(update={"devices": kept}),
                taker.model_copy(update={"devices": (*taker.devices, moved)}),
            )
    elif roll == 3:
        peer = rng.choice(peers)
        f.feed.put(online(peer, f"10.0.0.{rng.randrange(9)}") if rng.random() < 0.6 else offline(peer))
    elif roll == 4 and clusters:
        cluster = rng.choice(clusters)
        kind = rng.randrange(3)
        if kind == 0:
            f.feed.put(ClusterDeployment(id=cluster.id))
        elif kind == 1:
            f.feed.delete(ClusterDeployment(id=cluster.id))
        else:
            f.feed.put(cluster.model_copy(update={"name": f"cluster-{rng.randrange(1000):03d}"}))
    elif roll == 5 and clusters:
        cluster = rng.choice(clusters)
        members = [p for p in peers if p.id == cluster.leader or {d.id for d in p.devices} & set(cluster.devices)]
        total = rng.randint(1, 4)
        done = rng.randint(0, total)
        status = rng.choice([
            Deploying(done=done, total=total, peers={p.id: Progress(done=done, total=total) for p in members}),
            Deployed(), Undeploying(done=done, total=total, waiting_for=tuple(p.id for p in members[:1])),
            Failed(reason="refused"), Undeployed(),
            Waiting(reason="offline", peers=tuple(p.id for p in members)),
        ])
        f.feed.put(state(cluster, status))
    elif roll == 6:
        leader, other = rng.sample(peers, 2)
        if len(leader.devices) + len(other.devices) >= 2:
            f.feed.put(make_cluster(f"cluster-{rng.randrange(1000):03d}", leader, other))
    elif roll == 7 and clusters:
        f.feed.delete(rng.choice(clusters))
    elif roll == 8:
        f.feed.delete(rng.choice(peers))
    else:  # a new leader, or a cluster over other peers' devices
        if clusters:
            cluster, leader = rng.choice(clusters), rng.choice(peers)
            f.feed.put(cluster.model_copy(update={"leader": leader.id}))


@pytest.mark.parametrize("seed", range(6))
def test_incremental_models_equal_fresh_ones_under_random_changes(seed: int, holder: QObject) -> None:
    """After every flush each model shows what a model built afresh from the same store shows."""
    rng = random.Random(seed)
    fleet = make_fleet()
    models = {name: build(name, fleet.store, holder) for name in MODELS}
    sort = {name: (0, Qt.SortOrder.AscendingOrder) for name in MODELS}
    for step in range(120):
        random_step(rng, fleet)
        if rng.random() < 0.35:
            for name, model in models.items():
                if rng.random() < 0.1:
                    sort[name] = (rng.randrange(model.columnCount()), rng.choice(list(Qt.SortOrder)))
                    model.sort(*sort[name])
                if rng.random() < 0.05:
                    model.set_filter_text(rng.choice(["", "bench", "online", "deploy", "renamed", "1"]))
                model.flush()
                fresh = build(name, fleet.store, holder)
                fresh.sort(*sort[name])
                fresh.set_filter_text(model.filter_text)
                assert model.ids() == fresh.ids(), f"{name} after step {step}"
                assert cells(model) == cells(fresh), f"{name} after step {step}"
                fresh.setParent(None)
                fresh.deleteLater()


# -- incremental -----------------------------------------------------------------------------
class SignalLog:
    """The structural signals of a model, as (name, first row, last row)."""

    def __init__(self, model: ResourceTableModel[Any]) -> None:
        self.calls: list[tuple[str, int, int]] = []
        model.modelReset.connect(lambda: self.calls.append(("reset", -1, -1)))
        model.layoutChanged.connect(lambda *_: self.calls.append(("layout", -1, -1)))
        model.rowsInserted.connect(lambda _p, first, last: self.calls.append(("inserted", first, last)))
        model.rowsRemoved.connect(lambda _p, first, last: self.calls.append(("removed", first, last)))
        model.dataChanged.connect(
            lambda top, bottom, *_: self.calls.append(("changed", top.row(), bottom.row()))
        )

    def take(self) -> list[tuple[str, int, int]]:
        calls, self.calls = self.calls, []
        return calls


def test_only_the_rows_a_view_shows_are_announced_as_changed(qtbot: QtBot) -> None:
    """A burst updates rows all over a big table: the view repaints the few it shows, not a span."""
    fleet = make_fleet()
    many = [make_peer(f"rack-{i:03d}") for i in range(200)]
    fleet.feed.put(*many)
    view = QTableView()
    qtbot.addWidget(view)
    peers = PeersModel(fleet.store)
    peers.setParent(view)
    configure_table(view, peers)
    view.resize(600, 300)
    view.show()
    peers.refresh_all()
    qtbot.waitUntil(lambda: view.rowAt(0) == 0, timeout=2_000)
    first, last = peers.visible_rows() if peers.visible_rows is not None else (0, -1)
    assert first == 0 and 0 < last < 100, "the view shows a few of the rows"
    log = SignalLog(peers)
    shown, hidden = peers.id_at(1), peers.id_at(150)
    by_id = {p.id: p for p in [*fleet.peers, *many]}
    assert shown is not None and hidden is not None
    fleet.feed.put(online(by_id[hidden]))
    peers.flush()
    assert log.take() == []  # nothing shown changed: nothing to repaint
    fleet.feed.put(online(by_id[shown]), online(by_id[hidden], "10.0.0.2"))
    peers.flush()
    assert log.take() == [("changed", 1, 1)]
    view.scrollTo(peers.index(150, 0))  # scrolled to, the row is read as it is now
    state = [c.title for c in peers.columns].index("State")
    assert "online" in str(peers.index(150, state).data()).lower()


def test_single_changes_are_incremental(fleet: Fleet, holder: QObject) -> None:
    peers = build("peers", fleet.store, holder)
    peers.flush()
    log = SignalLog(peers)
    newcomer = make_peer("bench-03b", devices=2)
    fleet.feed.put(newcomer)
    peers.flush()
    row = peers.row_of(newcomer.id)
    assert row is not None and log.take() == [("inserted", row, row)]
    assert peers.index(row, 0).data() == "bench-03b"

    fleet.feed.put(online(fleet.peers[6]))
    peers.flush()
    row = peers.row_of(fleet.peers[6].id)
    assert row is not None and log.take() == [("changed", row, row)]
    assert peers.index(row, 2).data() == "Online"

    row = peers.row_of(fleet.peers[7].id)
    fleet.feed.delete(fleet.peers[7])
    peers.flush()
    assert row is not None and log.take() == [("removed", row, row)]
    assert peers.row_of(fleet.peers[7].id) is None

    # A change of the sort key moves the row: a removal and an insertion, never a reset.
    fleet.feed.put(fleet.peers[1].model_copy(update={"name": "zz-last"}))
    peers.flush()
    assert [name for name, *_ in log.take()] == ["removed", "inserted"]
    assert peers.index(peers.rowCount() - 1, 0).data() == "zz-last"


def test_a_cluster_state_update_changes_only_its_rows(fleet: Fleet, holder: QObject) -> None:
    clusters = build("clusters", fleet.store, holder)
    deployments = build("deployments", fleet.store, holder)
    peers = build("peers", fleet.store, holder)
    for model in (clusters, deployments, peers):
        model.flush()
    logs = [SignalLog(m) for m in (clusters, deployments, peers)]
    target = fleet.clusters[1]
    fleet.feed.put(state(target, Deploying(done=2, total=4)))
    for model in (clusters, deployments, peers):
        model.flush()
    row, drow = clusters.row_of(target.id), deployments.row_of(target.id)
    assert row is not None and drow is not None
    assert [log.take() for log in logs] == [[("changed", row, row)], [("changed", drow, drow)], []]
    assert clusters.index(row, 5).data(PROGRESS_ROLE) == (2, 4)


def test_a_renamed_peer_a_state_names_is_renamed_in_its_rows_member_or_not(fleet: Fleet, holder: QObject) -> None:
    """A Waiting cluster names the peers it waits for; one of them need not be a member any more
    (its devices moved since): its new name still reaches the row (found by seed 2 of the random test)."""
    clusters = build("clusters", fleet.store, holder)
    deployments = build("deployments", fleet.store, holder)
    target, stranger = fleet.clusters[1], fleet.peers[7]
    assert stranger.id not in fleet.store.members(target.id)
    fleet.feed.put(state(target, Waiting(reason="offline", peers=(stranger.id,))))
    for model in (clusters, deployments):
        model.flush()
    fleet.feed.put(stranger.model_copy(update={"name": "renamed-stranger"}))
    for model in (clusters, deployments):
        model.flush()
        row = model.row_of(target.id)
        assert row is not None
        texts = [model.index(row, c).data() for c in range(model.columnCount())]
        assert any("renamed-stranger" in str(t) for t in texts), texts


def test_updates_of_one_row_are_coalesced_into_one_data_changed(
    qtbot: QtBot, fleet: Fleet, holder: QObject
) -> None:
    model = build("clusters", fleet.store, holder)
    model.flush()
    log = SignalLog(model)
    target = fleet.clusters[1]
    row = model.row_of(target.id)
    assert row is not None
    for done in range(100):  # 100 separate batches, well within one 50 ms timer period
        fleet.feed.put(state(target, Deploying(done=done, total=100)))
    assert log.calls == []  # nothing before the timer fires
    with qtbot.waitSignal(model.flushed, timeout=2_000):
        pass
    assert log.take() == [("changed", row, row)]
    assert model.index(row, 5).data() == "99 of 100 parameters"
    assert model.index(row, 5).data(PROGRESS_ROLE) == (99, 100)


def test_a_burst_of_scattered_updates_never_resets(fleet: Fleet, holder: QObject) -> None:
    model = build("peers", fleet.store, holder)
    extra = [make_peer(f"bulk-{i:03d}", devices=1) for i in range(40)]
    fleet.feed.put(*extra)
    model.flush()
    log = SignalLog(model)
    fleet.feed.put(*(online(p) for p in extra[::3]))
    model.flush()
    calls = log.take()
    assert calls and {name for name, *_ in calls} == {"changed"}
    changed = {r for _, first, last in calls for r in range(first, last + 1)}
    for p in extra[::3]:
        row = model.row_of(p.id)
        assert row is not None and row in changed
        assert model.index(row, 2).data() == "Online"


def test_a_big_timer_flush_is_done_in_slices_that_keep_the_model_valid(
    qtbot: QtBot, fleet: Fleet, holder: QObject, qtmodeltester: ModelTester, qtlog: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The timer's flush stops after FLUSH_SLICE seconds and goes on in the next loop pass."""
    monkeypatch.setattr(table, "FLUSH_SLICE", 0.0)  # every slice stops after its first 16 rows
    model = build("peers", fleet.store, holder)
    check(qtmodeltester, model)
    slices: list[int] = []
    model.flushed.connect(lambda: slices.append(model.rowCount()))
    extra = [make_peer(f"bulk-{i:03d}", devices=1) for i in range(64)]
    fleet.feed.put(*extra)
    fleet.feed.put(*(online(p) for p in fleet.peers))
    qtbot.waitUntil(lambda: model.rowCount() == 72 and not model._timer.isActive(), timeout=5_000)
    assert len(slices) >= 72 // 16
    assert slices == sorted(slices)  # rows arrive slice after slice, none go away
    assert failures_reported(qtlog) == []
    assert_matches_a_fresh_model("peers", model, holder)
    # A direct flush() still applies everything at once.
    fleet.feed.put(*(offline(p) for p in extra))
    model.flush()
    assert not model._timer.isActive()
    assert {model.index(r, 2).data() for r in range(model.rowCount())} <= {"Online", "Offline"}
    assert sum(1 for r in range(model.rowCount()) if model.index(r, 2).data() == "Online") == 8


def test_the_live_log_shows_a_big_burst_in_slices(
    qtbot: QtBot, fleet: Fleet, holder: QObject, qtmodeltester: ModelTester, qtlog: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(table, "FLUSH_SLICE", 0.0)  # one slice of SLICE_EVENTS per pass
    model = LiveEventLogModel(fleet.store, capacity=300, parent=holder)
    check(qtmodeltester, model)
    inserts: list[int] = []
    model.rowsInserted.connect(lambda _p, first, last: inserts.append(last - first + 1))
    for i in range(70):  # 700 events, 10 a batch
        fleet.feed.put(*(online(p, f"10.1.{i}.{k}") for k, p in enumerate(fleet.peers[:5])))
        fleet.feed.put(*(offline(p) for p in fleet.peers[5:]))
    qtbot.waitUntil(lambda: model.rowCount() == 300 and not model._incoming, timeout=5_000)
    assert len(inserts) > 1 and max(inserts) <= 256  # in slices
    newest_first = list(reversed(fleet.feed.events))[:300]
    assert [model.event_at(r) for r in range(300)] == newest_first
    assert failures_reported(qtlog) == []


# -- sorting, filtering, selection -----------------------------------------------------------
def column_values(model: ResourceTableModel[Any], column: int) -> list[str]:
    return [model.index(r, column).data() for r in range(model.rowCount())]


def test_sorting_happens_inside_the_model(fleet: Fleet, holder: QObject) -> None:
    model = build("peers", fleet.store, holder)
    model.flush()
    log = SignalLog(model)
    model.sort(0, Qt.SortOrder.DescendingOrder)
    names = column_values(model, 0)
    assert names == sorted(names, key=str.casefold, reverse=True)
    model.sort(4, Qt.SortOrder.AscendingOrder)  # Devices: by number, not text
    counts = [int(v) for v in column_values(model, 4)]
    assert counts == sorted(counts)
    model.sort(4, Qt.SortOrder.DescendingOrder)
    counts = [int(v) for v in column_values(model, 4)]
    assert counts == sorted(counts, reverse=True)
    assert {name for name, *_ in log.take()} == {"layout"}
    # New rows land at their sorted place.
    fleet.feed.put(make_peer("bench-many", devices=9))
    model.flush()
    assert model.index(0, 0).data() == "bench-many"
    model.sort(99)  # out of range: ignored
    assert model.index(0, 0).data() == "bench-many"


def test_sorting_clusters_by_progress(fleet: Fleet, holder: QObject) -> None:
    model = build("clusters", fleet.store, holder)
    model.sort(5, Qt.SortOrder.DescendingOrder)
    model.flush()
    assert column_values(model, 0) == ["adas-loop", "body-control", "telematics"]  # 100 %, 1/4, failed
    fleet.feed.put(state(fleet.clusters[2], Deploying(done=3, total=4)))
    model.flush()
    assert column_values(model, 0) == ["adas-loop", "telematics", "body-control"]


def test_filtering_by_text_happens_inside_the_model(fleet: Fleet, holder: QObject) -> None:
    model = build("peers", fleet.store, holder)
    model.flush()
    model.set_filter_text("  BENCH-0 ")
    assert model.filter_text == "bench-0"
    assert model.rowCount() == 8
    model.set_filter_text("ecu-0")  # tooltips (the device names) are not searched
    assert model.rowCount() == 0
    model.set_filter_text("10.0.0")  # the Underlay column (the agent's address) is
    assert sorted(column_values(model, 0)) == ["bench-00", "bench-02"]
    model.set_filter_text("online")  # the State column is
    assert sorted(column_values(model, 0)) == ["bench-00", "bench-02"]
    fleet.feed.put(online(fleet.peers[4]), offline(fleet.peers[0]))
    model.flush()
    assert sorted(column_values(model, 0)) == ["bench-02", "bench-04"]
    model.set_filter_text("telematics")  # Blocked by: no deployment of telematics
    assert model.rowCount() == 0
    model.set_filter_text("adas-loop")
    assert sorted(column_values(model, 0)) == ["bench-00", "bench-01"]
    model.set_filter_text("")
    assert model.rowCount() == 8


def test_selection_and_persistent_indexes_survive_a_resort(qtbot: QtBot, fleet: Fleet, holder: QObject) -> None:
    model = build("peers", fleet.store, holder)
    model.flush()
    view = QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    chosen = fleet.peers[3].id
    row = model.row_of(chosen)
    assert row is not None
    view.selectRow(row)
    persistent = QPersistentModelIndex(model.index(row, 2))

    def selected_ids() -> list[UUID | None]:
        return [model.id_at(i.row()) for i in view.selectionModel().selectedRows()]

    descending, ascending = Qt.SortOrder.DescendingOrder, Qt.SortOrder.AscendingOrder
    for column, order in ((4, descending), (0, descending), (1, ascending), (3, ascending)):
        model.sort(column, order)
        assert persistent.isValid() and persistent.column() == 2
        assert persistent.row() == model.row_of(chosen)
        assert model.id_at(persistent.row()) == chosen
        assert selected_ids() == [chosen]
        assert model.id_at(view.selectionModel().currentIndex().row()) == chosen
    # Rows inserted and removed around it, and its own update, keep the selection on it.
    fleet.feed.put(make_peer("aaaa-first", devices=1), online(fleet.peers[3]))
    fleet.feed.delete(fleet.peers[7])
    model.flush()
    assert persistent.row() == model.row_of(chosen)
    assert selected_ids() == [chosen]
    assert model.index(persistent.row(), 2).data() == "Online"


# -- dashboard counts ------------------------------------------------------------------------
def brute_counts(store: Store) -> tuple[int, int, int, dict[str, int]]:
    peers = [p for p in store.all(ResourceKind.PEER).values() if isinstance(p, PeerDescriptor)]
    online_count = 0
    for p in peers:
        s = store.get(ResourceKind.PEER_CONNECTION_STATE, p.id)
        if isinstance(s, PeerConnectionState) and isinstance(s.state, Online):
            online_count += 1
    by_state: dict[str, int] = {}
    names = {Deploying: "deploying", Waiting: "waiting", Failed: "failed", Undeploying: "undeploying"}
    for cid in store.all(ResourceKind.CLUSTER):
        s = store.get(ResourceKind.CLUSTER_STATE, cid)
        status = s.state if isinstance(s, ClusterState) else Undeployed()
        if isinstance(status, Deployed):
            kind = "deployed" if status.health == "healthy" else "degraded"
        else:
            kind = names.get(type(status), "undeployed")
        by_state[kind] = by_state.get(kind, 0) + 1
    return online_count, len(peers) - online_count, sum(1 for p in peers if p.demo), by_state


def test_dashboard_counts_follow_the_store(qtbot: QtBot) -> None:
    controller = Controller()
    page = DashboardPage(controller)
    qtbot.addWidget(page)
    fleet = make_fleet(controller.store)

    def check() -> None:
        online_count, offline_count, demo, by_state = page.counts()
        assert (online_count, offline_count, demo, dict(by_state)) == brute_counts(controller.store)
        page.refresh()
        assert page.peers_card.value.text() == str(online_count)
        assert page.offline_card.value.text() == str(offline_count)
        assert page.clusters_card.value.text() == str(by_state.get("deployed", 0))
        failed, waiting, degraded = by_state.get("failed", 0), by_state.get("waiting", 0), by_state.get("degraded", 0)
        assert page.attention_card.value.text() == str(failed + waiting + degraded)
        lines = page.attention_card.detail.full_text().split("\n")
        assert lines[0] == f"{failed} failed, {degraded} degraded, {waiting} waiting"
        assert len(lines) - 1 == min(failed + waiting + degraded, 3) + (failed + waiting + degraded > 3)
        names = ("deployed", "degraded", "deploying", "waiting", "failed", "undeploying", "undeployed")
        assert page.states_label.text() == "Clusters by state: " + ", ".join(
            f"{name} {by_state.get(name, 0)}" for name in names
        )

    check()
    for step in churn(fleet):
        step()
        check()
    fleet.feed.put(state(fleet.clusters[0], Deployed(health="degraded")))
    check()
    assert page.counts()[3]["degraded"] >= 1  # a degraded deployment needs attention, not counted as deployed
    fleet.feed.snapshot(*fleet.peers[:2], online(fleet.peers[1]))  # a resync that drops most things
    check()
    with qtbot.waitSignal(page.active.flushed, timeout=2_000, raising=False):
        pass
    assert page.active.rowCount() == 0 and page.idle_hint.isVisibleTo(page)
