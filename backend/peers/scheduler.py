"""A small timer thread: run callbacks at given times, in order, until stopped."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, name: str) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._running = False  # a task is being run
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        with self._cond:
            if self._stopped:
                return
            heapq.heappush(self._heap, (time.monotonic() + max(delay, 0.0), next(self._seq), fn))
            self._cond.notify()

    def call_soon(self, fn: Callable[[], None]) -> None:
        self.call_later(0.0, fn)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no task is queued or running (or it stopped); True when reached."""
        with self._cond:
            return self._cond.wait_for(lambda: self._stopped or (not self._heap and not self._running), timeout)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, fn = heapq.heappop(self._heap)
                self._running = True
            try:
                fn()
            except Exception:  # one failing task must not stop the simulation
                log.exception("scheduled task failed")
            finally:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()
