"""PeerConfiguration (what the backend wants a peer to have) and PeerConfigurationState (its report)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from resources.base import MAX_INT64, Model, ResourceBase
from resources.kinds import ResourceKind


class ParameterKind(StrEnum):
    DEVICE_INTERFACE = "device_interface"
    ETHERNET_BRIDGE = "ethernet_bridge"
    GRE_INTERFACE = "gre_interface"
    INTERFACE_JOIN = "interface_join"
    CAN_BRIDGE = "can_bridge"
    CAN_CONNECTION = "can_connection"
    CAN_LOCAL_ROUTE = "can_local_route"
    REMOTE_PEER_CHECK = "remote_peer_check"


class Target(StrEnum):
    PRESENT = "present"
    ABSENT = "absent"


class Parameter(Model):
    id: UUID
    kind: ParameterKind
    target: Target
    dependencies: tuple[UUID, ...] = ()
    value: dict[str, str | int | bool] = Field(default_factory=dict)


class PeerConfiguration(ResourceBase):
    """The parameters the backend wants a peer to have; its id is the peer's id."""

    kind: Literal[ResourceKind.PEER_CONFIGURATION] = ResourceKind.PEER_CONFIGURATION
    cluster: UUID | None = None
    parameters: tuple[Parameter, ...] = ()


#: Counters a parameter's state may carry (e.g. a CAN relay's frames and losses), at most 16.
Metrics = Annotated[dict[Annotated[str, Field(max_length=40)], Annotated[int, Field(ge=0, le=MAX_INT64)]],
                    Field(max_length=16)]


class ParameterPresent(Model):
    status: Literal["present"] = "present"
    #: What the peer made of it, for the engineer (e.g. "vxlan vni 4711, mtu 1450"); optional.
    detail: str | None = Field(default=None, max_length=500)
    metrics: Metrics = Field(default_factory=dict)


class ParameterAbsent(Model):
    status: Literal["absent"] = "absent"


class ParameterError(Model):
    status: Literal["error"] = "error"
    reason: str
    metrics: Metrics = Field(default_factory=dict)


ParameterStatus = Annotated[
    ParameterPresent | ParameterAbsent | ParameterError, Field(discriminator="status")
]


class ParameterReport(Model):
    id: UUID
    state: ParameterStatus


class PeerConfigurationState(ResourceBase):
    """What the peer reports for each parameter; its id is the peer's id."""

    kind: Literal[ResourceKind.PEER_CONFIGURATION_STATE] = ResourceKind.PEER_CONFIGURATION_STATE
    parameters: tuple[ParameterReport, ...] = ()


def dependency_order(parameters: tuple[Parameter, ...]) -> list[Parameter]:
    """Parameters so that each comes after its dependencies (stable for equal rank); the backend
    tracks progress and the agent applies in this order (reverse order to remove)."""
    by_id = {p.id: p for p in parameters}
    ordered: list[Parameter] = []
    seen: set[UUID] = set()

    def visit(p: Parameter) -> None:
        if p.id in seen:
            return
        seen.add(p.id)
        for dep in p.dependencies:
            if dep in by_id:
                visit(by_id[dep])
        ordered.append(p)

    for p in parameters:
        visit(p)
    return ordered
