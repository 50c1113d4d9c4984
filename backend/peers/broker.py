"""The PeerBroker interface.

A broker assumes nothing about where a peer runs. The backend hands it a peer's desired
PeerConfiguration; the broker delivers it however it reaches the peer, and reports what the peer
says through the internal actions (``set_peer_connection_state``,
``set_peer_configuration_state``), i.e. as events like any other. A WebSocket agent broker fits
the same shape: ``configure`` sends a message, the agent's replies become reports.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from uuid import UUID

from resources.configuration import PeerConfiguration
from resources.peer import PeerDescriptor


class PeerBroker(ABC):
    @abstractmethod
    def manages(self, peer: PeerDescriptor) -> bool:
        """True when this broker is the way to reach ``peer``."""

    @abstractmethod
    def start(self) -> None:
        """Begin reporting connection states; called after the manager accepts writes."""

    @abstractmethod
    def configure(self, peer_id: UUID, configuration: PeerConfiguration) -> None:
        """Deliver the desired configuration; must not block. The peer then reports every
        parameter of it afresh (Present | Absent | Error), starting with its current view."""

    @abstractmethod
    def stop(self) -> None:
        """Stop every thread; no report after this returns."""

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the broker has nothing left to do for what it was told so far (tests and
        benchmarks); True when reached. A broker that does its work elsewhere is always idle."""
        return True


class Brokers:
    """Picks the broker of a peer; peers no broker manages simply stay offline."""

    def __init__(self, brokers: Sequence[PeerBroker] = ()) -> None:
        self.brokers = list(brokers)

    def for_peer(self, peer: PeerDescriptor) -> PeerBroker | None:
        for broker in self.brokers:
            if broker.manages(peer):
                return broker
        return None

    def start(self) -> None:
        for broker in self.brokers:
            broker.start()

    def stop(self) -> None:
        for broker in self.brokers:
            broker.stop()
