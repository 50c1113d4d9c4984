"""Whether this kernel can carry CAN the kernel way: a vcan link, an AF_CAN socket, can-gw.

``try_kernel_can`` tries all three in a namespace (the probe's scratch one, or the agent's own
with a throwaway name, deleted at once) and returns None when they work, else every reason, e.g.
"no vcan in this kernel (modprobe vcan); AF_CAN sockets fail: [Errno 97] Address family not
supported by protocol". The kernel boundary is :class:`KernelTrials`; unit tests replace it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import uuid
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from lea_peer.can.cangw import BRIDGE_HOPS, Gateway, gateway_answers, hops_problem
from lea_peer.can.socketcan import CANFD_MTU
from lea_peer.sockets import namespace_socket


class KernelTrials:
    """The probe's contact with the kernel in one namespace (None: the agent's own)."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self._ipr: Any = None

    async def _handle(self) -> Any:
        if self._ipr is None:
            self._ipr = AsyncIPRoute(netns=self.netns, flags=0) if self.netns else AsyncIPRoute()
        return self._ipr

    async def add_vcan(self, name: str) -> None:
        """Add a vcan link (CAN FD MTU, down); raises NetlinkError/OSError."""
        ipr = await self._handle()
        await ipr.link("add", ifname=name, kind="vcan", mtu=CANFD_MTU)

    async def delete(self, name: str) -> None:
        ipr = await self._handle()
        with contextlib.suppress(NetlinkError, OSError):
            await ipr.link("del", ifname=name)

    async def open_can_socket(self, interface: str | None) -> None:
        """Open a CAN_RAW socket with CAN FD frames (bound to ``interface`` if given) and close it."""
        loop = asyncio.get_running_loop()
        sock = await loop.run_in_executor(
            None, namespace_socket, self.netns, socket.AF_CAN, socket.SOCK_RAW, socket.CAN_RAW
        )
        with sock:
            sock.setsockopt(socket.SOL_CAN_RAW, socket.CAN_RAW_FD_FRAMES, 1)
            if interface is not None:
                sock.bind((interface,))

    async def gateway(self) -> str | None:
        gateway = Gateway(self.netns)
        try:
            return await gateway_answers(gateway)
        finally:
            gateway.close()

    def hops(self) -> str | None:
        return hops_problem(BRIDGE_HOPS)

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None


def _vcan_reason(exc: BaseException) -> str:
    code = getattr(exc, "code", None) if isinstance(exc, NetlinkError) else getattr(exc, "errno", None)
    if code == errno.EOPNOTSUPP:
        return "no vcan in this kernel (modprobe vcan)"
    cause = os.strerror(code) if isinstance(code, int) and code else str(exc)
    return f"cannot create a vcan link: {cause}"


async def try_kernel_can(netns: str | None, remove: bool, trials: KernelTrials | None = None) -> str | None:
    """None when vcan, AF_CAN sockets and can-gw all work in ``netns``; else the reasons.
    ``remove``: delete the trial link (in a namespace that is not thrown away afterwards)."""
    trials = trials if trials is not None else KernelTrials(netns)
    reasons: list[str] = []
    name = f"lp{uuid.uuid4().hex[:6]}can"
    made = False
    try:
        try:
            await trials.add_vcan(name)
            made = True
        except (NetlinkError, OSError) as exc:
            reasons.append(_vcan_reason(exc))
        try:
            await trials.open_can_socket(name if made else None)
        except OSError as exc:
            # str(OSError) is "[Errno 97] Address family not supported by protocol": both parts help.
            on_vcan = made and exc.errno != errno.EAFNOSUPPORT
            what = "an AF_CAN socket fails on vcan" if on_vcan else "AF_CAN sockets fail"
            reasons.append(f"{what}: {exc}")
        gateway = await trials.gateway()
        if gateway is not None:
            reasons.append(gateway)
        elif (hops := trials.hops()) is not None:
            reasons.append(hops)
    finally:
        if made and remove:
            await trials.delete(name)
        trials.close()
    return "; ".join(reasons) or None
