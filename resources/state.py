"""Volatile resources: broadcast like any change, never written to storage, rebuilt after a restart."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from resources.agent import Capabilities
from resources.base import Model, ResourceBase
from resources.kinds import ResourceKind


class Offline(Model):
    status: Literal["offline"] = "offline"


class AgentInfo(Model):
    """What a real peer's agent announced in its hello (demo peers have none)."""

    version: str
    capabilities: Capabilities = Field(default_factory=Capabilities)


class Online(Model):
    status: Literal["online"] = "online"
    remote_host: str
    since: datetime
    agent: AgentInfo | None = None


ConnectionStatus = Annotated[Offline | Online, Field(discriminator="status")]


class PeerConnectionState(ResourceBase):
    """Whether a peer is connected; its id is the peer's id."""

    kind: Literal[ResourceKind.PEER_CONNECTION_STATE] = ResourceKind.PEER_CONNECTION_STATE
    state: ConnectionStatus = Field(default_factory=Offline)

    @property
    def online(self) -> bool:
        return isinstance(self.state, Online)


class Progress(Model):
    done: int = Field(ge=0)
    total: int = Field(ge=0)


class Undeployed(Model):
    status: Literal["undeployed"] = "undeployed"


class Waiting(Model):
    status: Literal["waiting"] = "waiting"
    reason: str
    peers: tuple[UUID, ...] = ()


class Deploying(Model):
    status: Literal["deploying"] = "deploying"
    done: int = Field(ge=0)
    total: int = Field(ge=0)
    peers: dict[UUID, Progress] = Field(default_factory=dict, description="Progress per member peer.")


class Deployed(Model):
    """Every member reported its configuration applied. Degraded: some members went offline since
    (``peers``, named in ``reason``); what they had is not known until they are back."""

    status: Literal["deployed"] = "deployed"
    health: Literal["healthy", "degraded"] = "healthy"
    reason: str = ""
    peers: tuple[UUID, ...] = ()


class Undeploying(Model):
    status: Literal["undeploying"] = "undeploying"
    done: int = Field(ge=0)
    total: int = Field(ge=0)
    #: Agent-managed benches that still hold the configuration because they are offline: the
    #: removal completes when they reconnect (and receive the Absent configuration).
    waiting_for: tuple[UUID, ...] = ()


class Failed(Model):
    status: Literal["failed"] = "failed"
    peer: UUID | None = None
    parameter: UUID | None = None
    reason: str


ClusterStatus = Annotated[
    Undeployed | Waiting | Deploying | Deployed | Undeploying | Failed, Field(discriminator="status")
]


class ClusterState(ResourceBase):
    """Where a cluster's deployment stands; its id is the cluster's id."""

    kind: Literal[ResourceKind.CLUSTER_STATE] = ResourceKind.CLUSTER_STATE
    state: ClusterStatus = Field(default_factory=Undeployed)
