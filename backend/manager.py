"""The ResourcesManager: one sequencer, group commit, published state, ring and subscriptions.

Write path (one leader at a time, the sequencer): take every queued write (up to a group),
validate each against the working state that already contains every earlier accepted write,
assign revisions, commit the whole group in one storage transaction, then apply it to the
published state, acknowledge the writers and deliver the events to subscribers, in revision
order. The leader is the first writer waiting in ``write`` (it commits the queued group for every
other, as LevelDB's and PostgreSQL's writer queues do: no thread hop when a writer is alone), or
the ``lea-sequencer`` thread for writes ``submit``-ted with nobody waiting. A failed commit fails
the whole group and drops the working state; a group with persisted events also starts a new
epoch (every subscriber resyncs), a group of volatile changes only does not (nothing of it was
stored or seen). No revision above the stored high-water mark is ever published.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar
from uuid import UUID

from backend.restore import restore_state
from backend.settings import Settings
from backend.state import State
from backend.storage.base import EventStore, WriteNotStored
from backend.subscription import Encoded, Published, Ring, StreamSubscription, Subscription, encode_batch
from resources.errors import (
    AlreadyExists,
    Conflict,
    LeaError,
    NotFound,
    PayloadTooLarge,
    ShuttingDown,
    StorageFailed,
)
from resources.events import SCHEMA_VERSION, Checkpoint, Event, EventType, StateSnapshot
from resources.kinds import PERSISTED_KINDS, ResourceKind
from resources.resource import AnyResource
from resources.wire import EventBatch, Hello, Resync

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Put:
    """Create or replace a resource. ``expected_version`` 0 means "must not exist yet"."""

    resource: AnyResource
    expected_version: int | None = None
    create_only: bool = False


@dataclass(frozen=True)
class Delete:
    kind: ResourceKind
    id: UUID
    expected_version: int | None = None
    missing_ok: bool = False


Change = Put | Delete
#: A rule check: raises a LeaError when ``change`` may not be applied to ``state``.
RuleCheck = Callable[[State, Change], None]


def _no_rules(state: State, change: Change) -> None:
    return None


@dataclass(frozen=True)
class TxResult:
    """The outcome of one accepted transaction."""

    events: tuple[Event, ...]

    @property
    def revision(self) -> int:
        return self.events[-1].revision if self.events else 0

    def version_of(self, kind: ResourceKind, id: UUID) -> int:
        for event in reversed(self.events):
            if event.kind == kind and event.id == id:
                return 0 if event.resource is None else event.resource.version
        raise KeyError((kind, id))


@dataclass(eq=False)
class _Write:
    """One queued transaction. A ``submit``-ted one is resolved through its Future; one whose
    writer waits in ``write`` (``signal`` set) holds its outcome itself: no Future (a Condition, a
    lock and its callbacks per write) for a writer that reads its result once, often as its own
    leader. Either way the outcome is set before ``signal`` is released."""

    changes: Sequence[Change]
    actor: str
    future: Future[TxResult] | None = None  # submitted: resolved through it
    event_json: list[str] = field(default_factory=list)  # each staged event's JSON, encoded once
    #: Held while its writer waits (None: submitted, nobody waits); released when the write is
    #: resolved or its writer is made the leader.
    signal: threading.Lock | None = None
    leads: bool = False  # its writer was handed the leadership
    abandoned: bool = False  # its writer stopped waiting (timeout): never hand it the leadership
    result: TxResult | None = None  # a waited-for write's outcome: its result ...
    error: BaseException | None = None  # ... or why it was refused

    @property
    def done(self) -> bool:
        if self.future is not None:
            return self.future.done()
        return self.result is not None or self.error is not None

    def resolve(self, result: TxResult) -> None:
        if self.future is not None:
            self.future.set_result(result)
        else:
            self.result = result

    def fail(self, exc: BaseException) -> None:
        if self.future is not None:
            self.future.set_exception(exc)
        else:
            self.error = exc

    def outcome(self) -> TxResult:
        """(A waited-for write, once resolved.) Its result, or its error raised."""
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


# Models the sequencer builds from values that are all of their types already (its own values,
# resources validated on their way in): what ``model_construct`` makes, without its per-field
# Python loop. Measured per Event: validating 2.7 us, model_construct 3.9 us, this 0.8 us.
for _model in (Event, EventBatch):
    if _model.__pydantic_post_init__ or _model.__private_attributes__ or _model.model_config.get("extra") == "allow":
        raise TypeError(f"{_model.__name__} is built as a plain pydantic model: no post-init, private or extra fields")
_EVENT_FIELDS = frozenset(Event.model_fields)
_new = object.__new__
_set = object.__setattr__


def _event(**fields: object) -> Event:
    """An Event from every one of its fields (``_EVENT_FIELDS``), none validated again."""
    event: Event = _new(Event)
    _set(event, "__dict__", fields)
    _set(event, "__pydantic_fields_set__", set(_EVENT_FIELDS))  # a set: model_copy updates it
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event


def _with_version(resource: AnyResource, version: int) -> AnyResource:
    """``resource.model_copy(update={"version": version})`` without pydantic's generic copy (a
    resource has no private or extra fields: the copy is its field values and which were set)."""
    if resource.__pydantic_private__ is not None or resource.__pydantic_extra__ is not None:
        return resource.model_copy(update={"version": version})
    copied: AnyResource = _new(type(resource))
    values = resource.__dict__.copy()
    values["version"] = version
    _set(copied, "__dict__", values)
    _set(copied, "__pydantic_fields_set__", resource.__pydantic_fields_set__ | {"version"})
    _set(copied, "__pydantic_extra__", None)
    _set(copied, "__pydantic_private__", None)
    return copied


def _batch(events: tuple[Event, ...]) -> EventBatch:
    """``EventBatch(events=events)`` without validating the events again."""
    batch: EventBatch = _new(EventBatch)
    _set(batch, "__dict__", {"type": "events", "events": events})
    _set(batch, "__pydantic_fields_set__", {"events"})
    _set(batch, "__pydantic_extra__", None)
    _set(batch, "__pydantic_private__", None)
    return batch

#: A resync storm: this many epochs started by failed commits within STORM_WINDOW seconds.
STORM_EPOCHS = 10
STORM_WINDOW = 60.0


class ResourcesManager:
    def __init__(
        self,
        store: EventStore,
        settings: Settings | None = None,
        rules: RuleCheck = _no_rules,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.settings = settings or Settings()
        self._rules = rules
        self._clock = clock
        self._published = State()
        self._working = State()
        self._publish_lock = threading.RLock()
        self._subscribers: list[Subscription | StreamSubscription] = []
        self._ring = Ring(self.settings.ring_size, self.settings.ring_bytes)
        # The queue of writes and who commits them (leader-writer group commit, see _lead).
        self._pending: deque[_Write] = deque()  # under _state_lock
        self._leading = False  # a thread is committing groups (under _state_lock)
        self._helper_leads = False  # ... and it is the sequencer thread (under _state_lock)
        self._helper_wake = threading.Event()
        self._helper_stop = False
        self._epoch = uuid.uuid4().hex
        # Transaction ids: random UUIDs from a generator seeded once from the OS (os.urandom per
        # write is a system call that hands the GIL to another thread on every write).
        self._tx_ids = random.Random(os.urandom(32))
        self._published_revision = 0
        self._next_revision = 1
        self._reserved = 0
        self._since_checkpoint = 0
        self._thread: threading.Thread | None = None
        self._accepting = False
        self._closed = False
        self._restored = False
        self._state_lock = threading.Lock()  # guards _accepting/_closed transitions and the queue
        # Storage health, as the sequencer last saw it (one failure episode is logged once).
        self._storage_failing = False
        self._failed_commits = 0
        self._failing_since = 0.0
        self._storage_recovered_at = 0.0
        self._failure_epochs: deque[float] = deque()  # when failed commits started new epochs
        self._storm_warned_at: float | None = None
        #: Why writes are refused without touching the store (this server lost its write lock).
        self._fenced: str | None = None

    # -- life cycle ------------------------------------------------------------------------
    def restore(self) -> None:
        """The seed's ApplySnapshot + ApplyEvent: newest valid checkpoint, then every later event."""
        restored = restore_state(self.store)
        state, replayed = restored.state, restored.replayed
        base = max(self.store.reserved_revision(), self.store.last_revision(), restored.checkpoint_revision)
        with self._publish_lock:
            self._published = state
            self._working = state.copy()
            self._published_revision = base
            self._next_revision = base + 1
            self._since_checkpoint = replayed
        # Revisions of this run start above every revision ever reserved, so they never collide with a
        # crashed run's; the first commit reserves the next block (opening the store writes nothing).
        self._reserved = base
        self._restored = True
        log.info("restored revision %d (%d events replayed) in epoch %s", base, replayed, self._epoch)

    def start(self) -> None:
        """Accept writes. Operators subscribe between restore() and start()."""
        if not self._restored:
            self.restore()
        with self._state_lock:
            if self._thread is not None:
                return
            self._accepting = True
            self._thread = threading.Thread(target=self._help, name="lea-sequencer", daemon=True)
            self._thread.start()

    def close(self, checkpoint: bool = True) -> None:
        """Finish every queued write, write a checkpoint, close every subscription."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
            self._accepting = False
            thread = self._thread
        if thread is not None:
            # Every write queued before this one is committed first (the queue is in order).
            last = _Write([], "close", signal=threading.Lock())
            self._enqueue_waiting(last, refuse=False)
            try:
                self._wait(last, None)
            except StorageFailed as exc:
                # The marker holds no change: its group's failure is its writers' to report (this
                # thread may have led the group). Closing goes on; the checkpoint below is skipped
                # or fails on its own.
                log.warning("closing: the last writes were not stored: %s", exc)
            with self._state_lock:
                self._helper_stop = True
            self._helper_wake.set()
            thread.join()
        if checkpoint and self._restored and self._since_checkpoint > 0 and not self.store.read_only:
            try:
                self.write_checkpoint()
            except Exception as exc:  # storage failing: the events are stored, a restart replays them
                log.error("final checkpoint not written: %s", exc)
        with self._publish_lock:
            subscribers, self._subscribers = self._subscribers, []
        for sub in subscribers:
            sub._finish()

    # -- reading ---------------------------------------------------------------------------
    @property
    def epoch(self) -> str:
        return self._epoch

    @property
    def revision(self) -> int:
        return self._published_revision

    @property
    def storage_failing(self) -> bool:
        """True from a failed commit until a later commit reaches storage again, and while fenced."""
        return self._storage_failing or self._fenced is not None

    @property
    def storage_recovered_at(self) -> float:
        """``time.monotonic()`` when storage last recovered from failing (0.0: it never failed)."""
        return self._storage_recovered_at

    def get(self, kind: ResourceKind, id: UUID) -> AnyResource | None:
        with self._publish_lock:
            return self._published.get(kind, id)

    def resources_of(self, kind: ResourceKind) -> list[AnyResource]:
        with self._publish_lock:
            return list(self._published.of_kind(kind).values())

    def read(self, fn: Callable[[State], T]) -> T:
        """Run ``fn`` on the published state under the publish lock (it must not keep the state)."""
        with self._publish_lock:
            return fn(self._published)

    def fetch_snapshot(self, kinds: Iterable[ResourceKind] | None = None) -> StateSnapshot:
        """Every persisted and volatile resource as of exactly the published revision."""
        with self._publish_lock:
            # model_construct: every resource in the state was validated on its way in; validating
            # again re-ran each one's model validators (~17 ms per 9,000 peers) under the publish lock.
            return StateSnapshot.model_construct(
                epoch=self._epoch,
                revision=self._published_revision,
                schema_version=SCHEMA_VERSION,
                resources=tuple(self._published.all(kinds)),
            )

    def subscribe(
        self,
        after: int | None = None,
        kinds: Iterable[ResourceKind] | None = None,
        epoch: str | None = None,
        max_queued_events: int | None = None,
        accept: Callable[[Event], bool] | None = None,
    ) -> Subscription:
        """Every event after ``after`` (default: from now), in order, filtered by ``kinds``.

        ``accept`` narrows further (it runs on the writer's thread, under the publish lock: keep it
        cheap and never block in it); a subscriber with a filter sees gaps in the revisions.

        The first delivery is a Hello. An ``after`` from another epoch or older than the ring gets a
        Resync instead of events; so does a subscriber whose queue overflows.
        """
        sub = Subscription(
            frozenset(kinds) if kinds is not None else None,
            max_queued_events or self.settings.subscriber_queue_size,
            self._unsubscribe,
            accept,
            self.settings.subscriber_queue_bytes,
        )
        self._register(sub, after, epoch)
        return sub

    def subscribe_stream(self, after: int | None = None, epoch: str | None = None) -> StreamSubscription:
        """Like ``subscribe`` (no filter), delivering the JSON text of each message, for a WebSocket."""
        sub = StreamSubscription(
            self.settings.subscriber_queue_size, self.settings.subscriber_queue_bytes, self._unsubscribe
        )
        self._register(sub, after, epoch)
        return sub

    def _register(self, sub: Subscription | StreamSubscription, after: int | None, epoch: str | None) -> None:
        with self._publish_lock:
            sub._offer(Hello(epoch=self._epoch, revision=self._published_revision))
            if after is not None:
                reason = self._replay_problem(after, epoch)
                if reason is not None:
                    sub._offer(Resync(reason=reason))
                else:
                    sub._offer_all(self._ring.since(after))
            if self._closed:
                sub._finish()
            else:
                self._subscribers.append(sub)

    def _replay_problem(self, after: int, epoch: str | None) -> str | None:
        if epoch is not None and epoch != self._epoch:
            return "the backend restarted (new epoch)"
        if after > self._published_revision:
            return f"revision {after} is ahead of the backend ({self._published_revision})"
        if after == self._published_revision:
            return None
        first = self._ring.first_revision
        if first is None or first > after + 1:
            return f"revision {after} is older than the backend's recent events"
        return None

    def _unsubscribe(self, sub: Subscription | StreamSubscription) -> None:
        with self._publish_lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    # -- writing ---------------------------------------------------------------------------
    def submit(self, changes: Sequence[Change], actor: str) -> Future[TxResult]:
        """Queue one all-or-nothing transaction; the future resolves after its commit.

        The caller never blocks: a writer waiting in ``write`` or the sequencer thread commits it.
        """
        future: Future[TxResult] = Future()
        write = _Write(list(changes), actor, future=future)
        with self._state_lock:
            if not self._accepting:
                future.set_exception(ShuttingDown(self._refusal()))
                return future
            self._pending.append(write)
            if self._leading:
                return future
            self._leading = self._helper_leads = True
        self._helper_wake.set()
        return future

    def write(self, changes: Sequence[Change], actor: str) -> TxResult:
        """Queue one transaction and wait for its commit; the first waiting writer commits the
        queued group for every other (leader-writer group commit, no thread hop when alone)."""
        write = _Write(list(changes), actor, signal=threading.Lock())
        if not self._enqueue_waiting(write, refuse=True):
            raise ShuttingDown(self._refusal())
        return self._wait(write, self.settings.write_timeout)

    def _refusal(self) -> str:
        return "the backend is shutting down" if self._closed else "the backend is not started"

    def _enqueue_waiting(self, write: _Write, *, refuse: bool) -> bool:
        """Queue a write whose caller waits for it (False: refused, not accepting writes)."""
        assert write.signal is not None
        write.signal.acquire()
        with self._state_lock:
            if refuse and not self._accepting:
                return False
            self._pending.append(write)
            if not self._leading:  # nobody commits: this writer leads, at once
                self._leading = write.leads = True
                write.signal.release()
        return True

    def _wait(self, write: _Write, timeout: float | None) -> TxResult:
        """Wait until the write is resolved or its writer is handed the leadership (then lead)."""
        assert write.signal is not None
        if not write.signal.acquire(timeout=-1 if timeout is None else timeout):
            with self._state_lock:
                # Resolved or handed the leadership just now? Else never hand it the leadership.
                late = write.signal.acquire(blocking=False)
                write.abandoned = not late
            if not late:
                raise StorageFailed(f"the write was not committed within {timeout:g} s")
        if write.leads:
            self._lead(write)
        return write.outcome()

    def write_checkpoint(self) -> int:
        """Write a checkpoint of the persisted kinds at the published revision; returns it."""
        with self._publish_lock:
            checkpoint = Checkpoint.model_construct(  # validated resources, as in fetch_snapshot
                revision=self._published_revision, schema_version=SCHEMA_VERSION,
                resources=tuple(self._published.persisted()),
            )
            self._since_checkpoint = 0
        self.store.write_checkpoint(checkpoint)
        return checkpoint.revision

    # -- the sequencer ---------------------------------------------------------------------
    def _help(self) -> None:
        """The sequencer thread: it commits what was submitted while no writer waits to lead."""
        while True:
            self._helper_wake.wait()
            self._helper_wake.clear()
            with self._state_lock:
                leads, self._helper_leads = self._helper_leads, False
                stop = self._helper_stop
            if leads:
                self._lead(None)
            if stop:
                return

    def _lead(self, own: _Write | None) -> None:
        """Commit queued groups, in order, until ``own`` is resolved (None: the sequencer thread,
        until the queue is empty); then hand the leadership to the next waiting writer, or to the
        sequencer thread when only submitted writes are left. One leader at a time."""
        while True:
            with self._state_lock:
                n = min(len(self._pending), self.settings.commit_group_max)
                group = [self._pending.popleft() for _ in range(n)]
            if group:
                try:
                    self._process(group)
                except BaseException as exc:  # a bug: fail the group, never strand its writers
                    log.exception("unexpected error while committing a group")
                    for write in group:
                        if not write.done:
                            write.fail(exc)
                finally:
                    for write in group:
                        if write.signal is not None and not write.leads:
                            write.signal.release()  # wakes its writer: resolved
            with self._state_lock:
                if not self._pending:
                    self._leading = False
                    return
                if own is None or not own.done:
                    continue
                successor = next((w for w in self._pending if w.signal is not None and not w.abandoned), None)
                if successor is None:
                    self._helper_leads = True
                    self._helper_wake.set()
                    return
                successor.leads = True
                assert successor.signal is not None
                successor.signal.release()
                return

    def fence(self, reason: str) -> None:
        """Refuse every write (503 storage_failed) without touching the store, until ``unfence``."""
        self._fenced = reason

    def unfence(self) -> None:
        self._fenced = None

    @property
    def fenced(self) -> bool:
        return self._fenced is not None

    def _process(self, group: list[_Write]) -> None:
        fenced = self._fenced
        if fenced is not None:
            if not self._storage_failing:
                self._storage_failed(len(group), RuntimeError(fenced))
            for write in group:
                write.fail(StorageFailed(f"the change could not be saved: {fenced}"))
            return
        accepted: list[tuple[_Write, list[Event]]] = []
        for write in group:
            try:
                events = self._stage(write)
            except LeaError as exc:
                write.fail(exc)
                continue
            except Exception as exc:
                log.exception("unexpected error while validating a write")
                write.fail(exc)
                continue
            if events:
                accepted.append((write, events))
            else:
                write.resolve(TxResult(()))
        if not accepted:
            return
        all_events = [e for _, events in accepted for e in events]
        persisted = [e for e in all_events if e.kind in PERSISTED_KINDS]
        reserve = None
        reserved_before = self._reserved
        if self._next_revision - 1 > self._reserved:
            self._reserved = self._next_revision - 1 + self.settings.revision_block
            reserve = self._reserved
        stores = bool(persisted) or reserve is not None
        try:
            if stores:
                self.store.append(persisted, reserve_up_to=reserve)
        except Exception as exc:
            # The new high-water mark was not stored: the next group must reserve again, or the
            # revisions handed out after this failure could be handed out again after a crash.
            self._reserved = reserved_before
            # Certainly not stored (failed before its commit was sent): no new epoch, no resync.
            certain = isinstance(exc, WriteNotStored)
            self._commit_failed(accepted, exc, persisted=bool(persisted) and not certain)
            return
        if stores and self._storage_failing:
            self._storage_recovered()
        with self._publish_lock:
            batches = []
            for write, events in accepted:
                for event in events:
                    if event.resource is None:
                        self._published.delete(event.kind, event.id)
                    else:
                        self._published.put(event.resource)
                encoded = Encoded(encode_batch(write.event_json), events[0].revision, events[-1].revision)
                self._ring.append(encoded)
                self._published_revision = events[-1].revision
                batches.append(Published(_batch(tuple(events)), encoded))
            # One hand-over per subscriber per group (one lock, one wake-up), still one batch per tx.
            for sub in self._subscribers:
                sub._offer_all(batches)
            self._since_checkpoint += len(persisted)
        for write, events in accepted:
            write.resolve(TxResult(tuple(events)))
        if self._since_checkpoint >= self.settings.checkpoint_interval:
            try:
                self.write_checkpoint()
            except Exception as exc:  # the events are stored; the next interval tries again
                log.error("periodic checkpoint not written: %s", exc)

    def _stage(self, write: _Write) -> list[Event]:
        """Validate and apply one transaction to the working state; undo it all if any part fails."""
        undo: list[tuple[ResourceKind, UUID, AnyResource | None]] = []
        events: list[Event] = []
        tx = uuid.UUID(int=self._tx_ids.getrandbits(128), version=4)
        at = self._clock()
        try:
            for change in write.changes:
                event = self._stage_change(change, tx, at, write.actor, self._next_revision + len(events))
                if event is None:
                    continue
                text = event.model_dump_json()  # its size, and what the ring keeps and watchers are sent
                if len(text) > self.settings.max_event_bytes:
                    raise PayloadTooLarge(
                        f"{event.kind} {event.id} would be {len(text)} bytes as stored; the limit is "
                        f"{self.settings.max_event_bytes} bytes (max_event_bytes)",
                        kind=event.kind.value, id=str(event.id), size=len(text),
                        limit=self.settings.max_event_bytes,
                    )
                write.event_json.append(text)
                undo.append((event.kind, event.id, self._working.get(event.kind, event.id)))
                if event.resource is None:
                    self._working.delete(event.kind, event.id)
                else:
                    self._working.put(event.resource)
                events.append(event)
        except BaseException:
            for kind, id, previous in reversed(undo):
                self._working.restore(kind, id, previous)
            write.event_json.clear()
            raise
        self._next_revision += len(events)
        return events

    def _stage_change(
        self, change: Change, tx: UUID, at: datetime, actor: str, revision: int
    ) -> Event | None:
        if isinstance(change, Put):
            res = change.resource
            current = self._working.get(res.kind, res.id)
            current_version = 0 if current is None else current.version
            if change.create_only and current is not None:
                raise AlreadyExists(
                    f"{res.kind} {res.id} already exists", kind=res.kind.value, id=str(res.id)
                )
            if change.expected_version is not None and change.expected_version != current_version:
                raise Conflict(
                    f"{res.kind} {res.id} is at version {current_version}, not {change.expected_version}; "
                    "it was changed by someone else",
                    kind=res.kind.value, id=str(res.id), expected=change.expected_version,
                    actual=current_version,
                )
            self._rules(self._working, change)
            stored = _with_version(res, current_version + 1)
            # Every field is already of its type (``stored`` is a validated resource): no validation.
            return _event(
                epoch=self._epoch, revision=revision,
                type=EventType.CREATED if current is None else EventType.UPDATED,
                kind=res.kind, id=res.id, resource=stored, actor=actor, at=at, tx=tx,
            )
        current = self._working.get(change.kind, change.id)
        if current is None:
            if change.missing_ok:
                return None
            raise NotFound(
                f"{change.kind} {change.id} does not exist", kind=change.kind.value, id=str(change.id)
            )
        if change.expected_version is not None and change.expected_version != current.version:
            raise Conflict(
                f"{change.kind} {change.id} is at version {current.version}, not {change.expected_version}; "
                "it was changed by someone else",
                kind=change.kind.value, id=str(change.id), expected=change.expected_version,
                actual=current.version,
            )
        self._rules(self._working, change)
        return _event(
            epoch=self._epoch, revision=revision, type=EventType.DELETED, kind=change.kind,
            id=change.id, resource=None, actor=actor, at=at, tx=tx,
        )

    def _commit_failed(
        self, accepted: list[tuple[_Write, list[Event]]], exc: Exception, *, persisted: bool
    ) -> None:
        """Fail every write of the group; none of its events was stored, published or delivered.

        With persisted events: a new epoch (every subscriber resyncs), the failed revisions skipped,
        but the new epoch's revision never above the stored reservation (after a restart revisions
        resume from there: one published above it would be handed out again, lower than seen).
        Volatile changes only (their reservation failed): the epoch stays and their revisions are
        handed out again, so subscribers see no gap and need no resync.
        """
        self._storage_failed(len(accepted), exc)
        error = StorageFailed(f"the change could not be saved: {exc}")
        with self._publish_lock:
            self._working = self._published.copy()
            if persisted:
                self._epoch = uuid.uuid4().hex
                self._ring.clear()
                self._published_revision = max(
                    self._published_revision, min(self._next_revision - 1, self._reserved)
                )
                for sub in self._subscribers:
                    sub._offer(Resync(reason="a commit failed; the backend started a new epoch"))
            self._next_revision = self._published_revision + 1
        if persisted:
            self._note_new_epoch(exc)
        for write, _ in accepted:
            write.fail(error)

    def _storage_failed(self, writes: int, exc: Exception) -> None:
        """Log the first failed commit of an episode (a full disk fails every commit until freed)."""
        self._failed_commits += 1
        if self._storage_failing:
            log.debug("commit of %d writes failed: %s", writes, exc)
            return
        self._storage_failing = True
        self._failing_since = time.monotonic()
        log.error(
            "storage failing: a commit of %d writes failed (%s); writes are refused until storage works again",
            writes, exc,
        )

    def _storage_recovered(self) -> None:
        self._storage_failing = False
        self._storage_recovered_at = time.monotonic()
        log.warning(
            "storage recovered: commits succeed again after %d failed commits in %.1f s",
            self._failed_commits, self._storage_recovered_at - self._failing_since,
        )
        self._failed_commits = 0

    def _note_new_epoch(self, exc: Exception) -> None:
        """Warn (at most once per window) when failed commits keep making every client resync."""
        now = time.monotonic()
        self._failure_epochs.append(now)
        while self._failure_epochs and self._failure_epochs[0] < now - STORM_WINDOW:
            self._failure_epochs.popleft()
        if len(self._failure_epochs) < STORM_EPOCHS:
            return
        if self._storm_warned_at is not None and now - self._storm_warned_at < STORM_WINDOW:
            return
        self._storm_warned_at = now
        log.warning(
            "resync storm: %d failed commits started a new epoch in the last %.0f s, each making every "
            "client resync (%s)", len(self._failure_epochs), STORM_WINDOW, exc,
        )
