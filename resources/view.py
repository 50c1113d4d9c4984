"""ResourceView: the read-only view of resources that the rules and derived facts are written over.

The backend's ``State`` and LEA's sync ``Store`` both satisfy it (each keeps a ``ResourceIndex``),
so a rule is one function, run by the backend to refuse a write and by LEA to pre-check a form.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Protocol
from uuid import UUID

from resources.kinds import ResourceKind
from resources.resource import AnyResource


class ResourceView(Protocol):
    """Resources by kind and id, and the indexes kept by whoever holds them (never rebuilt per call).

    The sets returned are live and read-only: copy one to keep it past the next change.
    """

    def get(self, kind: ResourceKind, id: UUID, /) -> AnyResource | None:
        """The resource of that kind and id, or None."""
        ...

    def of_kind(self, kind: ResourceKind, /) -> Mapping[UUID, AnyResource]:
        """Every resource of one kind, by id."""
        ...

    def id_by_name(self, kind: ResourceKind, name: str, /) -> UUID | None:
        """The id of the peer or cluster with this name, ignoring case (names are unique per kind)."""
        ...

    def device_owner(self, device_id: UUID, /) -> UUID | None:
        """The id of the peer that has the device, or None when no peer has it."""
        ...

    def clusters_with_device(self, device_id: UUID, /) -> Set[UUID]:
        """The ids of the clusters whose device set contains the device."""
        ...

    def members(self, cluster_id: UUID, /) -> Set[UUID]:
        """The member peers of a stored cluster (``derived.cluster_member_ids``); empty if no such cluster."""
        ...

    def clusters_of_peer(self, peer_id: UUID, /) -> Set[UUID]:
        """The ids of the clusters the peer is a member of: those it leads or holds a device of."""
        ...
