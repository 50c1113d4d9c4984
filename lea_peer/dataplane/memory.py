"""A SIMULATED data plane: links live in a dict, nothing touches the kernel.

For tests and benchmarks only (``lea-peer run --data-plane memory``). It follows the real data
plane's rules per kind so the agent's ordering, ownership and drift handling can be tested without
root, and every detail and reason it reports says "simulated" so that nobody mistakes it for a
configured bench.

CAN parameters go to a CAN plane: by default :class:`SimulatedCanPlane` (it records, carries no
frame); ``lea-peer run --data-plane memory --can-sim ...`` passes the real userspace plane, whose
relays and simulated ECU endpoints carry frames over UDP in the agent's own namespace.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from uuid import UUID

from lea_peer.can.base import CanPlane, handles
from lea_peer.can.simulated import SimulatedCanPlane
from lea_peer.dataplane.base import DataPlane, OwnedLink
from resources.agent import Capabilities, TunnelType, ownership_marker, parse_ownership_marker
from resources.configuration import (
    Parameter,
    ParameterAbsent,
    ParameterError,
    ParameterKind,
    ParameterPresent,
    ParameterStatus,
    Target,
)

SIMULATED = "simulated"
#: MTU of a simulated VXLAN tunnel over a 1500-byte underlay (50 bytes of encapsulation).
_VXLAN_MTU = 1450
_GRETAP_MTU = 1462


@dataclass
class MemoryLink:
    """One simulated link."""

    name: str
    kind: str  # "device", "bridge", "vxlan" or "gretap"
    marker: str | None = None
    up: bool = False
    master: str | None = None
    mtu: int = 1500
    info: dict[str, str | int | bool] = field(default_factory=dict)


Gate = Callable[[str, Parameter], Awaitable[None]]


class MemoryDataPlane(DataPlane):
    """A simulated bench (no kernel). ``devices``: the device interfaces that exist (``None``: any
    name exists); ``failures``: parameter id -> reason, every apply of it fails with that reason;
    ``gate``: awaited at the start of every apply/check (``"apply"``/``"check"``, parameter), so a
    test can hold the agent inside a data-plane call. ``calls`` records every apply and check;
    ``can``: where CAN parameters go (default: a simulated CAN plane)."""

    def __init__(
        self,
        devices: Iterable[str] | None = None,
        failures: Mapping[UUID, str] | None = None,
        gate: Gate | None = None,
        can: CanPlane | None = None,
    ) -> None:
        self.can = can if can is not None else SimulatedCanPlane()
        self.links: dict[str, MemoryLink] = {}
        self.any_device = devices is None
        for name in devices or ():
            self.links[name] = MemoryLink(name, "device")
        self.failures: dict[UUID, str] = dict(failures or {})
        self.gate = gate
        self.calls: deque[tuple[str, UUID, Target]] = deque(maxlen=100_000)  # bounded: benchmarks run long
        self.closed = False

    # -- what tests use to change the bench behind the agent's back (drift) --

    def drop(self, name: str) -> None:
        """Delete a link as if someone ran ``ip link del`` (or unplugged an adapter)."""
        self._delete(name)

    def plug(self, name: str) -> None:
        """A device interface (re)appears, down and joined to nothing (a re-plugged adapter)."""
        self.links[name] = MemoryLink(name, "device")

    # -- DataPlane --

    async def start(self) -> None:
        await self.can.start()

    def watch(self, callback: Callable[[], None]) -> None:
        self.can.on_change = callback

    async def probe(self) -> Capabilities:
        return Capabilities(tunnels=(TunnelType.GRETAP, TunnelType.VXLAN), can=self.can.support, underlay_mtu=1500)

    async def apply(self, cluster: UUID, parameter: Parameter) -> ParameterStatus:
        self.calls.append(("apply", parameter.id, parameter.target))
        if self.gate is not None:
            await self.gate("apply", parameter)
        await asyncio.sleep(0)  # a real data plane yields to the loop on every netlink call
        if parameter.id in self.failures:
            return _error(self.failures[parameter.id])
        if handles(parameter):
            return await self.can.apply(cluster, parameter)
        if parameter.target == Target.PRESENT:
            return self._make(cluster, parameter)
        return self._remove(cluster, parameter)

    async def check(self, cluster: UUID, parameter: Parameter) -> ParameterStatus:
        self.calls.append(("check", parameter.id, parameter.target))
        if self.gate is not None:
            await self.gate("check", parameter)
        await asyncio.sleep(0)
        if handles(parameter):
            return await self.can.check(cluster, parameter)
        return self._state(cluster, parameter)

    async def owned(self) -> list[OwnedLink]:
        owned: list[OwnedLink] = []
        for link in self.links.values():
            parsed = parse_ownership_marker(link.marker)
            if parsed is not None:
                owned.append(OwnedLink(link.name, parsed[0], parsed[1]))
        return owned

    async def sweep(self, keep: Collection[UUID]) -> list[str]:
        doomed = [o.name for o in await self.owned() if o.parameter not in keep]
        # Children before the bridges they are joined to, as the kernel data plane must.
        doomed.sort(key=lambda name: self.links[name].kind == "bridge")
        for name in doomed:
            self._delete(name)
        return [*await self.can.sweep(keep), *doomed]

    async def close(self) -> None:
        await self.can.close()
        self.closed = True

    # -- per kind --

    def _device(self, name: str) -> MemoryLink | None:
        link = self.links.get(name)
        if link is None and self.any_device and name:
            link = self.links[name] = MemoryLink(name, "device")
        return link

    def _make(self, cluster: UUID, p: Parameter) -> ParameterStatus:
        marker = ownership_marker(cluster, p.id)
        kind = p.kind
        if kind == ParameterKind.DEVICE_INTERFACE:
            name = str(p.value.get("interface", ""))
            device = self._device(name)
            if device is None:
                return _error(f"device interface {name} does not exist on this bench")
            device.up = True
            return _present(f"interface {name} is up")
        if kind == ParameterKind.ETHERNET_BRIDGE:
            name = str(p.value.get("name", ""))
            link = self.links.get(name)
            if link is not None and link.marker is None:
                return _error(f"a link named {name} exists and was not created by LEA; rename or remove it")
            if link is not None and link.kind != "bridge":
                return _error(f"link {name} is a {link.kind}, not a bridge")
            adopted = link is not None
            if link is None:
                link = self.links[name] = MemoryLink(name, "bridge")
            link.marker, link.up = marker, True
            return _present(f"bridge {name} {'adopted' if adopted else 'created'}, up")
        if kind == ParameterKind.GRE_INTERFACE:
            name = str(p.value.get("name", ""))
            encapsulation = str(p.value.get("encapsulation", TunnelType.VXLAN.value))
            if encapsulation not in {t.value for t in TunnelType}:
                return _error(f"tunnel {name}: unknown encapsulation {encapsulation!r}")
            default_mtu = _VXLAN_MTU if encapsulation == TunnelType.VXLAN.value else _GRETAP_MTU
            mtu = int(p.value.get("mtu", default_mtu))
            link = self.links.get(name)
            if link is not None and link.marker is None:
                return _error(f"a link named {name} exists and was not created by LEA; rename or remove it")
            if link is None or link.kind != encapsulation:
                if link is not None:
                    self._delete(name)
                link = self.links[name] = MemoryLink(name, encapsulation)
            link.marker, link.up, link.mtu = marker, True, mtu
            link.info = {k: v for k, v in p.value.items() if k != "name"}
            remote = p.value.get("remote", "")
            vni = f" vni {p.value['vni']}" if "vni" in p.value else ""
            return _present(f"{encapsulation}{vni} to {remote}, mtu {mtu}")
        if kind == ParameterKind.INTERFACE_JOIN:
            iface, bridge_name = str(p.value.get("interface", "")), str(p.value.get("bridge", ""))
            bridge = self.links.get(bridge_name)
            if bridge is None or bridge.kind != "bridge":
                return _error(f"cannot join {iface}: bridge {bridge_name} does not exist")
            link = self.links.get(iface) or self._device(iface)
            if link is None:
                return _error(f"cannot join {iface} to {bridge_name}: {iface} does not exist")
            link.master, link.up = bridge_name, True
            return _present(f"{iface} joined to {bridge_name}")
        return ParameterPresent(detail=SIMULATED)  # RemotePeerCheck

    def _remove(self, cluster: UUID, p: Parameter) -> ParameterStatus:
        kind = p.kind
        if kind in (ParameterKind.ETHERNET_BRIDGE, ParameterKind.GRE_INTERFACE):
            link = self.links.get(str(p.value.get("name", "")))
            if link is not None and link.marker is not None:
                self._delete(link.name)
        elif kind == ParameterKind.INTERFACE_JOIN:
            link = self.links.get(str(p.value.get("interface", "")))
            if link is not None and link.master == p.value.get("bridge"):
                link.master = None
        # DeviceInterface is never deleted; RemotePeerCheck holds nothing here.
        return ParameterAbsent()

    def _state(self, cluster: UUID, p: Parameter) -> ParameterStatus:
        kind = p.kind
        marker = ownership_marker(cluster, p.id)
        if kind == ParameterKind.DEVICE_INTERFACE:
            name = str(p.value.get("interface", ""))
            device = self.links.get(name)
            if device is None and not self.any_device:
                return _error(f"device interface {name} does not exist on this bench")
            if device is not None and not device.up and p.target == Target.PRESENT:
                return _error(f"device interface {name} is down")
            return _present(f"interface {name} is up") if p.target == Target.PRESENT else ParameterAbsent()
        if kind in (ParameterKind.ETHERNET_BRIDGE, ParameterKind.GRE_INTERFACE):
            link = self.links.get(str(p.value.get("name", "")))
            if link is None or link.marker != marker:
                return ParameterAbsent()
            return _present(f"{link.kind} {link.name}, mtu {link.mtu}")
        if kind == ParameterKind.INTERFACE_JOIN:
            iface, bridge = str(p.value.get("interface", "")), str(p.value.get("bridge", ""))
            link = self.links.get(iface)
            if link is None or link.master != bridge:
                return ParameterAbsent()
            return _present(f"{iface} joined to {bridge}")
        # RemotePeerCheck
        return ParameterPresent(detail=SIMULATED) if p.target == Target.PRESENT else ParameterAbsent()

    def _delete(self, name: str) -> None:
        self.links.pop(name, None)
        # Deleting a bridge releases what was joined to it, as in the kernel.
        for link in self.links.values():
            if link.master == name:
                link.master = None


def _present(detail: str) -> ParameterPresent:
    return ParameterPresent(detail=f"{SIMULATED}: {detail}")


def _error(reason: str) -> ParameterError:
    return ParameterError(reason=f"{reason} ({SIMULATED} data plane)")
