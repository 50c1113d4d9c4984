"""Kernel CAN end to end in network namespaces: two benches, each with a vcan "ECU bus" ecu0, the
kernel CAN plane making the vcan bridge, the cangw routes both ways (classic and FD) and the
cannelloni relay over a veth underlay. A frame an ECU sends on bench A's ecu0 arrives on bench B's
ecu0 within 100 ms, classic and FD, in order; after undeploy it no longer does.

It runs only where ``probe_kernel_can`` (what ``lea-peer probe`` uses for ``capabilities.can``)
finds kernel CAN: vcan, AF_CAN sockets and can-gw loaded with max_hops=2. Elsewhere every test is
skipped with the probe's reason (pytest -rs shows it; it is printed too).
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID, uuid4

import pytest
from pyroute2 import IPRoute

from lea_peer.can.cangw import Gateway, ListedRule
from lea_peer.can.cannelloni import CAN_EFF_FLAG, CANFD_BRS, CanFrame
from lea_peer.can.kernel import KernelCanPlane, probe_kernel_can
from lea_peer.can.socketcan import CANFD_MTU, open_can_socket, pack_frame, unpack_frame
from resources.agent import ownership_marker
from resources.configuration import (
    Parameter,
    ParameterAbsent,
    ParameterKind,
    ParameterPresent,
    Target,
    dependency_order,
)
from tests.helpers.netns import links, namespaces, namespaces_supported, sweep_leftovers, veth


def _why_not() -> str | None:
    reason = namespaces_supported()
    if reason is None:
        reason = asyncio.run(probe_kernel_can(None))
        if reason is not None:
            reason = f"this kernel has no kernel CAN: {reason}"
    if reason is not None:
        print(f"SKIP test_can_kernel_netns: {reason}")
    return reason


_UNSUPPORTED = _why_not()
pytestmark = [
    pytest.mark.skipif(_UNSUPPORTED is not None, reason=_UNSUPPORTED or ""),
    pytest.mark.timeout(120),
]

CLUSTER = UUID("7d1f5f1e-4c9e-4b68-8d2e-3b9e4f8c2d22")
UNDERLAY = ("10.98.0.1", "10.98.0.2")
PORT = 20001
BRIDGE = "vcan-lea"
DEVICE = "ecu0"
LATENCY_S = 0.100


@dataclass
class Bench:
    netns: str
    parameters: list[Parameter]


def _configuration(leader: bool, remote: str, local: str) -> list[Parameter]:
    device = Parameter(id=uuid4(), kind=ParameterKind.DEVICE_INTERFACE, target=Target.PRESENT,
                       value={"interface": DEVICE, "can": "vcan"})
    bridge = Parameter(id=uuid4(), kind=ParameterKind.CAN_BRIDGE, target=Target.PRESENT, value={"name": BRIDGE})
    connection = Parameter(
        id=uuid4(), kind=ParameterKind.CAN_CONNECTION, target=Target.PRESENT, dependencies=(bridge.id,),
        value={"role": "server" if leader else "client", "local": local, "remote": remote, "port": PORT},
    )
    routes = [
        Parameter(id=uuid4(), kind=ParameterKind.CAN_LOCAL_ROUTE, target=Target.PRESENT,
                  dependencies=(device.id, bridge.id), value={"source": s, "destination": d, "fd": True})
        for s, d in ((DEVICE, BRIDGE), (BRIDGE, DEVICE))
    ]
    return [device, bridge, connection, *routes]


@pytest.fixture(scope="module", autouse=True)
def _no_leftover_namespaces() -> Iterator[None]:
    sweep_leftovers()
    yield
    sweep_leftovers()


@pytest.fixture
def benches() -> Iterator[tuple[Bench, Bench]]:
    with namespaces("can-a", "can-b") as (a, b):
        veth(a, "u0", b, "u0", address_a=f"{UNDERLAY[0]}/24", address_b=f"{UNDERLAY[1]}/24")
        for ns in (a, b):
            with IPRoute(netns=ns, flags=0) as ipr:
                ipr.link("add", ifname=DEVICE, kind="vcan", mtu=CANFD_MTU)
                ipr.link("set", index=ipr.link_lookup(ifname=DEVICE)[0], state="up")
        yield (
            Bench(a, _configuration(True, UNDERLAY[1], UNDERLAY[0])),
            Bench(b, _configuration(False, UNDERLAY[0], UNDERLAY[1])),
        )


def _ecu(netns: str) -> socket.socket:
    """An ECU on the bench's ecu0: a CAN_RAW socket with FD frames."""
    sock = open_can_socket(netns, DEVICE)
    sock.setblocking(True)
    sock.settimeout(LATENCY_S)
    return sock


def _received(sock: socket.socket, count: int, within: float) -> list[CanFrame]:
    frames: list[CanFrame] = []
    deadline = time.monotonic() + within
    while len(frames) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            frames.append(unpack_frame(sock.recv(CANFD_MTU)))
        except TimeoutError:
            break
    return frames


async def _rules(netns: str) -> list[ListedRule]:
    gateway = Gateway(netns)
    try:
        return await gateway.rules()
    finally:
        gateway.close()


async def _apply(plane: KernelCanPlane, parameters: list[Parameter], target: Target) -> None:
    order = dependency_order(tuple(parameters))
    if target is Target.ABSENT:
        order = list(reversed(order))
    for p in order:
        state = await plane.apply(CLUSTER, p.model_copy(update={"target": target}))
        expected = ParameterPresent if target is Target.PRESENT else ParameterAbsent
        assert isinstance(state, expected), (p.kind, p.value, state)


def test_frames_cross_the_relay_both_kinds_in_order_and_stop_after_undeploy(benches: tuple[Bench, Bench]) -> None:
    a, b = benches

    async def scenario() -> None:
        planes = [
            KernelCanPlane(netns=bench.netns, underlay_address=ip) for bench, ip in zip(benches, UNDERLAY, strict=True)
        ]
        try:
            for plane, bench in zip(planes, benches, strict=True):
                await _apply(plane, bench.parameters, Target.PRESENT)
            bridge_of_a = next(p for p in a.parameters if p.kind == ParameterKind.CAN_BRIDGE)
            assert links(a.netns)[BRIDGE] == ownership_marker(CLUSTER, bridge_of_a.id)
            rules = await _rules(a.netns)
            assert sorted((r.rule.fd, r.rule.hops) for r in rules) == [(False, 1), (False, 2), (True, 1), (True, 2)]
            loop = asyncio.get_running_loop()
            sender, receiver = _ecu(a.netns), _ecu(b.netns)
            frames = [
                CanFrame(0x123, b"\x11\x22\x33"),
                CanFrame(CAN_EFF_FLAG | 0x1ABCDEF0, bytes(range(64)), fd=True, flags=CANFD_BRS),
                CanFrame(0x7FF),
                CanFrame(0x10, bytes(range(12)), fd=True),
            ]
            latencies = []
            for frame in frames:  # one at a time: each frame's way from ECU A to ECU B
                started = time.monotonic()
                sender.send(pack_frame(frame))
                assert await loop.run_in_executor(None, _received, receiver, 1, 2.0) == [frame]
                latencies.append(time.monotonic() - started)
            print(f"CAN frame ECU A -> ECU B (kernel): median {statistics.median(latencies) * 1e3:.2f} ms")
            assert statistics.median(latencies) < LATENCY_S, latencies
            for frame in frames:
                sender.send(pack_frame(frame))
            got = await loop.run_in_executor(None, _received, receiver, len(frames), 2.0)
            assert got == frames  # classic and FD, in order
            receiver.send(pack_frame(CanFrame(0x55, b"\x01")))  # and the other way
            assert await loop.run_in_executor(None, _received, sender, 1, 1.0) == [CanFrame(0x55, b"\x01")]
            for plane, bench in zip(planes, benches, strict=True):
                await _apply(plane, bench.parameters, Target.ABSENT)
            assert BRIDGE not in links(a.netns) and await _rules(a.netns) == []
            sender.send(pack_frame(frames[0]))
            assert await loop.run_in_executor(None, _received, receiver, 1, 0.5) == []
            sender.close()
            receiver.close()
        finally:
            for plane in planes:
                await plane.close()

    asyncio.run(scenario())
