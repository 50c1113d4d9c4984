"""Keep Python's cyclic garbage collector from pausing a long-running process for long.

With tens of thousands of resources and a ring of recent events, a full collection walks hundreds
of thousands of objects: 50-200 ms with every thread stopped in the server, 0.3-1.9 s in the window
(bench/fanout.py, bench/gui_burst.py). A higher young-generation threshold makes collections rare,
and freezing what is loaded at start-up takes it out of every later collection. Both the server
(``lea-backend serve``) and the desktop app apply this one policy.
"""

from __future__ import annotations

import gc

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
