"""The rules of DESIGN section 3, checked by the sequencer against the working state.

Each broken rule raises a typed error naming the rule and the resources involved; the sequencer
then writes nothing for the whole transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from backend.manager import Change, Delete, Put
from backend.state import State
from resources.cluster import ClusterDeployment, ClusterDescriptor
from resources.errors import (
    ClusterDeployed,
    DeviceIdTaken,
    MissingReference,
    NameTaken,
    PeerBlocked,
    PeerInDeployedCluster,
    ReferencedByCluster,
)
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor

_PEER_STATE_KINDS = (
    ResourceKind.PEER_CONNECTION_STATE,
    ResourceKind.PEER_CONFIGURATION,
    ResourceKind.PEER_CONFIGURATION_STATE,
)


def check(state: State, change: Change) -> None:
    if isinstance(change, Put):
        res = change.resource
        if isinstance(res, PeerDescriptor):
            _check_store_peer(state, res)
        elif isinstance(res, ClusterDescriptor):
            _check_store_cluster(state, res)
        elif isinstance(res, ClusterDeployment):
            _check_store_deployment(state, res.id)
        elif res.kind in _PEER_STATE_KINDS:
            if state.peer(res.id) is None:
                raise MissingReference(
                    f"{res.kind} for peer {res.id}, which does not exist", peer=str(res.id)
                )
        elif res.kind == ResourceKind.CLUSTER_STATE and state.cluster(res.id) is None:
            raise MissingReference(
                f"cluster state for cluster {res.id}, which does not exist", cluster=str(res.id)
            )
    elif isinstance(change, Delete):
        if change.kind == ResourceKind.PEER:
            _check_delete_peer(state, change.id)
        elif change.kind == ResourceKind.CLUSTER:
            _check_delete_cluster(state, change.id)


def cluster_names(state: State, ids: Iterable[UUID]) -> list[str]:
    names = []
    for id in ids:
        cluster = state.cluster(id)
        names.append(cluster.name if cluster is not None else str(id))
    return sorted(names)


def peer_names(state: State, ids: Iterable[UUID]) -> list[str]:
    names = []
    for id in ids:
        peer = state.peer(id)
        names.append(peer.name if peer is not None else str(id))
    return sorted(names)


def deployed_clusters_of_peer(state: State, peer_id: UUID) -> list[ClusterDescriptor]:
    """The deployed clusters the peer is a member of (at most one while the rules hold)."""
    return [c for c in state.deployed_clusters() if peer_id in state.cluster_members(c)]


def _check_store_peer(state: State, peer: PeerDescriptor) -> None:
    other = state.id_by_name(ResourceKind.PEER, peer.name)
    if other is not None and other != peer.id:
        raise NameTaken(
            f"a peer named '{peer.name}' already exists; peer names must be unique",
            kind="peer", name=peer.name, id=str(other),
        )
    for device in peer.devices:
        owner = state.device_owner.get(device.id)
        if owner is not None and owner != peer.id:
            raise DeviceIdTaken(
                f"device id {device.id} ('{device.name}') already belongs to peer "
                f"'{peer_names(state, [owner])[0]}'",
                device=str(device.id), peer=str(owner),
            )
    current = state.peer(peer.id)
    if current is None:
        return
    deployed = deployed_clusters_of_peer(state, peer.id)
    if deployed and current.model_copy(update={"version": 0}) != peer.model_copy(update={"version": 0}):
        names = [c.name for c in deployed]
        raise PeerInDeployedCluster(
            f"peer '{current.name}' is used by deployed cluster {', '.join(repr(n) for n in names)}; "
            "undeploy it before changing the peer",
            peer=str(peer.id), clusters=names,
        )
    kept = {d.id for d in peer.devices}
    for device in current.devices:
        if device.id in kept:
            continue
        users = state.clusters_referencing_device(device.id)
        if users:
            names = cluster_names(state, users)
            raise ReferencedByCluster(
                f"device '{device.name}' of peer '{current.name}' cannot be removed: it is used by "
                f"cluster {', '.join(repr(n) for n in names)}",
                device=str(device.id), clusters=names,
            )


def _check_delete_peer(state: State, peer_id: UUID) -> None:
    peer = state.peer(peer_id)
    if peer is None:
        return
    users = state.clusters_referencing_peer(peer)
    if users:
        names = cluster_names(state, users)
        raise ReferencedByCluster(
            f"peer '{peer.name}' cannot be deleted: it is used by cluster "
            f"{', '.join(repr(n) for n in names)}",
            peer=str(peer_id), clusters=names,
        )


def _check_store_cluster(state: State, cluster: ClusterDescriptor) -> None:
    other = state.id_by_name(ResourceKind.CLUSTER, cluster.name)
    if other is not None and other != cluster.id:
        raise NameTaken(
            f"a cluster named '{cluster.name}' already exists; cluster names must be unique",
            kind="cluster", name=cluster.name, id=str(other),
        )
    if state.peer(cluster.leader) is None:
        raise MissingReference(
            f"cluster '{cluster.name}': leader {cluster.leader} is not an existing peer",
            field="leader", leader=str(cluster.leader),
        )
    missing = [d for d in cluster.devices if d not in state.device_owner]
    if missing:
        raise MissingReference(
            f"cluster '{cluster.name}': device {', '.join(str(d) for d in missing)} does not exist",
            field="devices", devices=[str(d) for d in missing],
        )
    current = state.cluster(cluster.id)
    if (
        current is not None
        and state.is_deployed(cluster.id)
        and current.model_copy(update={"version": 0}) != cluster.model_copy(update={"version": 0})
    ):
        raise ClusterDeployed(
            f"cluster '{current.name}' is deployed and cannot be changed; undeploy it first",
            cluster=str(cluster.id),
        )


def _check_delete_cluster(state: State, cluster_id: UUID) -> None:
    cluster = state.cluster(cluster_id)
    if cluster is not None and state.is_deployed(cluster_id):
        raise ClusterDeployed(
            f"cluster '{cluster.name}' is deployed and cannot be deleted; undeploy it first",
            cluster=str(cluster_id),
        )


def _check_store_deployment(state: State, cluster_id: UUID) -> None:
    cluster = state.cluster(cluster_id)
    if cluster is None:
        raise MissingReference(
            f"cannot deploy cluster {cluster_id}: it does not exist", cluster=str(cluster_id)
        )
    members = state.cluster_members(cluster)
    blocked: dict[str, list[str]] = {}
    for other in state.deployed_clusters():
        if other.id == cluster_id:
            continue
        shared = members & state.cluster_members(other)
        if shared:
            blocked[other.name] = peer_names(state, shared)
    if blocked:
        parts = [
            f"{', '.join(repr(p) for p in peers)} (in '{name}')" for name, peers in sorted(blocked.items())
        ]
        raise PeerBlocked(
            f"cluster '{cluster.name}' cannot be deployed: peer {'; '.join(parts)} already belongs to "
            "a deployed cluster",
            cluster=str(cluster_id),
            blocked_by=blocked,
        )
