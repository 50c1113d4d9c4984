"""The one bridge between views and the backend: runs connection calls as asyncio tasks and
reports success, failure and sync state back to the UI (views never block)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from PySide6.QtCore import QObject, Signal

from lea_app.connection.base import Connection, Identity
from lea_app.sync.engine import SyncEngine, SyncState
from lea_app.sync.store import Store
from resources.errors import LeaError

log = logging.getLogger(__name__)
T = TypeVar("T")


class Controller(QObject):
    sync_state_changed = Signal(str)
    #: level ("info" | "error"), text
    message = Signal(str, str)
    identity_changed = Signal()
    #: level, text: the backend process itself stopped or is back (the status bar shows it)
    backend_status = Signal(str, str)

    def __init__(self, store: Store | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store or Store()
        self._connection: Connection | None = None
        self._engine: SyncEngine | None = None
        self.identity = Identity(name="", role="viewer")
        self._sync_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: When LEA stopped being live (local time), while it is not: what the views show is as of then.
        self.stale_since: datetime | None = None
        self._was_live = False

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            raise LeaError("not connected to a backend yet")
        return self._connection

    @property
    def engine(self) -> SyncEngine:
        if self._engine is None:
            raise LeaError("not connected to a backend yet")
        return self._engine

    @property
    def connected(self) -> bool:
        return self._connection is not None

    async def start(self, connection: Connection) -> None:
        """Use ``connection`` from now on: learn who we are, then sync (SYNCING -> LIVE)."""
        self._connection = connection
        connection.on_status = self._backend_status
        self._engine = SyncEngine(connection, self.store)
        self._engine.on_state(self._sync_state)
        self._engine.on_error(
            lambda exc: self.message.emit("error", f"Cannot sync with the backend: {exc.message} (retrying)")
        )
        self.identity = await connection.whoami()
        self.identity_changed.emit()
        self._sync_task = asyncio.ensure_future(self.engine.run())

    def _sync_state(self, state: SyncState) -> None:
        if state == SyncState.LIVE:
            self.stale_since = None
        elif self.stale_since is None and self._was_live:  # it had been live: what it shows ages from now
            self.stale_since = datetime.now().astimezone()
        self._was_live = self._was_live or state == SyncState.LIVE
        self.sync_state_changed.emit(state.value)

    @property
    def stale(self) -> bool:
        """Not live, showing what the store last heard (greyed in the views, "as of" its time)."""
        return self.stale_since is not None

    def as_of_text(self) -> str:
        """"as of 07:12:03" while stale, else ""."""
        return f"as of {self.stale_since:%H:%M:%S}" if self.stale_since is not None else ""

    def _backend_status(self, level: str, text: str) -> None:
        self.message.emit(level, text)
        self.backend_status.emit(level, text)

    @property
    def live(self) -> bool:
        return self._engine is not None and self._engine.state == SyncState.LIVE

    @property
    def can_write(self) -> bool:
        """Write controls are enabled only for editors and admins while connected and in sync."""
        return self.identity.can_write and self.live

    @property
    def can_admin(self) -> bool:
        """Managing tokens (Set up bench, revoke) is for admins, while connected and in sync."""
        return self.identity.role == "admin" and self.live

    def write_refusal(self, what: str) -> str | None:
        """Why this user cannot do ``what`` (a write, e.g. "deploying") now, as a tooltip's sentence;
        None when they can."""
        if not self.connected:
            return f"Not connected to a backend: {what} waits for a connection"
        if not self.identity.can_write:
            return (
                f"Read-only: {what} needs an editor or admin token; "
                f"{self.identity.name or 'this token'} is a {self.identity.role}"
            )
        if not self.live:
            return f"Read-only until LEA is in sync with the backend again: {what} waits for it"
        return None

    def admin_refusal(self, what: str) -> str | None:
        """Why this user cannot do ``what`` (an admin's write, e.g. creating a token) now; None when they can."""
        refusal = self.write_refusal(what)
        if refusal is None and self.identity.role != "admin":
            return f"{what[:1].upper()}{what[1:]} needs an admin token; {self.identity.name} is an {self.identity.role}"
        return refusal

    def run(
        self,
        make: Callable[[], Awaitable[T]],
        *,
        success: str | None = None,
        on_done: Callable[[T], None] | None = None,
        on_error: Callable[[LeaError], None] | None = None,
    ) -> asyncio.Task[None]:
        """Run a connection call in the background; errors become a visible message (or on_error)."""

        async def wrapper() -> None:
            try:
                result = await make()
            except LeaError as exc:
                log.info("refused: %s (%s)", exc.message, exc.code)
                if on_error is not None:
                    on_error(exc)
                else:
                    self.message.emit("error", exc.message)
                return
            except Exception as exc:
                log.exception("backend call failed")
                error = LeaError(f"unexpected error: {exc}")
                if on_error is not None:
                    on_error(error)
                else:
                    self.message.emit("error", error.message)
                return
            if success:
                self.message.emit("info", success)
            if on_done is not None:
                on_done(result)

        task = asyncio.ensure_future(wrapper())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def deploy(self, cluster_id: UUID, name: str) -> None:
        self.run(
            lambda: self.connection.store_cluster_deployment(cluster_id), success=f"Deployment of '{name}' requested"
        )

    def undeploy(self, cluster_id: UUID, name: str) -> None:
        self.run(
            lambda: self.connection.delete_cluster_deployment(cluster_id),
            success=f"Undeployment of '{name}' requested",
        )

    async def switch(self, connection: Connection) -> None:
        """Use another backend; the store is kept and the new snapshot is diffed into it."""
        await self.close()
        await self.start(connection)

    async def close(self) -> None:
        if self._engine is None or self._connection is None:
            return
        await self._engine.stop()
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # shutting down
                await self._sync_task
        for task in list(self._tasks):
            task.cancel()
        connection, self._connection, self._engine = self._connection, None, None
        await connection.close()
