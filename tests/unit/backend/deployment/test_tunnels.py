"""Tunnels chosen by capability (backend/deployment/parameters.py, view.py, deploy step)."""

from __future__ import annotations

from uuid import UUID

from backend.deployment.deploy_cluster import deploy_cluster, start_deploy
from backend.deployment.parameters import MAX_VNI, TunnelPlan, compute_configurations, derive_vni, plan_tunnels
from backend.deployment.view import ClusterView, Reachable, reachable
from backend.deployment.writes import Configure
from resources.agent import Capabilities, TunnelType
from resources.cluster import ClusterDescriptor
from resources.configuration import ParameterKind
from resources.state import AgentInfo, Online, Waiting
from tests.helpers.factories import make_cluster, make_peer

GRE, VX = TunnelType.GRETAP, TunnelType.VXLAN
LEAD, A, B = make_peer("lead", devices=1), make_peer("benchA", devices=1), make_peer("benchB", devices=1)
CLUSTER = make_cluster("tunnels", LEAD, A, B)
MEMBERS = (LEAD.id, A.id, B.id)
NAMES = {LEAD.id: "lead", A.id: "benchA", B.id: "benchB"}


def _plan(
    tunnels: dict[UUID, set[TunnelType]], mtus: dict[UUID, int] | None = None, taken: frozenset[int] = frozenset()
) -> TunnelPlan | str:
    return plan_tunnels(CLUSTER, MEMBERS, tunnels, mtus or {}, NAMES, lambda: taken)


def test_gretap_when_every_member_has_it() -> None:
    plan = _plan({LEAD.id: {GRE, VX}, A.id: {GRE}, B.id: {GRE, VX}})
    assert not isinstance(plan, str)
    assert (plan.encapsulation, plan.mtu, plan.vnis) == (GRE, 1500 - 38, {})


def test_vxlan_when_one_lacks_gretap_with_a_vni_per_member_and_the_smallest_mtu() -> None:
    plan = _plan({LEAD.id: {GRE, VX}, A.id: {VX}, B.id: {GRE, VX}}, {LEAD.id: 9000, A.id: 1550, B.id: 0})
    assert not isinstance(plan, str)
    assert plan.encapsulation == VX and plan.mtu == 1500 - 50  # B's 0 means 1500
    assert set(plan.vnis) == {A.id, B.id} and all(1 <= v <= MAX_VNI for v in plan.vnis.values())
    assert plan.vnis[A.id] == derive_vni(CLUSTER.id, A.id)


def test_no_common_type_names_each_peer() -> None:
    reason = _plan({LEAD.id: {GRE}, A.id: {VX}, B.id: set()})
    assert reason == "no common tunnel type: lead: gretap, benchA: vxlan, benchB: none"


def test_a_vni_taken_by_another_cluster_is_skipped_deterministically() -> None:
    wanted = derive_vni(CLUSTER.id, A.id)
    plan = _plan({m: {VX} for m in MEMBERS}, taken=frozenset({wanted, wanted % MAX_VNI + 1}))
    assert not isinstance(plan, str)
    assert plan.vnis[A.id] == (wanted + 1) % MAX_VNI + 1
    again = _plan({m: {VX} for m in MEMBERS}, taken=frozenset({wanted, wanted % MAX_VNI + 1}))
    assert again == plan
    assert len(set(plan.vnis.values())) == 2


def test_gre_interface_values_on_both_ends() -> None:
    plan = _plan({m: {VX} for m in MEMBERS}, {m: 1550 for m in MEMBERS})
    assert not isinstance(plan, str)
    peers = {p.id: p for p in (LEAD, A, B)}
    addresses = {LEAD.id: "10.0.0.1", A.id: "10.0.0.2", B.id: "10.0.0.3"}
    configurations = compute_configurations(CLUSTER, peers, addresses, tunnels=plan)
    at_a = next(p for p in configurations[A.id].parameters if p.kind == ParameterKind.GRE_INTERFACE)
    assert set(at_a.value) == {"name", "encapsulation", "local", "remote", "vni", "port", "mtu"}
    assert at_a.value == {
        "name": at_a.value["name"], "encapsulation": "vxlan", "local": "10.0.0.2", "remote": "10.0.0.1",
        "vni": plan.vnis[A.id], "port": 4789, "mtu": 1500,
    }
    lead_params = configurations[LEAD.id].parameters
    at_lead = {p.value["remote"]: p.value for p in lead_params if p.kind == ParameterKind.GRE_INTERFACE}
    assert at_lead["10.0.0.2"]["vni"] == plan.vnis[A.id] and at_lead["10.0.0.3"]["vni"] == plan.vnis[B.id]
    checks = [p.value for p in configurations[LEAD.id].parameters if p.kind == ParameterKind.REMOTE_PEER_CHECK]
    expected = {(str(A.id), A.effective_bridge_name), (str(B.id), B.effective_bridge_name)}
    assert {(c["peer"], c["bridge"]) for c in checks} == expected


def test_demo_peers_can_make_both_and_agents_what_they_announce() -> None:
    demo = reachable(Online(remote_host="10.77.0.1", since="2026-01-01T00:00:00Z"), 1)
    assert demo.tunnels == {GRE, VX}
    agent = Online(
        remote_host="192.0.2.1", since="2026-01-01T00:00:00Z",
        agent=AgentInfo(version="1", capabilities=Capabilities(tunnels=(VX,), underlay_mtu=1550)),
    )
    assert reachable(agent, 2) == Reachable("192.0.2.1", 2, frozenset({VX}), 1550)


def _view(cluster: ClusterDescriptor, online: dict[UUID, Reachable]) -> ClusterView:
    return ClusterView(cluster=cluster, members=MEMBERS, peers={p.id: p for p in (LEAD, A, B)}, online=online)


def test_the_deploy_step_waits_without_a_common_tunnel_type_then_deploys_with_vxlan() -> None:
    progress = start_deploy()
    online = {LEAD.id: Reachable("10.0.0.1", 1, frozenset({GRE})), A.id: Reachable("10.0.0.2", 1, frozenset({VX})),
              B.id: Reachable("10.0.0.3", 1)}
    writes, outcome = deploy_cluster(_view(CLUSTER, online), progress, [], 0.0)
    assert outcome is None and isinstance(progress.status, Waiting)
    assert progress.status.reason == "no common tunnel type: lead: gretap, benchA: vxlan, benchB: gretap/vxlan"
    assert progress.status.peers == (LEAD.id,)
    assert not any(isinstance(w, Configure) for w in writes)
    online[LEAD.id] = Reachable("10.0.0.1", 1, frozenset({GRE, VX}))
    writes, _ = deploy_cluster(_view(CLUSTER, online), progress, [], 1.0)
    sent = [w.configuration for w in writes if isinstance(w, Configure)]
    assert len(sent) == 3
    gres = [p for c in sent for p in c.parameters if p.kind == ParameterKind.GRE_INTERFACE]
    assert {g.value["encapsulation"] for g in gres} == {"vxlan"}
