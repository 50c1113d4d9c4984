"""Shared fixtures. Tests never touch the real user data directory or the user's QSettings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers.postgres import LocalPostgres, pg_bin

if TYPE_CHECKING:
    from backend.storage.pg_target import PostgresTarget

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Point every platform folder (data, config, QSettings) into a temporary home."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    yield


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


# -- PostgreSQL (tests/helpers/postgres.py): one server per session, a new database per test ----------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    """A PostgreSQL 15 of the session's own (started on first use, stopped at the end)."""
    if pg_bin() is None:
        pytest.skip("PostgreSQL 15 is not installed (scripts/ensure-system-deps installs postgresql-15)")
    server = LocalPostgres(fsync=False).start()  # fsync off: tests need no durability, only semantics
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pg_target(postgres_server: LocalPostgres) -> Iterator[PostgresTarget]:
    """A fresh, empty database on the session's server, dropped after the test."""
    from backend.storage.pg_target import PostgresTarget

    name = postgres_server.create_database()
    try:
        yield PostgresTarget.parse(postgres_server.url(name), postgres_server.password_file)
    finally:
        postgres_server.drop_database(name)
