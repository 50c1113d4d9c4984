"""Subscriber queues and the ring of recent transactions, bounded in events and in bytes.

A queue never blocks the writer: overflow turns into a resync signal. The sequencer encodes each
transaction's batch to JSON once (``Encoded``); its length is the transaction's size in bytes, the
ring keeps only that text, and every WebSocket watcher sends that same text.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, Union

from resources.events import Event
from resources.kinds import ResourceKind
from resources.wire import EventBatch, Hello, Resync

Delivery = Union[Hello, EventBatch, Resync]  # noqa: UP007 - used at runtime in isinstance checks
OVERFLOW_REASON = "subscriber queue overflowed"
_BATCH_OPEN = '{"type":"events","events":['


def encode_batch(event_texts: Iterable[str]) -> str:
    """``EventBatch(events=...).model_dump_json()`` from the events' own JSON (each encoded once)."""
    return _BATCH_OPEN + ",".join(event_texts) + "]}"


@dataclass(frozen=True, slots=True)
class Encoded:
    """One transaction's EventBatch as JSON (contiguous revisions ``first`` to ``last``)."""

    text: str
    first: int
    last: int

    @property
    def events(self) -> int:
        return self.last - self.first + 1

    def decode(self) -> EventBatch:
        return EventBatch.model_validate_json(self.text)


@dataclass(frozen=True, slots=True)
class Published:
    """A transaction as the sequencer hands it over live: the batch and its JSON."""

    batch: EventBatch
    encoded: Encoded


Offer = Union[Hello, Resync, Published, Encoded]  # noqa: UP007 - a runtime alias like Delivery
Q = TypeVar("Q")  # what a queue holds
T = TypeVar("T")  # what it delivers


class Ring:
    """The current epoch's recent transactions as JSON; the oldest go first past either bound.

    Only the text is kept: old versions of large resources are not held as objects (about eight
    times their JSON). Used under the manager's publish lock.
    """

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._entries: deque[Encoded] = deque()
        self._events = 0
        self._bytes = 0

    def append(self, entry: Encoded) -> None:
        self._entries.append(entry)
        self._events += entry.events
        self._bytes += len(entry.text)
        while self._entries and (self._events > self.max_events or self._bytes > self.max_bytes):
            dropped = self._entries.popleft()
            self._events -= dropped.events
            self._bytes -= len(dropped.text)

    def clear(self) -> None:
        self._entries.clear()
        self._events = self._bytes = 0

    def __bool__(self) -> bool:
        return bool(self._entries)

    @property
    def first_revision(self) -> int | None:
        return self._entries[0].first if self._entries else None

    @property
    def size(self) -> tuple[int, int]:
        """(events, bytes) held."""
        return self._events, self._bytes

    def since(self, after: int) -> list[Encoded]:
        """The transactions with events after ``after``, oldest first (from the newest end: O(result))."""
        found: list[Encoded] = []
        for entry in reversed(self._entries):
            if entry.last <= after:
                break
            if entry.first <= after:  # ``after`` inside a transaction: only its later events
                batch = entry.decode()
                events = [e for e in batch.events if e.revision > after]
                entry = Encoded(encode_batch(e.model_dump_json() for e in events), events[0].revision, entry.last)
            found.append(entry)
        found.reverse()
        return found


class _Queue(Generic[Q, T]):
    """Deliveries in order, bounded in events and bytes; overflow drops the backlog for a Resync.

    The producer (the manager, under its publish lock) offers; one consumer takes. ``get`` returns
    None once the subscription is closed and drained.
    """

    def __init__(self, max_events: int, max_bytes: int, on_close: Callable[[Any], None]) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._on_close = on_close
        self._items: deque[tuple[Q, int, int, bool]] = deque()  # (what is queued, events, bytes, a Resync)
        self._queued_events = 0
        self._queued_bytes = 0
        self._cond = threading.Condition()
        self._closed = False
        self.on_ready: Callable[[], None] | None = None
        self.overflows = 0
        self.coalesced = 0

    def _convert(self, item: Offer) -> tuple[Q, int, int] | None:
        """What this subscriber queues for ``item`` (with its events and bytes), or None to skip it."""
        raise NotImplementedError

    def _deliver(self, queued: Q) -> T:
        """What the consumer is handed for what was queued (on the consumer's thread)."""
        raise NotImplementedError

    def _is_hello(self, queued: Q) -> bool:
        raise NotImplementedError

    def _resync(self, reason: str) -> Q:
        converted = self._convert(Resync(reason=reason))
        assert converted is not None
        return converted[0]

    # -- producer side (the manager, under its publish lock) --------------------------------
    def _offer(self, item: Offer) -> None:
        self._offer_all((item,))

    def _offer_all(self, items: Sequence[Offer]) -> None:
        """Queue ``items`` in order as one hand-over: one lock, one wake-up, one on_ready call.

        The sequencer hands each subscriber a whole commit group at once, so a subscriber is woken
        once per group, not once per transaction (each item is still one delivery).
        """
        offered = False
        with self._cond:
            if self._closed:
                return
            for item in items:
                if isinstance(item, Resync) and self._coalesce_resync():
                    offered = True
                    continue
                converted = self._convert(item)
                if converted is None:
                    continue
                delivery, events, size = converted
                if events and self._queued_events and (
                    self._queued_events + events > self.max_events or self._queued_bytes + size > self.max_bytes
                ):
                    # Too far behind: drop the backlog, tell the subscriber to resync. (A batch that
                    # alone exceeds a bound is still queued when nothing else waits.)
                    self.overflows += 1
                    hello = [entry for entry in self._items if self._is_hello(entry[0])]  # never drop the Hello
                    self._items.clear()
                    self._items.extend(hello)
                    self._queued_events = self._queued_bytes = 0
                    self._items.append((self._resync(OVERFLOW_REASON), 0, 0, True))
                self._queued_events += events
                self._queued_bytes += size
                self._items.append((delivery, events, size, isinstance(item, Resync)))
                offered = True
            if not offered:
                return
            self._cond.notify()
        callback = self.on_ready
        if callback is not None:
            callback()

    def _coalesce_resync(self) -> bool:
        """A subscriber holds at most one pending Resync: when one waits, a newer one only drops
        what was queued after it (the snapshot it leads to is fetched later, so it covers both)."""
        pending = next((i for i, entry in enumerate(self._items) if entry[3]), None)
        if pending is None:
            return False
        while len(self._items) > pending + 1:
            _, events, size, _ = self._items.pop()
            self._queued_events -= events
            self._queued_bytes -= size
        self.coalesced += 1
        return True

    def _finish(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        callback = self.on_ready
        if callback is not None:
            callback()

    # -- consumer side ---------------------------------------------------------------------
    def get(self, timeout: float | None = None) -> T | None:
        """The next delivery; None when closed and drained. Raises TimeoutError on timeout."""
        with self._cond:
            if not self._items and not self._closed and not self._cond.wait_for(
                lambda: bool(self._items) or self._closed, timeout
            ):
                raise TimeoutError("no delivery within timeout")
            return self._pop()

    def get_nowait(self) -> T | None:
        """The next delivery, or None when there is none right now."""
        with self._cond:
            return self._pop()

    def take(self, max_items: int) -> list[T]:
        """Up to ``max_items`` deliveries that are queued right now (one lock)."""
        with self._cond:
            taken: list[T] = []
            while len(taken) < max_items and (item := self._pop()) is not None:
                taken.append(item)
            return taken

    def drain(self) -> list[T]:
        with self._cond:
            items = [entry[0] for entry in self._items]
            self._items.clear()
            self._queued_events = self._queued_bytes = 0
        return [self._deliver(item) for item in items]

    def _pop(self) -> T | None:
        if not self._items:
            return None
        queued, events, size, _ = self._items.popleft()
        self._queued_events -= events
        self._queued_bytes -= size
        return self._deliver(queued)

    @property
    def queued(self) -> tuple[int, int]:
        """(events, bytes) waiting."""
        with self._cond:
            return self._queued_events, self._queued_bytes

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed and not self._items

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self.get()
            if item is None:
                return
            yield item

    def close(self) -> None:
        self._on_close(self)
        self._finish()


class _LoopWakeups:
    """Every wake-up of one loop's waiters, handed over in one ``call_soon_threadsafe``.

    A commit group is offered to every subscriber in turn: with N WebSocket watchers on the
    server's loop, one hop (one write to the loop's self-pipe, one callback) instead of N.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._ready: list[asyncio.Event] = []
        self._scheduled = False

    def wake(self, event: asyncio.Event) -> None:
        with self._lock:
            self._ready.append(event)
            if self._scheduled:
                return  # the callback already on its way sets this one too
            self._scheduled = True
        with contextlib.suppress(RuntimeError):  # the loop is already closed at shutdown
            self._loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
            self._scheduled = False
        for event in ready:
            event.set()


_wakeups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopWakeups] = weakref.WeakKeyDictionary()
_wakeups_lock = threading.Lock()


def _wakeups_of(loop: asyncio.AbstractEventLoop) -> _LoopWakeups:
    with _wakeups_lock:
        wakeups = _wakeups.get(loop)
        if wakeups is None:
            wakeups = _wakeups[loop] = _LoopWakeups(loop)
        return wakeups


class LoopWakeup:
    """The hop from the writer's thread to an asyncio loop: the queue's ``on_ready`` sets an
    ``asyncio.Event`` on ``loop`` that a task there waits on (one ``call_soon_threadsafe`` per loop
    for every waiter woken before it runs, see ``_LoopWakeups``).

    The one hop for the embedded connection's event stream and the server's WebSocket sender. The
    waiter clears, takes what is queued, and waits only when nothing was (a delivery after the
    clear sets it again).
    """

    def __init__(self, queue: _Queue[Any, Any], loop: asyncio.AbstractEventLoop) -> None:
        self._queue = queue
        self._loop = loop
        self._ready = asyncio.Event()
        self._wakeups = _wakeups_of(loop)
        queue.on_ready = self._wake

    def _wake(self) -> None:
        self._wakeups.wake(self._ready)

    def clear(self) -> None:
        self._ready.clear()

    def set(self) -> None:
        """Wake the waiter from the loop itself (e.g. the stream was closed there)."""
        self._ready.set()

    async def wait(self) -> None:
        await self._ready.wait()

    def detach(self) -> None:
        """No more wake-ups from the queue."""
        self._queue.on_ready = None


class Subscription(_Queue[Delivery | Encoded, Delivery]):
    """In-process deliveries: a Hello, then an EventBatch per transaction, and Resync when behind.

    ``kinds`` and ``accept`` filter the events (a filtered batch counts its share of the bytes).
    Without a filter a replay from the ring is queued as its text and decoded when taken, not
    under the manager's publish lock.
    """

    def __init__(
        self,
        kinds: frozenset[ResourceKind] | None,
        max_events: int,
        on_close: Callable[[Subscription], None],
        accept: Callable[[Event], bool] | None = None,
        max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        super().__init__(max_events, max_bytes, on_close)
        self.kinds = kinds
        self.accept = accept

    def _is_hello(self, queued: Delivery | Encoded) -> bool:
        return isinstance(queued, Hello)

    def _deliver(self, queued: Delivery | Encoded) -> Delivery:
        return queued.decode() if isinstance(queued, Encoded) else queued

    def _convert(self, item: Offer) -> tuple[Delivery | Encoded, int, int] | None:
        if isinstance(item, Hello | Resync):
            return item, 0, 0
        filtered = self.kinds is not None or self.accept is not None
        if isinstance(item, Published):
            batch, encoded = item.batch, item.encoded
        elif not filtered:
            return item, item.events, len(item.text)  # a replay from the ring, decoded when taken
        else:
            batch, encoded = item.decode(), item
        if filtered:
            kinds, accept = self.kinds, self.accept
            events = tuple(
                e for e in batch.events if (kinds is None or e.kind in kinds) and (accept is None or accept(e))
            )
            if not events:
                return None
            if len(events) != len(batch.events):
                size = len(encoded.text) * len(events) // len(batch.events)
                return EventBatch(events=events), len(events), size
        return batch, len(batch.events), len(encoded.text)


class StreamSubscription(_Queue[str, str]):
    """The WebSocket's deliveries, as the JSON text messages to send (no kind filter)."""

    def __init__(self, max_events: int, max_bytes: int, on_close: Callable[[StreamSubscription], None]) -> None:
        super().__init__(max_events, max_bytes, on_close)
        self._hello: str | None = None

    def _is_hello(self, queued: str) -> bool:
        return queued is self._hello

    def _deliver(self, queued: str) -> str:
        return queued

    def _convert(self, item: Offer) -> tuple[str, int, int] | None:
        if isinstance(item, Hello):
            self._hello = item.model_dump_json()
            return self._hello, 0, 0
        if isinstance(item, Resync):
            return item.model_dump_json(), 0, 0
        encoded = item.encoded if isinstance(item, Published) else item
        return encoded.text, encoded.events, len(encoded.text)
