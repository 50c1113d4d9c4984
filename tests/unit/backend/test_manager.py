from __future__ import annotations

from pathlib import Path

import pytest

from backend import actions
from backend.backend import Backend
from resources import EventType, ResourceKind
from resources.errors import NameTaken
from resources.wire import EventBatch, Hello
from tests.helpers.factories import make_cluster, make_peer


def test_store_publish_and_restore(data_dir: Path) -> None:
    backend = Backend(data_dir).start()
    sub = backend.manager.subscribe()
    peer = make_peer("bench-01")
    result = actions.store_peer_descriptor(backend.manager, peer, "alice")
    assert result.version == 1
    with pytest.raises(NameTaken):
        actions.store_peer_descriptor(backend.manager, make_peer("BENCH-01"), "alice")
    cluster = make_cluster("cluster-a", peer)
    actions.store_cluster_descriptor(backend.manager, cluster, "alice")
    hello = sub.get(1)
    assert isinstance(hello, Hello)
    first = sub.get(1)
    assert isinstance(first, EventBatch)
    assert first.events[0].type == EventType.CREATED and first.events[0].actor == "alice"
    assert first.events[0].revision == result.revision
    backend.close()

    reopened = Backend(data_dir)
    try:
        assert reopened.manager.get(ResourceKind.PEER, peer.id) == peer.model_copy(update={"version": 1})
        assert reopened.manager.get(ResourceKind.CLUSTER, cluster.id) is not None
        assert reopened.manager.revision > result.revision
    finally:
        reopened.close()


def test_what_the_sequencer_builds_without_validation_equals_what_validation_builds(data_dir: Path) -> None:
    """Events, batches and version-bumped resources are built from trusted values without pydantic's
    validation or model_construct: each must be the very model validation makes from its JSON."""
    from resources.events import Event
    from resources.state import Offline, PeerConnectionState

    backend = Backend(data_dir).start()
    try:
        sub = backend.manager.subscribe()
        assert isinstance(sub.get(1), Hello)
        peer = make_peer("bench-01")
        actions.store_peer_descriptor(backend.manager, peer, "alice")
        actions.store_peer_descriptor(backend.manager, peer, "alice")  # an update: version 2
        actions.set_peer_connection_state(backend.manager, peer.id, Offline(), "alice")
        actions.delete_peer_descriptor(backend.manager, peer.id, "alice")
        received = [sub.get(1) for _ in range(4)]
        batches = [b for b in received if isinstance(b, EventBatch)]
        assert len(batches) == 4
        for batch in batches:
            assert EventBatch.model_validate_json(batch.model_dump_json()) == batch
            assert batch.model_fields_set == {"events"}
            for event in batch.events:
                again = Event.model_validate_json(event.model_dump_json())
                assert again == event and type(again.resource) is type(event.resource)
                assert event.model_fields_set == set(Event.model_fields)
                assert event.model_copy(update={"actor": "bob"}).actor == "bob"  # a usable model
        stored = batches[1].events[0].resource
        assert stored is not None and stored.version == 2 and "version" in stored.model_fields_set
        assert stored == peer.model_copy(update={"version": 2})
        state = batches[2].events[0].resource
        assert state == PeerConnectionState(id=peer.id, state=Offline(), version=1)
        with pytest.raises(Exception, match="frozen"):
            stored.name = "bench-02"  # type: ignore[misc]  # still frozen
    finally:
        backend.close()
