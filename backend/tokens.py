"""Bearer tokens with roles, stored only as hashes in ``lea.db``'s ``tokens`` table.

The table is not event sourced and needs no data-directory lock: ``lea-backend token ...`` works
while the server runs, and the server looks a token up on every request, so a revocation takes
effect immediately.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from backend.storage.pg_target import PostgresTarget, connect_error
from backend.storage.sqlite import (
    CREATE_TOKENS_TABLE,
    close_keeping_wal,
    migrate_tokens_table,
    open_read_only,
    tokens_have_peer_column,
    wal_path,
)
from resources.errors import AlreadyExists, DataDirError, InvalidDocument, InvalidResource, NotFound

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

TOKEN_PREFIX = "lea_"
#: 1 to 64 ASCII letters, digits, '.', '_', '-' and '@', not starting with '.': a name that is a
#: path segment as it stands (``DELETE /api/v1/tokens/{name}`` revokes every token; no '/', no
#: "." or ".."), the same in a query string (no '+', '%', '&'), and prints as one cell of a table.
#: Python's ``re`` and the ECMA-262 regexes of JSON Schema read it the same way.
TOKEN_NAME_PATTERN = r"^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,63}$"
TOKEN_NAME_RULE = "1 to 64 characters of letters, digits, '.', '_', '-' and '@', not starting with '.'"
_TOKEN_NAME = re.compile(TOKEN_NAME_PATTERN)


class Role(StrEnum):
    VIEWER = "viewer"  # read and watch
    EDITOR = "editor"  # also write and deploy
    ADMIN = "admin"  # also manage tokens
    PEER = "peer"  # one bench's agent: WS /api/v1/peer/connect only, for its own peer

    def allows(self, needed: Role) -> bool:
        """Whether this role passes a REST or watch check needing ``needed``; a peer token passes none."""
        if self is Role.PEER or needed is Role.PEER:
            return False
        order = [Role.VIEWER, Role.EDITOR, Role.ADMIN]
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True)
class TokenInfo:
    name: str
    role: Role
    created_at: str
    #: The peer a ``peer`` token is bound to (None for every other role).
    peer_id: UUID | None = None


def count_tokens(db_path: Path) -> int:
    """How many tokens ``db_path`` holds, creating and changing no file; a missing database holds none."""
    if not db_path.exists():
        return 0
    if not wal_path(db_path).exists():
        # No process has it open (SQLite keeps a -wal next to an open WAL database): read the file
        # alone, which creates no -wal/-shm either. Should it change meanwhile, read it properly.
        with contextlib.suppress(sqlite3.DatabaseError):
            conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?immutable=1", uri=True)
            try:
                if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'tokens'").fetchone() is None:
                    return 0
                return int(conn.execute("SELECT count(*) FROM tokens").fetchone()[0])
            finally:
                conn.close()
    store = TokenStore(db_path, read_only=True)
    try:
        return store.count()
    finally:
        store.close()


def check_peer_binding(role: Role, peer_id: UUID | None) -> None:
    """A ``peer`` token needs the peer it is bound to; no other role takes one (422: a rule the
    OpenAPI schema of ``POST /api/v1/tokens`` cannot state)."""
    if role is Role.PEER and peer_id is None:
        raise InvalidResource("a peer token is bound to one peer: give the peer's id (--peer-id / peer_id)")
    if role is not Role.PEER and peer_id is not None:
        raise InvalidResource(f"only a peer token is bound to a peer; a {role} token takes no peer id")


def _info(name: str, role: str, created_at: str, peer_id: str | None) -> TokenInfo:
    return TokenInfo(name, Role(role), created_at, UUID(peer_id) if peer_id else None)


def _new_token(name: str, role: Role, peer_id: UUID | None) -> str:
    """A new plain token for ``name`` once the name and the peer binding are checked."""
    if not _TOKEN_NAME.fullmatch(name):
        raise InvalidDocument(f"a token name must be {TOKEN_NAME_RULE}, not {name[:40]!r}")
    check_peer_binding(role, peer_id)
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    def __init__(self, db_path: Path, *, read_only: bool = False) -> None:
        """``read_only``: changes no file (works on a read-only data directory); the database must exist."""
        self.db_path = db_path
        self.read_only = read_only
        self._lock = threading.Lock()
        self._found_wal = wal_path(db_path).exists()  # left as it is by a store that writes nothing
        try:
            if read_only:
                self._conn = open_read_only(db_path)
                if self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'tokens'").fetchone() is None:
                    self._conn.close()
                    self._conn = sqlite3.connect(":memory:", check_same_thread=False)  # no token table: none
                    self._conn.execute(CREATE_TOKENS_TABLE)
                self._peer_column = tokens_have_peer_column(self._conn)
                return
            self._conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False, timeout=10)
            migrate_tokens_table(self._conn)  # a database of an older release gains the peer column
            self._peer_column = True
        except sqlite3.DatabaseError as exc:
            raise DataDirError(f"cannot use the token table in {db_path}: {exc}", path=str(db_path)) from exc

    def create(self, name: str, role: Role, peer_id: UUID | None = None) -> str:
        """A new token for ``name``; the plain token is returned once and never stored.

        A ``peer`` token needs the ``peer_id`` it is bound to; no other role takes one."""
        token = _new_token(name, role, peer_id)
        with self._lock:
            try:
                self._conn.execute(
                    "INSERT INTO tokens (name, role, hash, created_at, peer_id) VALUES (?, ?, ?, ?, ?)",
                    (
                        name, role.value, _hash(token), datetime.now(UTC).isoformat(timespec="seconds"),
                        str(peer_id) if peer_id is not None else None,
                    ),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"a token named '{name}' already exists; revoke it first") from None
        return token

    def revoke(self, name: str) -> None:
        with self._lock:
            cursor = self._conn.execute("DELETE FROM tokens WHERE name = ?", (name,))
        if cursor.rowcount == 0:
            raise NotFound(f"no token named '{name}'")

    def list(self) -> list[TokenInfo]:
        with self._lock:
            query = f"SELECT name, role, created_at, {self._peer} FROM tokens ORDER BY name"
            rows = self._conn.execute(query).fetchall()
        return [_info(*row) for row in rows]

    @property
    def _peer(self) -> str:
        """The peer column, or NULL on a read-only database of an older release (not migrated)."""
        return "peer_id" if self._peer_column else "NULL"

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM tokens").fetchone()[0])

    def authenticate(self, token: str) -> TokenInfo | None:
        """The token's owner, or None. Looks the hash up, then compares in constant time."""
        digest = _hash(token)
        with self._lock:
            row = self._conn.execute(
                f"SELECT name, role, hash, created_at, {self._peer} FROM tokens WHERE hash = ?", (digest,)
            ).fetchone()
        if row is None or not hmac.compare_digest(row[2], digest):
            return None
        return _info(row[0], row[1], row[3], row[4])

    def close(self) -> None:
        with self._lock:
            if self.read_only or self._conn.total_changes or not self._found_wal:
                self._conn.close()
            else:  # a refused create or revoke leaves a crashed run's WAL unmerged
                close_keeping_wal(self._conn, self.db_path)


class PostgresTokenStore(TokenStore):
    """The same token table in a PostgreSQL store's database (backend/storage/postgres.py).

    A small pool of its own: the server looks a token up on every request, and a connection lost
    (PostgreSQL restarted) is replaced on the next one. ``read_only`` on a database without LEA's
    tables yet: no tokens.
    """

    def __init__(self, target: PostgresTarget, *, read_only: bool = False) -> None:
        self.db_path = Path(target.url)  # shown in messages only
        self.target = target
        self.read_only = read_only
        self._lock = threading.Lock()
        options = "-c default_transaction_read_only=on" if read_only else ""
        conninfo = target.conninfo(options=options) if options else target.conninfo()
        import psycopg  # (only for a PostgreSQL store: backend/storage/pg_target.py)
        import psycopg_pool

        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                row = conn.execute("SELECT to_regclass('tokens') IS NOT NULL").fetchone()
        except psycopg.Error as exc:
            raise connect_error(target, exc) from exc
        self._empty = not (row and row[0])
        if self._empty and not read_only:
            raise DataDirError(f"{target.url} has no token table: open it as a LEA store first", path=target.url)
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = psycopg_pool.ConnectionPool(
            conninfo, min_size=1, max_size=2, kwargs={"autocommit": True}, open=False, name="lea-tokens",
            check=psycopg_pool.ConnectionPool.check_connection, timeout=10,
        )
        self._pool.open(wait=False)

    def _rows(self, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self._empty:
            return []
        with self._pool.connection() as conn:
            return conn.execute(query, args).fetchall()

    def create(self, name: str, role: Role, peer_id: UUID | None = None) -> str:
        token = _new_token(name, role, peer_id)
        import psycopg

        try:
            with self._pool.connection() as conn:
                conn.execute(
                    "INSERT INTO tokens (name, role, hash, created_at, peer_id) VALUES (%s, %s, %s, %s, %s)",
                    (
                        name, role.value, _hash(token), datetime.now(UTC).isoformat(timespec="seconds"),
                        str(peer_id) if peer_id is not None else None,
                    ),
                )
        except psycopg.errors.UniqueViolation:
            raise AlreadyExists(f"a token named '{name}' already exists; revoke it first") from None
        return token

    def revoke(self, name: str) -> None:
        if self._empty:
            raise NotFound(f"no token named '{name}'")
        with self._pool.connection() as conn:
            cursor = conn.execute("DELETE FROM tokens WHERE name = %s", (name,))
        if cursor.rowcount == 0:
            raise NotFound(f"no token named '{name}'")

    def list(self) -> list[TokenInfo]:
        return [_info(*row) for row in self._rows("SELECT name, role, created_at, peer_id FROM tokens ORDER BY name")]

    def count(self) -> int:
        rows = self._rows("SELECT count(*) FROM tokens")
        return int(rows[0][0]) if rows else 0

    def authenticate(self, token: str) -> TokenInfo | None:
        digest = _hash(token)
        rows = self._rows("SELECT name, role, hash, created_at, peer_id FROM tokens WHERE hash = %s", (digest,))
        if not rows or not hmac.compare_digest(rows[0][2], digest):
            return None
        row = rows[0]
        return _info(row[0], row[1], row[3], row[4])

    def close(self) -> None:
        self._pool.close()
