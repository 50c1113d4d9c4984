"""Which store a data directory's backend uses: ``lea.db`` in it, or a PostgreSQL database.

The store is ``--store`` on the command line, else ``store`` in ``lea.toml``, else ``lea.db``. With a
PostgreSQL store the data directory still holds ``lea.toml``, ``logs/`` and ``lea.lock`` (one
server process per data directory), but no ``lea.db``: events, checkpoints, meta and tokens are in
the database (docs/server.md).
"""

from __future__ import annotations

from backend.datadir import DataDir
from backend.settings import Settings
from backend.storage.base import EventStore
from backend.storage.pg_target import PostgresTarget, is_postgres_url
from backend.storage.sqlite import Durability, SqliteEventStore
from backend.tokens import PostgresTokenStore, TokenStore
from backend.tokens import count_tokens as count_sqlite_tokens
from resources.errors import DataDirError

StoreTarget = PostgresTarget | None


def resolve_store(data_dir: DataDir, settings: Settings) -> StoreTarget:
    """The PostgreSQL target the settings name, or None for the data directory's ``lea.db``."""
    if settings.store is None:
        if settings.store_password_file is not None:
            raise DataDirError("store_password_file / --store-password-file is for a postgresql:// store")
        return None
    if not is_postgres_url(settings.store):
        raise DataDirError(
            f"store {settings.store[:80]!r} is not a PostgreSQL URL (postgresql://USER@HOST:PORT/DATABASE); "
            "leave it out to use lea.db in the data directory"
        )
    password_file = settings.store_password_file
    if password_file is not None and not password_file.is_absolute():
        password_file = data_dir.path / password_file  # relative to the data directory (lea.toml's folder)
    return PostgresTarget.parse(settings.store, password_file)


def describe(data_dir: DataDir, target: StoreTarget) -> str:
    return target.url if target is not None else str(data_dir.path)


def open_event_store(
    data_dir: DataDir, target: StoreTarget, *, durability: Durability = "full", read_only: bool = False
) -> EventStore:
    if target is not None:
        from backend.storage.postgres import PostgresEventStore  # (psycopg: only for a PostgreSQL store)

        return PostgresEventStore(target, durability=durability, read_only=read_only)
    if read_only:
        path = data_dir.db_path
        if not path.is_file():
            raise DataDirError(
                f"there is no LEA database in {data_dir.path} (no {path.name})", path=str(data_dir.path)
            )
    return SqliteEventStore(data_dir.db_path, durability=durability, read_only=read_only)


def open_token_store(data_dir: DataDir, target: StoreTarget, *, read_only: bool = False) -> TokenStore:
    if target is not None:
        from backend.storage.postgres import PostgresEventStore

        if not read_only:
            PostgresEventStore(target).close()  # a new database gets LEA's tables (and is checked as LEA's)
        return PostgresTokenStore(target, read_only=read_only)
    return TokenStore(data_dir.db_path, read_only=read_only)


def count_tokens(data_dir: DataDir, target: StoreTarget) -> int:
    """How many tokens the store holds, changing nothing (an empty or new database holds none)."""
    if target is None:
        return count_sqlite_tokens(data_dir.db_path)
    tokens = PostgresTokenStore(target, read_only=True)
    try:
        return tokens.count()
    finally:
        tokens.close()

