"""One contract for every Connection: the embedded backend (LEA's child process, restarted by the
connection after a kill -9), remote (a real ``lea-backend serve`` on loopback) and the test fake
(``FakeBackend``), so the fake the sync-engine tests use cannot drift from the real ones.

Each test is written once over ``Connection``; the ``impl`` fixture says how to open one of each
(fresh data per test: a new data directory, a new fake, unique names on the shared server).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from lea_app.connection.base import Connection, ConnectionLost, Delivery, EventStream
from lea_app.connection.child import ChildConnection
from lea_app.connection.remote import RemoteConnection
from resources.errors import (
    AlreadyExists,
    ClusterDeployed,
    Conflict,
    Forbidden,
    LeaError,
    MissingReference,
    NameTaken,
    NotFound,
    ReferencedByCluster,
)
from resources.events import Event, EventType
from resources.kinds import ResourceKind
from resources.wire import EventBatch, Hello, Resync
from tests.helpers.child import child_options
from tests.helpers.factories import make_cluster, make_peer
from tests.helpers.fake_connection import FakeBackend
from tests.helpers.server import ServerProcess, create_token, start_server

WAIT = 15.0  # seconds a delivery may take (a bounded wait, not a timing assertion)
RING = 16  # recent events every implementation keeps for subscribe(after=...): the backend's minimum


@dataclass
class Remote:
    server: ServerProcess
    editor: str
    viewer: str

    def restart(self) -> None:
        """Stop (cleanly) and start again on the same URL and data."""
        self.server.stop()
        port = urlsplit(self.server.url).port
        assert port is not None
        self.server = start_server(self.server.data_dir, port=port)


@pytest.fixture(scope="module")
def remote_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    data_dir = tmp_path_factory.mktemp("contract") / "data"
    data_dir.mkdir()
    (data_dir / "lea.toml").write_text(f"ring_size = {RING}\n", encoding="utf-8")
    editor = create_token(data_dir, "editor", "erin")
    viewer = create_token(data_dir, "viewer", "vera")
    remote = Remote(start_server(data_dir), editor, viewer)
    try:
        yield remote
    finally:
        remote.server.stop(check=False)


@dataclass
class Impl:
    """How to open one implementation; everything else is shared."""

    name: str
    open: Callable[[], Awaitable[Connection]]
    #: Restarts the backend (same data, a new epoch); the connection to use from then on.
    restart: Callable[[Connection], Awaitable[Connection]]
    #: Opens a connection with the viewer role; None where roles do not exist (one local user).
    open_viewer: Callable[[], Awaitable[Connection]] | None = None

    def run(self, body: Callable[[Connection, Impl], Awaitable[Connection | None]]) -> None:
        """Open a connection, run ``body`` (which may hand back the connection it ended with), close it."""

        async def go() -> None:
            connection = await self.open()
            try:
                connection = await body(connection, self) or connection
            finally:
                await connection.close()

        asyncio.run(go())


@asynccontextmanager
async def opened(open: Callable[[], Awaitable[Connection]]) -> AsyncIterator[Connection]:
    connection = await open()
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture(params=["child", "remote", "fake"])
def impl(request: pytest.FixtureRequest, tmp_path: Path) -> Impl:
    if request.param == "child":

        def open_child() -> Awaitable[ChildConnection]:
            return ChildConnection.open(child_options(tmp_path / "data", settings=f"ring_size = {RING}"))

        async def crash_and_restart(connection: Connection) -> Connection:
            assert isinstance(connection, ChildConnection)
            restarts = connection.restarts
            os.kill(connection.pid, signal.SIGKILL)  # the connection starts a new child by itself
            deadline = asyncio.get_running_loop().time() + 60
            while connection.restarts == restarts:
                assert asyncio.get_running_loop().time() < deadline, "the child was not restarted"
                await asyncio.sleep(0.05)
            return connection

        return Impl("child", open_child, crash_and_restart)
    if request.param == "remote":
        remote: Remote = request.getfixturevalue("remote_server")

        async def open_remote(token: str) -> Connection:
            return RemoteConnection(remote.server.url, token)

        async def restart_server(connection: Connection) -> Connection:
            await asyncio.to_thread(remote.restart)
            return connection  # the same client reconnects

        return Impl("remote", lambda: open_remote(remote.editor), restart_server, lambda: open_remote(remote.viewer))

    async def open_fake() -> Connection:
        return FakeBackend(ring_size=RING)

    async def restart_fake(connection: Connection) -> Connection:
        assert isinstance(connection, FakeBackend)
        connection.restart()
        return connection

    return Impl("fake", open_fake, restart_fake)


# -- helpers ---------------------------------------------------------------------------------------
def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def receive(stream: EventStream) -> Delivery:
    return await asyncio.wait_for(stream.next(), WAIT)


async def events_until(stream: EventStream, done: Callable[[list[Event]], bool]) -> list[Event]:
    """Every event delivered (in batches) until ``done(events)``; a Resync fails the test."""
    seen: list[Event] = []
    while not done(seen):
        delivery = await receive(stream)
        assert isinstance(delivery, EventBatch), f"expected events, got {delivery!r}"
        seen.extend(delivery.events)
    return seen


def about(events: list[Event], *ids: uuid.UUID) -> list[Event]:
    """The events about these resources (the backend may interleave its own volatile state)."""
    return [e for e in events if e.id in ids and e.kind in (ResourceKind.PEER, ResourceKind.CLUSTER)]


async def raises(error: type[LeaError], call: Awaitable[object]) -> LeaError:
    with pytest.raises(error) as caught:
        await call
    return caught.value


# -- subscribe / after / resync --------------------------------------------------------------------
def test_a_subscription_says_hello_then_delivers_each_write_as_one_batch(impl: Impl) -> None:
    async def body(connection: Connection, impl: Impl) -> None:
        stream = await connection.subscribe()
        try:
            hello = await receive(stream)
            assert isinstance(hello, Hello)
            peer = make_peer(unique("bench"))
            result = await connection.store_peer_descriptor(peer)
            assert result.revision > hello.revision
            events = await events_until(stream, lambda seen: any(e.id == peer.id for e in seen))
            (event,) = about(events, peer.id)
            assert (event.type, event.revision, event.epoch) == (EventType.CREATED, result.revision, hello.epoch)
            assert event.resource is not None and event.resource.version == result.version == 1
            assert event.actor == (await connection.whoami()).name
            assert all(a.revision < b.revision for a, b in itertools.pairwise(events))
        finally:
            await stream.close()

    impl.run(body)


def test_subscribing_after_a_revision_replays_what_came_since(impl: Impl) -> None:
    async def body(connection: Connection, impl: Impl) -> None:
        snapshot = await connection.fetch_snapshot()
        first = make_peer(unique("bench"))
        second = make_peer(unique("bench"))
        await connection.store_peer_descriptor(first)
        last = await connection.store_peer_descriptor(second)
        stream = await connection.subscribe(after=snapshot.revision, epoch=snapshot.epoch)
        try:
            hello = await receive(stream)
            assert isinstance(hello, Hello) and hello.epoch == snapshot.epoch
            assert hello.revision >= last.revision
            events = await events_until(stream, lambda seen: any(e.revision >= last.revision for e in seen))
            assert all(e.revision > snapshot.revision for e in events)
            assert [e.id for e in about(events, first.id, second.id)] == [first.id, second.id]
        finally:
            await stream.close()

    impl.run(body)


def test_subscribing_at_the_current_revision_replays_nothing_and_goes_on_live(impl: Impl) -> None:
    async def body(connection: Connection, impl: Impl) -> None:
        snapshot = await connection.fetch_snapshot()
        stream = await connection.subscribe(after=snapshot.revision, epoch=snapshot.epoch)
        try:
            hello = await receive(stream)
            assert isinstance(hello, Hello)
            peer = make_peer(unique("bench"))
            await connection.store_peer_descriptor(peer)
            events = await events_until(stream, lambda seen: any(e.id == peer.id for e in seen))
            assert all(e.revision > snapshot.revision for e in events)
        finally:
            await stream.close()

    impl.run(body)


@pytest.mark.parametrize("case", ["other epoch", "ahead"])
def test_a_position_the_backend_cannot_resume_from_is_told_to_resync(impl: Impl, case: str) -> None:
    async def body(connection: Connection, impl: Impl) -> None:
        snapshot = await connection.fetch_snapshot()
        if case == "other epoch":
            after, epoch = snapshot.revision, "not-" + snapshot.epoch
        else:
            after, epoch = snapshot.revision + 1000, snapshot.epoch
        stream = await connection.subscribe(after=after, epoch=epoch)
        try:
            hello = await receive(stream)
            assert isinstance(hello, Hello) and hello.epoch == snapshot.epoch
            assert isinstance(await receive(stream), Resync)
        finally:
            await stream.close()

    impl.run(body)


def test_a_position_older_than_the_recent_events_is_told_to_resync(impl: Impl) -> None:
    async def body(connection: Connection, impl: Impl) -> None:
        snapshot = await connection.fetch_snapshot()
        for _ in range(RING + 2):
            await connection.store_peer_descriptor(make_peer(unique("bench")))
        stream = await connection.subscribe(after=snapshot.revision, epoch=snapshot.epoch)
        try:
            assert isinstance(await receive(stream), Hello)
            assert isinstance(await receive(stream), Resync)
        finally:
            await stream.close()

    impl.run(body)


def test_a_restart_ends_the_streams_keeps_the_stored_resources_and_starts_a_new_epoch(impl: Impl) -> None:
    async def body(connection: Connection, impl: Impl) -> Connection:
        peer = make_peer(unique("bench"))
        stored = await connection.store_peer_descriptor(peer)
        before = await connection.fetch_snapshot()
        stream = await connection.subscribe(after=before.revision, epoch=before.epoch)
        try:
            assert isinstance(await receive(stream), Hello)
            connection = await impl.restart(connection)
            with pytest.raises(ConnectionLost):
                await receive(stream)
        finally:
            await stream.close()
        after = await connection.fetch_snapshot()
        assert after.epoch != before.epoch and after.revision >= before.revision
        kept = [r.version for r in after.resources if (r.kind, r.id) == (ResourceKind.PEER, peer.id)]
        assert kept == [stored.version]
        resumed = await connection.subscribe(after=before.revision, epoch=before.epoch)
        try:
            hello = await receive(resumed)
            assert isinstance(hello, Hello) and hello.epoch == after.epoch
            assert isinstance(await receive(resumed), Resync)
        finally:
            await resumed.close()
        renamed = await connection.store_peer_descriptor(peer.model_copy(update={"name": unique("renamed")}))
        assert renamed.revision > before.revision and renamed.version == stored.version + 1  # revisions never repeat
        return connection

    impl.run(body)


def test_a_closed_stream_ends_with_connection_lost(impl: Impl) -> None:
    async def body(connection: Connection, impl: Impl) -> None:
        stream = await connection.subscribe()
        assert isinstance(await receive(stream), Hello)
        await stream.close()
        with pytest.raises(ConnectionLost):
            await receive(stream)

    impl.run(body)


def test_closing_the_connection_ends_its_open_streams(impl: Impl) -> None:
    async def go() -> None:
        connection = await impl.open()
        try:
            stream = await connection.subscribe()
            assert isinstance(await receive(stream), Hello)
            waiting = asyncio.ensure_future(stream.next())  # a next() that may already wait when close comes
        finally:
            await connection.close()
        with pytest.raises(ConnectionLost):
            await asyncio.wait_for(waiting, WAIT)
        with pytest.raises(ConnectionLost):
            await receive(stream)
        await stream.close()  # closing a stream of a closed connection is harmless

    asyncio.run(go())


# -- snapshot --------------------------------------------------------------------------------------
def test_the_snapshot_is_at_the_published_revision(impl: Impl) -> None:
    async def body(connection: Connection, impl: Impl) -> None:
        peer = make_peer(unique("bench"))
        created = await connection.store_peer_descriptor(peer)
        snapshot = await connection.fetch_snapshot()
        assert snapshot.revision >= created.revision
        stored = [r for r in snapshot.resources if r.id == peer.id and r.kind == ResourceKind.PEER]
        assert [r.version for r in stored] == [created.version]
        stream = await connection.subscribe()
        try:
            hello = await receive(stream)
            assert isinstance(hello, Hello)
            assert hello.epoch == snapshot.epoch and hello.revision >= snapshot.revision
        finally:
            await stream.close()

    impl.run(body)


# -- actions ---------------------------------------------------------------------------------------
def test_versions_count_up_per_resource_and_revisions_over_all(impl: Impl) -> None:
    async def body(connection: Connection, impl: Impl) -> None:
        peer = make_peer(unique("bench"))
        created = await connection.store_peer_descriptor(peer, create_only=True)
        assert created.version == 1 and created.id == peer.id
        renamed = peer.model_copy(update={"name": unique("renamed")})
        updated = await connection.store_peer_descriptor(renamed, expected_version=created.version)
        assert updated.version == 2 and updated.revision > created.revision
        gone = await connection.delete_peer_descriptor(peer.id, expected_version=updated.version)
        assert gone.version == 0 and gone.revision > updated.revision
        snapshot = await connection.fetch_snapshot()
        assert (ResourceKind.PEER, peer.id) not in {(r.kind, r.id) for r in snapshot.resources}

    impl.run(body)


def test_clusters_and_deployments(impl: Impl) -> None:
    async def body(connection: Connection, impl: Impl) -> None:
        leader, member = make_peer(unique("bench")), make_peer(unique("bench"))
        await connection.store_peer_descriptor(leader)
        await connection.store_peer_descriptor(member)
        cluster = make_cluster(unique("cluster"), leader, member)
        stored = await connection.store_cluster_descriptor(cluster, create_only=True)
        assert stored.version == 1
        deployed = await connection.store_cluster_deployment(cluster.id)
        assert deployed.version == 1 and deployed.revision > stored.revision
        error = await raises(ClusterDeployed, connection.delete_cluster_descriptor(cluster.id))
        assert error.code == "cluster_deployed"
        undeployed = await connection.delete_cluster_deployment(cluster.id)
        assert undeployed.version == 0 and undeployed.revision > deployed.revision
        await raises(NotFound, connection.delete_cluster_deployment(cluster.id))
        gone = await connection.delete_cluster_descriptor(cluster.id, expected_version=stored.version)
        assert gone.version == 0

    impl.run(body)


def test_missing_resources_are_not_found(impl: Impl) -> None:
    async def body(connection: Connection, impl: Impl) -> None:
        missing = uuid.uuid4()
        for call in (
            connection.delete_peer_descriptor(missing),
            connection.delete_cluster_descriptor(missing),
            connection.delete_cluster_deployment(missing),
        ):
            assert (await raises(NotFound, call)).code == "not_found"
        error = await raises(MissingReference, connection.store_cluster_deployment(missing))
        assert error.code == "missing_reference"

    impl.run(body)


def test_a_stale_expected_version_is_a_conflict(impl: Impl) -> None:
    async def body(connection: Connection, impl: Impl) -> None:
        peer = make_peer(unique("bench"))
        await connection.store_peer_descriptor(peer)
        error = await raises(Conflict, connection.store_peer_descriptor(peer, expected_version=7))
        assert error.code == "conflict"
        error = await raises(Conflict, connection.delete_peer_descriptor(peer.id, expected_version=7))
        assert error.code == "conflict"
        new = make_peer(unique("bench"))
        await raises(Conflict, connection.store_peer_descriptor(new, expected_version=1))  # it does not exist yet
        stored = await connection.store_peer_descriptor(new, expected_version=0)  # 0: "must not exist yet"
        assert stored.version == 1

    impl.run(body)


def test_create_only_refuses_an_existing_resource(impl: Impl) -> None:
    async def body(connection: Connection, impl: Impl) -> None:
        peer = make_peer(unique("bench"))
        await connection.store_peer_descriptor(peer, create_only=True)
        error = await raises(AlreadyExists, connection.store_peer_descriptor(peer, create_only=True))
        assert error.code == "already_exists"
        cluster = make_cluster(unique("cluster"), peer)
        await connection.store_cluster_descriptor(cluster, create_only=True)
        await raises(AlreadyExists, connection.store_cluster_descriptor(cluster, create_only=True))

    impl.run(body)


def test_rule_refusals_have_the_same_codes(impl: Impl) -> None:
    async def body(connection: Connection, impl: Impl) -> None:
        peer = make_peer(unique("bench"))
        before = await connection.store_peer_descriptor(peer)
        cluster = make_cluster(unique("cluster"), peer)
        await connection.store_cluster_descriptor(cluster)
        error = await raises(ReferencedByCluster, connection.delete_peer_descriptor(peer.id))
        assert error.code == "referenced_by_cluster"
        twin = make_peer(peer.name.upper())
        assert (await raises(NameTaken, connection.store_peer_descriptor(twin))).code == "name_taken"
        orphan = make_cluster(unique("cluster"), make_peer(unique("never-stored")))
        assert (await raises(MissingReference, connection.store_cluster_descriptor(orphan))).code == "missing_reference"
        # a refused write changes nothing
        snapshot = await connection.fetch_snapshot()
        ids = {r.id for r in snapshot.resources if r.kind in (ResourceKind.PEER, ResourceKind.CLUSTER)}
        assert peer.id in ids and twin.id not in ids and orphan.id not in ids
        assert [e.revision for e in await connection.history(ResourceKind.PEER, peer.id)] == [before.revision]

    impl.run(body)


def test_a_viewer_cannot_write(impl: Impl) -> None:
    if impl.open_viewer is None:
        pytest.skip(f"{impl.name}: one local user, no roles")
    open_viewer = impl.open_viewer

    async def body(connection: Connection, impl: Impl) -> None:
        async with opened(open_viewer) as viewer:
            assert (await viewer.whoami()).role == "viewer"
            assert not (await viewer.whoami()).can_write
            peer = make_peer(unique("bench"))
            assert (await raises(Forbidden, viewer.store_peer_descriptor(peer))).code == "forbidden"
            stored = await connection.store_peer_descriptor(peer)
            await raises(Forbidden, viewer.delete_peer_descriptor(peer.id))
            # reading is allowed
            assert [e.revision for e in await viewer.history(ResourceKind.PEER, peer.id)] == [stored.revision]

    impl.run(body)


# -- history, events, whoami -------------------------------------------------------------------------
def test_history_lists_a_resources_events_in_order(impl: Impl) -> None:
    async def body(connection: Connection, impl: Impl) -> None:
        peer = make_peer(unique("bench"))
        other = make_peer(unique("bench"))
        created = await connection.store_peer_descriptor(peer)
        await connection.store_peer_descriptor(other)
        updated = await connection.store_peer_descriptor(peer.model_copy(update={"name": unique("renamed")}))
        gone = await connection.delete_peer_descriptor(peer.id)
        history = await connection.history(ResourceKind.PEER, peer.id)
        assert [(e.type, e.revision) for e in history] == [
            (EventType.CREATED, created.revision),
            (EventType.UPDATED, updated.revision),
            (EventType.DELETED, gone.revision),
        ]
        assert history[1].resource is not None and history[1].resource.version == updated.version
        assert history[2].resource is None
        assert await connection.history(ResourceKind.PEER, uuid.uuid4()) == []

    impl.run(body)


def test_events_pages_through_the_stored_history(impl: Impl) -> None:
    async def body(connection: Connection, impl: Impl) -> None:
        start = (await connection.fetch_snapshot()).revision
        peers = [make_peer(unique("bench")) for _ in range(3)]
        results = [await connection.store_peer_descriptor(p) for p in peers]
        events = await connection.events(after=start, limit=200)
        assert [e.revision for e in events] == sorted(e.revision for e in events)
        assert all(e.revision > start and e.kind.persisted for e in events)
        mine = about(events, *(p.id for p in peers))
        assert [(e.id, e.revision) for e in mine] == [(p.id, r.revision) for p, r in zip(peers, results, strict=True)]
        first = results[0].revision
        page = await connection.events(after=first - 1, limit=1)
        assert [e.revision for e in page] == [first]

    impl.run(body)


def test_whoami_names_the_writer(impl: Impl) -> None:
    async def body(connection: Connection, impl: Impl) -> None:
        me = await connection.whoami()
        assert me.role in ("editor", "admin") and me.can_write and me.name
        peer = make_peer(unique("bench"))
        await connection.store_peer_descriptor(peer)
        assert [e.actor for e in await connection.history(ResourceKind.PEER, peer.id)] == [me.name]

    impl.run(body)
