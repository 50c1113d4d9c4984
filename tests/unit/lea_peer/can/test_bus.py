"""Frame buses: delivery to every other port, send-only ports, and no echo loops through routes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lea_peer.can.bus import CanBus
from lea_peer.can.cannelloni import CanFrame
from lea_peer.can.userspace import CanRoute

FRAME = CanFrame(0x123, b"\x01\x02")
FD_FRAME = CanFrame(0x456, bytes(range(12)), fd=True)


class Listener:
    def __init__(self) -> None:
        self.frames: list[tuple[CanFrame, frozenset[str]]] = []

    def __call__(self, frame: CanFrame, seen: frozenset[str]) -> None:
        self.frames.append((frame, seen))


def test_a_frame_reaches_every_other_port_in_order_never_its_sender() -> None:
    bus = CanBus("hub")
    a, b, c = Listener(), Listener(), Listener()
    port_a = bus.attach("a", a)
    bus.attach("b", b)
    bus.attach("c", c)
    port_a.send(FRAME)
    port_a.send(FD_FRAME)
    assert a.frames == []
    assert [f for f, _ in b.frames] == [FRAME, FD_FRAME] == [f for f, _ in c.frames]
    assert b.frames[0][1] == frozenset({"hub"})
    assert bus.frames == 2


def test_send_only_ports_and_detached_ports_get_nothing() -> None:
    bus = CanBus("hub")
    listener = Listener()
    sender = bus.attach("sender", None)
    gone = bus.attach("gone", listener)
    gone.detach()
    gone.detach()  # idempotent
    sender.send(FRAME)
    gone.send(FRAME)  # a detached port sends nothing
    assert listener.frames == []
    assert bus.ports == ["sender"] and bus.frames == 1


def test_a_receiver_that_raises_does_not_stop_the_others() -> None:
    bus = CanBus("hub")
    listener = Listener()

    def broken(frame: CanFrame, seen: frozenset[str]) -> None:
        raise RuntimeError("bug")

    bus.attach("broken", broken)
    bus.attach("listener", listener)
    bus.attach("sender", None).send(FRAME)
    assert [f for f, _ in listener.frames] == [FRAME]


def test_a_frame_that_was_on_a_bus_is_refused_there() -> None:
    bus = CanBus("hub")
    listener = Listener()
    bus.attach("listener", listener)
    bus.attach("sender", None).send(FRAME, frozenset({"hub"}))
    assert listener.frames == [] and bus.looped == 1


def test_routes_both_ways_never_echo_a_frame_back_to_where_it_entered() -> None:
    device, hub = CanBus("can0"), CanBus("vcan-lea")
    ecu, relay = Listener(), Listener()
    ecu_port = device.attach("ecu", ecu)
    relay_port = hub.attach("relay", relay)
    to_bridge = CanRoute(device, hub, fd=True)
    from_bridge = CanRoute(hub, device, fd=True)
    ecu_port.send(FRAME)
    assert [f for f, _ in relay.frames] == [FRAME] and ecu.frames == []
    relay_port.send(FD_FRAME)
    assert [f for f, _ in ecu.frames] == [FD_FRAME] and [f for f, _ in relay.frames] == [FRAME]
    assert (to_bridge.frames, from_bridge.frames) == (1, 1)
    assert (to_bridge.looped, from_bridge.looped) == (1, 1)  # each frame tried to come back once


def test_a_classic_route_skips_fd_frames() -> None:
    device, hub = CanBus("can0"), CanBus("vcan-lea")
    relay = Listener()
    hub.attach("relay", relay)
    route = CanRoute(device, hub, fd=False)
    ecu = device.attach("ecu", None)
    ecu.send(FD_FRAME)
    ecu.send(FRAME)
    assert [f for f, _ in relay.frames] == [FRAME]
    assert (route.frames, route.skipped_fd) == (1, 1)
    route.stop()
    ecu.send(FRAME)
    assert len(relay.frames) == 1, "a stopped route carries nothing"


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), max_size=12), st.integers(0, 3))
def test_whatever_the_routes_a_frame_ends_and_never_returns_to_its_bus(
    edges: list[tuple[int, int]], start: int
) -> None:
    buses = [CanBus(f"bus{i}") for i in range(4)]
    listeners = [Listener() for _ in buses]
    for bus, listener in zip(buses, listeners, strict=True):
        bus.attach("listener", listener)
    for source, destination in edges:
        if source != destination:
            CanRoute(buses[source], buses[destination], fd=True)
    buses[start].attach("origin", None).send(FRAME)
    assert len(listeners[start].frames) == 1
    for listener in listeners:
        for _frame, seen in listener.frames:
            assert len(seen) <= len(buses)


@given(st.sets(st.tuples(st.integers(1, 4), st.booleans())), st.integers(0, 4))
def test_in_the_planes_star_of_routes_every_bus_sees_a_frame_at_most_once(
    routes: set[tuple[int, bool]], start: int
) -> None:
    """Bus 0 is the hub, 1-4 devices; each route joins a device and the hub in one direction."""
    buses = [CanBus("vcan-lea"), *(CanBus(f"can{i}") for i in range(1, 5))]
    listeners = [Listener() for _ in buses]
    for bus, listener in zip(buses, listeners, strict=True):
        bus.attach("listener", listener)
    for device, to_hub in routes:
        source, destination = (buses[device], buses[0]) if to_hub else (buses[0], buses[device])
        CanRoute(source, destination, fd=True)
    buses[start].attach("origin", None).send(FRAME)
    assert len(listeners[start].frames) == 1
    assert all(len(listener.frames) <= 1 for listener in listeners)
