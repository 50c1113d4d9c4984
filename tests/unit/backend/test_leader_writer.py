"""The leader-writer sequencer: who commits when, and that no queued write is ever stranded.

A writer in ``write`` commits the queued group itself when nobody else is committing; the
``lea-sequencer`` thread commits what was ``submit``-ted with nobody waiting. These tests hold a
commit in storage (a gate in ``store.append``) to make the queue build up behind a leader.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from backend import actions, rules
from backend.manager import Put, ResourcesManager, TxResult
from backend.settings import Settings
from backend.storage.sqlite import SqliteEventStore
from resources.errors import ShuttingDown, StorageFailed
from resources.events import Event
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.wire import EventBatch
from tests.helpers.factories import make_peer


class GatedStore(SqliteEventStore):
    """A store whose next append waits until the gate opens (``hold()`` arms it)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, durability="off")
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.appending_threads: list[str] = []

    def hold(self) -> None:
        self.entered.clear()
        self.gate.clear()

    def append(self, events: Sequence[Event], reserve_up_to: int | None = None) -> None:
        self.appending_threads.append(threading.current_thread().name)
        self.entered.set()
        assert self.gate.wait(30)
        super().append(events, reserve_up_to=reserve_up_to)


@pytest.fixture
def store(data_dir: Path) -> Iterator[GatedStore]:
    store = GatedStore(data_dir / "lea.db")
    yield store
    store.gate.set()
    store.close()


def manager_of(store: GatedStore, **settings: Any) -> ResourcesManager:
    manager = ResourcesManager(store, Settings(durability="off", **settings), rules=rules.check)
    manager.start()
    return manager


def test_a_lone_writer_commits_on_its_own_thread(store: GatedStore) -> None:
    manager = manager_of(store)
    try:
        actions.store_peer_descriptor(manager, make_peer("bench-01"), "alice")
        assert store.appending_threads[-1] == threading.current_thread().name
        future = manager.submit([Put(make_peer("bench-02"))], "alice")
        assert future.result(10).revision > 0
        assert store.appending_threads[-1] == "lea-sequencer"
    finally:
        manager.close()


def test_writers_queued_behind_a_leader_are_committed_as_one_group_in_order(store: GatedStore) -> None:
    manager = manager_of(store)
    sub = manager.subscribe()
    try:
        actions.store_peer_descriptor(manager, make_peer("bench-00"), "alice")
        store.hold()
        results: dict[int, TxResult] = {}
        errors: list[BaseException] = []

        def write(i: int) -> None:
            try:
                results[i] = manager.write([Put(make_peer(f"bench-{i:02d}"))], "alice")
            except BaseException as exc:
                errors.append(exc)

        leader = threading.Thread(target=write, args=(1,))
        leader.start()
        assert store.entered.wait(10)  # the leader is inside its commit
        others = [threading.Thread(target=write, args=(i,)) for i in range(2, 9)]
        submitted = [manager.submit([Put(make_peer(f"bench-{i:02d}"))], "bob") for i in range(9, 12)]
        for t in others:
            t.start()
        while len(manager._pending) < 7 + 3:  # every write is queued behind the held commit
            threading.Event().wait(0.005)
        appends_before = len(store.appending_threads)
        store.gate.set()
        for t in [leader, *others]:
            t.join(10)
        assert not errors
        assert all(f.result(10).revision > 0 for f in submitted)
        assert len(store.appending_threads) == appends_before + 1  # one group for the ten queued writes
        revisions = sorted([r.revision for r in results.values()] + [f.result().revision for f in submitted])
        assert revisions == list(range(revisions[0], revisions[0] + 11))
        seen = [e.revision for item in sub.drain() if isinstance(item, EventBatch) for e in item.events]
        assert seen == sorted(seen) and len(set(seen)) == len(seen) and set(revisions) <= set(seen)
    finally:
        store.gate.set()
        manager.close()


def test_a_writer_that_times_out_is_never_handed_the_leadership(store: GatedStore) -> None:
    manager = manager_of(store, write_timeout=0.2)
    try:
        store.hold()
        first: list[TxResult] = []
        leader = threading.Thread(target=lambda: first.append(manager.write([Put(make_peer("bench-01"))], "a")))
        leader.start()  # a writer leads (no wait of its own: the timeout is not its)
        assert store.entered.wait(10)
        with pytest.raises(StorageFailed, match=r"not committed within 0\.2 s"):
            manager.write([Put(make_peer("bench-02"))], "alice")  # queued behind the held commit
        later = manager.submit([Put(make_peer("bench-03"))], "alice")
        store.gate.set()
        leader.join(10)
        assert first and first[0].revision > 0
        # The leader, done, hands on: not to the writer that left (nobody would lead) but to the
        # sequencer thread, for the submitted write queued behind it.
        assert later.result(10).revision > 0
        # The abandoned write itself was committed by the next leader (a timeout never meant "not saved").
        names = {p.name for p in manager.resources_of(ResourceKind.PEER) if isinstance(p, PeerDescriptor)}
        assert "bench-02" in names
        actions.store_peer_descriptor(manager, make_peer("bench-04"), "alice")  # and writing goes on
    finally:
        store.gate.set()
        closer = threading.Thread(target=manager.close, daemon=True)  # a stranded queue never closes
        closer.start()
        closer.join(10)
    assert not closer.is_alive(), "close() waited forever: a queued write was stranded"


def test_close_commits_every_queued_write_then_refuses(store: GatedStore) -> None:
    manager = manager_of(store)
    store.hold()
    futures: list[Future[TxResult]] = [manager.submit([Put(make_peer(f"bench-{i:02d}"))], "a") for i in range(5)]
    assert store.entered.wait(10)
    closer = threading.Thread(target=manager.close)
    closer.start()
    store.gate.set()
    closer.join(10)
    assert not closer.is_alive()
    assert all(f.result(0).revision > 0 for f in futures)
    with pytest.raises(ShuttingDown):
        manager.write([Put(make_peer("bench-99"))], "a")
    assert isinstance(manager.submit([Put(make_peer("bench-98"))], "a").exception(0), ShuttingDown)


def test_an_unexpected_error_in_a_commit_fails_its_group_and_the_next_writes_go_on(
    store: GatedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = manager_of(store)
    try:
        original = manager._process
        calls = 0

        def broken_once(group: list[Any]) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("a bug")
            original(group)

        monkeypatch.setattr(manager, "_process", broken_once)
        with pytest.raises(RuntimeError, match="a bug"):
            manager.write([Put(make_peer("bench-01"))], "alice")
        assert actions.store_peer_descriptor(manager, make_peer("bench-02"), "alice").revision > 0
    finally:
        manager.close()
