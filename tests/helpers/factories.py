"""Builders for valid resources, so each test states only what it is about."""

from __future__ import annotations

import uuid
from uuid import UUID

from resources import (
    CanConfiguration,
    ClusterDescriptor,
    Device,
    EthernetConfiguration,
    NetworkInterface,
    PeerDescriptor,
)


def make_peer(
    name: str = "bench-01",
    *,
    devices: int = 2,
    can: bool = False,
    demo: bool = False,
    id: UUID | None = None,
) -> PeerDescriptor:
    eth = NetworkInterface(id=uuid.uuid4(), name="eth0", configuration=EthernetConfiguration())
    interfaces = [eth]
    if can:
        interfaces.append(
            NetworkInterface(
                id=uuid.uuid4(),
                name="can0",
                configuration=CanConfiguration(bitrate=500_000, sample_point=0.875),
            )
        )
    devs = [
        Device(id=uuid.uuid4(), name=f"ecu-{i}", interface=interfaces[i % len(interfaces)].id)
        for i in range(devices)
    ]
    return PeerDescriptor(
        id=id or uuid.uuid4(), name=name, demo=demo, interfaces=tuple(interfaces), devices=tuple(devs)
    )


def make_cluster(
    name: str, leader: PeerDescriptor, *peers: PeerDescriptor, id: UUID | None = None
) -> ClusterDescriptor:
    devices = [d.id for p in (leader, *peers) for d in p.devices]
    return ClusterDescriptor(id=id or uuid.uuid4(), name=name, leader=leader.id, devices=tuple(devices))
