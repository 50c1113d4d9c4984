"""What a deployment step asks to be written; the runner submits each through an action."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from resources.configuration import PeerConfiguration
from resources.state import ClusterStatus


@dataclass(frozen=True)
class PublishState:
    """``set_cluster_state``: show ``status`` as the cluster's state."""

    status: ClusterStatus


@dataclass(frozen=True)
class Configure:
    """``set_peer_configuration``, then hand the configuration to the peer's broker."""

    configuration: PeerConfiguration


@dataclass(frozen=True)
class ClearPeers:
    """``clear_peer_configurations``: the peers are free again (undeployed)."""

    peers: tuple[UUID, ...]


Write = PublishState | Configure | ClearPeers
