"""The CAN part of a data plane: CanBridge, CanConnection, CanLocalRoute and CAN DeviceInterfaces.

A data plane hands every parameter :func:`handles` accepts to its :class:`CanPlane` and keeps the
Ethernet kinds itself. There are two implementations behind this one interface (docs/benches.md,
"CAN"): the kernel one (vcan bridge, cangw rules, the relay on an AF_CAN socket) and the userspace
one (an in-process frame hub, the same relay, simulated ECU endpoints only). The rules of
``lea_peer.dataplane.base`` hold here too: never raise for the bench's faults, return
``ParameterError`` with a sentence naming the interface, and change nothing on ``check``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from uuid import UUID

from resources.agent import CanSupport
from resources.configuration import Parameter, ParameterKind, ParameterStatus

CAN_KINDS = frozenset({ParameterKind.CAN_BRIDGE, ParameterKind.CAN_CONNECTION, ParameterKind.CAN_LOCAL_ROUTE})


def handles(parameter: Parameter) -> bool:
    """True for the CAN kinds and for the DeviceInterface of a CAN interface (its value has "can")."""
    return parameter.kind in CAN_KINDS or (
        parameter.kind == ParameterKind.DEVICE_INTERFACE and "can" in parameter.value
    )


class CanPlane(ABC):
    #: Which way this plane carries CAN; the agent announces it in ``capabilities.can``.
    support: CanSupport
    #: Set by the data plane: called (on the loop) when a state changed by itself, e.g. a relay
    #: lost its peer or heard it again, so the agent re-checks now, not at the next periodic re-check.
    on_change: Callable[[], None] | None = None

    def changed(self) -> None:
        """Tell the agent that a state changed by itself."""
        if self.on_change is not None:
            self.on_change()

    async def start(self) -> None:  # noqa: B027  # a hook, empty unless a plane needs it
        """Open what the plane needs before the first parameter (e.g. simulated ECU endpoints);
        an OSError naming the cause when it cannot (the agent exits 1)."""

    @abstractmethod
    async def apply(self, cluster: UUID, parameter: Parameter) -> ParameterStatus:
        """Bring the bench to ``parameter.target`` for one parameter :func:`handles` accepts."""

    @abstractmethod
    async def check(self, cluster: UUID, parameter: Parameter) -> ParameterStatus:
        """Its state now, changing nothing; a relay's state carries its metrics."""

    @abstractmethod
    async def sweep(self, keep: Collection[UUID]) -> list[str]:
        """Stop and remove what this plane runs or made for parameters not in ``keep``; the names."""

    @abstractmethod
    async def close(self) -> None:
        """Stop relays and hubs (in-process state ends with the agent); kernel links stay."""
