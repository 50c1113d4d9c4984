"""The client store: net changes per applied batch, snapshot diffs, listeners (no Qt)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

import lea_app.sync.store as store_module
from lea_app.sync.store import Store, StoreChange
from resources.events import Event, EventType
from resources.kinds import ResourceKind
from resources.state import Online, PeerConnectionState
from tests.helpers.factories import make_cluster, make_peer
from tests.helpers.fake_connection import created, deleted, make_event, snapshot, updated

E = "e1"
PEER = ResourceKind.PEER


def recording(store: Store) -> list[StoreChange]:
    changes: list[StoreChange] = []
    store.listen(changes.append)
    return changes


def only(changes: list[StoreChange], kind: ResourceKind) -> StoreChange:
    matching = [c for c in changes if c.kind == kind]
    assert len(matching) == 1, changes
    return matching[0]


def online(peer_id: object) -> PeerConnectionState:
    return PeerConnectionState(id=peer_id, state=Online(remote_host="10.0.0.1", since=datetime(2024, 1, 1, tzinfo=UTC)))


# -- apply_events ---------------------------------------------------------------------------------
def test_insert_update_delete_in_separate_batches() -> None:
    store = Store()
    changes = recording(store)
    peer = make_peer("bench-01")

    store.apply_events([created(E, 1, peer)])
    assert changes == [StoreChange(PEER, inserted={peer.id})]
    assert store.get(PEER, peer.id) == peer

    renamed = peer.model_copy(update={"name": "bench-02", "version": 2})
    store.apply_events([updated(E, 2, renamed)])
    assert changes[1:] == [StoreChange(PEER, changed={peer.id})]
    assert store.get(PEER, peer.id) == renamed

    store.apply_events([deleted(E, 3, renamed)])
    assert changes[2:] == [StoreChange(PEER, removed={peer.id})]
    assert store.get(PEER, peer.id) is None
    assert len(store) == 0
    assert store.applied_events == 3


def test_insert_then_update_in_one_batch_is_one_insert() -> None:
    store = Store()
    changes = recording(store)
    peer = make_peer()
    newer = peer.model_copy(update={"location": "lab", "version": 2})

    store.apply_events([created(E, 1, peer), updated(E, 2, newer)])

    assert changes == [StoreChange(PEER, inserted={peer.id})]
    assert store.get(PEER, peer.id) == newer
    assert store.applied_events == 2


def test_insert_then_delete_in_one_batch_emits_nothing() -> None:
    store = Store()
    changes = recording(store)
    events: list[list[Event]] = []
    store.listen_events(events.append)
    peer = make_peer()

    store.apply_events([created(E, 1, peer), deleted(E, 2, peer)])

    assert changes == []
    assert len(store) == 0
    # the raw events are still heard (the event log shows them) and counted
    assert [e.revision for e in events[0]] == [1, 2]
    assert store.applied_events == 2


def test_update_then_delete_in_one_batch_is_a_removal() -> None:
    store = Store()
    peer = make_peer()
    store.apply_events([created(E, 1, peer)])
    changes = recording(store)

    store.apply_events([updated(E, 2, peer.model_copy(update={"version": 2})), deleted(E, 3, peer)])

    assert changes == [StoreChange(PEER, removed={peer.id})]


def test_delete_then_recreate_in_one_batch_is_a_change() -> None:
    store = Store()
    peer = make_peer()
    store.apply_events([created(E, 1, peer)])
    changes = recording(store)
    again = peer.model_copy(update={"version": 5})

    store.apply_events([deleted(E, 2, peer), created(E, 3, again)])

    assert changes == [StoreChange(PEER, changed={peer.id})]
    assert store.get(PEER, peer.id) == again


def test_one_batch_emits_one_change_per_kind() -> None:
    store = Store()
    changes = recording(store)
    a, b = make_peer("bench-a"), make_peer("bench-b")
    cluster = make_cluster("cluster-1", a, b)
    tx = uuid4()

    store.apply_events(
        [created(E, 1, a, tx), created(E, 2, b, tx), created(E, 3, cluster, tx), created(E, 4, online(a.id), tx)]
    )

    assert sorted(changes, key=lambda c: c.kind) == sorted(
        [
            StoreChange(PEER, inserted={a.id, b.id}),
            StoreChange(ResourceKind.CLUSTER, inserted={cluster.id}),
            StoreChange(ResourceKind.PEER_CONNECTION_STATE, inserted={a.id}),
        ],
        key=lambda c: c.kind,
    )
    # the same id in two kinds are two resources
    assert store.get(PEER, a.id) == a
    assert store.get(ResourceKind.PEER_CONNECTION_STATE, a.id) == online(a.id)
    assert set(store.all(PEER)) == {a.id, b.id}
    assert len(store) == 4
    assert len(list(store.resources())) == 4


def test_delete_of_an_unknown_resource_emits_nothing() -> None:
    store = Store()
    changes = recording(store)
    store.apply_events([make_event(E, 1, EventType.DELETED, kind=PEER, id=uuid4())])
    assert changes == []
    assert len(store) == 0


def test_updated_event_without_resource_removes_it() -> None:
    store = Store()
    peer = make_peer()
    store.apply_events([created(E, 1, peer)])
    changes = recording(store)
    store.apply_events([make_event(E, 2, EventType.UPDATED, kind=PEER, id=peer.id)])
    assert changes == [StoreChange(PEER, removed={peer.id})]


def test_empty_change_is_falsy() -> None:
    assert not StoreChange(PEER)
    assert StoreChange(PEER, removed={uuid4()})


# -- apply_snapshot -------------------------------------------------------------------------------
def test_snapshot_into_an_empty_store_inserts_everything() -> None:
    store = Store()
    changes = recording(store)
    a, b = make_peer("bench-a"), make_peer("bench-b")
    state = online(a.id)

    store.apply_snapshot(snapshot(E, 7, a, b, state))

    assert sorted(changes, key=lambda c: c.kind) == [
        StoreChange(PEER, inserted={a.id, b.id}),
        StoreChange(ResourceKind.PEER_CONNECTION_STATE, inserted={a.id}),
    ]
    assert store.get(PEER, b.id) == b
    assert len(store) == 3


def test_snapshot_is_diffed_against_the_store() -> None:
    store = Store()
    same, changing, vanishing = make_peer("bench-same"), make_peer("bench-chg"), make_peer("bench-gone")
    store.apply_snapshot(snapshot(E, 3, same, changing, vanishing, online(same.id)))
    changes = recording(store)
    events: list[list[Event]] = []
    store.listen_events(events.append)

    changed = changing.model_copy(update={"location": "lab 2", "version": 4})
    new = make_peer("bench-new")
    store.apply_snapshot(snapshot(E, 9, same, changed, new))

    assert sorted(changes, key=lambda c: c.kind) == [
        StoreChange(PEER, inserted={new.id}, changed={changing.id}, removed={vanishing.id}),
        StoreChange(ResourceKind.PEER_CONNECTION_STATE, removed={same.id}),
    ]
    assert set(store.all(PEER)) == {same.id, changing.id, new.id}
    assert store.get(PEER, changing.id) == changed
    assert store.get(ResourceKind.PEER_CONNECTION_STATE, same.id) is None
    assert events == []  # a snapshot is not an event batch
    assert store.applied_events == 0


def test_identical_snapshot_emits_nothing() -> None:
    store = Store()
    peers = [make_peer(f"bench-{i}") for i in range(3)]
    store.apply_snapshot(snapshot(E, 3, *peers))
    changes = recording(store)

    # equal but not identical objects (as after a round trip through JSON)
    store.apply_snapshot(snapshot(E, 3, *[type(p).model_validate_json(p.model_dump_json()) for p in peers]))

    assert changes == []


def test_empty_snapshot_removes_everything() -> None:
    store = Store()
    a = make_peer()
    store.apply_events([created(E, 1, a), created(E, 2, online(a.id))])
    changes = recording(store)

    store.apply_snapshot(snapshot("e2", 5))

    assert sorted(changes, key=lambda c: c.kind) == [
        StoreChange(PEER, removed={a.id}),
        StoreChange(ResourceKind.PEER_CONNECTION_STATE, removed={a.id}),
    ]
    assert len(store) == 0


# -- listeners ------------------------------------------------------------------------------------
def test_listen_returns_an_unsubscribe() -> None:
    store = Store()
    first: list[StoreChange] = []
    second: list[StoreChange] = []
    stop_first = store.listen(first.append)
    store.listen(second.append)
    a, b = make_peer("bench-a"), make_peer("bench-b")

    store.apply_events([created(E, 1, a)])
    stop_first()
    stop_first()  # twice is harmless
    store.apply_events([created(E, 2, b)])

    assert first == [StoreChange(PEER, inserted={a.id})]
    assert second == [StoreChange(PEER, inserted={a.id}), StoreChange(PEER, inserted={b.id})]


def test_listeners_see_the_store_already_updated() -> None:
    store = Store()
    peer = make_peer()
    seen = []
    store.listen(lambda change: seen.append(store.get(change.kind, next(iter(change.inserted)))))
    store.apply_events([created(E, 1, peer)])
    assert seen == [peer]


def test_a_listener_may_unsubscribe_while_being_called() -> None:
    store = Store()
    calls: list[StoreChange] = []
    unsubscribe = None

    def once(change: StoreChange) -> None:
        calls.append(change)
        assert unsubscribe is not None
        unsubscribe()

    unsubscribe = store.listen(once)
    other: list[StoreChange] = []
    store.listen(other.append)
    store.apply_events([created(E, 1, make_peer("bench-a"))])
    store.apply_events([created(E, 2, make_peer("bench-b"))])
    assert len(calls) == 1
    assert len(other) == 2


def test_listen_events_hears_every_applied_batch_once() -> None:
    store = Store()
    batches: list[list[Event]] = []
    stop = store.listen_events(batches.append)
    a, b = make_peer("bench-a"), make_peer("bench-b")
    first = [created(E, 1, a), created(E, 2, b)]
    second = [deleted(E, 3, a)]

    store.apply_events(first)
    store.apply_events(iter(second))  # any iterable, consumed once
    stop()
    store.apply_events([deleted(E, 4, b)])

    assert batches == [first, second]
    assert store.applied_events == 4


def test_the_store_remembers_the_names_of_deleted_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store()
    peers = [make_peer(f"bench-{n:02d}") for n in range(3)]
    store.apply_events([created(E, n + 1, p) for n, p in enumerate(peers)])
    assert store.deleted_name(peers[0].id) is None  # still there
    monkeypatch.setattr(store_module, "GONE_NAMES", 2)  # a small cap for the test
    store.apply_events([deleted(E, 4 + n, p) for n, p in enumerate(peers)])
    assert [store.deleted_name(p.id) for p in peers] == [None, "bench-01", "bench-02"]  # the oldest went
