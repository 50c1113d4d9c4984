"""ClusterDescriptor (a group of devices with a leader peer) and ClusterDeployment."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import Field, field_validator

from resources.base import ResourceBase
from resources.kinds import ResourceKind
from resources.names import ResourceName


class ClusterDescriptor(ResourceBase):
    kind: Literal[ResourceKind.CLUSTER] = ResourceKind.CLUSTER
    name: ResourceName
    leader: UUID = Field(description="Id of the leading peer; always a member of the cluster.")
    devices: tuple[UUID, ...] = Field(
        min_length=2, description="Ids of the devices in the cluster (a set, kept sorted)."
    )

    @field_validator("devices", mode="after")
    @classmethod
    def _a_sorted_set(cls, value: tuple[UUID, ...]) -> tuple[UUID, ...]:
        if len(set(value)) != len(value):
            raise ValueError("a device may appear only once in a cluster")
        return tuple(sorted(value, key=str))


class ClusterDeployment(ResourceBase):
    """Its existence means "deployment requested"; its id is the cluster's id."""

    kind: Literal[ResourceKind.CLUSTER_DEPLOYMENT] = ResourceKind.CLUSTER_DEPLOYMENT
