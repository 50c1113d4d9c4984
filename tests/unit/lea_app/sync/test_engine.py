"""The sync engine of DESIGN section 7, every transition driven by a scripted fake connection.

Plain asyncio (asyncio.run inside sync tests), no Qt; backoff delays go to a recording fake sleep,
and the "healthy period" clock is a fake, so nothing waits on the wall clock.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, ParamSpec
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import lea_app.sync.engine as engine_module
from lea_app.connection.base import ConnectionLost
from lea_app.sync.engine import SyncEngine, SyncState
from lea_app.sync.store import Store, StoreChange
from resources.backoff import Backoff
from resources.events import Event, EventType, StateSnapshot
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.resource import AnyResource
from resources.state import Online, PeerConnectionState
from resources.wire import Hello
from tests.helpers.factories import make_peer
from tests.helpers.fake_connection import (
    AT,
    FakeBackend,
    FakeConnection,
    FakeStream,
    RecordingSleep,
    SubscribeCall,
    batch,
    created,
    deleted,
    snapshot,
    until,
    updated,
)

E = "epoch-a"
E2 = "epoch-b"
PEER = ResourceKind.PEER
STATE = ResourceKind.PEER_CONNECTION_STATE
SYNCING, LIVE, RESUMING, STOPPED = SyncState.SYNCING, SyncState.LIVE, SyncState.RESUMING, SyncState.STOPPED
TIMEOUT = 10.0

P = ParamSpec("P")


def async_test(fn: Callable[P, Awaitable[None]]) -> Callable[P, None]:
    """Run an async test body in a fresh event loop, with a timeout against hangs."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        async def main() -> None:
            await asyncio.wait_for(fn(*args, **kwargs), TIMEOUT)

        asyncio.run(main())

    return wrapper


class RecordingBackoff(Backoff):
    """A Backoff that records every delay it hands out (zeros included, which are never slept)."""

    def __init__(self, first: float, maximum: float) -> None:
        super().__init__(first, maximum)
        self.delays: list[float] = []

    def next_delay(self) -> float:
        delay = super().next_delay()
        self.delays.append(delay)
        return delay


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The engine's notion of time (its healthy period), and only the engine's."""
    fake = FakeClock()
    monkeypatch.setattr(engine_module, "time", SimpleNamespace(monotonic=fake))
    return fake


class Rig:
    """A SyncEngine on a FakeConnection, with everything it does recorded."""

    def __init__(self, conn: FakeConnection | None = None, **engine_options: Any) -> None:
        self.conn = conn if conn is not None else FakeConnection()
        self.store = Store()
        self.sleep = RecordingSleep()
        self.resync_backoff = RecordingBackoff(first=0.1, maximum=0.5)
        self.reconnect_backoff = RecordingBackoff(first=0.25, maximum=2.0)
        self.engine = SyncEngine(
            self.conn,
            self.store,
            resync_backoff=self.resync_backoff,
            reconnect_backoff=self.reconnect_backoff,
            sleep=self.sleep,
            **engine_options,
        )
        self.states: list[SyncState] = []
        self.engine.on_state(self.states.append)
        self.changes: list[StoreChange] = []
        self.store.listen(self.changes.append)
        self.applied: list[Event] = []
        self.store.listen_events(self.applied.extend)
        self._task: asyncio.Task[None] | None = None

    @property
    def task(self) -> asyncio.Task[None]:
        assert self._task is not None, "start() first"
        return self._task

    def start(self) -> None:
        self._task = asyncio.ensure_future(self.engine.run())

    async def until(self, predicate: Callable[[], bool], what: str = "the condition", steps: int = 2000) -> None:
        def check() -> bool:
            if self.task.done():
                self.task.result()  # re-raise a crash of run()
                raise AssertionError(f"run() ended while waiting for {what}")
            return predicate()

        await until(check, steps, what)

    async def settle(self) -> None:
        """Wait until the engine is LIVE and blocked on an empty stream (all deliveries handled)."""
        await self.until(
            lambda: self.engine.state == LIVE and self.conn.stream.waiting and not self.conn.stream.pending,
            "LIVE and idle",
        )

    async def go_live(self, snap: StateSnapshot) -> FakeStream:
        """Start the engine and take it through the first sync to LIVE on ``snap``."""
        self.conn.snapshot = snap
        self.start()
        stream = await self.conn.wait_subscribed(1)
        stream.hello(snap.epoch, snap.revision)
        await self.settle()
        return stream

    async def stop(self) -> None:
        await self.engine.stop()
        await asyncio.wait_for(self.task, 2)
        assert self.engine.state == STOPPED

    @property
    def revisions(self) -> list[int]:
        return [e.revision for e in self.applied]

    def contents(self) -> dict[tuple[ResourceKind, Any], AnyResource]:
        return {(r.kind, r.id): r for r in self.store.resources()}


def contents_of(*resources: AnyResource) -> dict[tuple[ResourceKind, Any], AnyResource]:
    return {(r.kind, r.id): r for r in resources}


def bump(peer: PeerDescriptor, location: str) -> PeerDescriptor:
    return peer.model_copy(update={"location": location, "version": peer.version + 1})


def online(peer: PeerDescriptor) -> PeerConnectionState:
    return PeerConnectionState(id=peer.id, state=Online(remote_host="10.0.0.7", since=AT))


def peers(count: int) -> list[PeerDescriptor]:
    return [make_peer(f"bench-{i:02d}") for i in range(count)]


# -- SYNCING -> LIVE -----------------------------------------------------------------------------
@async_test
async def test_events_during_the_snapshot_fetch_are_applied_after_it() -> None:
    a, b, c, d = peers(4)
    a2 = bump(a, "lab 2")
    rig = Rig()
    gate = rig.conn.hold_snapshot()
    rig.start()

    stream = await rig.conn.wait_subscribed(1)
    stream.hello(E, 2)
    await rig.conn.snapshot_requested.wait()
    # while the snapshot is on its way: rev 3, a transaction 4-5 straddling the snapshot, then 6
    tx = uuid4()
    stream.events(created(E, 3, c))
    stream.events(updated(E, 4, a2, tx), deleted(E, 5, b, tx))
    stream.events(created(E, 6, d))
    rig.conn.snapshot = snapshot(E, 4, a2, b, c)  # as of revision 4
    for _ in range(20):
        await asyncio.sleep(0)
    assert rig.engine.state == SYNCING
    assert rig.applied == [] and len(rig.store) == 0  # everything queued until the snapshot arrives

    gate.set()
    await rig.settle()

    assert rig.revisions == [5, 6]  # <= 4 dropped, the rest in order
    assert rig.contents() == contents_of(a2, c, d)
    assert (rig.engine.epoch, rig.engine.revision) == (E, 6)
    assert rig.changes == [
        StoreChange(PEER, inserted={a.id, b.id, c.id}),  # the snapshot, diffed into an empty store
        StoreChange(PEER, removed={b.id}),
        StoreChange(PEER, inserted={d.id}),
    ]
    assert rig.states == [LIVE]
    assert rig.conn.calls == [SubscribeCall(None, None)]
    assert rig.conn.snapshot_fetches == 1
    await rig.stop()


@async_test
async def test_events_all_covered_by_the_snapshot_are_dropped() -> None:
    a, b = peers(2)
    rig = Rig()
    gate = rig.conn.hold_snapshot()
    rig.start()
    stream = await rig.conn.wait_subscribed(1)
    stream.hello(E, 0)
    await rig.conn.snapshot_requested.wait()
    stream.events(created(E, 1, a))
    stream.events(created(E, 2, b))
    rig.conn.snapshot = snapshot(E, 2, a, b)
    gate.set()
    await rig.settle()

    assert rig.applied == []
    assert rig.contents() == contents_of(a, b)
    assert rig.engine.revision == 2
    stream.events(deleted(E, 3, a))
    await rig.settle()
    assert rig.revisions == [3]
    assert rig.contents() == contents_of(b)
    await rig.stop()


@async_test
async def test_a_snapshot_of_another_epoch_than_the_hello_resyncs() -> None:
    (a,) = peers(1)
    rig = Rig()
    rig.conn.snapshot = snapshot(E2, 9, a)  # the backend restarted between the hello and the fetch
    rig.start()
    (await rig.conn.wait_subscribed(1)).hello(E, 3)
    second = await rig.conn.wait_subscribed(2)
    assert rig.conn.streams[0].closed
    assert len(rig.store) == 0  # nothing applied from the mismatched snapshot
    second.hello(E2, 9)
    await rig.settle()
    assert (rig.engine.epoch, rig.engine.revision) == (E2, 9)
    assert rig.contents() == contents_of(a)
    assert rig.engine.resyncs == 1
    await rig.stop()


@async_test
async def test_a_resync_instead_of_the_hello_resyncs() -> None:
    (a,) = peers(1)
    rig = Rig()
    rig.conn.snapshot = snapshot(E, 1, a)
    rig.start()
    (await rig.conn.wait_subscribed(1)).resync("overflow before the hello")
    (await rig.conn.wait_subscribed(2)).hello(E, 1)
    await rig.settle()
    assert rig.contents() == contents_of(a)
    assert rig.conn.snapshot_fetches == 1
    await rig.stop()


@async_test
async def test_the_first_connection_is_retried_with_backoff() -> None:
    (a,) = peers(1)
    rig = Rig()
    rig.conn.snapshot = snapshot(E, 1, a)
    rig.conn.subscribe_errors = [ConnectionLost("refused"), ConnectionLost("refused")]
    rig.start()
    (await rig.conn.wait_subscribed(1)).lose("dropped before the hello")
    (await rig.conn.wait_subscribed(2)).hello(E, 1)
    await rig.settle()

    # no revision was ever applied, so there is nothing to resume: it stays SYNCING
    assert rig.states == [LIVE]
    assert rig.conn.calls == [SubscribeCall(None, None)] * 4
    assert rig.reconnect_backoff.delays == [0.0, 0.25, 0.5]
    assert rig.sleep.delays == [0.25, 0.5]
    assert rig.contents() == contents_of(a)
    await rig.stop()


@async_test
async def test_a_snapshot_fetch_that_loses_the_connection_is_retried() -> None:
    (a,) = peers(1)
    rig = Rig()
    real_fetch = rig.conn.fetch_snapshot
    failures = [ConnectionLost("snapshot request failed")]

    async def flaky_fetch() -> StateSnapshot:
        if failures:
            raise failures.pop()
        return await real_fetch()

    rig.conn.fetch_snapshot = flaky_fetch  # type: ignore[method-assign]
    rig.conn.snapshot = snapshot(E, 1, a)
    rig.conn.on_subscribe = lambda stream: stream.hello(E, 1)
    rig.start()
    await rig.settle()
    assert len(rig.conn.streams) == 2 and rig.conn.streams[0].closed
    assert rig.contents() == contents_of(a)
    await rig.stop()


# -- LIVE: exactly once --------------------------------------------------------------------------
@async_test
async def test_duplicate_and_overlapping_deliveries_are_applied_once() -> None:
    a, b, c, d = peers(4)
    rig = Rig()
    stream = await rig.go_live(snapshot(E, 2, a, b))

    first = batch(created(E, 3, c))
    tx = uuid4()
    second = batch(updated(E, 4, bump(a, "x"), tx), deleted(E, 5, b, tx))
    stream.push(first, first)  # the same batch twice
    stream.push(second)
    stream.push(batch(updated(E, 4, bump(a, "x"), tx), deleted(E, 5, b, tx), created(E, 6, d)))  # overlapping replay
    stream.push(first, second)  # stale repeats
    await rig.settle()

    assert rig.revisions == [3, 4, 5, 6]
    assert rig.store.applied_events == 4
    assert rig.contents() == contents_of(bump(a, "x"), c, d)
    assert rig.engine.revision == 6
    assert rig.engine.resyncs == 0
    assert len(rig.conn.calls) == 1 and rig.conn.snapshot_fetches == 1
    assert rig.changes[1:] == [
        StoreChange(PEER, inserted={c.id}),
        StoreChange(PEER, changed={a.id}, removed={b.id}),
        StoreChange(PEER, inserted={d.id}),
    ]
    await rig.stop()


@async_test
async def test_a_hello_of_the_same_epoch_while_live_is_harmless() -> None:
    (a,) = peers(1)
    rig = Rig()
    stream = await rig.go_live(snapshot(E, 1))
    stream.push(Hello(epoch=E, revision=1))
    stream.events(created(E, 2, a))
    await rig.settle()
    assert rig.revisions == [2]
    assert rig.states == [LIVE]
    await rig.stop()


# -- LIVE -> SYNCING -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "gap",
    [
        pytest.param(lambda c, d: [batch(created(E, 3, c)), batch(created(E, 5, d))], id="missing-revision"),
        pytest.param(lambda c, d: [batch(created(E, 3, c), created(E, 5, d))], id="hole-inside-a-batch"),
    ],
)
@async_test
async def test_a_gap_resyncs_with_a_fresh_subscription_and_snapshot(
    gap: Callable[[PeerDescriptor, PeerDescriptor], list[Any]],
) -> None:
    a, b, c, d, e = peers(5)
    rig = Rig()
    stream = await rig.go_live(snapshot(E, 2, a, b))

    rig.conn.snapshot = snapshot(E, 5, a, c, d)  # the truth: 3 created c, 4 deleted b, 5 created d
    stream.push(*gap(c, d))
    second = await rig.conn.wait_subscribed(2)
    assert stream.closed
    assert rig.engine.state == SYNCING
    second.hello(E, 5)
    await rig.settle()

    assert rig.conn.calls == [SubscribeCall(None, None), SubscribeCall(None, None)]
    assert rig.conn.snapshot_fetches == 2
    assert rig.engine.resyncs == 1 and "gap" in (rig.engine.last_error or "")
    assert rig.states == [LIVE, SYNCING, LIVE]
    assert rig.contents() == contents_of(a, c, d)
    assert rig.engine.revision == 5
    assert len(set(rig.revisions)) == len(rig.revisions)  # nothing applied twice

    second.events(created(E, 6, e))
    await rig.settle()
    assert rig.contents() == contents_of(a, c, d, e)
    await rig.stop()


@pytest.mark.parametrize(
    "delivery",
    [
        pytest.param(lambda p: batch(created(E2, 4, p)), id="events-of-another-epoch"),
        pytest.param(lambda p: batch(created(E2, 1, p)), id="another-epoch-with-an-old-revision"),
        pytest.param(lambda p: Hello(epoch=E2, revision=1), id="hello-of-another-epoch"),
    ],
)
@async_test
async def test_another_epoch_resyncs(delivery: Callable[[PeerDescriptor], Any]) -> None:
    a, b = peers(2)
    rig = Rig()
    stream = await rig.go_live(snapshot(E, 3, a, online(a)))
    changes_before = len(rig.changes)

    rig.conn.snapshot = snapshot(E2, 4, a, b)  # a restart: the volatile state of a is gone
    stream.push(delivery(b))
    second = await rig.conn.wait_subscribed(2)
    assert stream.closed
    second.hello(E2, 4)
    await rig.settle()

    assert (rig.engine.epoch, rig.engine.revision) == (E2, 4)
    assert rig.contents() == contents_of(a, b)
    assert rig.applied == []  # the other epoch's events came through the snapshot, not applied on top
    assert rig.changes[changes_before:] == [StoreChange(PEER, inserted={b.id}), StoreChange(STATE, removed={a.id})]
    assert rig.states == [LIVE, SYNCING, LIVE]
    await rig.stop()


@async_test
async def test_a_resync_in_a_burst_diffs_the_snapshot_instead_of_resetting() -> None:
    same, changing, vanishing, short_lived, late, new = peers(6)
    rig = Rig()
    stream = await rig.go_live(snapshot(E, 10, same, changing, vanishing, online(same)))
    changes_before = len(rig.changes)

    stream.events(updated(E, 11, bump(changing, "first")))
    stream.events(created(E, 12, short_lived))
    stream.resync("queue overflow")
    stream.events(created(E, 13, late))  # after the resync on the old stream: never applied from it
    changed = bump(bump(changing, "first"), "second")
    rig.conn.snapshot = snapshot(E, 20, same, changed, new, online(same))

    second = await rig.conn.wait_subscribed(2)
    assert stream.closed
    burst = rig.changes[changes_before:]
    assert burst == [StoreChange(PEER, changed={changing.id}), StoreChange(PEER, inserted={short_lived.id})]
    second.hello(E, 20)
    await rig.settle()

    assert rig.revisions == [11, 12]
    resync_changes = rig.changes[changes_before + 2 :]
    # one fine-grained change for what differs; `same` (and its volatile state) is untouched
    assert resync_changes == [
        StoreChange(PEER, inserted={new.id}, changed={changing.id}, removed={vanishing.id, short_lived.id})
    ]
    assert rig.contents() == contents_of(same, changed, new, online(same))
    assert rig.engine.resyncs == 1 and rig.engine.last_error == "queue overflow"
    assert rig.states == [LIVE, SYNCING, LIVE]
    assert rig.conn.calls == [SubscribeCall(None, None), SubscribeCall(None, None)]
    await rig.stop()


# -- LIVE -> RESUMING ------------------------------------------------------------------------------
@async_test
async def test_a_lost_connection_resumes_from_the_ring() -> None:
    a, b, c, d = peers(4)
    rig = Rig()
    stream = await rig.go_live(snapshot(E, 3, a, b))
    stream.events(created(E, 4, c))
    stream.events(deleted(E, 5, a))
    stream.lose()
    stream.events(updated(E, 6, bump(b, "never read")))  # queued behind the loss: lost with it

    resumed = await rig.conn.wait_subscribed(2)
    assert rig.engine.state == RESUMING
    assert stream.closed
    assert rig.conn.calls[1] == SubscribeCall(after=5, epoch=E)
    assert rig.contents() == contents_of(b, c)  # the store is kept
    changes_before = len(rig.changes)

    b2 = bump(b, "ring")
    resumed.hello(E, 7)
    resumed.events(deleted(E, 5, a))  # a ring replay overlapping what was applied
    resumed.events(updated(E, 6, b2))
    resumed.events(created(E, 7, d))
    await rig.settle()

    assert rig.revisions == [4, 5, 6, 7]  # every revision once
    assert rig.contents() == contents_of(b2, c, d)
    assert rig.changes[changes_before:] == [StoreChange(PEER, changed={b.id}), StoreChange(PEER, inserted={d.id})]
    assert rig.conn.snapshot_fetches == 1  # no snapshot on a resume
    assert rig.states == [LIVE, RESUMING, LIVE]
    assert rig.engine.resyncs == 0
    await rig.stop()


@async_test
async def test_a_lost_connection_answered_with_resync_syncs_again() -> None:
    a, b, c = peers(3)
    rig = Rig()
    stream = await rig.go_live(snapshot(E, 3, a, b))
    stream.lose()

    resumed = await rig.conn.wait_subscribed(2)
    assert rig.conn.calls[1] == SubscribeCall(after=3, epoch=E)
    rig.conn.snapshot = snapshot(E, 50, a, c)
    resumed.hello(E, 50).resync("revision 3 is older than the backend's recent events")
    fresh = await rig.conn.wait_subscribed(3)
    assert resumed.closed
    assert rig.conn.calls[2] == SubscribeCall(None, None)
    fresh.hello(E, 50)
    await rig.settle()

    assert rig.states == [LIVE, RESUMING, SYNCING, LIVE]
    assert rig.contents() == contents_of(a, c)
    assert rig.changes[1:] == [StoreChange(PEER, inserted={c.id}, removed={b.id})]
    assert rig.engine.revision == 50
    await rig.stop()


@async_test
async def test_a_resume_hello_of_another_epoch_syncs_again() -> None:
    a, b = peers(2)
    rig = Rig()
    stream = await rig.go_live(snapshot(E, 3, a, online(a)))
    changes_before = len(rig.changes)
    stream.lose()

    resumed = await rig.conn.wait_subscribed(2)
    assert rig.conn.calls[1] == SubscribeCall(after=3, epoch=E)
    rig.conn.snapshot = snapshot(E2, 4, a, b)
    resumed.hello(E2, 4)
    fresh = await rig.conn.wait_subscribed(3)
    assert resumed.closed
    fresh.hello(E2, 4)
    await rig.settle()

    assert rig.states == [LIVE, RESUMING, SYNCING, LIVE]
    assert rig.conn.calls[2] == SubscribeCall(None, None)
    assert (rig.engine.epoch, rig.engine.revision) == (E2, 4)
    assert rig.contents() == contents_of(a, b)
    assert rig.changes[changes_before:] == [StoreChange(PEER, inserted={b.id}), StoreChange(STATE, removed={a.id})]
    await rig.stop()


@async_test
async def test_a_connection_lost_again_while_resuming_keeps_resuming() -> None:
    a, b = peers(2)
    rig = Rig()
    stream = await rig.go_live(snapshot(E, 3, a))
    stream.lose()
    (await rig.conn.wait_subscribed(2)).lose("dropped before the hello")
    third = await rig.conn.wait_subscribed(3)
    assert rig.engine.state == RESUMING
    third.hello(E, 4).events(created(E, 4, b))
    await rig.settle()
    assert rig.conn.calls[1:] == [SubscribeCall(3, E), SubscribeCall(3, E)]
    assert rig.states == [LIVE, RESUMING, LIVE]
    assert rig.contents() == contents_of(a, b)
    await rig.stop()


async def resync_storm(rig: Rig, resyncs: int, snap: StateSnapshot) -> None:
    """Start the engine; each of the first ``resyncs`` subscriptions says hello, then Resync."""
    rig.conn.snapshot = snap
    count = 0

    def script(stream: FakeStream) -> None:
        nonlocal count
        count += 1
        stream.hello(snap.epoch, snap.revision)
        if count <= resyncs:
            stream.resync(f"storm {count}")

    rig.conn.on_subscribe = script
    rig.start()
    await rig.settle()


@async_test
async def test_repeated_resyncs_back_off() -> None:
    rig = Rig()
    await resync_storm(rig, 6, snapshot(E, 1, *peers(2)))

    assert rig.engine.resyncs == 6
    assert rig.resync_backoff.delays == [0.0, 0.1, 0.2, 0.4, 0.5, 0.5]  # grows, then capped
    assert rig.sleep.delays == [0.1, 0.2, 0.4, 0.5, 0.5]  # a zero delay is not slept
    assert rig.conn.snapshot_fetches == 7
    assert all(s.closed for s in rig.conn.streams[:-1])
    # the store was filled once; the six identical snapshots changed nothing
    assert len(rig.changes) == 1
    await rig.stop()


@async_test
async def test_resync_backoff_resets_after_a_healthy_period_with_events(clock: FakeClock) -> None:
    (a,) = peers(1)
    rig = Rig(healthy_after=10.0)
    await resync_storm(rig, 3, snapshot(E, 1))
    assert rig.resync_backoff.delays == [0.0, 0.1, 0.2]

    clock.advance(11)
    rig.conn.stream.events(created(E, 2, a))
    await rig.settle()
    rig.conn.stream.resync("again, much later")
    await rig.until(lambda: len(rig.conn.streams) == 5)
    await rig.settle()
    assert rig.resync_backoff.delays == [0.0, 0.1, 0.2, 0.0]
    await rig.stop()


@async_test
async def test_resync_backoff_resets_after_a_quiet_healthy_period(clock: FakeClock) -> None:
    rig = Rig(healthy_after=10.0)
    await resync_storm(rig, 3, snapshot(E, 1))
    assert rig.resync_backoff.delays == [0.0, 0.1, 0.2]

    clock.advance(11)  # LIVE for 11 s, no events in the meantime: still a healthy period
    rig.conn.stream.resync("again, much later")
    await rig.until(lambda: len(rig.conn.streams) == 5)
    await rig.settle()
    assert rig.resync_backoff.delays == [0.0, 0.1, 0.2, 0.0]
    await rig.stop()


@async_test
async def test_resync_backoff_keeps_growing_after_a_short_live_period(clock: FakeClock) -> None:
    (a,) = peers(1)
    rig = Rig(healthy_after=10.0)
    await resync_storm(rig, 3, snapshot(E, 1))

    clock.advance(2)
    rig.conn.stream.events(created(E, 2, a))
    await rig.settle()
    rig.conn.stream.resync("again, soon")
    await rig.until(lambda: len(rig.conn.streams) == 5)
    await rig.settle()
    assert rig.resync_backoff.delays == [0.0, 0.1, 0.2, 0.4]
    await rig.stop()


@async_test
async def test_reconnect_attempts_back_off() -> None:
    (a,) = peers(1)
    rig = Rig()
    stream = await rig.go_live(snapshot(E, 2, a))
    rig.conn.subscribe_errors = [ConnectionLost("connection refused")] * 4
    rig.conn.on_subscribe = lambda s: s.hello(E, 2)
    stream.lose()
    await rig.settle()

    assert rig.reconnect_backoff.delays == [0.0, 0.25, 0.5, 1.0, 2.0]
    assert rig.sleep.delays == [0.25, 0.5, 1.0, 2.0]
    assert rig.conn.calls[1:] == [SubscribeCall(2, E)] * 5  # always resuming from the kept store
    assert rig.states == [LIVE, RESUMING, LIVE]
    assert rig.conn.snapshot_fetches == 1
    await rig.stop()


@async_test
async def test_a_flapping_connection_keeps_backing_off(clock: FakeClock) -> None:
    """A backend that accepts the resume and drops it at once must not be hammered without pause."""
    rig = Rig(healthy_after=10.0)
    stream = await rig.go_live(snapshot(E, 2))
    flaps = 0

    def script(resumed: FakeStream) -> None:
        nonlocal flaps
        resumed.hello(E, 2)
        if flaps < 4:
            flaps += 1
            resumed.lose("dropped right after the hello")

    rig.conn.on_subscribe = script
    stream.lose()
    await rig.settle()
    assert rig.reconnect_backoff.delays == [0.0, 0.25, 0.5, 1.0, 2.0]

    # after a healthy period the next loss is retried at once again
    clock.advance(11)
    rig.conn.stream.lose()
    await rig.until(lambda: len(rig.conn.streams) == 7)
    await rig.settle()
    assert rig.reconnect_backoff.delays == [0.0, 0.25, 0.5, 1.0, 2.0, 0.0]
    await rig.stop()


# -- stop ------------------------------------------------------------------------------------------
@async_test
async def test_stop_while_live_ends_run_and_closes_the_stream() -> None:
    rig = Rig()
    stream = await rig.go_live(snapshot(E, 1, *peers(2)))
    await rig.stop()
    assert rig.task.done() and rig.task.exception() is None
    assert stream.closed
    assert rig.states == [LIVE, STOPPED]
    assert len(rig.store) == 2  # the store is left as it was


@async_test
async def test_stop_while_waiting_for_the_hello() -> None:
    rig = Rig()
    rig.start()
    stream = await rig.conn.wait_subscribed(1)
    await rig.until(lambda: stream.waiting, "next()")
    await rig.stop()
    assert stream.closed
    assert rig.states == [STOPPED]


@async_test
async def test_stop_while_fetching_the_snapshot() -> None:
    rig = Rig()
    gate = rig.conn.hold_snapshot()
    rig.start()
    stream = await rig.conn.wait_subscribed(1)
    stream.hello(E, 1)
    await rig.conn.snapshot_requested.wait()
    await rig.engine.stop()
    assert stream.closed
    gate.set()
    await asyncio.wait_for(rig.task, 2)
    assert rig.engine.state == STOPPED
    assert len(rig.conn.streams) == 1


@async_test
async def test_stop_while_subscribing_closes_the_late_stream() -> None:
    """stop() during subscribe(): the stream that arrives afterwards is closed and run() ends."""
    rig = Rig()
    stream = await rig.go_live(snapshot(E, 1))
    rig.conn.subscribe_gate = asyncio.Event()
    stream.lose()
    await rig.until(lambda: len(rig.conn.calls) == 2, "the resume subscribe()")
    await rig.engine.stop()
    rig.conn.subscribe_gate.set()  # the subscription arrives, without a hello yet
    await asyncio.wait_for(rig.task, 2)
    assert rig.engine.state == STOPPED
    assert all(s.closed for s in rig.conn.streams)


@async_test
async def test_stop_during_a_resync_storm() -> None:
    rig = Rig()
    rig.conn.snapshot = snapshot(E, 1)
    rig.conn.on_subscribe = lambda s: s.hello(E, 1).resync("forever")
    rig.start()
    await rig.until(lambda: rig.engine.resyncs >= 3, "a few resyncs")
    await rig.stop()
    assert all(s.closed for s in rig.conn.streams)


# -- random interleavings against a fake backend with a true history -------------------------------
class Write:
    """A transaction of 1-3 random changes, chosen by ``seed`` against the backend's state."""

    def __init__(self, size: int, seed: int, deliver: bool = True) -> None:
        self.size, self.seed, self.deliver = size, seed, deliver

    def __repr__(self) -> str:
        return f"Write({self.size}, {self.seed}, deliver={self.deliver})"

    def apply(self, backend: FakeBackend) -> None:
        rng = random.Random(self.seed)
        state = dict(backend.state)
        changes: list[tuple[EventType, AnyResource]] = []
        for _ in range(self.size):
            peers_now = [r for r in state.values() if isinstance(r, PeerDescriptor)]
            states_now = [r for r in state.values() if isinstance(r, PeerConnectionState)]
            choice = rng.random()
            if not peers_now or choice < 0.3:
                change: tuple[EventType, AnyResource] = (
                    EventType.CREATED,
                    make_peer(f"bench-{rng.randrange(10**6)}"),
                )
            elif choice < 0.55:
                peer = rng.choice(peers_now)
                change = (EventType.UPDATED, bump(peer, f"loc-{rng.randrange(100)}"))
            elif choice < 0.7:
                change = (EventType.DELETED, rng.choice(peers_now))
            elif choice < 0.9 or not states_now:
                peer = rng.choice(peers_now)
                key = (STATE, peer.id)
                change = (EventType.UPDATED if key in state else EventType.CREATED, online(peer))
            else:
                change = (EventType.DELETED, rng.choice(states_now))
            type, resource = change
            if type == EventType.DELETED:
                del state[(resource.kind, resource.id)]
            else:
                state[(resource.kind, resource.id)] = resource
            changes.append(change)
        backend.write(changes, deliver=self.deliver)


OPS = st.one_of(
    st.builds(Write, st.integers(1, 3), st.integers(0, 2**32), st.booleans() | st.just(True)),
    st.sampled_from(["duplicate", "drop", "resync", "restart", "restart-keeping-streams"]),
    st.integers(1, 8),  # let the engine run this many loop turns
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(OPS, min_size=4, max_size=50), ring_size=st.integers(1, 8), fetch_steps=st.integers(0, 3))
def test_random_interleavings_converge_and_apply_every_revision_at_most_once(
    ops: list[object], ring_size: int, fetch_steps: int
) -> None:
    async def scenario() -> None:
        backend = FakeBackend(ring_size=ring_size, fetch_steps=fetch_steps)
        rig = Rig(backend)
        rig.start()
        for op in ops:
            if isinstance(op, Write):
                op.apply(backend)
            elif isinstance(op, int):
                for _ in range(op):
                    await asyncio.sleep(0)
            elif op == "duplicate":
                backend.duplicate()
            elif op == "drop":
                backend.drop()
            elif op == "resync":
                backend.resync()
            elif op == "restart":
                backend.restart()
            elif op == "restart-keeping-streams":
                backend.restart(keep_streams=True)
        # one last delivered transaction, so that a lost batch or a silent restart shows up as a gap
        Write(1, 0).apply(backend)
        await rig.until(
            lambda: (
                rig.engine.state == LIVE
                and (rig.engine.epoch, rig.engine.revision) == (backend.epoch, backend.revision)
                and rig.conn.stream.waiting
                and not rig.conn.stream.pending
            ),
            "convergence",
            steps=20_000,
        )

        assert rig.contents() == backend.state
        revisions = rig.revisions
        assert len(revisions) == len(set(revisions)), "a revision was applied twice"
        truth = {e.revision: e for e in backend.journal}
        assert all(truth[e.revision] == e for e in rig.applied)
        assert rig.store.applied_events == len(revisions)
        # only one subscription is ever open at a time
        assert all(s.closed for s in backend.streams[:-1])
        await rig.stop()
        for before, after in zip([SYNCING, *rig.states], rig.states, strict=False):
            event(f"{before} -> {after}")  # see --hypothesis-show-statistics

    asyncio.run(asyncio.wait_for(scenario(), 5.0))



@async_test
async def test_a_refusal_while_syncing_is_reported_and_retried() -> None:
    """A typed refusal (e.g. a revoked token) neither ends run() silently nor stops retrying."""
    from resources.errors import Unauthorized

    class Refusing(FakeConnection):
        refusals = 2

        async def fetch_snapshot(self) -> StateSnapshot:
            if self.refusals:
                self.refusals -= 1
                raise Unauthorized("the token is unknown or was revoked")
            return await super().fetch_snapshot()

    rig = Rig(Refusing(StateSnapshot(epoch=E, revision=0)))
    errors: list[str] = []
    rig.engine.on_error(lambda exc: errors.append(exc.code))
    rig.start()
    for count in (1, 2, 3):
        stream = await rig.conn.wait_subscribed(count)
        stream.hello(E, 0)
    await rig.settle()
    assert errors == ["unauthorized", "unauthorized"]
    assert rig.engine.last_error == "the token is unknown or was revoked"
    assert rig.reconnect_backoff.delays[:2] == [0.0, 0.25]
    await rig.stop()
