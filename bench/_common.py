"""Shared helpers of the hand-run benchmarks in bench/ (not a test, not part of the package)."""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backend.manager import ResourcesManager
    from backend.storage.base import EventStore
    from backend.storage.pg_target import PostgresTarget

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "out"

if str(ROOT) not in sys.path:  # tests.helpers.factories lives in the repository, not the package
    sys.path.insert(0, str(ROOT))


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a smaller, faster run")
    p.add_argument(
        "--tmp-dir",
        default=None,
        help="parent of the temporary directory (default: the system temp dir); put it on the disk to test",
    )
    return p


def temp_dir(parent: str | None) -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="lea-bench-", dir=parent)


def disk_of(path: Path) -> str:
    """'<device> <fstype>' of the file system holding ``path`` (best effort, Linux df)."""
    try:
        out = subprocess.run(
            ["df", "-T", str(path)], capture_output=True, text=True, check=True, timeout=10
        ).stdout.splitlines()
        fields = out[-1].split()
        return f"{fields[0]} {fields[1]}"
    except Exception:
        return "unknown"


def machine(path: Path) -> str:
    return (
        f"nproc={os.cpu_count()} load={os.getloadavg()[0]:.2f} disk={disk_of(path)} "
        f"python={platform.python_version()} sqlite={sqlite3.sqlite_version}"
    )


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (p in 0..100) of ``values`` (any order; NaN when empty)."""
    if not values:
        return float("nan")
    if len(values) == 1 or p <= 0 or p >= 100:
        return min(values) if p <= 0 else max(values)
    # "inclusive": the sample is the whole population measured; 1000 cut points allow p99.9.
    return statistics.quantiles(values, n=1000, method="inclusive")[round(p * 10) - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@dataclass
class Pacing:
    start: float  # ``clock()`` when the first call was due
    elapsed: float  # seconds from start until the last call returned
    max_behind: float  # how late the latest call started (0.0: every call on time)


def paced(
    rate: float, seconds: float, one: Callable[[int, float], None], clock: Callable[[], float] = time.perf_counter
) -> Pacing:
    """Call ``one(i, now)`` ``rate * seconds`` times, at ``rate`` per second (open loop: a late call
    is not skipped, the next ones are not delayed); ``now`` is ``clock()`` just before the call."""
    n = round(rate * seconds)
    start = clock()
    max_behind = 0.0
    for i in range(n):
        due = start + i / rate
        now = clock()
        if now < due:
            time.sleep(due - now)
        else:
            max_behind = max(max_behind, now - due)
        one(i, clock())
    return Pacing(start, clock() - start, max_behind)


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


@contextmanager
def write_path(
    data_dir: Path, bare: bool, store: PostgresTarget | None = None
) -> Iterator[tuple[EventStore, ResourcesManager]]:
    """The write path a benchmark measures, durability "full": a whole started Backend (operator,
    demo broker) or, ``bare``, the store and the manager alone; on ``lea.db`` or on the PostgreSQL
    ``store``. Closing it ends every subscription."""
    from backend import rules  # the repository is on sys.path only once this module is imported
    from backend.backend import Backend
    from backend.manager import ResourcesManager
    from backend.settings import Settings
    from backend.storage.postgres import PostgresEventStore
    from backend.storage.sqlite import SqliteEventStore

    if not bare:
        with Backend(data_dir, store=store, durability="full") as backend:
            backend.start()
            yield backend.store, backend.manager
        return
    data_dir.mkdir()
    events: EventStore = (
        SqliteEventStore(data_dir / "lea.db", durability="full") if store is None
        else PostgresEventStore(store, durability="full")
    )
    manager = ResourcesManager(events, Settings(durability="full"), rules=rules.check)
    manager.start()
    try:
        yield events, manager
    finally:
        manager.close()
        events.close()
