"""Actions: the only writers. Each turns one user intention into one manager transaction.

Public actions return a WriteResult ``{revision, version}`` so an editor can keep editing its own
latest version without a false conflict. Internal actions (``set_*``) are used by operators and
peer brokers for volatile state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from backend.manager import Change, Delete, Put, ResourcesManager, TxResult
from resources.cluster import ClusterDeployment, ClusterDescriptor
from resources.configuration import PeerConfiguration, PeerConfigurationState
from resources.errors import InvalidDocument, invalid_resource_from
from resources.events import WriteResult
from resources.kinds import PERSISTED_KINDS, ResourceKind
from resources.peer import PeerDescriptor
from resources.resource import MODEL_BY_KIND, AnyResource
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


# -- documents (lea-backend apply) -------------------------------------------------------------
_DOCUMENT_KINDS = {ResourceKind.PEER, ResourceKind.CLUSTER}


def parse_document(data: Any, where: str = "document") -> AnyResource:
    """A peer or cluster from a JSON object; a clear InvalidResource/InvalidDocument otherwise."""
    if not isinstance(data, dict):
        raise InvalidDocument(f"{where}: expected a JSON object, got {type(data).__name__}")
    kind_name = data.get("kind")
    try:
        kind = ResourceKind(str(kind_name))
    except ValueError:
        raise InvalidDocument(
            f"{where}: 'kind' must be one of {', '.join(sorted(k.value for k in _DOCUMENT_KINDS))}, "
            f"not {kind_name!r}"
        ) from None
    if kind not in _DOCUMENT_KINDS:
        raise InvalidDocument(f"{where}: resources of kind '{kind}' cannot be applied from a file")
    try:
        return MODEL_BY_KIND[kind].model_validate(data)
    except ValidationError as exc:
        error = invalid_resource_from(exc, str(kind))
        error.message = f"{where}: {error.message}"
        raise error from None


def apply_resources(
    manager: ResourcesManager, resources: Sequence[AnyResource], actor: str
) -> TxResult:
    """Create or update every resource by id, all-or-nothing, peers before clusters."""
    ordered = sorted(resources, key=lambda r: 0 if r.kind == ResourceKind.PEER else 1)
    ids = [(r.kind, r.id) for r in ordered]
    if len(set(ids)) != len(ids):
        raise InvalidDocument("the same resource id appears more than once in the file")
    return manager.write([Put(r) for r in ordered], actor)


def persisted_only(resources: Iterable[AnyResource]) -> list[AnyResource]:
    return [r for r in resources if r.kind in PERSISTED_KINDS]
