"""What the cluster editor's pickers offer, Qt-free: the leader choices with each peer's online
state, and the devices grouped by peer with the clusters that already use each."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple
from uuid import UUID

from resources.cluster import ClusterDescriptor
from resources.derived import is_deployed
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.state import PeerConnectionState
from resources.view import ResourceView


class DeviceChoice(NamedTuple):
    name: str
    id: str
    #: The other clusters using the device, in words ("loop-1 (deployed), loop-2"); "" when none.
    used_by: str


class DeviceGroup(NamedTuple):
    """One peer's devices, as the device picker groups them."""

    peer: str
    peer_id: str
    online: bool
    devices: tuple[DeviceChoice, ...]


def is_online(view: ResourceView, peer_id: UUID) -> bool:
    state = view.get(ResourceKind.PEER_CONNECTION_STATE, peer_id)
    return isinstance(state, PeerConnectionState) and state.online


def online_text(online: bool) -> str:
    return "online" if online else "offline"


def sorted_peers(view: ResourceView) -> list[PeerDescriptor]:
    peers = [p for p in view.of_kind(ResourceKind.PEER).values() if isinstance(p, PeerDescriptor)]
    return sorted(peers, key=lambda p: p.name.casefold())


def leader_choices(view: ResourceView, peers: Iterable[PeerDescriptor]) -> list[tuple[str, str]]:
    """(label, peer id) with the online state in words: "bench-a (online)"."""
    return [(f"{p.name} ({online_text(is_online(view, p.id))})", str(p.id)) for p in peers]


def used_by(view: ResourceView, device_id: UUID, own_cluster: UUID) -> str:
    """The clusters other than ``own_cluster`` that use the device, deployed ones first."""
    clusters = [view.get(ResourceKind.CLUSTER, c) for c in view.clusters_with_device(device_id) if c != own_cluster]
    named = [c for c in clusters if isinstance(c, ClusterDescriptor)]
    named.sort(key=lambda c: (not is_deployed(view, c.id), c.name.casefold()))
    return ", ".join(f"{c.name} (deployed)" if is_deployed(view, c.id) else c.name for c in named)


def device_groups(view: ResourceView, peers: Iterable[PeerDescriptor], own_cluster: UUID) -> list[DeviceGroup]:
    """Every peer with devices, its devices sorted by name, each with the clusters that use it."""
    return [
        DeviceGroup(
            peer.name, str(peer.id), is_online(view, peer.id),
            tuple(
                DeviceChoice(d.name, str(d.id), used_by(view, d.id, own_cluster))
                for d in sorted(peer.devices, key=lambda d: d.name.casefold())
            ),
        )
        for peer in peers
        if peer.devices
    ]
