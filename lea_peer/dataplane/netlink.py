"""The real data plane: each parameter applied with netlink (pyroute2's AsyncIPRoute).

One long-lived netlink handle per data plane (opening one in a namespace forks, ~15 ms), opened
with ``flags=0`` so that a missing namespace is an error instead of being created silently. Every
link it creates carries ``ownership_marker(cluster, parameter)`` as ``ifalias``; it deletes,
recreates or detaches only marked links. Every netlink failure becomes a ParameterError whose
sentence names the link and the cause.

``check`` reports what is on the bench and changes nothing: Present when the parameter's link is
there as its value says, Absent when it is not, Error when something conflicting is there (a link
of that name we did not create, a tunnel with other settings, a device interface missing or down).

Each bridge it owns gets a probe port (a TAP device, lea_peer/remote_check.py) for RemotePeerCheck.
A port carries its bridge's marker, so ``ip link`` shows whose it is, but it is no owned link:
it lives exactly as long as its descriptor, so ``owned`` does not report it and ``sweep`` never
deletes it (closing the descriptor does, when its bridge is removed or the agent ends).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable, Collection
from typing import Any
from uuid import UUID

from pyroute2 import AsyncIPRoute
from pyroute2 import config as _pyroute2_config
from pyroute2.netlink.exceptions import NetlinkError

from lea_peer.can.base import CanPlane, handles
from lea_peer.can.userspace import UserspaceCanPlane
from lea_peer.dataplane.base import DataPlane, OwnedLink
from lea_peer.dataplane.links import Link
from lea_peer.dataplane.netlink_links import LinkFailure, NetlinkLinks
from lea_peer.dataplane.netlink_links import cause as _cause
from lea_peer.probe import probe_capabilities
from lea_peer.remote_check import (
    BROADCAST,
    ProbePort,
    ProbeStation,
    check_remote_peer,
    mac_text,
    probe_port_mac,
    probe_port_name,
)
from lea_peer.sockets import TUN_DEVICE, filter_tap, open_tap
from resources.agent import Capabilities, ownership_marker, parse_ownership_marker
from resources.configuration import (
    Parameter,
    ParameterAbsent,
    ParameterError,
    ParameterKind,
    ParameterPresent,
    ParameterStatus,
    Target,
)

_TUNNEL_KINDS = ("gretap", "vxlan")
PROBE_PORT_KIND = "tun"  # what netlink calls a TAP device
# A TAP's largest MTU: never the smallest port, so the bridge's own MTU (its smallest port's, unless
# set) stays what the bench's links make it.
PROBE_PORT_MTU = 65521

# pyroute2 forks a child for each namespace operation and stops it with SIGTERM; the child inherits
# asyncio's signal handler and wakeup socket, so its SIGTERM would stop the agent's loop. With this
# the child resets SIGTERM to the default first and just dies (tests/unit/.../test_netlink_children.py).
_pyroute2_config.disable_mp_signal = True


def _text(value: dict[str, str | int | bool], key: str) -> str:
    return str(value.get(key, ""))


def _number(value: dict[str, str | int | bool], key: str, default: int = 0) -> int:
    raw = value.get(key, default)
    return int(raw) if not isinstance(raw, str) or raw.isdigit() else default


class NetlinkDataPlane(NetlinkLinks, DataPlane):
    def __init__(
        self, peer_id: UUID, netns: str | None = None, underlay_address: str = "", can: CanPlane | None = None
    ) -> None:
        self.peer_id = peer_id
        #: CAN parameters go here (lea_peer.can.base.handles); default: userspace CAN, no simulated ECU.
        self.can = can if can is not None else UserspaceCanPlane(netns, (), underlay_address)
        super().__init__(netns)
        self.underlay_address = underlay_address
        self._home_ipr: Any = None  # with --netns: netlink in the agent's own namespace, for new probe ports
        self._stations: dict[str, ProbeStation] = {}

    # -- the handle ---------------------------------------------------------------------------------
    async def _home(self) -> Any:
        """Netlink in the namespace this process runs in (where a new TAP device appears)."""
        if self.netns is None:
            return await self._handle()
        if self._home_ipr is None:
            ipr = AsyncIPRoute()
            try:
                await ipr.setup_endpoint()
            except OSError as exc:
                raise LinkFailure(f"cannot open netlink in the agent's own namespace: {_cause(exc)}") from exc
            self._home_ipr = ipr
        return self._home_ipr

    async def _delete(self, link: Link) -> None:
        await self.stop_station(link.name)
        await super()._delete(link)

    # -- DataPlane --------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.can.start()

    def watch(self, callback: Callable[[], None]) -> None:
        self.can.on_change = callback

    async def probe(self) -> Capabilities:
        capabilities = await probe_capabilities(self.netns, self.underlay_address)
        return capabilities.model_copy(update={"can": self.can.support})

    async def apply(self, cluster: UUID, parameter: Parameter) -> ParameterStatus:
        return await self._run(cluster, parameter, change=True)

    async def check(self, cluster: UUID, parameter: Parameter) -> ParameterStatus:
        return await self._run(cluster, parameter, change=False)

    async def _run(self, cluster: UUID, parameter: Parameter, change: bool) -> ParameterStatus:
        if handles(parameter):  # no netlink lock: the CAN plane has its own state
            if change:
                return await self.can.apply(cluster, parameter)
            return await self.can.check(cluster, parameter)
        if parameter.kind is ParameterKind.REMOTE_PEER_CHECK:
            return await self._remote_peer_check(parameter)  # no netlink: it must not hold the lock for 5 s
        handler = {
            ParameterKind.DEVICE_INTERFACE: self._device_interface,
            ParameterKind.ETHERNET_BRIDGE: self._ethernet_bridge,
            ParameterKind.GRE_INTERFACE: self._tunnel,
            ParameterKind.INTERFACE_JOIN: self._join,
        }[parameter.kind]
        marker = ownership_marker(cluster, parameter.id)
        try:
            async with self._lock:
                return await handler(parameter, marker, change)
        except LinkFailure as exc:
            return ParameterError(reason=str(exc))

    async def _device_interface(self, parameter: Parameter, marker: str, change: bool) -> ParameterStatus:
        name = _text(parameter.value, "interface")
        if parameter.target is Target.ABSENT:
            return ParameterAbsent()  # a device interface is the bench's: never deleted, not even set down
        link = await self._get(name)
        if link is None:
            return ParameterError(reason=f"interface {name} does not exist in {self._where()}")
        if not link.up:
            if not change:
                return ParameterError(reason=f"interface {name} is down")
            await self._set_up(link)
        return ParameterPresent()

    async def _ethernet_bridge(self, parameter: Parameter, marker: str, change: bool) -> ParameterStatus:
        name = _text(parameter.value, "name")
        link = await self._get(name)
        if (settled := await self._unowned_or_absent(name, link, parameter, change)) is not None:
            return settled
        if link is not None and link.kind != "bridge":
            if not change:
                return ParameterError(reason=f"link {name} is a {link.kind or 'device'}, not a bridge")
            await self._delete(link)
            link = None
        if not change:
            if link is None:
                return ParameterAbsent()
            if not link.up:
                return ParameterError(reason=f"bridge {name} is down")
            # Not a change to the bench's configuration: the probe port is this process's (it
            # dies with the agent; a bridge recreated behind our back loses it, and this brings it back).
            return self._bridge_present(await self._ensure_station(link, marker))
        if link is None:
            link = await self._create(name, marker, "bridge")
        else:
            await self._adopt(link, marker)
        return self._bridge_present(await self._ensure_station(link, marker))

    @staticmethod
    def _bridge_present(station_failure: str | None) -> ParameterStatus:
        # The bridge itself is fine; the remote's check will fail, and this says why.
        if station_failure:
            return ParameterPresent(detail=f"not answering probe frames: {station_failure}")
        return ParameterPresent()

    def _tunnel_mismatch(self, link: Link, value: dict[str, str | int | bool]) -> str | None:
        """What differs between the tunnel on the bench and the value, or None."""
        encapsulation = _text(value, "encapsulation") or "gretap"
        if link.kind != encapsulation:
            return f"it is a {link.kind or 'device'}, not a {encapsulation} tunnel"
        local, remote, mtu = _text(value, "local"), _text(value, "remote"), _number(value, "mtu")
        if encapsulation == "vxlan":
            wanted = {"ID": _number(value, "vni"), "GROUP": remote, "PORT": _number(value, "port", 4789)}
        else:
            wanted = {"REMOTE": remote}
        if local:
            wanted["LOCAL"] = local
        for key, expected in wanted.items():
            if link.info.get(key) != expected:
                return f"its {key.lower()} is {link.info.get(key)}, not {expected}"
        if mtu and link.mtu != mtu:
            return f"its mtu is {link.mtu}, not {mtu}"
        return None

    @staticmethod
    def _tunnel_detail(link: Link) -> str:
        if link.kind == "vxlan":
            return (
                f"vxlan vni {link.info.get('ID')} to {link.info.get('GROUP')}:{link.info.get('PORT')}, mtu {link.mtu}"
            )
        return f"gretap to {link.info.get('REMOTE')}, mtu {link.mtu}"

    async def _tunnel(self, parameter: Parameter, marker: str, change: bool) -> ParameterStatus:
        value = parameter.value
        name = _text(value, "name")
        link = await self._get(name)
        if (settled := await self._unowned_or_absent(name, link, parameter, change)) is not None:
            return settled
        mismatch = None if link is None else self._tunnel_mismatch(link, value)
        if not change:
            if link is None:
                return ParameterAbsent()
            if mismatch:
                return ParameterError(reason=f"tunnel {name} differs from its configuration: {mismatch}")
            if not link.up:
                return ParameterError(reason=f"tunnel {name} is down")
            return ParameterPresent(detail=self._tunnel_detail(link))
        if link is not None and mismatch:
            await self._delete(link)
            link = None
        if link is None:
            link = await self._create_tunnel(name, marker, value)
        else:
            await self._set_up(link)
        current = await self._get(name)
        return ParameterPresent(detail=self._tunnel_detail(current or link))

    async def _create_tunnel(self, name: str, marker: str, value: dict[str, str | int | bool]) -> Link:
        encapsulation = _text(value, "encapsulation") or "gretap"
        if encapsulation not in _TUNNEL_KINDS:
            raise LinkFailure(f"tunnel {name}: unknown encapsulation {encapsulation!r}")
        local, remote, mtu = _text(value, "local"), _text(value, "remote"), _number(value, "mtu")
        if not remote:
            raise LinkFailure(f"tunnel {name} has no remote underlay address")
        attrs: dict[str, Any] = {}
        if encapsulation == "vxlan":
            # A unicast group is the remote: the kernel installs the all-zero FDB entry to it, so
            # every frame of this point-to-point tunnel goes there; learning stays off.
            attrs.update(
                vxlan_id=_number(value, "vni"), vxlan_group=remote, vxlan_port=_number(value, "port", 4789),
                vxlan_learning=0,
            )
            if local:
                attrs["vxlan_local"] = local
        else:
            attrs["gre_remote"] = remote
            if local:
                attrs["gre_local"] = local
        if mtu:
            attrs["mtu"] = mtu
        try:
            return await self._create(name, marker, encapsulation, **attrs)
        except LinkFailure as exc:
            if isinstance(exc.__cause__, NetlinkError) and exc.__cause__.code == 95:  # EOPNOTSUPP
                raise LinkFailure(
                    f"cannot create {encapsulation} tunnel {name}: this kernel has no {encapsulation} support"
                ) from exc
            raise

    async def _join(self, parameter: Parameter, marker: str, change: bool) -> ParameterStatus:
        name, bridge_name = _text(parameter.value, "interface"), _text(parameter.value, "bridge")
        # The bridge first: a failed "set master" has already detached the link from its old bridge.
        bridge = await self._get(bridge_name)
        link = await self._get(name)
        joined = bridge is not None and link is not None and link.master == bridge.index
        if parameter.target is Target.ABSENT:
            if joined and change:
                assert link is not None
                await self._request(
                    f"cannot take {name} out of bridge {bridge_name}",
                    lambda ipr: ipr.link("set", index=link.index, master=0),
                )
                return ParameterAbsent()
            return ParameterPresent() if joined else ParameterAbsent()
        if joined or not change:
            return ParameterPresent() if joined else ParameterAbsent()
        if bridge is None or bridge.kind != "bridge":
            return ParameterError(reason=f"cannot join {name}: bridge {bridge_name} does not exist")
        if link is None:
            return ParameterError(reason=f"cannot join {name} to bridge {bridge_name}: {name} does not exist")
        await self._request(
            f"cannot join {name} to bridge {bridge_name}",
            lambda ipr: ipr.link("set", index=link.index, master=bridge.index),
        )
        await self._set_up(link)
        return ParameterPresent()

    async def _remote_peer_check(self, parameter: Parameter) -> ParameterStatus:
        if parameter.target is Target.ABSENT:
            return ParameterAbsent()  # nothing on the bench to remove
        value = parameter.value
        bridge_name, remote = _text(value, "bridge"), _text(value, "remote")
        if not bridge_name:
            return ParameterError(reason="remote peer check names no bridge to send its probe frame on")
        try:
            peer = UUID(_text(value, "peer"))
        except ValueError:
            return ParameterError(reason=f"remote peer check has no valid peer id ({_text(value, 'peer')!r})")
        cannot = f"cannot send probe frames on bridge {bridge_name}"
        try:
            async with self._lock:  # only to find the station; the 5 s wait runs outside the lock
                bridge = await self._get(bridge_name)
                if bridge is None or bridge.kind != "bridge":
                    return ParameterError(reason=f"{cannot}: it does not exist in {self._where()}")
                failure = await self._ensure_station(bridge, bridge.alias)
                station = self._stations.get(bridge_name)
        except LinkFailure as exc:
            return ParameterError(reason=f"{cannot}: {exc}")
        if failure or station is None:
            return ParameterError(reason=f"{cannot}: {failure}")
        return await check_remote_peer(station, peer, remote, self.netns)

    # -- probe ports and stations -----------------------------------------------------------------
    async def _open_probe_port(self, bridge: Link, marker: str) -> ProbePort:
        """A new TAP port joined to ``bridge`` and up (the caller holds the lock). It is made in
        this process's namespace and, with --netns, moved into the agent's: the descriptor stays
        attached to it, so no thread has to enter the namespace."""
        name, device_mac, frames_mac = probe_port_name(), probe_port_mac(), probe_port_mac()
        try:
            fd = open_tap(name)
        except OSError as exc:
            raise LinkFailure(f"cannot make a probe port with {TUN_DEVICE}: {_cause(exc)}") from exc
        try:
            try:
                # Requests are broadcast, replies sent to the station: not every frame flooded to the port.
                filter_tap(fd, [frames_mac, BROADCAST])
            except OSError as exc:
                raise LinkFailure(f"cannot filter probe port {name}: {_cause(exc)}") from exc
            home = await self._home()
            try:
                index = socket.if_nametoindex(name)
            except OSError as exc:
                raise LinkFailure(f"probe port {name} vanished right after it was made") from exc
            await self._request_on(
                home, f"cannot set up probe port {name}",
                lambda ipr: ipr.link(
                    "set", index=index, address=mac_text(device_mac), ifalias=marker, mtu=PROBE_PORT_MTU
                ),
            )
            if self.netns is not None:
                await self._request_on(
                    home, f"cannot move probe port {name} into {self._where()}",
                    lambda ipr: ipr.link("set", index=index, net_ns_fd=self.netns),
                )
            port = await self._get(name)
            if port is None:
                raise LinkFailure(f"probe port {name} vanished right after it was made")
            await self._request(
                f"cannot join probe port {name} to bridge {bridge.name}",
                lambda ipr: ipr.link("set", index=port.index, master=bridge.index, state="up"),
            )
        except BaseException:  # cancelled too: never leave a descriptor, and so a port, behind
            os.close(fd)  # the port disappears with it
            raise
        return ProbePort(fd, name, bridge.name, frames_mac)

    @staticmethod
    async def _request_on(ipr: Any, what: str, call: Callable[[Any], Awaitable[Any]]) -> Any:
        try:
            return await call(ipr)
        except (NetlinkError, OSError) as exc:
            raise LinkFailure(f"{what}: {_cause(exc)}") from exc

    async def _ensure_station(self, bridge: Link, marker: str) -> str | None:
        """A running probe station on ``bridge`` with its port joined to it (the caller holds the
        lock; idempotent); the sentence why not, or None."""
        current = self._stations.get(bridge.name)
        if current is not None:
            port = await self._get(current.port.name)
            if current.running and port is not None and port.master == bridge.index and port.up:
                return None
            await self.stop_station(bridge.name)  # its bridge was recreated, or its port taken out
        try:
            station = ProbeStation(self.peer_id, await self._open_probe_port(bridge, marker))
        except LinkFailure as exc:
            return str(exc)
        station.start()
        self._stations[bridge.name] = station
        return None

    async def stop_station(self, bridge: str) -> None:
        """Stop answering on ``bridge``; closing its port removes the TAP device."""
        station = self._stations.pop(bridge, None)
        if station is not None:
            await station.stop()

    @property
    def responding_on(self) -> list[str]:
        return sorted(name for name, station in self._stations.items() if station.running)

    # -- ownership --------------------------------------------------------------------------------
    @staticmethod
    def _marker_of(link: Link) -> tuple[UUID, UUID] | None:
        """(cluster, parameter) of a link we own; None for a probe port, which carries its
        bridge's marker but goes away with its descriptor, not by deletion."""
        return None if link.kind == PROBE_PORT_KIND else parse_ownership_marker(link.alias)

    async def owned(self) -> list[OwnedLink]:
        async with self._lock:
            links = await self._links()
        result = []
        for link in links:
            marker = self._marker_of(link)
            if marker is not None:
                result.append(OwnedLink(name=link.name, cluster=marker[0], parameter=marker[1]))
        return result

    async def sweep(self, keep: Collection[UUID]) -> list[str]:
        kept = set(keep)
        async with self._lock:
            doomed = [
                link
                for link in await self._links()
                if (marker := self._marker_of(link)) is not None and marker[1] not in kept
            ]
            # Tunnels (and anything joined to a bridge) before the bridges themselves.
            doomed.sort(key=lambda link: link.kind == "bridge")
            deleted = []
            for link in doomed:
                try:
                    await self._delete(link)
                except LinkFailure:
                    continue  # gone already (a tunnel deleted with its namespace) or busy: next sweep
                deleted.append(link.name)
        return [*await self.can.sweep(kept), *deleted]

    async def close(self) -> None:
        await self.can.close()
        for bridge in list(self._stations):
            await self.stop_station(bridge)
        for ipr in (self._ipr, self._home_ipr):
            if ipr is not None:
                ipr.close()
        self._ipr = self._home_ipr = None
