"""A SIMULATED CAN plane for the in-memory data plane (``lea-peer run --data-plane memory``).

It carries no frame and opens no socket: it records which CAN parameters are Present so that the
agent's ordering, sweep and reports can be tested without root, and every detail says
"simulated". (``--data-plane memory --can-sim ...`` uses the real userspace plane instead.)
"""

from __future__ import annotations

from collections.abc import Collection
from uuid import UUID

from lea_peer.can.base import CanPlane
from resources.agent import CanSupport
from resources.configuration import (
    Parameter,
    ParameterAbsent,
    ParameterKind,
    ParameterPresent,
    ParameterStatus,
    Target,
)

SIMULATED = "simulated"


def _what(p: Parameter) -> str:
    value = p.value
    if p.kind == ParameterKind.DEVICE_INTERFACE:
        return f"CAN interface {value.get('interface', '')}"
    if p.kind == ParameterKind.CAN_BRIDGE:
        return f"CAN bridge {value.get('name', '')}"
    if p.kind == ParameterKind.CAN_CONNECTION:
        return f"CAN relay to {value.get('remote', '')}:{value.get('port', '')}"
    return f"CAN route {value.get('source', '')} -> {value.get('destination', '')}"


class SimulatedCanPlane(CanPlane):
    support = CanSupport.USERSPACE

    def __init__(self) -> None:
        #: Present CAN parameters: id -> what it is.
        self.present: dict[UUID, str] = {}

    async def apply(self, cluster: UUID, parameter: Parameter) -> ParameterStatus:
        if parameter.target == Target.ABSENT:
            self.present.pop(parameter.id, None)
            return ParameterAbsent()
        if parameter.kind != ParameterKind.DEVICE_INTERFACE:
            self.present[parameter.id] = _what(parameter)
        return ParameterPresent(detail=f"{SIMULATED}: {_what(parameter)}")

    async def check(self, cluster: UUID, parameter: Parameter) -> ParameterStatus:
        there = parameter.kind == ParameterKind.DEVICE_INTERFACE or parameter.id in self.present
        if parameter.target == Target.PRESENT and there:
            return ParameterPresent(detail=f"{SIMULATED}: {_what(parameter)}")
        return ParameterAbsent() if not there or parameter.target == Target.ABSENT else ParameterPresent()

    async def sweep(self, keep: Collection[UUID]) -> list[str]:
        doomed = [pid for pid in self.present if pid not in keep]
        return [f"{SIMULATED} {self.present.pop(pid)}" for pid in doomed]

    async def close(self) -> None:
        self.present.clear()
