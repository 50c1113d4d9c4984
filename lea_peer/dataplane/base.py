"""The interface between the agent (connection, ordering, reports) and the bench's network.

A data plane knows nothing about the backend. The agent hands it one parameter at a time, in
dependency order (reverse order for removal); it never raises for something the bench did wrong,
it returns ``ParameterError`` with a sentence an engineer understands (naming the link). Every link
it creates carries ``resources.agent.ownership_marker(cluster, parameter)`` as its ``ifalias``, and
it deletes only links that carry a marker.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from dataclasses import dataclass
from uuid import UUID

from resources.agent import Capabilities
from resources.configuration import Parameter, ParameterStatus


@dataclass(frozen=True)
class OwnedLink:
    """A link that carries our marker."""

    name: str
    cluster: UUID
    parameter: UUID


class DataPlane(ABC):
    async def start(self) -> None:  # noqa: B027  # a hook, empty unless a plane needs it
        """Open what the plane needs before the first parameter (simulated ECU endpoints); an
        exception naming the cause when it cannot (the agent exits 1)."""

    def watch(self, callback: Callable[[], None]) -> None:  # noqa: B027
        """``callback`` is called when a state changes by itself (a CAN relay lost its peer or
        hears it again): the agent re-checks at once. By default states change only when applied."""

    @abstractmethod
    async def probe(self) -> Capabilities:
        """What this bench's kernel can do (tunnel types, CAN, underlay MTU)."""

    @abstractmethod
    async def apply(self, cluster: UUID, parameter: Parameter) -> ParameterStatus:
        """Bring the bench to ``parameter.target``: check, make what is missing, check again.
        Present: create/adopt/join; Absent: remove what we own of it (a DeviceInterface is never
        deleted; Absent for it just reports Absent). Idempotent."""

    @abstractmethod
    async def check(self, cluster: UUID, parameter: Parameter) -> ParameterStatus:
        """The parameter's state on the bench now, changing nothing (the periodic re-check)."""

    @abstractmethod
    async def owned(self) -> list[OwnedLink]:
        """Every link on the bench that carries our marker."""

    @abstractmethod
    async def sweep(self, keep: Collection[UUID]) -> list[str]:
        """Delete every marked link whose parameter id is not in ``keep`` (children before the
        bridges they are joined to); the names deleted."""

    @abstractmethod
    async def close(self) -> None:
        """Release handles and sockets; the links stay as they are (the data plane stays up)."""
