"""The backend rules of DESIGN section 3, through the actions on a started Backend.

Every refusal must be a typed error naming the rule and the resources involved, and must write
nothing: the number of stored events, the published revision and the published state are unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from backend import actions
from backend.backend import Backend
from backend.manager import Delete, Put
from resources import (
    ClusterDeployment,
    ClusterDescriptor,
    Deployed,
    Device,
    EventType,
    Offline,
    PeerDescriptor,
    ResourceKind,
    WriteResult,
)
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
from resources.state import Online
from resources.wire import EventBatch, Hello
from tests.helpers.factories import make_cluster, make_peer

E = TypeVar("E", bound=LeaError)
ACTOR = "alice"


@pytest.fixture
def backend(data_dir: Path) -> Iterator[Backend]:
    b = Backend(data_dir, durability="off").start()
    try:
        yield b
    finally:
        b.close()


def refused(backend: Backend, error: type[E], fn: Callable[[], Any]) -> E:
    """Run ``fn`` expecting ``error``; assert that nothing at all was written or published."""
    assert backend.wait_idle()  # the operators wrote what they had to (a deployment makes them)
    events_before = backend.store.event_count()
    last_before = backend.store.last_revision()
    revision_before = backend.manager.revision
    snapshot_before = backend.manager.fetch_snapshot()
    with pytest.raises(error) as info:
        fn()
    assert backend.store.event_count() == events_before
    assert backend.store.last_revision() == last_before
    assert backend.manager.revision == revision_before
    after = backend.manager.fetch_snapshot()
    assert after.revision == snapshot_before.revision
    assert _keyed(after.resources) == _keyed(snapshot_before.resources)
    problem = info.value.to_problem()
    assert problem.code == error.code and problem.detail == info.value.message
    return info.value


def _keyed(resources: Any) -> dict[tuple[ResourceKind, uuid.UUID], Any]:
    return {(r.kind, r.id): r for r in resources}


def store_peer(backend: Backend, peer: PeerDescriptor, **kw: Any) -> WriteResult:
    return actions.store_peer_descriptor(backend.manager, peer, ACTOR, **kw)


def store_cluster(backend: Backend, cluster: ClusterDescriptor, **kw: Any) -> WriteResult:
    return actions.store_cluster_descriptor(backend.manager, cluster, ACTOR, **kw)


def deploy(backend: Backend, cluster: ClusterDescriptor) -> WriteResult:
    return actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)


def get(backend: Backend, kind: ResourceKind, id: uuid.UUID) -> Any:
    return backend.manager.get(kind, id)


def renamed(peer: PeerDescriptor, name: str) -> PeerDescriptor:
    return PeerDescriptor.model_validate({**peer.model_dump(), "name": name})


def changed(resource: Any, **update: Any) -> Any:
    """A validated copy with ``update`` applied (what an editor would send)."""
    return type(resource).model_validate({**resource.model_dump(), **update})


@pytest.fixture
def fleet(backend: Backend) -> dict[str, Any]:
    """Three peers and two clusters sharing peer b; nothing deployed."""
    a, b, c = make_peer("bench-a"), make_peer("bench-b"), make_peer("bench-c")
    for peer in (a, b, c):
        store_peer(backend, peer)
    one = make_cluster("cluster-one", a, b)
    two = make_cluster("cluster-two", b, c)
    store_cluster(backend, one)
    store_cluster(backend, two)
    return {"a": a, "b": b, "c": c, "one": one, "two": two}


# -- names -----------------------------------------------------------------------------------


def test_peer_names_are_unique_case_insensitively(backend: Backend) -> None:
    store_peer(backend, make_peer("bench-01"))
    error = refused(backend, NameTaken, lambda: store_peer(backend, make_peer("BENCH-01")))
    assert "BENCH-01" in error.message and "peer" in error.message
    assert error.details["kind"] == "peer"
    refused(backend, NameTaken, lambda: store_peer(backend, make_peer("Bench-01")))


def test_cluster_names_are_unique_case_insensitively(backend: Backend) -> None:
    a = make_peer("bench-a")
    store_peer(backend, a)
    store_cluster(backend, make_cluster("cluster-x", a))
    error = refused(backend, NameTaken, lambda: store_cluster(backend, make_cluster("Cluster-X", a)))
    assert "Cluster-X" in error.message and error.details["kind"] == "cluster"


def test_names_are_unique_per_kind_only(backend: Backend) -> None:
    a = make_peer("same-name")
    store_peer(backend, a)
    store_cluster(backend, make_cluster("same-name", a))
    assert len(backend.manager.resources_of(ResourceKind.CLUSTER)) == 1


def test_a_peer_may_change_the_case_of_its_own_name_and_frees_the_old_name(backend: Backend) -> None:
    a = make_peer("bench-a")
    store_peer(backend, a)
    store_peer(backend, renamed(a, "BENCH-A"))
    assert get(backend, ResourceKind.PEER, a.id).name == "BENCH-A"
    store_peer(backend, renamed(a, "bench-z"))
    store_peer(backend, make_peer("bench-a"))  # the old name is free again
    refused(backend, NameTaken, lambda: store_peer(backend, make_peer("BENCH-Z")))


def test_rename_and_reuse_of_a_name_in_one_transaction(backend: Backend) -> None:
    a = make_peer("bench-a")
    store_peer(backend, a)
    b = make_peer("bench-a")
    backend.manager.write([Put(renamed(a, "bench-old")), Put(b)], ACTOR)
    assert get(backend, ResourceKind.PEER, b.id).name == "bench-a"


# -- devices ---------------------------------------------------------------------------------


def test_a_device_id_owned_by_another_peer_is_refused(backend: Backend) -> None:
    a = make_peer("bench-a")
    store_peer(backend, a)
    stolen = a.devices[0]
    b = make_peer("bench-b", devices=0)
    b = changed(b, devices=[Device(id=stolen.id, name="mine", interface=b.interfaces[0].id).model_dump()])
    error = refused(backend, DeviceIdTaken, lambda: store_peer(backend, b))
    assert str(stolen.id) in error.message and "bench-a" in error.message
    assert error.details["peer"] == str(a.id)


def test_a_device_may_move_between_peers_in_one_transaction(backend: Backend) -> None:
    a = make_peer("bench-a")
    store_peer(backend, a)
    moving = a.devices[0]
    b = make_peer("bench-b", devices=0)
    b = changed(b, devices=[moving.model_copy(update={"interface": b.interfaces[0].id}).model_dump()])
    a_without = changed(a, devices=[d.model_dump() for d in a.devices[1:]])
    backend.manager.write([Put(a_without), Put(b)], ACTOR)
    assert get(backend, ResourceKind.PEER, b.id).devices[0].id == moving.id


# -- cluster references ----------------------------------------------------------------------


def test_cluster_leader_must_exist(backend: Backend) -> None:
    a = make_peer("bench-a")
    store_peer(backend, a)
    ghost = make_peer("bench-ghost")
    cluster = ClusterDescriptor(
        id=uuid.uuid4(), name="cluster-x", leader=ghost.id, devices=[d.id for d in a.devices]
    )
    error = refused(backend, MissingReference, lambda: store_cluster(backend, cluster))
    assert "leader" in error.message and str(ghost.id) in error.message


def test_cluster_devices_must_exist(backend: Backend) -> None:
    a = make_peer("bench-a")
    store_peer(backend, a)
    missing = uuid.uuid4()
    cluster = ClusterDescriptor(
        id=uuid.uuid4(), name="cluster-x", leader=a.id, devices=[a.devices[0].id, missing]
    )
    error = refused(backend, MissingReference, lambda: store_cluster(backend, cluster))
    assert str(missing) in error.message and error.details["devices"] == [str(missing)]


def test_the_leader_is_a_member_even_without_devices_on_it(backend: Backend) -> None:
    leader, other = make_peer("bench-lead"), make_peer("bench-other")
    store_peer(backend, leader)
    store_peer(backend, other)
    cluster = ClusterDescriptor(
        id=uuid.uuid4(), name="cluster-x", leader=leader.id, devices=[d.id for d in other.devices]
    )
    store_cluster(backend, cluster)
    error = refused(
        backend,
        ReferencedByCluster,
        lambda: actions.delete_peer_descriptor(backend.manager, leader.id, ACTOR),
    )
    assert "cluster-x" in error.message


# -- deployment ------------------------------------------------------------------------------


def test_deployed_means_a_cluster_deployment_exists(backend: Backend, fleet: dict[str, Any]) -> None:
    one = fleet["one"]
    assert get(backend, ResourceKind.CLUSTER_DEPLOYMENT, one.id) is None
    result = deploy(backend, one)
    deployment = get(backend, ResourceKind.CLUSTER_DEPLOYMENT, one.id)
    assert isinstance(deployment, ClusterDeployment) and deployment.version == result.version == 1
    assert deploy(backend, one).version == 2  # storing it again (a retry) bumps it
    actions.delete_cluster_deployment(backend.manager, one.id, ACTOR)
    assert get(backend, ResourceKind.CLUSTER_DEPLOYMENT, one.id) is None
    refused(backend, NotFound, lambda: actions.delete_cluster_deployment(backend.manager, one.id, ACTOR))


def test_deployment_of_a_missing_cluster_is_refused(backend: Backend) -> None:
    missing = uuid.uuid4()
    error = refused(
        backend, MissingReference, lambda: actions.store_cluster_deployment(backend.manager, missing, ACTOR)
    )
    assert str(missing) in error.message


def test_a_peer_belongs_to_at_most_one_deployed_cluster(backend: Backend, fleet: dict[str, Any]) -> None:
    one, two = fleet["one"], fleet["two"]
    deploy(backend, one)
    error = refused(backend, PeerBlocked, lambda: deploy(backend, two))
    assert "cluster-two" in error.message  # the cluster that cannot be deployed
    assert "bench-b" in error.message  # the shared peer
    assert "cluster-one" in error.message  # the blocking cluster
    assert "bench-c" not in error.message
    assert error.details["blocked_by"] == {"cluster-one": ["bench-b"]}
    # Once the blocking cluster is undeployed, the other one deploys.
    actions.delete_cluster_deployment(backend.manager, one.id, ACTOR)
    deploy(backend, two)
    refused(backend, PeerBlocked, lambda: deploy(backend, one))


def test_a_leader_only_membership_blocks_too(backend: Backend) -> None:
    a, b, c = make_peer("bench-a"), make_peer("bench-b"), make_peer("bench-c")
    for p in (a, b, c):
        store_peer(backend, p)
    one = make_cluster("cluster-one", a, b)
    # cluster-two's devices are all on c, but its leader a is a member of cluster-one.
    two = ClusterDescriptor(
        id=uuid.uuid4(), name="cluster-two", leader=a.id, devices=[d.id for d in c.devices]
    )
    store_cluster(backend, one)
    store_cluster(backend, two)
    deploy(backend, one)
    error = refused(backend, PeerBlocked, lambda: deploy(backend, two))
    assert error.details["blocked_by"] == {"cluster-one": ["bench-a"]}


def test_disjoint_clusters_deploy_side_by_side(backend: Backend) -> None:
    a, b, c, d = (make_peer(f"bench-{x}") for x in "abcd")
    for p in (a, b, c, d):
        store_peer(backend, p)
    one, two = make_cluster("cluster-one", a, b), make_cluster("cluster-two", c, d)
    store_cluster(backend, one)
    store_cluster(backend, two)
    deploy(backend, one)
    deploy(backend, two)
    assert len(backend.manager.resources_of(ResourceKind.CLUSTER_DEPLOYMENT)) == 2


def test_two_conflicting_deployments_in_one_transaction_are_refused(
    backend: Backend, fleet: dict[str, Any]
) -> None:
    changes = [Put(ClusterDeployment(id=fleet["one"].id)), Put(ClusterDeployment(id=fleet["two"].id))]
    refused(backend, PeerBlocked, lambda: backend.manager.write(changes, ACTOR))


def test_a_deployed_clusters_descriptor_cannot_be_changed(backend: Backend, fleet: dict[str, Any]) -> None:
    one = fleet["one"]
    deploy(backend, one)
    error = refused(
        backend, ClusterDeployed, lambda: store_cluster(backend, changed(one, name="cluster-new"))
    )
    assert "cluster-one" in error.message and "undeploy" in error.message
    fewer = changed(one, devices=[str(d) for d in one.devices[:2]])
    refused(backend, ClusterDeployed, lambda: store_cluster(backend, fewer))
    actions.delete_cluster_deployment(backend.manager, one.id, ACTOR)
    assert store_cluster(backend, changed(one, name="cluster-new")).version == 2


def test_a_deployed_cluster_cannot_be_deleted(backend: Backend, fleet: dict[str, Any]) -> None:
    one = fleet["one"]
    deploy(backend, one)
    error = refused(
        backend, ClusterDeployed, lambda: actions.delete_cluster_descriptor(backend.manager, one.id, ACTOR)
    )
    assert "cluster-one" in error.message and error.details["cluster"] == str(one.id)


# -- references block deletion ---------------------------------------------------------------


def test_a_peer_referenced_by_clusters_cannot_be_deleted(backend: Backend, fleet: dict[str, Any]) -> None:
    b = fleet["b"]
    error = refused(
        backend, ReferencedByCluster, lambda: actions.delete_peer_descriptor(backend.manager, b.id, ACTOR)
    )
    assert "bench-b" in error.message
    assert "cluster-one" in error.message and "cluster-two" in error.message
    assert error.details["clusters"] == ["cluster-one", "cluster-two"]


def test_a_device_referenced_by_a_cluster_cannot_be_removed(backend: Backend, fleet: dict[str, Any]) -> None:
    a = fleet["a"]
    without = changed(a, devices=[d.model_dump() for d in a.devices[1:]])
    error = refused(backend, ReferencedByCluster, lambda: store_peer(backend, without))
    assert a.devices[0].name in error.message and "cluster-one" in error.message
    assert error.details["clusters"] == ["cluster-one"]


def test_an_interface_in_use_by_a_cluster_cannot_be_removed(backend: Backend) -> None:
    a = make_peer("bench-a", devices=2, can=True)  # ecu-0 on eth0, ecu-1 on can0
    store_peer(backend, a)
    store_cluster(backend, make_cluster("cluster-one", a))
    can_iface = a.interfaces[1]
    # Drop the CAN interface and the device behind it (the only valid way to drop the interface).
    without = changed(
        a,
        interfaces=[i.model_dump() for i in a.interfaces if i.id != can_iface.id],
        devices=[d.model_dump() for d in a.devices if d.interface != can_iface.id],
    )
    error = refused(backend, ReferencedByCluster, lambda: store_peer(backend, without))
    assert "cluster-one" in error.message


def test_unreferenced_devices_and_peers_can_be_removed(backend: Backend, fleet: dict[str, Any]) -> None:
    extra = make_peer("bench-extra", devices=3)
    store_peer(backend, extra)
    store_peer(backend, changed(extra, devices=[d.model_dump() for d in extra.devices[:1]]))
    actions.delete_peer_descriptor(backend.manager, extra.id, ACTOR)
    assert get(backend, ResourceKind.PEER, extra.id) is None


def test_a_peer_used_by_a_deployed_cluster_cannot_be_changed(backend: Backend, fleet: dict[str, Any]) -> None:
    a, c = fleet["a"], fleet["c"]
    deploy(backend, fleet["one"])
    error = refused(
        backend, PeerInDeployedCluster, lambda: store_peer(backend, changed(a, location="somewhere else"))
    )
    assert "bench-a" in error.message and "cluster-one" in error.message
    assert error.details["clusters"] == ["cluster-one"]
    more = changed(
        a,
        devices=[
            *(d.model_dump() for d in a.devices),
            Device(id=uuid.uuid4(), name="ecu-new", interface=a.interfaces[0].id).model_dump(),
        ],
    )
    refused(backend, PeerInDeployedCluster, lambda: store_peer(backend, more))
    # c is only in the undeployed cluster-two: it can be changed.
    assert store_peer(backend, changed(c, location="lab 2")).version == 2


def test_deleting_a_cluster_deletes_nothing_else(backend: Backend, fleet: dict[str, Any]) -> None:
    one = fleet["one"]
    actions.set_cluster_state(backend.manager, one.id, Deployed(), "operator")
    before = {(r.kind, r.id): r for r in backend.manager.fetch_snapshot().resources}
    sub = backend.manager.subscribe()
    result = actions.delete_cluster_descriptor(backend.manager, one.id, ACTOR)
    after = {(r.kind, r.id): r for r in backend.manager.fetch_snapshot().resources}
    assert set(before) - set(after) == {(ResourceKind.CLUSTER, one.id), (ResourceKind.CLUSTER_STATE, one.id)}
    assert all(after[k] == before[k] for k in after)
    assert isinstance(sub.get(1), Hello)
    batch = sub.get(1)
    assert isinstance(batch, EventBatch)
    assert {(e.kind, e.type) for e in batch.events} == {
        (ResourceKind.CLUSTER, EventType.DELETED),
        (ResourceKind.CLUSTER_STATE, EventType.DELETED),
    }
    assert batch.events[-1].revision == result.revision
    stored = list(backend.store.read_events(after=result.revision - len(batch.events)))
    assert [(e.kind, e.id, e.type) for e in stored] == [(ResourceKind.CLUSTER, one.id, EventType.DELETED)]


# -- optimistic concurrency ------------------------------------------------------------------


def test_expected_version_mismatch_is_a_conflict(backend: Backend) -> None:
    a = make_peer("bench-a")
    first = store_peer(backend, a, expected_version=0)
    assert first.version == 1
    second = store_peer(backend, changed(a, location="lab"), expected_version=first.version)
    assert second.version == 2 and second.revision > first.revision
    error = refused(
        backend, Conflict, lambda: store_peer(backend, changed(a, location="x"), expected_version=1)
    )
    assert error.details["expected"] == 1 and error.details["actual"] == 2
    refused(backend, Conflict, lambda: store_peer(backend, make_peer("bench-new"), expected_version=3))
    refused(
        backend,
        Conflict,
        lambda: actions.delete_peer_descriptor(backend.manager, a.id, ACTOR, expected_version=1),
    )
    actions.delete_peer_descriptor(backend.manager, a.id, ACTOR, expected_version=2)


def test_expected_version_zero_means_must_not_exist(backend: Backend) -> None:
    a = make_peer("bench-a")
    store_peer(backend, a)
    refused(backend, Conflict, lambda: store_peer(backend, a, expected_version=0))


def test_create_only_on_an_existing_resource_already_exists(backend: Backend) -> None:
    a = make_peer("bench-a")
    assert store_peer(backend, a, create_only=True).version == 1
    error = refused(
        backend, AlreadyExists, lambda: store_peer(backend, changed(a, location="x"), create_only=True)
    )
    assert str(a.id) in error.message


def test_deleting_a_missing_resource_is_not_found(backend: Backend) -> None:
    refused(backend, NotFound, lambda: actions.delete_peer_descriptor(backend.manager, uuid.uuid4(), ACTOR))
    refused(
        backend, NotFound, lambda: actions.delete_cluster_descriptor(backend.manager, uuid.uuid4(), ACTOR)
    )


def test_volatile_state_of_a_missing_peer_or_cluster_is_refused(backend: Backend) -> None:
    refused(
        backend,
        MissingReference,
        lambda: actions.set_peer_connection_state(backend.manager, uuid.uuid4(), Offline(), "broker"),
    )
    refused(
        backend,
        MissingReference,
        lambda: actions.set_cluster_state(backend.manager, uuid.uuid4(), Deployed(), "operator"),
    )


# -- transactions ----------------------------------------------------------------------------


def test_a_transaction_is_all_or_nothing(backend: Backend) -> None:
    store_peer(backend, make_peer("bench-a"))
    good = make_peer("bench-good")
    ghost_cluster = ClusterDescriptor(
        id=uuid.uuid4(), name="cluster-x", leader=uuid.uuid4(), devices=[d.id for d in good.devices]
    )
    refused(backend, MissingReference, lambda: backend.manager.write([Put(good), Put(ghost_cluster)], ACTOR))
    assert get(backend, ResourceKind.PEER, good.id) is None
    # A name clash with an earlier change of the same transaction, and a bad delete at the end.
    refused(
        backend,
        NameTaken,
        lambda: backend.manager.write([Put(good), Put(make_peer("BENCH-GOOD"))], ACTOR),
    )
    refused(
        backend,
        NotFound,
        lambda: backend.manager.write([Put(good), Delete(ResourceKind.PEER, uuid.uuid4())], ACTOR),
    )
    assert get(backend, ResourceKind.PEER, good.id) is None
    # The working state was rolled back too: the same good change alone is accepted as a creation.
    result = store_peer(backend, good, create_only=True)
    assert result.version == 1


def test_a_transaction_has_contiguous_revisions_and_one_tx(backend: Backend) -> None:
    first = make_peer("bench-0")
    store_peer(backend, first)
    sub = backend.manager.subscribe()
    a, b = make_peer("bench-a"), make_peer("bench-b")
    cluster = make_cluster("cluster-ab", a, b)
    result = backend.manager.write([Put(a), Put(b), Put(cluster), Delete(ResourceKind.PEER, first.id)], ACTOR)
    events = result.events
    revisions = [e.revision for e in events]
    assert revisions == list(range(revisions[0], revisions[0] + 4))
    assert len({e.tx for e in events}) == 1
    assert [e.kind for e in events] == [
        ResourceKind.PEER,
        ResourceKind.PEER,
        ResourceKind.CLUSTER,
        ResourceKind.PEER,
    ]
    assert [e.type for e in events][-1] == EventType.DELETED
    assert isinstance(sub.get(1), Hello)
    batch = sub.get(1)
    assert isinstance(batch, EventBatch) and batch.events == events  # delivered as one batch
    stored = list(backend.store.read_events(after=revisions[0] - 1))
    assert stored == list(events)
    # The next transaction gets its own tx and continues right after.
    other = store_peer(backend, make_peer("bench-c"))
    assert other.revision == revisions[-1] + 1
    assert backend.store.read_events(after=revisions[-1]).__next__().tx != events[0].tx


def test_every_event_has_the_actor_and_a_utc_timestamp(backend: Backend, fleet: dict[str, Any]) -> None:
    actions.store_cluster_deployment(backend.manager, fleet["one"].id, "bob")
    online = Online(remote_host="h", since=datetime.now(UTC))
    actions.set_peer_connection_state(backend.manager, fleet["a"].id, online, "broker")
    events = list(backend.store.read_events())
    assert len(events) == 6
    assert {e.actor for e in events} == {ACTOR, "bob"}
    for event in events:
        assert event.at.tzinfo is not None and event.at.utcoffset() == timedelta(0)
        assert event.epoch == backend.manager.epoch
    sub = backend.manager.subscribe(after=0)
    deliveries = list(_drain(sub))
    live = [e for d in deliveries if isinstance(d, EventBatch) for e in d.events]
    assert any(e.actor == "broker" and e.kind == ResourceKind.PEER_CONNECTION_STATE for e in live)
    # Internal writers record themselves too (the deployment operator reacted to the deployment).
    assert all(e.actor for e in live)
    assert all(e.at.utcoffset() == timedelta(0) for e in live)


def _drain(sub: Any) -> Iterator[Any]:
    while True:
        item = sub.get_nowait()
        if item is None:
            return
        yield item
