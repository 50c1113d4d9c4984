"""What NetlinkDataPlane decides without a kernel: markers, tunnel mismatches, CAN delegation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection
from typing import Any

from lea_peer.can.base import CanPlane
from lea_peer.dataplane.links import Link
from lea_peer.dataplane.netlink import NetlinkDataPlane
from resources.agent import CanSupport, ownership_marker, parse_ownership_marker
from resources.configuration import (
    Parameter,
    ParameterAbsent,
    ParameterError,
    ParameterKind,
    ParameterPresent,
    ParameterStatus,
    Target,
)

CLUSTER, PARAMETER = uuid.uuid4(), uuid.uuid4()
VXLAN_VALUE: dict[str, str | int | bool] = {
    "name": "gre-x", "encapsulation": "vxlan", "local": "10.0.0.1", "remote": "10.0.0.2",
    "vni": 4711, "port": 4789, "mtu": 1500,
}


def vxlan(mtu: int = 1500, **info: Any) -> Link:
    data = {"ID": 4711, "GROUP": "10.0.0.2", "LOCAL": "10.0.0.1", "PORT": 4789, **info}
    return Link(index=5, name="gre-x", kind="vxlan", alias="", up=True, master=0, mtu=mtu, info=data)


def test_the_marker_reads_back_as_cluster_and_parameter() -> None:
    assert parse_ownership_marker(ownership_marker(CLUSTER, PARAMETER)) == (CLUSTER, PARAMETER)
    assert parse_ownership_marker("") is None
    assert parse_ownership_marker("uplink to the lab") is None
    assert parse_ownership_marker("lea:not-a-uuid:x") is None
    assert parse_ownership_marker(f"lea:{CLUSTER}") is None


def test_a_tunnel_matching_its_value_has_no_mismatch() -> None:
    plane = NetlinkDataPlane(uuid.uuid4())
    assert plane._tunnel_mismatch(vxlan(), VXLAN_VALUE) is None


def test_each_tunnel_difference_is_named() -> None:
    plane = NetlinkDataPlane(uuid.uuid4())
    assert plane._tunnel_mismatch(vxlan(ID=9), VXLAN_VALUE) == "its id is 9, not 4711"
    assert plane._tunnel_mismatch(vxlan(GROUP="10.0.0.9"), VXLAN_VALUE) == "its group is 10.0.0.9, not 10.0.0.2"
    assert plane._tunnel_mismatch(vxlan(PORT=8472), VXLAN_VALUE) == "its port is 8472, not 4789"
    assert plane._tunnel_mismatch(vxlan(mtu=1450), VXLAN_VALUE) == "its mtu is 1450, not 1500"
    gretap = {**VXLAN_VALUE, "encapsulation": "gretap", "vni": 0, "port": 0}
    assert plane._tunnel_mismatch(vxlan(), gretap) == "it is a vxlan, not a gretap tunnel"
    ours = Link(5, "gre-x", "gretap", "", True, 0, 1500, {"REMOTE": "10.0.0.2", "LOCAL": "10.0.0.1"})
    assert plane._tunnel_mismatch(ours, gretap) is None


class RecordingCanPlane(CanPlane):
    support = CanSupport.USERSPACE

    def __init__(self) -> None:
        self.calls: list[tuple[str, ParameterKind]] = []

    async def apply(self, cluster: uuid.UUID, parameter: Parameter) -> ParameterStatus:
        self.calls.append(("apply", parameter.kind))
        return ParameterPresent(detail="recorded")

    async def check(self, cluster: uuid.UUID, parameter: Parameter) -> ParameterStatus:
        self.calls.append(("check", parameter.kind))
        return ParameterAbsent()

    async def sweep(self, keep: Collection[uuid.UUID]) -> list[str]:
        return []

    async def close(self) -> None:
        self.calls.append(("close", ParameterKind.CAN_BRIDGE))


def test_can_parameters_go_to_the_can_plane_without_touching_netlink() -> None:
    can = RecordingCanPlane()
    plane = NetlinkDataPlane(uuid.uuid4(), netns="never-opened", can=can)
    kinds = (ParameterKind.CAN_BRIDGE, ParameterKind.CAN_CONNECTION, ParameterKind.CAN_LOCAL_ROUTE)
    for kind in kinds:
        parameter = Parameter(id=uuid.uuid4(), kind=kind, target=Target.PRESENT)
        assert asyncio.run(plane.apply(CLUSTER, parameter)) == ParameterPresent(detail="recorded")
        assert asyncio.run(plane.check(CLUSTER, parameter)) == ParameterAbsent()
    device = Parameter(id=uuid.uuid4(), kind=ParameterKind.DEVICE_INTERFACE, target=Target.PRESENT,
                       value={"interface": "can0", "can": "can", "bitrate": 500000, "sample_point": 875})
    asyncio.run(plane.apply(CLUSTER, device))
    expected = [*[(call, kind) for kind in kinds for call in ("apply", "check")]]
    assert can.calls == [*expected, ("apply", ParameterKind.DEVICE_INTERFACE)]
    assert plane._ipr is None, "no netlink handle was opened for CAN"


def test_the_default_can_plane_is_userspace_and_refuses_a_device_that_is_not_simulated() -> None:
    plane = NetlinkDataPlane(uuid.uuid4(), netns="never-opened")
    assert plane.can.support == CanSupport.USERSPACE
    device = Parameter(id=uuid.uuid4(), kind=ParameterKind.DEVICE_INTERFACE, target=Target.PRESENT,
                       value={"interface": "can0", "can": "can"})
    status = asyncio.run(plane.apply(CLUSTER, device))
    assert isinstance(status, ParameterError)
    assert status.reason.startswith("this host's kernel has no CAN support: can0 is not a simulated ECU endpoint")
