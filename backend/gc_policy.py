"""Keep Python's cyclic garbage collector from pausing a long-running process for long.

With tens of thousands of resources and a ring of recent events, a full collection walks hundreds
of thousands of objects: 50-200 ms with every thread stopped (bench/fanout.py,
bench/gui_burst.py). A higher young-generation threshold makes collections rare, and freezing
what is loaded at start-up takes it out of every later collection. LEA applies the same policy
(lea_app/app.py: tune_gc), which may not import the backend.
"""

from __future__ import annotations

import gc

GC_THRESHOLD = (50_000, 20, 100)


def tune_gc_for_latency() -> None:
    """Raise the thresholds, collect once, and freeze everything alive now (call after start-up)."""
    gc.set_threshold(*GC_THRESHOLD)
    gc.collect()
    gc.freeze()
