"""Which CAN plane an agent runs (``lea-peer run --can auto|userspace|none``).

auto: the kernel plane when ``lea_peer.can.kernel.probe_kernel_can`` finds kernel CAN (vcan,
can-gw, AF_CAN sockets) in the agent's namespace, else the userspace one; simulated ECU endpoints
(``--can-sim``) live only on the userspace hub, so with them auto means userspace.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Sequence

from lea_peer.can.base import CanPlane
from lea_peer.can.disabled import DisabledCanPlane
from lea_peer.can.ecu_sim import EcuAddress
from lea_peer.can.userspace import UserspaceCanPlane

log = logging.getLogger("lea_peer.can")

MODES = ("auto", "userspace", "none")


async def kernel_can_problem(netns: str | None) -> str | None:
    """None when this host's kernel carries CAN for the agent, else the reason it does not."""
    try:
        kernel = importlib.import_module("lea_peer.can.kernel")
    except ImportError as exc:
        return f"this agent has no kernel CAN plane ({exc})"
    probe = getattr(kernel, "probe_kernel_can", None)
    if probe is None:
        return "this agent's kernel CAN plane has no probe"
    try:
        result = probe(netns)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:  # a probe bug must not stop the agent: it falls back to userspace
        return f"the kernel CAN probe failed: {exc!r}"
    return None if result is None else str(result)


async def make_can_plane(
    mode: str, netns: str | None, simulations: Sequence[EcuAddress] = (), underlay_address: str = ""
) -> CanPlane:
    if mode == "none":
        return DisabledCanPlane()
    if mode == "auto" and not simulations:
        problem = await kernel_can_problem(netns)
        if problem is None:
            kernel = importlib.import_module("lea_peer.can.kernel")
            plane: CanPlane = kernel.KernelCanPlane(netns=netns, underlay_address=underlay_address)
            log.info("CAN: kernel (vcan bridge, cangw routes)")
            return plane
        log.info("CAN: userspace hub (no kernel CAN: %s)", problem)
    return UserspaceCanPlane(netns, simulations, underlay_address)
