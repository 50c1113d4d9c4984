"""A hypothesis state machine over the actions: random peers, clusters and deployments.

Names come from a small pool (with case variants) and references from a pool that includes ids of
deleted or never-created resources, so the rules are broken often. The test keeps its own model of
the persisted state and predicts, independently of backend/rules.py, which rules each action breaks:
an action must be refused with one of those errors, or accepted when it breaks none. At the end the
backend is closed and the state restored from storage, with and without checkpoints, must equal the
live persisted state, and ``verify`` must pass.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from backend import actions, admin, restore
from backend.backend import Backend
from backend.storage.base import EventStore
from backend.storage.pg_target import PostgresTarget
from backend.storage.postgres import PostgresEventStore
from backend.storage.sqlite import SqliteEventStore
from resources import ClusterDeployment, ClusterDescriptor, Device, PeerDescriptor, ResourceKind
from resources.errors import (
    AlreadyExists,
    ClusterDeployed,
    Conflict,
    DeviceIdTaken,
    LeaError,
    MissingReference,
    NameTaken,
    NotFound,
    PeerBlocked,
    PeerInDeployedCluster,
    ReferencedByCluster,
)
from tests.helpers.factories import make_cluster, make_peer
from tests.helpers.postgres import LocalPostgres

PEER_NAMES = ["bench-a", "BENCH-A", "bench-b", "bench-c", "Bench-C", "bench-d"]
CLUSTER_NAMES = ["cluster-1", "CLUSTER-1", "cluster-2", "cluster-3"]
LOCATIONS = [None, "lab 1", "lab 2"]
ACTOR = "hypothesis"
R = TypeVar("R")

Key = tuple[ResourceKind, UUID]


def _plain(resource: Any) -> Any:
    """The resource without its version (what the rules compare)."""
    return resource.model_copy(update={"version": 0})


class ManagerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="lea-stateful-"))
        self.target = self.new_target()
        self.backend = Backend(
            self.dir, store=self.target, durability="off", checkpoint_interval=7, revision_block=5
        ).start()
        self.manager = self.backend.manager
        self.closed = False
        self.peers: dict[UUID, PeerDescriptor] = {}
        self.clusters: dict[UUID, ClusterDescriptor] = {}
        self.deployments: dict[UUID, ClusterDeployment] = {}
        #: Ids that once existed or never did: references to them must be refused.
        self.gone_peers: list[UUID] = [uuid.uuid4()]
        self.gone_devices: list[UUID] = [uuid.uuid4()]
        self.gone_clusters: list[UUID] = [uuid.uuid4()]
        self.accepted = 0
        self.refusals: set[str] = set()

    def new_target(self) -> PostgresTarget | None:
        """The store of one example: None for lea.db in ``self.dir`` (PostgresMachine: a new database)."""
        return None

    def drop_target(self) -> None:
        pass

    def reader(self) -> EventStore:
        if self.target is not None:
            return PostgresEventStore(self.target, read_only=True)
        return SqliteEventStore(self.dir / "lea.db", read_only=True)

    # -- the model's view of the rules (independent of backend/rules.py) ----------------------
    def owner(self, device: UUID) -> UUID | None:
        for peer in self.peers.values():
            if any(d.id == device for d in peer.devices):
                return peer.id
        return None

    def members(self, cluster: ClusterDescriptor) -> set[UUID]:
        found = {cluster.leader}
        for device in cluster.devices:
            owner = self.owner(device)
            if owner is not None:
                found.add(owner)
        return found

    def deployed_members(self, except_cluster: UUID | None = None) -> set[UUID]:
        out: set[UUID] = set()
        for cid in self.deployments:
            if cid != except_cluster:
                out |= self.members(self.clusters[cid])
        return out

    def name_taken(self, names: dict[UUID, str], name: str, me: UUID) -> bool:
        return any(other != me and n.casefold() == name.casefold() for other, n in names.items())

    def clusters_using_peer(self, peer: PeerDescriptor) -> set[UUID]:
        devices = {d.id for d in peer.devices}
        return {c.id for c in self.clusters.values() if c.leader == peer.id or devices & set(c.devices)}

    def all_devices(self) -> list[UUID]:
        return [d.id for p in self.peers.values() for d in p.devices]  # insertion order: reproducible draws

    def attempt(self, expected: set[type[LeaError]], fn: Callable[[], R]) -> R | None:
        """Run an action; it must fail with one of ``expected``, or succeed when that set is empty."""
        events_before = self.backend.store.event_count()
        try:
            result = fn()
        except LeaError as exc:
            assert expected, f"unexpected refusal: {exc!r}"
            assert type(exc) in expected, f"{exc!r} is none of {sorted(e.__name__ for e in expected)}"
            assert self.backend.store.event_count() == events_before, "a refused action wrote events"
            self.refusals.add(type(exc).__name__)
            event(f"refused: {type(exc).__name__}")  # shown by --hypothesis-show-statistics
            return None
        assert not expected, f"accepted, but it breaks {sorted(e.__name__ for e in expected)}"
        self.accepted += 1
        event(f"accepted: {fn.__qualname__.split('.')[1]}")
        return result

    def pick(self, data: st.DataObject, existing: list[UUID], gone: list[UUID]) -> UUID:
        """Mostly an existing id, sometimes one that is gone or never existed."""
        if existing and data.draw(st.integers(0, 7), label="existing?") > 0:
            return data.draw(st.sampled_from(existing))
        return data.draw(st.sampled_from(gone[-2:]))

    # -- peers ---------------------------------------------------------------------------------
    @initialize(count=st.integers(2, 4))
    def a_fleet(self, count: int) -> None:
        """Start with a few peers with devices, so clusters and deployments happen early."""
        for i in range(count):
            peer = make_peer(f"seed-{i}", devices=2, can=i % 2 == 0)
            actions.store_peer_descriptor(self.manager, peer, ACTOR)
            self.peers[peer.id] = peer.model_copy(update={"version": 1})
        # Two clusters sharing a peer: deploying both must be refused.
        seeds = list(self.peers.values())
        for name, (leader, other) in (
            ("seed-one", (seeds[0], seeds[1])),
            ("seed-two", (seeds[1], seeds[-1])),
        ):
            cluster = make_cluster(name, leader, other) if other is not leader else make_cluster(name, leader)
            actions.store_cluster_descriptor(self.manager, cluster, ACTOR)
            self.clusters[cluster.id] = cluster.model_copy(update={"version": 1})

    @rule(name=st.sampled_from(PEER_NAMES), devices=st.integers(0, 3), can=st.booleans())
    def create_peer(self, name: str, devices: int, can: bool) -> None:
        peer = make_peer(name, devices=devices, can=can)
        expected: set[type[LeaError]] = set()
        if self.name_taken({p.id: p.name for p in self.peers.values()}, name, peer.id):
            expected.add(NameTaken)
        result = self.attempt(
            expected, lambda: actions.store_peer_descriptor(self.manager, peer, ACTOR, create_only=True)
        )
        if result is not None:
            assert result.version == 1
            self.peers[peer.id] = peer.model_copy(update={"version": 1})

    @precondition(lambda self: bool(self.peers))
    @rule(data=st.data())
    def update_peer(self, data: st.DataObject) -> None:
        peer = self.peers[data.draw(st.sampled_from(list(self.peers)))]
        change = data.draw(st.sampled_from(["rename", "location", "add", "remove", "steal", "same", "stale"]))
        fields = peer.model_dump()
        fields["version"] = 0
        expected: set[type[LeaError]] = set()
        expected_version: int | None = peer.version
        if change == "rename":
            fields["name"] = data.draw(st.sampled_from(PEER_NAMES))
        elif change == "location":
            fields["location"] = data.draw(st.sampled_from(LOCATIONS))
        elif change == "add":
            new = Device(id=uuid.uuid4(), name=f"new-{uuid.uuid4().hex[:8]}", interface=peer.interfaces[0].id)
            fields["devices"] = [*fields["devices"], new.model_dump()]
        elif change == "remove" and peer.devices:
            index = data.draw(st.integers(0, len(peer.devices) - 1))
            fields["devices"] = [d for i, d in enumerate(fields["devices"]) if i != index]
        elif change == "steal":
            others = [d.id for p in self.peers.values() if p.id != peer.id for d in p.devices]
            stolen = data.draw(st.sampled_from(others)) if others else uuid.uuid4()
            new = Device(id=stolen, name=f"stolen-{uuid.uuid4().hex[:8]}", interface=peer.interfaces[0].id)
            fields["devices"] = [*fields["devices"], new.model_dump()]
        elif change == "stale":
            expected_version = peer.version - 1
            fields["location"] = "stale edit"
            expected.add(Conflict)
        updated = PeerDescriptor.model_validate(fields)

        if self.name_taken({p.id: p.name for p in self.peers.values()}, updated.name, peer.id):
            expected.add(NameTaken)
        for device in updated.devices:
            owner = self.owner(device.id)
            if owner is not None and owner != peer.id:
                expected.add(DeviceIdTaken)
        if _plain(updated) != _plain(peer) and peer.id in self.deployed_members():
            expected.add(PeerInDeployedCluster)
        removed = {d.id for d in peer.devices} - {d.id for d in updated.devices}
        if any(removed & set(c.devices) for c in self.clusters.values()):
            expected.add(ReferencedByCluster)

        result = self.attempt(
            expected,
            lambda: actions.store_peer_descriptor(
                self.manager, updated, ACTOR, expected_version=expected_version
            ),
        )
        if result is not None:
            assert result.version == peer.version + 1
            self.peers[peer.id] = updated.model_copy(update={"version": peer.version + 1})
            self.gone_devices += [d.id for d in peer.devices if d.id in removed]

    @rule(data=st.data())
    def delete_peer(self, data: st.DataObject) -> None:
        peer_id = self.pick(data, list(self.peers), self.gone_peers)
        peer = self.peers.get(peer_id)
        expected: set[type[LeaError]] = set()
        if peer is None:
            expected.add(NotFound)
        elif self.clusters_using_peer(peer):
            expected.add(ReferencedByCluster)
        result = self.attempt(expected, lambda: actions.delete_peer_descriptor(self.manager, peer_id, ACTOR))
        if result is not None and peer is not None:
            del self.peers[peer_id]
            self.gone_peers.append(peer_id)
            self.gone_devices += [d.id for d in peer.devices]

    # -- clusters ------------------------------------------------------------------------------
    def _draw_cluster_refs(self, data: st.DataObject) -> tuple[UUID, list[UUID]]:
        leader = self.pick(data, list(self.peers), self.gone_peers)
        existing = self.all_devices()
        devices = data.draw(st.lists(st.sampled_from(existing), min_size=2, max_size=4, unique=True))
        if data.draw(st.integers(0, 7), label="missing device?") == 0:
            devices[-1] = data.draw(st.sampled_from(self.gone_devices[-2:]))
            devices = list(dict.fromkeys(devices))
            if len(devices) < 2:
                devices.append(uuid.uuid4())
        return leader, devices

    def _cluster_reference_errors(self, cluster: ClusterDescriptor) -> set[type[LeaError]]:
        if cluster.leader not in self.peers or any(self.owner(d) is None for d in cluster.devices):
            return {MissingReference}
        return set()

    @precondition(lambda self: bool(self.peers) and len(self.all_devices()) >= 2)
    @rule(data=st.data(), name=st.sampled_from(CLUSTER_NAMES))
    def create_cluster(self, data: st.DataObject, name: str) -> None:
        leader, devices = self._draw_cluster_refs(data)
        cluster = ClusterDescriptor(id=uuid.uuid4(), name=name, leader=leader, devices=tuple(devices))
        expected = self._cluster_reference_errors(cluster)
        if self.name_taken({c.id: c.name for c in self.clusters.values()}, name, cluster.id):
            expected.add(NameTaken)
        result = self.attempt(
            expected,
            lambda: actions.store_cluster_descriptor(self.manager, cluster, ACTOR, expected_version=0),
        )
        if result is not None:
            self.clusters[cluster.id] = cluster.model_copy(update={"version": 1})

    @precondition(lambda self: bool(self.clusters))
    @rule(data=st.data())
    def update_cluster(self, data: st.DataObject) -> None:
        current = self.clusters[data.draw(st.sampled_from(list(self.clusters)))]
        change = data.draw(st.sampled_from(["rename", "references", "same", "create_only"]))
        fields = current.model_dump()
        fields["version"] = 0
        if change == "rename":
            fields["name"] = data.draw(st.sampled_from(CLUSTER_NAMES))
        elif change == "references" and self.peers and len(self.all_devices()) >= 2:
            fields["leader"], fields["devices"] = self._draw_cluster_refs(data)
        updated = ClusterDescriptor.model_validate(fields)
        expected = self._cluster_reference_errors(updated)
        if self.name_taken({c.id: c.name for c in self.clusters.values()}, updated.name, current.id):
            expected.add(NameTaken)
        if current.id in self.deployments and _plain(updated) != _plain(current):
            expected.add(ClusterDeployed)
        if change == "create_only":
            expected.add(AlreadyExists)
        result = self.attempt(
            expected,
            lambda: actions.store_cluster_descriptor(
                self.manager, updated, ACTOR, create_only=change == "create_only"
            ),
        )
        if result is not None:
            assert result.version == current.version + 1
            self.clusters[current.id] = updated.model_copy(update={"version": current.version + 1})

    @rule(data=st.data())
    def delete_cluster(self, data: st.DataObject) -> None:
        cluster_id = self.pick(data, list(self.clusters), self.gone_clusters)
        expected: set[type[LeaError]] = set()
        if cluster_id not in self.clusters:
            expected.add(NotFound)
        elif cluster_id in self.deployments:
            expected.add(ClusterDeployed)
        result = self.attempt(
            expected, lambda: actions.delete_cluster_descriptor(self.manager, cluster_id, ACTOR)
        )
        if result is not None:
            del self.clusters[cluster_id]  # and nothing else
            self.gone_clusters.append(cluster_id)

    # -- deployments -----------------------------------------------------------------------------
    @rule(data=st.data())
    def deploy(self, data: st.DataObject) -> None:
        cluster_id = self.pick(data, list(self.clusters), self.gone_clusters)
        expected: set[type[LeaError]] = set()
        cluster = self.clusters.get(cluster_id)
        if cluster is None:
            expected.add(MissingReference)
        elif self.members(cluster) & self.deployed_members(except_cluster=cluster_id):
            expected.add(PeerBlocked)
        result = self.attempt(
            expected, lambda: actions.store_cluster_deployment(self.manager, cluster_id, ACTOR)
        )
        if result is not None:
            previous = self.deployments.get(cluster_id)
            version = 1 if previous is None else previous.version + 1
            assert result.version == version
            self.deployments[cluster_id] = ClusterDeployment(id=cluster_id, version=version)

    @precondition(lambda self: bool(self.clusters))
    @rule(data=st.data())
    def undeploy(self, data: st.DataObject) -> None:
        cluster_id = data.draw(st.sampled_from(list(self.clusters)))
        expected: set[type[LeaError]] = set() if cluster_id in self.deployments else {NotFound}
        result = self.attempt(
            expected, lambda: actions.delete_cluster_deployment(self.manager, cluster_id, ACTOR)
        )
        if result is not None:
            del self.deployments[cluster_id]

    # -- invariants ------------------------------------------------------------------------------
    def model(self) -> dict[Key, Any]:
        out: dict[Key, Any] = {}
        for group in (self.peers, self.clusters, self.deployments):
            for resource in group.values():
                out[(resource.kind, resource.id)] = resource
        return out

    def live(self) -> dict[Key, Any]:
        snapshot = self.manager.fetch_snapshot(
            kinds=[ResourceKind.PEER, ResourceKind.CLUSTER, ResourceKind.CLUSTER_DEPLOYMENT]
        )
        return {(r.kind, r.id): r for r in snapshot.resources}

    @invariant()
    def persisted_state_equals_the_model(self) -> None:
        if not self.closed:
            assert self.live() == self.model()

    @invariant()
    def rules_hold_in_the_published_state(self) -> None:
        if self.closed:
            return
        live = self.live()
        peers = [r for r in live.values() if isinstance(r, PeerDescriptor)]
        clusters = {r.id: r for r in live.values() if isinstance(r, ClusterDescriptor)}
        owner = {d.id: p.id for p in peers for d in p.devices}
        assert len(owner) == sum(len(p.devices) for p in peers), "a device id belongs to two peers"
        for kind_names in ([p.name for p in peers], [c.name for c in clusters.values()]):
            assert len({n.casefold() for n in kind_names}) == len(kind_names), "duplicate name"
        peer_ids = {p.id for p in peers}
        for cluster in clusters.values():
            assert cluster.leader in peer_ids and all(d in owner for d in cluster.devices)
        seen: dict[UUID, UUID] = {}
        for (kind, cluster_id), _ in live.items():
            if kind != ResourceKind.CLUSTER_DEPLOYMENT:
                continue
            assert cluster_id in clusters, "a deployment without its cluster"
            cluster = clusters[cluster_id]
            for member in {cluster.leader} | {owner[d] for d in cluster.devices}:
                assert member not in seen, f"peer {member} is in two deployed clusters"
                seen[member] = cluster_id

    # -- restore from storage ----------------------------------------------------------------------
    def _check_storage(self, store: EventStore, live: dict[Key, Any]) -> None:
        for use_checkpoint in (True, False):
            state, _ = restore.replay(store, use_checkpoint=use_checkpoint)
            restored = {(r.kind, r.id): r for r in state.persisted()}
            assert restored == live, f"restore (use_checkpoint={use_checkpoint}) differs from the live state"
        report = admin.verify(store)
        assert report.ok, report.mismatches

    def teardown(self) -> None:
        try:
            live = self.live()
            assert live == self.model()
            # While running: the newest periodic checkpoint plus the events after it.
            reader = self.reader()
            try:
                self._check_storage(reader, live)
            finally:
                reader.close()
            self.backend.close()
            self.closed = True
            # After a clean shutdown (final checkpoint at the published revision).
            reader = self.reader()
            try:
                self._check_storage(reader, live)
                checkpoint = reader.load_checkpoint()
                if self.accepted:
                    assert checkpoint is not None and checkpoint.revision >= reader.last_revision()
            finally:
                reader.close()
            # And a restarted backend sees exactly the same.
            again = Backend(self.dir, store=self.target, durability="off")
            try:
                restored = again.manager.fetch_snapshot()
                assert {(r.kind, r.id): r for r in restored.resources} == live
            finally:
                again.close()
        finally:
            if not self.closed:
                self.backend.close()
            shutil.rmtree(self.dir, ignore_errors=True)
            self.drop_target()


ManagerMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestManagerStateful = ManagerMachine.TestCase


class PostgresMachine(ManagerMachine):
    """The same machine on PostgreSQL: a new database of the session's server for every example."""

    server: LocalPostgres | None = None

    def new_target(self) -> PostgresTarget | None:
        assert self.server is not None
        self.database = self.server.create_database()
        return PostgresTarget.parse(self.server.url(self.database), self.server.password_file)

    def drop_target(self) -> None:
        assert self.server is not None
        self.server.drop_database(self.database)


def test_manager_stateful_on_postgresql(postgres_server: LocalPostgres) -> None:
    PostgresMachine.server = postgres_server
    try:
        run_state_machine_as_test(
            PostgresMachine,
            settings=settings(
                max_examples=8,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        PostgresMachine.server = None
