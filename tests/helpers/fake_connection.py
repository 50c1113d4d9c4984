"""A scripted, in-memory Connection for driving the sync engine (asyncio, no Qt, no backend).

``FakeConnection`` is scripted from the test: every ``subscribe()`` returns a ``FakeStream`` the
test pushes Hello / EventBatch / Resync into (or makes ``next()`` raise ``ConnectionLost``);
``fetch_snapshot()`` returns ``connection.snapshot`` and can be held on an ``asyncio.Event`` so that
the test pushes events *while* the snapshot is being fetched; every ``subscribe(after=, epoch=)``
call is recorded.

``FakeBackend`` is a FakeConnection that answers by itself from a true history of transactions
(with a small replay ring and epochs), for property tests of random interleavings; its actions,
history and events follow the same contract as the embedded and remote connections
(tests/integration/test_connection_contract.py): versions, preconditions, the shared rules of
``resources.rules`` and their typed errors.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from lea_app.connection.base import Connection, ConnectionLost, Delivery, EventStream, Identity, PeerToken
from resources import rules
from resources.cluster import ClusterDeployment, ClusterDescriptor
from resources.errors import AlreadyExists, Conflict, LeaError, NotFound
from resources.events import Event, EventType, StateSnapshot, WriteResult
from resources.index import ResourceIndex
from resources.kinds import ResourceKind, history_kinds
from resources.peer import PeerDescriptor
from resources.resource import AnyResource
from resources.wire import EventBatch, Hello, Resync

AT = datetime(2024, 1, 1, tzinfo=UTC)


# -- building events ---------------------------------------------------------------------------
def make_event(
    epoch: str,
    revision: int,
    type: EventType,
    resource: AnyResource | None = None,
    *,
    kind: ResourceKind | None = None,
    id: UUID | None = None,
    tx: UUID | None = None,
    actor: str = "tester",
    at: datetime = AT,
) -> Event:
    """One event; kind and id default to the resource's (give them for a delete without resource)."""
    if resource is not None:
        kind = kind or resource.kind
        id = id or resource.id
    assert kind is not None and id is not None, "a delete needs kind and id (or the old resource)"
    return Event(
        epoch=epoch,
        revision=revision,
        type=type,
        kind=kind,
        id=id,
        resource=None if type == EventType.DELETED else resource,
        actor=actor,
        at=at,
        tx=tx or uuid.uuid4(),
    )


def created(epoch: str, revision: int, resource: AnyResource, tx: UUID | None = None) -> Event:
    return make_event(epoch, revision, EventType.CREATED, resource, tx=tx)


def updated(epoch: str, revision: int, resource: AnyResource, tx: UUID | None = None) -> Event:
    return make_event(epoch, revision, EventType.UPDATED, resource, tx=tx)


def deleted(epoch: str, revision: int, resource: AnyResource, tx: UUID | None = None) -> Event:
    return make_event(epoch, revision, EventType.DELETED, kind=resource.kind, id=resource.id, tx=tx)


def batch(*events: Event) -> EventBatch:
    return EventBatch(events=tuple(events))


def snapshot(epoch: str, revision: int, *resources: AnyResource) -> StateSnapshot:
    return StateSnapshot(epoch=epoch, revision=revision, resources=tuple(resources))


# -- the stream ----------------------------------------------------------------------------------
class _Closed:
    """Wakes a pending next() when the stream is closed."""


class FakeStream(EventStream):
    """One subscription whose deliveries the test pushes."""

    def __init__(self, after: int | None, epoch: str | None) -> None:
        self.after = after
        self.epoch = epoch
        self._queue: asyncio.Queue[Delivery | BaseException | _Closed] = asyncio.Queue()
        self.closed = False
        self.dead = False  # lost or resynced: later deliveries are not queued any more
        self.waiting = False  # a next() is blocked on an empty queue
        self.delivered: list[Delivery] = []

    # the test's side
    def push(self, *items: Delivery) -> FakeStream:
        for item in items:
            self._queue.put_nowait(item)
        return self

    def hello(self, epoch: str, revision: int = 0) -> FakeStream:
        return self.push(Hello(epoch=epoch, revision=revision))

    def events(self, *events: Event) -> FakeStream:
        return self.push(batch(*events))

    def resync(self, reason: str = "test resync") -> FakeStream:
        return self.push(Resync(reason=reason))

    def lose(self, reason: str = "connection dropped") -> FakeStream:
        """The next() after everything queued so far raises ConnectionLost."""
        self._queue.put_nowait(ConnectionLost(reason))
        return self

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    # the engine's side
    async def next(self) -> Delivery:
        if self.closed:
            raise ConnectionLost("the stream is closed")
        self.waiting = self._queue.empty()
        try:
            item = await self._queue.get()
        finally:
            self.waiting = False
        if isinstance(item, _Closed) or self.closed:
            raise ConnectionLost("the stream is closed")
        if isinstance(item, BaseException):
            raise item
        self.delivered.append(item)
        return item

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(_Closed())


@dataclass(frozen=True)
class SubscribeCall:
    after: int | None
    epoch: str | None


# -- the connection ------------------------------------------------------------------------------
class FakeConnection(Connection):
    """A Connection whose subscriptions and snapshots the test scripts."""

    description = "fake connection"

    def __init__(self, snapshot: StateSnapshot | None = None) -> None:
        self.snapshot: StateSnapshot = snapshot or StateSnapshot(epoch="e1", revision=0)
        self.calls: list[SubscribeCall] = []
        self.streams: list[FakeStream] = []
        self.snapshot_fetches = 0
        #: When set (to an unset asyncio.Event), fetch_snapshot() waits for it; see hold_snapshot().
        self.snapshot_gate: asyncio.Event | None = None
        self.snapshot_requested = asyncio.Event()
        #: Exceptions raised by the next subscribe() calls, in order (e.g. ConnectionLost).
        self.subscribe_errors: list[BaseException] = []
        #: Called with each new stream before subscribe() returns (to script it up front).
        self.on_subscribe: Callable[[FakeStream], object] | None = None
        #: When set, subscribe() waits for it before returning.
        self.subscribe_gate: asyncio.Event | None = None
        self.closed = False
        #: What whoami() answers (Set up bench needs "admin").
        self.role = "editor"
        #: Bench tokens as the backend would keep them (the secrets only in ``secrets``).
        self.bench_tokens: list[PeerToken] = []
        self.secrets: dict[str, str] = {}
        #: Errors the next token calls raise, in order (e.g. a refused name).
        self.token_errors: list[LeaError] = []

    # scripting helpers
    @property
    def stream(self) -> FakeStream:
        """The newest stream."""
        assert self.streams, "nobody subscribed yet"
        return self.streams[-1]

    def hold_snapshot(self) -> asyncio.Event:
        """Make the next fetch_snapshot() wait until the returned event is set."""
        self.snapshot_gate = asyncio.Event()
        self.snapshot_requested = asyncio.Event()
        return self.snapshot_gate

    async def wait_subscribed(self, count: int, steps: int = 1000) -> FakeStream:
        """Wait until subscribe() has returned ``count`` streams; the newest one."""
        await until(lambda: len(self.streams) >= count, steps, f"{count} subscriptions")
        return self.streams[count - 1]

    # the Connection interface
    async def subscribe(self, after: int | None = None, epoch: str | None = None) -> EventStream:
        self.calls.append(SubscribeCall(after, epoch))
        await asyncio.sleep(0)
        if self.subscribe_gate is not None:
            await self.subscribe_gate.wait()
        if self.subscribe_errors:
            raise self.subscribe_errors.pop(0)
        stream = FakeStream(after, epoch)
        if self.on_subscribe is not None:
            self.on_subscribe(stream)
        self.streams.append(stream)
        return stream

    async def fetch_snapshot(self) -> StateSnapshot:
        self.snapshot_fetches += 1
        self.snapshot_requested.set()
        gate = self.snapshot_gate
        if gate is not None:
            await gate.wait()
            self.snapshot_gate = None
        await asyncio.sleep(0)
        return self.snapshot

    async def close(self) -> None:
        self.closed = True
        for stream in self.streams:
            await stream.close()

    async def whoami(self) -> Identity:
        return Identity(name="tester", role=self.role)

    # bench tokens (Set up bench), in memory; agent_url stays None unless the test sets it
    def _token_call(self) -> None:
        if self.agent_url is None:
            raise LeaError("this backend does not accept bench agents")
        if self.token_errors:
            raise self.token_errors.pop(0)

    async def create_peer_token(self, peer_id: UUID, name: str) -> str:
        await asyncio.sleep(0)
        self._token_call()
        if any(t.name == name for t in self.bench_tokens):
            raise AlreadyExists(f"a token named '{name}' already exists", name=name)
        secret = f"lea_{uuid.uuid4().hex}"
        created_at = f"2026-12-02T07:{len(self.secrets):02d}:00Z"
        self.bench_tokens.append(PeerToken(name=name, peer_id=peer_id, created_at=created_at))
        self.secrets[name] = secret
        return secret

    async def peer_tokens(self) -> list[PeerToken]:
        await asyncio.sleep(0)
        self._token_call()
        return list(self.bench_tokens)

    async def revoke_token(self, name: str) -> None:
        await asyncio.sleep(0)
        self._token_call()
        if not any(t.name == name for t in self.bench_tokens):
            raise NotFound(f"no token is named '{name}'", name=name)
        self.bench_tokens = [t for t in self.bench_tokens if t.name != name]

    # not used by the sync engine
    async def store_peer_descriptor(
        self, peer: PeerDescriptor, expected_version: int | None = None, create_only: bool = False
    ) -> WriteResult:
        raise NotImplementedError

    async def delete_peer_descriptor(self, peer_id: UUID, expected_version: int | None = None) -> WriteResult:
        raise NotImplementedError

    async def store_cluster_descriptor(
        self, cluster: ClusterDescriptor, expected_version: int | None = None, create_only: bool = False
    ) -> WriteResult:
        raise NotImplementedError

    async def delete_cluster_descriptor(self, cluster_id: UUID, expected_version: int | None = None) -> WriteResult:
        raise NotImplementedError

    async def store_cluster_deployment(self, cluster_id: UUID) -> WriteResult:
        raise NotImplementedError

    async def delete_cluster_deployment(self, cluster_id: UUID) -> WriteResult:
        raise NotImplementedError

    async def history(self, kind: ResourceKind, resource_id: UUID) -> list[Event]:
        raise NotImplementedError

    async def events(self, after: int = 0, limit: int = 200) -> list[Event]:
        raise NotImplementedError


# -- a fake backend with a true history ----------------------------------------------------------
class FakeBackend(FakeConnection):
    """Answers subscribe() and fetch_snapshot() from a true history, like the ResourcesManager.

    Revisions never repeat (across epochs too); a restart starts a new epoch and drops the volatile
    kinds; subscribe(after, epoch) replays from a ring of the epoch's last ``ring_size`` events or
    says Resync; every write is delivered, as one batch, to every open subscription.
    """

    _epochs = itertools.count(1)

    def __init__(self, ring_size: int = 4, fetch_steps: int = 1) -> None:
        super().__init__()
        self.epoch = f"epoch-{next(self._epochs)}"
        self.revision = 0
        self.state: dict[tuple[ResourceKind, UUID], AnyResource] = {}
        self.journal: list[Event] = []  # every committed event, in order: the true history
        self.ring_size = ring_size
        self.fetch_steps = fetch_steps  # loop turns fetch_snapshot() takes (writes can happen meanwhile)
        self.last_batch: EventBatch | None = None

    # the backend's side
    @property
    def open_streams(self) -> list[FakeStream]:
        return [s for s in self.streams if not (s.closed or s.dead)]

    def _ring(self) -> list[Event]:
        return [e for e in self.journal if e.epoch == self.epoch][-self.ring_size :]

    def write(self, changes: Iterable[tuple[EventType, AnyResource]], deliver: bool = True) -> EventBatch:
        """Commit one transaction and deliver its batch to every open subscription.

        ``deliver=False`` loses the batch on the way (the subscribers then see a gap).
        """
        tx = uuid.uuid4()
        events = []
        for type, resource in changes:
            self.revision += 1
            key = (resource.kind, resource.id)
            if type == EventType.DELETED:
                del self.state[key]
            else:
                self.state[key] = resource
            events.append(make_event(self.epoch, self.revision, type, resource, tx=tx))
        self.journal.extend(events)
        self.last_batch = batch(*events)
        if deliver:
            for stream in self.open_streams:
                stream.push(self.last_batch)
        return self.last_batch

    def duplicate(self) -> None:
        """Deliver the last batch once more (a transport that repeats itself)."""
        if self.last_batch is not None:
            for stream in self.open_streams:
                stream.push(self.last_batch)

    def drop(self) -> None:
        """Every open subscription loses its connection."""
        for stream in self.open_streams:
            stream.lose()
            stream.dead = True

    def resync(self) -> None:
        """Every open subscription is told to resync (as on a queue overflow)."""
        for stream in self.open_streams:
            stream.resync("queue overflow")
            stream.dead = True

    def restart(self, keep_streams: bool = False) -> None:
        """A new epoch: connections drop, volatile resources are gone, revisions go on.

        ``keep_streams=True``: the open subscriptions stay and carry the new epoch's events.
        """
        if not keep_streams:
            self.drop()
        self.epoch = f"epoch-{next(self._epochs)}"
        self.state = {key: r for key, r in self.state.items() if key[0].persisted}
        self.last_batch = None

    def current_snapshot(self) -> StateSnapshot:
        return StateSnapshot(epoch=self.epoch, revision=self.revision, resources=tuple(self.state.values()))

    # the actions: the manager's preconditions and versions, and the shared rules
    def _view(self) -> ResourceIndex:
        view = ResourceIndex()
        for resource in self.state.values():
            view.put(resource)
        return view

    def _put(self, resource: AnyResource, expected_version: int | None, create_only: bool) -> WriteResult:
        current = self.state.get((resource.kind, resource.id))
        current_version = 0 if current is None else current.version
        if create_only and current is not None:
            raise AlreadyExists(f"{resource.kind} {resource.id} already exists", kind=resource.kind.value,
                                id=str(resource.id))
        if expected_version is not None and expected_version != current_version:
            raise Conflict(
                f"{resource.kind} {resource.id} is at version {current_version}, not {expected_version}; "
                "it was changed by someone else",
                kind=resource.kind.value, id=str(resource.id), expected=expected_version, actual=current_version,
            )
        rules.check_put(self._view(), resource)
        stored = resource.model_copy(update={"version": current_version + 1})
        self.write([(EventType.CREATED if current is None else EventType.UPDATED, stored)])
        return WriteResult(revision=self.revision, version=stored.version, id=resource.id)

    def _delete(
        self, kind: ResourceKind, id: UUID, expected_version: int | None, *volatile: ResourceKind
    ) -> WriteResult:
        current = self.state.get((kind, id))
        if current is None:
            raise NotFound(f"{kind} {id} does not exist", kind=kind.value, id=str(id))
        if expected_version is not None and expected_version != current.version:
            raise Conflict(
                f"{kind} {id} is at version {current.version}, not {expected_version}; "
                "it was changed by someone else",
                kind=kind.value, id=str(id), expected=expected_version, actual=current.version,
            )
        rules.check_delete(self._view(), kind, id)
        gone = [current, *(r for k in volatile if (r := self.state.get((k, id))) is not None)]
        self.write([(EventType.DELETED, resource) for resource in gone])
        return WriteResult(revision=self.revision, version=0, id=id)

    async def store_peer_descriptor(
        self, peer: PeerDescriptor, expected_version: int | None = None, create_only: bool = False
    ) -> WriteResult:
        return self._put(peer, expected_version, create_only)

    async def delete_peer_descriptor(self, peer_id: UUID, expected_version: int | None = None) -> WriteResult:
        return self._delete(
            ResourceKind.PEER, peer_id, expected_version, ResourceKind.PEER_CONNECTION_STATE,
            ResourceKind.PEER_CONFIGURATION, ResourceKind.PEER_CONFIGURATION_STATE,
        )

    async def store_cluster_descriptor(
        self, cluster: ClusterDescriptor, expected_version: int | None = None, create_only: bool = False
    ) -> WriteResult:
        return self._put(cluster, expected_version, create_only)

    async def delete_cluster_descriptor(self, cluster_id: UUID, expected_version: int | None = None) -> WriteResult:
        return self._delete(ResourceKind.CLUSTER, cluster_id, expected_version, ResourceKind.CLUSTER_STATE)

    async def store_cluster_deployment(self, cluster_id: UUID) -> WriteResult:
        return self._put(ClusterDeployment(id=cluster_id), None, False)

    async def delete_cluster_deployment(self, cluster_id: UUID) -> WriteResult:
        return self._delete(ResourceKind.CLUSTER_DEPLOYMENT, cluster_id, None)

    # reads: only the persisted kinds are stored, so only they have a history
    def _stored(self) -> list[Event]:
        return [e for e in self.journal if e.kind.persisted]

    async def history(self, kind: ResourceKind, resource_id: UUID) -> list[Event]:
        return [e for e in self._stored() if e.kind in history_kinds(kind) and e.id == resource_id]

    async def events(self, after: int = 0, limit: int = 200) -> list[Event]:
        return [e for e in self._stored() if e.revision > after][:limit]

    # the Connection interface
    async def subscribe(self, after: int | None = None, epoch: str | None = None) -> EventStream:
        stream = await super().subscribe(after, epoch)
        assert isinstance(stream, FakeStream)
        stream.hello(self.epoch, self.revision)
        if after is not None:
            ring = self._ring()
            if epoch is not None and epoch != self.epoch:
                stream.resync("the backend restarted (new epoch)")
            elif after > self.revision:
                stream.resync("ahead of the backend")
            elif after < self.revision and (not ring or ring[0].revision > after + 1):
                stream.resync("older than the ring")
            else:
                replay = [e for e in ring if e.revision > after]
                for _, group in itertools.groupby(replay, key=lambda e: e.tx):
                    stream.events(*group)
        return stream

    async def fetch_snapshot(self) -> StateSnapshot:
        self.snapshot_fetches += 1
        for _ in range(self.fetch_steps):
            await asyncio.sleep(0)
        return self.current_snapshot()


# -- asyncio helpers -----------------------------------------------------------------------------
async def until(predicate: Callable[[], bool], steps: int = 1000, what: str = "the condition") -> None:
    """Turn the event loop until ``predicate()`` holds (no wall-clock waiting)."""
    for _ in range(steps):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"timed out waiting for {what}")


class RecordingSleep:
    """A stand-in for asyncio.sleep that records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)
