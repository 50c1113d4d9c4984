"""One budget for the UI thread's work done in slices (no Qt).

The sync engine applies event batches, the table models flush their rows, and then Qt paints: each
piece alone stays short, but back to back, in one turn of the event loop, they add up to a long
stall (bench/gui_burst.py measured engine 8 ms + flush 8 ms + paint 10-15 ms = 25-40 ms gaps). So
they share one budget: work that follows other work without a pause (QUIET) is one **chain**, and a
chain holds at most LIMIT seconds of work; then its worker yields and comes back RETRY later.

Workers take turns: one that had to yield is owed the next chain, so a busy sync engine cannot
starve the tables (or the reverse). A worker whose work makes Qt paint (a flush) asks for a fresh
chain, so that the paint is the only thing after it. What Qt itself does (a paint) is reported with
``done`` and counts too.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: Work in one chain, at most (seconds).
LIMIT = 0.010
#: A pause at least this long ends a chain (seconds).
QUIET = 0.0005
#: How long a worker that had to yield waits before it asks again (seconds).
RETRY = 0.001
#: A worker that yielded and did not ask again for this long is owed nothing (it had no more work).
OWED_FOR = 0.05


class WorkBudget:
    def __init__(
        self, limit: float = LIMIT, quiet: float = QUIET, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.limit = limit
        self.quiet = quiet
        self.clock = clock
        self._chained = 0.0  # work in the current chain
        self._last_end = float("-inf")
        self._last_worker = ""
        self._waiting: dict[str, float] = {}  # worker -> when it was last told to yield
        self._worked: dict[str, float] = {}  # worker -> when its last work ended
        #: How often a worker was told to yield (a count for tests and traces).
        self.yields = 0

    def turn(self, worker: str, fresh: bool = False) -> float | None:
        """May ``worker`` work now? The time by which it must stop (``clock``), or None: yield,
        ask again RETRY later. ``fresh``: only as the first work of a chain."""
        now = self.clock()
        chained = self._chained if now - self._last_end < self.quiet else 0.0
        owed = any(w != worker and now - since < OWED_FOR for w, since in self._waiting.items())
        left = self.limit - chained
        if (owed and self._last_worker == worker) or (fresh and chained > 0) or left <= 0:
            self._waiting[worker] = now
            self.yields += 1
            return None
        self._waiting.pop(worker, None)
        return now + left

    def yielded(self, worker: str) -> None:
        """``worker`` let the event loop take a turn: its own work before is no longer back to back
        with what comes next (the work of others, a paint, still is)."""
        if self._last_worker == worker:
            self._chained = 0.0

    def done(self, worker: str, start: float, end: float) -> None:
        """``worker`` worked from ``start`` to ``end`` (``clock`` times)."""
        if start - self._last_end >= self.quiet:
            self._chained = 0.0
        self._chained += end - start
        self._last_end = end
        self._last_worker = worker
        self._worked[worker] = end

    def since(self, worker: str) -> float:
        """Seconds since ``worker`` last worked (infinite: never)."""
        return self.clock() - self._worked.get(worker, float("-inf"))


#: The budget of LEA's UI thread (the sync engine, the table flushes and the window's paints).
UI_BUDGET = WorkBudget()
