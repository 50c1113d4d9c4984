"""The ResourceIndex kept by the backend's State and LEA's Store: always what a fresh look says.

Whatever the order of puts and deletes (a restore may put a cluster before its peers, a snapshot
diff may move a device or a name in either order), every index answers what recomputing it from
the resources present answers; and a copy is independent of its original.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from uuid import UUID

import pytest

from backend.state import State
from lea_app.sync.store import Store
from resources.cluster import ClusterDeployment, ClusterDescriptor
from resources.derived import blocked_peers, cluster_member_ids, deployed_clusters_of_peer
from resources.events import EventType, StateSnapshot
from resources.index import ResourceIndex
from resources.kinds import ResourceKind
from resources.peer import Device, PeerDescriptor
from resources.resource import AnyResource
from resources.view import ResourceView
from tests.helpers.factories import make_cluster, make_peer
from tests.helpers.fake_connection import make_event

P, C = ResourceKind.PEER, ResourceKind.CLUSTER


def fresh_look(resources: list[AnyResource]) -> dict[str, object]:
    """Every index, recomputed from scratch from the resources."""
    peers = [r for r in resources if isinstance(r, PeerDescriptor)]
    clusters = [r for r in resources if isinstance(r, ClusterDescriptor)]
    owner = {d.id: p.id for p in peers for d in p.devices}
    members = {c.id: frozenset(cluster_member_ids(c, owner)) for c in clusters}
    of_peer: dict[UUID, set[UUID]] = {}
    for cluster_id, ids in members.items():
        for peer_id in ids:
            of_peer.setdefault(peer_id, set()).add(cluster_id)
    with_device: dict[UUID, set[UUID]] = {}
    for c in clusters:
        for d in c.devices:
            with_device.setdefault(d, set()).add(c.id)
    named: list[PeerDescriptor | ClusterDescriptor] = [*peers, *clusters]
    names = {(r.kind, r.name.casefold()): r.id for r in named}
    return {"owner": owner, "members": members, "of_peer": of_peer, "with_device": with_device, "names": names}


def index_look(view: ResourceView, resources: list[AnyResource], probe: list[UUID]) -> dict[str, object]:
    """The same, asked of the view's indexes (for every id in ``probe``, present or not)."""
    named = [r for r in resources if isinstance(r, PeerDescriptor | ClusterDescriptor)]
    return {
        "owner": {d: o for d in probe if (o := view.device_owner(d)) is not None},
        "members": {c: frozenset(m) for c in probe if (m := view.members(c))},
        "of_peer": {p: set(s) for p in probe if (s := view.clusters_of_peer(p))},
        "with_device": {d: set(s) for d in probe if (s := view.clusters_with_device(d))},
        "names": {(r.kind, r.name.casefold()): view.id_by_name(r.kind, r.name.upper()) for r in named},
    }


class Pool:
    """Peers and clusters of fixed ids and names; each put picks a random version of one."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.peer_ids = [uuid.uuid4() for _ in range(6)]
        self.cluster_ids = [uuid.uuid4() for _ in range(5)]
        # Each peer may have some of its own devices (devices never move: no two peers claim one).
        self.devices = {p: [uuid.uuid4() for _ in range(4)] for p in self.peer_ids}
        self.all_devices = [d for ds in self.devices.values() for d in ds] + [uuid.uuid4()]  # one nobody has

    def peer(self) -> PeerDescriptor:
        n = self.rng.randrange(len(self.peer_ids))
        peer_id = self.peer_ids[n]
        base = make_peer(f"bench-{n}", devices=0, id=peer_id)
        chosen = self.rng.sample(self.devices[peer_id], self.rng.randint(0, 4))
        devices = [Device(id=d, name=f"ecu-{k}", interface=base.interfaces[0].id) for k, d in enumerate(chosen)]
        return base.model_copy(update={"devices": tuple(devices)})

    def cluster(self) -> ClusterDescriptor:
        n = self.rng.randrange(len(self.cluster_ids))
        return ClusterDescriptor(
            id=self.cluster_ids[n], name=f"cluster-{n}", leader=self.rng.choice(self.peer_ids),
            devices=self.rng.sample(self.all_devices, self.rng.randint(2, 5)),
        )

    def probe(self) -> list[UUID]:
        return [*self.peer_ids, *self.cluster_ids, *self.all_devices, uuid.uuid4()]


@pytest.mark.parametrize("seed", range(8))
def test_the_indexes_follow_every_put_and_delete_in_any_order(seed: int) -> None:
    rng = random.Random(seed)
    pool = Pool(rng)
    state, store, copies = State(), Store(), []
    present: dict[tuple[ResourceKind, UUID], AnyResource] = {}
    for step in range(300):
        roll = rng.random()
        if roll < 0.4:
            resource: AnyResource = pool.peer()
        elif roll < 0.75:
            resource = pool.cluster()
        else:
            kind = rng.choice([P, C])
            id = rng.choice(pool.peer_ids if kind == P else pool.cluster_ids)
            state.delete(kind, id)
            old = present.pop((kind, id), None)
            store.apply_events([make_event("e", step + 1, EventType.DELETED, old, kind=kind, id=id)])
            resource = None  # type: ignore[assignment]
        if resource is not None:
            state.put(resource)
            present[(resource.kind, resource.id)] = resource
            store.apply_events([make_event("e", step + 1, EventType.UPDATED, resource)])
        resources = list(present.values())
        expected = fresh_look(resources)
        assert index_look(state, resources, pool.probe()) == expected, f"State after step {step}"
        assert index_look(store, resources, pool.probe()) == expected, f"Store after step {step}"
        if step % 50 == 0:
            copies.append((state.copy(), resources, expected))
    for copy, resources, expected in copies:  # the original changed since: its copies did not
        assert index_look(copy, resources, pool.probe()) == expected
    # A snapshot diff, from whatever the store held to a random other state, lands on the fresh look too.
    target = {(r.kind, r.id): r for r in (pool.peer() if k % 2 else pool.cluster() for k in range(12))}
    store.apply_snapshot(StateSnapshot(epoch="e2", revision=1, resources=list(target.values())))
    assert index_look(store, list(target.values()), pool.probe()) == fresh_look(list(target.values()))


def test_a_snapshot_moving_a_device_and_a_name_between_peers_keeps_the_index_right() -> None:
    a, b = make_peer("bench-a", devices=2), make_peer("bench-b", devices=1)
    cluster = ClusterDescriptor(id=uuid.uuid4(), name="loop", leader=b.id, devices=tuple(d.id for d in a.devices))
    # Afterwards a's first device is b's, and b is called bench-a (a was renamed first).
    moved = a.devices[0].model_copy(update={"name": "moved", "interface": b.interfaces[0].id})
    a2 = a.model_copy(update={"name": "bench-z", "devices": a.devices[1:]})
    b2 = b.model_copy(update={"name": "BENCH-A", "devices": (*b.devices, moved)})
    for order in ([a2, b2], [b2, a2]):
        store = Store()
        store.apply_snapshot(StateSnapshot(epoch="e", revision=1, resources=[a, b, cluster]))
        store.apply_snapshot(StateSnapshot(epoch="e", revision=2, resources=[*order, cluster]))
        assert store.device_owner(moved.id) == b.id and store.device_owner(a.devices[1].id) == a.id
        assert store.id_by_name(P, "bench-a") == b.id and store.id_by_name(P, "bench-z") == a.id
        assert store.members(cluster.id) == {a.id, b.id}
        state = State()
        resources: list[AnyResource] = [a, b, cluster, *order]
        for resource in resources:
            state.put(resource)
        assert index_look(state, [a2, b2, cluster], [moved.id, a.id, b.id, cluster.id]) == index_look(
            store, [a2, b2, cluster], [moved.id, a.id, b.id, cluster.id]
        )


def test_a_copy_of_the_state_has_its_own_indexes() -> None:
    """The manager copies the published State on a failed commit and at restore: changing the
    copy (the next working state) must never change the original's indexes (the published state)."""
    a, b, c = make_peer("bench-a"), make_peer("bench-b"), make_peer("bench-c")
    cluster = make_cluster("loop", a, b)
    original = State()
    for resource in (a, b, c, cluster, ClusterDeployment(id=cluster.id)):
        original.put(resource)
    before = index_look(original, [a, b, c, cluster], [a.id, b.id, c.id, cluster.id, *(d.id for d in a.devices)])

    copy = original.copy()
    copy.put(a.model_copy(update={"name": "bench-renamed", "devices": a.devices[1:]}))
    copy.delete(ResourceKind.CLUSTER_DEPLOYMENT, cluster.id)
    copy.put(cluster.model_copy(update={"name": "loop-2", "leader": c.id, "devices": tuple(d.id for d in c.devices)}))
    copy.delete(P, b.id)

    after = index_look(original, [a, b, c, cluster], [a.id, b.id, c.id, cluster.id, *(d.id for d in a.devices)])
    assert after == before
    assert original.id_by_name(P, "bench-a") == a.id and original.id_by_name(P, "bench-renamed") is None
    assert original.is_deployed(cluster.id) and [x.name for x in deployed_clusters_of_peer(original, a.id)] == ["loop"]
    assert copy.members(cluster.id) == {c.id} and copy.clusters_of_peer(a.id) == set()
    assert set(blocked_peers(original)) == {a.id, b.id} and blocked_peers(copy) == {}


def test_a_cluster_keeps_its_leader_as_a_member_while_the_leader_is_absent() -> None:
    leader, other = make_peer("bench-lead"), make_peer("bench-other")
    devices = tuple(d.id for d in other.devices)
    cluster = ClusterDescriptor(id=uuid.uuid4(), name="loop", leader=leader.id, devices=devices)
    index = ResourceIndex()
    index.put(cluster)  # before any peer: only the leader is known to be a member
    assert index.members(cluster.id) == {leader.id}
    index.put(other)
    assert index.members(cluster.id) == {leader.id, other.id} and index.clusters_of_peer(other.id) == {cluster.id}
    index.delete(P, other.id)
    assert index.members(cluster.id) == {leader.id} and index.clusters_of_peer(other.id) == set()
    index.delete(C, cluster.id)
    assert index.members(cluster.id) == set() and index.clusters_of_peer(leader.id) == set()
    assert index.clusters_with_device(other.devices[0].id) == set()


VIEWS: dict[str, Callable[[], ResourceView]] = {"State": State, "Store": Store, "ResourceIndex": ResourceIndex}


@pytest.mark.parametrize("make", list(VIEWS.values()), ids=list(VIEWS))
def test_an_empty_view_answers_nothing(make: Callable[[], ResourceView]) -> None:
    view, id = make(), uuid.uuid4()
    assert view.get(P, id) is None and dict(view.of_kind(P)) == {}
    assert view.id_by_name(P, "x") is None and view.id_by_name(ResourceKind.CLUSTER_STATE, "x") is None
    assert view.device_owner(id) is None
    assert not view.members(id) and not view.clusters_of_peer(id) and not view.clusters_with_device(id)
