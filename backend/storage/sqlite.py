"""SQLite event store (WAL, synchronous=FULL by default); tables created through sqlite-utils.

The hot paths (append, replay) use the sqlite3 connection directly: one transaction per commit
group, one ``executemany`` per group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import threading
from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from uuid import UUID, uuid4

from backend.storage.base import CheckpointInfo, EventStore, ReplayedChange
from backend.storage.rows import KINDS, TYPES, VALIDATE_JSON, checkpoint_from_row, checksum, load_resource
from resources.errors import DataDirError, LeaError, SchemaTooNew
from resources.events import SCHEMA_VERSION, Checkpoint, Event
from resources.kinds import ResourceKind
from resources.resource import RESOURCE_LIST_ADAPTER

SQLITE_HEADER = b"SQLite format 3\x00"
#: PRAGMA application_id marking a LEA database ("LEA1").
APPLICATION_ID = 0x4C454131
#: The bearer tokens' table (backend/tokens.py), created with the others in a new database and by a
#: token store opened on an older one.
CREATE_TOKENS_TABLE = (
    "CREATE TABLE IF NOT EXISTS tokens (name TEXT PRIMARY KEY, role TEXT, hash TEXT, created_at TEXT, peer_id TEXT)"
)
#: The column a release before the peer role lacks (its table is the one above without it).
TOKENS_PEER_COLUMN = "ALTER TABLE tokens ADD COLUMN peer_id TEXT"


def migrate_tokens_table(conn: sqlite3.Connection) -> None:
    """Create the tokens table, or add what an older release's lacks (idempotent; two processes
    migrating at once: the loser finds the column there)."""
    conn.execute(CREATE_TOKENS_TABLE)
    if not tokens_have_peer_column(conn):
        try:
            conn.execute(TOKENS_PEER_COLUMN)
        except sqlite3.OperationalError:
            if not tokens_have_peer_column(conn):
                raise


def tokens_have_peer_column(conn: sqlite3.Connection) -> bool:
    return any(row[1] == "peer_id" for row in conn.execute("PRAGMA table_info(tokens)"))
_KINDS, _TYPES, _VALIDATE_JSON = KINDS, TYPES, VALIDATE_JSON
Durability = Literal["full", "normal", "off"]
#: The index sqlite-utils creates on events (kind, resource_id): its name, as sqlite-utils gives it.
EVENTS_INDEX = "idx_events_kind_resource_id"


_checksum = checksum


class SqliteEventStore(EventStore):
    def __init__(self, path: Path | str, *, durability: Durability = "full", read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.RLock()
        existed = _check_is_sqlite(self.path, must_exist=read_only)
        self._durability = durability
        # A store that writes nothing must leave a write-ahead log it found (a crashed run's) unmerged.
        self._found_wal = wal_path(self.path).exists()
        self._wrote = False
        if not read_only and not existed:
            _create_private(self.path)
        conn: sqlite3.Connection | None = None
        try:
            conn = self._conn = self._connect()
            self._check_pages_as_read()
            self._prepare()
        except BaseException as exc:
            if conn is not None:
                self._close_connection()  # no connection (nor -wal/-shm file) left behind on a refused file
            if isinstance(exc, sqlite3.DatabaseError):
                raise _open_error(self.path, exc) from exc
            raise

    # -- opening ---------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            return open_read_only(self.path)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # fails early on a non-database
        return conn

    def _check_pages_as_read(self) -> None:
        # Every b-tree page read (the checkpoint, the events restore replays) gets its cells' sizes
        # checked too: damage there is an error, not garbage read on (costs nothing measurable).
        self._conn.execute("PRAGMA cell_size_check=ON")

    def _prepare(self) -> None:
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        app_id = self._conn.execute("PRAGMA application_id").fetchone()[0]
        if tables and app_id != APPLICATION_ID:
            raise DataDirError(
                f"{self.path} is an SQLite database of another program, not a LEA database; "
                "it was left untouched",
                path=str(self.path),
            )
        self._check_small_tables(tables)
        if "meta" in tables:
            self._check_schema_version()
        if self.read_only:
            if "events" not in tables:
                raise DataDirError(f"{self.path} holds no LEA data yet", path=str(self.path))
            return
        # Only now that the file is known to be ours (or new) may it be changed: WAL rewrites the header.
        self._conn.execute("PRAGMA journal_mode=WAL").fetchone()
        self._conn.execute(f"PRAGMA synchronous={self._durability.upper()}")
        with _Transaction(self._conn):  # not self._write(): creating the tables of a new file is no write
            if app_id != APPLICATION_ID:  # setting it again would rewrite the header of an unchanged file
                self._conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            if not self._has_every_table(tables):
                self._create_tables()
            migrate_tokens_table(self._conn)
            current = self._meta_int("schema_version")
            if current is None or current < SCHEMA_VERSION:
                self._set_meta("schema_version", str(SCHEMA_VERSION))
            # A write that changes nothing: a file SQLite may not write fails here, not at the first commit.
            self._conn.execute("DELETE FROM meta WHERE 0")

    def _has_every_table(self, tables: set[str]) -> bool:
        if not {"events", "checkpoints", "meta"} <= tables:
            return False
        indexes = self._conn.execute("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='events'")
        return EVENTS_INDEX in {r[0] for r in indexes}

    def _create_tables(self) -> None:
        """The tables and index of a new file (each only if missing), through sqlite-utils.

        Imported here: an existing database (every start but the first) needs none of it, and the
        import costs ~35 ms of the embedded backend's start-up."""
        import sqlite_utils

        db = sqlite_utils.Database(self._conn)
        db.table("events").create(
            {
                "revision": int, "epoch": str, "tx": str, "kind": str, "resource_id": str, "type": str,
                "payload": str, "schema_version": int, "actor": str, "at": str,
            },
            pk="revision", not_null={"epoch", "tx", "kind", "resource_id", "type", "actor", "at"},
            if_not_exists=True,
        )
        db.table("events").create_index(["kind", "resource_id"], if_not_exists=True)
        db.table("checkpoints").create(
            {"revision": int, "schema_version": int, "checksum": str, "created_at": str, "payload": str},
            pk="revision", if_not_exists=True,
        )
        db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)

    def _check_small_tables(self, tables: set[str]) -> None:
        """SQLite's quick_check of the small tables the start-up trusts (meta: the revision high-water mark).

        Not of the events, which a checkpoint's restore reads only in part: a full quick_check costs
        about 1.3 ms per 1,000 events (docs/decisions.md); the pages restore reads are checked as read.
        """
        for table in ("meta", "tokens"):
            if table in tables:
                result = [str(r[0]) for r in self._conn.execute(f"PRAGMA quick_check({table})")]
                if result != ["ok"]:
                    raise self.damaged(f"its {table} table fails SQLite's quick_check ({result[0]})")

    def _check_schema_version(self) -> None:
        stored = self._meta_int("schema_version")
        if stored is not None and stored > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{self.path} was written by a newer LEA (schema version {stored}); this LEA understands "
                f"up to schema version {SCHEMA_VERSION}. Install a newer LEA to open it.",
                stored=stored, supported=SCHEMA_VERSION,
            )

    def damaged(self, detail: str) -> DataDirError:
        """The error for a file that is not what LEA wrote: named, left untouched."""
        return DataDirError(
            f"{self.path} is damaged: {detail}; it was left untouched (restore it from a backup)",
            path=str(self.path),
        )

    def _close_connection(self) -> None:
        if self.read_only or self._wrote or not self._found_wal:
            self._conn.close()
        else:
            close_keeping_wal(self._conn, self.path)

    # -- meta ------------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _meta_int(self, key: str) -> int | None:
        value = self._meta(key)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            raise self.damaged(f"its meta {key} is {value[:40]!r}, not a number") from None

    def _set_meta(self, key: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            return self._meta(key)

    def set_meta(self, key: str, value: str) -> None:
        with self._lock, self._write():
            self._set_meta(key, value)

    def _write(self) -> _Transaction:
        if self.read_only:
            raise DataDirError(f"{self.path} is open read-only", path=str(self.path))
        self._wrote = True
        return _Transaction(self._conn)

    # -- events ----------------------------------------------------------------------------
    def append(self, events: Sequence[Event], reserve_up_to: int | None = None) -> None:
        rows = [
            (
                e.revision, e.epoch, str(e.tx), e.kind.value, str(e.id), e.type.value,
                None if e.resource is None else e.resource.model_dump_json(),
                SCHEMA_VERSION, e.actor, e.at.isoformat(),
            )
            for e in events
        ]
        with self._lock, self._write():
            if rows:
                self._conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
            if reserve_up_to is not None:
                self._set_meta("revision_reserved", str(reserve_up_to))

    def reserved_revision(self) -> int:
        with self._lock:
            value = self._meta_int("revision_reserved")
        return value if value is not None else 0

    def last_revision(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT max(revision) FROM events").fetchone()
        return int(row[0] or 0)

    def event_count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM events").fetchone()[0])

    def read_events(
        self,
        after: int = 0,
        limit: int | None = None,
        kind: ResourceKind | None = None,
        resource_id: UUID | None = None,
        kinds: Collection[ResourceKind] | None = None,
    ) -> Iterator[Event]:
        sql = "SELECT revision, epoch, tx, kind, resource_id, type, payload, schema_version, actor, at " \
              "FROM events WHERE revision > ?"
        args: list[Any] = [after]
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind.value)
        if kinds is not None:
            sql += f" AND kind IN ({', '.join('?' for _ in kinds)})"
            args.extend(k.value for k in kinds)
        if resource_id is not None:
            sql += " AND resource_id = ?"
            args.append(str(resource_id))
        sql += " ORDER BY revision"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        try:
            with self._lock:
                rows = self._conn.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self.damaged(f"reading its events failed ({exc})") from exc
        for row in rows:
            yield self.event_from_row(row)

    def replay(self, after: int = 0, up_to: int | None = None) -> Iterator[ReplayedChange]:
        # The hot path of start-up and verify (bench/restore.py): the resource id column is read only
        # for deletions (a stored resource carries its id), and current payloads go straight to their
        # model's validator.
        kinds, types, validate = _KINDS, _TYPES, _VALIDATE_JSON
        revision, k = after, None
        with self._lock:
            try:
                cursor = self._conn.execute(
                    "SELECT revision, type, kind, CASE WHEN payload IS NULL THEN resource_id END, payload, "
                    "schema_version FROM events WHERE revision > ? AND revision <= ? ORDER BY revision",
                    (after, up_to if up_to is not None else 2**63 - 1),
                )
                for revision, type_s, kind_s, rid, payload, version in cursor:
                    k, t = kinds.get(kind_s), types.get(type_s)
                    if k is None or t is None:
                        raise self.unknown_row(revision, kind_s, type_s)
                    if payload is None:
                        yield ReplayedChange(revision, t, k, UUID(rid), None)
                    else:
                        res = (
                            validate[k](payload) if version == SCHEMA_VERSION else _load_resource(k, payload, version)
                        )
                        yield ReplayedChange(revision, t, k, res.id, res)
            except sqlite3.DatabaseError as exc:
                raise self.damaged(f"reading the events after revision {revision} failed ({exc})") from exc
            except (ValueError, TypeError) as exc:  # a row that is no event; ValidationError is a ValueError
                raise self.unreadable_row(revision, k, exc) from exc

    # -- checkpoints -----------------------------------------------------------------------
    def write_checkpoint(self, checkpoint: Checkpoint) -> None:
        payload = RESOURCE_LIST_ADAPTER.dump_json(list(checkpoint.resources)).decode("utf-8")
        with self._lock, self._write():
            self._conn.execute(
                "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?)",
                (checkpoint.revision, SCHEMA_VERSION, _checksum(payload),
                 datetime.now(UTC).isoformat(), payload),
            )

    def load_checkpoint(self) -> Checkpoint | None:
        with self._lock:
            heads = self._conn.execute(
                "SELECT revision FROM checkpoints ORDER BY revision DESC"
            ).fetchall()
            for (revision,) in heads:
                row = self._conn.execute(
                    "SELECT schema_version, checksum, payload FROM checkpoints WHERE revision = ?",
                    (revision,),
                ).fetchone()
                checkpoint = checkpoint_from_row(revision, *row)
                if checkpoint is not None:
                    return checkpoint
        return None

    def checkpoints(self) -> list[CheckpointInfo]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT revision, schema_version, checksum, created_at, payload FROM checkpoints "
                "ORDER BY revision DESC"
            ).fetchall()
        return [
            CheckpointInfo(rev, ver, payload is not None and _checksum(payload) == checksum, created)
            for rev, ver, checksum, created, payload in rows
        ]

    def prune_checkpoints(self, keep: int) -> int:
        infos = self.checkpoints()
        keep_revisions = {c.revision for c in [c for c in infos if c.valid][:keep]}
        doomed = [c.revision for c in infos if c.revision not in keep_revisions]
        with self._lock, self._write():
            self._conn.executemany("DELETE FROM checkpoints WHERE revision = ?", [(r,) for r in doomed])
        return len(doomed)

    def vacuum(self) -> None:
        with self._lock:
            if self.read_only:
                raise DataDirError(f"{self.path} is open read-only", path=str(self.path))
            self._wrote = True
            self._conn.execute("VACUUM")

    def integrity_check(self) -> str:
        with self._lock:
            try:
                return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])
            except sqlite3.OperationalError:
                raise
            except sqlite3.DatabaseError as exc:  # so damaged that the check itself cannot run
                return str(exc)

    def close(self) -> None:
        with self._lock:
            self._close_connection()


_load_resource = load_resource


#: Free bytes below which an I/O error while opening is taken for a full disk (SQLite needs room
#: for its WAL index, 32 KiB, and the write-ahead log).
_NEARLY_FULL = 1 << 20


def _open_error(path: Path, exc: sqlite3.DatabaseError) -> DataDirError:
    """The error to show for a database SQLite could not open or prepare."""
    name = getattr(exc, "sqlite_errorname", "")
    try:
        free: int | None = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    # A full disk shows up as SQLITE_FULL, or as an I/O error creating the WAL index (-shm).
    if name == "SQLITE_FULL" or (name.startswith("SQLITE_IOERR") and free is not None and free < _NEARLY_FULL):
        left = "" if free is None else f" ({free} bytes free)"
        return DataDirError(
            f"cannot open {path}: the disk holding it is full{left}; free some space and try again",
            path=str(path),
        )
    return DataDirError(f"{path} is not a usable LEA database ({exc}); it was left untouched", path=str(path))


def _check_is_sqlite(path: Path, *, must_exist: bool) -> bool:
    """Whether ``path`` exists; refuses a file that is empty or not SQLite before SQLite touches it."""
    if not path.exists():
        if must_exist:
            raise DataDirError(f"no LEA database at {path}", path=str(path))
        return False
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise DataDirError(f"cannot read {path}: {exc.strerror or exc}", path=str(path)) from exc
    if not header:
        # SQLite would silently start a new database in it: the data it held would be lost unnoticed.
        raise DataDirError(
            f"{path} is empty (0 bytes), so it holds no LEA data (a failed copy or disk?); it was left "
            "untouched. Restore it from a backup, or move it away to start with a new database",
            path=str(path),
        )
    if header != SQLITE_HEADER:
        raise DataDirError(
            f"{path} is not an SQLite database (wrong file header); it was left untouched", path=str(path)
        )
    return True


def wal_path(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


def open_read_only(path: Path) -> sqlite3.Connection:
    """A connection that changes no file of the database and reads its write-ahead log.

    ``mode=ro`` reads the WAL, but needs its index (``-shm``), which SQLite creates next to the file.
    In a read-only folder without one it cannot; ``immutable=1`` then reads the file alone, which is
    right only when there is no WAL: with one, the newest changes would be silently missing.
    """
    uri = path.resolve().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        conn.close()
    wal = wal_path(path)
    if wal.exists() and wal.stat().st_size > 0:
        raise DataDirError(
            f"{path} has changes in its write-ahead log {wal.name} that cannot be read here: the folder "
            f"is read-only and SQLite needs to create {path.name}-shm next to it to read the log. Copy "
            "the data directory to writable storage and run the command on the copy",
            path=str(path),
        )
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None, check_same_thread=False)


def close_keeping_wal(conn: sqlite3.Connection, path: Path) -> None:
    """Close ``conn`` without merging the WAL into the database file.

    SQLite merges the WAL when the last connection closes, even one that only read: a connection
    that wrote nothing must leave a WAL it found (a crashed run's) as it was. A read-only
    connection opened first holds SQLite's shared lock, so this close cannot merge, and a read-only
    connection never merges itself.
    """
    try:
        guard = open_read_only(path)
    except (sqlite3.Error, LeaError):
        conn.close()
        return
    try:
        conn.close()
    finally:
        guard.close()


def _create_private(path: Path) -> bool:
    """Create a new database file readable by its owner only; False if another process just did.

    The file is made under a temporary name and linked into place with its first page written, so
    another process never sees an empty ``lea.db`` (refused as damaged). SQLite gives the -wal and
    -shm files the database file's mode.
    """
    temporary = path.with_name(f".{path.name}.{uuid4().hex[:12]}.new")
    try:
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            conn = sqlite3.connect(temporary, isolation_level=None)
            try:
                conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                conn.execute("PRAGMA journal_mode=WAL").fetchone()  # writes the header: no longer empty
            finally:
                conn.close()
            try:
                os.link(temporary, path)  # never replaces a database another process created meanwhile
            except FileExistsError:
                return False
            except OSError:  # a file system without hard links
                if path.exists():
                    return False
                os.rename(temporary, path)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DataDirError(f"cannot create {path}: {reason}", path=str(path)) from exc


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self._conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (busy, I/O error, disk full) may leave the transaction open; SQLite
                # asks for an explicit ROLLBACK, or every later BEGIN fails and the rows linger.
                self._rollback()
                raise
        else:
            self._rollback()

    def _rollback(self) -> None:
        if not self._conn.in_transaction:
            return  # SQLite already rolled it back (e.g. after SQLITE_FULL); don't mask the error
        with contextlib.suppress(sqlite3.Error):  # the original exception is the one to report
            self._conn.execute("ROLLBACK")
