"""One writer per PostgreSQL database: a session advisory lock held for the life of the server process.

The analogue of ``lea.lock`` for a PostgreSQL store (docs/server.md, "Active and standby"). The
lock is taken with ``pg_try_advisory_lock`` on a dedicated connection (outside the pool) whose
``application_name`` names the holder (``lea-backend HOST pid PID``), so a refused server can say
who holds it (pg_stat_activity). That same connection is the store's *write connection*: every
append and checkpoint goes through the session that holds the lock, so a server whose session is
gone (killed, cut off, terminated by the DBA, PostgreSQL restarted) cannot write another row: the
fence is PostgreSQL's own session, not a timer.

A watchdog pings the session every ``PING_INTERVAL`` seconds. When the session is lost the holder
is fenced (``on_lost``: the manager refuses writes with 503 ``storage_failed``) and it tries to get
the lock back on a new session. It resumes (``on_regained``) only when it gets the lock back and
the database's ``writer`` mark is still its own, i.e. no other server became the writer meanwhile;
otherwise ``on_taken`` is called (the server exits: its state is no longer the database's).

PostgreSQL ends the session of a server that stops pinging: ``idle_session_timeout`` (the holder
pings far more often) and TCP keepalives / ``tcp_user_timeout`` on both ends for a network cut, so
a standby takes over within ``SESSION_TIMEOUT`` seconds of a frozen or cut-off active.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from backend.storage.pg_target import SYNCHRONOUS_COMMIT, PostgresTarget, connect_error
from resources.errors import DataDirLocked

log = logging.getLogger(__name__)

#: pg_advisory_lock's key for "the LEA writer of this database" ("LEA" + "writer").
WRITER_LOCK_KEY = 0x4C4541_0002
#: Seconds between the watchdog's pings of the lock session.
PING_INTERVAL = 0.5
#: PostgreSQL ends a lock session idle (no ping) for this long, and a cut-off one within about this.
SESSION_TIMEOUT = 5
#: Seconds between attempts to get the lock (a standby waiting, a fenced holder getting it back).
RETRY_INTERVAL = 0.05
#: meta key naming the server that holds (or last held) the write role.
WRITER_META = "writer"


def holder_name() -> str:
    return f"lea-backend {socket.gethostname()[:30]} pid {os.getpid()}"


class WriterLock:
    """The session advisory lock of one database's writer; see the module docstring."""

    def __init__(self, target: PostgresTarget, durability: str = "full") -> None:
        """``durability``: the store's setting; the writes on this session commit accordingly."""
        self.target = target
        self.name = holder_name()
        #: This process's mark in meta ``writer`` while it is the writer (another holder changes it).
        self.mark = f"{self.name} {uuid.uuid4().hex[:12]}"
        self._conninfo = target.conninfo(
            application_name=self.name[:63],
            keepalives=1, keepalives_idle=2, keepalives_interval=1, keepalives_count=3,
            tcp_user_timeout=SESSION_TIMEOUT * 1000,
            options=(
                f"-c idle_session_timeout={SESSION_TIMEOUT}s -c tcp_keepalives_idle=2 "
                f"-c tcp_keepalives_interval=1 -c tcp_keepalives_count=3 -c tcp_user_timeout={SESSION_TIMEOUT * 1000} "
                f"-c synchronous_commit={SYNCHRONOUS_COMMIT[durability]}"
            ),
        )
        self._conn: psycopg.Connection[Any] | None = None
        self._use = threading.Lock()  # one statement at a time on the session (writer thread, watchdog)
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self.lost = False
        self.on_lost: Callable[[str], None] = lambda reason: None
        self.on_regained: Callable[[], None] = lambda: None
        self.on_taken: Callable[[str], None] = lambda reason: None

    # -- taking the lock ---------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise connect_error(self.target, exc) from exc

    def _try(self, conn: psycopg.Connection[Any]) -> bool:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (WRITER_LOCK_KEY,)).fetchone()
        return bool(row and row[0])

    def try_acquire(self) -> bool:
        """Take the lock now if it is free (True); False when another session holds it."""
        conn = self._connect()
        try:
            got = self._try(conn)
        except psycopg.Error as exc:
            conn.close()
            raise connect_error(self.target, exc) from exc
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def acquire(self) -> WriterLock:
        """Take the lock or refuse, naming the holder (DataDirLocked, as for lea.lock)."""
        if not self.try_acquire():
            raise DataDirLocked(
                f"the PostgreSQL database {self.target.url} is already served by another LEA server "
                f"({self.holder()}); stop it first, or start this one with --standby to take over when it stops",
                path=self.target.url, pid=self.holder(),
            )
        return self

    def wait(self, stop: threading.Event) -> bool:
        """Wait for the lock (a standby); False when ``stop`` was set first. One session polls
        ``pg_try_advisory_lock`` every ``RETRY_INTERVAL`` s (cheap: no new connection per try);
        connection failures (PostgreSQL down) are retried on a new one."""
        conn: psycopg.Connection[Any] | None = None
        try:
            while not stop.is_set():
                try:
                    if conn is None or conn.closed:
                        conn = self._connect()
                    if self._try(conn):
                        self._conn, conn = conn, None
                        return True
                except Exception as exc:
                    log.warning("standby: cannot reach %s (%s); retrying", self.target.url, exc)
                    if conn is not None:
                        conn.close()
                    conn = None
                    stop.wait(1.0)
                    continue
                stop.wait(RETRY_INTERVAL)
            return False
        finally:
            if conn is not None:
                conn.close()

    def holder(self) -> str:
        """Who holds the lock, as PostgreSQL knows it (application name, client address, backend pid)."""
        try:
            with psycopg.connect(self.target.conninfo(), autocommit=True) as conn:
                row = conn.execute(
                    "SELECT a.application_name, host(a.client_addr), a.pid, "
                    "to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC' "
                    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                    "AND ((l.classid::bigint << 32) | l.objid::bigint) = %s",
                    (WRITER_LOCK_KEY,),
                ).fetchone()
        except psycopg.Error as exc:
            return f"holder unknown: {exc}".strip()
        if row is None:
            return "holder unknown: the lock was just released"
        app, addr, pid, since = row
        return f"{app or 'unnamed client'} from {addr or 'a local socket'}, session pid {pid} since {since}"

    # -- the write session -------------------------------------------------------------------
    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The lock session, for the store's writes (one at a time)."""
        with self._use:
            conn = self._conn
            if conn is None or conn.closed or self.lost:
                raise psycopg.OperationalError("the session holding the write lock is lost (fenced)")
            yield conn

    def claim(self) -> None:
        """Write this server's mark into meta ``writer`` (on the lock session): it is now the writer."""
        with self.connection() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (WRITER_META, self.mark),
            )

    def start_watchdog(self) -> None:
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch, name="lea-writer-lock", daemon=True)
            self._watchdog.start()

    def _ping(self) -> bool:
        try:
            with self._use:
                conn = self._conn
                if conn is None or conn.closed:
                    return False
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def _watch(self) -> None:
        while not self._stop.wait(PING_INTERVAL):
            if self._ping():
                continue
            self.lost = True
            reason = "the PostgreSQL session holding the write lock was lost"
            log.error("%s: writes are fenced until this server gets the lock back", reason)
            self.on_lost(reason)
            self._close_conn()
            if not self._regain():
                return

    def _regain(self) -> bool:
        """Get the lock back after a lost session; True when this server is the writer again."""
        while not self._stop.is_set():
            try:
                conn = self._connect()
            except Exception:
                self._stop.wait(RETRY_INTERVAL * 5)
                continue
            try:
                got = self._try(conn)
                mark = None
                if got:
                    row = conn.execute("SELECT value FROM meta WHERE key = %s", (WRITER_META,)).fetchone()
                    mark = None if row is None else row[0]
            except psycopg.Error:
                conn.close()
                self._stop.wait(RETRY_INTERVAL * 5)
                continue
            if not got:
                conn.close()
                reason = f"another server took the write role of {self.target.url} ({self.holder()})"
                log.error("%s; this server stops", reason)
                self.on_taken(reason)
                return False
            if mark != self.mark:
                conn.close()  # releases the lock again: the other server's state is the database's
                reason = f"another server wrote to {self.target.url} meanwhile (writer {mark})"
                log.error("%s; this server stops", reason)
                self.on_taken(reason)
                return False
            with self._use:
                self._conn = conn
                self.lost = False
            log.warning("got the write lock of %s back: writes resume", self.target.url)
            self.on_regained()
            return True
        return False

    def _close_conn(self) -> None:
        with self._use:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def release(self) -> None:
        """Stop the watchdog and end the session (PostgreSQL releases the lock with it)."""
        self._stop.set()
        watchdog = self._watchdog
        if watchdog is not None and watchdog is not threading.current_thread():
            watchdog.join(5)
        self._close_conn()

