"""A failed group commit fails every write of its group, resets the working state and starts a new epoch.

The store is wrapped so that one append blocks until the test has queued a whole group of writes
behind it, and the next append fails with ``sqlite3.OperationalError``: before the transaction,
in the middle of the INSERTs, or at COMMIT (the three places a real disk or lock error shows up).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from backend import actions, admin
from backend.backend import Backend
from backend.manager import Delete, Put, TxResult
from resources import ClusterDeployment, PeerDescriptor, ResourceKind
from resources.errors import NameTaken, StorageFailed
from resources.events import Event, StateSnapshot
from resources.kinds import PERSISTED_KINDS
from resources.resource import AnyResource
from resources.state import Offline, Online, PeerConnectionState
from resources.wire import EventBatch, Hello, Resync
from tests.helpers.factories import make_cluster, make_peer

WAIT = 10.0
ONLINE = Online(remote_host="10.0.0.7", since=datetime(2024, 5, 1, tzinfo=UTC))
OFFLINE = Offline()


class FlakyConnection:
    """Delegates to a real sqlite3 connection; can fail the next executemany or COMMIT once."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.fail: str | None = None

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.fail == "commit" and sql.strip().upper() == "COMMIT":
            self.fail = None
            raise sqlite3.OperationalError("disk I/O error")
        return self._conn.execute(sql, *args)

    def executemany(self, sql: str, rows: Sequence[Any]) -> sqlite3.Cursor:
        if self.fail == "insert":
            self.fail = None
            self._conn.executemany(sql, list(rows)[:1])  # a partial write inside the transaction
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class Injector:
    """Wraps ``store.append``: hold the next append until released, then fail the one after it."""

    def __init__(self, backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
        self.store = backend.store
        self.real_append = backend.store.append
        self.conn = FlakyConnection(backend.store._conn)  # type: ignore[attr-defined]  # SQLite here
        monkeypatch.setattr(backend.store, "_conn", self.conn)
        monkeypatch.setattr(backend.store, "append", self._append)
        self.mode: str | None = None
        self.hold_next = False
        self.holding = threading.Event()
        self.release = threading.Event()
        self.failed_groups: list[list[Event]] = []
        self.failed_reservations: list[int | None] = []
        self.group_sizes: list[int] = []

    def arm(self, mode: str) -> None:
        self.mode = mode
        self.hold_next = True
        self.holding.clear()
        self.release.clear()

    def _append(self, events: Sequence[Event], reserve_up_to: int | None = None) -> None:
        self.group_sizes.append(len({e.tx for e in events}))
        if self.hold_next:
            self.hold_next = False
            self.holding.set()
            assert self.release.wait(WAIT), "the test never released the held append"
            self.real_append(events, reserve_up_to)
            return
        mode, self.mode = self.mode, None
        if mode is None:
            self.real_append(events, reserve_up_to)
            return
        self.failed_groups.append(list(events))
        self.failed_reservations.append(reserve_up_to)
        if mode == "before":
            raise sqlite3.OperationalError("unable to open database file")
        self.conn.fail = mode
        try:
            self.real_append(events, reserve_up_to)
        finally:
            assert self.conn.fail is None, f"the injected {mode} failure was never reached"
        raise AssertionError("the injected failure did not propagate out of append")


@pytest.fixture
def backend(data_dir: Path) -> Iterator[Backend]:
    b = Backend(data_dir, durability="full").start()
    try:
        yield b
    finally:
        b.close()


def _resources(snapshot: StateSnapshot) -> dict[tuple[ResourceKind, UUID], AnyResource]:
    return {(r.kind, r.id): r for r in snapshot.resources}


def _persisted(resources: dict[tuple[ResourceKind, UUID], AnyResource]) -> dict[Any, AnyResource]:
    return {k: v for k, v in resources.items() if k[0] in PERSISTED_KINDS}


@pytest.mark.parametrize("mode", ["before", "insert", "commit"])
def test_failed_commit_fails_its_whole_group_and_starts_a_new_epoch(
    data_dir: Path, backend: Backend, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    manager = backend.manager
    # -- acknowledged state before the failure -----------------------------------------------
    keep = make_peer("bench-keep")
    gone = make_peer("bench-gone")
    upd = make_peer("bench-upd")
    cluster = make_cluster("cluster-keep", keep)
    acked = [
        actions.store_peer_descriptor(manager, keep, "alice"),
        actions.store_peer_descriptor(manager, gone, "alice"),
        actions.store_peer_descriptor(manager, upd, "alice"),
        actions.store_cluster_descriptor(manager, cluster, "alice"),
    ]
    subs = [manager.subscribe(), manager.subscribe()]
    old_epoch = manager.epoch
    before = manager.fetch_snapshot()
    injector = Injector(backend, monkeypatch)

    # -- a held group (one write), and the failing group queued behind it ----------------------
    injector.arm(mode)
    held_peer = make_peer("bench-held")
    held = manager.submit([Put(held_peer, create_only=True)], "alice")
    assert injector.holding.wait(WAIT)

    new_peer = make_peer("new-one")
    new_cluster = make_cluster("new-cluster", new_peer)
    failing: list[Future[TxResult]] = [
        manager.submit([Put(new_peer, create_only=True)], "bob"),
        manager.submit([Put(new_cluster)], "bob"),  # depends on the write just before, same group
        manager.submit([Put(upd.model_copy(update={"name": "bench-renamed"}), expected_version=1)], "bob"),
        manager.submit([Delete(ResourceKind.PEER, gone.id, expected_version=1)], "bob"),
        manager.submit([Put(ClusterDeployment(id=cluster.id))], "bob"),
        manager.submit([Put(PeerConnectionState(id=keep.id, state=ONLINE))], "bob"),
    ]
    # Broken rules inside the same group still fail with their own error, not StorageFailed:
    # the name is taken by a committed peer, and by a write accepted earlier in this very group.
    rejected = [
        manager.submit([Put(make_peer("BENCH-KEEP"), create_only=True)], "bob"),
        manager.submit([Put(make_peer("New-One"), create_only=True)], "bob"),
    ]
    injector.release.set()

    held_result = held.result(WAIT)
    for future in failing:
        with pytest.raises(StorageFailed, match="could not be saved"):
            future.result(WAIT)
    for future in rejected:
        with pytest.raises(NameTaken):
            future.result(WAIT)

    # The failing group really held several writes (all six accepted ones), and nothing of it stuck.
    assert len(injector.failed_groups) == 1
    attempted = injector.failed_groups[0]
    assert len({e.tx for e in attempted}) == 5  # the volatile connection state is never stored
    assert max(injector.group_sizes) >= 5
    max_attempted = max(e.revision for e in attempted)
    stored = list(backend.store.read_events())
    assert stored[-1].revision == held_result.revision
    assert not any(e.revision in {a.revision for a in attempted} for e in stored)
    assert not any(e.id in (new_peer.id, new_cluster.id) for e in stored)
    assert backend.store.integrity_check() == "ok"

    # -- published state and snapshot: exactly the acknowledged writes -------------------------
    expected = _resources(before)
    held_event = held_result.events[0]
    assert held_event.resource is not None
    expected[(ResourceKind.PEER, held_peer.id)] = held_event.resource
    after = manager.fetch_snapshot()
    assert _resources(after) == expected
    assert after.epoch == manager.epoch != old_epoch
    assert manager.get(ResourceKind.PEER, new_peer.id) is None
    assert manager.get(ResourceKind.CLUSTER, new_cluster.id) is None
    current_upd = manager.get(ResourceKind.PEER, upd.id)
    assert isinstance(current_upd, PeerDescriptor) and current_upd.name == "bench-upd" and current_upd.version == 1
    assert manager.get(ResourceKind.PEER, gone.id) is not None
    assert manager.get(ResourceKind.CLUSTER_DEPLOYMENT, cluster.id) is None
    assert manager.get(ResourceKind.PEER_CONNECTION_STATE, keep.id) is None

    # -- every subscriber: Hello, the held write, then Resync; never an event of the failed group -
    for sub in subs:
        deliveries = sub.drain()
        assert [type(d) for d in deliveries] == [Hello, EventBatch, Resync], deliveries
        hello, batch, _ = deliveries
        assert isinstance(hello, Hello) and hello.epoch == old_epoch
        assert isinstance(batch, EventBatch) and batch.events == held_result.events
    # Resuming from the old epoch is refused; a new subscriber starts in the new epoch.
    stale = manager.subscribe(after=held_result.revision, epoch=old_epoch)
    assert [type(d) for d in stale.drain()] == [Hello, Resync]
    fresh = manager.subscribe()
    first = fresh.get(WAIT)
    assert isinstance(first, Hello) and first.epoch == manager.epoch

    # -- writes after the failure succeed, against the reset working state ----------------------
    retried = [
        actions.store_peer_descriptor(manager, new_peer, "carol", create_only=True),
        actions.store_cluster_descriptor(manager, new_cluster, "carol"),
        actions.store_peer_descriptor(
            manager, upd.model_copy(update={"name": "bench-renamed"}), "carol", expected_version=1
        ),
        actions.delete_peer_descriptor(manager, gone.id, "carol", expected_version=1),
        actions.store_cluster_deployment(manager, cluster.id, "carol"),
        actions.set_peer_connection_state(manager, keep.id, ONLINE, "carol"),
    ]
    revisions = [r.revision for r in retried]
    assert revisions == sorted(revisions)
    assert revisions[0] > max_attempted > held_result.revision
    assert retried[2].version == 2
    for sub in (*subs, fresh):
        batches = sub.drain()
        assert all(isinstance(b, EventBatch) for b in batches), batches
        seen = [e for b in batches if isinstance(b, EventBatch) for e in b.events]
        # In order, without gaps, from the first retried write on (the deployment operator, reacting
        # to the retried deployment, may add volatile events of its own in between and after).
        assert [e.revision for e in seen] == list(range(revisions[0], revisions[0] + len(seen)))
        assert {e.epoch for e in seen} == {manager.epoch}
        assert {r.revision for r in retried} <= {e.revision for e in seen}

    # -- a restart restores exactly the acknowledged writes ------------------------------------
    live = _persisted(_resources(manager.fetch_snapshot()))
    highest = manager.revision
    backend.close()
    reopened = Backend(data_dir).start()
    try:
        assert _persisted(_resources(reopened.manager.fetch_snapshot())) == live
        for result in (*acked[:1], *acked[2:], *retried[:3]):  # acked[1] was deleted since
            assert result.id is not None
            res = reopened.manager.get(
                ResourceKind.CLUSTER if result.id in (cluster.id, new_cluster.id) else ResourceKind.PEER,
                result.id,
            )
            assert res is not None and res.version >= result.version
        assert reopened.manager.get(ResourceKind.PEER, gone.id) is None
        assert reopened.manager.get(ResourceKind.PEER_CONNECTION_STATE, keep.id) is None  # volatile
        assert reopened.manager.revision >= highest
        again = actions.store_peer_descriptor(reopened.manager, make_peer("after-restart"), "dave")
        assert again.revision > max(highest, max_attempted)
        assert admin.verify(reopened.store).ok
        assert reopened.store.integrity_check() == "ok"
    finally:
        reopened.close()


def test_revisions_handed_out_after_a_failed_commit_survive_a_crash(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failed group's revision reservation was never stored: later revisions must reserve again.

    With a tiny revision block, the failing group carries the new high-water mark. If the manager
    kept believing it was reserved, the volatile-only writes that follow would never store one,
    and after a crash the restarted backend would hand out their (acknowledged, published)
    revisions a second time.
    """
    backend = Backend(data_dir, revision_block=2).start()
    manager = backend.manager
    peer = make_peer("bench-01")
    actions.store_peer_descriptor(manager, peer, "alice")
    injector = Injector(backend, monkeypatch)
    injector.arm("before")
    held = manager.submit([Put(make_peer("bench-held"))], "alice")
    assert injector.holding.wait(WAIT)
    failing = [manager.submit([Put(make_peer(f"bench-{i:02d}-x"))], "bob") for i in range(5)]
    injector.release.set()
    held.result(WAIT)
    for future in failing:
        with pytest.raises(StorageFailed):
            future.result(WAIT)
    # The failing group carried the new high-water mark (it spans more revisions than a block).
    lost_reservation = injector.failed_reservations[0]
    assert lost_reservation is not None
    # Volatile-only writes up to that mark: nothing of them is stored but their revisions are public.
    handed_out = [held.result().revision]
    statuses: list[Online | Offline] = [ONLINE, OFFLINE]
    while handed_out[-1] < lost_reservation:
        status = statuses[len(handed_out) % 2]
        handed_out.append(actions.set_peer_connection_state(manager, peer.id, status, "operator").revision)
    highest = max([*handed_out, *(e.revision for e in injector.failed_groups[0])])

    # Crash: stop without a final checkpoint (the same on disk as a kill after the last commit).
    manager.close(checkpoint=False)
    backend.store.close()
    backend._lock.release()

    reopened = Backend(data_dir).start()
    try:
        assert reopened.manager.revision >= highest
        again = actions.store_peer_descriptor(reopened.manager, make_peer("bench-02"), "alice")
        assert again.revision > highest
    finally:
        reopened.close()
