"""The client sync algorithm of DESIGN section 7, as one state machine (no Qt).

SYNCING  subscribe (events queue up in the stream), wait for the Hello, fetch the snapshot, diff
         it into the store, then drain the queue: drop revisions <= the snapshot's, apply the rest.
LIVE     apply revision r+1 after r, a batch at a time. A gap, another epoch or a Resync -> SYNCING;
         a lost connection -> RESUMING.
RESUMING keep the store; reconnect with backoff and subscribe with after = last applied revision in
         the same epoch; the backend replays from its ring (-> LIVE) or says resync (-> SYNCING).

Every event is applied exactly once. Repeated resyncs back off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum

from lea_app.connection.base import Connection, ConnectionLost, Delivery, EventStream
from lea_app.sync.budget import RETRY, UI_BUDGET, WorkBudget
from lea_app.sync.store import Store
from resources.backoff import Backoff
from resources.errors import LeaError
from resources.events import Event
from resources.wire import EventBatch, Hello, Resync

log = logging.getLogger(__name__)


#: Longest stretch of applying events before the engine lets the event loop run (seconds); within
#: the UI thread's shared budget (lea_app/sync/budget.py), which may cut it shorter.
YIELD_EVERY = 0.008


class SyncState(StrEnum):
    SYNCING = "syncing"
    LIVE = "live"
    RESUMING = "resuming"
    STOPPED = "stopped"


class _NeedsResync(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SyncEngine:
    def __init__(
        self,
        connection: Connection,
        store: Store,
        *,
        resync_backoff: Backoff | None = None,
        reconnect_backoff: Backoff | None = None,
        healthy_after: float = 10.0,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        budget: WorkBudget = UI_BUDGET,
    ) -> None:
        self.connection = connection
        self.store = store
        self.state = SyncState.SYNCING
        self.epoch: str | None = None
        self.revision: int | None = None  # last applied revision
        self.resyncs = 0
        self.last_error: str | None = None
        self._resync_backoff = resync_backoff or Backoff()
        self._reconnect_backoff = reconnect_backoff or Backoff(first=0.25, maximum=10.0)
        self._healthy_after = healthy_after
        self._sleep = sleep
        self._stream: EventStream | None = None
        self._listeners: list[Callable[[SyncState], None]] = []
        self._error_listeners: list[Callable[[LeaError], None]] = []
        self._stopped = False
        self._live_since = 0.0
        self._budget = budget
        self._deadline = 0.0  # the end of the slice the engine works in

    def on_error(self, listener: Callable[[LeaError], None]) -> None:
        """Hear refusals that keep the engine from syncing (it retries with backoff)."""
        self._error_listeners.append(listener)

    def on_state(self, listener: Callable[[SyncState], None]) -> None:
        self._listeners.append(listener)

    def _set_state(self, state: SyncState) -> None:
        if state != self.state:
            log.info("sync: %s -> %s", self.state, state)
            self.state = state
            for listener in list(self._listeners):
                listener(state)

    # -- the loop --------------------------------------------------------------------------
    async def run(self) -> None:
        """Run until stop(); never raises for backend trouble, it resyncs or resumes instead."""
        while not self._stopped:
            try:
                if self.state == SyncState.SYNCING:
                    await self._sync()
                elif self.state == SyncState.RESUMING:
                    await self._resume()
                elif self.state == SyncState.LIVE:
                    await self._live()
                else:
                    return
            except _NeedsResync as exc:
                log.info("sync: resync (%s)", exc.reason)
                self._reset_backoff_if_healthy()
                self.resyncs += 1
                self.last_error = exc.reason
                await self._close_stream()
                self._set_state(SyncState.SYNCING)
                await self._pause(self._resync_backoff)
            except ConnectionLost as exc:
                if self._stopped:
                    break
                log.info("sync: connection lost (%s)", exc)
                self._reset_backoff_if_healthy()
                self.last_error = str(exc)
                await self._close_stream()
                self._set_state(SyncState.RESUMING if self.revision is not None else SyncState.SYNCING)
                await self._pause(self._reconnect_backoff)
            except LeaError as exc:
                # The backend refused (a revoked token, storage trouble): say so, keep retrying.
                if self._stopped:
                    break
                log.warning("sync: the backend refused: %s (%s)", exc.message, exc.code)
                self.last_error = exc.message
                for listener in list(self._error_listeners):
                    listener(exc)
                await self._close_stream()
                self._set_state(SyncState.RESUMING if self.revision is not None else SyncState.SYNCING)
                await self._pause(self._reconnect_backoff)
        await self._close_stream()
        self._set_state(SyncState.STOPPED)

    async def stop(self) -> None:
        self._stopped = True
        await self._close_stream()

    def _reset_backoff_if_healthy(self) -> None:
        """Leaving LIVE after a healthy period (busy or quiet): the next retry starts without delay.

        Only here, never on reaching LIVE: a backend that accepts each resume and drops it at once
        must keep backing off instead of being hammered without pause.
        """
        if self.state == SyncState.LIVE and time.monotonic() - self._live_since >= self._healthy_after:
            self._resync_backoff.reset()
            self._reconnect_backoff.reset()

    async def _pause(self, backoff: Backoff) -> None:
        delay = backoff.next_delay()
        if delay > 0 and not self._stopped:
            await self._sleep(delay)

    async def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                await stream.close()
            except Exception:
                log.debug("closing the event stream failed", exc_info=True)

    # -- SYNCING ---------------------------------------------------------------------------
    async def _sync(self) -> None:
        stream = self._stream = await self.connection.subscribe()
        if self._stopped:  # stop() came while subscribing: run() closes this stream and ends
            return
        hello = await stream.next()
        if not isinstance(hello, Hello):
            raise _NeedsResync(f"expected hello, got {hello.type}")
        # Events published from here on queue up in the stream until the snapshot is applied.
        snapshot = await self.connection.fetch_snapshot()
        if snapshot.epoch != hello.epoch:
            raise _NeedsResync("the backend restarted while fetching the snapshot")
        self.store.apply_snapshot(snapshot)
        self.epoch = snapshot.epoch
        self.revision = snapshot.revision
        self._go_live()

    def _go_live(self) -> None:
        self._live_since = time.monotonic()
        self._set_state(SyncState.LIVE)

    # -- LIVE ------------------------------------------------------------------------------
    async def _live(self) -> None:
        assert self._stream is not None
        budget = self._budget
        asked = budget.clock()
        item = await self._stream.next()
        # During a burst the deliveries are already queued, so next() returns without ever
        # suspending: the engine works in slices of the UI thread's budget and between them gives
        # the event loop (painting, input, the table flushes) its turn. Reading and parsing the
        # delivery is work too, unless next() waited (then the loop was free meanwhile).
        start = budget.clock()
        if start - asked < budget.quiet:
            start = asked
        if start >= self._deadline:  # the slice is over (or this is the first delivery)
            if self._deadline:
                budget.done("sync", start, budget.clock())
                await asyncio.sleep(0)  # the event loop takes a turn between any two slices
                budget.yielded("sync")
            while (deadline := budget.turn("sync")) is None:
                await asyncio.sleep(RETRY)
            start = budget.clock()
            self._deadline = min(deadline, start + YIELD_EVERY)
        self._handle(item)
        budget.done("sync", start, budget.clock())

    def _handle(self, item: Delivery) -> None:
        if isinstance(item, Resync):
            raise _NeedsResync(item.reason)
        if isinstance(item, Hello):
            if item.epoch != self.epoch:
                raise _NeedsResync("the backend started a new epoch")
            return
        if isinstance(item, EventBatch):
            self.apply_batch(item.events)

    def apply_batch(self, events: tuple[Event, ...]) -> None:
        """Apply the new part of a batch exactly once; a gap or another epoch means resync."""
        assert self.revision is not None
        fresh = [e for e in events if not (e.epoch == self.epoch and e.revision <= self.revision)]
        if not fresh:
            return  # already applied (queued before the snapshot, or replayed twice)
        if any(e.epoch != self.epoch for e in fresh):
            raise _NeedsResync("events from another epoch")
        expected = self.revision + 1
        for event in fresh:
            if event.revision != expected:
                raise _NeedsResync(f"gap: expected revision {expected}, got {event.revision}")
            expected += 1
        self.store.apply_events(fresh)
        self.revision = fresh[-1].revision

    # -- RESUMING --------------------------------------------------------------------------
    async def _resume(self) -> None:
        stream = self._stream = await self.connection.subscribe(after=self.revision, epoch=self.epoch)
        if self._stopped:  # stop() came while subscribing: run() closes this stream and ends
            return
        hello = await stream.next()
        if not isinstance(hello, Hello):
            raise _NeedsResync(f"expected hello, got {hello.type}")
        if hello.epoch != self.epoch:
            raise _NeedsResync("the backend restarted (new epoch)")
        # Right after its hello the backend either replays its ring up to the hello's revision or
        # says resync: stay RESUMING until caught up, so a resync goes RESUMING -> SYNCING directly.
        assert self.revision is not None
        while self.revision < hello.revision and not self._stopped:
            self._handle(await stream.next())
        self._go_live()
