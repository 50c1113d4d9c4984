"""Convergence over the network: many LEA sync engines against one real ``lea-backend serve``.

Ten watching clients (RemoteConnection + Store + SyncEngine, the code LEA runs) follow a real
server started with ``--demo`` while three writers create, update and delete peers and clusters
over HTTP and a demo cluster deploys. Meanwhile clients lose their event stream at random (closed
cleanly, or the TCP connection aborted underneath), some are held off long enough that the server
no longer holds their events (resume -> resync), and some are restarted from scratch.

At the end every client's store equals the server's snapshot, and every client applied each
revision at most once and, between two snapshots, strictly consecutive revisions starting right
after the snapshot's (a skipped revision without a resync would show as a jump).

Also: a server frozen with SIGSTOP (what a half-open connection looks like) is noticed by the
clients' keepalive and they resume once it answers again; stopping a client does not hang on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

from lea_app.connection.base import EventStream
from lea_app.connection.remote import RemoteConnection, RemoteEventStream
from lea_app.sync.engine import SyncEngine, SyncState
from lea_app.sync.store import Store
from resources.backoff import Backoff
from resources.cluster import ClusterDescriptor
from resources.errors import LeaError
from resources.events import Event, StateSnapshot, WriteResult
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.resource import AnyResource
from resources.state import ClusterState, Deployed
from tests.helpers.factories import make_cluster, make_peer
from tests.helpers.server import create_token, start_server

WATCHERS = 10
WRITERS = 3
WRITE_SECONDS = 8.0
RING_SIZE = 32  # small, so a client held off for a while must resync instead of replaying
DEMO_CLUSTER = "demo-telematics"


# -- instrumented clients ----------------------------------------------------------------------
class RecordingStore(Store):
    """A Store that checks, as it goes, the order of everything the engine applies to it."""

    def __init__(self) -> None:
        super().__init__()
        self.snapshots: list[int] = []
        self.applied: Counter[tuple[str, int]] = Counter()
        self.problems: list[str] = []
        self._last: int | None = None
        self._epoch: str | None = None

    def apply_snapshot(self, snapshot: StateSnapshot) -> None:
        if self._epoch == snapshot.epoch and self._last is not None and snapshot.revision < self._last:
            self.problems.append(f"snapshot at {snapshot.revision} is older than the applied {self._last}")
        self.snapshots.append(snapshot.revision)
        self._last, self._epoch = snapshot.revision, snapshot.epoch
        super().apply_snapshot(snapshot)

    def apply_events(self, events: Iterable[Event]) -> None:
        batch = list(events)
        for event in batch:
            self.applied[(event.epoch, event.revision)] += 1
            if self._last is None:
                self.problems.append(f"revision {event.revision} applied before any snapshot")
            elif event.epoch != self._epoch or event.revision != self._last + 1:
                self.problems.append(f"revision {event.revision} applied after {self._last} without a resync")
            self._last = event.revision
        super().apply_events(batch)

    def check(self) -> list[str]:
        twice = [rev for (_, rev), n in self.applied.items() if n > 1]
        return self.problems + ([f"revisions applied more than once: {sorted(twice)[:10]}"] if twice else [])


class TappedConnection(RemoteConnection):
    """Keeps the current event stream so the test can break it; ``gate`` can hold a resume back."""

    def __init__(self, url: str, token: str, **options: Any) -> None:
        super().__init__(url, token or None, **options)
        self.stream: RemoteEventStream | None = None
        self.gate: asyncio.Event | None = None
        self.subscribes = 0

    async def subscribe(self, after: int | None = None, epoch: str | None = None) -> EventStream:
        gate = self.gate
        if gate is not None:
            await gate.wait()
        self.subscribes += 1
        stream = await super().subscribe(after, epoch)
        assert isinstance(stream, RemoteEventStream)
        self.stream = stream
        return stream

    async def drop(self, abort: bool) -> bool:
        """Break the live event stream: a clean close, or the TCP connection aborted underneath."""
        stream, self.stream = self.stream, None
        if stream is None:
            return False
        if abort:
            stream._ws.transport.abort()
        else:
            await stream.close()
        return True


class Client:
    def __init__(self, name: str, url: str, token: str, **options: Any) -> None:
        self.name = name
        self.connection = TappedConnection(url, token, **options)
        self.store = RecordingStore()
        self.engine = SyncEngine(
            self.connection,
            self.store,
            resync_backoff=Backoff(first=0.05, maximum=0.5),
            reconnect_backoff=Backoff(first=0.05, maximum=0.5),
            healthy_after=0.5,
        )
        self.transitions: list[tuple[SyncState, SyncState]] = []
        previous = [self.engine.state]

        def on_state(state: SyncState) -> None:
            self.transitions.append((previous[0], state))
            previous[0] = state

        self.engine.on_state(on_state)
        self.task = asyncio.ensure_future(self.engine.run())

    async def stop(self) -> None:
        await self.engine.stop()
        try:
            await asyncio.wait_for(self.task, 15)
        finally:
            await self.connection.close()

    def problems(self) -> list[str]:
        found = [f"{self.name}: {p}" for p in self.store.check()]
        snapshots_after_first = len(self.store.snapshots) - 1
        if snapshots_after_first > self.engine.resyncs:  # once live, only a resync fetches a snapshot again
            found.append(f"{self.name}: {snapshots_after_first} snapshots again, only {self.engine.resyncs} resyncs")
        if self.task.done() and not self.task.cancelled() and self.task.exception() is not None:
            found.append(f"{self.name}: the sync engine died: {self.task.exception()!r}")
        return found


@dataclass
class Stats:
    writes: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    drops: int = 0
    aborts: int = 0
    restarts: int = 0
    holds: list[tuple[int, int]] = field(default_factory=list)  # (revision when held, when released)


# -- writers -----------------------------------------------------------------------------------
async def writer(k: int, connection: RemoteConnection, stop: asyncio.Event, stats: Stats) -> None:
    """Create, update and delete its own peers and clusters (and now and then write a stale version)."""
    rng = random.Random(1000 + k)
    peers: dict[UUID, PeerDescriptor] = {}
    clusters: dict[UUID, ClusterDescriptor] = {}
    in_cluster: dict[UUID, UUID] = {}  # peer -> cluster
    serial = 0

    async def attempt(coro: Coroutine[Any, Any, WriteResult]) -> int | None:
        try:
            result = await coro
        except LeaError as exc:
            stats.refused[exc.code] += 1
            return None
        stats.writes += 1
        return int(result.version)

    while not stop.is_set():
        serial += 1
        free = [p for p in peers.values() if p.id not in in_cluster]
        op = rng.choices(
            ["create_peer", "update_peer", "delete_peer", "create_cluster", "update_cluster", "delete_cluster",
             "stale"],
            weights=[4 if len(peers) < 8 else 0, 6, 1, 2 if len(free) >= 2 else 0, 2, 1, 1],
        )[0]
        if op == "create_peer":
            peer = make_peer(f"w{k}-peer-{serial}", devices=rng.randint(1, 3))
            version = await attempt(connection.store_peer_descriptor(peer, create_only=True))
            if version is not None:
                peers[peer.id] = peer.model_copy(update={"version": version})
        elif op == "update_peer" and peers:
            peer = rng.choice(list(peers.values()))
            changed = peer.model_copy(update={"location": f"rack {serial}"})
            version = await attempt(connection.store_peer_descriptor(changed, expected_version=peer.version))
            if version is not None:
                peers[peer.id] = changed.model_copy(update={"version": version})
        elif op == "delete_peer" and free:
            peer = rng.choice(free)
            if await attempt(connection.delete_peer_descriptor(peer.id, expected_version=peer.version)) is not None:
                del peers[peer.id]
        elif op == "create_cluster":
            members = rng.sample(free, 2)
            cluster = make_cluster(f"w{k}-cluster-{serial}", *members)
            version = await attempt(connection.store_cluster_descriptor(cluster, create_only=True))
            if version is not None:
                clusters[cluster.id] = cluster.model_copy(update={"version": version})
                in_cluster.update({m.id: cluster.id for m in members})
        elif op == "update_cluster" and clusters:
            cluster = rng.choice(list(clusters.values()))
            renamed = cluster.model_copy(update={"name": f"w{k}-cluster-{serial}"})
            version = await attempt(connection.store_cluster_descriptor(renamed, expected_version=cluster.version))
            if version is not None:
                clusters[cluster.id] = renamed.model_copy(update={"version": version})
        elif op == "delete_cluster" and clusters:
            cluster = rng.choice(list(clusters.values()))
            deleted = await attempt(connection.delete_cluster_descriptor(cluster.id, expected_version=cluster.version))
            if deleted is not None:
                del clusters[cluster.id]
                for peer_id in [p for p, c in in_cluster.items() if c == cluster.id]:
                    del in_cluster[peer_id]
        elif op == "stale" and peers:
            peer = rng.choice(list(peers.values()))
            stale = peer.model_copy(update={"location": "stale"})
            if await attempt(connection.store_peer_descriptor(stale, expected_version=peer.version + 7)) is not None:
                raise AssertionError("a write with a wrong If-Match version was accepted")
        await asyncio.sleep(rng.uniform(0.0, 0.03))


# -- disruptions -------------------------------------------------------------------------------
async def disrupt(
    clients: list[Client], url: str, token: str, stop: asyncio.Event, stats: Stats, retired: list[Client]
) -> None:
    """A hold and a restart first (so each happens in every run), then random drops and aborts."""
    rng = random.Random(7)
    plan = ["hold", "restart"]
    holds: list[asyncio.Task[None]] = []
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(0.15, 0.45))
        i = rng.randrange(len(clients))
        client = clients[i]
        what = plan.pop(0) if plan else rng.choices(["drop", "abort", "restart", "hold"], weights=[6, 6, 1, 1])[0]
        if what == "restart":
            stats.restarts += 1
            retired.append(client)
            await client.stop()
            clients[i] = Client(f"{client.name}'", url, token)
        elif what == "hold":
            if client.connection.gate is None and client.engine.state == SyncState.LIVE:
                holds.append(asyncio.ensure_future(hold(client, clients, stop, stats)))
        elif client.engine.state == SyncState.LIVE and await client.connection.drop(abort=what == "abort"):
            if what == "abort":
                stats.aborts += 1
            else:
                stats.drops += 1
    await asyncio.gather(*holds)


async def hold(client: Client, clients: list[Client], stop: asyncio.Event, stats: Stats) -> None:
    """Break the stream and keep the client from resuming until the server has moved past its ring."""
    gate = client.connection.gate = asyncio.Event()
    start = client.engine.revision or 0
    await client.connection.drop(abort=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not stop.is_set():
        newest = max((c.engine.revision or 0) for c in clients)
        if newest >= start + 2 * RING_SIZE:
            break
        await asyncio.sleep(0.05)
    stats.holds.append((start, max((c.engine.revision or 0) for c in clients)))
    client.connection.gate = None
    gate.set()


# -- the test ----------------------------------------------------------------------------------
def resources_by_key(resources: Iterable[AnyResource]) -> dict[tuple[ResourceKind, UUID], AnyResource]:
    return {(r.kind, r.id): r for r in resources}


def versions(resources: dict[tuple[ResourceKind, UUID], AnyResource]) -> dict[tuple[str, str], int]:
    return {(k.value, str(i)): r.version for (k, i), r in resources.items()}


def caught_up(clients: list[Client], revision: int) -> bool:
    return all(c.engine.state == SyncState.LIVE and (c.engine.revision or 0) >= revision for c in clients)


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


async def scenario(url: str, viewer: str, editor: str) -> None:
    stats = Stats()
    clients = [Client(f"client-{n}", url, viewer) for n in range(WATCHERS)]
    retired: list[Client] = []
    writers = [RemoteConnection(url, editor) for _ in range(WRITERS)]
    control = RemoteConnection(url, editor)
    try:
        await wait_for(lambda: all(c.engine.state == SyncState.LIVE for c in clients), 30, "every client live")
        first = clients[0].store
        demo = next(c for c in first.all(ResourceKind.CLUSTER).values() if getattr(c, "name", "") == DEMO_CLUSTER)
        stop = asyncio.Event()
        tasks = [asyncio.ensure_future(writer(k, w, stop, stats)) for k, w in enumerate(writers)]
        tasks.append(asyncio.ensure_future(disrupt(clients, url, viewer, stop, stats, retired)))
        await control.store_cluster_deployment(demo.id)
        await asyncio.sleep(WRITE_SECONDS)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)

        # The deployment settles, then every client catches up with one unchanging snapshot.
        async def deployed() -> bool:
            state = (await control.fetch_snapshot()).resources
            return any(isinstance(r, ClusterState) and r.id == demo.id and isinstance(r.state, Deployed) for r in state)

        deadline = time.monotonic() + 40
        while not await deployed():
            assert time.monotonic() < deadline, "the demo cluster did not reach Deployed"
            await asyncio.sleep(0.2)
        while True:
            snapshot = await control.fetch_snapshot()
            await wait_for(
                partial(caught_up, clients, snapshot.revision),
                30,
                f"every client at revision {snapshot.revision}",
            )
            again = await control.fetch_snapshot()
            if again.revision == snapshot.revision:
                break
            assert time.monotonic() < deadline + 30, "the server never became quiet"

        expected = resources_by_key(snapshot.resources)
        problems: list[str] = []
        for c in clients + retired:
            problems += c.problems()
        for c in clients:
            got = resources_by_key(c.store.resources())
            if c.engine.revision != snapshot.revision or c.engine.epoch != snapshot.epoch:
                problems.append(f"{c.name}: at {c.engine.epoch}/{c.engine.revision}, server at {snapshot.revision}")
            if versions(got) != versions(expected):
                missing = expected.keys() - got.keys()
                extra = got.keys() - expected.keys()
                stale = {k for k in expected.keys() & got.keys() if versions({k: got[k]}) != versions({k: expected[k]})}
                problems.append(f"{c.name}: store differs: missing {missing}, extra {extra}, other version {stale}")
            elif got != expected:
                problems.append(f"{c.name}: same versions but different content")
        assert not problems, "\n".join(problems)

        # The scenario really exercised what it claims to.
        resumes = sum(c.transitions.count((SyncState.RESUMING, SyncState.LIVE)) for c in clients + retired)
        resyncs = sum(c.engine.resyncs for c in clients + retired)
        summary = (
            f"{stats.writes} writes ({dict(stats.refused)} refused), {stats.drops} closes, {stats.aborts} aborts, "
            f"{stats.restarts} restarts, holds {stats.holds}, {resumes} resumes, {resyncs} resyncs, "
            f"final revision {snapshot.revision}"
        )
        print(summary)
        assert stats.writes >= 30, summary
        assert stats.drops + stats.aborts >= 5 and resumes >= 3 and stats.restarts >= 1, summary
        assert stats.refused["conflict"] >= 1, summary
        if any(released - start > RING_SIZE for start, released in stats.holds):
            assert resyncs >= 1, f"a client held past the server's ring did not resync: {summary}"
    finally:
        for c in clients:
            with contextlib.suppress(Exception):
                await c.stop()
        for connection in [*writers, control]:
            await connection.close()


def test_clients_converge_with_random_disconnects(tmp_path: Path) -> None:
    data_dir = tmp_path / "server"
    data_dir.mkdir()
    # Quick commits (durability is not what this test is about) and a small replay ring.
    (data_dir / "lea.toml").write_text(f'[backend]\ndurability = "normal"\nring_size = {RING_SIZE}\n')
    viewer = create_token(data_dir, "viewer", "watcher")
    editor = create_token(data_dir, "editor", "writer")
    server = start_server(data_dir, demo=True)
    try:
        asyncio.run(asyncio.wait_for(scenario(server.url, viewer, editor), 120))
    finally:
        server.stop(check=False)


def test_a_frozen_server_is_noticed_and_the_clients_resume(tmp_path: Path) -> None:
    """A server that stops answering without closing anything (kill -STOP: like a half-open TCP
    connection after a network drop) must not look live forever: the clients' keepalive notices it,
    they go RESUMING, and once the server answers again they resume from where they were."""
    data_dir = tmp_path / "server"
    editor = create_token(data_dir, "editor", "writer")
    server = start_server(data_dir)
    pid = server.process.pid

    async def frozen() -> None:
        clients = [Client(f"client-{n}", server.url, editor, keepalive=0.5) for n in range(3)]
        control = RemoteConnection(server.url, editor)
        try:
            await wait_for(lambda: all(c.engine.state == SyncState.LIVE for c in clients), 30, "every client live")
            peer = make_peer("frozen-01")
            await control.store_peer_descriptor(peer, create_only=True)
            os.kill(pid, signal.SIGSTOP)
            try:
                await wait_for(
                    lambda: all(c.engine.state != SyncState.LIVE for c in clients), 30, "every client to notice"
                )
                assert all("keepalive" in (c.engine.last_error or "") for c in clients), [
                    c.engine.last_error for c in clients
                ]
            finally:
                os.kill(pid, signal.SIGCONT)
            await wait_for(partial(caught_up, clients, 0), 45, "every client live again")
            result = await control.store_peer_descriptor(
                peer.model_copy(update={"location": "after the freeze"}), expected_version=1
            )
            await wait_for(partial(caught_up, clients, result.revision), 30, "every client caught up")
            snapshot = await control.fetch_snapshot()
            problems = [p for c in clients for p in c.problems()]
            for c in clients:
                if versions(resources_by_key(c.store.resources())) != versions(resources_by_key(snapshot.resources)):
                    problems.append(f"{c.name}: store differs from the server's snapshot")
                if c.engine.resyncs:
                    problems.append(f"{c.name}: resynced although the server kept every event (same epoch)")
            assert not problems, "\n".join(problems)
        finally:
            for c in clients:
                with contextlib.suppress(Exception):
                    await c.stop()
            await control.close()

    try:
        asyncio.run(asyncio.wait_for(frozen(), 120))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        server.stop(check=False)


def test_stopping_a_client_of_a_frozen_server_does_not_hang(tmp_path: Path) -> None:
    data_dir = tmp_path / "server"
    server = start_server(data_dir, insecure_no_auth=True)
    pid = server.process.pid

    async def stop_while_frozen() -> float:
        client = Client("client", server.url, "")
        await wait_for(lambda: client.engine.state == SyncState.LIVE, 30, "the client live")
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        await client.stop()
        return time.monotonic() - started

    try:
        took = asyncio.run(asyncio.wait_for(stop_while_frozen(), 60))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        server.stop(check=False)
    assert took < 10, f"closing the event stream of a frozen server took {took:.1f} s"
