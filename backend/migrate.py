"""``lea-backend migrate``: copy a store into an empty one, all or nothing, then verify both.

Either side is a data directory (its ``lea.db``) or a PostgreSQL database. The rows are copied as
they are stored (payload text, schema version, times, token hashes, the revision high-water mark),
so the copy replays to the same state and its checkpoints keep their checksums; nothing is upcast
or rewritten on the way.

* All or nothing: into PostgreSQL, one transaction (tables included: PostgreSQL's DDL is
  transactional); into a data directory, a new database file under a temporary name, linked into
  place as ``lea.db`` only once complete. A failure leaves the target as it was.
* Only into an empty target: a PostgreSQL database without tables, or with LEA's tables and no
  events, checkpoints, tokens or reserved revisions; a data directory without ``lea.db``.
* A consistent source: a data directory's lock is held for the copy (no LEA writes meanwhile: stop
  the server first); a PostgreSQL source is read in one REPEATABLE READ transaction.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg

from backend import admin, restore
from backend.datadir import DataDir, DataDirLock
from backend.storage.base import EventStore
from backend.storage.pg_target import PostgresTarget, connect_error
from backend.storage.postgres import APPLICATION_KEY, APPLICATION_VALUE, SCHEMA_LOCK_KEY, TABLES, PostgresEventStore
from backend.storage.sqlite import SqliteEventStore, open_read_only, tokens_have_peer_column
from backend.tokens import PostgresTokenStore, TokenStore
from resources.errors import DataDirError, InvalidRequest

EVENT_COLUMNS = "revision, epoch, tx, kind, resource_id, type, payload, schema_version, actor, at"
CHECKPOINT_COLUMNS = "revision, schema_version, checksum, created_at, payload"
TOKEN_COLUMNS = "name, role, hash, created_at, peer_id"
BATCH = 5000
Rows = Iterator[tuple[Any, ...]]


@dataclass(frozen=True)
class Side:
    """One end of a migration: a data directory, or a PostgreSQL database."""

    data_dir: Path | None = None
    target: PostgresTarget | None = None

    @property
    def name(self) -> str:
        return self.target.url if self.target is not None else str(self.data_dir)

    def open(self) -> EventStore:
        if self.target is not None:
            return PostgresEventStore(self.target, read_only=True)
        assert self.data_dir is not None
        return SqliteEventStore(DataDir(self.data_dir).db_path, read_only=True)


@dataclass
class Copied:
    events: int = 0
    checkpoints: int = 0
    tokens: int = 0
    meta: dict[str, str] = field(default_factory=dict)


@dataclass
class SideReport:
    name: str
    events: int
    last_revision: int
    reserved: int
    checkpoints: list[tuple[int, bool]]
    tokens: int
    verify: admin.VerifyReport

    def line(self) -> str:
        if not self.verify.ok:
            return f"verify {self.name}: MISMATCH ({len(self.verify.mismatches)} problems)"
        against = (
            f"the replay from zero matches the checkpoint at revision {self.verify.checkpoint_revision}"
            if self.verify.checkpoint_revision is not None else "every event replayed; no checkpoint yet"
        )
        return f"verify {self.name}: ok: {against} ({self.events} events, {self.tokens} tokens)"


@dataclass
class MigrationReport:
    copied: Copied
    source: SideReport
    target: SideReport
    differences: list[str]

    @property
    def ok(self) -> bool:
        return self.source.verify.ok and self.target.verify.ok and not self.differences


# -- reading the source ---------------------------------------------------------------------------
class _SqliteSource:
    @staticmethod
    def check_exists(data_dir: Path) -> Path:
        path = DataDir(data_dir).db_path
        if not path.is_file():
            raise DataDirError(f"there is no LEA database in {data_dir} (no {path.name})", path=str(data_dir))
        return path

    def __init__(self, data_dir: Path) -> None:
        path = self.check_exists(data_dir)
        SqliteEventStore(path, read_only=True).close()  # LEA's, not newer, not damaged at first sight
        self.conn = open_read_only(path)
        self.conn.execute("BEGIN")  # one read transaction: one consistent snapshot

    def rows(self, table: str, columns: str, order: str) -> Rows:
        if table == "tokens" and not tokens_have_peer_column(self.conn):
            columns = columns.replace("peer_id", "NULL")
        found = self.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name = ?", (table,))
        if found.fetchone() is None:
            return iter(())
        return iter(self.conn.execute(f"SELECT {columns} FROM {table} ORDER BY {order}"))

    def close(self) -> None:
        self.conn.close()


class _PostgresSource:
    def __init__(self, target: PostgresTarget) -> None:
        PostgresEventStore(target, read_only=True).close()  # LEA's, not newer
        try:
            self.conn = psycopg.connect(target.conninfo(options="-c default_transaction_read_only=on"))
        except psycopg.Error as exc:
            raise connect_error(target, exc) from exc
        self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")

    def rows(self, table: str, columns: str, order: str) -> Rows:
        cursor = self.conn.cursor(name=f"lea_migrate_{table}")  # server side: a million events stream
        cursor.itersize = BATCH
        cursor.execute(f"SELECT {columns} FROM {table} ORDER BY {order}")
        return iter(cursor)

    def close(self) -> None:
        self.conn.close()


# -- writing the target ---------------------------------------------------------------------------
def _copy_into_postgres(source: _SqliteSource | _PostgresSource, target: PostgresTarget) -> Copied:
    copied = Copied()
    try:
        conn = psycopg.connect(target.conninfo())
    except psycopg.Error as exc:
        raise connect_error(target, exc) from exc
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            _check_postgres_empty(conn, target)
            for statement in TABLES:
                conn.execute(statement)
            with conn.cursor() as cursor:
                for table, columns, order in (
                    ("events", EVENT_COLUMNS, "revision"),
                    ("checkpoints", CHECKPOINT_COLUMNS, "revision"),
                    ("tokens", TOKEN_COLUMNS, "name"),
                ):
                    count = 0
                    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                        for row in source.rows(table, columns, order):
                            copy.write_row(row)
                            count += 1
                    setattr(copied, table, count)
                for key, value in source.rows("meta", "key, value", "key"):
                    copied.meta[str(key)] = str(value)
                copied.meta[APPLICATION_KEY] = APPLICATION_VALUE
                cursor.executemany(
                    "INSERT INTO meta (key, value) VALUES (%s, %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    sorted(copied.meta.items()),
                )
    except psycopg.Error as exc:
        raise connect_error(target, exc) from exc
    finally:
        conn.close()
    return copied


def _check_postgres_empty(conn: psycopg.Connection[Any], target: PostgresTarget) -> None:
    tables = {
        str(r[0]) for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    }
    if not tables:
        return
    foreign = tables - {"events", "checkpoints", "meta", "tokens"}
    marker = None
    if "meta" in tables:
        row = conn.execute("SELECT value FROM meta WHERE key = %s", (APPLICATION_KEY,)).fetchone()
        marker = None if row is None else row[0]
    if foreign or marker != APPLICATION_VALUE:
        shown = ", ".join(sorted(foreign or tables)[:5])
        raise InvalidRequest(
            f"refusing to migrate into {target.url}: it holds tables of another program ({shown}); "
            "give LEA an empty database of its own (nothing was changed)"
        )
    counts = {
        table: int(row[0]) if (row := conn.execute(f"SELECT count(*) FROM {table}").fetchone()) else 0
        for table in ("events", "checkpoints", "tokens")
        if table in tables
    }
    reserved = conn.execute("SELECT value FROM meta WHERE key = 'revision_reserved'").fetchone()
    if any(counts.values()) or (reserved is not None and reserved[0] not in (None, "0")):
        held = ", ".join(f"{n} {t}" for t, n in counts.items() if n) or f"revisions reserved up to {reserved[0]}"  # type: ignore[index]
        raise InvalidRequest(
            f"refusing to migrate into {target.url}: it already holds LEA data ({held}); migrate only into an "
            "empty database (nothing was changed)"
        )


def _check_data_dir_empty(data_dir: Path) -> None:
    final = DataDir(data_dir).db_path
    if final.exists():
        raise InvalidRequest(
            f"refusing to migrate into {data_dir}: it already holds a LEA database ({final.name}); migrate only "
            "into a data directory without one (nothing was changed)"
        )


def _copy_into_data_dir(source: _SqliteSource | _PostgresSource, data_dir: Path) -> Copied:
    _check_data_dir_empty(data_dir)
    final = DataDir(data_dir).db_path
    temporary = final.with_name(f".{final.name}.migrating-{uuid4().hex[:8]}")
    copied = Copied()
    try:
        SqliteEventStore(temporary, durability="full").close()  # LEA's tables, application id, mode 0600
        conn = sqlite3.connect(temporary, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            for table, columns, order, marks in (
                ("events", EVENT_COLUMNS, "revision", 10),
                ("checkpoints", CHECKPOINT_COLUMNS, "revision", 5),
                ("tokens", TOKEN_COLUMNS, "name", 5),
            ):
                count = 0
                insert = f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * marks)})"
                batch: list[tuple[Any, ...]] = []
                for row in source.rows(table, columns, order):
                    batch.append(tuple(row))
                    if len(batch) >= BATCH:
                        conn.executemany(insert, batch)
                        count += len(batch)
                        batch.clear()
                conn.executemany(insert, batch)
                setattr(copied, table, count + len(batch))
            for key, value in source.rows("meta", "key, value", "key"):
                if key != APPLICATION_KEY:  # PostgreSQL's marker; SQLite has PRAGMA application_id
                    copied.meta[str(key)] = str(value)
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                sorted(copied.meta.items()),
            )
            conn.execute("COMMIT")
        finally:
            conn.close()  # the last connection: the WAL is merged into the file
        try:
            os.link(temporary, final)  # never replaces a lea.db created meanwhile
        except FileExistsError:
            raise InvalidRequest(
                f"refusing to migrate into {data_dir}: a LEA database ({final.name}) appeared there meanwhile "
                "(nothing was changed)"
            ) from None
    finally:
        for leftover in (temporary, temporary.with_name(temporary.name + "-wal"),
                         temporary.with_name(temporary.name + "-shm")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return copied


# -- the whole migration --------------------------------------------------------------------------
def migrate(source: Side, target: Side) -> MigrationReport:
    """Copy ``source`` into the empty ``target``, all or nothing, then verify both."""
    if source == target or (
        source.data_dir is not None and target.data_dir is not None
        and source.data_dir.resolve() == target.data_dir.resolve()
    ):
        raise InvalidRequest(f"--from and --to are the same store ({source.name})")
    if source.data_dir is not None:
        _SqliteSource.check_exists(source.data_dir)
    if target.data_dir is not None:
        _check_data_dir_empty(target.data_dir)  # before anything is created
    created = target.data_dir is not None and not target.data_dir.exists()
    locks: list[DataDirLock] = []
    try:
        for side in (source, target):  # no LEA writes to either data directory meanwhile
            if side.data_dir is not None:
                directory = DataDir(side.data_dir)
                if side is target:
                    directory.ensure()
                locks.append(directory.lock().acquire())
        reader: _SqliteSource | _PostgresSource
        if source.target is not None:
            reader = _PostgresSource(source.target)
        else:
            assert source.data_dir is not None
            reader = _SqliteSource(source.data_dir)
        try:
            if target.target is not None:
                copied = _copy_into_postgres(reader, target.target)
            else:
                assert target.data_dir is not None
                copied = _copy_into_data_dir(reader, target.data_dir)
        finally:
            reader.close()
    except BaseException:
        for lock in locks:
            lock.release()
        locks.clear()
        if created and target.data_dir is not None:  # a refused or failed copy leaves no new directory
            shutil.rmtree(target.data_dir, ignore_errors=True)
        raise
    try:
        reports = [_check(side) for side in (source, target)]
    finally:
        for lock in locks:
            lock.release()
    differences = []
    a, b = reports
    for what in ("events", "last_revision", "reserved", "checkpoints", "tokens"):
        if getattr(a, what) != getattr(b, what):
            differences.append(f"{what}: {getattr(a, what)!r} in {a.name}, {getattr(b, what)!r} in {b.name}")
    return MigrationReport(copied, a, b, differences)


def _check(side: Side) -> SideReport:
    store = side.open()
    try:
        integrity = store.integrity_check()
        if integrity != "ok":
            raise store.damaged(f"the integrity check reports {integrity.splitlines()[0][:200]!r}")
        report = admin.verify(store)
        if report.checkpoint_revision is None:
            restore.replay(store, use_checkpoint=False)  # still read and validate every event
        token_store: TokenStore
        if side.target is not None:
            token_store = PostgresTokenStore(side.target, read_only=True)
        else:
            assert side.data_dir is not None
            token_store = TokenStore(DataDir(side.data_dir).db_path, read_only=True)
        try:
            tokens = token_store.count()
        finally:
            token_store.close()
        return SideReport(
            side.name, store.event_count(), store.last_revision(), store.reserved_revision(),
            [(c.revision, c.valid) for c in store.checkpoints()], tokens, report,
        )
    finally:
        store.close()
