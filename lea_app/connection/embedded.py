"""The embedded connection: the backend runs in this process, on the data directory.

Backend calls block (a commit waits for its fsync), so every call runs on a small thread pool;
subscription deliveries wake the asyncio loop through ``backend.subscription.LoopWakeup``. This module
is the only place in lea_app that imports ``backend``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from backend import actions
from backend.backend import Backend, os_actor
from backend.demo import seed_demo
from backend.manager import ResourcesManager
from backend.subscription import LoopWakeup, Subscription
from backend.tokens import Role, TokenStore
from lea_app.connection.base import Connection, ConnectionLost, Delivery, EventStream, Identity, PeerToken
from resources.cluster import ClusterDescriptor
from resources.errors import LeaError
from resources.events import Event, StateSnapshot, WriteResult
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Deliveries an embedded subscriber may queue before it must resync (a 20,000-event burst fits).
EMBEDDED_QUEUE_EVENTS = 200_000


class EmbeddedEventStream(EventStream):
    def __init__(self, subscription: Subscription, loop: asyncio.AbstractEventLoop) -> None:
        self._subscription = subscription
        self._ready = LoopWakeup(subscription, loop)

    async def next(self) -> Delivery:
        while True:
            item = self._subscription.get_nowait()
            if item is not None:
                return item
            if self._subscription.closed:
                raise ConnectionLost("the embedded backend closed the subscription")
            self._ready.clear()
            # Re-check after clearing: a delivery may have arrived in between.
            item = self._subscription.get_nowait()
            if item is not None:
                return item
            await self._ready.wait()

    async def close(self) -> None:
        self._ready.detach()
        self._subscription.close()
        self._ready.set()  # wake a waiting next(): it sees the closed subscription and raises


class EmbeddedConnection(Connection):
    def __init__(
        self, backend: Backend, executor: ThreadPoolExecutor, actor: str, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.backend = backend
        self._loop = loop
        self._executor = executor
        self._actor = actor
        self.data_dir: Path = backend.data_dir.path
        self.description = f"embedded backend on {self.data_dir}"
        self._token_store: TokenStore | None = None  # opened on first use (lea.db of the data dir)

    @classmethod
    async def open(
        cls,
        data_dir: Path | str | None,
        *,
        demo: bool = False,
        agents_listen: tuple[str, int] | None = None,
        agents_tls: tuple[Path | None, Path | None] = (None, None),
        **backend_options: Any,
    ) -> EmbeddedConnection:
        """Open (restore) and start the backend off the UI thread; seed the demo fleet if asked;
        accept bench agents on ``agents_listen`` (host, port) if given (TLS: certificate, key)."""
        executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lea-embedded")
        loop = asyncio.get_running_loop()

        def start() -> Backend:
            backend = Backend(data_dir, **backend_options)
            try:
                backend.start()
                if demo:
                    seed_demo(backend.manager)
                if agents_listen is not None:
                    backend.start_agent_listener(*agents_listen, tls_cert=agents_tls[0], tls_key=agents_tls[1])
            except BaseException:
                backend.close()
                raise
            return backend

        try:
            backend = await loop.run_in_executor(executor, start)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        connection = cls(backend, executor, os_actor(), loop)
        if backend.agent_listener is not None:
            connection.agent_url = backend.agent_listener.url
        return connection

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # The loop the connection was opened on (qasync may not report a running loop during teardown).
        return await self._loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    @property
    def manager(self) -> ResourcesManager:
        return self.backend.manager

    async def subscribe(self, after: int | None = None, epoch: str | None = None) -> EventStream:
        subscription = self.manager.subscribe(after=after, epoch=epoch, max_queued_events=EMBEDDED_QUEUE_EVENTS)
        return EmbeddedEventStream(subscription, self._loop)

    async def fetch_snapshot(self) -> StateSnapshot:
        return await self._call(self.manager.fetch_snapshot)

    async def store_peer_descriptor(
        self, peer: PeerDescriptor, expected_version: int | None = None, create_only: bool = False
    ) -> WriteResult:
        return await self._call(
            actions.store_peer_descriptor, self.manager, peer, self._actor, expected_version, create_only
        )

    async def delete_peer_descriptor(self, peer_id: UUID, expected_version: int | None = None) -> WriteResult:
        return await self._call(actions.delete_peer_descriptor, self.manager, peer_id, self._actor, expected_version)

    async def store_cluster_descriptor(
        self, cluster: ClusterDescriptor, expected_version: int | None = None, create_only: bool = False
    ) -> WriteResult:
        return await self._call(
            actions.store_cluster_descriptor, self.manager, cluster, self._actor, expected_version, create_only
        )

    async def delete_cluster_descriptor(self, cluster_id: UUID, expected_version: int | None = None) -> WriteResult:
        return await self._call(
            actions.delete_cluster_descriptor, self.manager, cluster_id, self._actor, expected_version
        )

    async def store_cluster_deployment(self, cluster_id: UUID) -> WriteResult:
        return await self._call(actions.store_cluster_deployment, self.manager, cluster_id, self._actor)

    async def delete_cluster_deployment(self, cluster_id: UUID) -> WriteResult:
        return await self._call(actions.delete_cluster_deployment, self.manager, cluster_id, self._actor)

    async def history(self, kind: ResourceKind, resource_id: UUID) -> list[Event]:
        def read() -> list[Event]:
            return list(self.backend.store.read_events(kind=kind, resource_id=resource_id))

        return await self._call(read)

    async def events(self, after: int = 0, limit: int = 200) -> list[Event]:
        def read() -> list[Event]:
            return list(self.backend.store.read_events(after=after, limit=limit))

        return await self._call(read)

    async def whoami(self) -> Identity:
        return Identity(name=self._actor, role="admin")

    demo_controls = True

    async def set_demo_peer_online(self, peer_id: UUID, online: bool) -> None:
        peer = self.manager.get(ResourceKind.PEER, peer_id)
        if not isinstance(peer, PeerDescriptor) or not peer.demo:
            raise LeaError("only demo benches can be switched on and off")
        await self._call(self.backend.demo_peers.set_online, peer_id, online)

    # -- bench tokens: the data directory's lea.db, as for `lea-backend serve` --------------------
    def _tokens(self) -> TokenStore:
        if self._token_store is None:
            self._token_store = TokenStore(self.backend.data_dir.db_path)
        return self._token_store

    async def create_peer_token(self, peer_id: UUID, name: str) -> str:
        return await self._call(lambda: self._tokens().create(name, Role.PEER, peer_id))

    async def peer_tokens(self) -> list[PeerToken]:
        def read() -> list[PeerToken]:
            return [
                PeerToken(name=t.name, peer_id=t.peer_id, created_at=t.created_at)
                for t in self._tokens().list()
                if t.role is Role.PEER and t.peer_id is not None
            ]

        return await self._call(read)

    async def revoke_token(self, name: str) -> None:
        await self._call(lambda: self._tokens().revoke(name))

    async def close(self) -> None:
        try:
            if self._token_store is not None:
                await self._call(self._token_store.close)
            await self._call(self.backend.close)
        finally:
            self._executor.shutdown(wait=True)
