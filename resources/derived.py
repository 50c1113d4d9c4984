"""Facts derived from resources rather than stored (the same answer in backend, CLI and LEA).

The formulas take plain resources; the facts about a whole state take a ``ResourceView`` and read
its indexes, so the backend's State and LEA's Store answer them alike and cheaply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from uuid import UUID

from resources.cluster import ClusterDescriptor
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.view import ResourceView

#: Who owns a device: a mapping device id -> peer id, or a lookup such as ``ResourceView.device_owner``.
DeviceOwner = Mapping[UUID, UUID] | Callable[[UUID], UUID | None]


def cluster_member_ids(cluster: ClusterDescriptor, device_owner: DeviceOwner) -> set[UUID]:
    """The leader and every peer owning one of the cluster's devices."""
    owner_of = device_owner.get if isinstance(device_owner, dict | Mapping) else device_owner  # (dict: fast)
    members = {cluster.leader}
    for device in cluster.devices:
        owner = owner_of(device)
        if owner is not None:
            members.add(owner)
    return members


def ordered_member_ids(cluster: ClusterDescriptor, device_owner: DeviceOwner) -> list[UUID]:
    """The members in the deployment's order: the leader first, then the others by id."""
    others = sorted(cluster_member_ids(cluster, device_owner) - {cluster.leader}, key=str)
    return [cluster.leader, *others]


def device_owners(peers: Iterable[PeerDescriptor]) -> dict[UUID, UUID]:
    """Device id -> id of the peer that has it (for a handful of peers outside a view)."""
    return {d.id: p.id for p in peers for d in p.devices}


def is_deployed(view: ResourceView, cluster_id: UUID) -> bool:
    """"Deployed" means a ClusterDeployment exists (DESIGN section 3)."""
    return cluster_id in view.of_kind(ResourceKind.CLUSTER_DEPLOYMENT)


def clusters_by_name(view: ResourceView, ids: Iterable[UUID]) -> list[ClusterDescriptor]:
    """The stored clusters among ``ids``, sorted by name (the order messages use)."""
    found = (view.get(ResourceKind.CLUSTER, id) for id in ids)
    return sorted((c for c in found if isinstance(c, ClusterDescriptor)), key=lambda c: c.name)


def deployed_clusters(view: ResourceView) -> list[ClusterDescriptor]:
    """Every deployed cluster whose descriptor exists, by name."""
    return clusters_by_name(view, view.of_kind(ResourceKind.CLUSTER_DEPLOYMENT))


def deployed_clusters_of_peer(view: ResourceView, peer_id: UUID) -> list[ClusterDescriptor]:
    """The deployed clusters the peer is a member of, by name (at most one while the rules hold)."""
    clusters = view.clusters_of_peer(peer_id)
    if not clusters:  # most peers, on every write of one: no generators, no sort
        return []
    deployed = view.of_kind(ResourceKind.CLUSTER_DEPLOYMENT)
    return clusters_by_name(view, (c for c in clusters if c in deployed))


def blocking_cluster(view: ResourceView, peer_id: UUID) -> ClusterDescriptor | None:
    """The deployed cluster the peer belongs to (it blocks the peer for other clusters), or None."""
    found = deployed_clusters_of_peer(view, peer_id)
    return found[0] if found else None


def blocked_peers(view: ResourceView) -> dict[UUID, ClusterDescriptor]:
    """Peer id -> ``blocking_cluster`` of that peer, for every peer some deployed cluster blocks."""
    blocked: dict[UUID, ClusterDescriptor] = {}
    for cluster_id in view.of_kind(ResourceKind.CLUSTER_DEPLOYMENT):
        cluster = view.get(ResourceKind.CLUSTER, cluster_id)
        if isinstance(cluster, ClusterDescriptor):
            for peer_id in view.members(cluster_id):
                other = blocked.get(peer_id)
                if other is None or cluster.name < other.name:  # the first by name, as blocking_cluster
                    blocked[peer_id] = cluster
    return blocked


def cluster_names(view: ResourceView, ids: Iterable[UUID]) -> list[str]:
    """The names of these clusters (the id of one that does not exist), sorted."""
    return _names(view, ResourceKind.CLUSTER, ids)


def peer_names(view: ResourceView, ids: Iterable[UUID]) -> list[str]:
    """The names of these peers (the id of one that does not exist), sorted."""
    return _names(view, ResourceKind.PEER, ids)


def _names(view: ResourceView, kind: ResourceKind, ids: Iterable[UUID]) -> list[str]:
    names = []
    for id in ids:
        resource = view.get(kind, id)
        names.append(resource.name if isinstance(resource, PeerDescriptor | ClusterDescriptor) else str(id))
    return sorted(names)
