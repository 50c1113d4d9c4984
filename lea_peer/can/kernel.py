"""Kernel CAN, for benches whose kernel has vcan, can-gw and AF_CAN sockets (docs/benches.md, "CAN").

- CanBridge: a vcan link (MTU 72, so CAN FD frames fit) made by netlink, marked with
  ``ownership_marker`` and adopted, refused or removed by the same rules as the Ethernet links
  (lea_peer/dataplane/netlink_links.py).
- CanLocalRoute: cangw rules from its source to its destination (lea_peer/can/cangw.py), one for
  classic frames and, with ``fd``, one for CAN FD frames, echoed and hop-limited: 2 hops into the
  bridge (the frame may still leave it for another device), 1 out of it. Absent deletes them;
  the kernel drops the rules of a deleted device by itself.
- CanConnection: the cannelloni relay (lea_peer/can/relay.py) on an AF_CAN socket bound to the
  bridge (lea_peer/can/socketcan.py); every relay of a bridge shares that socket's bus.
- DeviceInterface of a CAN controller: its bit timing set by netlink (down, set, up; only when it
  differs); of a vcan: it exists and is up.

Kernel links and rules stay when the agent stops; relays and their sockets end with it.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Collection
from uuid import UUID

from lea_peer.can import bittiming
from lea_peer.can.base import CanPlane
from lea_peer.can.cangw import BRIDGE_HOPS, Gateway, GatewayFailure, GatewayRule, ListedRule, hops_problem
from lea_peer.can.kernel_probe import try_kernel_can
from lea_peer.can.relay import KEEPALIVE_S, LOST_AFTER_S
from lea_peer.can.relays import Relays, describe, relay_value
from lea_peer.can.socketcan import CANFD_MTU, SocketCanBus
from lea_peer.dataplane.links import Link
from lea_peer.dataplane.netlink_links import LinkFailure, NetlinkLinks, cause
from lea_peer.probe import in_scratch_namespace
from resources.agent import CanSupport, ownership_marker, parse_ownership_marker
from resources.configuration import (
    Parameter,
    ParameterAbsent,
    ParameterError,
    ParameterKind,
    ParameterPresent,
    ParameterStatus,
    Target,
)

log = logging.getLogger("lea_peer.can.kernel")

ARPHRD_CAN = 280
VCAN = "vcan"


async def probe_kernel_can(netns: str | None = None) -> str | None:
    """None when this kernel carries CAN the kernel way (a vcan link can be made in a scratch
    namespace, an AF_CAN socket opens on it, can-gw answers), else the reasons. Without the
    right to make a namespace it tries in ``netns`` with a throwaway link, deleted at once."""
    return await in_scratch_namespace(try_kernel_can, netns)


def _text(value: dict[str, str | int | bool], key: str) -> str:
    return str(value.get(key, ""))


class KernelCanPlane(NetlinkLinks, CanPlane):
    support = CanSupport.KERNEL

    def __init__(
        self,
        netns: str | None = None,
        underlay_address: str = "",
        keepalive_s: float = KEEPALIVE_S,
        lost_after_s: float = LOST_AFTER_S,
        gateway: Gateway | None = None,
    ) -> None:
        super().__init__(netns)
        self.underlay_address = underlay_address
        self.gateway = gateway if gateway is not None else Gateway(netns)
        #: CanBridge parameter id -> the vcan's name (relays and routes find their bridge by dependency).
        self.bridges: dict[UUID, str] = {}
        #: The AF_CAN socket bus of each vcan bridge, by name.
        self.buses: dict[str, SocketCanBus] = {}
        self.relays = Relays(netns, self.changed, keepalive_s, lost_after_s)
        #: CanLocalRoute parameter id -> (source, destination, fd) applied by this process.
        self.routes: dict[UUID, tuple[str, str, bool]] = {}

    async def apply(self, cluster: UUID, parameter: Parameter) -> ParameterStatus:
        return await self._run(cluster, parameter, change=True)

    async def check(self, cluster: UUID, parameter: Parameter) -> ParameterStatus:
        return await self._run(cluster, parameter, change=False)

    async def _run(self, cluster: UUID, p: Parameter, change: bool) -> ParameterStatus:
        marker = ownership_marker(cluster, p.id)
        try:
            async with self._lock:
                if p.kind == ParameterKind.DEVICE_INTERFACE:
                    return await self._device(p, change)
                if p.kind == ParameterKind.CAN_BRIDGE:
                    return await self._bridge(p, marker, change)
                if p.kind == ParameterKind.CAN_CONNECTION:
                    return await self._connection(p, change)
                if p.kind == ParameterKind.CAN_LOCAL_ROUTE:
                    return await self._route(p, change)
        except LinkFailure as exc:
            return ParameterError(reason=str(exc))
        return ParameterError(reason=f"{p.kind.value} is not a CAN parameter")

    # -- DeviceInterface ----------------------------------------------------------------------------
    async def _device(self, p: Parameter, change: bool) -> ParameterStatus:
        if p.target is Target.ABSENT:
            return ParameterAbsent()  # a device is the bench's: never deleted, not even set down
        name, kind = _text(p.value, "interface"), _text(p.value, "can")
        link = await self._get(name)
        if link is None:
            return ParameterError(reason=f"CAN interface {name} does not exist in {self._where()}")
        if kind == VCAN:
            if link.kind != VCAN:
                return ParameterError(reason=f"interface {name} is a {link.kind or 'device'}, not a vcan")
            return await self._up(link, change, f"vcan {name}")
        if kind != "can":
            return ParameterError(reason=f"interface {name}: unknown CAN kind {kind!r} (can or vcan)")
        if link.device_type != ARPHRD_CAN:
            return ParameterError(reason=f"interface {name} is not a CAN interface")
        if link.kind != "can":
            what = "a vcan has no bit timing (configure it as vcan)" if link.kind == VCAN else (
                f"its driver ({link.kind or 'no netlink kind'}) takes no bit timing over netlink"
            )
            return ParameterError(reason=f"CAN interface {name}: {what}")
        wanted = bittiming.wanted_timing(p.value)
        if isinstance(wanted, str):
            return ParameterError(reason=wanted)
        differs = bittiming.mismatch(bittiming.current_timing(link.info), wanted)
        if differs is None:
            return await self._up(link, change, self._controller_detail(link))
        if not change:
            return ParameterError(reason=f"CAN interface {name} differs from its configuration: {differs}")
        return await self._set_timing(link, wanted)

    async def _up(self, link: Link, change: bool, detail: str) -> ParameterStatus:
        if not link.up:
            if not change:
                return ParameterError(reason=f"interface {link.name} is down")
            await self._set_up(link)
        return ParameterPresent(detail=detail)

    @staticmethod
    def _controller_detail(link: Link) -> str:
        timing = bittiming.current_timing(link.info)
        state = link.info.get("STATE")
        text = f"CAN interface {link.name}: {timing.describe() if timing else 'no bit timing'}"
        return f"{text}, {str(state).lower().replace('_', '-')}" if state else text

    async def _set_timing(self, link: Link, wanted: bittiming.BitTiming) -> ParameterStatus:
        """The kernel changes bit timing only while the link is down: down, set, up."""
        name = link.name
        if link.up:
            await self._request(
                f"cannot set CAN interface {name} down to change its bit timing",
                lambda ipr: ipr.link("set", index=link.index, state="down"),
            )
        attributes = bittiming.link_attributes(wanted)
        try:
            await self._request(
                f"cannot set CAN interface {name} to {wanted.describe()}",
                lambda ipr: ipr.link("set", index=link.index, **attributes),
            )
        finally:
            # Up again whatever happened: a bench's controller is never left down by us.
            current = await self._get(name)
            if current is not None and not current.up:
                await self._request(
                    f"cannot set CAN interface {name} up", lambda ipr: ipr.link("set", index=link.index, state="up")
                )
        current = await self._get(name)
        if current is None:
            return ParameterError(reason=f"CAN interface {name} vanished while its bit timing was set")
        differs = bittiming.mismatch(bittiming.current_timing(current.info), wanted)
        if differs is not None:
            return ParameterError(
                reason=f"CAN interface {name}: its controller cannot run at {wanted.describe()}: {differs}"
            )
        return ParameterPresent(detail=self._controller_detail(current))

    # -- CanBridge ----------------------------------------------------------------------------------
    async def _bridge(self, p: Parameter, marker: str, change: bool) -> ParameterStatus:
        name = _text(p.value, "name")
        if not name:
            return ParameterError(reason="the CAN bridge has no name")
        link = await self._get(name)
        if (settled := await self._unowned_or_absent(name, link, p, change)) is not None:
            if p.target is Target.ABSENT and change:
                self.bridges.pop(p.id, None)
            return settled
        if link is not None and (link.kind != VCAN or link.mtu != CANFD_MTU):
            problem = (
                f"it is a {link.kind or 'device'}, not a vcan" if link.kind != VCAN
                else f"its MTU is {link.mtu}, not {CANFD_MTU}: no CAN FD frames"
            )
            if not change:
                return ParameterError(reason=f"CAN bridge {name} differs from its configuration: {problem}")
            await self._delete(link)  # ours, so remade (a vcan's MTU changes only while down anyway)
            link = None
        if not change:
            if link is None:
                return ParameterAbsent()
            if not link.up:
                return ParameterError(reason=f"CAN bridge {name} is down")
            self.bridges[p.id] = name
            return self._bridge_present(link)
        if link is None:
            try:
                link = await self._create(name, marker, VCAN, mtu=CANFD_MTU)
            except LinkFailure as exc:
                if isinstance(exc.__cause__, Exception) and getattr(exc.__cause__, "code", 0) == errno.EOPNOTSUPP:
                    raise LinkFailure(f"cannot create vcan {name}: no vcan in this kernel (modprobe vcan)") from exc
                raise
        else:
            await self._adopt(link, marker)
        self.bridges[p.id] = name
        return self._bridge_present(link)

    def _bridge_present(self, link: Link) -> ParameterPresent:
        bus = self.buses.get(link.name)
        metrics = bus.metrics() if bus is not None else {}
        relays = self.relays.attached_to(link.name)
        return ParameterPresent(detail=f"vcan {link.name} (CAN FD MTU {CANFD_MTU}), {relays} relay(s)", metrics=metrics)

    async def _delete(self, link: Link) -> None:
        bus = self.buses.pop(link.name, None)
        if bus is not None:
            bus.close()
        await super()._delete(link)

    def _bridge_of(self, p: Parameter) -> str | None:
        return next((self.bridges[d] for d in p.dependencies if d in self.bridges), None)

    # -- CanConnection ------------------------------------------------------------------------------
    async def _bus(self, bridge: str) -> SocketCanBus | str:
        """The open socket bus on the vcan ``bridge`` (rebound if the vcan was recreated), or why not."""
        link = await self._get(bridge)
        if link is None:
            return f"its CAN bridge {bridge} does not exist in {self._where()}"
        bus = self.buses.get(bridge)
        if bus is None:
            bus = self.buses[bridge] = SocketCanBus(bridge, self.netns)
        try:
            if not bus.is_open:
                await bus.open()
            elif bus.bound_to != link.index:
                await bus.reopen()
        except OSError as exc:
            return f"cannot open an AF_CAN socket on {bridge}: {exc.strerror or exc}"
        bus.bound_to = link.index
        return bus

    async def _connection(self, p: Parameter, change: bool) -> ParameterStatus:
        current = self.relays.get(p.id)
        if p.target is Target.ABSENT:
            if current is not None and change:
                await self.relays.stop(p.id)
                current = None
            return ParameterAbsent() if current is None else ParameterPresent()
        value = relay_value(p, self.underlay_address)
        if isinstance(value, str):
            return ParameterError(reason=value)
        bridge = self._bridge_of(p)
        what = describe(p, value, f"vcan {bridge or '?'}")
        if bridge is None:
            return ParameterError(reason=f"{what}: its CAN bridge is not up")
        if current is not None and (current.value != value or current.attached != bridge):
            if not change:
                return ParameterError(reason=f"{what}: a relay with other settings runs ({current.what})")
            await self.relays.stop(p.id)
            current = None
        if current is None and not change:
            return ParameterAbsent()
        bus = await self._bus(bridge) if change else self.buses.get(bridge)
        if isinstance(bus, str):
            return ParameterError(reason=f"{what}: {bus}")
        if bus is None or not bus.is_open:
            return ParameterError(reason=f"{what}: no AF_CAN socket on {bridge}")
        if not change:
            link = await self._get(bridge)
            if link is None or link.index != bus.bound_to:
                return ParameterError(reason=f"{what}: CAN bridge {bridge} was recreated, the relay reads the old one")
        if current is not None:
            state = current.relay.state(what)
            if bus.last_error and isinstance(state, ParameterPresent):
                return ParameterPresent(detail=f"{state.detail}; {bus.last_error}"[:500], metrics=state.metrics)
            return state
        return await self.relays.start(p.id, value, bus, bridge, what)

    # -- CanLocalRoute ------------------------------------------------------------------------------
    async def _route(self, p: Parameter, change: bool) -> ParameterStatus:
        source_name, destination_name = _text(p.value, "source"), _text(p.value, "destination")
        fd = bool(p.value.get("fd", False))
        where = f"CAN route {source_name} -> {destination_name}"
        source, destination = await self._get(source_name), await self._get(destination_name)
        if p.target is Target.ABSENT:
            if source is None or destination is None:
                self.routes.pop(p.id, None)
                return ParameterAbsent()  # the kernel dropped the rules with the device
            ours = self._ours(await self._rules(where), source, destination)
            if ours and change:
                for listed in ours:
                    await self._gateway(where, self.gateway.delete(listed.rule))
                self.routes.pop(p.id, None)
                return ParameterAbsent()
            return ParameterPresent() if ours else ParameterAbsent()
        for name, link in ((source_name, source), (destination_name, destination)):
            if link is None:
                # Checks as Absent (the kernel dropped its rules), so the re-check repairs it in order.
                if not change:
                    return ParameterAbsent()
                return ParameterError(reason=f"{where}: {name} does not exist in {self._where()}")
            if link.device_type != ARPHRD_CAN:
                return ParameterError(reason=f"{where}: {name} is not a CAN interface")
        assert source is not None and destination is not None
        hops = BRIDGE_HOPS if self._is_bridge(p, destination) else 1
        wanted = [GatewayRule(source.index, destination.index, fd=False, hops=hops)]
        if fd:
            wanted.append(GatewayRule(source.index, destination.index, fd=True, hops=hops))
        ours = self._ours(await self._rules(where), source, destination)
        extra = [listed for listed in ours if listed.rule not in wanted]
        for rule in wanted:
            extra += [listed for listed in ours if listed.rule == rule][1:]  # a twin doubles every frame
        missing = [rule for rule in wanted if all(listed.rule != rule for listed in ours)]
        if not change:
            if len(missing) == len(wanted) and not extra:
                return ParameterAbsent()
            problem = self._route_problem(missing, extra, source_name, destination_name)
            if problem:
                return ParameterError(reason=f"{where} differs from its configuration: {problem}")
            return self._route_present(ours, source_name, destination_name)
        for listed in extra:
            await self._gateway(where, self.gateway.delete(listed.rule))
        for rule in missing:
            await self._gateway(where, self.gateway.add(rule), rule.hops)
        self.routes[p.id] = (source_name, destination_name, fd)
        now = self._ours(await self._rules(where), source, destination)
        return self._route_present([listed for listed in now if listed.rule in wanted], source_name, destination_name)

    def _is_bridge(self, p: Parameter, link: Link) -> bool:
        """Whether ``link`` is the route's CAN bridge: its CanBridge dependency's vcan, or a vcan we marked."""
        if self._bridge_of(p) == link.name:
            return True
        return link.kind == VCAN and parse_ownership_marker(link.alias) is not None

    @staticmethod
    def _ours(rules: list[ListedRule], source: Link, destination: Link) -> list[ListedRule]:
        """The rules between the two links this agent would make: plain, echoed, hop-limited."""
        return [
            listed for listed in rules
            if listed.plain and listed.rule.echo and listed.rule.hops
            and (listed.rule.source, listed.rule.destination) == (source.index, destination.index)
        ]

    @staticmethod
    def _route_problem(missing: list[GatewayRule], extra: list[ListedRule], source: str, destination: str) -> str:
        problems = [f"rule {rule.command(source, destination)} is missing" for rule in missing]
        problems += [f"rule {listed.rule.command(source, destination)} is not configured" for listed in extra]
        return "; ".join(problems)

    @staticmethod
    def _route_present(rules: list[ListedRule], source: str, destination: str) -> ParameterPresent:
        ordered = sorted(rules, key=lambda listed: listed.rule.fd)  # classic first (the kernel lists newest first)
        detail = "; ".join(listed.rule.command(source, destination) for listed in ordered)
        metrics = {
            "frames_handled": sum(r.handled for r in rules),
            "frames_dropped": sum(r.dropped for r in rules),
            "frames_deleted": sum(r.deleted for r in rules),
        }
        return ParameterPresent(detail=detail[:500], metrics=metrics)

    async def _rules(self, where: str) -> list[ListedRule]:
        try:
            return await self.gateway.rules()
        except (GatewayFailure, OSError) as exc:
            raise LinkFailure(f"{where}: cannot list the cangw rules: {self._gateway_cause(exc, 0)}") from exc

    async def _gateway(self, where: str, request: Awaitable[None], hops: int = 0) -> None:
        try:
            await request
        except (GatewayFailure, OSError) as exc:
            raise LinkFailure(f"{where}: {self._gateway_cause(exc, hops)}") from exc

    @staticmethod
    def _gateway_cause(exc: BaseException, hops: int) -> str:
        code = exc.errno if isinstance(exc, (GatewayFailure, OSError)) else 0
        if code == errno.EOPNOTSUPP:
            return f"no can-gw in this kernel (modprobe can-gw max_hops={BRIDGE_HOPS})"
        if code == errno.EINVAL and hops and (problem := hops_problem(hops)) is not None:
            return problem
        if code == errno.EPERM:
            return "cangw rules need CAP_NET_ADMIN"
        return cause(exc)

    # -- sweep and close ----------------------------------------------------------------------------
    async def sweep(self, keep: Collection[UUID]) -> list[str]:
        kept = set(keep)
        stopped = await self.relays.stop_all_but(kept)
        async with self._lock:
            for pid in [pid for pid in self.routes if pid not in kept]:
                source, destination, _fd = self.routes.pop(pid)
                try:
                    await self._route(Parameter(id=pid, kind=ParameterKind.CAN_LOCAL_ROUTE, target=Target.ABSENT,
                                                value={"source": source, "destination": destination}), change=True)
                except LinkFailure:
                    continue  # the devices went away, and their rules with them
                stopped.append(f"cangw rules {source} -> {destination}")
            try:
                links = await self._links()
            except (LinkFailure, OSError):
                links = []
            for link in links:
                marker = parse_ownership_marker(link.alias)
                if link.kind == VCAN and marker is not None and marker[1] not in kept:
                    try:
                        await self._delete(link)
                    except LinkFailure:
                        continue  # deleted already (by the Ethernet plane's sweep of marked links)
                    stopped.append(link.name)
            for pid in [pid for pid in self.bridges if pid not in kept]:
                name = self.bridges.pop(pid)
                bus = self.buses.pop(name, None)
                if bus is not None:
                    bus.close()
        return stopped

    async def close(self) -> None:
        await self.relays.close()
        for bus in self.buses.values():
            bus.close()
        self.buses.clear()
        self.gateway.close()
        self._close_handle()
