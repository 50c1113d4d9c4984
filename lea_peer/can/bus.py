"""Frame buses: where CAN frames meet inside the agent.

A bus has a name and ports. ``port.send(frame, seen)`` delivers the frame, synchronously and in
order, to every other port of the bus that receives (never back to the port it came from).
``seen`` is the set of buses the frame has already been on; the bus adds its own name before it
delivers, and refuses a frame that was on it before. So a frame routed from a device bus to the
hub (CanLocalRoute to-bridge) is not routed back onto the device bus by the from-bridge route:
no echo loops, whatever the routes (the kernel's cangw uses a hop limit for the same reason).

This small interface is all a relay (lea_peer/can/relay.py) or a route needs: ``attach`` a port
with a receiver (or ``None`` for a port that only sends), ``send``, ``detach``. The userspace
plane's hub and each simulated ECU device are :class:`CanBus` objects; the kernel plane adapts an
AF_CAN socket on the vcan bridge to the same :class:`FrameBus` protocol.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from lea_peer.can.cannelloni import CanFrame

log = logging.getLogger("lea_peer.can.bus")

#: Called for every frame delivered to a port: the frame and the buses it has been on (this one included).
Receiver = Callable[[CanFrame, frozenset[str]], None]


class BusPort(Protocol):
    """One attachment to a bus."""

    @property
    def bus(self) -> str:
        """The name of the bus this port is on."""

    def send(self, frame: CanFrame, seen: frozenset[str] = frozenset()) -> None:
        """Put ``frame`` on the bus for every other port; refused when ``seen`` has this bus."""

    def detach(self) -> None:
        """Leave the bus: no more deliveries; sending does nothing. Idempotent."""


class FrameBus(Protocol):
    name: str

    def attach(self, name: str, receive: Receiver | None) -> BusPort:
        """A new port called ``name`` (for logs); ``receive`` None: the port only sends."""


class CanBus:
    """An in-process bus (the userspace hub, a simulated ECU device). Receivers must not block;
    one that raises is logged and the others still get the frame."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._ports: list[_Port] = []
        #: Frames refused because they had been on this bus before (a route loop).
        self.looped = 0
        #: Frames put on the bus.
        self.frames = 0

    def attach(self, name: str, receive: Receiver | None) -> _Port:
        port = _Port(self, name, receive)
        self._ports.append(port)
        return port

    @property
    def ports(self) -> list[str]:
        return [p.name for p in self._ports]

    def _deliver(self, origin: _Port, frame: CanFrame, seen: frozenset[str]) -> None:
        if self.name in seen:
            self.looped += 1
            return
        self.frames += 1
        seen = seen | {self.name}
        for port in tuple(self._ports):  # a receiver may detach a port meanwhile
            if port is origin or port.receive is None or port.detached:
                continue
            try:
                port.receive(frame, seen)
            except Exception:
                log.exception("port %s of bus %s failed on a frame", port.name, self.name)

    def _remove(self, port: _Port) -> None:
        if port in self._ports:
            self._ports.remove(port)


class _Port:
    def __init__(self, owner: CanBus, name: str, receive: Receiver | None) -> None:
        self._owner = owner
        self.name = name
        self.receive = receive
        self.detached = False

    @property
    def bus(self) -> str:
        return self._owner.name

    def send(self, frame: CanFrame, seen: frozenset[str] = frozenset()) -> None:
        if not self.detached:
            self._owner._deliver(self, frame, seen)

    def detach(self) -> None:
        self.detached = True
        self._owner._remove(self)
