"""PostgreSQL event store (psycopg 3, psycopg_pool): the same tables, rows and semantics as SQLite's.

``events``, ``checkpoints``, ``meta`` and ``tokens`` live in the database's current schema (the
first of its ``search_path``, normally ``public``). Payloads are stored as the exact JSON text
LEA wrote (``text``, not ``jsonb``, which would reorder keys and break the checkpoints'
checksums); timestamps as the same ISO text as in SQLite, so the two stores hold identical rows and
``lea-backend migrate`` copies them as they are.

A database is LEA's once its ``meta`` table says ``application_id = 0x4C454131`` (SQLite's
``PRAGMA application_id``); a database holding other tables is refused and left untouched, and so
is one whose schema version is newer than this LEA's. Creating the tables of a new database is
serialized by a transaction-level advisory lock, so several processes may open one at once.

Durability maps onto ``synchronous_commit``: ``full`` → ``on`` (each commit is flushed, and waits
for synchronous standbys if the database has any), ``normal`` → ``local`` (flushed on the primary
only), ``off`` → ``off`` (PostgreSQL may lose the last commits on a crash, but never corrupts).

Every read and write takes a connection from the pool for its own short transaction; ``connect()``
gives a connection outside the pool (for a session-level advisory lock held for the life of a
server process: the pool may close and reopen its connections at any time).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
import psycopg_pool
from psycopg import sql

from backend.storage.base import CheckpointInfo, EventStore, ReplayedChange, WriteNotStored
from backend.storage.pg_target import SYNCHRONOUS_COMMIT, PostgresTarget, connect_error
from backend.storage.rows import KINDS, TYPES, VALIDATE_JSON, checkpoint_from_row, checksum, load_resource
from resources.errors import DataDirError, SchemaTooNew
from resources.events import SCHEMA_VERSION, Checkpoint, Event
from resources.kinds import ResourceKind
from resources.resource import RESOURCE_LIST_ADAPTER

#: The meta row marking a LEA database (the value of SQLite's PRAGMA application_id, "LEA1").
APPLICATION_KEY = "application_id"
APPLICATION_VALUE = "0x4C454131"
#: pg_advisory_xact_lock key serializing the creation of the tables ("LEA" + "schema").
SCHEMA_LOCK_KEY = 0x4C4541_0001
#: Rows fetched per query while reading events (reads never hold a connection between batches).
BATCH = 2000
MAX_REVISION = 2**63 - 1


class NotStored(psycopg.OperationalError, WriteNotStored):
    """A write failed before its COMMIT was sent: certainly nothing of it is in the database (the
    manager then keeps its epoch and hands the revisions out again: no resync for the clients)."""

TABLES = (
    "CREATE TABLE IF NOT EXISTS events (revision bigint PRIMARY KEY, epoch text NOT NULL, tx text NOT NULL, "
    "kind text NOT NULL, resource_id text NOT NULL, type text NOT NULL, payload text, schema_version integer, "
    "actor text NOT NULL, at text NOT NULL)",
    "CREATE INDEX IF NOT EXISTS idx_events_kind_resource_id ON events (kind, resource_id)",
    "CREATE TABLE IF NOT EXISTS checkpoints (revision bigint PRIMARY KEY, schema_version integer, checksum text, "
    "created_at text, payload text)",
    "CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text)",
    "CREATE TABLE IF NOT EXISTS tokens (name text PRIMARY KEY, role text, hash text, created_at text, "
    "peer_id text)",
    "CREATE INDEX IF NOT EXISTS idx_tokens_hash ON tokens (hash)",
)
INSERT_EVENT = "INSERT INTO events VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
LEA_TABLES = frozenset({"events", "checkpoints", "meta", "tokens"})


class PostgresEventStore(EventStore):
    def __init__(
        self,
        target: PostgresTarget | str,
        *,
        durability: str = "full",
        read_only: bool = False,
        pool_size: int = 4,
    ) -> None:
        self.target = target if isinstance(target, PostgresTarget) else PostgresTarget.parse(target)
        self.read_only = read_only
        self.name = self.target.url
        self._synchronous_commit = SYNCHRONOUS_COMMIT[durability]
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._writer_conn: psycopg.Connection[Any] | None = None
        self._closed = False
        options = f"-c synchronous_commit={self._synchronous_commit}"
        if read_only:
            options += " -c default_transaction_read_only=on"
        self._conninfo = self.target.conninfo(options=options)
        try:  # once directly: a clear error now, not a pool timeout later
            first = psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise connect_error(self.target, exc) from exc
        try:
            self._prepare(first)
        except psycopg.Error as exc:
            first.close()
            raise connect_error(self.target, exc) from exc
        except BaseException:
            first.close()
            raise
        first.close()
        self.pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = psycopg_pool.ConnectionPool(
            self._conninfo, min_size=1, max_size=pool_size, kwargs={"autocommit": True},
            check=psycopg_pool.ConnectionPool.check_connection, open=False, name="lea-store", timeout=30,
        )
        self.pool.open(wait=False)
        #: The connection every write goes through, when a server holds the database's write lock
        #: (backend/writer_lock.py: the lock's own session, so a server that lost it cannot write).
        self.writer: Callable[[], contextlib.AbstractContextManager[psycopg.Connection[Any]]] | None = None

    def _write_connection(self) -> contextlib.AbstractContextManager[psycopg.Connection[Any]]:
        if self.writer is not None:
            return self.writer()
        return self._own_writer()

    def connect(self) -> psycopg.Connection[Any]:
        """A new connection of this store's database outside the pool (autocommit), the caller's to close."""
        try:
            return psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise connect_error(self.target, exc) from exc

    # -- opening ---------------------------------------------------------------------------
    def _prepare(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            tables = {
                str(r[0]) for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                )
            }
            if tables:
                marker = None
                if "meta" in tables:
                    row = conn.execute("SELECT value FROM meta WHERE key = %s", (APPLICATION_KEY,)).fetchone()
                    marker = None if row is None else row[0]
                if marker != APPLICATION_VALUE:
                    shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
                    raise DataDirError(
                        f"the PostgreSQL database {self.name} holds tables of another program ({shown}), not "
                        "LEA's; it was left untouched. Give LEA an empty database of its own",
                        path=self.name,
                    )
                stored = self._meta_int(conn, "schema_version")
                if stored is not None and stored > SCHEMA_VERSION:
                    raise SchemaTooNew(
                        f"{self.name} was written by a newer LEA (schema version {stored}); this LEA understands "
                        f"up to schema version {SCHEMA_VERSION}. Install a newer LEA to open it.",
                        stored=stored, supported=SCHEMA_VERSION,
                    )
            if self.read_only:
                if "events" not in tables:
                    raise DataDirError(f"{self.name} holds no LEA data yet", path=self.name)
                return
            for statement in TABLES:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
                (APPLICATION_KEY, APPLICATION_VALUE),
            )
            current = self._meta_int(conn, "schema_version")
            if current is None or current < SCHEMA_VERSION:
                self._set_meta(conn, "schema_version", str(SCHEMA_VERSION))

    def damaged(self, detail: str) -> DataDirError:
        return DataDirError(
            f"{self.name} is damaged: {detail}; it was left untouched (restore it from a backup)", path=self.name
        )

    # -- meta ------------------------------------------------------------------------------
    def _meta(self, conn: psycopg.Connection[Any], key: str) -> str | None:
        row = conn.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _meta_int(self, conn: psycopg.Connection[Any], key: str) -> int | None:
        value = self._meta(conn, key)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            raise self.damaged(f"its meta {key} is {value[:40]!r}, not a number") from None

    @staticmethod
    def _set_meta(conn: psycopg.Connection[Any], key: str, value: str) -> None:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def get_meta(self, key: str) -> str | None:
        with self.pool.connection() as conn:
            return self._meta(conn, key)

    def set_meta(self, key: str, value: str) -> None:
        self._check_writable()
        with self._write_connection() as conn, conn.transaction():
            self._set_meta(conn, key, value)

    def _check_writable(self) -> None:
        if self.read_only:
            raise DataDirError(f"{self.name} is open read-only", path=self.name)

    # -- events ----------------------------------------------------------------------------
    def append(self, events: Sequence[Event], reserve_up_to: int | None = None) -> None:
        self._check_writable()
        rows = [
            (
                e.revision, e.epoch, str(e.tx), e.kind.value, str(e.id), e.type.value,
                None if e.resource is None else e.resource.model_dump_json(),
                SCHEMA_VERSION, e.actor, e.at.isoformat(),
            )
            for e in events
        ]
        committing = False
        try:
            with self._write_connection() as conn, conn.transaction(), conn.cursor() as cursor:
                if len(rows) == 1:  # executemany's pipeline costs more than it saves for one row
                    cursor.execute(INSERT_EVENT, rows[0])
                elif rows:
                    cursor.executemany(INSERT_EVENT, rows)
                if reserve_up_to is not None:
                    self._set_meta(conn, "revision_reserved", str(reserve_up_to))
                committing = True  # leaving the block sends COMMIT: from here the outcome may be unknown
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            if committing:
                raise
            raise NotStored(" ".join(str(exc).split()) or type(exc).__name__) from exc

    @contextlib.contextmanager
    def _own_writer(self) -> Iterator[psycopg.Connection[Any]]:
        """The commit path's own connection (the manager is the single sequencer: one writer)."""
        with self._write_lock:
            try:
                yield self._writer()
            except psycopg.OperationalError:
                self._drop_writer()  # the connection may be gone (server restarted): a new one next time
                raise

    def _writer(self) -> psycopg.Connection[Any]:
        if self._writer_conn is None or self._writer_conn.closed:
            self._writer_conn = psycopg.connect(self._conninfo, autocommit=True)
        return self._writer_conn

    def _drop_writer(self) -> None:
        if self._writer_conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._writer_conn.close()
            self._writer_conn = None

    def reserved_revision(self) -> int:
        with self.pool.connection() as conn:
            value = self._meta_int(conn, "revision_reserved")
        return value if value is not None else 0

    def last_revision(self) -> int:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT max(revision) FROM events").fetchone()
        return int(row[0] or 0) if row else 0

    def event_count(self) -> int:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT count(*) FROM events").fetchone()
        return int(row[0]) if row else 0

    def _batches(
        self, columns: str, where: str, args: list[Any], after: int, up_to: int, limit: int | None
    ) -> Iterator[tuple[Any, ...]]:
        """Rows with after < revision <= up_to in revision order, ``BATCH`` per query (no connection is
        held while the caller works on a batch; events are append-only, so paging by revision is exact)."""
        left = limit
        query = sql.SQL(
            "SELECT " + columns + " FROM events WHERE revision > %s AND revision <= %s" + where
            + " ORDER BY revision LIMIT %s"
        )
        while left is None or left > 0:
            size = BATCH if left is None else min(BATCH, left)
            try:
                with self.pool.connection() as conn:
                    rows = conn.execute(query, [after, up_to, *args, size]).fetchall()
            except psycopg.DataError as exc:
                raise self.damaged(f"reading its events after revision {after} failed ({exc})") from exc
            yield from rows
            if len(rows) < size:
                return
            after = int(rows[-1][0])
            if left is not None:
                left -= len(rows)

    def read_events(
        self,
        after: int = 0,
        limit: int | None = None,
        kind: ResourceKind | None = None,
        resource_id: UUID | None = None,
        kinds: Collection[ResourceKind] | None = None,
    ) -> Iterator[Event]:
        where, args = "", []
        if kind is not None:
            where += " AND kind = %s"
            args.append(kind.value)
        if kinds is not None and not kinds:
            return  # no kind asked for
        if kinds is not None:
            where += f" AND kind IN ({', '.join('%s' for _ in kinds)})"
            args.extend(k.value for k in kinds)
        if resource_id is not None:
            where += " AND resource_id = %s"
            args.append(str(resource_id))
        columns = "revision, epoch, tx, kind, resource_id, type, payload, schema_version, actor, at"
        for row in self._batches(columns, where, args, after, MAX_REVISION, limit):
            yield self.event_from_row(row)

    def replay(self, after: int = 0, up_to: int | None = None) -> Iterator[ReplayedChange]:
        kinds, types, validate = KINDS, TYPES, VALIDATE_JSON
        revision, k = after, None
        columns = "revision, type, kind, CASE WHEN payload IS NULL THEN resource_id END, payload, schema_version"
        try:
            for revision, type_s, kind_s, rid, payload, version in self._batches(
                columns, "", [], after, up_to if up_to is not None else MAX_REVISION, None
            ):
                k, t = kinds.get(kind_s), types.get(type_s)
                if k is None or t is None:
                    raise self.unknown_row(revision, kind_s, type_s)
                if payload is None:
                    yield ReplayedChange(revision, t, k, UUID(rid), None)
                else:
                    res = validate[k](payload) if version == SCHEMA_VERSION else load_resource(k, payload, version)
                    yield ReplayedChange(revision, t, k, res.id, res)
        except (ValueError, TypeError) as exc:  # a row that is no event; ValidationError is a ValueError
            raise self.unreadable_row(revision, k, exc) from exc

    # -- checkpoints -----------------------------------------------------------------------
    def write_checkpoint(self, checkpoint: Checkpoint) -> None:
        self._check_writable()
        payload = RESOURCE_LIST_ADAPTER.dump_json(list(checkpoint.resources)).decode("utf-8")
        with self._write_connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO checkpoints VALUES (%s, %s, %s, %s, %s) ON CONFLICT (revision) DO UPDATE SET "
                "schema_version = excluded.schema_version, checksum = excluded.checksum, "
                "created_at = excluded.created_at, payload = excluded.payload",
                (checkpoint.revision, SCHEMA_VERSION, checksum(payload), datetime.now(UTC).isoformat(), payload),
            )

    def load_checkpoint(self) -> Checkpoint | None:
        with self.pool.connection() as conn:
            heads = conn.execute("SELECT revision FROM checkpoints ORDER BY revision DESC").fetchall()
        for (revision,) in heads:
            with self.pool.connection() as conn:
                row = conn.execute(
                    "SELECT schema_version, checksum, payload FROM checkpoints WHERE revision = %s", (revision,)
                ).fetchone()
            if row is None:
                continue  # pruned meanwhile
            checkpoint = checkpoint_from_row(revision, *row)
            if checkpoint is not None:
                return checkpoint
        return None

    def checkpoints(self) -> list[CheckpointInfo]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT revision, schema_version, checksum, created_at, payload FROM checkpoints "
                "ORDER BY revision DESC"
            ).fetchall()
        return [
            CheckpointInfo(rev, ver, payload is not None and checksum(payload) == digest, created)
            for rev, ver, digest, created, payload in rows
        ]

    def prune_checkpoints(self, keep: int) -> int:
        self._check_writable()
        infos = self.checkpoints()
        keep_revisions = {c.revision for c in [c for c in infos if c.valid][:keep]}
        doomed = [c.revision for c in infos if c.revision not in keep_revisions]
        with self._write_connection() as conn, conn.transaction():
            conn.execute("DELETE FROM checkpoints WHERE revision = ANY(%s)", (doomed,))
        return len(doomed)

    def vacuum(self) -> None:
        self._check_writable()
        with self.pool.connection() as conn:  # autocommit: VACUUM runs outside a transaction
            conn.execute("VACUUM (ANALYZE) events, checkpoints, meta, tokens")

    def integrity_check(self) -> str:
        """'ok' when every row of LEA's tables can be read (PostgreSQL checks each page it reads, and
        its data checksums when the cluster has them: ``initdb --data-checksums``); else the error."""
        try:
            with self.pool.connection() as conn:
                for table in sorted(LEA_TABLES):
                    conn.execute(
                        sql.SQL("SELECT count(*), sum(length(t::text)) FROM {} AS t").format(sql.Identifier(table))
                    ).fetchone()
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return "ok"

    def size_bytes(self) -> int:
        """What LEA's tables take on disk, indexes and TOAST included."""
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT sum(pg_total_relation_size(to_regclass(t))) FROM unnest(%s::text[]) AS t",
                (sorted(LEA_TABLES),),
            ).fetchone()
        return int(row[0] or 0) if row else 0

    def __enter__(self) -> PostgresEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                with self._write_lock:
                    self._drop_writer()
                self.pool.close()
