"""In-memory resource state: a ResourceIndex (names, device owners, members) plus undo for the sequencer."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from uuid import UUID

from resources import derived
from resources.cluster import ClusterDescriptor
from resources.index import ResourceIndex
from resources.kinds import PERSISTED_KINDS, ResourceKind
from resources.peer import PeerDescriptor
from resources.resource import AnyResource


class State(ResourceIndex):
    """The manager's working and published state; a ``resources.view.ResourceView`` for the rules."""

    # -- reading ---------------------------------------------------------------------------
    def peer(self, id: UUID) -> PeerDescriptor | None:
        res = self.get(ResourceKind.PEER, id)
        return res if isinstance(res, PeerDescriptor) else None

    def cluster(self, id: UUID) -> ClusterDescriptor | None:
        res = self.get(ResourceKind.CLUSTER, id)
        return res if isinstance(res, ClusterDescriptor) else None

    def all(self, kinds: Iterable[ResourceKind] | None = None) -> Iterator[AnyResource]:
        for kind in kinds if kinds is not None else ResourceKind:
            yield from self.of_kind(kind).values()

    def persisted(self) -> list[AnyResource]:
        return list(self.all(k for k in ResourceKind if k in PERSISTED_KINDS))

    def count(self) -> int:
        return sum(len(self.of_kind(k)) for k in ResourceKind)

    def cluster_members(self, cluster: ClusterDescriptor) -> set[UUID]:
        """The leader and every peer owning one of the cluster's devices (also for a descriptor
        that is not, or no longer, stored: an undeploy may outlive it)."""
        return derived.cluster_member_ids(cluster, self.device_owner)

    def is_deployed(self, cluster_id: UUID) -> bool:
        return derived.is_deployed(self, cluster_id)

    def deployed_clusters(self) -> list[ClusterDescriptor]:
        return derived.deployed_clusters(self)

    # -- writing ---------------------------------------------------------------------------
    def restore(self, kind: ResourceKind, id: UUID, previous: AnyResource | None) -> None:
        """Undo a put or delete: make (kind, id) what it was."""
        if previous is None:
            self.delete(kind, id)
        else:
            self.put(previous)
