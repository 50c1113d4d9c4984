"""What the event log says about an event, Qt-free: changes in words, times, the filter, the diff."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from lea_app.models.event_text import (
    ABSENT,
    EventFilter,
    FieldChange,
    describe_change,
    diff_resources,
    local_time,
    names_from,
    utc_time,
)
from resources.cluster import ClusterDeployment
from resources.events import Event, EventType
from resources.kinds import ResourceKind
from resources.peer import CanConfiguration, PeerDescriptor
from resources.resource import AnyResource
from resources.state import ClusterState, Deploying, Online, PeerConnectionState
from tests.helpers.factories import make_cluster, make_peer

AT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def event(resource: AnyResource | None, type: EventType = EventType.UPDATED, kind: ResourceKind | None = None,
          id: uuid.UUID | None = None, actor: str = "erin", at: datetime = AT, revision: int = 7) -> Event:
    assert resource is not None or (kind is not None and id is not None)
    return Event(
        epoch="e", revision=revision, type=type, kind=kind or resource.kind,  # type: ignore[union-attr]
        id=id or resource.id, resource=resource, actor=actor, at=at, tx=uuid.uuid4(),  # type: ignore[union-attr]
    )


def test_changes_in_words() -> None:
    peer = make_peer("bench-a")
    deployment = ClusterDeployment(id=uuid.uuid4())
    assert describe_change(event(peer, EventType.CREATED)) == "Peer created"
    assert describe_change(event(peer)) == "Peer changed"
    assert describe_change(event(None, EventType.DELETED, ResourceKind.CLUSTER, uuid.uuid4())) == "Cluster deleted"
    assert describe_change(event(deployment, EventType.CREATED)) == "Deployed"
    assert describe_change(event(deployment)) == "Deployed again (retry)"
    assert describe_change(event(None, EventType.DELETED, ResourceKind.CLUSTER_DEPLOYMENT, deployment.id)) == (
        "Undeployed"
    )
    online = PeerConnectionState(id=peer.id, state=Online(remote_host="10.0.0.1", since=AT))
    assert describe_change(event(online)) == "Peer online"
    assert describe_change(event(PeerConnectionState(id=peer.id))) == "Peer offline"
    state = ClusterState(id=deployment.id, state=Deploying(done=3, total=8))
    assert describe_change(event(state)) == "Cluster state: deploying"


def test_local_time_and_utc() -> None:
    assert utc_time(AT) == "2026-03-04 05:06:07 UTC"
    assert local_time(AT) == AT.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    assert utc_time(AT.replace(tzinfo=None)) == "2026-03-04 05:06:07 UTC"  # naive means UTC


def test_the_filter_by_kind_actor_text_time_and_volatile() -> None:
    peer = make_peer("bench-a")
    changed = event(peer)
    online = event(PeerConnectionState(id=peer.id, state=Online(remote_host="10.0.0.1", since=AT)))
    assert EventFilter().accepts(online, "bench-a")  # the model's default shows everything
    assert not EventFilter(volatile=False).accepts(online, "bench-a")
    assert EventFilter(volatile=False).accepts(changed, "bench-a")
    assert not EventFilter(kinds=frozenset({ResourceKind.CLUSTER})).accepts(changed, "bench-a")
    assert EventFilter(kinds=frozenset({ResourceKind.PEER})).accepts(changed, "bench-a")
    assert EventFilter(actor="erin").accepts(changed, "bench-a")
    assert not EventFilter(actor="someone").accepts(changed, "bench-a")
    assert EventFilter(text="BENCH").accepts(changed, "bench-a")
    assert EventFilter(text=str(peer.id)[:8]).accepts(changed, "bench-a")  # an id prefix
    assert EventFilter(text="changed").accepts(changed, "bench-a")  # the change in words
    assert not EventFilter(text="bench-b").accepts(changed, "bench-a")
    assert EventFilter(since=AT - timedelta(minutes=1)).accepts(changed, "bench-a")
    assert not EventFilter(since=AT + timedelta(seconds=1)).accepts(changed, "bench-a")
    assert not EventFilter(volatile=False).active and EventFilter(actor="erin").active


def test_the_diff_is_field_level_and_readable() -> None:
    peer = make_peer("bench-a", can=True)
    other = make_peer("bench-b")
    can = peer.interfaces[1]
    assert isinstance(can.configuration, CanConfiguration)
    slower = can.model_copy(update={"configuration": can.configuration.model_copy(update={"bitrate": 250_000})})
    after = peer.model_copy(update={
        "location": "Lab B", "interfaces": (peer.interfaces[0], slower), "version": peer.version + 1,
    })
    assert diff_resources(peer, after) == [
        FieldChange("location", "(none)", "Lab B"),
        FieldChange("interface 'can0' bitrate", "500000", "250000"),
    ]  # the version, the kind and the ids are not changes a user reads
    cluster = make_cluster("loop-1", peer, other)
    created = diff_resources(None, cluster, names_from([peer, other]))
    assert created[0] == FieldChange("name", ABSENT, "loop-1")
    assert created[1] == FieldChange("leader", ABSENT, "bench-a")  # names, never raw ids
    devices = "ecu-0 (bench-a), ecu-0 (bench-b), ecu-1 (bench-a), ecu-1 (bench-b)"
    assert created[2] == FieldChange("devices", ABSENT, devices)
    assert all(c.before == ABSENT for c in created)
    moved = cluster.model_copy(update={"leader": other.id})
    assert diff_resources(cluster, moved, names_from([peer, other])) == [FieldChange("leader", "bench-a", "bench-b")]
    unknown = diff_resources(cluster, moved)
    assert unknown[0].before.startswith("(unknown ")
    deleted = diff_resources(peer, None)
    assert FieldChange("name", "bench-a", ABSENT) in deleted
    assert FieldChange("device 'ecu-0'", "present", ABSENT) in deleted
    deployment = ClusterDeployment(id=cluster.id)
    assert diff_resources(None, deployment) == [FieldChange("deployed", "no", "yes")]  # a deploy
    assert diff_resources(deployment, None) == [FieldChange("deployed", "yes", "no")]  # an undeploy
    assert diff_resources(deployment, deployment.model_copy(update={"version": 2})) == []  # a retry


def test_a_removed_device_shows_as_one_line_and_its_fields() -> None:
    peer = make_peer("bench-a")
    fewer = PeerDescriptor.model_validate({**peer.model_dump(), "devices": [peer.devices[0].model_dump()]})
    changes = diff_resources(peer, fewer, names_from([peer]))
    assert changes[0] == FieldChange("device 'ecu-1'", "present", ABSENT)
    assert FieldChange("device 'ecu-1' interface", "eth0 (bench-a)", ABSENT) in changes
