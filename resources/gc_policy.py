"""Keep Python's cyclic garbage collector from pausing a long-running process for long.

With tens of thousands of resources and a ring of recent events, a full collection walks hundreds
of thousands of objects: 50-200 ms with every thread stopped in the server, 0.3-1.9 s in the window
(bench/fanout.py, bench/gui_burst.py). A higher young-generation threshold makes collections rare,
and freezing what is loaded at start-up takes it out of every later collection. Both the server
(``lea-backend serve``) and the desktop app apply this one policy; the desktop app then moves
its collections onto its event loop's schedule (:class:`ScheduledCollector`).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

#: Young-generation threshold: a burst of events allocates many short-lived objects.
GC_THRESHOLD = (50_000, 20, 100)


def raise_gc_threshold() -> None:
    gc.set_threshold(*GC_THRESHOLD)


def freeze_loaded() -> None:
    """Collect once and move everything alive now out of every later collection."""
    gc.collect()
    gc.freeze()


def tune_gc_for_latency() -> None:
    """Raise the threshold, collect once, and freeze everything alive now (call after start-up)."""
    raise_gc_threshold()
    freeze_loaded()


def freeze_start_up() -> None:
    """Freeze everything alive now without collecting first: for a start-up that ran with the raised
    threshold from its beginning (imports, a restore), which leaves no cyclic garbage to speak of
    (0 unreachable objects measured after restoring 10,000 resources), while the collection would
    walk every object loaded (60-100 ms with 10,000 resources) right on the path to the first paint."""
    gc.freeze()


class ScheduledCollector:
    """Collections on the event loop's schedule instead of when allocations reach a threshold.

    Once :meth:`start` ran (after start-up, everything alive frozen) the automatic collector is off
    and the owner calls :meth:`tick` from a timer between its own work. A tick collects the young
    generation - only what was allocated since the last tick, so it is short (3-7 ms measured in a
    burst, where an automatic one over 50,000 objects took 60-120 ms). The survivors stay in the
    older generations, which are collected - then frozen, so that no later collection walks them
    again - only once the process has been quiet for ``idle_after`` seconds (ticks with fewer than
    ``quiet_allocations`` new objects - a net count, small in a steady stream too - and no change of
    ``activity``, a value that changes while the owner works, e.g. the last applied revision), or
    at once, busy or not, when they hold ``old_bound`` objects (:attr:`survivors`, checked every
    ``check_every`` ticks): cyclic garbage cannot grow without bound. No collection walks the
    objects frozen at start-up (10,000 resources: ~300,000 objects) but the
    safety net: a cycle that died after it was frozen is only found by a collection of everything
    (unfreeze, collect, freeze again), which runs when quiet once ``full_growth`` objects were
    frozen since the last one.
    """

    def __init__(
        self, *, check_every: int = 40, old_bound: int = 500_000, idle_after: float = 5.0,
        quiet_allocations: int = 2_000, full_growth: int = 50_000, clock: Callable[[], float] = time.monotonic,
        activity: Callable[[], object] | None = None,
    ) -> None:
        if check_every < 1 or old_bound < 1 or idle_after < 0 or quiet_allocations < 0 or full_growth < 0:
            raise ValueError(
                "ScheduledCollector: check_every and old_bound must be >= 1, idle_after, quiet_allocations "
                f"and full_growth >= 0 (got {check_every}, {old_bound}, {idle_after}, {quiet_allocations}, "
                f"{full_growth})"
            )
        self.check_every = check_every
        self.old_bound = old_bound
        self.idle_after = idle_after
        self.quiet_allocations = quiet_allocations
        self.full_growth = full_growth
        self._clock = clock
        self._activity = activity
        self._last_activity = activity() if activity is not None else None
        self._ticks = 0
        self._survivors = 0
        self._baseline = 0
        self._quiet_since = 0.0
        self.running = False
        self.old_collections = 0
        self.full_collections = 0

    def start(self) -> None:
        """Freeze everything alive now (no collection: see :func:`freeze_start_up`) and switch the
        automatic collector off."""
        gc.freeze()
        gc.disable()
        self._baseline = gc.get_freeze_count()
        self._quiet_since = self._clock()
        self.running = True

    def stop(self) -> None:
        """The automatic collector back on (what stays frozen stays frozen)."""
        gc.enable()
        self.running = False

    @property
    def growth(self) -> int:
        """Objects frozen since the start or the last full collection."""
        return gc.get_freeze_count() - self._baseline

    @property
    def survivors(self) -> int:
        """About how many objects survived young collections since the last old one: the net new
        objects each tick saw less the garbage it found (counting them exactly, ``gc.get_objects``,
        costs milliseconds per 100,000 on the event loop)."""
        return max(0, self._survivors)

    def tick(self) -> str:
        """One scheduled step; what it collected: ``"young"``, ``"old"`` (every generation but the
        frozen objects, then froze the survivors) or ``"full"`` (the safety net)."""
        young = gc.get_count()[0]
        if young:
            self._survivors += young - gc.collect(0)
        now = self._clock()
        if young >= self.quiet_allocations:
            self._quiet_since = now
        if self._activity is not None:
            mark = self._activity()
            if mark != self._last_activity:
                self._last_activity = mark
                self._quiet_since = now
        self._ticks += 1
        if self._ticks % self.check_every:
            return "young"
        quiet = now - self._quiet_since >= self.idle_after
        if quiet and gc.get_count()[1] == 0 and self.growth < self.full_growth:
            return "young"  # idle, and nothing new since the last collection
        if not quiet and self.survivors < self.old_bound:
            return "young"
        self.collect_old()
        if quiet and self.growth >= self.full_growth:
            self.collect_all()
            return "full"
        return "old"

    def collect_old(self) -> int:
        """Collect everything not frozen and freeze what survives; returns the unreachable objects."""
        found = gc.collect(2)
        gc.freeze()
        self._survivors = 0
        self.old_collections += 1
        return found

    def collect_all(self) -> int:
        """The full collection of the safety net; returns the unreachable objects found."""
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        self._survivors = 0
        self._baseline = gc.get_freeze_count()
        self._quiet_since = self._clock()
        self.full_collections += 1
        return found
