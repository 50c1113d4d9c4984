"""Storage that refuses every write for a while (a full disk): what the manager, the demo benches and
the deployment actions do meanwhile, and that they carry on once it works again.

``Refusing`` wraps ``store.append`` (every commit goes through it) and fails it with SQLite's own
disk-full error while switched on; the real append runs otherwise.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest

from backend import actions, logs
from backend.backend import Backend
from backend.demo import demo_resources, seed_demo
from resources import ClusterDescriptor, PeerDescriptor, ResourceKind
from resources.errors import StorageFailed
from resources.events import Event
from resources.state import ClusterState, Deployed, Deploying, Failed, Online, PeerConnectionState
from resources.wire import EventBatch, Hello, Resync
from tests.helpers.factories import make_peer

WAIT = 15.0
ONLINE = Online(remote_host="10.0.0.7", since=datetime(2024, 5, 1, tzinfo=UTC))


class Refusing:
    """``store.append`` that fails like a full disk while ``on`` is set; records every attempt."""

    def __init__(self, backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real = backend.store.append
        self.on = threading.Event()
        self.attempts: list[float] = []  # monotonic times of refused appends
        monkeypatch.setattr(backend.store, "append", self._append)

    def _append(self, events: Sequence[Event], reserve_up_to: int | None = None) -> None:
        if self.on.is_set():
            self.attempts.append(time.monotonic())
            raise sqlite3.OperationalError("database or disk is full")
        self.real(events, reserve_up_to)

    def attempts_since(self, t: float) -> int:
        return sum(1 for a in list(self.attempts) if a >= t)


def wait_for(condition: Callable[[], bool], timeout: float = WAIT, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g} s"
        time.sleep(0.02)


def crash(backend: Backend) -> None:
    """Stop without a final checkpoint: on disk the same as a kill after the last commit."""
    backend.brokers.stop()
    backend.operator.stop()
    backend.manager.close(checkpoint=False)
    backend.store.close()
    backend._lock.release()


@pytest.fixture
def seeded(data_dir: Path) -> Path:
    """A data directory holding the demo fleet."""
    with Backend(data_dir).start() as backend:
        seed_demo(backend.manager)
    return data_dir


def demo_peer_ids() -> list[UUID]:
    return [r.id for r in demo_resources() if isinstance(r, PeerDescriptor)]


def all_demo_peers_online(backend: Backend) -> bool:
    states = [backend.manager.get(ResourceKind.PEER_CONNECTION_STATE, pid) for pid in demo_peer_ids()]
    return all(isinstance(s, PeerConnectionState) and s.online for s in states)


# -- revisions ------------------------------------------------------------------------------------
def test_a_failed_commit_never_publishes_a_revision_above_the_stored_reservation(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failed groups skip their revisions, but only up to the durably reserved high-water mark:
    one beyond it would be handed out again after a restart (revisions going backwards)."""
    backend = Backend(data_dir, revision_block=2).start()
    manager = backend.manager
    actions.store_peer_descriptor(manager, make_peer("bench-00"), "alice")
    refusing = Refusing(backend, monkeypatch)
    refusing.on.set()
    published = [manager.revision]
    for i in range(6):  # crosses the reserved mark several times
        with pytest.raises(StorageFailed):
            actions.store_peer_descriptor(manager, make_peer(f"bench-{i + 1:02d}"), "alice")
        published.append(manager.revision)
        hello = manager.subscribe().get(WAIT)
        assert isinstance(hello, Hello)
        assert max(manager.revision, hello.revision) <= backend.store.reserved_revision(), i
    assert published == sorted(published)
    crash(backend)

    reopened = Backend(data_dir).start()
    try:
        assert reopened.manager.revision >= max(published)
        again = actions.store_peer_descriptor(reopened.manager, make_peer("bench-after"), "alice")
        assert again.revision > max(published)
    finally:
        reopened.close()


def test_a_failed_commit_of_volatile_changes_only_keeps_the_epoch(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing of a volatile-only group was stored or seen: its writers fail, subscribers go on."""
    backend = Backend(data_dir, revision_block=1).start()  # every other group must reserve revisions
    manager = backend.manager
    try:
        peer = make_peer("bench-01")
        actions.store_peer_descriptor(manager, peer, "alice")
        epoch, sub = manager.epoch, manager.subscribe()
        assert isinstance(sub.get(WAIT), Hello)
        refusing = Refusing(backend, monkeypatch)
        refusing.on.set()
        failed = 0
        for _ in range(4):
            try:
                actions.set_peer_connection_state(manager, peer.id, ONLINE, "operator")
            except StorageFailed:
                failed += 1
        assert failed >= 2 and refusing.attempts
        assert manager.epoch == epoch
        before = manager.revision
        refusing.on.clear()
        result = actions.set_peer_connection_state(manager, peer.id, ONLINE, "operator")
        assert result.revision == before + 1  # contiguous: no client sees a gap
        deliveries = sub.drain()
        assert not [d for d in deliveries if isinstance(d, Resync)], deliveries
        revisions = [e.revision for d in deliveries if isinstance(d, EventBatch) for e in d.events]
        assert revisions == list(range(revisions[0], result.revision + 1)), revisions
        assert {e.epoch for d in deliveries if isinstance(d, EventBatch) for e in d.events} == {epoch}
    finally:
        backend.close()


# -- the demo benches and SIGTERM -----------------------------------------------------------------
def test_a_restart_on_refusing_storage_neither_storms_nor_delays_the_shutdown(
    seeded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo benches' writes fail from the start (the first reservation cannot be stored): the
    broker backs off, nobody resyncs, and closing does not replay a backlog of retries."""
    backend = Backend(seeded, demo_delay_scale=0)
    refusing = Refusing(backend, monkeypatch)
    refusing.on.set()
    sub = backend.manager.subscribe()
    epoch = backend.manager.epoch
    backend.start()
    try:
        wait_for(lambda: len(refusing.attempts) >= 1, what="a first write of the demo benches")
        started = time.monotonic()
        time.sleep(1.5)
        # Backing off: a handful of attempts, not one per loop (thousands per second before).
        assert refusing.attempts_since(started) <= 10, len(refusing.attempts)
        assert backend.manager.epoch == epoch
        deliveries = sub.drain()
        assert [type(d) for d in deliveries] == [Hello], deliveries[:5]
    finally:
        closing = time.monotonic()
        closer = threading.Thread(target=backend.close, daemon=True)
        closer.start()
        closer.join(10)
        assert not closer.is_alive(), "close() did not return within 10 s while storage failed"
    assert refusing.attempts_since(closing) <= 1


def test_the_demo_benches_come_online_once_storage_works_again(
    seeded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = Backend(seeded, demo_delay_scale=0)
    refusing = Refusing(backend, monkeypatch)
    refusing.on.set()
    backend.start()
    try:
        wait_for(lambda: len(refusing.attempts) >= 2, what="a retry of the demo benches' writes")
        assert not all_demo_peers_online(backend)
        refusing.on.clear()
        wait_for(lambda: all_demo_peers_online(backend), what="every demo bench online after recovery")
    finally:
        backend.close()


# -- deployments ----------------------------------------------------------------------------------
def test_a_deployment_survives_a_storage_outage_longer_than_its_timeout(
    seeded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reports that could not be stored are no silence of the peer: the deployment is not failed
    for it, and it finishes once storage works again, however long the outage lasted."""
    monkeypatch.setattr("backend.deployment.runner.COMMIT_RETRY_FOR", 0.3)  # the outage outlasts it
    backend = Backend(seeded, demo_delay_scale=0.3, deploy_timeout=1.0, revision_block=1).start()
    manager = backend.manager
    try:
        wait_for(lambda: all_demo_peers_online(backend), what="the demo benches online")
        cluster = next(
            r for r in demo_resources() if isinstance(r, ClusterDescriptor) and r.name == "demo-vehicle-e2e"
        )

        def state() -> object:
            current = manager.get(ResourceKind.CLUSTER_STATE, cluster.id)
            return current.state if isinstance(current, ClusterState) else None

        refusing = Refusing(backend, monkeypatch)
        actions.store_cluster_deployment(manager, cluster.id, "alice")
        wait_for(lambda: isinstance(s := state(), Deploying) and s.done >= 1, what="the deployment under way")
        refusing.on.set()
        wait_for(lambda: len(refusing.attempts) >= 3, what="refused writes of the deployment")
        time.sleep(2.0)  # twice the deploy timeout without a stored report
        assert not isinstance(state(), Failed), state()
        refusing.on.clear()
        wait_for(lambda: isinstance(state(), Deployed | Failed), timeout=30, what="the deployment finishing")
        assert isinstance(state(), Deployed), state()
    finally:
        backend.close()


# -- logs -----------------------------------------------------------------------------------------
@pytest.fixture
def logged(data_dir: Path) -> Iterator[Path]:
    path = logs.setup_logging(data_dir)
    assert path is not None
    try:
        yield path
    finally:
        logs.close_logging()


def test_a_failed_commit_is_logged_once_per_episode(
    data_dir: Path, logged: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    backend = Backend(data_dir).start()
    try:
        refusing = Refusing(backend, monkeypatch)
        refusing.on.set()
        for i in range(5):
            with pytest.raises(StorageFailed):
                actions.store_peer_descriptor(backend.manager, make_peer(f"bench-{i:02d}"), "alice")
        refusing.on.clear()
        actions.store_peer_descriptor(backend.manager, make_peer("bench-ok"), "alice")
    finally:
        backend.close()
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = logged.read_text(encoding="utf-8")
    failing = [line for line in text.splitlines() if "storage failing" in line]
    assert len(failing) == 1 and " ERROR " in failing[0], text
    assert "database or disk is full" in failing[0]
    assert "storage recovered" in text, text
    err = capfd.readouterr().err
    assert err.count("storage failing") == 1, err
    assert "Traceback" not in text + err


def test_failed_commits_that_keep_starting_epochs_warn_of_a_resync_storm(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    backend = Backend(data_dir).start()
    try:
        refusing = Refusing(backend, monkeypatch)
        refusing.on.set()
        with caplog.at_level(logging.WARNING, logger="backend.manager"):
            for i in range(25):
                with pytest.raises(StorageFailed):
                    actions.store_peer_descriptor(backend.manager, make_peer(f"bench-{i:02d}"), "alice")
    finally:
        backend.close()
    storms = [r for r in caplog.records if "resync storm" in r.getMessage()]
    assert len(storms) == 1 and storms[0].levelno == logging.WARNING, [r.getMessage() for r in caplog.records]
