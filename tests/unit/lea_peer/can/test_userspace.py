"""The userspace CAN plane with real UDP on loopback: two planes (bench A on 127.0.0.1, bench B on
127.0.0.2), each with a simulated ECU on can0; parameters as the backend's table makes them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from lea_peer.can.cannelloni import CanFrame
from lea_peer.can.ecu_sim import EcuAddress
from lea_peer.can.userspace import UserspaceCanPlane
from resources.configuration import (
    Parameter,
    ParameterAbsent,
    ParameterError,
    ParameterKind,
    ParameterPresent,
    ParameterStatus,
    Target,
)
from tests.helpers.can import CannelloniSocket, free_port

T = TypeVar("T")
CLUSTER = uuid.uuid4()
A, B = "127.0.0.1", "127.0.0.2"
CLASSIC = CanFrame(0x321, b"\xde\xad")
FD = CanFrame(0x18DAF110 | 0x80000000, bytes(range(48)), fd=True, flags=1)


@dataclass
class Bench:
    plane: UserspaceCanPlane
    parameters: list[Parameter]
    ecu_port: int
    address: str


def bench_parameters(local: str, remote: str, port: int, fd: bool = True, device: str = "can0") -> list[Parameter]:
    def make(kind: ParameterKind, value: dict[str, str | int | bool], *deps: Parameter) -> Parameter:
        return Parameter(id=uuid.uuid4(), kind=kind, target=Target.PRESENT, value=value,
                         dependencies=tuple(d.id for d in deps))

    iface = make(ParameterKind.DEVICE_INTERFACE, {"interface": device, "can": "can", "bitrate": 500000,
                                                  "sample_point": 875, "fd": fd, "data_bitrate": 2000000,
                                                  "data_sample_point": 750})
    bridge = make(ParameterKind.CAN_BRIDGE, {"name": "vcan-lea"})
    connection = make(ParameterKind.CAN_CONNECTION, {"role": "client", "local": local, "remote": remote,
                                                     "port": port}, bridge)
    to_bridge = make(ParameterKind.CAN_LOCAL_ROUTE, {"source": device, "destination": "vcan-lea", "fd": fd},
                     iface, bridge)
    from_bridge = make(ParameterKind.CAN_LOCAL_ROUTE, {"source": "vcan-lea", "destination": device, "fd": fd},
                       iface, bridge)
    return [iface, bridge, connection, to_bridge, from_bridge]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 30))


async def apply_all(bench: Bench) -> list[ParameterStatus]:
    return [await bench.plane.apply(CLUSTER, p) for p in bench.parameters]


def two_benches(scenario: Callable[[Bench, Bench], Awaitable[None]], fd: bool = True) -> None:
    relay_port = free_port(A, B)
    ecu_a, ecu_b = free_port(A), free_port(B)

    async def main() -> None:
        a = Bench(UserspaceCanPlane(simulations=[EcuAddress("can0", A, ecu_a)], lost_after_s=0.5),
                  bench_parameters(A, B, relay_port, fd), ecu_a, A)
        b = Bench(UserspaceCanPlane(simulations=[EcuAddress("can0", B, ecu_b)], lost_after_s=0.5),
                  bench_parameters(B, A, relay_port, fd), ecu_b, B)
        try:
            for bench in (a, b):
                await bench.plane.start()
            await scenario(a, b)
        finally:
            await a.plane.close()
            await b.plane.close()

    run(main())


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def test_a_frame_from_ecu_a_reaches_ecu_b_classic_and_fd_in_order_and_not_after_the_sweep() -> None:
    async def scenario(a: Bench, b: Bench) -> None:
        for bench in (a, b):
            statuses = await apply_all(bench)
            assert all(isinstance(s, ParameterPresent) for s in statuses), statuses
            device = statuses[0]
            assert isinstance(device, ParameterPresent)
            assert device.detail == f"simulated ECU endpoint udp:{bench.address}:{bench.ecu_port} (simulation)"
        with (CannelloniSocket(A, 0, remote=(A, a.ecu_port)) as ecu_a,
              CannelloniSocket(B, 0, remote=(B, b.ecu_port)) as ecu_b):
            ecu_b.send([])  # B's ECU speaks first, so its endpoint knows where it is
            await asyncio.sleep(0.05)
            frames = [CLASSIC, FD, CanFrame(0x7FF, b"")]
            ecu_a.send(frames)
            got = await off_loop(ecu_b.frames, 3, 3.0)
            assert got == frames
            assert await off_loop(ecu_a.frames, 1, 0.3) == [], "ECU A does not hear its own frames back"
            state = await a.plane.check(CLUSTER, a.parameters[2])
            assert isinstance(state, ParameterPresent) and state.metrics["frames_sent"] == 3, state
            await a.plane.sweep(keep=())
            assert await a.plane.check(CLUSTER, a.parameters[2]) == ParameterAbsent()
            ecu_a.send([CLASSIC])
            assert await off_loop(ecu_b.frames, 1, 0.5) == [], "nothing is relayed after the sweep"

    two_benches(scenario)


def test_a_classic_only_route_does_not_carry_fd_frames() -> None:
    async def scenario(a: Bench, b: Bench) -> None:
        for bench in (a, b):
            await apply_all(bench)
        with (CannelloniSocket(A, 0, remote=(A, a.ecu_port)) as ecu_a,
              CannelloniSocket(B, 0, remote=(B, b.ecu_port)) as ecu_b):
            ecu_b.send([])
            await asyncio.sleep(0.05)
            ecu_a.send([FD, CLASSIC])
            assert await off_loop(ecu_b.frames, 2, 1.0) == [CLASSIC]
        route = await a.plane.check(CLUSTER, a.parameters[3])
        assert isinstance(route, ParameterPresent) and route.metrics["frames_fd_skipped"] == 1
        assert "classic frames only" in (route.detail or "")

    two_benches(scenario, fd=False)


def test_a_relay_whose_peer_stops_reports_lost_and_calls_back_then_recovers() -> None:
    async def scenario(a: Bench, b: Bench) -> None:
        changes: list[int] = []
        a.plane.on_change = lambda: changes.append(1)
        for bench in (a, b):
            await apply_all(bench)
        connection = a.parameters[2]
        deadline = time.monotonic() + 5
        while not a.plane.relays.running[connection.id].relay.speaks_keepalive and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await b.plane.sweep(keep=())  # B's relay stops: A hears nothing any more
        while not changes and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        lost = await a.plane.check(CLUSTER, connection)
        assert isinstance(lost, ParameterError) and lost.reason.endswith("relay peer lost"), lost
        again = await a.plane.apply(CLUSTER, connection)
        assert isinstance(again, ParameterError) and again.reason == lost.reason, "re-applying changes nothing"
        await apply_all(b)
        while len(changes) < 2 and time.monotonic() < deadline + 5:
            await asyncio.sleep(0.02)
        assert isinstance(await a.plane.check(CLUSTER, connection), ParameterPresent)

    two_benches(scenario)


def test_a_device_that_is_not_simulated_is_an_error_naming_the_cause() -> None:
    async def main() -> None:
        plane = UserspaceCanPlane()
        parameters = bench_parameters(A, B, 1, device="can7")
        statuses = [await plane.apply(CLUSTER, p) for p in parameters]
        reason = ("this host's kernel has no CAN support: can7 is not a simulated ECU endpoint"
                  " (lea-peer run --can-sim can7=udp:HOST:PORT)")
        assert statuses[0] == ParameterError(reason=reason)
        assert statuses[3] == statuses[4] == ParameterError(reason=reason)
        assert isinstance(statuses[1], ParameterPresent), "the hub itself works"
        await plane.close()

    run(main())


def test_check_changes_nothing_and_absent_removes() -> None:
    async def main() -> None:
        port = free_port(A, B)
        plane = UserspaceCanPlane(simulations=[EcuAddress("can0", A, free_port(A))])
        await plane.start()
        parameters = bench_parameters(A, B, port)
        try:
            for p in parameters[1:]:
                assert await plane.check(CLUSTER, p) == ParameterAbsent()
            assert plane.hubs == {} and plane.relays.running == {} and plane.routes == {}
            for p in parameters:
                await plane.apply(CLUSTER, p)
            assert len(plane.relays.running) == 1 and len(plane.routes) == 2
            for p in reversed(parameters):
                gone = p.model_copy(update={"target": Target.ABSENT})
                assert await plane.apply(CLUSTER, gone) == ParameterAbsent()
            assert plane.hubs == {} and plane.relays.running == {} and plane.routes == {}
        finally:
            await plane.close()

    run(main())


def test_a_bad_connection_value_and_a_port_in_use_are_errors() -> None:
    async def main() -> None:
        plane = UserspaceCanPlane()
        bridge, connection = bench_parameters(A, B, 1)[1:3]
        await plane.apply(CLUSTER, bridge)
        bad = connection.model_copy(update={"value": {**connection.value, "remote": "bench-b"}})
        assert await plane.apply(CLUSTER, bad) == ParameterError(
            reason="CAN connection: remote 'bench-b' is not an IP address")
        port = free_port(A)
        with CannelloniSocket(A, port):
            busy = connection.model_copy(update={"value": {**connection.value, "port": port}})
            status = await plane.apply(CLUSTER, busy)
            assert isinstance(status, ParameterError) and "Address already in use" in status.reason, status
        await plane.close()

    run(main())


def test_a_leader_without_can_devices_relays_between_two_members() -> None:
    C = "127.0.0.3"
    port_b, port_c = free_port(A, B), free_port(A, C)
    ecu_b, ecu_c = free_port(B), free_port(C)

    async def main() -> None:
        leader = UserspaceCanPlane()
        member_b = UserspaceCanPlane(simulations=[EcuAddress("can0", B, ecu_b)])
        member_c = UserspaceCanPlane(simulations=[EcuAddress("can0", C, ecu_c)])
        hub = bench_parameters(A, B, port_b)[1]
        leader_parameters = [hub, *(
            Parameter(id=uuid.uuid4(), kind=ParameterKind.CAN_CONNECTION, target=Target.PRESENT,
                      value={"role": "server", "local": A, "remote": remote, "port": port}, dependencies=(hub.id,))
            for remote, port in ((B, port_b), (C, port_c)))]
        planes = [(leader, leader_parameters), (member_b, bench_parameters(B, A, port_b)),
                  (member_c, bench_parameters(C, A, port_c))]
        try:
            for plane, parameters in planes:
                await plane.start()
                for p in parameters:
                    assert isinstance(await plane.apply(CLUSTER, p), ParameterPresent)
            with (CannelloniSocket(B, 0, remote=(B, ecu_b)) as device_b,
                  CannelloniSocket(C, 0, remote=(C, ecu_c)) as device_c):
                device_c.send([])
                device_b.send([])
                await asyncio.sleep(0.05)
                device_b.send([CLASSIC, FD])
                assert await off_loop(device_c.frames, 2, 3.0) == [CLASSIC, FD]
                assert await off_loop(device_b.frames, 1, 0.3) == [], "not back to where it came from"
        finally:
            for plane, _ in planes:
                await plane.close()

    run(main())
