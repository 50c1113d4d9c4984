"""The embedded backend as LEA's own child process: ``lea-backend serve --child`` (issue #13).

LEA starts the child, hands it a fresh random session token on its stdin (never on the command
line), waits for its one ready line and then talks to it with the remote connection - the only
connection there is; nothing of ``backend`` runs in LEA's interpreter. The child exits cleanly
when LEA closes it (SIGTERM: final checkpoint) and on its own when its stdin closes (LEA died).
If the child dies, ``ChildConnection`` says so, starts a new one with backoff, and the sync
engine resumes against it (a new epoch: resync, the views keep their rows).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from lea_app.connection.base import Connection, ConnectionLost, EventStream, Identity, PeerToken
from lea_app.connection.process import BackendProcess, ChildOptions, describe_exit, outcome
from lea_app.connection.remote import RemoteConnection
from resources.backoff import Backoff
from resources.cluster import ClusterDescriptor
from resources.errors import LeaError
from resources.events import Event, StateSnapshot, WriteResult
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor

log = logging.getLogger(__name__)
#: A child that ran this long before dying is restarted at once again (its backoff starts over).
HEALTHY_SECONDS = 30.0


class ChildConnection(Connection):
    """The remote connection to LEA's own backend process, which it starts, watches and restarts."""

    demo_controls = True
    address = ""  # the connection dialog's "this computer"

    def __init__(
        self, options: ChildOptions, *, restart_backoff: Backoff | None = None, process: BackendProcess | None = None
    ) -> None:
        """Start the child (or adopt ``process``, started already with these options)."""
        self.options = options
        self.data_dir = options.data_dir
        #: (level, text) for the window's message bar and status bar: the child died, is back.
        self.on_status: Callable[[str, str], None] | None = None
        self._backoff = restart_backoff or Backoff(first=0.5, maximum=30.0)
        self._process: BackendProcess = process or BackendProcess.spawn(options)
        self._remote: RemoteConnection | None = None
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self.restarts = 0

    @classmethod
    def spawn(cls, options: ChildOptions, **kwargs: Any) -> ChildConnection:
        """Start the child at once; ``await ready()`` before using the connection."""
        return cls(options, **kwargs)

    @classmethod
    async def open(cls, options: ChildOptions, **kwargs: Any) -> ChildConnection:
        return await cls.spawn(options, **kwargs).ready()

    async def ready(self) -> ChildConnection:
        """Wait for the child's ready line, connect, and from then on watch the process."""
        try:
            await self._connect(self._process)
        except BaseException:
            self._closing = True
            await self._process.stop()
            raise
        self._supervisor = asyncio.ensure_future(self._supervise())
        return self

    async def _connect(self, process: BackendProcess) -> None:
        info = await process.wait_ready()
        remote = RemoteConnection(info.url, process.token)
        try:
            await remote.whoami()
        except BaseException:
            await remote.close()
            raise
        self._remote = remote

    # -- what the About box and the status bar say ---------------------------------------------
    @property
    def process(self) -> BackendProcess:
        return self._process

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def description(self) -> str:  # type: ignore[override]
        info = self._process.info
        if self._remote is None or info is None:
            return f"embedded backend (process {self._process.pid}, starting)"
        return f"embedded backend (process {info.pid} on {info.url}, lea-backend {info.version})"

    @property
    def agent_url(self) -> str | None:  # type: ignore[override]
        info = self._process.info
        return info.agent_url if info is not None and self._remote is not None else None

    def _status(self, level: str, text: str) -> None:
        log.log(logging.ERROR if level == "error" else logging.INFO, "%s", text)
        if self.on_status is not None:
            self.on_status(level, text)

    # -- the child's life ------------------------------------------------------------------------
    async def _supervise(self) -> None:
        while not self._closing:
            process = self._process
            status = await outcome(process.exited)
            if self._closing:
                return
            lived = time.monotonic() - process.started_at
            remote, self._remote = self._remote, None
            if remote is not None:
                await remote.close()
            if lived > HEALTHY_SECONDS:
                self._backoff.reset()
            self._status(
                "error",
                f"The embedded backend process {process.pid} stopped unexpectedly ({describe_exit(status)}): "
                "restarting it; LEA is read-only meanwhile.",
            )
            await self._restart()

    async def _restart(self) -> None:
        while not self._closing:
            await asyncio.sleep(self._backoff.next_delay())
            if self._closing:
                return
            try:
                self._process = BackendProcess.spawn(self.options)
                await self._connect(self._process)
            except Exception as exc:  # whatever it is, keep trying: a dead supervisor would leave LEA offline
                if not isinstance(exc, LeaError | ConnectionLost):
                    log.exception("restarting the embedded backend failed")
                message = exc.message if isinstance(exc, LeaError) else str(exc)
                self._status("error", f"The embedded backend could not be restarted: {message} (retrying)")
                if self._process.alive():
                    await self._process.stop()
                continue
            self.restarts += 1
            self._status("info", f"The embedded backend was restarted (process {self._process.pid}).")
            return

    def _current(self) -> RemoteConnection:
        if self._remote is None:
            raise ConnectionLost("the embedded backend is restarting")
        return self._remote

    async def close(self) -> None:
        """Stop the child cleanly (final checkpoint) and wait for it."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        remote, self._remote = self._remote, None
        try:
            if remote is not None:
                await remote.close()
        finally:
            await self._process.stop()

    # -- Connection: the current child's remote connection ---------------------------------------
    async def subscribe(self, after: int | None = None, epoch: str | None = None) -> EventStream:
        return await self._current().subscribe(after, epoch)

    async def fetch_snapshot(self) -> StateSnapshot:
        return await self._current().fetch_snapshot()

    async def store_peer_descriptor(
        self, peer: PeerDescriptor, expected_version: int | None = None, create_only: bool = False
    ) -> WriteResult:
        return await self._current().store_peer_descriptor(peer, expected_version, create_only)

    async def delete_peer_descriptor(self, peer_id: UUID, expected_version: int | None = None) -> WriteResult:
        return await self._current().delete_peer_descriptor(peer_id, expected_version)

    async def store_cluster_descriptor(
        self, cluster: ClusterDescriptor, expected_version: int | None = None, create_only: bool = False
    ) -> WriteResult:
        return await self._current().store_cluster_descriptor(cluster, expected_version, create_only)

    async def delete_cluster_descriptor(self, cluster_id: UUID, expected_version: int | None = None) -> WriteResult:
        return await self._current().delete_cluster_descriptor(cluster_id, expected_version)

    async def store_cluster_deployment(self, cluster_id: UUID) -> WriteResult:
        return await self._current().store_cluster_deployment(cluster_id)

    async def delete_cluster_deployment(self, cluster_id: UUID) -> WriteResult:
        return await self._current().delete_cluster_deployment(cluster_id)

    async def history(self, kind: ResourceKind, resource_id: UUID) -> list[Event]:
        return await self._current().history(kind, resource_id)

    async def events(self, after: int = 0, limit: int = 200) -> list[Event]:
        return await self._current().events(after, limit)

    async def whoami(self) -> Identity:
        return await self._current().whoami()

    async def set_demo_peer_online(self, peer_id: UUID, online: bool) -> None:
        await self._current().set_demo_peer_online(peer_id, online)

    async def create_peer_token(self, peer_id: UUID, name: str) -> str:
        return await self._current().create_peer_token(peer_id, name)

    async def peer_tokens(self) -> list[PeerToken]:
        return await self._current().peer_tokens()

    async def revoke_token(self, name: str) -> None:
        await self._current().revoke_token(name)
