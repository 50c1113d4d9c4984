"""The kernel CAN plane's decisions against a fake kernel (tests/helpers/fake_can_kernel.py): the
vcan bridge's ownership rules, cangw rules in both directions with hop limits, bit timing set
only when it differs (down, set, up), relays on the bridge's socket bus, the sweep. The real
kernel path runs in tests/integration/test_can_kernel_netns.py where the kernel has CAN."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lea_peer.can import cangw, socketcan
from lea_peer.can.cangw import GatewayRule, ListedRule
from lea_peer.can.cannelloni import CanFrame, decode, encode
from lea_peer.can.kernel import KernelCanPlane
from lea_peer.can.socketcan import pack_frame, unpack_frame
from resources.agent import CanSupport, ownership_marker
from resources.configuration import (
    Parameter,
    ParameterAbsent,
    ParameterError,
    ParameterKind,
    ParameterPresent,
    ParameterStatus,
    Target,
)
from tests.helpers.fake_can_kernel import ARPHRD_ETHER, FakeGateway, FakeNetlink

CLUSTER = uuid.uuid4()
BRIDGE_ID = uuid.uuid4()


def bridge(target: Target = Target.PRESENT, pid: uuid.UUID = BRIDGE_ID) -> Parameter:
    return Parameter(id=pid, kind=ParameterKind.CAN_BRIDGE, target=target, value={"name": "vcan-lea"})


def route(source: str, destination: str, fd: bool, target: Target = Target.PRESENT) -> Parameter:
    return Parameter(
        id=uuid.uuid4(), kind=ParameterKind.CAN_LOCAL_ROUTE, target=target,
        value={"source": source, "destination": destination, "fd": fd}, dependencies=(BRIDGE_ID,),
    )


def device(value: dict[str, str | int | bool], target: Target = Target.PRESENT) -> Parameter:
    return Parameter(id=uuid.uuid4(), kind=ParameterKind.DEVICE_INTERFACE, target=target, value=value)


class Kernel:
    def __init__(self) -> None:
        self.netlink = FakeNetlink()
        self.gateway = FakeGateway(netlink=self.netlink)
        self.plane = KernelCanPlane(gateway=self.gateway, lost_after_s=0.6, keepalive_s=0.1)
        self.plane._ipr = self.netlink

    def run(self, coroutine: Any) -> Any:
        return asyncio.run(coroutine)

    def apply(self, p: Parameter) -> ParameterStatus:
        return asyncio.run(self.plane.apply(CLUSTER, p))

    def check(self, p: Parameter) -> ParameterStatus:
        return asyncio.run(self.plane.check(CLUSTER, p))


@pytest.fixture
def kernel() -> Kernel:
    return Kernel()


def test_the_plane_announces_kernel_can() -> None:
    assert KernelCanPlane.support is CanSupport.KERNEL


# -- CanBridge --------------------------------------------------------------------------------------
def test_the_bridge_is_a_marked_vcan_with_the_fd_mtu_and_up(kernel: Kernel) -> None:
    assert kernel.check(bridge()) == ParameterAbsent()
    state = kernel.apply(bridge())
    assert isinstance(state, ParameterPresent) and "vcan vcan-lea" in (state.detail or "")
    link = kernel.netlink.named("vcan-lea")
    assert link is not None and link.kind == "vcan" and link.mtu == 72 and link.up
    assert link.alias == ownership_marker(CLUSTER, BRIDGE_ID)
    assert isinstance(kernel.check(bridge()), ParameterPresent)
    assert kernel.apply(bridge(Target.ABSENT)) == ParameterAbsent()
    assert kernel.netlink.named("vcan-lea") is None


def test_a_same_named_link_we_did_not_make_is_an_error_and_stays(kernel: Kernel) -> None:
    kernel.netlink.add_device("vcan-lea", "vcan", up=True, mtu=72)
    state = kernel.apply(bridge())
    assert isinstance(state, ParameterError) and "did not create" in state.reason
    assert kernel.apply(bridge(Target.ABSENT)) == ParameterAbsent()
    assert kernel.netlink.named("vcan-lea") is not None


def test_an_earlier_deployments_bridge_is_adopted_and_a_wrong_mtu_remade(kernel: Kernel) -> None:
    old = kernel.netlink.add_device("vcan-lea", "vcan", up=False, mtu=72, alias=ownership_marker(CLUSTER, uuid.uuid4()))
    assert isinstance(kernel.apply(bridge()), ParameterPresent)
    assert old.alias == ownership_marker(CLUSTER, BRIDGE_ID) and old.up
    old.mtu = 16
    state = kernel.check(bridge())
    assert isinstance(state, ParameterError) and "MTU is 16, not 72" in state.reason
    assert isinstance(kernel.apply(bridge()), ParameterPresent)
    remade = kernel.netlink.named("vcan-lea")
    assert remade is not None and remade.mtu == 72 and remade.index != old.index


def test_without_vcan_the_bridge_says_which_module_is_missing(kernel: Kernel) -> None:
    kernel.netlink.vcan_supported = False
    state = kernel.apply(bridge())
    assert isinstance(state, ParameterError)
    assert state.reason == "cannot create vcan vcan-lea: no vcan in this kernel (modprobe vcan)"


# -- CanLocalRoute ----------------------------------------------------------------------------------
def _with_bridge_and(kernel: Kernel, name: str = "can0") -> tuple[int, int]:
    can0 = kernel.netlink.add_device(name, "can", up=True)
    kernel.apply(bridge())
    vcan = kernel.netlink.named("vcan-lea")
    assert vcan is not None
    return can0.index, vcan.index


def test_routes_are_one_rule_per_frame_kind_echoed_and_hop_limited(kernel: Kernel) -> None:
    can0, vcan = _with_bridge_and(kernel)
    to_bridge, from_bridge = route("can0", "vcan-lea", fd=True), route("vcan-lea", "can0", fd=True)
    assert kernel.check(to_bridge) == ParameterAbsent()
    state = kernel.apply(to_bridge)
    assert isinstance(state, ParameterPresent)
    assert state.detail == "cangw -A -s can0 -d vcan-lea -e -l 2; cangw -A -s can0 -d vcan-lea -e -l 2 -X"
    assert state.metrics == {"frames_handled": 0, "frames_dropped": 0, "frames_deleted": 0}
    kernel.apply(from_bridge)
    assert {r.rule for r in kernel.gateway.listed} == {
        GatewayRule(can0, vcan, fd=False, hops=2), GatewayRule(can0, vcan, fd=True, hops=2),
        GatewayRule(vcan, can0, fd=False, hops=1), GatewayRule(vcan, can0, fd=True, hops=1),
    }
    assert isinstance(kernel.check(to_bridge), ParameterPresent)
    kernel.apply(to_bridge)  # idempotent: no twin rules
    assert len(kernel.gateway.listed) == 4


def test_a_classic_route_has_no_fd_rule_and_a_stale_one_or_a_twin_is_removed(kernel: Kernel) -> None:
    can0, vcan = _with_bridge_and(kernel)
    kernel.gateway.listed = [
        ListedRule(GatewayRule(can0, vcan, fd=True, hops=2)),  # from an FD configuration
        ListedRule(GatewayRule(can0, vcan, fd=False, hops=2)),
        ListedRule(GatewayRule(can0, vcan, fd=False, hops=2)),  # its twin doubles every frame
    ]
    classic = route("can0", "vcan-lea", fd=False)
    state = kernel.check(classic)
    assert isinstance(state, ParameterError)
    assert "rule cangw -A -s can0 -d vcan-lea -e -l 2 -X is not configured" in state.reason
    assert kernel.gateway.listed[0].rule.fd  # check changed nothing
    assert isinstance(kernel.apply(classic), ParameterPresent)
    assert [r.rule for r in kernel.gateway.listed] == [GatewayRule(can0, vcan, fd=False, hops=2)]


def test_counters_of_the_rules_are_the_routes_metrics(kernel: Kernel) -> None:
    can0, vcan = _with_bridge_and(kernel)
    kernel.gateway.listed = [
        ListedRule(GatewayRule(can0, vcan, fd=False, hops=2), handled=10, dropped=1),
        ListedRule(GatewayRule(can0, vcan, fd=True, hops=2), handled=5, deleted=2),
    ]
    state = kernel.check(route("can0", "vcan-lea", fd=True))
    assert isinstance(state, ParameterPresent)
    assert state.metrics == {"frames_handled": 15, "frames_dropped": 1, "frames_deleted": 2}


def test_absent_deletes_only_our_rules(kernel: Kernel) -> None:
    can0, vcan = _with_bridge_and(kernel)
    theirs = ListedRule(GatewayRule(can0, vcan, fd=False, hops=0), plain=True)  # no hop limit: not ours
    filtered = ListedRule(GatewayRule(can0, vcan, fd=False, hops=2), plain=False)  # a filter: not ours
    p = route("can0", "vcan-lea", fd=True)
    kernel.apply(p)
    kernel.gateway.listed += [theirs, filtered]
    absent = p.model_copy(update={"target": Target.ABSENT})
    assert isinstance(kernel.check(absent), ParameterPresent)
    assert kernel.apply(absent) == ParameterAbsent()
    assert kernel.gateway.listed == [theirs, filtered]


def test_a_route_names_a_missing_or_non_can_device(kernel: Kernel) -> None:
    _with_bridge_and(kernel)
    state = kernel.apply(route("can9", "vcan-lea", fd=False))
    assert isinstance(state, ParameterError)
    assert state.reason == "CAN route can9 -> vcan-lea: can9 does not exist in this bench"
    assert kernel.check(route("can9", "vcan-lea", fd=False)) == ParameterAbsent()  # no rules: repaired in order
    kernel.netlink.add_device("eth0", "veth", device_type=ARPHRD_ETHER, up=True)
    state = kernel.apply(route("eth0", "vcan-lea", fd=False))
    assert state == ParameterError(reason="CAN route eth0 -> vcan-lea: eth0 is not a CAN interface")
    gone = route("can9", "vcan-lea", fd=False, target=Target.ABSENT)
    assert kernel.apply(gone) == ParameterAbsent()  # the kernel dropped the rules with the device


def test_a_can_gw_loaded_with_one_hop_is_named_with_the_fix(kernel: Kernel, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _with_bridge_and(kernel)
    kernel.gateway.max_hops = 1
    hops = tmp_path / "max_hops"
    hops.write_text("1\n")
    monkeypatch.setattr(cangw, "MAX_HOPS_PATH", hops)
    state = kernel.apply(route("can0", "vcan-lea", fd=False))
    assert isinstance(state, ParameterError)
    assert state.reason.startswith("CAN route can0 -> vcan-lea: can-gw was loaded with max_hops=1")
    assert "modprobe can-gw max_hops=2" in state.reason
    assert isinstance(kernel.apply(route("vcan-lea", "can0", fd=False)), ParameterPresent)  # 1 hop out is fine


def test_deleting_the_bridge_takes_its_rules_with_it(kernel: Kernel) -> None:
    _with_bridge_and(kernel)
    kernel.apply(route("can0", "vcan-lea", fd=True))
    kernel.apply(bridge(Target.ABSENT))
    assert asyncio.run(kernel.gateway.rules()) == []


# -- DeviceInterface --------------------------------------------------------------------------------
Value = dict[str, str | int | bool]
CLASSIC: Value = {"interface": "can0", "can": "can", "bitrate": 500000, "sample_point": 875, "fd": False}
FD: Value = {**CLASSIC, "fd": True, "data_bitrate": 2000000, "data_sample_point": 750}


def test_the_bit_timing_is_set_while_the_controller_is_down_then_it_is_up(kernel: Kernel) -> None:
    can0 = kernel.netlink.add_device("can0", "can", up=True, bittiming={"bitrate": 250000, "sample_point": 875})
    p = device(FD)
    state = kernel.check(p)
    assert isinstance(state, ParameterError)
    assert state.reason == "CAN interface can0 differs from its configuration: it runs at 250000 bit/s, not 500000"
    state = kernel.apply(p)
    assert isinstance(state, ParameterPresent), state
    assert state.detail == (
        "CAN interface can0: 500000 bit/s at 87.5 %, CAN FD data phase 2000000 bit/s at 75.0 %, error-active"
    )
    assert [(c[0], {k: v for k, v in c[2].items() if k != "index"}) for c in kernel.netlink.calls] == [
        ("set", {"state": "down"}),
        ("set", {"kind": "can", "can_ctrlmode": {"fd": "on"},
                 "can_bittiming": {"bitrate": 500000, "sample_point": 875},
                 "can_data_bittiming": {"bitrate": 2000000, "sample_point": 750}}),
        ("set", {"state": "up"}),
    ]
    assert can0.up and can0.fd
    kernel.netlink.calls.clear()
    assert isinstance(kernel.apply(p), ParameterPresent)
    assert kernel.netlink.calls == []  # as configured: never bounced


def test_a_clock_that_rounds_a_little_counts_as_configured(kernel: Kernel) -> None:
    kernel.netlink.clock = lambda bitrate: bitrate - bitrate // 500  # 0.2 % slow
    kernel.netlink.add_device("can0", "can")
    assert isinstance(kernel.apply(device(CLASSIC)), ParameterPresent)
    kernel.netlink.clock = lambda bitrate: bitrate * 95 // 100
    kernel.netlink.add_device("can1", "can")
    state = kernel.apply(device({**CLASSIC, "interface": "can1"}))
    assert isinstance(state, ParameterError)
    assert state.reason == (
        "CAN interface can1: its controller cannot run at 500000 bit/s at 87.5 %: it runs at 475000 bit/s, not 500000"
    )


def test_fd_on_a_classic_controller_names_the_interface_and_leaves_it_up(kernel: Kernel) -> None:
    can0 = kernel.netlink.add_device("can0", "can", up=True, fd_capable=False, bittiming={"bitrate": 250000})
    state = kernel.apply(device(FD))
    assert isinstance(state, ParameterError)
    assert state.reason.startswith("cannot set CAN interface can0 to 500000 bit/s at 87.5 %, CAN FD data phase")
    assert state.reason.endswith(": Operation not supported")
    assert can0.up


def test_device_interfaces_that_are_not_controllers(kernel: Kernel) -> None:
    state = kernel.apply(device(CLASSIC))
    assert isinstance(state, ParameterError) and state.reason == "CAN interface can0 does not exist in this bench"
    kernel.netlink.add_device("vcan0", "vcan", mtu=72)
    vcan = device({"interface": "vcan0", "can": "vcan"})
    assert kernel.check(vcan) == ParameterError(reason="interface vcan0 is down")
    assert kernel.apply(vcan) == ParameterPresent(detail="vcan vcan0")
    state = kernel.apply(device({**CLASSIC, "interface": "vcan0"}))
    assert isinstance(state, ParameterError) and "a vcan has no bit timing" in state.reason
    kernel.netlink.add_device("eth0", "veth", device_type=ARPHRD_ETHER)
    assert kernel.apply(device({"interface": "eth0", "can": "vcan"})) == ParameterError(
        reason="interface eth0 is a veth, not a vcan"
    )
    state = kernel.apply(device({**CLASSIC, "interface": "eth0"}))
    assert state == ParameterError(reason="interface eth0 is not a CAN interface")
    assert kernel.apply(device(CLASSIC, Target.ABSENT)) == ParameterAbsent()


def test_a_bad_bit_timing_value_is_named(kernel: Kernel) -> None:
    kernel.netlink.add_device("can0", "can")
    state = kernel.apply(device({**CLASSIC, "bitrate": 0}))
    assert state == ParameterError(reason="CAN interface can0: bitrate 0 is not from 1 to 1000000 bit/s")
    assert kernel.netlink.calls == []


# -- CanConnection ----------------------------------------------------------------------------------
@pytest.fixture
def kernel_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """The far end of the bridge's AF_CAN socket: a SOCK_SEQPACKET pair keeps frame boundaries."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    theirs.settimeout(2)
    monkeypatch.setattr(socketcan, "open_can_socket", lambda netns, interface: ours)
    yield theirs
    theirs.close()


def test_a_relay_carries_frames_between_the_bridge_socket_and_udp(kernel: Kernel, kernel_socket: socket.socket) -> None:
    remote = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    remote.bind(("127.0.0.1", 0))
    port = remote.getsockname()[1]
    remote.close()  # the port the relay binds locally; the "remote" answers from it too (both ends use P)
    connection = Parameter(
        id=uuid.uuid4(), kind=ParameterKind.CAN_CONNECTION, target=Target.PRESENT, dependencies=(BRIDGE_ID,),
        value={"role": "client", "local": "127.0.0.1", "remote": "127.0.0.2", "port": port},
    )

    async def scenario() -> None:
        plane = kernel.plane
        assert (await plane.apply(CLUSTER, connection)) == ParameterError(
            reason=f"cannelloni relay 127.0.0.1:{port} <-> 127.0.0.2:{port} (client, vcan ?): its CAN bridge is not up"
        )
        await plane.apply(CLUSTER, bridge())
        state = await plane.apply(CLUSTER, connection)
        assert isinstance(state, ParameterPresent), state
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.2", port))
        peer.setblocking(False)
        loop = asyncio.get_running_loop()
        frame = CanFrame(0x123, b"\x01\x02", fd=False)
        kernel_socket.send(pack_frame(frame))  # a frame on vcan-lea (from a cangw rule)
        frames: list[CanFrame] = []
        while not frames:
            frames += (decode(await asyncio.wait_for(loop.sock_recv(peer, 2048), 2))).frames  # keepalives: empty
        assert frames == [frame]
        fd = CanFrame(0x456, bytes(range(20)), fd=True)
        await loop.sock_sendto(peer, encode(0, [fd]), ("127.0.0.1", port))
        raw = await loop.run_in_executor(None, kernel_socket.recv, 128)
        assert unpack_frame(raw) == fd  # out on vcan-lea, for the cangw rules to the devices
        state = await plane.check(CLUSTER, connection)
        assert isinstance(state, ParameterPresent)
        assert state.metrics["frames_sent"] == 1 and state.metrics["frames_received"] == 1
        gone = connection.model_copy(update={"target": Target.ABSENT})
        assert await plane.apply(CLUSTER, gone) == ParameterAbsent()
        assert plane.relays.running == {}
        peer.close()
        await plane.close()

    asyncio.run(scenario())


# -- sweep ------------------------------------------------------------------------------------------
def test_the_sweep_removes_marked_vcans_it_does_not_keep_and_nothing_else(kernel: Kernel) -> None:
    kernel.netlink.add_device("vcan-old", "vcan", mtu=72, alias=ownership_marker(CLUSTER, uuid.uuid4()))
    kernel.netlink.add_device("vcan0", "vcan", mtu=72)  # the bench's own
    kernel.netlink.add_device("can0", "can", alias=ownership_marker(CLUSTER, uuid.uuid4()))  # never a bridge
    kernel.apply(bridge())
    kernel.netlink.add_device("can1", "can", up=True)
    kernel.apply(route("can1", "vcan-lea", fd=True))  # a route of a configuration that is gone
    removed = asyncio.run(kernel.plane.sweep({BRIDGE_ID}))
    assert removed == ["cangw rules can1 -> vcan-lea", "vcan-old"]
    assert kernel.gateway.listed == []
    assert {link.name for link in kernel.netlink.links.values()} == {"vcan0", "can0", "can1", "vcan-lea"}
    asyncio.run(kernel.plane.close())
    assert kernel.netlink.closed
