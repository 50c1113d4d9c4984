"""The rules of DESIGN section 3, each once, as pure functions over a ``ResourceView``.

Each rule returns the typed error the backend refuses a write with (a stable code, a sentence
naming the rule and the resources involved), or None when the rule holds. The backend's sequencer
raises the first one a change breaks (``check_put`` / ``check_delete``, through
``backend.rules.check``); LEA pre-checks a form with the very same functions and shows the same
code and message before anything is sent.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Literal
from uuid import UUID

from resources.cluster import ClusterDeployment, ClusterDescriptor
from resources.derived import cluster_names, deployed_clusters_of_peer, is_deployed, peer_names
from resources.errors import (
    ClusterDeployed,
    DeviceIdTaken,
    LeaError,
    MissingReference,
    NameTaken,
    PeerBlocked,
    PeerInDeployedCluster,
    ReferencedByCluster,
)
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.resource import AnyResource
from resources.view import ResourceView

_PEER_STATE_KINDS = (
    ResourceKind.PEER_CONNECTION_STATE,
    ResourceKind.PEER_CONFIGURATION,
    ResourceKind.PEER_CONFIGURATION_STATE,
)


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names)


# -- names -----------------------------------------------------------------------------------
def name_taken(view: ResourceView, kind: ResourceKind, id: UUID, name: str) -> NameTaken | None:
    """Names are unique per kind, ignoring case; a resource may keep (or recase) its own name."""
    other = view.id_by_name(kind, name)
    if other is None or other == id:
        return None
    return NameTaken(
        f"a {kind.value} named '{name}' already exists; {kind.value} names must be unique",
        kind=kind.value, name=name, id=str(other),
    )


# -- peers -----------------------------------------------------------------------------------
def device_id_taken(view: ResourceView, peer: PeerDescriptor) -> DeviceIdTaken | None:
    """A device id belongs to one peer: the first of ``peer``'s devices another peer has."""
    for device in peer.devices:
        owner = view.device_owner(device.id)
        if owner is not None and owner != peer.id:
            return DeviceIdTaken(
                f"device id {device.id} ('{device.name}') already belongs to peer '{peer_names(view, [owner])[0]}'",
                device=str(device.id), peer=str(owner),
            )
    return None


def peer_in_deployed_cluster(view: ResourceView, peer_id: UUID) -> PeerInDeployedCluster | None:
    """A peer used by a deployed cluster cannot be changed (refused only for a real change)."""
    current = view.get(ResourceKind.PEER, peer_id)
    if not isinstance(current, PeerDescriptor):
        return None
    deployed = deployed_clusters_of_peer(view, peer_id)
    if not deployed:
        return None
    names = [c.name for c in deployed]
    return PeerInDeployedCluster(
        f"peer '{current.name}' is used by deployed cluster {_quoted(names)}; undeploy it before changing the peer",
        peer=str(peer_id), clusters=names,
    )


def devices_in_use(view: ResourceView, current: PeerDescriptor, kept: Collection[UUID]) -> list[ReferencedByCluster]:
    """A device referenced by any cluster cannot be removed: one error per device of ``current``
    (the peer as it is) that is not ``kept`` but a cluster uses. Removing an interface removes the
    devices behind it, so this rule also keeps an interface a cluster uses."""
    errors = []
    for device in current.devices:
        if device.id in kept:
            continue
        users = view.clusters_with_device(device.id)
        if users:
            names = cluster_names(view, users)
            errors.append(ReferencedByCluster(
                f"device '{device.name}' of peer '{current.name}' cannot be removed: it is used by "
                f"cluster {_quoted(names)}",
                device=str(device.id), clusters=names,
            ))
    return errors


def peer_in_use(view: ResourceView, peer_id: UUID) -> ReferencedByCluster | None:
    """A peer referenced by any cluster (as leader or through a device) cannot be deleted."""
    peer = view.get(ResourceKind.PEER, peer_id)
    if not isinstance(peer, PeerDescriptor):
        return None
    users = view.clusters_of_peer(peer_id)
    if not users:
        return None
    names = cluster_names(view, users)
    return ReferencedByCluster(
        f"peer '{peer.name}' cannot be deleted: it is used by cluster {_quoted(names)}",
        peer=str(peer_id), clusters=names,
    )


# -- clusters --------------------------------------------------------------------------------
def missing_leader(view: ResourceView, cluster_name: str, leader: UUID) -> MissingReference | None:
    """A cluster's leader is an existing peer."""
    if isinstance(view.get(ResourceKind.PEER, leader), PeerDescriptor):
        return None
    return MissingReference(
        f"cluster '{cluster_name}': leader {leader} is not an existing peer", field="leader", leader=str(leader)
    )


def missing_devices(view: ResourceView, cluster_name: str, devices: Iterable[UUID]) -> MissingReference | None:
    """A cluster's devices exist (some peer has each); one error naming every missing one, in the
    order given (a ClusterDescriptor keeps its devices sorted)."""
    missing = [d for d in devices if view.device_owner(d) is None]
    if not missing:
        return None
    return MissingReference(
        f"cluster '{cluster_name}': device {', '.join(str(d) for d in missing)} does not exist",
        field="devices", devices=[str(d) for d in missing],
    )


def cluster_deployed(
    view: ResourceView, cluster_id: UUID, action: Literal["changed", "deleted"]
) -> ClusterDeployed | None:
    """A deployed cluster's descriptor cannot be changed or deleted."""
    cluster = view.get(ResourceKind.CLUSTER, cluster_id)
    if not isinstance(cluster, ClusterDescriptor) or not is_deployed(view, cluster_id):
        return None
    return ClusterDeployed(
        f"cluster '{cluster.name}' is deployed and cannot be {action}; undeploy it first", cluster=str(cluster_id)
    )


# -- deployments -----------------------------------------------------------------------------
def not_deployable(view: ResourceView, cluster_id: UUID) -> MissingReference | PeerBlocked | None:
    """A cluster to deploy exists, and none of its peers belongs to another deployed cluster."""
    cluster = view.get(ResourceKind.CLUSTER, cluster_id)
    if not isinstance(cluster, ClusterDescriptor):
        return MissingReference(f"cannot deploy cluster {cluster_id}: it does not exist", cluster=str(cluster_id))
    deployed = view.of_kind(ResourceKind.CLUSTER_DEPLOYMENT)
    shared: dict[UUID, set[UUID]] = {}  # other deployed cluster -> the peers it shares with this one
    for peer_id in view.members(cluster_id):
        for other in view.clusters_of_peer(peer_id):
            if other != cluster_id and other in deployed:
                shared.setdefault(other, set()).add(peer_id)
    if not shared:
        return None
    blocked = dict(sorted((cluster_names(view, [c])[0], peer_names(view, peers)) for c, peers in shared.items()))
    parts = [f"{_quoted(peers)} (in '{name}')" for name, peers in blocked.items()]
    return PeerBlocked(
        f"cluster '{cluster.name}' cannot be deployed: peer {'; '.join(parts)} already belongs to a deployed cluster",
        cluster=str(cluster_id), blocked_by=blocked,
    )


# -- volatile state --------------------------------------------------------------------------
def missing_subject(view: ResourceView, resource: AnyResource) -> MissingReference | None:
    """Volatile state is about an existing peer or cluster (the one with its id)."""
    if resource.kind in _PEER_STATE_KINDS and not isinstance(view.get(ResourceKind.PEER, resource.id), PeerDescriptor):
        return MissingReference(
            f"{resource.kind.value} for peer {resource.id}, which does not exist", peer=str(resource.id)
        )
    if resource.kind == ResourceKind.CLUSTER_STATE and not isinstance(
        view.get(ResourceKind.CLUSTER, resource.id), ClusterDescriptor
    ):
        return MissingReference(
            f"cluster state for cluster {resource.id}, which does not exist", cluster=str(resource.id)
        )
    return None


# -- one write, as the sequencer checks it ---------------------------------------------------
def check_put(view: ResourceView, resource: AnyResource) -> None:
    """Raise the first rule storing ``resource`` into ``view`` breaks."""
    if isinstance(resource, PeerDescriptor):
        _raise(name_taken(view, ResourceKind.PEER, resource.id, resource.name), device_id_taken(view, resource))
        current = view.get(ResourceKind.PEER, resource.id)
        if isinstance(current, PeerDescriptor):
            in_use = peer_in_deployed_cluster(view, resource.id)
            if in_use is not None and _changed(current, resource):
                raise in_use
            _raise(*devices_in_use(view, current, {d.id for d in resource.devices}))
    elif isinstance(resource, ClusterDescriptor):
        _raise(
            name_taken(view, ResourceKind.CLUSTER, resource.id, resource.name),
            missing_leader(view, resource.name, resource.leader),
            missing_devices(view, resource.name, resource.devices),
        )
        current = view.get(ResourceKind.CLUSTER, resource.id)
        deployed = cluster_deployed(view, resource.id, "changed")  # (compared only when deployed: it is cheap)
        if deployed is not None and isinstance(current, ClusterDescriptor) and _changed(current, resource):
            raise deployed
    elif isinstance(resource, ClusterDeployment):
        _raise(not_deployable(view, resource.id))
    else:
        _raise(missing_subject(view, resource))


def check_delete(view: ResourceView, kind: ResourceKind, id: UUID) -> None:
    """Raise the first rule deleting (kind, id) from ``view`` breaks."""
    if kind == ResourceKind.PEER:
        _raise(peer_in_use(view, id))
    elif kind == ResourceKind.CLUSTER:
        _raise(cluster_deployed(view, id, "deleted"))


def _raise(*errors: LeaError | None) -> None:
    for error in errors:
        if error is not None:
            raise error


def _changed(current: PeerDescriptor | ClusterDescriptor, new: PeerDescriptor | ClusterDescriptor) -> bool:
    """A real change: storing the same content again (a retry) only bumps the version."""
    return current.model_copy(update={"version": 0}) != new.model_copy(update={"version": 0})
