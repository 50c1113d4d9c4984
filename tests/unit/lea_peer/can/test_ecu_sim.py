"""The simulated ECU endpoint: --can-sim parsing, and frames between its UDP address and its bus."""

from __future__ import annotations

import asyncio
import time

import pytest

from lea_peer.can.cannelloni import CanFrame
from lea_peer.can.ecu_sim import EcuAddress, SimulatedEcu, SimulationError, parse_can_sim
from tests.helpers.can import CannelloniSocket, free_port


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("can0=udp:127.0.0.1:30000", EcuAddress("can0", "127.0.0.1", 30000)),
        ("vcan1=udp:[::1]:1", EcuAddress("vcan1", "::1", 1)),
        ("can-fd.2=udp:10.0.0.2:65535", EcuAddress("can-fd.2", "10.0.0.2", 65535)),
    ],
)
def test_a_can_sim_value_is_device_host_and_port(text: str, address: EcuAddress) -> None:
    assert parse_can_sim(text) == address


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("can0", "expected DEVICE=udp:HOST:PORT"),
        ("=udp:127.0.0.1:1", "'' is not an interface name"),
        ("a-very-long-interface=udp:127.0.0.1:1", "is not an interface name"),
        ("can0=tcp:127.0.0.1:1", "must start with udp:"),
        ("can0=udp:30000", "expected udp:HOST:PORT"),
        ("can0=udp:ecu.local:30000", "'ecu.local' is not an IP address"),
        ("can0=udp:127.0.0.1:0", "the port '0' is not a number from 1 to 65535"),
        ("can0=udp:127.0.0.1:http", "the port 'http' is not a number"),
    ],
)
def test_a_bad_can_sim_value_names_the_problem(text: str, problem: str) -> None:
    with pytest.raises(SimulationError, match=problem.replace("(", r"\(")):
        parse_can_sim(text)


def test_frames_from_the_ecu_go_on_the_bus_and_frames_on_the_bus_go_to_where_the_ecu_sent_from() -> None:
    port = free_port("127.0.0.1")
    frames = [CanFrame(0x10, b"\x01"), CanFrame(0x20, bytes(64), fd=True)]

    async def main() -> None:
        ecu = SimulatedEcu(EcuAddress("can0", "127.0.0.1", port))
        got: list[CanFrame] = []
        other = ecu.bus.attach("route", lambda frame, seen: got.append(frame))
        await ecu.start()
        assert ecu.description == f"simulated ECU endpoint udp:127.0.0.1:{port} (simulation)"
        loop = asyncio.get_running_loop()
        with CannelloniSocket("127.0.0.1", 0, remote=("127.0.0.1", port)) as device:
            other.send(frames[0])  # nobody spoke from the ECU's side yet: nowhere to send it
            await asyncio.sleep(0.05)
            assert ecu.metrics()["frames_unsent"] == 1
            device.send(frames)
            device.send_raw(b"\x02\x00\x00\x00\x05")  # 5 frames announced, none there
            deadline = time.monotonic() + 5
            while len(got) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert got == frames
            other.send(frames[1])
            other.send(frames[0])
            packet = await loop.run_in_executor(None, device.receive, 2.0)
            assert packet is not None and packet.frames == (frames[1], frames[0])
            metrics = ecu.metrics()
            assert (metrics["frames_from_ecu"], metrics["frames_to_ecu"], metrics["datagrams_malformed"]) == (2, 2, 1)
        await ecu.stop()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_an_endpoint_that_cannot_be_bound_says_which() -> None:
    async def main() -> None:
        ecu = SimulatedEcu(EcuAddress("can0", "192.0.2.9", 30000))
        with pytest.raises(OSError, match=r"simulated ECU endpoint udp:192\.0\.2\.9:30000: cannot bind it"):
            await ecu.start()

    asyncio.run(main())
