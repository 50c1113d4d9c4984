"""The shared application facts in resources/: the name, the default folders and the GC policy."""

from __future__ import annotations

import gc
import sqlite3
import weakref
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from backend.datadir import DataDir
from backend.storage.sqlite import SqliteEventStore
from backend.tokens import Role, TokenStore
from lea_app import credentials
from resources.app import APP_NAME, default_data_dir
from resources.gc_policy import GC_THRESHOLD, ScheduledCollector, freeze_start_up, tune_gc_for_latency


def test_the_app_name_is_the_distribution_and_names_every_default_folder() -> None:
    assert version(APP_NAME)  # the installed distribution: --version and the About box read it
    assert credentials.SERVICE == APP_NAME
    assert default_data_dir().name == APP_NAME
    assert default_data_dir(demo=True).name == f"{APP_NAME}-demo"
    assert DataDir().path == default_data_dir()  # the backend's default is the desktop app's


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.enable()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_the_gc_policy_raises_the_threshold_and_freezes_what_is_loaded() -> None:
    gc.unfreeze()
    tune_gc_for_latency()
    assert gc.get_threshold() == GC_THRESHOLD
    assert gc.get_freeze_count() > 0


def _tokens_schema(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'tokens'").fetchone()
    conn.close()
    return str(row[0])


def test_the_tokens_table_is_the_same_whoever_creates_it(tmp_path: Path) -> None:
    by_store = tmp_path / "store.db"
    SqliteEventStore(by_store).close()
    by_tokens = tmp_path / "tokens.db"
    tokens = TokenStore(by_tokens)
    tokens.create("root", Role.ADMIN)
    tokens.close()
    assert _tokens_schema(by_store) == _tokens_schema(by_tokens)
    # A token store works on the table the event store created.
    shared = TokenStore(by_store)
    shared.create("root", Role.ADMIN)
    shared.close()


@pytest.mark.usefixtures("restored_gc")
def test_freezing_the_start_up_freezes_without_collecting() -> None:
    gc.unfreeze()
    collections = gc.get_stats()[2]["collections"]
    freeze_start_up()
    assert gc.get_freeze_count() > 0
    assert gc.get_stats()[2]["collections"] == collections  # no full collection on the way to the first paint


class Node:
    other: Node | None = None


def cycles(n: int) -> tuple[list[Node], list[weakref.ref[Node]]]:
    """``n`` two-node reference cycles (only the cyclic collector frees them) and weak references to them."""
    nodes: list[Node] = []
    for _ in range(n):
        a, b = Node(), Node()
        a.other, b.other = b, a
        nodes += [a, b]
    return nodes, [weakref.ref(node) for node in nodes]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.usefixtures("restored_gc")
def test_the_scheduled_collector_turns_the_automatic_one_off_and_frees_young_cycles_on_its_tick() -> None:
    gc.unfreeze()
    collector = ScheduledCollector(clock=Clock())
    collector.start()
    assert not gc.isenabled() and gc.get_freeze_count() > 0
    nodes, refs = cycles(200)
    del nodes
    assert all(ref() is not None for ref in refs)  # nothing collects on allocation any more
    assert collector.tick() == "young"
    assert all(ref() is None for ref in refs)
    collector.stop()
    assert gc.isenabled()


@pytest.mark.usefixtures("restored_gc")
def test_cycles_that_die_after_they_were_frozen_are_freed_once_the_process_is_quiet() -> None:
    gc.unfreeze()
    clock = Clock()
    collector = ScheduledCollector(check_every=1, old_bound=1, idle_after=5.0, full_growth=300, clock=clock)
    collector.start()
    nodes, refs = cycles(200)
    assert collector.tick() == "old"  # busy: the survivors collected and frozen, no full collection
    assert collector.growth >= 400 and collector.full_collections == 0
    del nodes  # garbage now, but frozen: only a collection of everything can find them
    clock.now = 1.0
    collector.tick()
    assert all(ref() is not None for ref in refs)
    clock.now = 10.0  # quiet for 10 s
    assert collector.tick() == "full"
    assert all(ref() is None for ref in refs)
    assert collector.full_collections == 1 and collector.growth <= 0  # a new baseline


@pytest.mark.usefixtures("restored_gc")
def test_the_old_generation_is_collected_and_frozen_when_it_reaches_its_bound_even_when_busy() -> None:
    gc.unfreeze()
    collector = ScheduledCollector(check_every=1, old_bound=1_000, quiet_allocations=0, clock=Clock())
    collector.start()
    kept = [[i] for i in range(500)]
    assert collector.tick() == "young"  # 500 survivors: under the bound, left in the older generations
    frozen = gc.get_freeze_count()
    kept += [[i] for i in range(1_000)]
    nodes, refs = cycles(100)
    del nodes
    assert collector.tick() == "old"
    assert gc.get_freeze_count() >= frozen + 1_500 and len(gc.get_objects(2)) == 0
    assert all(ref() is None for ref in refs)
    assert len(kept) == 1_500


@pytest.mark.parametrize(
    ("arguments", "named"),
    [({"check_every": 0}, "check_every"), ({"old_bound": 0}, "old_bound"), ({"idle_after": -1.0}, "idle_after")],
)
def test_the_scheduled_collector_refuses_bad_settings_by_name(arguments: dict[str, float], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        ScheduledCollector(**arguments)  # type: ignore[arg-type]


@pytest.mark.usefixtures("restored_gc")
def test_the_owners_activity_keeps_the_collector_from_thinking_it_is_quiet() -> None:
    gc.unfreeze()
    clock = Clock()
    revision = [0]
    collector = ScheduledCollector(check_every=1, idle_after=5.0, clock=clock, activity=lambda: revision[0])
    collector.start()
    kept = [[i] for i in range(100)]
    for step in range(1, 20):  # a steady stream: few net new objects per tick, but events applied
        clock.now = float(step)
        revision[0] = step
        assert collector.tick() == "young"
    clock.now = 30.0  # no event for 11 s: quiet, the survivors are collected and frozen
    assert collector.tick() == "old"
    assert len(kept) == 100
