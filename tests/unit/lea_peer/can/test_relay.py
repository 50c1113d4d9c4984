"""CanRelay with real UDP sockets on loopback (127.0.0.1 is the relay, 127.0.0.2 its remote):
batching and sequence numbers, metrics, malformed datagrams, keepalives, lost and recovered."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from lea_peer.can.bus import CanBus
from lea_peer.can.cannelloni import CanFrame
from lea_peer.can.relay import CanRelay, RelayFailure
from resources.configuration import ParameterError, ParameterPresent
from tests.helpers.can import CannelloniSocket, free_port

LOCAL, REMOTE = "127.0.0.1", "127.0.0.2"
FRAMES = [CanFrame(0x100 + i, bytes([i]) * (i % 9)) for i in range(6)]
FD = CanFrame(0x1ABCDE | 0x80000000, bytes(range(64)), fd=True, flags=1)
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 20))


class Collector:
    def __init__(self) -> None:
        self.frames: list[CanFrame] = []

    def __call__(self, frame: CanFrame, seen: frozenset[str]) -> None:
        self.frames.append(frame)


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def until(what: str, condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


Scenario = Callable[[CanRelay, CanBus, CannelloniSocket, list[str]], Awaitable[None]]


def with_relay(scenario: Scenario, keepalive_s: float = 1.0, lost_after_s: float = 3.0,
               remote_socket: bool = True) -> None:
    port = free_port(LOCAL, REMOTE)
    changes: list[str] = []

    async def main() -> None:
        hub = CanBus("vcan-lea")
        relay = CanRelay(hub, LOCAL, REMOTE, port, keepalive_s=keepalive_s, lost_after_s=lost_after_s,
                         on_change=lambda: changes.append(relay.problem() or "ok"))
        peer = CannelloniSocket(REMOTE, port, remote=(LOCAL, port))
        try:
            await relay.start()
            await scenario(relay, hub, peer, changes)
        finally:
            await relay.stop()
            peer.close()

    run(main())


def test_frames_put_on_the_bus_together_leave_in_one_datagram_numbered_in_order() -> None:
    async def scenario(relay: CanRelay, hub: CanBus, peer: CannelloniSocket, changes: list[str]) -> None:
        ecu = hub.attach("ecu", None)
        for frame in FRAMES:
            ecu.send(frame)
        first = await off_loop(peer.receive, 2.0)
        ecu.send(FD)
        second = await off_loop(peer.receive, 2.0)
        assert first is not None and second is not None
        assert first.frames == tuple(FRAMES) and second.frames == (FD,)
        assert second.sequence == (first.sequence + 1) & 0xFF
        assert relay.metrics()["frames_sent"] == 7

    with_relay(scenario)


def test_frames_from_the_remote_go_onto_the_bus_in_order_and_are_counted() -> None:
    async def scenario(relay: CanRelay, hub: CanBus, peer: CannelloniSocket, changes: list[str]) -> None:
        got = Collector()
        hub.attach("listener", got)
        peer.send(FRAMES[:3])
        peer.send([FD, *FRAMES[3:]])
        await until("7 frames on the hub", lambda: len(got.frames) == 7)
        assert got.frames == [*FRAMES[:3], FD, *FRAMES[3:]]
        metrics = relay.metrics()
        assert metrics["frames_received"] == 7 and metrics["datagrams_lost"] == 0
        assert isinstance(relay.state("relay"), ParameterPresent)

    with_relay(scenario)


def test_malformed_datagrams_are_counted_and_the_relay_goes_on() -> None:
    async def scenario(relay: CanRelay, hub: CanBus, peer: CannelloniSocket, changes: list[str]) -> None:
        got = Collector()
        hub.attach("listener", got)
        bad = [b"", b"\x02\x00", b"\x03\x00\x00\x00\x00", bytes.fromhex("02 00 01 0002 00000123 01 aa"),
               bytes.fromhex("02 00 01 0001 00000123 09" + "00" * 9)]
        for datagram in bad:
            peer.send_raw(datagram)
        peer.send([FRAMES[1]], sequence=2)
        await until("the good frame", lambda: got.frames == [FRAMES[1]])
        assert relay.metrics()["datagrams_malformed"] == len(bad)
        state = relay.state("relay")
        assert isinstance(state, ParameterPresent) and "last malformed datagram" in (state.detail or "")

    with_relay(scenario)


def test_sequence_gaps_count_as_lost_datagrams_and_late_ones_as_out_of_order() -> None:
    async def scenario(relay: CanRelay, hub: CanBus, peer: CannelloniSocket, changes: list[str]) -> None:
        got = Collector()
        hub.attach("listener", got)
        for sequence in (254, 255, 3, 1, 4):  # 0, 1 and 2 lost across the wrap; then 1 arrives late
            peer.send([FRAMES[0]], sequence=sequence)
        await until("5 frames", lambda: len(got.frames) == 5)
        metrics = relay.metrics()
        assert (metrics["datagrams_lost"], metrics["datagrams_out_of_order"]) == (3, 1)

    with_relay(scenario)


def test_an_empty_datagram_goes_out_every_keepalive_interval() -> None:
    async def scenario(relay: CanRelay, hub: CanBus, peer: CannelloniSocket, changes: list[str]) -> None:
        started = time.monotonic()
        sequences = []
        for _ in range(3):
            packet = await off_loop(peer.receive, 2.0, True)
            assert packet is not None and packet.frames == ()
            sequences.append(packet.sequence)
        assert 0.15 < time.monotonic() - started < 1.5
        assert sequences == [sequences[0], (sequences[0] + 1) & 0xFF, (sequences[0] + 2) & 0xFF]

    with_relay(scenario, keepalive_s=0.1, lost_after_s=0.3)


def test_a_remote_that_sent_keepalives_and_goes_silent_is_lost_and_recovers_with_its_next_datagram() -> None:
    async def scenario(relay: CanRelay, hub: CanBus, peer: CannelloniSocket, changes: list[str]) -> None:
        peer.send([])  # a keepalive: the remote is a LEA relay
        await until("the keepalive heard", lambda: relay.speaks_keepalive)
        assert isinstance(relay.state("relay"), ParameterPresent)
        await until("lost", lambda: relay.problem() is not None)
        state = relay.state("relay to B")
        assert isinstance(state, ParameterError)
        assert state.reason == f"relay to B: no datagram from {REMOTE}:{relay.port} for 0.3 s: relay peer lost"
        assert set(state.metrics) >= {"frames_sent", "frames_received", "datagrams_lost", "datagrams_malformed",
                                      "datagrams_out_of_order"}
        assert changes[-1].endswith("relay peer lost")
        peer.send([])
        await until("recovered", lambda: relay.problem() is None)
        assert changes[-1] == "ok" and len(changes) == 2

    with_relay(scenario, keepalive_s=0.05, lost_after_s=0.3)


def test_a_remote_that_never_sent_a_keepalive_is_never_lost_for_silence() -> None:
    async def scenario(relay: CanRelay, hub: CanBus, peer: CannelloniSocket, changes: list[str]) -> None:
        peer.send([FRAMES[0]])  # a plain cannelloni sends frames, never an empty datagram
        await until("heard", lambda: relay.heard_at is not None)
        await asyncio.sleep(0.5)
        state = relay.state("relay")
        assert isinstance(state, ParameterPresent) and "no keepalives" in (state.detail or "")
        assert changes == []

    with_relay(scenario, keepalive_s=0.05, lost_after_s=0.2)


def test_connection_refused_is_an_error_once_the_remote_was_heard_and_not_before() -> None:
    async def scenario(relay: CanRelay, hub: CanBus, peer: CannelloniSocket, changes: list[str]) -> None:
        peer.close()  # nothing listens at the remote: each keepalive comes back as ICMP port unreachable
        await asyncio.sleep(0.3)
        assert relay.problem() is None, "the remote's relay may start later"
        with CannelloniSocket(REMOTE, relay.port, remote=(LOCAL, relay.port)) as remote:
            remote.send([FRAMES[0]])  # now the remote was heard, then it goes away again
            await until("heard", lambda: relay.heard_at is not None)
        await until("send failure", lambda: relay.problem() is not None)
        assert "Connection refused" in (relay.problem() or "")
        assert changes and "Connection refused" in changes[0]

    with_relay(scenario, keepalive_s=0.05, lost_after_s=10.0)


def test_two_relays_back_to_back_carry_frames_both_ways() -> None:
    port = free_port(LOCAL, REMOTE)

    async def main() -> None:
        hub_a, hub_b = CanBus("hub-a"), CanBus("hub-b")
        a = CanRelay(hub_a, LOCAL, REMOTE, port)
        b = CanRelay(hub_b, REMOTE, LOCAL, port)
        got_a, got_b = Collector(), Collector()
        ecu_a, ecu_b = hub_a.attach("ecu", got_a), hub_b.attach("ecu", got_b)
        await a.start()
        await b.start()
        try:
            ecu_a.send(FD)
            ecu_b.send(FRAMES[2])
            await until("both frames", lambda: got_b.frames == [FD] and got_a.frames == [FRAMES[2]])
            await until("keepalives heard", lambda: a.speaks_keepalive and b.speaks_keepalive)
        finally:
            await a.stop()
            await b.stop()

    run(main())


def test_a_relay_that_cannot_bind_names_the_address() -> None:
    async def main() -> None:
        relay = CanRelay(CanBus("hub"), "192.0.2.77", REMOTE, 20001)
        with pytest.raises(RelayFailure, match=r"cannot bind UDP 192\.0\.2\.77:20001: Cannot assign requested"):
            await relay.start()
        assert not relay.running

    run(main())


def test_stopping_frees_the_port() -> None:
    port = free_port(LOCAL, REMOTE)

    async def main() -> None:
        for _ in range(2):
            relay = CanRelay(CanBus("hub"), LOCAL, REMOTE, port)
            await relay.start()
            await relay.stop()

    run(main())

