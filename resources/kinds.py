"""The one enum of canonical resource kind names (used in events, the CLI and URLs)."""

from __future__ import annotations

from enum import StrEnum


class ResourceKind(StrEnum):
    PEER = "peer"
    CLUSTER = "cluster"
    CLUSTER_DEPLOYMENT = "cluster_deployment"
    PEER_CONNECTION_STATE = "peer_connection_state"
    CLUSTER_STATE = "cluster_state"
    PEER_CONFIGURATION = "peer_configuration"
    PEER_CONFIGURATION_STATE = "peer_configuration_state"

    @property
    def persisted(self) -> bool:
        """True for kinds whose changes are stored as events; volatile kinds are only broadcast."""
        return self in PERSISTED_KINDS


PERSISTED_KINDS: frozenset[ResourceKind] = frozenset(
    {ResourceKind.PEER, ResourceKind.CLUSTER, ResourceKind.CLUSTER_DEPLOYMENT}
)
VOLATILE_KINDS: frozenset[ResourceKind] = frozenset(ResourceKind) - PERSISTED_KINDS


def history_kinds(kind: ResourceKind) -> tuple[ResourceKind, ...]:
    """The stored kinds that make up the history of a resource of ``kind``: a cluster's history
    holds its deployment's events too (a ClusterDeployment has the cluster's id), so who deployed
    and undeployed it, and when, is in it."""
    if kind == ResourceKind.CLUSTER:
        return (ResourceKind.CLUSTER, ResourceKind.CLUSTER_DEPLOYMENT)
    return (kind,)
