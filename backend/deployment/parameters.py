"""Each member peer's PeerConfiguration for a cluster (the parameter table of DESIGN section 6).

Parameter ids are derived from the cluster, the peer and what the parameter is about, so the same
cluster always yields the same ids: reports stay attributable across retries, and the golden file
test pins the whole configuration.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from uuid import UUID

from resources.agent import TunnelType
from resources.cluster import ClusterDescriptor
from resources.configuration import Parameter, ParameterKind, PeerConfiguration, Target
from resources.derived import device_owners, ordered_member_ids
from resources.peer import CanConfiguration, NetworkInterface, PeerDescriptor, VcanConfiguration

CAN_BRIDGE_NAME = "vcan-lea"
CAN_BASE_PORT = 20000
#: An underlay MTU a peer did not announce (0) is taken to be Ethernet's.
DEFAULT_UNDERLAY_MTU = 1500
#: Bytes each encapsulation adds to a frame (outer IPv4 + its headers + the inner Ethernet header).
OVERHEAD = {TunnelType.GRETAP: 38, TunnelType.VXLAN: 50}
VXLAN_PORT = 4789
MAX_VNI = 16_777_215  # 24 bits; 0 is not used


@dataclass(frozen=True)
class TunnelPlan:
    """How a cluster's tunnels are made: one encapsulation, one MTU, a VNI per non-leader member."""

    encapsulation: TunnelType = TunnelType.GRETAP
    mtu: int = DEFAULT_UNDERLAY_MTU - OVERHEAD[TunnelType.GRETAP]
    vnis: Mapping[UUID, int] = field(default_factory=dict)  # member -> VNI (vxlan only)

    def value(self, name: str, local: str, remote: str, member: UUID) -> dict[str, str | int | bool]:
        vxlan = self.encapsulation == TunnelType.VXLAN
        return {
            "name": name, "encapsulation": self.encapsulation.value, "local": local, "remote": remote,
            "vni": self.vnis.get(member, 0) if vxlan else 0, "port": VXLAN_PORT if vxlan else 0, "mtu": self.mtu,
        }


def derive_vni(cluster: UUID, member: UUID) -> int:
    """The VNI a cluster's tunnel to ``member`` starts from (1..MAX_VNI), before clashes are avoided."""
    digest = hashlib.sha256(cluster.bytes + member.bytes).digest()
    return int.from_bytes(digest[:4], "big") % MAX_VNI + 1


def plan_tunnels(
    cluster: ClusterDescriptor,
    members: tuple[UUID, ...],
    tunnels: Mapping[UUID, Set[TunnelType]],
    underlay_mtus: Mapping[UUID, int],
    names: Mapping[UUID, str],
    taken: Callable[[], Set[int]] = frozenset,
) -> TunnelPlan | str:
    """gretap when every member has it, else vxlan when every member has it (VNIs clear of
    ``taken()``, the other deployed clusters', asked only then); else why not: "no common tunnel type: ..."."""
    for encapsulation in (TunnelType.GRETAP, TunnelType.VXLAN):
        if all(encapsulation in tunnels.get(m, ()) for m in members):
            break
    else:
        listed = ", ".join(
            f"{names.get(m, str(m))}: {'/'.join(sorted(t.value for t in tunnels.get(m, ()))) or 'none'}"
            for m in members
        )
        return f"no common tunnel type: {listed}"
    mtu = min((underlay_mtus.get(m, 0) or DEFAULT_UNDERLAY_MTU) for m in members) - OVERHEAD[encapsulation]
    vnis: dict[UUID, int] = {}
    if encapsulation == TunnelType.VXLAN:
        used = set(taken())
        for member in members:
            if member == cluster.leader:
                continue
            vni = derive_vni(cluster.id, member)
            while vni in used:  # deterministic: the next free one
                vni = vni % MAX_VNI + 1
            used.add(vni)
            vnis[member] = vni
    return TunnelPlan(encapsulation, mtu, vnis)


@dataclass
class _Builder:
    cluster: ClusterDescriptor
    peer: PeerDescriptor
    target: Target
    parameters: list[Parameter] = field(default_factory=list)

    def add(
        self, kind: ParameterKind, key: str, value: dict[str, str | int | bool], *deps: Parameter
    ) -> Parameter:
        pid = uuid.uuid5(self.cluster.id, f"{self.peer.id}/{kind.value}/{key}")
        param = Parameter(
            id=pid, kind=kind, target=self.target, dependencies=tuple(d.id for d in deps), value=value
        )
        self.parameters.append(param)
        return param


def _cluster_interfaces(cluster: ClusterDescriptor, peer: PeerDescriptor) -> list[NetworkInterface]:
    """The peer's interfaces that carry a device of the cluster, each once, in the peer's order."""
    wanted = {d.interface for d in peer.devices if d.id in cluster.devices}
    return [i for i in peer.interfaces if i.id in wanted]


def kernel_sample_point(fraction: float) -> int:
    """A sample point (0..1, the descriptor's unit) in tenths of a percent (the kernel's unit, 875 =
    87.5 %), rounded half up from its decimal text (0.8125 -> 813, never 812 from binary noise). At
    least 1: the kernel reads 0 as "pick a default", which a descriptor never asked for."""
    tenths = (Decimal(repr(fraction)) * 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return max(1, int(tenths))


def device_interface_value(iface: NetworkInterface) -> dict[str, str | int | bool]:
    """DeviceInterface's value: the interface's name; for a CAN interface also its kind and, for
    real CAN, the bit timing the agent sets (bitrate, sample point, FD and its data phase)."""
    value: dict[str, str | int | bool] = {"interface": iface.name}
    config = iface.configuration
    if isinstance(config, VcanConfiguration):
        value["can"] = "vcan"
    elif isinstance(config, CanConfiguration):
        value.update(
            can="can", bitrate=config.bitrate, sample_point=kernel_sample_point(config.sample_point), fd=config.fd
        )
        if config.fd:
            assert config.data_bitrate is not None and config.data_sample_point is not None  # the descriptor's rule
            value.update(
                data_bitrate=config.data_bitrate, data_sample_point=kernel_sample_point(config.data_sample_point)
            )
    return value


def carries_fd(iface: NetworkInterface) -> bool:
    """Whether the interface's routes carry CAN FD frames too: vcan always, real CAN when configured with FD."""
    config = iface.configuration
    return isinstance(config, VcanConfiguration) or (isinstance(config, CanConfiguration) and config.fd)


def gre_name(remote: UUID) -> str:
    """The local name of the GRE tunnel to ``remote``: a Linux interface name (<= 15 chars).

    Hashed from the whole id: ids that share a prefix (hand-written or sequential ones) still give
    distinct names, where a prefix of the id would give one name (and one parameter id) twice.
    """
    return f"gre-{hashlib.sha256(remote.bytes).hexdigest()[:11]}"


def compute_configurations(
    cluster: ClusterDescriptor,
    peers: Mapping[UUID, PeerDescriptor],
    addresses: Mapping[UUID, str],
    target: Target = Target.PRESENT,
    tunnels: TunnelPlan | None = None,
) -> dict[UUID, PeerConfiguration]:
    """The configuration of every member peer. ``addresses``: each member's reachable address;
    ``tunnels``: how the tunnels are made (default: gretap over a 1500-byte underlay)."""
    plan = tunnels or TunnelPlan()
    members = ordered_member_ids(cluster, device_owners(peers.values()))
    leader = cluster.leader
    interfaces = {m: _cluster_interfaces(cluster, peers[m]) for m in members}
    can_members = [m for m in members if any(i.is_can for i in interfaces[m])]
    uses_can = bool(can_members)
    configurations: dict[UUID, PeerConfiguration] = {}
    for member in members:
        peer = peers[member]
        b = _Builder(cluster, peer, target)
        device_ifaces = {
            i.id: b.add(ParameterKind.DEVICE_INTERFACE, i.name, device_interface_value(i)) for i in interfaces[member]
        }
        bridge_name = peer.effective_bridge_name
        bridge = b.add(ParameterKind.ETHERNET_BRIDGE, bridge_name, {"name": bridge_name})
        remotes = [m for m in members if m != leader] if member == leader else [leader]
        gres: dict[UUID, Parameter] = {}
        for remote in remotes:
            name = gre_name(remote)
            tunnel_member = remote if member == leader else member  # the non-leader end names the VNI
            value = plan.value(name, addresses.get(member, ""), addresses.get(remote, ""), tunnel_member)
            gres[remote] = b.add(ParameterKind.GRE_INTERFACE, str(remote), value, bridge)
        for iface in interfaces[member]:
            if not iface.is_can:
                b.add(
                    ParameterKind.INTERFACE_JOIN, f"device/{iface.name}",
                    {"interface": iface.name, "bridge": bridge_name},
                    device_ifaces[iface.id], bridge,
                )
        for remote, gre in gres.items():
            b.add(
                ParameterKind.INTERFACE_JOIN, f"gre/{remote}",
                {"interface": gre_name(remote), "bridge": bridge_name}, gre, bridge,
            )
        # The leader relays CAN between members, so it needs the CAN bridge whenever any member has CAN.
        if member in can_members or (member == leader and uses_can):
            can_bridge = b.add(ParameterKind.CAN_BRIDGE, CAN_BRIDGE_NAME, {"name": CAN_BRIDGE_NAME})
            can_remotes = [m for m in can_members if m != leader] if member == leader else [leader]
            for remote in can_remotes:
                port = CAN_BASE_PORT + members.index(remote if member == leader else member)
                b.add(
                    ParameterKind.CAN_CONNECTION, str(remote),
                    {
                        "role": "server" if member == leader else "client",
                        "local": addresses.get(member, ""),
                        "remote": addresses.get(remote, ""),
                        "port": port,
                    },
                    can_bridge,
                )
            for iface in interfaces[member]:
                if iface.is_can:  # both directions between the device's bus and the bridge
                    fd = carries_fd(iface)
                    for direction, source, destination in (
                        ("to-bridge", iface.name, CAN_BRIDGE_NAME), ("from-bridge", CAN_BRIDGE_NAME, iface.name),
                    ):
                        b.add(
                            ParameterKind.CAN_LOCAL_ROUTE, f"{iface.name}/{direction}",
                            {"source": source, "destination": destination, "fd": fd},
                            device_ifaces[iface.id], can_bridge,
                        )
        if member == leader:
            for remote, gre in gres.items():
                b.add(
                    ParameterKind.REMOTE_PEER_CHECK, str(remote),
                    {
                        "remote": addresses.get(remote, ""), "peer": str(remote),
                        "bridge": peers[remote].effective_bridge_name,
                    },
                    gre,
                )
        configurations[member] = PeerConfiguration(id=member, cluster=cluster.id, parameters=tuple(b.parameters))
    return configurations
