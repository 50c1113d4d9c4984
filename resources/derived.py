"""Facts derived from resources rather than stored (the same answer in backend, CLI and LEA)."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from resources.cluster import ClusterDescriptor
from resources.peer import PeerDescriptor


def cluster_member_ids(cluster: ClusterDescriptor, device_owner: dict[UUID, UUID]) -> set[UUID]:
    """The leader and every peer owning one of the cluster's devices."""
    return {cluster.leader} | {device_owner[d] for d in cluster.devices if d in device_owner}


def device_owners(peers: Iterable[PeerDescriptor]) -> dict[UUID, UUID]:
    return {d.id: p.id for p in peers for d in p.devices}


def blocking_clusters(
    peers: Iterable[PeerDescriptor], clusters: Iterable[ClusterDescriptor], deployed: Iterable[UUID]
) -> dict[UUID, ClusterDescriptor]:
    """Peer id -> the deployed cluster it belongs to (such a peer is blocked for other clusters)."""
    owners = device_owners(peers)
    deployed_ids = set(deployed)
    blocked: dict[UUID, ClusterDescriptor] = {}
    for cluster in clusters:
        if cluster.id in deployed_ids:
            for member in cluster_member_ids(cluster, owners):
                blocked.setdefault(member, cluster)
    return blocked
