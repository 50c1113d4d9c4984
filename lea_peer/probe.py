"""What this bench's kernel can do, found by trying it in a scratch network namespace.

The probe creates a uniquely named namespace, tries to add a gretap, a vxlan and a vcan link in it
(a kernel without the module answers "Operation not supported" or "Unknown device type") and always
deletes the namespace again, so the bench's own links are never touched (40-120 ms). Without the
right to create a namespace (CAP_SYS_ADMIN; packaging/lea-peer.service grants only CAP_NET_ADMIN) it
tries in the agent's own namespace instead, deleting each trial link at once. The underlay MTU is
read from the interface that carries the underlay address, in the agent's own namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pyroute2 import AsyncIPRoute
from pyroute2 import netns as _netns
from pyroute2.netlink.exceptions import NetlinkError

from resources.agent import CanSupport, Capabilities, TunnelType

SCRATCH_PREFIX = "leaprobe-"
T = TypeVar("T")
# TEST-NET addresses: the scratch links are never up, these are only there to make them valid.
_LOCAL = "192.0.2.1"
_REMOTE = "192.0.2.2"

_TRIALS: dict[str, dict[str, Any]] = {
    TunnelType.GRETAP.value: {"kind": "gretap", "gre_local": _LOCAL, "gre_remote": _REMOTE},
    TunnelType.VXLAN.value: {
        "kind": "vxlan", "vxlan_id": 1, "vxlan_group": _REMOTE, "vxlan_local": _LOCAL, "vxlan_port": 4789,
    },
    "vcan": {"kind": "vcan"},
}


def scratch_name() -> str:
    """A namespace name no other probe uses (pid and random part, at most 32 characters)."""
    return f"{SCRATCH_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"


async def _kernel_supports(ipr: Any, trial: str, name: str, remove: bool) -> bool:
    attrs = dict(_TRIALS[trial])
    if trial == TunnelType.VXLAN.value:
        attrs["vxlan_id"] = int.from_bytes(os.urandom(3), "big") or 1  # no clash with a bench's VNI
    try:
        await ipr.link("add", ifname=name, **attrs)
    except NetlinkError:
        return False
    if remove:
        with contextlib.suppress(NetlinkError):
            await ipr.link("del", ifname=name)
    return True


async def _probe(netns: str | None, remove: bool) -> list[str]:
    ipr = AsyncIPRoute(netns=netns, flags=0) if netns else AsyncIPRoute()
    tag = uuid.uuid4().hex[:6]
    try:
        return [trial for trial in _TRIALS if await _kernel_supports(ipr, trial, f"lp{tag}{trial[:5]}", remove)]
    finally:
        ipr.close()


async def underlay_mtu(netns: str | None, underlay_address: str) -> int:
    """MTU of the interface carrying ``underlay_address`` in ``netns``; 0 when none carries it."""
    if not underlay_address:
        return 0
    ipr = AsyncIPRoute(netns=netns, flags=0) if netns else AsyncIPRoute()
    try:
        async for addr in await ipr.addr("dump"):
            if addr.get("IFA_ADDRESS") == underlay_address or addr.get("IFA_LOCAL") == underlay_address:
                links = await ipr.link("get", index=addr["index"])
                return int(links[0].get("IFLA_MTU") or 0)
    except (NetlinkError, OSError):
        return 0
    finally:
        ipr.close()
    return 0


def _create_scratch(name: str) -> None:
    _netns.create(name)


def _remove_scratch(name: str) -> None:
    with contextlib.suppress(OSError):
        _netns.remove(name)


async def in_scratch_namespace(trial: Callable[[str | None, bool], Awaitable[T]], netns: str | None) -> T:
    """``trial(namespace, remove)`` in a fresh scratch namespace, deleted afterwards (``remove``
    False: its links go with it); without the right to make one (CAP_NET_ADMIN without
    CAP_SYS_ADMIN), in ``netns`` with ``remove`` True: each trial link is deleted at once."""
    loop = asyncio.get_running_loop()
    name = scratch_name()
    try:
        await loop.run_in_executor(None, _create_scratch, name)
    except OSError:
        return await trial(netns, True)
    try:
        return await trial(name, False)
    finally:
        await loop.run_in_executor(None, _remove_scratch, name)


async def probe_capabilities(netns: str | None = None, underlay_address: str = "") -> Capabilities:
    """The tunnel types, CAN features and underlay MTU of this bench."""
    supported = await in_scratch_namespace(_probe, netns)
    return Capabilities(
        tunnels=tuple(TunnelType(t) for t in supported if t in {k.value for k in TunnelType}),
        can=CanSupport.USERSPACE,  # the data plane says which: its CAN plane's support (lea_peer/can/select.py)
        underlay_mtu=await underlay_mtu(netns, underlay_address),
    )
