"""ResourceIndex: resources by kind and id with the indexes the rules read (client-go's Indexer).

The backend's State and LEA's sync Store each keep one. Every put and delete brings the indexes up
to date for what it touched, so a rule asks "who owns this device" or "which clusters is this peer
in" without scanning, and nobody rebuilds an index per call. It is on the backend's write path:
a peer update that keeps its devices costs a few dict operations, nothing per cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from copy import copy as shallow_copy
from typing import Self
from uuid import UUID

from resources.cluster import ClusterDescriptor
from resources.derived import cluster_member_ids
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.resource import AnyResource

_EMPTY: frozenset[UUID] = frozenset()
_NAMED = (ResourceKind.PEER, ResourceKind.CLUSTER)


class ResourceIndex:
    """Satisfies ``resources.view.ResourceView``; ``put`` and ``delete`` are its only writers."""

    def __init__(self) -> None:
        self._by_kind: dict[ResourceKind, dict[UUID, AnyResource]] = {k: {} for k in ResourceKind}
        self._names: dict[ResourceKind, dict[str, UUID]] = {k: {} for k in _NAMED}
        self._device_owner: dict[UUID, UUID] = {}
        self._clusters_by_device: dict[UUID, set[UUID]] = {}
        # Members are frozensets: copies share them, and an unchanged recomputation keeps the object.
        self._members: dict[UUID, frozenset[UUID]] = {}
        self._clusters_by_member: dict[UUID, set[UUID]] = {}

    # -- ResourceView ----------------------------------------------------------------------
    def get(self, kind: ResourceKind, id: UUID, /) -> AnyResource | None:
        return self._by_kind[kind].get(id)

    def of_kind(self, kind: ResourceKind, /) -> Mapping[UUID, AnyResource]:
        return self._by_kind[kind]

    def id_by_name(self, kind: ResourceKind, name: str, /) -> UUID | None:
        names = self._names.get(kind)
        return names.get(name.casefold()) if names is not None else None

    def device_owner(self, device_id: UUID, /) -> UUID | None:
        return self._device_owner.get(device_id)

    def clusters_with_device(self, device_id: UUID, /) -> Set[UUID]:
        return self._clusters_by_device.get(device_id, _EMPTY)

    def members(self, cluster_id: UUID, /) -> Set[UUID]:
        return self._members.get(cluster_id, _EMPTY)

    def clusters_of_peer(self, peer_id: UUID, /) -> Set[UUID]:
        return self._clusters_by_member.get(peer_id, _EMPTY)

    # -- writing ---------------------------------------------------------------------------
    def put(self, resource: AnyResource) -> AnyResource | None:
        """Store ``resource`` (replacing the one of the same kind and id); returns the one replaced."""
        mapping = self._by_kind[resource.kind]
        old = mapping.get(resource.id)
        mapping[resource.id] = resource
        # type() is: isinstance on a pydantic model runs its metaclass's Python check (hot: every event).
        if type(resource) is PeerDescriptor:
            self._reindex_peer(resource.id, old, resource)
        elif type(resource) is ClusterDescriptor:
            self._reindex_cluster(resource.id, old, resource)
        return old

    def delete(self, kind: ResourceKind, id: UUID) -> AnyResource | None:
        """Remove (kind, id); returns what was there."""
        old = self._by_kind[kind].pop(id, None)
        if kind == ResourceKind.PEER:
            self._reindex_peer(id, old, None)
        elif kind == ResourceKind.CLUSTER:
            self._reindex_cluster(id, old, None)
        return old

    def copy(self) -> Self:
        """An independent copy: changing it never changes this one (resources are immutable)."""
        other = shallow_copy(self)
        other._by_kind = {k: dict(v) for k, v in self._by_kind.items()}
        other._names = {k: dict(v) for k, v in self._names.items()}
        other._device_owner = dict(self._device_owner)
        other._clusters_by_device = {k: set(v) for k, v in self._clusters_by_device.items()}
        other._members = dict(self._members)
        other._clusters_by_member = {k: set(v) for k, v in self._clusters_by_member.items()}
        return other

    # -- the indexes -----------------------------------------------------------------------
    # A put that keeps something (the name, the devices) leaves its index entries alone: the
    # entries are this resource's already, whenever the resources it was put among are consistent.
    def _rename(self, kind: ResourceKind, id: UUID, old_name: str | None, new: str | None) -> None:
        if old_name == new:
            return
        names = self._names[kind]
        if old_name is not None:
            key = old_name.casefold()
            if names.get(key) == id:  # (another may hold it already, mid-way through a snapshot)
                del names[key]
        if new is not None:
            names[new.casefold()] = id

    def _reindex_peer(self, peer_id: UUID, old: AnyResource | None, new: PeerDescriptor | None) -> None:
        old_name = old.name if type(old) is PeerDescriptor else None
        self._rename(ResourceKind.PEER, peer_id, old_name, new.name if new is not None else None)
        if type(old) is PeerDescriptor and new is not None and _same_devices(old, new):
            return  # a new location, a renamed device...: nobody's members change
        owners = self._device_owner
        moved: list[UUID] = []  # devices whose owner changed: their clusters' members may have
        if type(old) is PeerDescriptor and old.devices:
            after = {d.id for d in new.devices} if new is not None else set()
            for device in old.devices:
                if device.id not in after and owners.get(device.id) == peer_id:
                    del owners[device.id]
                    moved.append(device.id)
        if new is not None:
            for device in new.devices:
                device_id, known = device.id, len(owners)
                if owners.setdefault(device_id, peer_id) != peer_id:  # (one hash of a UUID, not two)
                    owners[device_id] = peer_id
                    moved.append(device_id)
                elif len(owners) != known:
                    moved.append(device_id)
        if moved and self._clusters_by_device:
            affected: set[UUID] = set()
            for device_id in moved:
                affected |= self._clusters_by_device.get(device_id, _EMPTY)
            for cluster_id in affected:
                cluster = self._by_kind[ResourceKind.CLUSTER].get(cluster_id)
                if isinstance(cluster, ClusterDescriptor):
                    self._set_members(cluster_id, frozenset(cluster_member_ids(cluster, owners)))

    def _reindex_cluster(self, cluster_id: UUID, old: AnyResource | None, new: ClusterDescriptor | None) -> None:
        old_name = old.name if type(old) is ClusterDescriptor else None
        self._rename(ResourceKind.CLUSTER, cluster_id, old_name, new.name if new is not None else None)
        before = old.devices if type(old) is ClusterDescriptor else ()
        after = new.devices if new is not None else ()
        if type(old) is ClusterDescriptor and new is not None and before == after and old.leader == new.leader:
            return  # the same devices and leader (a rename, a retry): nothing else changes
        by_device = self._clusters_by_device
        kept = set(before) & set(after) if before and after else _EMPTY
        for device_id in before:
            if not kept or device_id not in kept:
                users = by_device.get(device_id)
                if users is not None:
                    users.discard(cluster_id)
                    if not users:
                        del by_device[device_id]
        for device_id in after:
            if not kept or device_id not in kept:
                by_device.setdefault(device_id, set()).add(cluster_id)
        self._set_members(cluster_id, frozenset(cluster_member_ids(new, self._device_owner)) if new else None)

    def _set_members(self, cluster_id: UUID, members: frozenset[UUID] | None) -> None:
        old = self._members.get(cluster_id, _EMPTY)
        if members is None:
            self._members.pop(cluster_id, None)
            members = _EMPTY
        elif members == old and cluster_id in self._members:
            return
        else:
            self._members[cluster_id] = members
        by_member = self._clusters_by_member
        for peer_id in old - members:
            clusters = by_member.get(peer_id)
            if clusters is not None:
                clusters.discard(cluster_id)
                if not clusters:
                    del by_member[peer_id]
        for peer_id in members - old:
            by_member.setdefault(peer_id, set()).add(cluster_id)


def _same_devices(old: PeerDescriptor, new: PeerDescriptor) -> bool:
    if old.devices is new.devices:  # (model_copy keeps the tuple)
        return True
    pairs = zip(old.devices, new.devices, strict=False)
    return len(old.devices) == len(new.devices) and all(a.id == b.id for a, b in pairs)
