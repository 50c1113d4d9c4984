"""Real peers: the AgentPeerBroker, for every peer that is not a demo peer.

Each bench's ``lea-peer`` holds one WebSocket to ``WS /api/v1/peer/connect``
(``backend/server/agents.py`` speaks the protocol of ``resources/agent.py``); the broker keeps the
newest connection of each peer (an older one is closed ``REPLACED``) and turns what the agent says
into events: Online (with its underlay address, version and capabilities) on hello, Offline on
close, bye or silence, and its reports as the peer's PeerConfigurationState.

``configure`` runs on a deployment thread and must not block: it numbers the configuration with
a new ``generation`` (monotonic, seeded from the clock so that no restart reuses one) and hands it
to the connection's event loop with ``call_soon_threadsafe``. A report of an older generation is
dropped: parameter ids are the same for Present and Absent, so a late report of a deploy could
otherwise complete the undeploy that followed it.

Writes go through one writer thread in order, the latest per (peer, what) kept; when storage
refuses them they are retried after a growing pause (``Backoff``), like the demo broker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from backend import actions
from backend.manager import ResourcesManager
from backend.peers.broker import PeerBroker
from backend.peers.scheduler import Scheduler
from resources.agent import AgentHello, AgentReport, CloseCode, Configure
from resources.backoff import Backoff
from resources.cluster import ClusterDescriptor
from resources.configuration import PeerConfiguration, PeerConfigurationState
from resources.derived import device_owners, ordered_member_ids
from resources.errors import LeaError, StorageFailed
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.state import AgentInfo, Offline, Online

log = logging.getLogger(__name__)
ACTOR = "peer-agent"
#: Seconds before the second retry of writes storage refused; doubled per failure up to RETRY_MAX.
RETRY_FIRST = 0.1
RETRY_MAX = 5.0


class AgentLink(ABC):
    """One agent connection as the broker sees it; its methods run on ``loop`` only."""

    loop: asyncio.AbstractEventLoop

    @abstractmethod
    def send(self, text: str) -> None:
        """Queue one message (JSON text) to the agent."""

    @abstractmethod
    def close(self, code: CloseCode, reason: str) -> None:
        """Close the connection with ``code`` (the agent learns why)."""

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the link's loop, from any thread."""
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (shutdown)
            self.loop.call_soon_threadsafe(fn)


@dataclass(eq=False)
class _Session:
    link: AgentLink
    hello: AgentHello
    generation: int = 0  # of the configuration last handed to the link (0: none yet)
    configuration: PeerConfiguration | None = None


class AgentPeerBroker(PeerBroker):
    def __init__(self, manager: ResourcesManager) -> None:
        self._manager = manager
        self._lock = threading.Lock()
        self._sessions: dict[UUID, _Session] = {}
        # Never reused, not even by the next run of the backend: seeded from the clock.
        self._generations = itertools.count(time.time_ns())
        self._scheduler = Scheduler("lea-agent-peers")
        self._stopped = False
        # Writes not made yet, the latest per (peer, what), in order; guarded by _lock.
        self._pending: dict[tuple[UUID, str], Callable[[], None]] = {}
        self._backoff = Backoff(RETRY_FIRST, RETRY_MAX)
        self._retry_due = False
        self._flush_due = False

    # -- PeerBroker ------------------------------------------------------------------------
    def manages(self, peer: PeerDescriptor) -> bool:
        return not peer.demo

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            sessions, self._sessions = list(self._sessions.values()), {}
            self._pending.clear()
        for session in sessions:
            link = session.link
            link.call(functools.partial(link.close, CloseCode.SHUTDOWN, "the backend is shutting down"))
        self._scheduler.stop()

    def wait_idle(self, timeout: float) -> bool:
        return self._scheduler.wait_idle(timeout)

    def configure(self, peer_id: UUID, configuration: PeerConfiguration) -> None:
        with self._lock:
            session = self._sessions.get(peer_id)
            if session is None or self._stopped:
                return  # offline: the agent gets the stored configuration on its next hello
            message = self._numbered(session, configuration)
        link = session.link
        link.call(lambda: link.send(message))

    # -- what the endpoint tells it (on the connection's loop) -----------------------------
    def connected(self, hello: AgentHello, link: AgentLink) -> None:
        """A hello was accepted: this link is the peer's now; an older one is closed REPLACED.

        The peer comes Online, its ``applied`` view becomes its report, and the configuration the
        backend wants it to have (if any) is sent at once."""
        peer_id = hello.peer_id
        session = _Session(link, hello)
        desired = self._manager.get(ResourceKind.PEER_CONFIGURATION, peer_id)
        if desired is None and hello.applied and not self._in_a_deployment(peer_id):
            # It holds a configuration no deployment wants (an undeploy forgotten by a restart of
            # the backend while it was offline): an empty one makes it remove what it owns.
            desired = PeerConfiguration(id=peer_id)
        with self._lock:
            if self._stopped:
                link.close(CloseCode.SHUTDOWN, "the backend is shutting down")
                return
            old = self._sessions.get(peer_id)
            self._sessions[peer_id] = session
            message = self._numbered(session, desired) if isinstance(desired, PeerConfiguration) else None
        if old is not None:
            old_link = old.link
            old_link.call(lambda: old_link.close(CloseCode.REPLACED, "a newer connection for this peer took over"))
        online = Online(
            remote_host=hello.underlay_address, since=datetime.now(UTC),
            agent=AgentInfo(version=hello.agent_version, capabilities=hello.capabilities),
        )
        self._submit(peer_id, "connection", lambda: self._write_connection(peer_id, session, online))
        if hello.applied or desired is not None:
            state = PeerConfigurationState(id=peer_id, parameters=hello.applied)
            self._submit(peer_id, "report", lambda: self._write_report(peer_id, session, None, state))
        if message is not None:
            link.send(message)

    def reported(self, peer_id: UUID, link: AgentLink, report: AgentReport) -> bool:
        """A report; False (and nothing written) when it is of an older generation or an old link."""
        with self._lock:
            session = self._sessions.get(peer_id)
            if session is None or session.link is not link or report.generation != session.generation:
                return False
            generation = session.generation
        state = PeerConfigurationState(id=peer_id, parameters=report.parameters)
        self._submit(peer_id, "report", lambda: self._write_report(peer_id, session, generation, state))
        return True

    def disconnected(self, peer_id: UUID, link: AgentLink) -> None:
        """The link ended (close, bye, silence, error): Offline, unless a newer link took over."""
        with self._lock:
            session = self._sessions.get(peer_id)
            if session is None or session.link is not link:
                return
            del self._sessions[peer_id]
        self._submit(peer_id, "connection", lambda: self._write_connection(peer_id, None, Offline()))

    def is_connected(self, peer_id: UUID) -> bool:
        with self._lock:
            return peer_id in self._sessions

    # -- internals -------------------------------------------------------------------------
    def _in_a_deployment(self, peer_id: UUID) -> bool:
        """Whether a cluster with a (persisted) deployment has the peer as a member: after a restart
        its configuration is not stored yet, but the operator will send it (reconciled, not torn down)."""
        deployed = {r.id for r in self._manager.resources_of(ResourceKind.CLUSTER_DEPLOYMENT)}
        clusters = [
            c for c in self._manager.resources_of(ResourceKind.CLUSTER)
            if isinstance(c, ClusterDescriptor) and c.id in deployed
        ]
        if not clusters:
            return False
        peers = [p for p in self._manager.resources_of(ResourceKind.PEER) if isinstance(p, PeerDescriptor)]
        owners = device_owners(peers)
        return any(peer_id in ordered_member_ids(c, owners) for c in clusters)

    def _numbered(self, session: _Session, configuration: PeerConfiguration) -> str:
        """The configure message with a new generation, now the session's (under _lock)."""
        session.generation = next(self._generations)
        session.configuration = configuration
        return Configure(generation=session.generation, configuration=configuration).model_dump_json()

    def _current(self, peer_id: UUID, session: _Session | None) -> bool:
        """Whether a write made for ``session`` (None: for its absence) is still true."""
        with self._lock:
            return not self._stopped and self._sessions.get(peer_id) is session

    def _write_connection(self, peer_id: UUID, session: _Session | None, state: Online | Offline) -> None:
        if self._current(peer_id, session):
            actions.set_peer_connection_state(self._manager, peer_id, state, ACTOR)

    def _write_report(
        self, peer_id: UUID, session: _Session, generation: int | None, state: PeerConfigurationState
    ) -> None:
        with self._lock:
            if self._stopped or self._sessions.get(peer_id) is not session:
                return
            if generation is not None and generation != session.generation:
                return  # a newer configuration was handed out meanwhile: this one is stale
        actions.set_peer_configuration_state(self._manager, state, ACTOR)

    def _submit(self, peer_id: UUID, what: str, write: Callable[[], None]) -> None:
        with self._lock:
            if self._stopped:
                return
            self._pending[(peer_id, what)] = write
            if self._retry_due or self._flush_due:
                return
            self._flush_due = True
        self._scheduler.call_soon(self._flush)

    def _flush(self) -> None:
        """Make the pending writes in order until storage refuses one (then retry after a pause)."""
        while True:
            with self._lock:
                self._flush_due = False
                if self._stopped or not self._pending:
                    return
                key = next(iter(self._pending))
                write = self._pending.pop(key)
            try:
                write()
            except StorageFailed as exc:
                with self._lock:
                    if self._stopped:
                        return
                    self._pending = {key: write, **self._pending} if key not in self._pending else self._pending
                    first = self._backoff.retries == 0
                    pause = self._backoff.next_delay()
                    self._retry_due = True
                if first:
                    log.info("peer agents: storage refuses their writes (%s); retrying with backoff", exc.message)
                self._scheduler.call_later(pause, self._retry)
                return
            except LeaError as exc:  # the peer was deleted meanwhile, or the backend is closing
                log.debug("peer %s: %s not written: %s", key[0], key[1], exc)
            else:
                with self._lock:
                    recovered = self._backoff.retries > 0
                    self._backoff.reset()
                if recovered:
                    log.info("peer agents: storage accepts their writes again")

    def _retry(self) -> None:
        with self._lock:
            self._retry_due = False
        self._flush()
