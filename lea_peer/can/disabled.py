"""The CAN plane of ``lea-peer run --can none``: every CAN parameter is refused, nothing is made."""

from __future__ import annotations

from collections.abc import Collection
from uuid import UUID

from lea_peer.can.base import CanPlane
from resources.agent import CanSupport
from resources.configuration import Parameter, ParameterAbsent, ParameterError, ParameterStatus, Target

REFUSED = "CAN is switched off on this agent (lea-peer run --can none)"


class DisabledCanPlane(CanPlane):
    support = CanSupport.NONE

    async def apply(self, cluster: UUID, parameter: Parameter) -> ParameterStatus:
        return self._state(parameter)

    async def check(self, cluster: UUID, parameter: Parameter) -> ParameterStatus:
        return self._state(parameter)

    @staticmethod
    def _state(parameter: Parameter) -> ParameterStatus:
        if parameter.target == Target.ABSENT:
            return ParameterAbsent()
        return ParameterError(reason=f"{parameter.kind.value}: {REFUSED}")

    async def sweep(self, keep: Collection[UUID]) -> list[str]:
        return []

    async def close(self) -> None:
        return None
