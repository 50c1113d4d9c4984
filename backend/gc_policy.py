"""The GC policy lives in resources/gc_policy.py (shared with the desktop app); re-exported for serve.py."""

from resources.gc_policy import GC_THRESHOLD, tune_gc_for_latency

__all__ = ["GC_THRESHOLD", "tune_gc_for_latency"]
