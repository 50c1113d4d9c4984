"""MemoryDataPlane: the labelled simulation follows the real data plane's per-kind rules."""

from __future__ import annotations

import asyncio
import uuid

from lea_peer.dataplane.memory import MemoryDataPlane, MemoryLink
from resources.agent import TunnelType, ownership_marker, parse_ownership_marker
from resources.configuration import (
    ParameterAbsent,
    ParameterError,
    ParameterPresent,
    dependency_order,
)
from tests.helpers.agent_parameters import CLUSTER, configuration, member_parameters


def run(coro):
    return asyncio.run(coro)


async def _apply_all(plane: MemoryDataPlane, target: str = "present") -> list[object]:
    cfg = configuration(target=target)  # type: ignore[arg-type]
    order = dependency_order(cfg.parameters)
    if target == "absent":
        order.reverse()
    return [await plane.apply(CLUSTER, p) for p in order]


def test_probe_offers_both_tunnel_types() -> None:
    caps = run(MemoryDataPlane().probe())
    assert set(caps.tunnels) == {TunnelType.GRETAP, TunnelType.VXLAN}


def test_full_configuration_is_present_and_every_detail_says_simulated() -> None:
    plane = MemoryDataPlane(devices=["eth1"])
    statuses = run(_apply_all(plane))
    assert all(isinstance(s, ParameterPresent) for s in statuses), statuses
    assert all("simulated" in (s.detail or "") for s in statuses)
    p = member_parameters()
    assert plane.links["br-lea"].marker == ownership_marker(CLUSTER, p.bridge.id)
    assert plane.links["eth1"].master == "br-lea"
    assert plane.links["gre-0123456789a"].master == "br-lea"
    assert plane.links["gre-0123456789a"].kind == "vxlan"
    assert plane.links["gre-0123456789a"].mtu == 1450
    assert plane.links["eth1"].marker is None  # a device interface is never marked


def test_remote_peer_check_is_present_with_detail_simulated() -> None:
    plane = MemoryDataPlane()
    status = run(plane.apply(CLUSTER, member_parameters().check))
    assert status == ParameterPresent(detail="simulated")


def test_missing_device_interface_is_an_error_and_never_created() -> None:
    plane = MemoryDataPlane(devices=[])
    status = run(plane.apply(CLUSTER, member_parameters().device))
    assert isinstance(status, ParameterError)
    assert "eth1" in status.reason and "simulated" in status.reason
    assert "eth1" not in plane.links


def test_none_devices_means_any_name_exists() -> None:
    plane = MemoryDataPlane(devices=None)
    status = run(plane.apply(CLUSTER, member_parameters(interface="enp9s0").device))
    assert isinstance(status, ParameterPresent)


def test_same_named_unowned_bridge_is_an_error() -> None:
    plane = MemoryDataPlane()
    plane.links["br-lea"] = MemoryLink("br-lea", "bridge")
    status = run(plane.apply(CLUSTER, member_parameters().bridge))
    assert isinstance(status, ParameterError)
    assert "br-lea" in status.reason and "not created by LEA" in status.reason
    assert plane.links["br-lea"].marker is None


def test_bridge_we_own_is_adopted() -> None:
    plane = MemoryDataPlane()
    other = uuid.uuid4()
    plane.links["br-lea"] = MemoryLink("br-lea", "bridge", marker=ownership_marker(other, other))
    status = run(plane.apply(CLUSTER, member_parameters().bridge))
    assert isinstance(status, ParameterPresent) and "adopted" in (status.detail or "")
    assert plane.links["br-lea"].marker == ownership_marker(CLUSTER, member_parameters().bridge.id)


def test_join_checks_the_bridge_exists_first() -> None:
    plane = MemoryDataPlane(devices=["eth1"])
    status = run(plane.apply(CLUSTER, member_parameters().join_device))
    assert isinstance(status, ParameterError) and "bridge br-lea does not exist" in status.reason
    assert plane.links["eth1"].master is None


def test_absent_removes_marked_links_but_never_the_device() -> None:
    plane = MemoryDataPlane(devices=["eth1"])
    run(_apply_all(plane))
    statuses = run(_apply_all(plane, "absent"))
    assert all(isinstance(s, ParameterAbsent) for s in statuses)
    assert set(plane.links) == {"eth1"}
    assert plane.links["eth1"].master is None


def test_failure_injection_per_parameter() -> None:
    p = member_parameters()
    plane = MemoryDataPlane(failures={p.tunnel.id: "no route to 10.0.0.2"})
    status = run(plane.apply(CLUSTER, p.tunnel))
    assert isinstance(status, ParameterError) and "no route to 10.0.0.2" in status.reason


def test_check_sees_drift_and_apply_repairs_it() -> None:
    plane = MemoryDataPlane(devices=["eth1"])
    run(_apply_all(plane))
    p = member_parameters()
    plane.drop("gre-0123456789a")
    assert run(plane.check(CLUSTER, p.tunnel)) == ParameterAbsent()
    assert run(plane.check(CLUSTER, p.join_tunnel)) == ParameterAbsent()
    assert isinstance(run(plane.check(CLUSTER, p.bridge)), ParameterPresent)
    plane.plug("eth1")  # re-plugged adapter: down, joined to nothing
    assert isinstance(run(plane.check(CLUSTER, p.device)), ParameterError)
    assert run(plane.check(CLUSTER, p.join_device)) == ParameterAbsent()


def test_owned_and_sweep_delete_only_marked_links_not_kept() -> None:
    plane = MemoryDataPlane(devices=["eth1"])
    run(_apply_all(plane))
    plane.links["br-mine"] = MemoryLink("br-mine", "bridge")  # a person's bridge, no marker
    owned = run(plane.owned())
    p = member_parameters()
    assert {o.name for o in owned} == {"br-lea", "gre-0123456789a"}
    assert run(plane.sweep(keep={p.bridge.id})) == ["gre-0123456789a"]
    assert run(plane.sweep(keep=())) == ["br-lea"]
    assert set(plane.links) == {"eth1", "br-mine"}
    assert plane.links["eth1"].master is None  # released with its bridge


def test_parse_marker_rejects_foreign_aliases() -> None:
    c, p = uuid.uuid4(), uuid.uuid4()
    assert parse_ownership_marker(ownership_marker(c, p)) == (c, p)
    for alias in (None, "", "uplink", "lea:", "lea:x:y", f"lea:{c}", f"lea:{c}:{p}:z"):
        assert parse_ownership_marker(alias) is None
