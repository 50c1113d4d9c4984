"""undeploy_cluster with agent-managed (not demo) members: not done while one is offline."""

from __future__ import annotations

from uuid import UUID

from backend.deployment.undeploy_cluster import OFFLINE, start_undeploy, undeploy_cluster
from backend.deployment.view import ClusterView, Reachable, Report
from backend.deployment.writes import ClearPeers, Configure
from resources.configuration import ParameterAbsent, ParameterReport, PeerConfigurationState, Target
from resources.state import Undeployed, Undeploying
from tests.helpers.factories import make_cluster, make_peer

LEAD = make_peer("bench-lead", devices=1)
REAL = make_peer("bench-real", devices=1)
DEMO = make_peer("bench-demo", devices=1, demo=True)
CLUSTER = make_cluster("agents-undeploy", LEAD, REAL, DEMO)
PEERS = {p.id: p for p in (LEAD, REAL, DEMO)}
MEMBERS = (LEAD.id, REAL.id, DEMO.id)


def view(online: dict[UUID, Reachable]) -> ClusterView:
    return ClusterView(cluster=CLUSTER, members=MEMBERS, peers=PEERS, online=online, timeout=10.0)


def absent_report(peer: UUID, configuration: Configure, revision: int) -> Report:
    params = tuple(ParameterReport(id=p.id, state=ParameterAbsent()) for p in configuration.configuration.parameters)
    return Report(peer, revision, PeerConfigurationState(id=peer, parameters=params))


def test_an_offline_agent_member_holds_the_undeploy_until_it_reconnects_and_reports_absent() -> None:
    everyone = {m: Reachable(f"10.0.0.{i}", 1) for i, m in enumerate(MEMBERS)}
    progress = start_undeploy(view(everyone), 0.0)
    online = {LEAD.id: everyone[LEAD.id]}  # the real member and the demo one are offline
    writes, outcome = undeploy_cluster(view(online), progress, [], 0.0)
    assert outcome is None
    sent = {w.configuration.id: w for w in writes if isinstance(w, Configure)}
    assert set(sent) == {LEAD.id, REAL.id}  # the offline agent's Absent is stored for its next hello
    assert all(p.target == Target.ABSENT for w in sent.values() for p in w.configuration.parameters)
    assert progress.sessions[REAL.id] == OFFLINE
    assert isinstance(progress.status, Undeploying) and progress.status.waiting_for == (REAL.id,)
    for peer, revision in ((LEAD.id, 10),):
        progress.stored(peer, revision - 1)
    progress.stored(REAL.id, 9)
    writes, outcome = undeploy_cluster(view(online), progress, [absent_report(LEAD.id, sent[LEAD.id], 10)], 1.0)
    assert outcome is None, "the demo member is done, the leader too, the agent is not"
    # Long past the timeout: still waiting, not failed.
    writes, outcome = undeploy_cluster(view(online), progress, [], 1000.0)
    assert outcome is None and isinstance(progress.status, Undeploying)
    assert progress.status.waiting_for == (REAL.id,)
    # It reconnects (a new session): it is sent Absent again, then reports Absent.
    online[REAL.id] = Reachable("10.0.0.1", 2)
    writes, outcome = undeploy_cluster(view(online), progress, [], 1001.0)
    again = [w for w in writes if isinstance(w, Configure)]
    assert [w.configuration.id for w in again] == [REAL.id]
    assert isinstance(progress.status, Undeploying) and not progress.status.waiting_for
    progress.stored(REAL.id, 20)
    writes, outcome = undeploy_cluster(view(online), progress, [absent_report(REAL.id, again[0], 21)], 1002.0)
    assert isinstance(outcome, Undeployed)
    assert any(isinstance(w, ClearPeers) for w in writes)
