"""Sample resources: one of every kind and state, fully populated (round trips, strict reading)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from resources import (
    CanConfiguration,
    ClusterDeployment,
    ClusterState,
    Deployed,
    Deploying,
    Device,
    EthernetConfiguration,
    Failed,
    NetworkInterface,
    Offline,
    Online,
    Parameter,
    ParameterAbsent,
    ParameterError,
    ParameterKind,
    ParameterPresent,
    ParameterReport,
    PeerConfiguration,
    PeerConfigurationState,
    PeerConnectionState,
    PeerDescriptor,
    Progress,
    Target,
    Undeployed,
    Undeploying,
    VcanConfiguration,
    Waiting,
)
from resources.resource import AnyResource
from tests.helpers.factories import make_cluster, make_peer

NOW = datetime(2024, 5, 17, 12, 30, 15, 123456, tzinfo=UTC)


def full_peer() -> PeerDescriptor:
    eth = NetworkInterface(id=uuid.uuid4(), name="eth0", configuration=EthernetConfiguration())
    vcan = NetworkInterface(id=uuid.uuid4(), name="vcan0", configuration=VcanConfiguration())
    can = NetworkInterface(
        id=uuid.uuid4(), name="can0", configuration=CanConfiguration(bitrate=500_000, sample_point=0.875)
    )
    canfd = NetworkInterface(
        id=uuid.uuid4(),
        name="can1",
        configuration=CanConfiguration(
            bitrate=500_000, sample_point=0.8, fd=True, data_bitrate=2_000_000, data_sample_point=0.75
        ),
    )
    devices = (
        Device(id=uuid.uuid4(), name="ecu-front", description="Front ECU", interface=eth.id, tags=("a", "b")),
        Device(id=uuid.uuid4(), name="ecu-rear", interface=can.id),
        Device(id=uuid.uuid4(), name="ecu-fd", interface=canfd.id, tags=("fd",)),
        Device(id=uuid.uuid4(), name="ecu-virtual", interface=vcan.id),
    )
    return PeerDescriptor(
        id=uuid.uuid4(),
        version=3,
        name="bench-full",
        location="Lab 4, rack 2",
        demo=True,
        interfaces=(eth, vcan, can, canfd),
        bridge_name="br-full",
        devices=devices,
    )


def every_resource() -> list[AnyResource]:
    peer = full_peer()
    cluster = make_cluster("cluster-full", peer).model_copy(update={"version": 2})
    p1, p2 = uuid.uuid4(), uuid.uuid4()
    return [
        peer,
        make_peer("bench-min", devices=0),
        cluster,
        ClusterDeployment(id=cluster.id, version=1),
        PeerConnectionState(id=peer.id),
        PeerConnectionState(id=peer.id, state=Offline()),
        PeerConnectionState(id=peer.id, state=Online(remote_host="10.0.0.7", since=NOW)),
        PeerConnectionState(
            id=peer.id,
            state=Online(remote_host="bench.example", since=NOW.astimezone(timezone(timedelta(hours=2)))),
        ),
        ClusterState(id=cluster.id),
        ClusterState(id=cluster.id, state=Undeployed()),
        ClusterState(id=cluster.id, state=Waiting(reason="peers offline", peers=(p1, p2))),
        ClusterState(
            id=cluster.id,
            state=Deploying(
                done=3, total=10, peers={p1: Progress(done=1, total=5), p2: Progress(done=2, total=5)}
            ),
        ),
        ClusterState(id=cluster.id, state=Deployed()),
        ClusterState(id=cluster.id, state=Deployed(health="degraded")),
        ClusterState(id=cluster.id, state=Undeploying(done=1, total=4)),
        ClusterState(id=cluster.id, state=Failed(peer=p1, parameter=p2, reason="timeout")),
        ClusterState(id=cluster.id, state=Failed(reason="no peer")),
        PeerConfiguration(
            id=peer.id,
            cluster=cluster.id,
            parameters=(
                Parameter(
                    id=p1, kind=ParameterKind.ETHERNET_BRIDGE, target=Target.PRESENT, value={"name": "br-lea"}
                ),
                Parameter(
                    id=p2,
                    kind=ParameterKind.GRE_INTERFACE,
                    target=Target.ABSENT,
                    dependencies=(p1,),
                    value={"local": "10.0.0.1", "remote": "10.0.0.2", "name": "gre1", "port": 4, "on": True},
                ),
            ),
        ),
        PeerConfiguration(id=peer.id),
        PeerConfigurationState(
            id=peer.id,
            parameters=(
                ParameterReport(id=p1, state=ParameterPresent()),
                ParameterReport(id=p2, state=ParameterAbsent()),
                ParameterReport(id=uuid.uuid4(), state=ParameterError(reason="no such device")),
            ),
        ),
    ]
