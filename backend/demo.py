"""seed_demo(): the demo fleet, so that a new user has something to deploy.

Six simulated test benches (``demo`` peers, labelled as such everywhere) with Ethernet and CAN
devices, and three clusters. Ids are derived from names, so seeding twice changes nothing and a
resource the user deleted or renamed is not resurrected under another id.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass

from backend import actions
from backend.manager import ResourcesManager
from backend.state import State
from resources.cluster import ClusterDescriptor
from resources.errors import LeaError
from resources.kinds import ResourceKind
from resources.peer import CanConfiguration, Device, EthernetConfiguration, NetworkInterface, PeerDescriptor
from resources.resource import AnyResource

DEMO_NAMESPACE = uuid.UUID("5f1c4c1e-2f0e-4d1a-9a7e-1ea0de000000")


def _id(*parts: str) -> uuid.UUID:
    return uuid.uuid5(DEMO_NAMESPACE, "/".join(parts))


@dataclass(frozen=True)
class _Bench:
    name: str
    location: str
    ethernet_devices: tuple[str, ...]
    can_devices: tuple[str, ...]
    fd: bool = False


FLEET = (
    _Bench("demo-hil-01", "Lab A, rack 1", ("gateway-ecu", "infotainment"), ("body-ctrl",)),
    _Bench("demo-hil-02", "Lab A, rack 2", ("adas-camera",), ("brake-ecu", "steering-ecu"), fd=True),
    _Bench("demo-hil-03", "Lab B, rack 1", ("telematics",), ()),
    _Bench("demo-hil-04", "Lab B, rack 2", ("rear-camera", "park-assist"), ("door-ctrl",)),
    _Bench("demo-vehicle-01", "Garage, bay 3", ("central-gateway",), ("powertrain", "battery-mgmt"), fd=True),
    _Bench("demo-vehicle-02", "Garage, bay 4", ("central-gateway",), ("chassis-ctrl",)),
)

CLUSTERS = (
    ("demo-adas-loop", "demo-hil-02", ("demo-hil-02", "demo-hil-01")),
    ("demo-telematics", "demo-hil-03", ("demo-hil-03", "demo-hil-04")),
    ("demo-vehicle-e2e", "demo-vehicle-01", ("demo-vehicle-01", "demo-vehicle-02", "demo-hil-01")),
)


def demo_peer(bench: _Bench) -> PeerDescriptor:
    eth = NetworkInterface(id=_id(bench.name, "eth0"), name="eth0", configuration=EthernetConfiguration())
    interfaces = [eth]
    devices = [
        Device(id=_id(bench.name, d), name=d, description=f"simulated {d}", interface=eth.id, tags=("demo",))
        for d in bench.ethernet_devices
    ]
    if bench.can_devices:
        can_config = (
            CanConfiguration(bitrate=500_000, sample_point=0.8, fd=True, data_bitrate=2_000_000, data_sample_point=0.75)
            if bench.fd
            else CanConfiguration(bitrate=500_000, sample_point=0.875)
        )
        can = NetworkInterface(id=_id(bench.name, "can0"), name="can0", configuration=can_config)
        interfaces.append(can)
        devices += [
            Device(id=_id(bench.name, d), name=d, description=f"simulated {d}", interface=can.id, tags=("demo", "can"))
            for d in bench.can_devices
        ]
    return PeerDescriptor(
        id=_id(bench.name), name=bench.name, location=bench.location, demo=True,
        interfaces=tuple(interfaces), devices=tuple(devices),
    )


def demo_resources() -> list[AnyResource]:
    peers = {b.name: demo_peer(b) for b in FLEET}
    resources: list[AnyResource] = list(peers.values())
    for name, leader, members in CLUSTERS:
        devices = tuple(d.id for m in members for d in peers[m].devices)
        resources.append(
            ClusterDescriptor(id=_id("cluster", name), name=name, leader=peers[leader].id, devices=devices)
        )
    return resources


def _id_by_name(resource: PeerDescriptor | ClusterDescriptor, state: State) -> uuid.UUID | None:
    return state.id_by_name(resource.kind, resource.name)


def seed_demo(manager: ResourcesManager, actor: str = "demo-seed") -> int:
    """Create the demo fleet when missing (idempotent); returns how many resources were created.

    A demo resource that ever existed (it has stored history) is not created again: what the user
    deleted stays deleted.
    """
    missing: list[AnyResource] = []
    for resource in demo_resources():
        if manager.get(resource.kind, resource.id) is not None:
            continue
        if next(iter(manager.store.read_events(kind=resource.kind, resource_id=resource.id, limit=1)), None):
            continue
        if isinstance(resource, PeerDescriptor | ClusterDescriptor):
            taken = manager.read(functools.partial(_id_by_name, resource))
            if taken is not None:
                continue  # the user has a resource of that name: leave theirs alone
        missing.append(resource)
    peers = [r for r in missing if r.kind == ResourceKind.PEER]
    created = len(actions.store_resources(manager, peers, actor).events) if peers else 0
    for cluster in (r for r in missing if isinstance(r, ClusterDescriptor)):
        try:
            actions.store_cluster_descriptor(manager, cluster, actor, create_only=True)
            created += 1
        except LeaError:
            continue  # e.g. the user removed one of its devices: skip it rather than fail the start
    return created
