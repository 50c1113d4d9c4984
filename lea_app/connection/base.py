"""The async connection interface of DESIGN section 9; the remote connection implements it (the
embedded backend is a child process it talks to: child.py).

Nothing else in LEA knows which backend it talks to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from resources.cluster import ClusterDescriptor
from resources.errors import LeaError
from resources.events import Event, StateSnapshot, WriteResult
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.wire import EventBatch, Hello, Resync

Delivery = Hello | EventBatch | Resync


class ConnectionLost(Exception):
    """The event stream or a request lost the backend; the sync engine resumes."""


@dataclass(frozen=True)
class Identity:
    name: str
    role: str  # viewer | editor | admin

    @property
    def can_write(self) -> bool:
        return self.role in ("editor", "admin")


@dataclass(frozen=True)
class PeerToken:
    """A bench's token as LEA lists it (the secret itself is shown once, when created)."""

    name: str
    peer_id: UUID
    created_at: str


class EventStream(ABC):
    """One subscription: a Hello first, then EventBatch per transaction, or Resync."""

    @abstractmethod
    async def next(self) -> Delivery:
        """The next delivery. Raises ConnectionLost when the stream ends or breaks."""

    @abstractmethod
    async def close(self) -> None: ...


class Connection(ABC):
    #: One line for the About box and the status bar, e.g. "embedded backend".
    description: str = ""
    #: Where the backend is, as the connection dialog shows it ("https://host:8421"); "" when embedded.
    address: str = ""
    #: True when this backend simulates demo benches that LEA may switch on and off.
    demo_controls: bool = False
    #: Set by the controller: (level, text) when the backend itself changes state - the embedded
    #: backend's process died and is being restarted, or is back (lea_app/connection/child.py).
    on_status: Callable[[str, str], None] | None = None

    async def set_demo_peer_online(self, peer_id: UUID, online: bool) -> None:
        """Demo simulation only: switch a demo bench on or off."""
        raise LeaError("this backend does not let LEA switch demo benches on or off")

    #: The URL a bench's ``lea-peer run --backend`` uses; None while this backend accepts no agents
    #: (the embedded backend accepts them only when the user enables it).
    agent_url: str | None = None

    async def create_peer_token(self, peer_id: UUID, name: str) -> str:
        """Create a ``peer`` token bound to ``peer_id`` (Set up bench); returns the secret."""
        raise LeaError("this backend does not accept bench agents")

    async def peer_tokens(self) -> list[PeerToken]:
        """Every bench token (name, peer, created)."""
        raise LeaError("this backend does not accept bench agents")

    async def revoke_token(self, name: str) -> None:
        """Revoke a token by name; a bench connected with it is disconnected at once."""
        raise LeaError("this backend does not accept bench agents")

    @abstractmethod
    async def subscribe(self, after: int | None = None, epoch: str | None = None) -> EventStream: ...

    @abstractmethod
    async def fetch_snapshot(self) -> StateSnapshot: ...

    @abstractmethod
    async def store_peer_descriptor(
        self, peer: PeerDescriptor, expected_version: int | None = None, create_only: bool = False
    ) -> WriteResult: ...

    @abstractmethod
    async def delete_peer_descriptor(self, peer_id: UUID, expected_version: int | None = None) -> WriteResult: ...

    @abstractmethod
    async def store_cluster_descriptor(
        self, cluster: ClusterDescriptor, expected_version: int | None = None, create_only: bool = False
    ) -> WriteResult: ...

    @abstractmethod
    async def delete_cluster_descriptor(
        self, cluster_id: UUID, expected_version: int | None = None
    ) -> WriteResult: ...

    @abstractmethod
    async def store_cluster_deployment(self, cluster_id: UUID) -> WriteResult: ...

    @abstractmethod
    async def delete_cluster_deployment(self, cluster_id: UUID) -> WriteResult: ...

    @abstractmethod
    async def history(self, kind: ResourceKind, resource_id: UUID) -> list[Event]: ...

    @abstractmethod
    async def events(self, after: int = 0, limit: int = 200) -> list[Event]: ...

    @abstractmethod
    async def whoami(self) -> Identity: ...

    @abstractmethod
    async def close(self) -> None: ...
