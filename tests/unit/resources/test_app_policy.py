"""The shared application facts in resources/: the name, the default folders and the GC policy."""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from backend.datadir import DataDir
from backend.storage.sqlite import SqliteEventStore
from backend.tokens import Role, TokenStore
from lea_app import credentials
from resources.app import APP_NAME, default_data_dir
from resources.gc_policy import GC_THRESHOLD, freeze_start_up, tune_gc_for_latency


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
