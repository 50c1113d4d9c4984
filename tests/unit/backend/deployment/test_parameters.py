"""compute_configurations: the parameter table of DESIGN section 6, pinned by a golden file.

The golden file holds the configuration of a 3-peer cluster with Ethernet and CAN devices, built
from fixed ids and addresses, dumped as sorted JSON. ``UPDATE_GOLDEN=1`` rewrites it; review the
diff like code. The targeted tests below check the table itself, independently of the file.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.deployment.parameters import CAN_BRIDGE_NAME, compute_configurations, kernel_sample_point
from resources.cluster import ClusterDescriptor
from resources.configuration import Parameter, ParameterKind, PeerConfiguration, Target, dependency_order
from resources.derived import ordered_member_ids
from resources.peer import (
    DEFAULT_BRIDGE_NAME,
    CanConfiguration,
    Device,
    EthernetConfiguration,
    NetworkInterface,
    PeerDescriptor,
    VcanConfiguration,
)

GOLDEN = Path(__file__).parent / "golden" / "three_peer_cluster.json"
K = ParameterKind


def _u(n: int) -> UUID:
    # Deliberately alike ids (they differ only at the end), as hand-written fixtures often are.
    return UUID(f"00000000-0000-4000-8000-{n:012x}")


def three_peer_cluster() -> tuple[ClusterDescriptor, dict[UUID, PeerDescriptor], dict[UUID, str]]:
    """Leader with Ethernet + CAN (and a device outside the cluster), a member with its own bridge
    name, Ethernet, VCAN and CAN FD, and an Ethernet-only member."""
    leader = PeerDescriptor(
        id=_u(0x101), name="bench-leader",
        interfaces=(
            NetworkInterface(id=_u(0x111), name="eth0", configuration=EthernetConfiguration()),
            NetworkInterface(
                id=_u(0x112), name="can0", configuration=CanConfiguration(bitrate=500_000, sample_point=0.875)
            ),
            NetworkInterface(id=_u(0x113), name="eth1", configuration=EthernetConfiguration()),
        ),
        devices=(
            Device(id=_u(0x121), name="gateway", interface=_u(0x111)),
            Device(id=_u(0x122), name="body-ctrl", interface=_u(0x112)),
            Device(id=_u(0x123), name="brake-ecu", interface=_u(0x112)),  # second device, same interface
            Device(id=_u(0x124), name="spare", interface=_u(0x113)),  # not in the cluster
        ),
    )
    member_can = PeerDescriptor(
        id=_u(0x201), name="bench-can", bridge_name="br-can",
        interfaces=(
            NetworkInterface(id=_u(0x211), name="eth0", configuration=EthernetConfiguration()),
            NetworkInterface(id=_u(0x212), name="vcan0", configuration=VcanConfiguration()),
            NetworkInterface(
                id=_u(0x213), name="can1",
                configuration=CanConfiguration(
                    bitrate=500_000, sample_point=0.8, fd=True, data_bitrate=2_000_000, data_sample_point=0.75
                ),
            ),
        ),
        devices=(
            Device(id=_u(0x221), name="camera", interface=_u(0x211)),
            Device(id=_u(0x222), name="sim-ecu", interface=_u(0x212)),
            Device(id=_u(0x223), name="steering", interface=_u(0x213)),
        ),
    )
    member_eth = PeerDescriptor(
        id=_u(0x301), name="bench-eth",
        interfaces=(NetworkInterface(id=_u(0x311), name="eth0", configuration=EthernetConfiguration()),),
        devices=(Device(id=_u(0x321), name="telematics", interface=_u(0x311)),),
    )
    peers = {p.id: p for p in (leader, member_can, member_eth)}
    cluster = ClusterDescriptor(
        id=_u(0xC1), name="golden-cluster", leader=leader.id,
        devices=tuple(d.id for p in peers.values() for d in p.devices if d.name != "spare"),
    )
    addresses = {leader.id: "192.0.2.1", member_can.id: "192.0.2.2", member_eth.id: "192.0.2.3"}
    return cluster, peers, addresses


def _dump(configurations: dict[UUID, PeerConfiguration], peers: dict[UUID, PeerDescriptor]) -> str:
    document = {
        peers[peer_id].name: configuration.model_dump(mode="json")
        for peer_id, configuration in configurations.items()
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def test_golden_three_peer_cluster() -> None:
    cluster, peers, addresses = three_peer_cluster()
    text = _dump(compute_configurations(cluster, peers, addresses), peers)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8")
    assert GOLDEN.exists(), f"{GOLDEN} is missing; run with UPDATE_GOLDEN=1 to create it"
    assert text == GOLDEN.read_text(encoding="utf-8"), (
        "compute_configurations changed; if on purpose, rerun with UPDATE_GOLDEN=1 and review the diff"
    )


def test_same_input_same_output() -> None:
    cluster, peers, addresses = three_peer_cluster()
    first = compute_configurations(cluster, peers, addresses)
    reordered = dict(reversed(list(peers.items())))
    assert compute_configurations(cluster, reordered, dict(reversed(list(addresses.items())))) == first


# -- the table, parameter kind by parameter kind -------------------------------------------------
@pytest.fixture
def setup() -> tuple[ClusterDescriptor, dict[UUID, PeerDescriptor], dict[UUID, str], dict[UUID, PeerConfiguration]]:
    cluster, peers, addresses = three_peer_cluster()
    return cluster, peers, addresses, compute_configurations(cluster, peers, addresses)


Setup = tuple[ClusterDescriptor, dict[UUID, PeerDescriptor], dict[UUID, str], dict[UUID, PeerConfiguration]]


def _of(configuration: PeerConfiguration, kind: ParameterKind) -> list[Parameter]:
    return [p for p in configuration.parameters if p.kind == kind]


def _cluster_interfaces(cluster: ClusterDescriptor, peer: PeerDescriptor) -> list[NetworkInterface]:
    used = {d.interface for d in peer.devices if d.id in cluster.devices}
    return [i for i in peer.interfaces if i.id in used]


def test_members_leader_first(setup: Setup) -> None:
    cluster, peers, _, configurations = setup
    owners = {d.id: p.id for p in peers.values() for d in p.devices}
    members = ordered_member_ids(cluster, owners)
    assert members[0] == cluster.leader
    assert set(members) == set(peers)
    assert list(configurations) == members
    for peer_id, configuration in configurations.items():
        assert configuration.id == peer_id
        assert configuration.cluster == cluster.id


def test_device_interface_per_interface_of_the_cluster(setup: Setup) -> None:
    cluster, peers, _, configurations = setup
    for peer_id, configuration in configurations.items():
        expected = sorted(i.name for i in _cluster_interfaces(cluster, peers[peer_id]))
        got = sorted(str(p.value["interface"]) for p in _of(configuration, K.DEVICE_INTERFACE))
        assert got == expected, peers[peer_id].name
        assert all(p.dependencies == () for p in _of(configuration, K.DEVICE_INTERFACE))
    # The leader's eth1 only carries a device outside the cluster; can0 carries two devices: once.
    leader = configurations[cluster.leader]
    assert sorted(str(p.value["interface"]) for p in _of(leader, K.DEVICE_INTERFACE)) == ["can0", "eth0"]


def test_ethernet_bridge_on_every_member(setup: Setup) -> None:
    _, peers, _, configurations = setup
    for peer_id, configuration in configurations.items():
        bridges = _of(configuration, K.ETHERNET_BRIDGE)
        assert len(bridges) == 1
        assert bridges[0].value["name"] == (peers[peer_id].bridge_name or DEFAULT_BRIDGE_NAME)
        assert bridges[0].dependencies == ()
    names = {peers[p].name: _of(c, K.ETHERNET_BRIDGE)[0].value["name"] for p, c in configurations.items()}
    assert names == {"bench-leader": "br-lea", "bench-can": "br-can", "bench-eth": "br-lea"}


def test_gre_interfaces_member_leader(setup: Setup) -> None:
    cluster, _, addresses, configurations = setup
    members = [m for m in configurations if m != cluster.leader]
    leader_gres = _of(configurations[cluster.leader], K.GRE_INTERFACE)
    assert len(leader_gres) == len(members)
    assert sorted(str(p.value["remote"]) for p in leader_gres) == sorted(addresses[m] for m in members)
    for member in members:
        gres = _of(configurations[member], K.GRE_INTERFACE)
        assert len(gres) == 1
        assert gres[0].value["local"] == addresses[member]
        assert gres[0].value["remote"] == addresses[cluster.leader]
    for peer_id, configuration in configurations.items():
        bridge = _of(configuration, K.ETHERNET_BRIDGE)[0]
        gres = _of(configuration, K.GRE_INTERFACE)
        assert all(p.dependencies == (bridge.id,) for p in gres)
        for p in gres:
            assert p.value["local"] == addresses[peer_id]
            assert 0 < len(str(p.value["name"])) <= 15  # a Linux interface name
        # Interface names on one peer are distinct, even for remotes whose ids look alike.
        assert len({p.value["name"] for p in gres}) == len(gres)


def test_interface_join_for_ethernet_and_gre(setup: Setup) -> None:
    cluster, peers, _, configurations = setup
    for peer_id, configuration in configurations.items():
        bridge = _of(configuration, K.ETHERNET_BRIDGE)[0]
        by_id = {p.id: p for p in configuration.parameters}
        joins = _of(configuration, K.INTERFACE_JOIN)
        ethernet = {i.name for i in _cluster_interfaces(cluster, peers[peer_id]) if not i.is_can}
        gre_names = {str(p.value["name"]) for p in _of(configuration, K.GRE_INTERFACE)}
        assert sorted(str(j.value["interface"]) for j in joins) == sorted(ethernet | gre_names)
        assert len(joins) == len(ethernet) + len(gre_names)
        for join in joins:
            assert join.value["bridge"] == bridge.value["name"]
            assert bridge.id in join.dependencies and len(join.dependencies) == 2
            (interface_id,) = [d for d in join.dependencies if d != bridge.id]
            interface = by_id[interface_id]
            if interface.kind == K.DEVICE_INTERFACE:
                assert interface.value["interface"] == join.value["interface"]
            else:
                assert interface.kind == K.GRE_INTERFACE
                assert interface.value["name"] == join.value["interface"]


def test_can_bridge_on_members_with_can(setup: Setup) -> None:
    cluster, peers, _, configurations = setup
    for peer_id, configuration in configurations.items():
        has_can = any(i.is_can for i in _cluster_interfaces(cluster, peers[peer_id]))
        bridges = _of(configuration, K.CAN_BRIDGE)
        assert len(bridges) == (1 if has_can else 0), peers[peer_id].name
        assert all(b.dependencies == () for b in bridges)
    assert _of(configurations[_u(0x301)], K.CAN_BRIDGE) == []  # the Ethernet-only member


def test_can_connection_member_leader_leader_is_server(setup: Setup) -> None:
    cluster, peers, addresses, configurations = setup
    can_members = [
        m for m in configurations
        if m != cluster.leader and any(i.is_can for i in _cluster_interfaces(cluster, peers[m]))
    ]
    assert can_members == [_u(0x201)]
    leader_connections = _of(configurations[cluster.leader], K.CAN_CONNECTION)
    assert len(leader_connections) == len(can_members)
    assert {c.value["role"] for c in leader_connections} == {"server"}
    assert {c.value["local"] for c in leader_connections} == {addresses[cluster.leader]}
    assert sorted(str(c.value["remote"]) for c in leader_connections) == sorted(addresses[m] for m in can_members)
    for member in can_members:
        (connection,) = _of(configurations[member], K.CAN_CONNECTION)
        assert connection.value["role"] == "client"
        assert connection.value["local"] == addresses[member]
        assert connection.value["remote"] == addresses[cluster.leader]
        # Both ends agree on the port of their connection.
        (server,) = [c for c in leader_connections if c.value["remote"] == addresses[member]]
        assert server.value["port"] == connection.value["port"]
    assert _of(configurations[_u(0x301)], K.CAN_CONNECTION) == []
    ports = [c.value["port"] for c in leader_connections]
    assert len(set(ports)) == len(ports)
    for configuration in configurations.values():
        can_bridges = _of(configuration, K.CAN_BRIDGE)
        for connection in _of(configuration, K.CAN_CONNECTION):
            assert connection.dependencies == (can_bridges[0].id,)


def test_can_local_routes_both_directions_per_can_interface(setup: Setup) -> None:
    cluster, peers, _, configurations = setup
    for peer_id, configuration in configurations.items():
        by_id = {p.id: p for p in configuration.parameters}
        can_ifaces = sorted(i.name for i in _cluster_interfaces(cluster, peers[peer_id]) if i.is_can)
        routes = _of(configuration, K.CAN_LOCAL_ROUTE)
        to_bridge = [r for r in routes if r.value["destination"] == CAN_BRIDGE_NAME]
        from_bridge = [r for r in routes if r.value["source"] == CAN_BRIDGE_NAME]
        assert len(routes) == 2 * len(can_ifaces) == len(to_bridge) + len(from_bridge)
        assert sorted(str(r.value["source"]) for r in to_bridge) == can_ifaces
        assert sorted(str(r.value["destination"]) for r in from_bridge) == can_ifaces
        for route in routes:
            assert set(route.value) == {"source", "destination", "fd"}
            kinds = sorted(by_id[d].kind for d in route.dependencies)
            assert kinds == sorted([K.DEVICE_INTERFACE, K.CAN_BRIDGE])
            (iface,) = [by_id[d] for d in route.dependencies if by_id[d].kind == K.DEVICE_INTERFACE]
            (bridge,) = [by_id[d] for d in route.dependencies if by_id[d].kind == K.CAN_BRIDGE]
            device = route.value["source"] if route in to_bridge else route.value["destination"]
            assert iface.value["interface"] == device
            assert bridge.value["name"] == CAN_BRIDGE_NAME
            # FD frames are routed for a vcan device and for CAN configured with FD, not for classic CAN.
            assert route.value["fd"] is (iface.value["can"] == "vcan" or iface.value.get("fd") is True)
    member_can = configurations[_u(0x201)]
    fd = {(r.value["source"], r.value["destination"]): r.value["fd"] for r in _of(member_can, K.CAN_LOCAL_ROUTE)}
    assert fd == {
        ("vcan0", "vcan-lea"): True, ("vcan-lea", "vcan0"): True,
        ("can1", "vcan-lea"): True, ("vcan-lea", "can1"): True,
    }
    leader = configurations[cluster.leader]
    fd = {(r.value["source"], r.value["destination"]): r.value["fd"] for r in _of(leader, K.CAN_LOCAL_ROUTE)}
    assert fd == {("can0", "vcan-lea"): False, ("vcan-lea", "can0"): False}


def test_device_interface_of_can_carries_the_bit_timing_in_the_kernels_units(setup: Setup) -> None:
    _, _, _, configurations = setup
    values = {
        str(p.value["interface"]): p.value
        for c in configurations.values() for p in _of(c, K.DEVICE_INTERFACE)
    }
    assert values["eth0"] == {"interface": "eth0"}  # Ethernet: the name only
    assert values["vcan0"] == {"interface": "vcan0", "can": "vcan"}
    assert values["can0"] == {"interface": "can0", "can": "can", "bitrate": 500_000, "sample_point": 875, "fd": False}
    assert values["can1"] == {
        "interface": "can1", "can": "can", "bitrate": 500_000, "sample_point": 800, "fd": True,
        "data_bitrate": 2_000_000, "data_sample_point": 750,
    }


@pytest.mark.parametrize(("fraction", "tenths"), [
    (0.875, 875), (0.8, 800), (0.7, 700), (0.1, 100), (0.001, 1), (1.0, 1000),
    (0.8125, 813), (0.0625, 63),  # finer than the kernel's unit: half up, from the decimal text
    (0.0004, 1),  # never 0: the kernel would take that for "choose a default"
])
def test_sample_points_become_tenths_of_a_percent_without_float_surprises(fraction: float, tenths: int) -> None:
    assert kernel_sample_point(fraction) == tenths


@given(st.integers(min_value=1, max_value=1000))
def test_every_sample_point_the_kernel_can_hold_comes_back_exactly(tenths: int) -> None:
    assert kernel_sample_point(tenths / 1000) == tenths


def test_remote_peer_check_on_leader_per_member(setup: Setup) -> None:
    cluster, _, addresses, configurations = setup
    leader = configurations[cluster.leader]
    by_id = {p.id: p for p in leader.parameters}
    members = [m for m in configurations if m != cluster.leader]
    checks = _of(leader, K.REMOTE_PEER_CHECK)
    assert sorted(str(c.value["remote"]) for c in checks) == sorted(addresses[m] for m in members)
    for check in checks:
        (dep,) = check.dependencies
        assert by_id[dep].kind == K.GRE_INTERFACE
        assert by_id[dep].value["remote"] == check.value["remote"]
    for member in members:
        assert _of(configurations[member], K.REMOTE_PEER_CHECK) == []


def test_counts_per_kind(setup: Setup) -> None:
    cluster, _, _, configurations = setup
    counts = {
        name: Counter(p.kind for p in configurations[peer_id].parameters)
        for name, peer_id in (("leader", cluster.leader), ("can", _u(0x201)), ("eth", _u(0x301)))
    }
    assert counts["leader"] == {
        K.DEVICE_INTERFACE: 2, K.ETHERNET_BRIDGE: 1, K.GRE_INTERFACE: 2, K.INTERFACE_JOIN: 3,
        K.CAN_BRIDGE: 1, K.CAN_CONNECTION: 1, K.CAN_LOCAL_ROUTE: 2, K.REMOTE_PEER_CHECK: 2,
    }
    assert counts["can"] == {
        K.DEVICE_INTERFACE: 3, K.ETHERNET_BRIDGE: 1, K.GRE_INTERFACE: 1, K.INTERFACE_JOIN: 2,
        K.CAN_BRIDGE: 1, K.CAN_CONNECTION: 1, K.CAN_LOCAL_ROUTE: 4,
    }
    assert counts["eth"] == {K.DEVICE_INTERFACE: 1, K.ETHERNET_BRIDGE: 1, K.GRE_INTERFACE: 1, K.INTERFACE_JOIN: 2}
    assert set().union(*counts.values()) == set(ParameterKind)  # every kind of the table appears


# -- the graph -------------------------------------------------------------------------------
def test_ids_unique_and_dependencies_within_the_peer(setup: Setup) -> None:
    _, _, _, configurations = setup
    all_ids: list[UUID] = []
    for configuration in configurations.values():
        ids = [p.id for p in configuration.parameters]
        assert len(set(ids)) == len(ids)
        for p in configuration.parameters:
            assert set(p.dependencies) <= set(ids), p
            assert p.id not in p.dependencies
        all_ids += ids
    assert len(set(all_ids)) == len(all_ids)  # unique across the cluster too


def test_dependency_graph_is_acyclic(setup: Setup) -> None:
    _, _, _, configurations = setup
    for configuration in configurations.values():
        deps = {p.id: set(p.dependencies) for p in configuration.parameters}
        # Kahn: repeatedly remove parameters whose dependencies are all removed.
        remaining = dict(deps)
        while remaining:
            ready = [pid for pid, d in remaining.items() if not (d & remaining.keys())]
            assert ready, f"cycle among {len(remaining)} parameters"
            for pid in ready:
                del remaining[pid]
        ordered = dependency_order(configuration.parameters)
        position = {p.id: i for i, p in enumerate(ordered)}
        assert sorted(position) == sorted(deps)
        for p in ordered:
            assert all(position[d] < position[p.id] for d in p.dependencies)


def test_target_absent_gives_the_same_parameters(setup: Setup) -> None:
    cluster, peers, addresses, present = setup
    absent = compute_configurations(cluster, peers, addresses, Target.ABSENT)
    assert absent.keys() == present.keys()
    for peer_id in present:
        assert all(p.target == Target.PRESENT for p in present[peer_id].parameters)
        assert all(p.target == Target.ABSENT for p in absent[peer_id].parameters)
        assert [p.model_copy(update={"target": Target.PRESENT}) for p in absent[peer_id].parameters] == list(
            present[peer_id].parameters
        )


def test_ids_do_not_depend_on_addresses(setup: Setup) -> None:
    """Reports stay attributable when a peer reconnects from another address."""
    cluster, peers, addresses, present = setup
    moved = {p: a.replace("192.0.2.", "198.51.100.") for p, a in addresses.items()}
    again = compute_configurations(cluster, peers, moved)
    for peer_id in present:
        assert [p.id for p in again[peer_id].parameters] == [p.id for p in present[peer_id].parameters]


def test_leader_only_cluster_and_leader_without_devices() -> None:
    cluster, peers, addresses = three_peer_cluster()
    leader = peers[cluster.leader]
    # All devices on the leader: one member, no GRE, no CAN connection, no remote check.
    alone = cluster.model_copy(update={"devices": tuple(d.id for d in leader.devices[:2])})
    (config,) = compute_configurations(alone, peers, addresses).values()
    kinds = Counter(p.kind for p in config.parameters)
    assert kinds[K.GRE_INTERFACE] == kinds[K.CAN_CONNECTION] == kinds[K.REMOTE_PEER_CHECK] == 0
    assert kinds[K.CAN_BRIDGE] == 1 and kinds[K.CAN_LOCAL_ROUTE] == 2
    # A leader with none of the cluster's devices is still a member: bridge, tunnels, checks.
    others = tuple(d.id for p in peers.values() if p.id != leader.id for d in p.devices)
    remote_led = cluster.model_copy(update={"devices": others})
    configurations = compute_configurations(remote_led, peers, addresses)
    assert next(iter(configurations)) == leader.id and len(configurations) == 3
    lead_kinds = Counter(p.kind for p in configurations[leader.id].parameters)
    assert lead_kinds[K.DEVICE_INTERFACE] == 0 and lead_kinds[K.CAN_LOCAL_ROUTE] == 0
    assert lead_kinds[K.GRE_INTERFACE] == 2 and lead_kinds[K.REMOTE_PEER_CHECK] == 2
    # It relays CAN for its CAN member, so it has the CAN bridge its connection depends on.
    assert lead_kinds[K.CAN_BRIDGE] == 1 and lead_kinds[K.CAN_CONNECTION] == 1
