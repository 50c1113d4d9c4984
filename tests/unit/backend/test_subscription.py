"""Subscriptions (DESIGN section 4): replay from the ring, resync signals, bounded queues, snapshots."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backend import actions
from backend.backend import Backend
from backend.subscription import LoopWakeup, Subscription
from resources import Event, ResourceKind, StateSnapshot
from resources.errors import PayloadTooLarge
from resources.state import Offline, Online
from resources.wire import EventBatch, Hello, Resync
from tests.helpers.factories import make_cluster, make_peer

ACTOR = "alice"


@pytest.fixture
def backend(data_dir: Path) -> Iterator[Backend]:
    b = Backend(data_dir, durability="off", ring_size=16).start()
    try:
        yield b
    finally:
        b.close()


def add_peers(backend: Backend, count: int, prefix: str = "bench") -> list[int]:
    return [
        actions.store_peer_descriptor(backend.manager, make_peer(f"{prefix}-{i:03}"), ACTOR).revision
        for i in range(count)
    ]


def deliveries(sub: Subscription) -> list[Any]:
    return sub.drain()


def events_of(items: list[Any]) -> list[Event]:
    return [e for item in items if isinstance(item, EventBatch) for e in item.events]


def test_hello_carries_the_epoch_and_the_published_revision(backend: Backend) -> None:
    revisions = add_peers(backend, 3)
    sub = backend.manager.subscribe()
    hello = sub.get(1)
    assert isinstance(hello, Hello)
    assert (
        hello.epoch == backend.manager.epoch and hello.revision == revisions[-1] == backend.manager.revision
    )
    assert sub.get_nowait() is None  # no `after`: only what happens from now on
    later = add_peers(backend, 1, "late")
    batch = sub.get(1)
    assert isinstance(batch, EventBatch) and [e.revision for e in batch.events] == later


def test_subscribe_after_replays_from_the_ring_in_order(backend: Backend) -> None:
    revisions = add_peers(backend, 8)
    after = revisions[2]
    sub = backend.manager.subscribe(after=after, epoch=backend.manager.epoch)
    items = deliveries(sub)
    assert isinstance(items[0], Hello)
    assert all(isinstance(i, EventBatch) for i in items[1:])  # one batch per transaction
    assert [e.revision for e in events_of(items)] == revisions[3:]
    # ... and then continues live, without a gap or a duplicate.
    more = add_peers(backend, 2, "more")
    assert [e.revision for e in events_of(deliveries(sub))] == more


def test_subscribe_after_the_current_revision_gets_nothing_old(backend: Backend) -> None:
    revisions = add_peers(backend, 4)
    sub = backend.manager.subscribe(after=revisions[-1])
    items = deliveries(sub)
    assert len(items) == 1 and isinstance(items[0], Hello)


def test_replay_keeps_transactions_together_and_filters_kinds(backend: Backend) -> None:
    a, b = make_peer("bench-a"), make_peer("bench-b")
    start = backend.manager.revision
    actions.store_resources(backend.manager, [a, b, make_cluster("cluster-ab", a, b)], ACTOR)
    actions.set_peer_connection_state(backend.manager, a.id, Offline(), "broker")
    sub = backend.manager.subscribe(after=start)
    batches = [i for i in deliveries(sub) if isinstance(i, EventBatch)]
    assert [len(b.events) for b in batches] == [3, 1]
    assert len({e.tx for e in batches[0].events}) == 1
    only_clusters = backend.manager.subscribe(after=start, kinds=[ResourceKind.CLUSTER])
    kinds = [e.kind for e in events_of(deliveries(only_clusters))]
    assert kinds == [ResourceKind.CLUSTER]


def test_after_older_than_the_ring_gets_a_resync(backend: Backend) -> None:
    revisions = add_peers(backend, 20)  # the ring holds the last 16 events
    sub = backend.manager.subscribe(after=revisions[0])
    items = deliveries(sub)
    assert isinstance(items[0], Hello)
    assert isinstance(items[1], Resync) and "older" in items[1].reason
    assert len(items) == 2
    # The oldest revision still in the ring can be served.
    ok = backend.manager.subscribe(after=revisions[-17])
    assert [e.revision for e in events_of(deliveries(ok))] == revisions[-16:]
    # A resynced subscriber keeps receiving new events.
    more = add_peers(backend, 1, "more")
    assert [e.revision for e in events_of(deliveries(sub))] == more


def test_after_from_another_epoch_gets_a_resync(backend: Backend) -> None:
    revisions = add_peers(backend, 3)
    sub = backend.manager.subscribe(after=revisions[1], epoch="0" * 32)
    items = deliveries(sub)
    assert isinstance(items[1], Resync) and "epoch" in items[1].reason
    assert events_of(items) == []


def test_after_ahead_of_the_backend_gets_a_resync(backend: Backend) -> None:
    add_peers(backend, 2)
    items = deliveries(backend.manager.subscribe(after=backend.manager.revision + 5))
    assert [type(i) for i in items] == [Hello, Resync]


def test_after_a_restart_the_old_epoch_resyncs(data_dir: Path) -> None:
    first = Backend(data_dir, durability="off").start()
    try:
        revisions = add_peers(first, 3)
        old_epoch = first.manager.epoch
    finally:
        first.close()
    second = Backend(data_dir, durability="off").start()
    try:
        assert second.manager.epoch != old_epoch
        items = deliveries(second.manager.subscribe(after=revisions[-1], epoch=old_epoch))
        assert [type(i) for i in items] == [Hello, Resync]
        # Without the epoch, an `after` the new run's ring cannot serve resyncs too.
        items = deliveries(second.manager.subscribe(after=revisions[0]))
        assert [type(i) for i in items] == [Hello, Resync]
    finally:
        second.close()


def test_an_overflowing_subscriber_gets_a_resync_and_then_later_events(backend: Backend) -> None:
    slow = backend.manager.subscribe(max_queued_events=16)
    fast = backend.manager.subscribe()
    assert isinstance(fast.get(1), Hello)
    fast_seen: list[int] = []
    revisions: list[int] = []
    for i in range(40):  # the slow one never reads meanwhile; writers are never held up
        revisions += add_peers(backend, 1, f"p{i:02}")
        fast_seen += [e.revision for e in events_of(deliveries(fast))]
    assert fast_seen == revisions
    assert slow.overflows >= 1
    items = deliveries(slow)
    resyncs = [n for n, item in enumerate(items) if isinstance(item, Resync)]
    assert resyncs, items
    tail = items[resyncs[-1] + 1 :]
    tail_revisions = [e.revision for e in events_of(tail)]
    # After the (last) resync, the events continue in order up to the newest, without a gap.
    assert tail_revisions == revisions[-len(tail_revisions) :]
    assert 0 < len(tail_revisions) <= 16
    # Once it has caught up it is served normally again.
    more = add_peers(backend, 3, "more")
    assert [e.revision for e in events_of(deliveries(slow))] == more


def test_a_subscriber_holds_at_most_one_pending_resync(backend: Backend) -> None:
    # A storm of failed commits offers a Resync each time; a subscriber that is not reading keeps one,
    # and what was queued between two of them is dropped (the snapshot it refetches covers it).
    sub = backend.manager.subscribe()
    add_peers(backend, 1, "before")
    for i in range(1000):
        sub._offer(Resync(reason=f"a commit failed ({i})"))
        if i % 100 == 0:
            add_peers(backend, 1, f"between{i:03}")
    after = add_peers(backend, 2, "after")
    items = deliveries(sub)
    assert isinstance(items[0], Hello)
    assert [type(item) for item in items].count(Resync) == 1, items
    assert sub.coalesced == 999
    resync = next(n for n, item in enumerate(items) if isinstance(item, Resync))
    assert [e.revision for e in events_of(items[resync + 1 :])] == after  # only what came after the last
    assert len(events_of(items[:resync])) == 1  # "before" was queued ahead of the first Resync


def test_a_subscriber_that_keeps_up_never_resyncs(backend: Backend) -> None:
    sub = backend.manager.subscribe(max_queued_events=16)
    seen: list[int] = []
    revisions: list[int] = []
    for i in range(50):
        revisions += add_peers(backend, 1, f"p{i:02}")
        items = deliveries(sub)
        assert not any(isinstance(item, Resync) for item in items)
        seen += [e.revision for e in events_of(items)]
    assert seen == revisions and sub.overflows == 0


def test_fetch_snapshot_is_consistent_with_delivered_events(backend: Backend) -> None:
    peers = [make_peer(f"bench-{i:02}") for i in range(4)]
    for p in peers:
        actions.store_peer_descriptor(backend.manager, p, ACTOR)
    initial = backend.manager.fetch_snapshot()
    sub = backend.manager.subscribe(after=initial.revision)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(150):
                peer = peers[i % len(peers)]
                if i % 3 == 0:
                    state: Online | Offline = Online(remote_host=f"10.0.0.{i % 250}", since=datetime.now(UTC))
                    actions.set_peer_connection_state(backend.manager, peer.id, state, "broker")
                elif i % 3 == 1:
                    actions.set_peer_connection_state(backend.manager, peer.id, Offline(), "broker")
                else:
                    updated = peer.model_copy(update={"location": f"lab {i}"})
                    actions.store_peer_descriptor(backend.manager, updated, ACTOR)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    snapshots: list[StateSnapshot] = []
    while not stop.is_set():
        snapshots.append(backend.manager.fetch_snapshot())
    thread.join()
    snapshots.append(backend.manager.fetch_snapshot())
    assert not errors
    assert len({s.revision for s in snapshots}) > 1

    items = deliveries(sub)
    assert isinstance(items[0], Hello) and not any(isinstance(i, Resync) for i in items)
    events = events_of(items)
    assert [e.revision for e in events] == list(range(initial.revision + 1, events[-1].revision + 1))
    assert events[-1].revision == snapshots[-1].revision
    # Every snapshot equals the initial one plus the events up to its revision (one pass over the events).
    expected = {(r.kind, r.id): r for r in initial.resources}
    applied = 0
    for snapshot in sorted(snapshots, key=lambda s: s.revision):
        assert snapshot.epoch == initial.epoch
        while applied < len(events) and events[applied].revision <= snapshot.revision:
            e = events[applied]
            if e.resource is None:
                expected.pop((e.kind, e.id), None)
            else:
                expected[(e.kind, e.id)] = e.resource
            applied += 1
        assert {(r.kind, r.id): r for r in snapshot.resources} == expected, snapshot.revision


def test_snapshot_filtered_by_kind(backend: Backend) -> None:
    a = make_peer("bench-a")
    actions.store_peer_descriptor(backend.manager, a, ACTOR)
    actions.set_peer_connection_state(backend.manager, a.id, Offline(), "broker")
    snapshot = backend.manager.fetch_snapshot(kinds=[ResourceKind.PEER_CONNECTION_STATE])
    assert [r.kind for r in snapshot.resources] == [ResourceKind.PEER_CONNECTION_STATE]
    assert snapshot.revision == backend.manager.revision


def test_closing_the_backend_ends_every_subscription(data_dir: Path) -> None:
    backend = Backend(data_dir, durability="off").start()
    sub = backend.manager.subscribe()
    add_peers(backend, 2)
    backend.close()
    items = list(sub)  # iteration ends once closed and drained
    assert isinstance(items[0], Hello) and len(events_of(items)) == 2
    assert sub.closed
    # Subscribing to a closed backend does not hang: the subscription is already finished.
    late = backend.manager.subscribe()
    assert [type(i) for i in late] == [Hello]


def test_unsubscribing_stops_deliveries(backend: Backend) -> None:
    sub = backend.manager.subscribe()
    sub.close()
    add_peers(backend, 2)
    assert [type(i) for i in sub.drain()] in ([Hello], [])
    assert sub.get(0.1) is None


def test_an_accept_filter_narrows_what_a_subscriber_is_handed(backend: Backend) -> None:
    manager = backend.manager
    wanted = make_peer("wanted-01", demo=True)
    sub = manager.subscribe(
        kinds=[ResourceKind.PEER], accept=lambda e: e.resource is not None and getattr(e.resource, "demo", False)
    )
    assert isinstance(sub.get(1), Hello)
    actions.store_peer_descriptor(manager, make_peer("ordinary-01"), "alice")
    actions.store_peer_descriptor(manager, wanted, "alice")
    batch = sub.get(5)
    assert isinstance(batch, EventBatch)
    assert [e.id for e in batch.events] == [wanted.id]
    assert sub.get_nowait() is None


# -- bounded in bytes (issue #9) ------------------------------------------------------------------
def test_the_ring_is_bounded_in_bytes_as_well_as_in_events(data_dir: Path) -> None:
    backend = Backend(data_dir, durability="off", ring_size=1000, ring_bytes=64 * 1024).start()
    try:
        revisions = [
            actions.store_peer_descriptor(backend.manager, make_peer(f"bulky-{i:02}", devices=40), ACTOR).revision
            for i in range(30)  # ~5 kB each: ~150 kB, more than the ring's 64 KiB
        ]
        items = deliveries(backend.manager.subscribe(after=revisions[0]))
        assert [type(i) for i in items] == [Hello, Resync] and "older" in items[1].reason
        recent = backend.manager.subscribe(after=revisions[-6])  # ~25 kB: still held
        assert [e.revision for e in events_of(deliveries(recent))] == revisions[-5:]
    finally:
        backend.close()


def test_a_subscriber_queue_overflows_in_bytes_as_well_as_in_events(data_dir: Path) -> None:
    backend = Backend(data_dir, durability="off", subscriber_queue_bytes=64 * 1024).start()
    try:
        slow = backend.manager.subscribe(max_queued_events=10_000)
        stream = backend.manager.subscribe_stream()
        revisions = [
            actions.store_peer_descriptor(backend.manager, make_peer(f"bulky-{i:02}", devices=40), ACTOR).revision
            for i in range(30)  # nobody reads meanwhile
        ]
        for sub in (slow, stream):
            assert sub.overflows >= 1
            assert sub.queued[1] <= 64 * 1024
        items = deliveries(slow)
        last_resync = max(n for n, item in enumerate(items) if isinstance(item, Resync))
        tail = [e.revision for e in events_of(items[last_resync + 1 :])]
        assert tail and tail == revisions[-len(tail) :]  # after the resync: in order up to the newest
        assert any('"type":"resync"' in text for text in stream.drain())
    finally:
        backend.close()


def test_every_watcher_is_sent_one_encoding_of_each_transaction(backend: Backend) -> None:
    start = backend.manager.revision
    first, second = backend.manager.subscribe_stream(), backend.manager.subscribe_stream()
    a, b = make_peer("bench-a"), make_peer("bench-b")
    actions.store_resources(backend.manager, [a, b, make_cluster("cluster-ab", a, b)], ACTOR)
    texts = [[t for t in sub.drain() if '"type":"events"' in t] for sub in (first, second)]
    assert len(texts[0]) == 1 and texts[0][0] is texts[1][0]  # the same string: encoded once
    in_process = events_of(deliveries(backend.manager.subscribe(after=start)))
    assert texts[0][0] == EventBatch(events=tuple(in_process)).model_dump_json()  # what pydantic would send
    # A replay hands out the ring's text as it is; one from inside a transaction only its later events.
    assert backend.manager.subscribe_stream(after=start).drain()[1] is texts[0][0]
    partial = backend.manager.subscribe_stream(after=start + 1).drain()[1]
    assert [e.revision for e in EventBatch.model_validate_json(partial).events] == [start + 2, start + 3]


def test_a_resource_over_max_event_bytes_is_refused_and_changes_nothing(data_dir: Path) -> None:
    backend = Backend(data_dir, durability="off", max_event_bytes=4096).start()
    try:
        before = backend.manager.revision
        small, large = make_peer("small-01"), make_peer("large-01", devices=60)  # ~7 kB as stored
        with pytest.raises(PayloadTooLarge) as refused:
            actions.store_resources(backend.manager, [small, large], ACTOR)  # all or nothing
        assert refused.value.details["id"] == str(large.id) and refused.value.details["limit"] == 4096
        assert backend.manager.revision == before
        assert backend.manager.get(ResourceKind.PEER, small.id) is None
        assert backend.store.event_count() == 0
        result = actions.store_peer_descriptor(backend.manager, small, ACTOR)
        assert result.revision == before + 1  # no revision was spent on the refused write
    finally:
        backend.close()


# -- the hop onto an asyncio loop (embedded connection, WebSocket sender) ----------------------------
def test_a_delivery_from_the_writers_thread_wakes_a_task_on_the_loop(backend: Backend) -> None:
    async def go() -> list[Any]:
        subscription = backend.manager.subscribe()
        ready = LoopWakeup(subscription, asyncio.get_running_loop())
        try:
            ready.clear()
            taken = subscription.take(10)  # the Hello
            writer = threading.Thread(target=add_peers, args=(backend, 1))
            writer.start()
            await asyncio.wait_for(ready.wait(), 15)
            writer.join()
            return taken + subscription.take(10)
        finally:
            ready.detach()
            subscription.close()

    hello, batch = asyncio.run(go())
    assert isinstance(hello, Hello) and isinstance(batch, EventBatch)


def test_a_detached_or_closed_loop_is_not_woken(backend: Backend) -> None:
    loop = asyncio.new_event_loop()
    subscription = backend.manager.subscribe()
    ready = LoopWakeup(subscription, loop)
    assert subscription.on_ready is not None
    loop.close()
    add_peers(backend, 1)  # a wake-up aimed at a closed loop (shutdown) is dropped, not raised
    ready.detach()
    assert subscription.on_ready is None
    add_peers(backend, 1, prefix="later")
    assert len(subscription.drain()) == 3
    subscription.close()
