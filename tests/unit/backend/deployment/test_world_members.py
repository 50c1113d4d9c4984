"""World.deployed_clusters_with: which deployed clusters a peer whose connection changed is a member of.

It runs on the operator's one thread for every peer that comes or goes; with many deployed clusters
(200 agents reconnecting to 50 clusters after a network blip) it must not recompute every deployed
cluster's members for every peer.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from backend.deployment import view
from backend.deployment.view import World
from resources import derived
from resources.cluster import ClusterDeployment, ClusterDescriptor
from resources.events import Event, EventType
from resources.peer import PeerDescriptor
from tests.helpers.factories import make_cluster, make_peer

EPOCH = "test"


class Feed:
    def __init__(self, world: World) -> None:
        self.world = world
        self.revision = 0

    def put(self, resource: Any, type_: EventType = EventType.UPDATED) -> None:
        self.revision += 1
        self.world.apply(Event(epoch=EPOCH, revision=self.revision, type=type_, kind=resource.kind, id=resource.id,
                               resource=resource, actor="test", at=datetime.now(UTC), tx=uuid.uuid4()))

    def delete(self, resource: Any) -> None:
        self.revision += 1
        self.world.apply(Event(epoch=EPOCH, revision=self.revision, type=EventType.DELETED, kind=resource.kind,
                               id=resource.id, resource=None, actor="test", at=datetime.now(UTC), tx=uuid.uuid4()))


def names(clusters: list[ClusterDescriptor]) -> set[str]:
    return {c.name for c in clusters}


def test_only_deployed_clusters_that_have_the_peer_as_a_member() -> None:
    a, b, c, d = (make_peer(f"bench-{n}", devices=1) for n in "abcd")
    one, two, three = make_cluster("one-ab", a, b), make_cluster("two-ac", a, c), make_cluster("three-cd", c, d)
    feed = Feed(World())
    for resource in (a, b, c, d, one, two, three):
        feed.put(resource)
    assert feed.world.deployed_clusters_with(a.id) == []  # nothing deployed yet
    feed.put(ClusterDeployment(id=one.id))
    feed.put(ClusterDeployment(id=three.id))
    assert names(feed.world.deployed_clusters_with(a.id)) == {"one-ab"}
    assert names(feed.world.deployed_clusters_with(c.id)) == {"three-cd"}
    feed.put(ClusterDeployment(id=two.id))
    assert names(feed.world.deployed_clusters_with(a.id)) == {"one-ab", "two-ac"}
    assert names(feed.world.deployed_clusters_with(c.id)) == {"two-ac", "three-cd"}
    feed.delete(ClusterDeployment(id=one.id))
    assert names(feed.world.deployed_clusters_with(b.id)) == set()


def test_a_changed_cluster_or_a_moved_device_changes_the_answer() -> None:
    a, b, c = (make_peer(f"bench-{n}", devices=1) for n in "abc")
    cluster = make_cluster("moving", a, b)
    feed = Feed(World())
    for resource in (a, b, c, cluster, ClusterDeployment(id=cluster.id)):
        feed.put(resource)
    assert names(feed.world.deployed_clusters_with(b.id)) == {"moving"}
    # The cluster now holds c's device instead of b's.
    feed.put(cluster.model_copy(update={"devices": (a.devices[0].id, c.devices[0].id)}))
    assert feed.world.deployed_clusters_with(b.id) == []
    assert names(feed.world.deployed_clusters_with(c.id)) == {"moving"}
    # c's device moves to b (a peer descriptor change): b is the member again.
    moved = c.devices[0].model_copy(update={"interface": b.interfaces[0].id, "name": "ecu-moved"})
    feed.put(c.model_copy(update={"devices": ()}))
    feed.put(b.model_copy(update={"devices": (*b.devices, moved)}))
    assert names(feed.world.deployed_clusters_with(b.id)) == {"moving"}
    assert feed.world.deployed_clusters_with(c.id) == []
    feed.delete(cluster)
    assert feed.world.deployed_clusters_with(a.id) == []


def test_every_peer_of_50_deployed_clusters_reconnecting_computes_each_clusters_members_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    peers: list[PeerDescriptor] = [make_peer(f"bench-{i:03d}", devices=1) for i in range(200)]
    clusters = [make_cluster(f"cluster-{k:02d}", *peers[4 * k:4 * k + 4]) for k in range(50)]
    feed = Feed(World())
    for resource in (*peers, *clusters, *(ClusterDeployment(id=c.id) for c in clusters)):
        feed.put(resource)
    computed = 0
    ordered_member_ids = derived.ordered_member_ids

    def counting(*args: Any) -> list[uuid.UUID]:
        nonlocal computed
        computed += 1
        return ordered_member_ids(*args)

    monkeypatch.setattr(view, "ordered_member_ids", counting)
    for k, peer in enumerate(peers):
        assert feed.world.deployed_clusters_with(peer.id) == [clusters[k // 4]]
    assert computed <= len(clusters), f"members computed {computed} times for {len(peers)} connection changes"
