"""In-memory resource state with the indexes the rules need (names, device owners, references)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from uuid import UUID

from resources.cluster import ClusterDescriptor
from resources.kinds import PERSISTED_KINDS, ResourceKind
from resources.peer import PeerDescriptor
from resources.resource import AnyResource

_NAMED = (ResourceKind.PEER, ResourceKind.CLUSTER)


class State:
    def __init__(self) -> None:
        self._by_kind: dict[ResourceKind, dict[UUID, AnyResource]] = {k: {} for k in ResourceKind}
        self._names: dict[ResourceKind, dict[str, UUID]] = {k: {} for k in _NAMED}
        self.device_owner: dict[UUID, UUID] = {}
        self._clusters_by_device: defaultdict[UUID, set[UUID]] = defaultdict(set)
        self._clusters_by_leader: defaultdict[UUID, set[UUID]] = defaultdict(set)

    # -- reading ---------------------------------------------------------------------------
    def get(self, kind: ResourceKind, id: UUID) -> AnyResource | None:
        return self._by_kind[kind].get(id)

    def of_kind(self, kind: ResourceKind) -> dict[UUID, AnyResource]:
        return self._by_kind[kind]

    def peer(self, id: UUID) -> PeerDescriptor | None:
        res = self._by_kind[ResourceKind.PEER].get(id)
        return res if isinstance(res, PeerDescriptor) else None

    def cluster(self, id: UUID) -> ClusterDescriptor | None:
        res = self._by_kind[ResourceKind.CLUSTER].get(id)
        return res if isinstance(res, ClusterDescriptor) else None

    def id_by_name(self, kind: ResourceKind, name: str) -> UUID | None:
        return self._names[kind].get(name.casefold())

    def all(self, kinds: Iterable[ResourceKind] | None = None) -> Iterator[AnyResource]:
        for kind in kinds if kinds is not None else ResourceKind:
            yield from self._by_kind[kind].values()

    def persisted(self) -> list[AnyResource]:
        return list(self.all(k for k in ResourceKind if k in PERSISTED_KINDS))

    def count(self) -> int:
        return sum(len(v) for v in self._by_kind.values())

    def cluster_members(self, cluster: ClusterDescriptor) -> set[UUID]:
        """The leader and every peer owning one of the cluster's devices."""
        members = {cluster.leader}
        for device in cluster.devices:
            owner = self.device_owner.get(device)
            if owner is not None:
                members.add(owner)
        return members

    def clusters_referencing_peer(self, peer: PeerDescriptor) -> set[UUID]:
        found = set(self._clusters_by_leader.get(peer.id, ()))
        for device in peer.devices:
            found |= self._clusters_by_device.get(device.id, set())
        return found

    def clusters_referencing_device(self, device: UUID) -> set[UUID]:
        return set(self._clusters_by_device.get(device, ()))

    def is_deployed(self, cluster_id: UUID) -> bool:
        return cluster_id in self._by_kind[ResourceKind.CLUSTER_DEPLOYMENT]

    def deployed_clusters(self) -> Iterator[ClusterDescriptor]:
        for cluster_id in self._by_kind[ResourceKind.CLUSTER_DEPLOYMENT]:
            cluster = self.cluster(cluster_id)
            if cluster is not None:
                yield cluster

    # -- writing ---------------------------------------------------------------------------
    def put(self, resource: AnyResource) -> AnyResource | None:
        kind = resource.kind
        old = self._by_kind[kind].get(resource.id)
        if old is not None:
            self._unindex(old)
        self._by_kind[kind][resource.id] = resource
        self._index(resource)
        return old

    def delete(self, kind: ResourceKind, id: UUID) -> AnyResource | None:
        old = self._by_kind[kind].pop(id, None)
        if old is not None:
            self._unindex(old)
        return old

    def restore(self, kind: ResourceKind, id: UUID, previous: AnyResource | None) -> None:
        """Undo a put or delete: make (kind, id) what it was."""
        if previous is None:
            self.delete(kind, id)
        else:
            self.put(previous)

    def copy(self) -> State:
        other = State()
        for resource in self.all():
            other.put(resource)
        return other

    def _index(self, resource: AnyResource) -> None:
        if isinstance(resource, PeerDescriptor):
            self._names[ResourceKind.PEER][resource.name.casefold()] = resource.id
            for device in resource.devices:
                self.device_owner[device.id] = resource.id
        elif isinstance(resource, ClusterDescriptor):
            self._names[ResourceKind.CLUSTER][resource.name.casefold()] = resource.id
            self._clusters_by_leader[resource.leader].add(resource.id)
            for device_id in resource.devices:
                self._clusters_by_device[device_id].add(resource.id)

    def _unindex(self, resource: AnyResource) -> None:
        if isinstance(resource, PeerDescriptor):
            self._names[ResourceKind.PEER].pop(resource.name.casefold(), None)
            for device in resource.devices:
                if self.device_owner.get(device.id) == resource.id:
                    del self.device_owner[device.id]
        elif isinstance(resource, ClusterDescriptor):
            self._names[ResourceKind.CLUSTER].pop(resource.name.casefold(), None)
            _discard(self._clusters_by_leader, resource.leader, resource.id)
            for device_id in resource.devices:
                _discard(self._clusters_by_device, device_id, resource.id)


def _discard(index: defaultdict[UUID, set[UUID]], key: UUID, value: UUID) -> None:
    values = index.get(key)
    if values is not None:
        values.discard(value)
        if not values:
            del index[key]
