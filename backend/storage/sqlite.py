"""SQLite event store (WAL, synchronous=FULL by default); tables created through sqlite-utils.

The hot paths (append, replay) use the sqlite3 connection directly: one transaction per commit
group, one ``executemany`` per group.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import sqlite_utils

from backend.storage.base import CheckpointInfo, EventStore, ReplayedChange
from backend.storage.upcasters import upcast
from resources.errors import DataDirError, SchemaTooNew
from resources.events import SCHEMA_VERSION, Checkpoint, Event, EventType
from resources.kinds import ResourceKind
from resources.resource import MODEL_BY_KIND, RESOURCE_LIST_ADAPTER, AnyResource, resource_from_dict

SQLITE_HEADER = b"SQLite format 3\x00"
#: PRAGMA application_id marking a LEA database ("LEA1").
APPLICATION_ID = 0x4C454131
_KINDS = {k.value: k for k in ResourceKind}
_TYPES = {t.value: t for t in EventType}
#: ``Model.model_validate_json`` without its Python wrapper (the same validator; replay is hot).
_VALIDATE_JSON: dict[ResourceKind, Callable[[str], AnyResource]] = {
    kind: model.__pydantic_validator__.validate_json for kind, model in MODEL_BY_KIND.items()
}
Durability = Literal["full", "normal", "off"]


def _checksum(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class SqliteEventStore(EventStore):
    def __init__(self, path: Path | str, *, durability: Durability = "full", read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.RLock()
        _check_is_sqlite(self.path, must_exist=read_only)
        self._durability = durability
        conn: sqlite3.Connection | None = None
        try:
            conn = self._conn = self._connect()
            self._prepare()
        except BaseException as exc:
            if conn is not None:
                conn.close()  # no connection (nor -wal/-shm file) left behind on a refused file
            if isinstance(exc, sqlite3.DatabaseError):
                raise _open_error(self.path, exc) from exc
            raise

    # -- opening ---------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError:
                # A WAL database in a read-only folder cannot create its -shm file: read it immutable.
                conn.close()
                uri = f"{self.path.resolve().as_uri()}?immutable=1"
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            return conn
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # fails early on a non-database
        return conn

    def _prepare(self) -> None:
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        app_id = self._conn.execute("PRAGMA application_id").fetchone()[0]
        if tables and app_id != APPLICATION_ID:
            raise DataDirError(
                f"{self.path} is an SQLite database of another program, not a LEA database; "
                "it was left untouched",
                path=str(self.path),
            )
        if "meta" in tables:
            self._check_schema_version()
        if self.read_only:
            if "events" not in tables:
                raise DataDirError(f"{self.path} holds no LEA data yet", path=str(self.path))
            return
        # Only now that the file is known to be ours (or new) may it be changed: WAL rewrites the header.
        self._conn.execute("PRAGMA journal_mode=WAL").fetchone()
        self._conn.execute(f"PRAGMA synchronous={self._durability.upper()}")
        db = sqlite_utils.Database(self._conn)
        with self._write():
            if app_id != APPLICATION_ID:  # setting it again would rewrite the header of an unchanged file
                self._conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
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
            db.table("tokens").create(
                {"name": str, "role": str, "hash": str, "created_at": str}, pk="name", if_not_exists=True
            )
            current = self._meta("schema_version")
            if current is None or int(current) < SCHEMA_VERSION:
                self._set_meta("schema_version", str(SCHEMA_VERSION))
            # A write that changes nothing: a file SQLite may not write fails here, not at the first commit.
            self._conn.execute("DELETE FROM meta WHERE 0")

    def _check_schema_version(self) -> None:
        stored = self._meta("schema_version")
        if stored is not None and int(stored) > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{self.path} was written by a newer LEA (schema version {stored}); this LEA understands "
                f"up to schema version {SCHEMA_VERSION}. Install a newer LEA to open it.",
                stored=int(stored), supported=SCHEMA_VERSION,
            )

    # -- meta ------------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

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
            value = self._meta("revision_reserved")
        return int(value) if value is not None else 0

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
    ) -> Iterator[Event]:
        sql = "SELECT revision, epoch, tx, kind, resource_id, type, payload, schema_version, actor, at " \
              "FROM events WHERE revision > ?"
        args: list[Any] = [after]
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind.value)
        if resource_id is not None:
            sql += " AND resource_id = ?"
            args.append(str(resource_id))
        sql += " ORDER BY revision"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        for revision, epoch, tx, kind_s, rid, type_s, payload, version, actor, at in rows:
            k = _KINDS[kind_s]
            yield Event(
                epoch=epoch, revision=revision, type=_TYPES[type_s], kind=k, id=UUID(rid),
                resource=None if payload is None else _load_resource(k, payload, version),
                actor=actor, at=datetime.fromisoformat(at), tx=UUID(tx),
            )

    def replay(self, after: int = 0, up_to: int | None = None) -> Iterator[ReplayedChange]:
        # The hot path of start-up and verify (bench/restore.py): the resource id column is read only
        # for deletions (a stored resource carries its id), and current payloads go straight to their
        # model's validator.
        kinds, types, validate = _KINDS, _TYPES, _VALIDATE_JSON
        with self._lock:
            cursor = self._conn.execute(
                "SELECT revision, type, kind, CASE WHEN payload IS NULL THEN resource_id END, payload, "
                "schema_version FROM events WHERE revision > ? AND revision <= ? ORDER BY revision",
                (after, up_to if up_to is not None else 2**63 - 1),
            )
            for revision, type_s, kind_s, rid, payload, version in cursor:
                k = kinds[kind_s]
                if payload is None:
                    yield ReplayedChange(revision, types[type_s], k, UUID(rid), None)
                else:
                    res = (
                        validate[k](payload) if version == SCHEMA_VERSION else _load_resource(k, payload, version)
                    )
                    yield ReplayedChange(revision, types[type_s], k, res.id, res)

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
                version, checksum, payload = row
                if payload is None or _checksum(payload) != checksum:
                    continue  # damaged: fall back to an older checkpoint or a full replay
                if version > SCHEMA_VERSION:
                    raise SchemaTooNew(f"checkpoint {revision} has schema version {version}")
                if version == SCHEMA_VERSION:
                    resources = tuple(RESOURCE_LIST_ADAPTER.validate_json(payload))
                else:
                    resources = tuple(
                        resource_from_dict(_KINDS[item["kind"]], upcast(_KINDS[item["kind"]], item, version))
                        for item in json.loads(payload)
                    )
                return Checkpoint(revision=revision, schema_version=SCHEMA_VERSION, resources=resources)
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
            self._conn.execute("VACUUM")

    def integrity_check(self) -> str:
        with self._lock:
            return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _load_resource(kind: ResourceKind, payload: str, version: int) -> AnyResource:
    if version == SCHEMA_VERSION:
        return MODEL_BY_KIND[kind].model_validate_json(payload)
    return resource_from_dict(kind, upcast(kind, json.loads(payload), version))


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


def _check_is_sqlite(path: Path, *, must_exist: bool) -> None:
    if not path.exists():
        if must_exist:
            raise DataDirError(f"no LEA database at {path}", path=str(path))
        return
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise DataDirError(f"cannot read {path}: {exc.strerror or exc}", path=str(path)) from exc
    if header and header != SQLITE_HEADER:
        raise DataDirError(
            f"{path} is not an SQLite database (wrong file header); it was left untouched", path=str(path)
        )


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
