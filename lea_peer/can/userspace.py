"""Userspace CAN, for hosts whose kernel has no CAN (no vcan, no can-gw, no AF_CAN sockets).

- CanBridge: an in-process frame hub (a :class:`CanBus` named like the vcan bridge, "vcan-lea").
- CanConnection: the cannelloni relay (lea_peer/can/relay.py) attached to the hub.
- CanLocalRoute: a route between a device's bus and the hub, one direction per parameter; it
  carries FD frames only when its value says "fd". A device exists only as a simulated ECU
  endpoint (``--can-sim``); any other CAN device is an Error naming the cause.
- DeviceInterface of a CAN interface: Present for a simulated ECU endpoint (bit timing does not
  apply to a simulation), else the same Error.

Everything here lives in the agent's process: it ends with the agent and is rebuilt from the
configuration the backend re-sends on reconnect.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from uuid import UUID

from lea_peer.can.base import CanPlane
from lea_peer.can.bus import BusPort, CanBus, FrameBus
from lea_peer.can.cannelloni import CanFrame
from lea_peer.can.ecu_sim import EcuAddress, SimulatedEcu
from lea_peer.can.relay import KEEPALIVE_S, LOST_AFTER_S
from lea_peer.can.relays import Relays, describe, relay_value
from resources.agent import CanSupport
from resources.configuration import (
    Parameter,
    ParameterAbsent,
    ParameterError,
    ParameterKind,
    ParameterPresent,
    ParameterStatus,
    Target,
)

log = logging.getLogger("lea_peer.can.userspace")

HUB_LABEL = "userspace hub"
#: The CAN bridge's name in the backend's parameter table.
BRIDGE_NAME = "vcan-lea"


def no_kernel_can(interface: str) -> str:
    return (
        f"this host's kernel has no CAN support: {interface} is not a simulated ECU endpoint"
        f" (lea-peer run --can-sim {interface}=udp:HOST:PORT)"
    )


class CanRoute:
    """Frames from ``source`` onto ``destination``; FD frames only when ``fd``."""

    def __init__(self, source: FrameBus, destination: FrameBus, fd: bool) -> None:
        self.source, self.destination, self.fd = source, destination, fd
        self.frames = self.skipped_fd = self.looped = 0
        self._out: BusPort = destination.attach(f"route from {source.name}", None)
        self._in: BusPort = source.attach(f"route to {destination.name}", self._forward)

    def _forward(self, frame: CanFrame, seen: frozenset[str]) -> None:
        if frame.fd and not self.fd:
            self.skipped_fd += 1  # a classic-only route, like a cangw rule without -X
            return
        if self.destination.name in seen:
            self.looped += 1  # it came from there: the route back would echo it
            return
        self.frames += 1
        self._out.send(frame, seen)

    def stop(self) -> None:
        self._in.detach()
        self._out.detach()


@dataclass
class _Route:
    value: tuple[str, str, bool]
    route: CanRoute
    what: str


class UserspaceCanPlane(CanPlane):
    support = CanSupport.USERSPACE

    def __init__(
        self,
        netns: str | None = None,
        simulations: Iterable[EcuAddress] = (),
        underlay_address: str = "",
        keepalive_s: float = KEEPALIVE_S,
        lost_after_s: float = LOST_AFTER_S,
    ) -> None:
        self.netns = netns
        self.underlay_address = underlay_address
        self.ecus: dict[str, SimulatedEcu] = {a.device: SimulatedEcu(a, netns) for a in simulations}
        self.hubs: dict[UUID, CanBus] = {}
        self.relays = Relays(netns, self.changed, keepalive_s, lost_after_s)
        self.routes: dict[UUID, _Route] = {}

    async def start(self) -> None:
        for ecu in self.ecus.values():
            await ecu.start()

    async def apply(self, cluster: UUID, parameter: Parameter) -> ParameterStatus:
        return await self._run(parameter, change=True)

    async def check(self, cluster: UUID, parameter: Parameter) -> ParameterStatus:
        return await self._run(parameter, change=False)

    async def _run(self, p: Parameter, change: bool) -> ParameterStatus:
        if p.kind == ParameterKind.DEVICE_INTERFACE:
            return self._device(p)
        if p.kind == ParameterKind.CAN_BRIDGE:
            return self._bridge(p, change)
        if p.kind == ParameterKind.CAN_CONNECTION:
            return await self._connection(p, change)
        if p.kind == ParameterKind.CAN_LOCAL_ROUTE:
            return self._route(p, change)
        return ParameterError(reason=f"{p.kind.value} is not a CAN parameter")

    # -- DeviceInterface ----------------------------------------------------------------------------
    def _device(self, p: Parameter) -> ParameterStatus:
        if p.target == Target.ABSENT:
            return ParameterAbsent()  # a device is the bench's: nothing to remove
        name = str(p.value.get("interface", ""))
        ecu = self.ecus.get(name)
        if ecu is None:
            return ParameterError(reason=no_kernel_can(name))
        return ParameterPresent(detail=ecu.description, metrics=ecu.metrics())

    # -- CanBridge ----------------------------------------------------------------------------------
    def _hub_named(self, name: str) -> tuple[UUID, CanBus] | None:
        return next(((pid, hub) for pid, hub in self.hubs.items() if hub.name == name), None)

    def _bridge(self, p: Parameter, change: bool) -> ParameterStatus:
        name = str(p.value.get("name", ""))
        hub = self.hubs.get(p.id)
        if p.target == Target.ABSENT:
            if hub is not None and change:
                del self.hubs[p.id]
                hub = None
            return ParameterAbsent() if hub is None else ParameterPresent()
        if hub is None or hub.name != name:
            if not change:
                return ParameterAbsent()
            if not name:
                return ParameterError(reason="the CAN bridge has no name")
            self.hubs.pop(p.id, None)
            named = self._hub_named(name)
            if named is not None:  # adopted from an earlier configuration: what is attached stays
                del self.hubs[named[0]]
                hub = named[1]
            else:
                hub = CanBus(name)
            self.hubs[p.id] = hub
        return ParameterPresent(detail=f"{HUB_LABEL} {name} (in-process; no vcan on this host)",
                                metrics={"frames": hub.frames})

    def _hub_for(self, p: Parameter) -> CanBus | None:
        for dep in p.dependencies:
            if dep in self.hubs:
                return self.hubs[dep]
        return None

    # -- CanConnection ------------------------------------------------------------------------------
    def _relay_value(self, p: Parameter) -> tuple[str, str, int] | str:
        return relay_value(p, self.underlay_address)

    async def _connection(self, p: Parameter, change: bool) -> ParameterStatus:
        current = self.relays.get(p.id)
        if p.target == Target.ABSENT:
            if current is not None and change:
                await self.relays.stop(p.id)
                current = None
            return ParameterAbsent() if current is None else ParameterPresent()
        value = self._relay_value(p)
        if isinstance(value, str):
            return ParameterError(reason=value)
        hub = self._hub_for(p)
        if current is not None and current.value == value and current.attached is hub and current.relay.running:
            return current.relay.state(current.what)
        if not change:
            return ParameterAbsent()
        if current is not None:
            await self.relays.stop(p.id)
        what = describe(p, value, f"{HUB_LABEL} {hub.name if hub else '?'}")
        if hub is None:
            return ParameterError(reason=f"{what}: its CAN bridge is not up")
        return await self.relays.start(p.id, value, hub, hub, what)

    # -- CanLocalRoute ------------------------------------------------------------------------------
    def _bus(self, name: str) -> FrameBus | None:
        named = self._hub_named(name)
        if named is not None:
            return named[1]
        ecu = self.ecus.get(name)
        return ecu.bus if ecu is not None else None

    def _describe_bus(self, name: str) -> str:
        ecu = self.ecus.get(name)
        return f"{name} ({ecu.description})" if ecu is not None else f"{name} ({HUB_LABEL})"

    def _route(self, p: Parameter, change: bool) -> ParameterStatus:
        current = self.routes.get(p.id)
        if p.target == Target.ABSENT:
            if current is not None and change:
                self._stop_route(p.id)
                current = None
            return ParameterAbsent() if current is None else ParameterPresent()
        source_name, destination_name = str(p.value.get("source", "")), str(p.value.get("destination", ""))
        fd = bool(p.value.get("fd", False))
        # One end is the hub (the CAN bridge), the other a device: it must be a simulated ECU endpoint.
        ends = (source_name, destination_name)
        simulated = [name for name in ends if name in self.ecus]
        if not simulated:
            hubs = {hub.name for hub in self.hubs.values()} | {BRIDGE_NAME}
            return ParameterError(reason=no_kernel_can(next((n for n in ends if n not in hubs), source_name)))
        hub_end = destination_name if simulated[0] == source_name else source_name
        source, destination = self._bus(source_name), self._bus(destination_name)
        if (source is None or destination is None) and not change:
            return ParameterAbsent()
        if source is None or destination is None:
            return ParameterError(reason=f"CAN route {source_name} -> {destination_name}: the CAN bridge"
                                         f" {hub_end} is not up")
        value = (source_name, destination_name, fd)
        if (current is not None and current.value == value and current.route.source is source
                and current.route.destination is destination):
            return self._route_state(current)
        if not change:
            return ParameterAbsent()
        if current is not None:
            self._stop_route(p.id)
        frames = "classic and FD frames" if fd else "classic frames only"
        what = f"route {self._describe_bus(source_name)} -> {self._describe_bus(destination_name)}, {frames}"
        made = _Route(value, CanRoute(source, destination, fd), what)
        self.routes[p.id] = made
        return self._route_state(made)

    @staticmethod
    def _route_state(route: _Route) -> ParameterStatus:
        return ParameterPresent(detail=route.what[:500],
                                metrics={"frames": route.route.frames, "frames_fd_skipped": route.route.skipped_fd})

    def _stop_route(self, pid: UUID) -> str | None:
        current = self.routes.pop(pid, None)
        if current is None:
            return None
        current.route.stop()
        return f"CAN route {current.value[0]} -> {current.value[1]}"

    # -- sweep and close ----------------------------------------------------------------------------
    async def sweep(self, keep: Collection[UUID]) -> list[str]:
        kept = set(keep)
        stopped: list[str] = []
        for pid in [pid for pid in self.routes if pid not in kept]:
            if (name := self._stop_route(pid)) is not None:
                stopped.append(name)
        stopped.extend(await self.relays.stop_all_but(kept))
        for pid in [pid for pid in self.hubs if pid not in kept]:
            stopped.append(f"CAN {HUB_LABEL} {self.hubs.pop(pid).name}")
        return stopped

    async def close(self) -> None:
        for pid in list(self.routes):
            self._stop_route(pid)
        await self.relays.close()
        self.hubs.clear()
        for ecu in self.ecus.values():
            await ecu.stop()
