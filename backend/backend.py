"""The backend on a data directory: lock, storage, manager with its rules; start and close.

Embedded LEA, the server and the admin CLI all open the backend through this one path.
"""

from __future__ import annotations

import getpass
import logging
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from backend import rules
from backend.datadir import DataDir, DataDirLock
from backend.manager import ResourcesManager
from backend.operators.cluster_deployment import ClusterDeploymentOperator
from backend.peers.agent import AgentPeerBroker
from backend.peers.broker import Brokers
from backend.peers.demo import DemoFaults, DemoPeerBroker
from backend.settings import Settings, load_settings
from backend.storage.base import EventStore
from backend.storage.pg_target import PostgresTarget
from backend.stores import StoreTarget, open_event_store, open_token_store, resolve_store
from backend.tokens import TokenStore

if TYPE_CHECKING:
    from backend.server.agent_listener import AgentListener
    from backend.writer_lock import WriterLock

log = logging.getLogger(__name__)


def os_actor() -> str:
    """The actor recorded for changes made in-process: the OS user."""
    try:
        return getpass.getuser()
    except Exception:
        return "local"


class Backend:
    """Opens ``DATA_DIR`` for writing (exclusive lock), restores the manager, and closes it cleanly."""

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        demo_delay_scale: float = 1.0,
        demo_seed: int = 0,
        demo_faults: DemoFaults | None = None,
        store: PostgresTarget | str | None = None,
        writer: WriterLock | None = None,
        **setting_overrides: Any,
    ) -> None:
        """``store``: a PostgreSQL store (a URL, or a target with its password file) instead of the
        data directory's ``lea.db``; else the ``store`` setting (lea.toml) decides (backend/stores.py).

        On PostgreSQL the backend holds the database's write lock (backend/writer_lock.py): ``writer``
        is one already held (a standby that just got it), else it is taken now or refused."""
        self.data_dir = DataDir(data_dir)
        if isinstance(store, str):
            setting_overrides["store"] = store
        self.settings: Settings = load_settings(self.data_dir.path, **setting_overrides)
        self.target: StoreTarget = store if isinstance(store, PostgresTarget) else resolve_store(
            self.data_dir, self.settings
        )
        self.data_dir.ensure()
        self._lock: DataDirLock = self.data_dir.lock().acquire()
        self.writer: WriterLock | None = None
        try:
            if self.target is not None:
                from backend.writer_lock import WriterLock  # (psycopg: only for a PostgreSQL store)

                self.writer = (
                    writer if writer is not None else WriterLock(self.target, self.settings.durability).acquire()
                )
            self.store: EventStore = open_event_store(
                self.data_dir, self.target, durability=self.settings.durability
            )
        except BaseException:
            if self.writer is not None:
                self.writer.release()
            self._lock.release()
            raise
        self.manager = ResourcesManager(self.store, self.settings, rules=rules.check)
        try:
            if self.writer is not None:
                from backend.storage.postgres import PostgresEventStore

                assert isinstance(self.store, PostgresEventStore)
                # Writes go through the lock's session; the mark says this server is the writer now
                # (before the restore: whatever the previous writer committed is read below).
                self.store.writer = self.writer.connection
                self.writer.claim()
                self.writer.on_lost = self.manager.fence
                self.writer.on_regained = self.manager.unfence
            self.manager.restore()
        except BaseException:
            self.store.close()
            if self.writer is not None:
                self.writer.release()
            self._lock.release()
            raise
        # Operators and brokers subscribe now, before the manager accepts writes.
        self.demo_peers = DemoPeerBroker(
            self.manager, seed=demo_seed, delay_scale=demo_delay_scale, faults=demo_faults
        )
        self.agent_peers = AgentPeerBroker(self.manager)
        self.brokers = Brokers([self.demo_peers, self.agent_peers])
        self.operator = ClusterDeploymentOperator(self.manager, self.brokers, self.settings.deploy_timeout)
        self._started = False
        self.agent_listener: AgentListener | None = None

    def start_agent_listener(
        self,
        host: str,
        port: int,
        *,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        insecure_http: bool = False,
    ) -> str:
        """Accept bench agents on ``host:port`` (the embedded backend; off by default); returns the URL
        ``lea-peer run --backend`` takes. ``lea-backend serve`` has the endpoint on its own port."""
        from backend.server.agent_listener import AgentListener  # the server stack only when asked for

        if self.agent_listener is None:
            self.agent_listener = AgentListener(
                self, host, port, tls_cert=tls_cert, tls_key=tls_key, insecure_http=insecure_http
            ).start()
        return self.agent_listener.url

    def open_tokens(self) -> TokenStore:
        """The token table of this backend's store (the caller closes it)."""
        return open_token_store(self.data_dir, self.target)

    @property
    def store_name(self) -> str:
        """What the store is, for messages: the data directory, or the PostgreSQL URL."""
        return self.target.url if self.target is not None else str(self.data_dir.path)

    def start(self) -> Backend:
        """Accept writes, then start the operators and peer brokers."""
        self.manager.start()
        self.operator.start()
        self.brokers.start()
        if self.writer is not None:
            self.writer.start_watchdog()
        self._started = True
        return self

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """A barrier for tests and benchmarks: wait until the operators and peer brokers have
        handled every event up to the published revision and have nothing left to do, with no
        write of theirs since. True when reached within ``timeout``; False otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            # Read under the publish lock: every delivery up to it has been offered by then.
            revision = self.manager.read(lambda _state: self.manager.revision)
            parts = [self.operator.wait_idle, *(b.wait_idle for b in self.brokers.brokers)]
            for wait in parts:
                if not wait(max(deadline - time.monotonic(), 0.0)):
                    return False
            if self.manager.revision == revision:
                return True

    def close(self) -> None:
        """Stop brokers and operators (no event after this), then the manager (final checkpoint)."""
        try:
            if self.agent_listener is not None:
                self.agent_listener.stop()  # first: no agent connects to a closing backend
            self.brokers.stop()
            self.operator.stop()
            self.manager.close()
        finally:
            self.store.close()
            if self.writer is not None:
                self.writer.release()  # the session ends: a standby takes over
            self._lock.release()

    def __enter__(self) -> Backend:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
