"""The real data plane (lea_peer/dataplane/netlink.py) as root, in network namespaces this test
creates and always deletes: two peer namespaces joined by a veth underlay (MTU 1550), one ECU
namespace behind each peer's device interface, and NetlinkDataPlane driven with the parameter
lists of a two-member cluster (A leads). Skips only where the kernel lacks something, with the
probe's reason."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import pytest
from pyroute2 import IPRoute

from lea_peer.dataplane.netlink import NetlinkDataPlane
from lea_peer.probe import probe_capabilities
from lea_peer.remote_check import (
    BROADCAST,
    ETH_P_LEA_PROBE,
    REPLY,
    REQUEST,
    decode_frame,
    encode_frame,
    underlay_answer,
)
from resources.agent import Capabilities, TunnelType, ownership_marker
from resources.configuration import (
    Parameter,
    ParameterAbsent,
    ParameterError,
    ParameterKind,
    ParameterPresent,
    ParameterStatus,
    Target,
    dependency_order,
)
from tests.helpers.capped_agent import (
    CAP_NET_ADMIN,
    capped_command,
    interpreter_for_nobody,
    make_tun_node,
    tun_needs_a_node,
)
from tests.helpers.echo import FULL_FRAME_PAYLOAD, udp_echo, udp_echo_server
from tests.helpers.netns import delete_link, links, namespaces, namespaces_supported, sweep_leftovers, veth
from tests.helpers.server import REPO

T = TypeVar("T")
_UNSUPPORTED = namespaces_supported()
pytestmark = [
    pytest.mark.skipif(_UNSUPPORTED is not None, reason=_UNSUPPORTED or ""),
    pytest.mark.timeout(120),
]

CLUSTER = UUID("6c0f4f0e-3b8e-4a57-9c1e-2a8d3f7b1c11")
PEER_A = UUID("a0000000-0000-4000-8000-00000000000a")
PEER_B = UUID("b0000000-0000-4000-8000-00000000000b")
UNDERLAY = {PEER_A: "10.99.0.1", PEER_B: "10.99.0.2"}
ECU = {PEER_A: "192.168.77.1", PEER_B: "192.168.77.2"}
BRIDGE = "br-lea"
DEVICE = "ecu0"
VNI = 4711


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(scope="module", autouse=True)
def _no_leftover_namespaces() -> Iterator[None]:
    sweep_leftovers()  # what a killed earlier run left behind
    yield
    sweep_leftovers()


@pytest.fixture(scope="module")
def capabilities() -> Capabilities:
    return run(probe_capabilities())


def needs(capabilities: Capabilities, tunnel: TunnelType) -> None:
    if tunnel not in capabilities.tunnels:
        found = [t.value for t in capabilities.tunnels]
        reason = f"the kernel cannot create {tunnel.value} links (the probe found {found})"
        print(f"SKIP: {reason}")
        pytest.skip(reason)


@dataclass(frozen=True)
class Topology:
    peer: dict[UUID, str]  # namespace of each peer
    ecu: dict[UUID, str]  # namespace of the ECU behind each peer


@pytest.fixture
def topology() -> Iterator[Topology]:
    with namespaces("pa", "pb", "ea", "eb") as (pa, pb, ea, eb):
        veth(pa, "u0", pb, "u0", mtu=1550, address_a="10.99.0.1/24", address_b="10.99.0.2/24")
        veth(pa, DEVICE, ea, "eth0", address_b=f"{ECU[PEER_A]}/24")
        veth(pb, DEVICE, eb, "eth0", address_b=f"{ECU[PEER_B]}/24")
        yield Topology(peer={PEER_A: pa, PEER_B: pb}, ecu={PEER_A: ea, PEER_B: eb})


def _id(peer: UUID, what: str) -> UUID:
    return uuid.uuid5(CLUSTER, f"{peer}/{what}")


def tunnel_name(remote: UUID) -> str:
    return f"gre-{remote.hex[:11]}"


def configuration(peer: UUID, encapsulation: str = "vxlan", target: Target = Target.PRESENT) -> list[Parameter]:
    """One member's parameters, as backend.deployment.parameters makes them (A leads)."""
    remote = PEER_B if peer == PEER_A else PEER_A

    def param(kind: ParameterKind, what: str, value: dict[str, str | int | bool], *deps: Parameter) -> Parameter:
        return Parameter(
            id=_id(peer, what), kind=kind, target=target, dependencies=tuple(d.id for d in deps), value=value
        )

    device = param(ParameterKind.DEVICE_INTERFACE, "device", {"interface": DEVICE})
    bridge = param(ParameterKind.ETHERNET_BRIDGE, "bridge", {"name": BRIDGE})
    tunnel = param(
        ParameterKind.GRE_INTERFACE, "tunnel",
        {
            "name": tunnel_name(remote), "encapsulation": encapsulation, "local": UNDERLAY[peer],
            "remote": UNDERLAY[remote], "vni": VNI if encapsulation == "vxlan" else 0,
            "port": 4789 if encapsulation == "vxlan" else 0, "mtu": 1500,
        },
        bridge,
    )
    params = [
        device, bridge, tunnel,
        param(ParameterKind.INTERFACE_JOIN, "join-device", {"interface": DEVICE, "bridge": BRIDGE}, device, bridge),
        param(
            ParameterKind.INTERFACE_JOIN, "join-tunnel", {"interface": tunnel_name(remote), "bridge": BRIDGE},
            tunnel, bridge,
        ),
    ]
    if peer == PEER_A:
        params.append(
            param(
                ParameterKind.REMOTE_PEER_CHECK, "check",
                {"remote": UNDERLAY[remote], "peer": str(remote), "bridge": BRIDGE}, tunnel,
            )
        )
    return dependency_order(tuple(params))


def absent(params: list[Parameter]) -> list[Parameter]:
    return [p.model_copy(update={"target": Target.ABSENT}) for p in reversed(params)]


async def apply_all(plane: NetlinkDataPlane, params: list[Parameter]) -> dict[str, ParameterStatus]:
    """Each parameter applied in order; the statuses by kind and value (for assertion messages)."""
    return {f"{p.kind.value} {dict(p.value)}": await plane.apply(CLUSTER, p) for p in params}


def data_planes(topology: Topology) -> dict[UUID, NetlinkDataPlane]:
    return {peer: NetlinkDataPlane(peer, topology.peer[peer], UNDERLAY[peer]) for peer in (PEER_A, PEER_B)}


def marked(ns: str) -> dict[str, str]:
    return {name: alias for name, alias in links(ns).items() if alias.startswith("lea:")}


async def echo(topology: Topology, size: int = 64, attempts: int = 3) -> bool:
    with udp_echo_server(topology.ecu[PEER_B], ECU[PEER_B]):
        return await asyncio.to_thread(udp_echo, topology.ecu[PEER_A], ECU[PEER_B], size, 2.0, attempts)


def test_probe_finds_vxlan_and_reports_its_duration(capabilities: Capabilities) -> None:
    started = time.monotonic()
    probed = run(probe_capabilities())
    elapsed_ms = (time.monotonic() - started) * 1000
    print(f"probe took {elapsed_ms:.0f} ms: {probed.model_dump_json()}")  # a timing note, not an assertion
    assert TunnelType.VXLAN in probed.tunnels
    assert probed == capabilities


def test_probe_reads_the_underlay_mtu_in_the_namespace(topology: Topology) -> None:
    probed = run(probe_capabilities(topology.peer[PEER_A], UNDERLAY[PEER_A]))
    assert probed.underlay_mtu == 1550
    assert run(probe_capabilities(topology.peer[PEER_A], "10.123.0.9")).underlay_mtu == 0


@pytest.mark.parametrize("encapsulation", [TunnelType.VXLAN, TunnelType.GRETAP])
def test_cluster_applied_ecus_talk_through_the_tunnel_and_undeploy_removes_it(
    topology: Topology, capabilities: Capabilities, encapsulation: TunnelType
) -> None:
    needs(capabilities, encapsulation)

    async def scenario() -> None:
        planes = data_planes(topology)
        config = {peer: configuration(peer, encapsulation.value) for peer in planes}
        try:
            assert not await echo(topology, attempts=1), "the ECUs must not reach each other before the deployment"
            # B first: its responder must be up before A's RemotePeerCheck asks for it.
            for peer in (PEER_B, PEER_A):
                results = await apply_all(planes[peer], config[peer])
                assert all(isinstance(s, ParameterPresent) for s in results.values()), results
            tunnel = await planes[PEER_A].apply(CLUSTER, config[PEER_A][2])
            assert isinstance(tunnel, ParameterPresent)
            if encapsulation is TunnelType.VXLAN:
                assert tunnel.detail == f"vxlan vni {VNI} to {UNDERLAY[PEER_B]}:4789, mtu 1500"
            check = config[PEER_A][-1]
            assert check.kind is ParameterKind.REMOTE_PEER_CHECK
            present = await planes[PEER_A].check(CLUSTER, check)
            assert isinstance(present, ParameterPresent), present
            assert str(PEER_B) in (present.detail or "")

            assert await echo(topology), "a small UDP echo from ECU A to ECU B across the tunnel"
            assert await echo(topology, FULL_FRAME_PAYLOAD), "a full 1500-byte packet (underlay MTU 1550)"
            for peer in planes:
                checked = [await planes[peer].check(CLUSTER, p) for p in config[peer]]
                assert all(isinstance(s, ParameterPresent) for s in checked), checked
                assert {link.name for link in await planes[peer].owned()} == {BRIDGE, config[peer][2].value["name"]}

            for peer in planes:
                results = await apply_all(planes[peer], absent(config[peer]))
                assert all(isinstance(s, ParameterAbsent) for s in results.values()), results
                assert await asyncio.to_thread(marked, topology.peer[peer]) == {}
                assert DEVICE in await asyncio.to_thread(links, topology.peer[peer]), "device interfaces stay"
                assert planes[peer].responding_on == []
            assert not await echo(topology, attempts=1), "no echo once the tunnel is gone"
        finally:
            for plane in planes.values():
                await plane.close()

    run(scenario())


def test_apply_is_idempotent_and_joins_already_joined_links(topology: Topology, capabilities: Capabilities) -> None:
    needs(capabilities, TunnelType.VXLAN)

    async def scenario() -> None:
        plane = data_planes(topology)[PEER_B]
        params = configuration(PEER_B)
        try:
            first = await apply_all(plane, params)
            second = await apply_all(plane, params)
            assert first == second
            assert all(isinstance(s, ParameterPresent) for s in second.values())
        finally:
            await plane.close()

    run(scenario())


def test_remote_peer_check_fails_when_the_remote_agent_does_not_answer(
    topology: Topology, capabilities: Capabilities
) -> None:
    needs(capabilities, TunnelType.VXLAN)

    async def scenario() -> None:
        planes = data_planes(topology)
        try:
            await apply_all(planes[PEER_A], configuration(PEER_A)[:-1])
            check = configuration(PEER_A)[-1]
            # B's underlay answers, but B has no bridge, no tunnel, no station.
            started = time.monotonic()
            status = await planes[PEER_A].check(CLUSTER, check)
            assert isinstance(status, ParameterError)
            assert "did not answer a probe frame on bridge br-lea within 5 s" in status.reason
            assert "its underlay address 10.99.0.2 answers (it refused a TCP connection to port 33434)" in status.reason
            assert "the tunnel or the remote agent is at fault" in status.reason
            elsewhere = check.model_copy(update={"value": {**check.value, "remote": "10.99.0.77"}})
            status = await planes[PEER_A].check(CLUSTER, elsewhere)
            assert isinstance(status, ParameterError)
            assert "10.99.0.77 does not answer either (host unreachable: no ARP reply" in status.reason
            print(f"two failed checks took {time.monotonic() - started:.1f} s")  # a note: 5 s each, underlay included
        finally:
            for plane in planes.values():
                await plane.close()

    run(scenario())


def test_the_underlay_test_says_how_an_address_does_not_answer(topology: Topology) -> None:
    ns = topology.peer[PEER_A]
    with IPRoute(netns=ns, flags=0) as ipr:
        # A route through B, which does not forward: what goes there vanishes without a word.
        ipr.route("add", dst="10.55.0.0/24", gateway=UNDERLAY[PEER_B])

    async def scenario() -> None:
        assert await underlay_answer(ns, UNDERLAY[PEER_B], 5.0) == (True, "it refused a TCP connection to port 33434")
        assert await underlay_answer(ns, "10.123.0.9", 5.0) == (False, "network unreachable: no route to it")
        unreachable = await underlay_answer(ns, "10.99.0.77", 5.0)
        assert unreachable == (False, "host unreachable: no ARP reply, or an ICMP host unreachable came back")
        assert await underlay_answer(ns, "10.55.0.9", 1.5) == (
            False, "nothing came back to a TCP connection attempt within 1.5 s: host down, or a firewall drops it",
        )

    run(scenario())


def test_a_remote_peer_check_on_a_missing_bridge_is_an_error_naming_it(topology: Topology) -> None:
    async def scenario() -> None:
        plane = data_planes(topology)[PEER_A]
        try:
            status = await plane.check(CLUSTER, configuration(PEER_A)[-1])
            assert status == ParameterError(
                reason=f"cannot send probe frames on bridge br-lea: it does not exist in network namespace "
                f"{topology.peer[PEER_A]}"
            )
        finally:
            await plane.close()

    run(scenario())


def test_a_same_named_bridge_we_did_not_create_is_an_error_and_stays(topology: Topology) -> None:
    ns = topology.peer[PEER_A]
    with IPRoute(netns=ns, flags=0) as ipr:
        ipr.link("add", ifname=BRIDGE, kind="bridge")

    async def scenario() -> None:
        plane = data_planes(topology)[PEER_A]
        bridge = configuration(PEER_A)[1]
        assert bridge.kind is ParameterKind.ETHERNET_BRIDGE
        try:
            status = await plane.apply(CLUSTER, bridge)
            assert isinstance(status, ParameterError)
            assert "a link named br-lea exists that this agent did not create" in status.reason
            removed = await plane.apply(CLUSTER, bridge.model_copy(update={"target": Target.ABSENT}))
            assert isinstance(removed, ParameterAbsent), "not ours: Absent, and not deleted"
            assert await plane.sweep(keep=()) == []
        finally:
            await plane.close()

    run(scenario())
    assert links(ns)[BRIDGE] == "", "the unowned bridge is still there, unmarked"


def test_a_missing_device_interface_is_an_error_naming_it(topology: Topology) -> None:
    async def scenario() -> None:
        plane = data_planes(topology)[PEER_A]
        device = configuration(PEER_A)[0].model_copy(update={"value": {"interface": "eth9"}})
        try:
            status = await plane.apply(CLUSTER, device)
            assert isinstance(status, ParameterError)
            assert "interface eth9 does not exist" in status.reason
        finally:
            await plane.close()

    run(scenario())


def test_a_down_device_interface_is_set_up_and_check_reports_it_down(topology: Topology) -> None:
    ns = topology.peer[PEER_A]
    with IPRoute(netns=ns, flags=0) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=DEVICE)[0], state="down")

    async def scenario() -> None:
        plane = data_planes(topology)[PEER_A]
        device = configuration(PEER_A)[0]
        try:
            down = await plane.check(CLUSTER, device)
            assert isinstance(down, ParameterError) and "interface ecu0 is down" in down.reason
            assert isinstance(await plane.apply(CLUSTER, device), ParameterPresent)
            assert isinstance(await plane.check(CLUSTER, device), ParameterPresent)
        finally:
            await plane.close()

    run(scenario())


def test_check_reports_drift_and_changes_nothing(topology: Topology, capabilities: Capabilities) -> None:
    needs(capabilities, TunnelType.VXLAN)
    ns = topology.peer[PEER_A]
    params = configuration(PEER_A)
    tunnel, join = params[2], params[4]
    name = str(tunnel.value["name"])

    async def scenario() -> None:
        plane = data_planes(topology)[PEER_A]
        try:
            await apply_all(plane, params[:-1])
            await asyncio.to_thread(delete_link, ns, name)  # behind the agent's back
            assert isinstance(await plane.check(CLUSTER, tunnel), ParameterAbsent)
            assert isinstance(await plane.check(CLUSTER, join), ParameterAbsent)
            assert name not in await asyncio.to_thread(links, ns), "check created nothing"
            assert isinstance(await plane.apply(CLUSTER, tunnel), ParameterPresent)
            assert isinstance(await plane.apply(CLUSTER, join), ParameterPresent)

            # Another VNI in the value: check names the difference, apply recreates the tunnel.
            changed = tunnel.model_copy(update={"value": {**tunnel.value, "vni": 4712}})
            drift = await plane.check(CLUSTER, changed)
            assert isinstance(drift, ParameterError)
            assert drift.reason == f"tunnel {name} differs from its configuration: its id is 4711, not 4712"
            recreated = await plane.apply(CLUSTER, changed)
            assert isinstance(recreated, ParameterPresent) and "vni 4712" in (recreated.detail or "")
        finally:
            await plane.close()

    run(scenario())


def test_a_new_instance_sweeps_what_a_killed_one_left_and_nothing_unmarked(
    topology: Topology, capabilities: Capabilities
) -> None:
    needs(capabilities, TunnelType.VXLAN)
    ns = topology.peer[PEER_A]
    with IPRoute(netns=ns, flags=0) as ipr:
        ipr.link("add", ifname="br-mine", kind="bridge")
    params = configuration(PEER_A)[:-1]

    async def killed() -> None:
        plane = data_planes(topology)[PEER_A]
        await apply_all(plane, params)
        await plane.close()  # releases handles only: the links stay, as after a SIGKILL

    run(killed())
    assert set(marked(ns)) == {BRIDGE, str(params[2].value["name"])}
    assert marked(ns)[BRIDGE] == ownership_marker(CLUSTER, params[1].id)

    async def restarted() -> None:
        plane = data_planes(topology)[PEER_A]
        try:
            kept = await plane.sweep(keep={params[1].id})
            assert kept == [str(params[2].value["name"])], "the tunnel not kept"
            assert sorted(await plane.sweep(keep=())) == [BRIDGE]
            assert await plane.owned() == []
        finally:
            await plane.close()

    run(restarted())
    remaining = links(ns)
    assert "br-mine" in remaining and DEVICE in remaining and "u0" in remaining


def test_probe_ports_are_not_owned_links_and_go_with_their_bridge(
    topology: Topology, capabilities: Capabilities
) -> None:
    needs(capabilities, TunnelType.VXLAN)
    ns = topology.peer[PEER_B]
    params = configuration(PEER_B)
    tunnel = str(params[2].value["name"])

    def probe_ports() -> dict[str, str]:
        return {name: alias for name, alias in links(ns).items() if name.startswith("leaprb-")}

    async def scenario() -> None:
        plane = data_planes(topology)[PEER_B]
        try:
            await apply_all(plane, params)
            ports = await asyncio.to_thread(probe_ports)
            assert list(ports.values()) == [ownership_marker(CLUSTER, params[1].id)], "one, with its bridge's marker"
            assert {link.name for link in await plane.owned()} == {BRIDGE, tunnel}
            assert await plane.sweep(keep=()) == [tunnel, BRIDGE], "the probe port is not swept"
            assert plane.responding_on == []
            assert await asyncio.to_thread(probe_ports) == {}, "closing its descriptor removed it"
        finally:
            await plane.close()

    run(scenario())


def test_a_station_reads_broadcasts_but_not_the_frames_flooded_to_other_addresses(topology: Topology) -> None:
    from pyroute2 import netns

    ecu_mac, elsewhere = bytes.fromhex("020000000042"), bytes.fromhex("020000000099")
    nonce = os.urandom(16)

    def flood_then_ask(count: int) -> bool:
        """From ECU A (a packet socket: this test is root): ``count`` frames to an address nobody
        on the bridge has (flooded to every port), then a probe request for A; True once A's
        reply is back, so the station has read everything sent before it."""
        sock = netns.create_socket(topology.ecu[PEER_A], socket.AF_PACKET, socket.SOCK_RAW,
                                   socket.htons(ETH_P_LEA_PROBE), flags=0)
        try:
            sock.bind(("eth0", ETH_P_LEA_PROBE))
            sock.settimeout(20)
            for _ in range(count):
                sock.send(elsewhere + ecu_mac + struct.pack("!H", ETH_P_LEA_PROBE) + b"\0" * 53)
            sock.send(encode_frame(BROADCAST, ecu_mac, REQUEST, nonce, PEER_B, PEER_A))
            while True:
                probe = decode_frame(sock.recv(2048))
                if probe is not None and probe.kind == REPLY and probe.nonce == nonce:
                    return True
        except TimeoutError:
            return False
        finally:
            sock.close()

    async def scenario() -> None:
        plane = data_planes(topology)[PEER_A]
        params = configuration(PEER_A)
        try:
            for p in (params[0], params[1], params[3]):  # device, bridge, join of the device
                assert isinstance(await plane.apply(CLUSTER, p), ParameterPresent)
            station = plane._stations[BRIDGE]
            assert await asyncio.to_thread(flood_then_ask, 20), "the station answers a broadcast request"
            assert station.received < 20, "the 20 frames to 02:00:00:00:00:99 stayed in the kernel"
        finally:
            await plane.close()

    run(scenario())


def test_a_probe_port_does_not_lower_the_bridge_mtu(topology: Topology) -> None:
    ns = topology.peer[PEER_A]
    with IPRoute(netns=ns, flags=0) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=DEVICE)[0], mtu=9000)

    def bridge_mtu() -> int:
        with IPRoute(netns=ns, flags=0) as ipr:
            return int(ipr.link("get", ifname=BRIDGE)[0].get("IFLA_MTU"))

    async def scenario() -> None:
        plane = data_planes(topology)[PEER_A]
        params = configuration(PEER_A)
        try:
            for p in (params[0], params[1], params[3]):  # device, bridge, join of the device
                assert isinstance(await plane.apply(CLUSTER, p), ParameterPresent)
            assert plane.responding_on == [BRIDGE]
            assert await asyncio.to_thread(bridge_mtu) == 9000, "the smallest port is the 9000-byte device"
        finally:
            await plane.close()

    run(scenario())


def test_without_dev_net_tun_the_bridge_says_it_cannot_answer_and_the_check_says_why(
    topology: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lea_peer.dataplane.netlink

    def refused(name: str) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(lea_peer.dataplane.netlink, "open_tap", refused)
    why = "cannot make a probe port with /dev/net/tun: Permission denied"

    async def scenario() -> None:
        plane = data_planes(topology)[PEER_A]
        params = configuration(PEER_A)
        try:
            bridge = await plane.apply(CLUSTER, params[1])
            assert bridge == ParameterPresent(detail=f"not answering probe frames: {why}")
            assert await plane.check(CLUSTER, params[-1]) == ParameterError(
                reason=f"cannot send probe frames on bridge {BRIDGE}: {why}"
            )
        finally:
            await plane.close()

    run(scenario())


def test_a_missing_namespace_is_an_error_and_is_not_created() -> None:
    from tests.helpers.netns import PREFIX

    missing = f"{PREFIX}missing"

    async def scenario() -> ParameterStatus:
        plane = NetlinkDataPlane(PEER_A, missing, "")
        try:
            return await plane.apply(CLUSTER, configuration(PEER_A)[1])
        finally:
            await plane.close()

    status = run(scenario())
    assert isinstance(status, ParameterError)
    assert status.reason == f"network namespace {missing} does not exist"
    from pyroute2 import netns

    assert missing not in netns.listnetns()


def test_a_can_bridge_is_the_userspace_hub_and_adds_no_link(topology: Topology) -> None:
    async def scenario() -> tuple[ParameterStatus, ParameterStatus]:
        plane = data_planes(topology)[PEER_A]
        bridge = Parameter(id=uuid.uuid4(), kind=ParameterKind.CAN_BRIDGE, target=Target.PRESENT,
                           value={"name": "vcan-lea"})
        try:
            return await plane.apply(CLUSTER, bridge), await plane.check(CLUSTER, bridge)
        finally:
            await plane.close()

    applied, checked = run(scenario())
    assert isinstance(applied, ParameterPresent) and "userspace hub vcan-lea" in (applied.detail or ""), applied
    assert checked == applied
    assert "vcan-lea" not in links(topology.peer[PEER_A])


def _scratch_namespaces() -> list[str]:
    from pyroute2 import netns

    return [n for n in netns.listnetns() if n.startswith(f"leaprobe-{os.getpid()}-")]


def test_the_probe_deletes_its_scratch_namespace_even_when_it_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import lea_peer.probe

    async def broken(netns: str | None, remove: bool) -> list[str]:
        assert netns is not None and netns.startswith("leaprobe-")
        assert netns in _scratch_namespaces()
        raise RuntimeError("probe broke")

    monkeypatch.setattr(lea_peer.probe, "_probe", broken)
    with pytest.raises(RuntimeError, match="probe broke"):
        run(probe_capabilities())
    assert _scratch_namespaces() == []


def test_without_the_right_to_make_a_namespace_the_probe_tries_in_place_and_leaves_nothing(
    topology: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lea_peer.probe

    def refused(name: str) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(lea_peer.probe, "_create_scratch", refused)
    ns = topology.peer[PEER_A]
    before = links(ns)
    probed = run(probe_capabilities(ns, UNDERLAY[PEER_A]))
    assert TunnelType.VXLAN in probed.tunnels
    assert probed.underlay_mtu == 1550
    assert links(ns) == before


def test_a_join_takes_out_only_its_own_bridge_and_a_failed_join_detaches_nothing(topology: Topology) -> None:
    ns = topology.peer[PEER_A]
    with IPRoute(netns=ns, flags=0) as ipr:
        ipr.link("add", ifname="br-mine", kind="bridge")
        mine = ipr.link_lookup(ifname="br-mine")[0]
        ipr.link("set", index=ipr.link_lookup(ifname=DEVICE)[0], master=mine)

    def master() -> int:
        with IPRoute(netns=ns, flags=0) as ipr:
            return int(ipr.link("get", ifname=DEVICE)[0].get("IFLA_MASTER") or 0)

    async def scenario() -> None:
        plane = data_planes(topology)[PEER_A]
        join = configuration(PEER_A)[3]
        assert join.kind is ParameterKind.INTERFACE_JOIN and join.value["interface"] == DEVICE
        try:
            status = await plane.apply(CLUSTER, join)  # br-lea does not exist
            assert isinstance(status, ParameterError)
            assert status.reason == "cannot join ecu0: bridge br-lea does not exist"
            assert await asyncio.to_thread(master) == mine, "still in the engineer's bridge"
            removed = await plane.apply(CLUSTER, join.model_copy(update={"target": Target.ABSENT}))
            assert isinstance(removed, ParameterAbsent)
            assert await asyncio.to_thread(master) == mine, "not joined to br-lea: left alone"
        finally:
            await plane.close()

    run(scenario())


_APPLY_AND_HANG = """
import asyncio, json, sys
from uuid import UUID
from lea_peer.dataplane.netlink import NetlinkDataPlane
from resources.configuration import Parameter

async def main():
    peer, ns, cluster, params = json.loads(sys.stdin.read())
    plane = NetlinkDataPlane(UUID(peer), ns, "")
    for p in params:
        status = await plane.apply(UUID(cluster), Parameter.model_validate(p))
        assert status.status == "present", status
    print("applied", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def test_links_of_an_agent_killed_with_sigkill_are_swept_by_the_next(
    topology: Topology, capabilities: Capabilities
) -> None:
    needs(capabilities, TunnelType.VXLAN)
    ns = topology.peer[PEER_B]
    params = configuration(PEER_B)
    payload = json.dumps([str(PEER_B), ns, str(CLUSTER), [p.model_dump(mode="json") for p in params]])
    agent = subprocess.Popen(
        [sys.executable, "-c", _APPLY_AND_HANG], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert agent.stdin is not None and agent.stdout is not None
        agent.stdin.write(payload)
        agent.stdin.close()
        assert agent.stdout.readline().strip() == "applied"
        agent.send_signal(signal.SIGKILL)
        agent.wait(20)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(20)
        if agent.stdout is not None:
            agent.stdout.close()
    assert set(marked(ns)) == {BRIDGE, str(params[2].value["name"])}

    async def restarted() -> list[str]:
        plane = data_planes(topology)[PEER_B]
        try:
            return await plane.sweep(keep=())
        finally:
            await plane.close()

    assert run(restarted()) == [str(params[2].value["name"]), BRIDGE], "the tunnel before the bridge"
    assert marked(ns) == {}
    assert DEVICE in links(ns)


def test_a_bridge_recreated_after_drift_answers_probes_again(topology: Topology, capabilities: Capabilities) -> None:
    needs(capabilities, TunnelType.VXLAN)

    async def scenario() -> None:
        planes = data_planes(topology)
        config = {peer: configuration(peer) for peer in planes}
        bridge = config[PEER_B][1]
        try:
            for peer in (PEER_B, PEER_A):
                await apply_all(planes[peer], config[peer])
            await asyncio.to_thread(delete_link, topology.peer[PEER_B], BRIDGE)  # behind B's back
            assert isinstance(await planes[PEER_B].check(CLUSTER, bridge), ParameterAbsent)
            lost = await planes[PEER_A].check(CLUSTER, config[PEER_A][-1])
            assert isinstance(lost, ParameterError), "B's bridge is gone: nobody answers"
            await apply_all(planes[PEER_B], config[PEER_B])
            back = await planes[PEER_A].check(CLUSTER, config[PEER_A][-1])
            assert isinstance(back, ParameterPresent), back
        finally:
            for plane in planes.values():
                await plane.close()

    run(scenario())


def test_a_1450_byte_tunnel_drops_full_frames_silently_which_is_why_the_mtu_is_explicit(
    topology: Topology, capabilities: Capabilities
) -> None:
    needs(capabilities, TunnelType.VXLAN)

    def small(params: list[Parameter]) -> list[Parameter]:
        return [
            p.model_copy(update={"value": {**p.value, "mtu": 1450}}) if p.kind is ParameterKind.GRE_INTERFACE else p
            for p in params
        ]

    async def scenario() -> None:
        planes = data_planes(topology)
        try:
            for peer in (PEER_B, PEER_A):
                results = await apply_all(planes[peer], small(configuration(peer)))
                assert all(isinstance(s, ParameterPresent) for s in results.values()), results
            assert await echo(topology), "small packets pass"
            assert not await echo(topology, FULL_FRAME_PAYLOAD, attempts=1), "a 1500-byte packet vanishes"
        finally:
            for plane in planes.values():
                await plane.close()

    run(scenario())


# -- as the systemd unit runs it: user nobody, CAP_NET_ADMIN only, no --netns ----------------------

CAP_NET_ADMIN_ONLY = f"{1 << CAP_NET_ADMIN:016x}"


@pytest.fixture
def tun_node(tmp_path: Path) -> Path | None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    if interpreter_for_nobody() is None:
        pytest.skip("no Python interpreter that user nobody may run")
    return make_tun_node(tmp_path) if tun_needs_a_node() else None


@contextlib.contextmanager
def capped(ns: str, tun_node: Path | None, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``python -m tests.helpers.capped_agent ARGS`` in ``ns`` as nobody with CAP_NET_ADMIN only;
    killed on the way out if it has not exited."""
    command, env = capped_command(ns, tun_node, *args)
    agent = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env
    )
    try:
        yield agent
    finally:
        if agent.poll() is None:
            agent.kill()
        agent.communicate(timeout=20)


def said(agent: subprocess.Popen[str], timeout_s: float = 60) -> dict[str, Any]:
    """The next JSON line ``agent`` prints (its stderr in the message if it prints none)."""
    assert agent.stdout is not None
    ready, _, _ = select.select([agent.stdout], [], [], timeout_s)
    line = agent.stdout.readline() if ready else ""
    if not line:
        agent.kill()
        _, err = agent.communicate(timeout=20)
        raise AssertionError(f"the capped agent printed nothing (exit status {agent.returncode}): {err}")
    document: dict[str, Any] = json.loads(line)
    return document


def tell(agent: subprocess.Popen[str], line: str) -> None:
    assert agent.stdin is not None
    agent.stdin.write(line + "\n")
    agent.stdin.flush()


def assert_only_cap_net_admin(status: dict[str, str]) -> None:
    for line in ("CapEff", "CapPrm", "CapBnd"):
        assert status[line] == CAP_NET_ADMIN_ONLY, f"{line} is {status[line]}: not CAP_NET_ADMIN alone"


def test_with_only_cap_net_admin_a_cluster_deploys_its_remote_peer_check_is_present_and_undeploys(
    topology: Topology, capabilities: Capabilities, tun_node: Path | None
) -> None:
    needs(capabilities, TunnelType.VXLAN)
    config = {peer: configuration(peer) for peer in (PEER_A, PEER_B)}
    documents = {
        peer: json.dumps({
            "peer": str(peer), "cluster": str(CLUSTER), "underlay": UNDERLAY[peer],
            "parameters": [p.model_dump(mode="json") for p in config[peer]],
        })
        for peer in config
    }
    with (
        capped(topology.peer[PEER_B], tun_node, "apply") as agent_b,
        capped(topology.peer[PEER_A], tun_node, "apply") as agent_a,
    ):
        agents = {PEER_A: agent_a, PEER_B: agent_b}
        # B first: its responder must be up before A's RemotePeerCheck asks for it.
        tell(agent_b, documents[PEER_B])
        got = {PEER_B: said(agent_b)}
        tell(agent_a, documents[PEER_A])
        got[PEER_A] = said(agent_a)
        for peer in agents:
            assert_only_cap_net_admin(got[peer]["status"])
            for phase in ("applied", "checked"):
                not_present = {i: s for i, s in got[peer][phase].items() if s["status"] != "present"}
                assert not_present == {}, f"{phase} on {peer}"

        check = config[PEER_A][-1]
        assert check.kind is ParameterKind.REMOTE_PEER_CHECK
        assert f"peer {PEER_B} answered on {BRIDGE}" in got[PEER_A]["checked"][str(check.id)]["detail"]
        assert run(echo(topology)), "a UDP echo from ECU A to ECU B across the tunnel"

        for peer, agent in agents.items():
            tell(agent, "undeploy")
            not_absent = {i: s for i, s in said(agent)["removed"].items() if s["status"] != "absent"}
            assert not_absent == {}, f"undeployed on {peer}"
            assert agent.wait(20) == 0
    for peer in agents:
        assert marked(topology.peer[peer]) == {}
        assert not [name for name in links(topology.peer[peer]) if name.startswith("leaprb-")], "no probe port left"


def test_with_only_cap_net_admin_the_probe_tries_in_place_and_leaves_nothing(
    topology: Topology, tun_node: Path | None
) -> None:
    ns = topology.peer[PEER_A]
    before = links(ns)
    with capped(ns, tun_node, "probe", UNDERLAY[PEER_A]) as agent:  # as the agent starts: /dev/net/tun too
        got = said(agent)
        assert agent.wait(20) == 0
    assert_only_cap_net_admin(got["status"])
    assert TunnelType.VXLAN.value in got["capabilities"]["tunnels"]
    assert got["capabilities"]["underlay_mtu"] == 1550
    assert links(ns) == before, "every trial link deleted again"
    from pyroute2 import netns

    assert not [n for n in netns.listnetns() if n.startswith(f"leaprobe-{got['pid']}-")], "no scratch namespace"
