"""Actions: the only writers. Each turns one user intention into one manager transaction.

Public actions return a WriteResult ``{revision, version}`` so an editor can keep editing its own
latest version without a false conflict. Internal actions (``set_*``) are used by operators and
peer brokers for volatile state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from uuid import UUID

from backend.manager import Change, Delete, Put, ResourcesManager, TxResult
from resources.cluster import ClusterDeployment, ClusterDescriptor
from resources.configuration import PeerConfiguration, PeerConfigurationState
from resources.events import WriteResult
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.resource import AnyResource
from resources.state import ClusterState, ClusterStatus, ConnectionStatus, PeerConnectionState


def _result(tx: TxResult, kind: ResourceKind, id: UUID) -> WriteResult:
    return WriteResult(revision=tx.revision, version=tx.version_of(kind, id), id=id)


def _store(
    manager: ResourcesManager,
    resource: AnyResource,
    actor: str,
    expected_version: int | None,
    create_only: bool,
) -> WriteResult:
    tx = manager.write([Put(resource, expected_version, create_only)], actor)
    return _result(tx, resource.kind, resource.id)


def store_peer_descriptor(
    manager: ResourcesManager,
    peer: PeerDescriptor,
    actor: str,
    expected_version: int | None = None,
    create_only: bool = False,
) -> WriteResult:
    return _store(manager, peer, actor, expected_version, create_only)


def delete_peer_descriptor(
    manager: ResourcesManager, peer_id: UUID, actor: str, expected_version: int | None = None
) -> WriteResult:
    """Delete the peer and its volatile state (connection, configuration) in one transaction."""
    changes: list[Change] = [Delete(ResourceKind.PEER, peer_id, expected_version)]
    changes += [
        Delete(kind, peer_id, missing_ok=True)
        for kind in (
            ResourceKind.PEER_CONNECTION_STATE,
            ResourceKind.PEER_CONFIGURATION,
            ResourceKind.PEER_CONFIGURATION_STATE,
        )
    ]
    tx = manager.write(changes, actor)
    return WriteResult(revision=tx.revision, version=0, id=peer_id)


def store_cluster_descriptor(
    manager: ResourcesManager,
    cluster: ClusterDescriptor,
    actor: str,
    expected_version: int | None = None,
    create_only: bool = False,
) -> WriteResult:
    return _store(manager, cluster, actor, expected_version, create_only)


def delete_cluster_descriptor(
    manager: ResourcesManager, cluster_id: UUID, actor: str, expected_version: int | None = None
) -> WriteResult:
    """Delete the cluster descriptor (and its volatile state); deletes no peer or device."""
    tx = manager.write(
        [
            Delete(ResourceKind.CLUSTER, cluster_id, expected_version),
            Delete(ResourceKind.CLUSTER_STATE, cluster_id, missing_ok=True),
        ],
        actor,
    )
    return WriteResult(revision=tx.revision, version=0, id=cluster_id)


def store_cluster_deployment(
    manager: ResourcesManager, cluster_id: UUID, actor: str, expected_version: int | None = None
) -> WriteResult:
    """Request deployment; storing it again (e.g. for a Failed cluster) bumps it and retries."""
    return _store(manager, ClusterDeployment(id=cluster_id), actor, expected_version, False)


def delete_cluster_deployment(
    manager: ResourcesManager, cluster_id: UUID, actor: str, expected_version: int | None = None
) -> WriteResult:
    tx = manager.write([Delete(ResourceKind.CLUSTER_DEPLOYMENT, cluster_id, expected_version)], actor)
    return WriteResult(revision=tx.revision, version=0, id=cluster_id)


def store_resources(manager: ResourcesManager, resources: Sequence[AnyResource], actor: str) -> TxResult:
    """Create or update peers and clusters by id in one all-or-nothing transaction, peers first
    (a cluster may name a peer stored with it)."""
    ordered = sorted(resources, key=lambda r: 0 if r.kind == ResourceKind.PEER else 1)
    return manager.write([Put(r) for r in ordered], actor)


# -- internal actions (volatile state) -------------------------------------------------------
def set_peer_connection_state(
    manager: ResourcesManager, peer_id: UUID, state: ConnectionStatus, actor: str
) -> WriteResult:
    return _store(manager, PeerConnectionState(id=peer_id, state=state), actor, None, False)


def set_cluster_state(
    manager: ResourcesManager, cluster_id: UUID, state: ClusterStatus, actor: str
) -> WriteResult:
    return _store(manager, ClusterState(id=cluster_id, state=state), actor, None, False)


def set_peer_configuration(
    manager: ResourcesManager, configuration: PeerConfiguration, actor: str
) -> WriteResult:
    return _store(manager, configuration, actor, None, False)


def set_peer_configuration_state(
    manager: ResourcesManager, report: PeerConfigurationState, actor: str
) -> WriteResult:
    return _store(manager, report, actor, None, False)


def clear_peer_configurations(manager: ResourcesManager, peer_ids: Iterable[UUID], actor: str) -> TxResult:
    """Drop the desired configuration and the reports of every given peer (undeployed: it is free)."""
    changes: list[Change] = [
        Delete(kind, peer_id, missing_ok=True)
        for peer_id in peer_ids
        for kind in (ResourceKind.PEER_CONFIGURATION, ResourceKind.PEER_CONFIGURATION_STATE)
    ]
    return manager.write(changes, actor)

