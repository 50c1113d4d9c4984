"""The relays a CAN plane runs, one per CanConnection parameter: the bookkeeping both planes share.

A plane decides which bus a connection's relay sits on (the userspace hub, or the AF_CAN socket of
the vcan bridge) and what makes a running relay stale; :class:`Relays` starts, finds, stops and
describes them the same way for both.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass
from uuid import UUID

from lea_peer.can.bus import FrameBus
from lea_peer.can.relay import KEEPALIVE_S, LOST_AFTER_S, CanRelay, RelayFailure, endpoint
from resources.configuration import Parameter, ParameterError, ParameterPresent

log = logging.getLogger("lea_peer.can.relays")

#: A CanConnection's (local address, remote address, port).
RelayValue = tuple[str, str, int]


@dataclass
class RunningRelay:
    value: RelayValue
    #: What the relay is attached to (the hub object, or the vcan bridge's name): a change restarts it.
    attached: Hashable
    relay: CanRelay
    what: str


def describe(p: Parameter, value: RelayValue, on: str) -> str:
    """How logs and reports name a connection's relay: both ends, its role and the bus it sits on."""
    local, remote, port = value
    return (
        f"cannelloni relay {endpoint(local or '*', port)} <-> {endpoint(remote, port)}"
        f" ({p.value.get('role', 'peer')!s}, {on})"
    )


def relay_value(p: Parameter, underlay_address: str) -> tuple[str, str, int] | str:
    """(local, remote, port) of a CanConnection (local defaults to the underlay address), or why it is invalid."""
    local = str(p.value.get("local", "") or underlay_address)
    remote = str(p.value.get("remote", ""))
    port = p.value.get("port")
    try:
        ipaddress.ip_address(remote)
    except ValueError:
        return f"CAN connection: remote {remote!r} is not an IP address"
    if local:
        try:
            ipaddress.ip_address(local)
        except ValueError:
            return f"CAN connection: local {local!r} is not an IP address"
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        return f"CAN connection to {remote}: port {port!r} is not a number from 1 to 65535"
    return local, remote, port


class Relays:
    def __init__(
        self,
        netns: str | None,
        on_change: Callable[[], None],
        keepalive_s: float = KEEPALIVE_S,
        lost_after_s: float = LOST_AFTER_S,
    ) -> None:
        self.netns, self.on_change = netns, on_change
        self.keepalive_s, self.lost_after_s = keepalive_s, lost_after_s
        self.running: dict[UUID, RunningRelay] = {}

    def get(self, pid: UUID) -> RunningRelay | None:
        return self.running.get(pid)

    def attached_to(self, attached: Hashable) -> int:
        """How many relays sit on ``attached``."""
        return sum(1 for r in self.running.values() if r.attached == attached)

    async def start(
        self, pid: UUID, value: RelayValue, bus: FrameBus, attached: Hashable, what: str
    ) -> ParameterPresent | ParameterError:
        local, remote, port = value
        relay = CanRelay(bus, local, remote, port, self.netns, self.keepalive_s, self.lost_after_s,
                         on_change=self.on_change, label="CAN relay")
        try:
            await relay.start()
        except RelayFailure as exc:
            return ParameterError(reason=f"{what}: {exc}")
        self.running[pid] = RunningRelay(value, attached, relay, what)
        log.info("started %s", what)
        return relay.state(what)

    async def stop(self, pid: UUID) -> str | None:
        """Stop the relay of ``pid``; its name for the sweep's list, None if none ran."""
        current = self.running.pop(pid, None)
        if current is None:
            return None
        await current.relay.stop()
        log.info("stopped %s", current.what)
        return f"CAN relay to {current.relay.remote_endpoint}"

    async def stop_all_but(self, keep: Collection[UUID]) -> list[str]:
        stopped = [await self.stop(pid) for pid in [pid for pid in self.running if pid not in keep]]
        return [name for name in stopped if name is not None]

    async def close(self) -> None:
        await self.stop_all_but(())
