"""The union of every resource kind, and fast per-kind (de)serialisation."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from resources.cluster import ClusterDeployment, ClusterDescriptor
from resources.configuration import PeerConfiguration, PeerConfigurationState
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.state import ClusterState, PeerConnectionState

AnyResource = (
    PeerDescriptor
    | ClusterDescriptor
    | ClusterDeployment
    | PeerConnectionState
    | ClusterState
    | PeerConfiguration
    | PeerConfigurationState
)
Resource = Annotated[AnyResource, Field(discriminator="kind")]

MODEL_BY_KIND: dict[ResourceKind, type[AnyResource]] = {
    ResourceKind.PEER: PeerDescriptor,
    ResourceKind.CLUSTER: ClusterDescriptor,
    ResourceKind.CLUSTER_DEPLOYMENT: ClusterDeployment,
    ResourceKind.PEER_CONNECTION_STATE: PeerConnectionState,
    ResourceKind.CLUSTER_STATE: ClusterState,
    ResourceKind.PEER_CONFIGURATION: PeerConfiguration,
    ResourceKind.PEER_CONFIGURATION_STATE: PeerConfigurationState,
}

RESOURCE_ADAPTER: TypeAdapter[AnyResource] = TypeAdapter(Resource)
RESOURCE_LIST_ADAPTER: TypeAdapter[list[AnyResource]] = TypeAdapter(list[Resource])


def resource_from_json(kind: ResourceKind, payload: str | bytes) -> AnyResource:
    """Validate a resource's JSON with the model of its kind (no union dispatch: replay is hot)."""
    return MODEL_BY_KIND[kind].model_validate_json(payload)


def resource_from_dict(kind: ResourceKind, data: dict[str, Any]) -> AnyResource:
    return MODEL_BY_KIND[kind].model_validate(data)
