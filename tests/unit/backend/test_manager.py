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
