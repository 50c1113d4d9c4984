"""A subscriber's bounded queue: it never blocks the writer; overflow turns into a resync signal."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Union

from resources.events import Event
from resources.kinds import ResourceKind
from resources.wire import EventBatch, Hello, Resync

Delivery = Union[Hello, EventBatch, Resync]  # noqa: UP007 - used at runtime in isinstance checks


class Subscription:
    """Deliveries in order: a Hello, then EventBatch per transaction, and Resync when it fell behind.

    ``get`` returns None once the subscription is closed and drained.
    """

    def __init__(
        self,
        kinds: frozenset[ResourceKind] | None,
        max_events: int,
        on_close: Callable[[Subscription], None],
        accept: Callable[[Event], bool] | None = None,
    ) -> None:
        self.kinds = kinds
        self.accept = accept
        self.max_events = max_events
        self._on_close = on_close
        self._items: deque[Delivery] = deque()
        self._queued_events = 0
        self._cond = threading.Condition()
        self._closed = False
        self.on_ready: Callable[[], None] | None = None
        self.overflows = 0

    # -- producer side (the manager, under its publish lock) --------------------------------
    def _offer(self, item: Delivery) -> None:
        self._offer_all((item,))

    def _offer_all(self, items: Sequence[Delivery]) -> None:
        """Queue ``items`` in order as one hand-over: one lock, one wake-up, one on_ready call.

        The sequencer hands each subscriber a whole commit group at once, so a subscriber is woken
        once per group, not once per transaction (each item is still one delivery).
        """
        offered = False
        with self._cond:
            if self._closed:
                return
            for item in items:
                if isinstance(item, EventBatch):
                    if self.kinds is not None or self.accept is not None:
                        kinds, accept = self.kinds, self.accept
                        events = tuple(
                            e for e in item.events
                            if (kinds is None or e.kind in kinds) and (accept is None or accept(e))
                        )
                        if not events:
                            continue
                        if len(events) != len(item.events):
                            item = EventBatch(events=events)
                    if self._queued_events + len(item.events) > self.max_events:
                        # Too far behind: drop the backlog, tell the subscriber to resync.
                        self.overflows += 1
                        hello = [i for i in self._items if isinstance(i, Hello)]  # never drop the Hello
                        self._items.clear()
                        self._items.extend(hello)
                        self._queued_events = 0
                        self._items.append(Resync(reason="subscriber queue overflowed"))
                    self._queued_events += len(item.events)
                self._items.append(item)
                offered = True
            if not offered:
                return
            self._cond.notify()
        callback = self.on_ready
        if callback is not None:
            callback()

    def _finish(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        callback = self.on_ready
        if callback is not None:
            callback()

    # -- consumer side ---------------------------------------------------------------------
    def get(self, timeout: float | None = None) -> Delivery | None:
        """The next delivery; None when closed and drained. Raises TimeoutError on timeout."""
        with self._cond:
            if not self._items and not self._closed and not self._cond.wait_for(
                lambda: bool(self._items) or self._closed, timeout
            ):
                raise TimeoutError("no delivery within timeout")
            return self._pop()

    def get_nowait(self) -> Delivery | None:
        """The next delivery, or None when there is none right now."""
        with self._cond:
            return self._pop()

    def drain(self) -> list[Delivery]:
        with self._cond:
            items = list(self._items)
            self._items.clear()
            self._queued_events = 0
            return items

    def _pop(self) -> Delivery | None:
        if not self._items:
            return None
        item = self._items.popleft()
        if isinstance(item, EventBatch):
            self._queued_events -= len(item.events)
        return item

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed and not self._items

    def __iter__(self) -> Iterator[Delivery]:
        while True:
            item = self.get()
            if item is None:
                return
            yield item

    def close(self) -> None:
        self._on_close(self)
        self._finish()
