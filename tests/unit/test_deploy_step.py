"""deploy_cluster and undeploy_cluster as pure steps: a fake clock, no threads, no manager.

A ``Rig`` holds one cluster of three peers and plays the runner's part: it builds the view, calls
the step, and for each Configure the step returns assigns the next revision and tells the progress
(as the runner does once the write is stored). Reports are built from what was last sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import pytest

from backend.deployment.deploy_cluster import deploy_cluster, start_deploy
from backend.deployment.parameters import dependency_order
from backend.deployment.progress import ClusterProgress, ParameterProgress
from backend.deployment.undeploy_cluster import start_undeploy, undeploy_cluster
from backend.deployment.view import ClusterView, Reachable, Report, World
from backend.deployment.writes import ClearPeers, Configure, PublishState, Write
from resources.configuration import (
    ParameterAbsent,
    ParameterError,
    ParameterKind,
    ParameterPresent,
    ParameterReport,
    ParameterStatus,
    PeerConfiguration,
    PeerConfigurationState,
    Target,
)
from resources.state import (
    ClusterStatus,
    Deployed,
    Deploying,
    Failed,
    Online,
    PeerConnectionState,
    Undeployed,
    Undeploying,
    Waiting,
)
from tests.helpers.factories import make_cluster, make_peer

TIMEOUT = 10.0
LEAD, CAN, ETH = UUID(int=1), UUID(int=2), UUID(int=3)


class Rig:
    def __init__(self, target: Target = Target.PRESENT) -> None:
        lead = make_peer("bench-lead", devices=3, can=True, id=LEAD)
        can = make_peer("bench-can", devices=2, can=True, id=CAN)
        eth = make_peer("bench-eth", devices=1, id=ETH)
        self.cluster = make_cluster("step-cluster", lead, can, eth)
        self.peers = {p.id: p for p in (lead, can, eth)}
        self.online = {p: Reachable(f"10.0.0.{p.int}", session=1) for p in self.peers}
        self.undeploying: dict[UUID, str] = {}
        self.storage_failing = False
        self.recovered_at = 0.0
        self.now = 0.0
        self.revision = 100
        self.sent: dict[UUID, PeerConfiguration] = {}
        self.target = target
        self.progress: ClusterProgress = (
            start_deploy() if target == Target.PRESENT else start_undeploy(self.view(), self.now)
        )

    def view(self) -> ClusterView:
        return ClusterView(
            cluster=self.cluster, members=(LEAD, CAN, ETH), peers=self.peers, online=dict(self.online),
            undeploying=dict(self.undeploying), timeout=TIMEOUT,
            storage_failing=self.storage_failing, storage_recovered_at=self.recovered_at,
        )

    def step(self, *reports: Report) -> tuple[list[Write], ClusterStatus | None]:
        step = deploy_cluster if self.target == Target.PRESENT else undeploy_cluster
        writes, outcome = step(self.view(), self.progress, reports, self.now)
        for write in writes:
            if isinstance(write, Configure):
                self.revision += 1
                self.sent[write.configuration.id] = write.configuration
                self.progress.stored(write.configuration.id, self.revision)
        return writes, outcome

    def report(self, peer: UUID, done: int | None = None, error: ParameterKind | None = None) -> Report:
        """``peer`` reports its first ``done`` parameters (dependency order; all when None) done,
        the parameter of kind ``error`` as Error, the rest not done yet."""
        parameters = dependency_order(self.sent[peer].parameters)
        count = len(parameters) if done is None else done
        reached, missed = (ParameterPresent(), ParameterAbsent())
        if self.target == Target.ABSENT:
            reached, missed = missed, reached
        items = []
        for i, p in enumerate(parameters):
            state: ParameterStatus = reached if i < count else missed
            if p.kind == error:
                state = ParameterError(reason="port in use")
            items.append(ParameterReport(id=p.id, state=state))
        self.revision += 1
        return Report(peer, self.revision, PeerConfigurationState(id=peer, parameters=tuple(items)))

    def everything(self) -> list[Report]:
        return [self.report(p) for p in (LEAD, CAN, ETH)]

    def total(self) -> int:
        return sum(len(c.parameters) for c in self.sent.values())


def states(writes: Sequence[Write]) -> list[ClusterStatus]:
    return [w.status for w in writes if isinstance(w, PublishState)]


def configured(writes: Sequence[Write]) -> list[UUID]:
    return [w.configuration.id for w in writes if isinstance(w, Configure)]


# -- deploy_cluster: progress ----------------------------------------------------------------------
def test_the_first_step_sends_every_member_its_configuration() -> None:
    rig = Rig()
    writes, outcome = rig.step()
    assert outcome is None
    assert configured(writes) == [LEAD, CAN, ETH]  # the leader first
    assert all(p.target == Target.PRESENT for c in rig.sent.values() for p in c.parameters)
    (shown,) = states(writes)
    assert isinstance(shown, Deploying) and shown.done == 0 and shown.total == rig.total()
    assert set(shown.peers) == {LEAD, CAN, ETH}
    assert rig.progress.wake_at == TIMEOUT  # the first silence to judge


def test_a_step_with_nothing_new_writes_nothing() -> None:
    rig = Rig()
    rig.step()
    rig.now = 3.0
    assert rig.step() == ([], None)


def test_reports_become_monotonic_progress() -> None:
    rig = Rig()
    rig.step()
    writes, _ = rig.step(rig.report(CAN, done=2))
    (shown,) = states(writes)
    assert isinstance(shown, Deploying) and shown.done == 2 and shown.peers[CAN].done == 2
    # The bench starts over (a reboot it recovered from): the bar does not go back.
    writes, _ = rig.step(rig.report(CAN, done=1))
    assert states(writes) == []
    writes, _ = rig.step(rig.report(CAN, done=3), rig.report(ETH, done=1))
    (shown,) = states(writes)
    assert isinstance(shown, Deploying) and shown.done == 4 and shown.peers[ETH].done == 1


def test_reports_that_queued_up_cost_one_progress_event() -> None:
    rig = Rig()
    rig.step()
    writes, _ = rig.step(*(rig.report(CAN, done=n) for n in range(1, 4)))
    assert len(states(writes)) == 1


def test_deployed_once_every_member_reported_everything() -> None:
    rig = Rig()
    rig.step()
    writes, outcome = rig.step(*rig.everything())
    assert outcome == Deployed()
    deploying, deployed = states(writes)
    assert isinstance(deploying, Deploying) and deploying.done == deploying.total == rig.total()
    assert deployed == Deployed()
    assert rig.progress.wake_at is None
    assert rig.step(rig.report(CAN, done=0)) == ([], Deployed())  # decided: nothing changes it


def test_a_report_about_an_earlier_configuration_does_not_count() -> None:
    rig = Rig()
    rig.step()
    stale = rig.report(CAN)
    stale = Report(CAN, rig.progress.configured[CAN] or 0, stale.state)  # stored before the configuration
    assert rig.step(stale) == ([], None)
    assert rig.progress.parameters is not None and rig.progress.parameters.done == 0


def test_reports_of_a_peer_that_is_no_member_are_ignored() -> None:
    rig = Rig()
    rig.step()
    report = rig.report(CAN)
    stranger = Report(UUID(int=99), report.revision, report.state.model_copy(update={"id": UUID(int=99)}))
    assert rig.step(stranger) == ([], None)


# -- deploy_cluster: waiting -----------------------------------------------------------------------
def test_an_offline_member_makes_it_wait_naming_the_peer() -> None:
    rig = Rig()
    del rig.online[CAN]
    writes, outcome = rig.step()
    assert outcome is None and configured(writes) == []
    (waiting,) = states(writes)
    assert isinstance(waiting, Waiting) and waiting.peers == (CAN,)
    assert "'bench-can' offline" in waiting.reason and "bench-lead" not in waiting.reason
    assert rig.progress.wake_at is None


def test_waiting_never_times_out() -> None:
    rig = Rig()
    del rig.online[CAN]
    rig.step()
    rig.now = 1000 * TIMEOUT
    assert rig.step() == ([], None)


def test_a_member_back_online_gets_everything_sent_again() -> None:
    rig = Rig()
    rig.step()
    rig.step(rig.report(LEAD, done=2), rig.report(ETH))
    del rig.online[ETH]
    writes, _ = rig.step()
    assert isinstance(states(writes)[0], Waiting)
    rig.online[ETH] = Reachable("10.0.0.3", session=2)
    rig.now = 1.0
    writes, outcome = rig.step()
    assert outcome is None and configured(writes) == [LEAD, CAN, ETH]  # addresses may have changed
    (shown,) = states(writes)
    assert isinstance(shown, Deploying) and shown.done == 2 + len(rig.sent[ETH].parameters)  # shown stays
    # Only reports about the configurations sent now complete it.
    writes, outcome = rig.step(rig.report(LEAD), rig.report(CAN))
    assert outcome is None
    _, outcome = rig.step(rig.report(ETH))
    assert outcome == Deployed()


def test_a_member_that_rebooted_between_two_steps_is_sent_everything_again() -> None:
    """Offline and back online in one batch of events: the new session tells."""
    rig = Rig()
    rig.step()
    rig.online[CAN] = Reachable("10.0.0.2", session=7)
    writes, _ = rig.step()
    assert configured(writes) == [LEAD, CAN, ETH]


def test_a_member_still_undeploying_elsewhere_makes_it_wait() -> None:
    rig = Rig()
    rig.undeploying = {ETH: "other-cluster", CAN: "other-cluster"}
    del rig.online[LEAD]
    writes, _ = rig.step()
    (waiting,) = states(writes)
    assert isinstance(waiting, Waiting) and waiting.peers == (LEAD, CAN, ETH)
    assert "'bench-lead' offline" in waiting.reason
    assert "peer 'bench-eth' still undeploying from cluster 'other-cluster'" in waiting.reason
    rig.undeploying, rig.online[LEAD] = {}, Reachable("10.0.0.1", session=2)
    writes, _ = rig.step()
    assert configured(writes) == [LEAD, CAN, ETH]


# -- deploy_cluster: failing -----------------------------------------------------------------------
def test_an_error_report_fails_naming_peer_parameter_and_reason() -> None:
    rig = Rig()
    rig.step()
    writes, outcome = rig.step(rig.report(CAN, done=1, error=ParameterKind.CAN_CONNECTION))
    assert isinstance(outcome, Failed) and states(writes) == [outcome]
    (parameter,) = [p for p in rig.sent[CAN].parameters if p.kind == ParameterKind.CAN_CONNECTION]
    assert outcome.peer == CAN and outcome.parameter == parameter.id
    assert outcome.reason == "peer 'bench-can': can_connection failed: port in use"


def test_a_silent_member_fails_at_its_deadline_naming_what_it_owes() -> None:
    rig = Rig()
    rig.step()
    rig.now = 4.0
    rig.step(rig.report(LEAD), rig.report(CAN, done=1))  # the Ethernet member never says a word
    assert rig.progress.wake_at == TIMEOUT
    rig.now = TIMEOUT - 0.001
    assert rig.step() == ([], None)
    rig.now = TIMEOUT
    writes, outcome = rig.step()
    assert isinstance(outcome, Failed) and outcome.peer == ETH and states(writes) == [outcome]
    first = dependency_order(rig.sent[ETH].parameters)[0]
    assert outcome.parameter == first.id
    assert outcome.reason == f"peer 'bench-eth' reported no progress on {first.kind.value} within 10 s"


def test_silence_is_judged_per_peer_and_a_finished_peer_is_never_late() -> None:
    rig = Rig()
    rig.step()
    rig.now = 1.0
    rig.step(rig.report(ETH))  # done
    rig.now = 9.0
    rig.step(rig.report(LEAD, done=1), rig.report(CAN, done=1))
    assert rig.progress.wake_at == 19.0
    rig.now = 15.0
    assert rig.step() == ([], None)


def test_no_timeout_while_storage_refuses_writes_then_counted_from_the_recovery() -> None:
    rig = Rig()
    rig.step()
    rig.storage_failing = True  # the peers' reports cannot be stored: that is no silence of theirs
    rig.now = 100.0
    assert rig.step() == ([], None)
    assert rig.progress.wake_at == 100.0 + TIMEOUT  # look again later
    rig.storage_failing, rig.recovered_at = False, 104.0
    rig.now = 110.0
    assert rig.step() == ([], None)
    assert rig.progress.wake_at == 104.0 + TIMEOUT
    rig.now = 104.0 + TIMEOUT
    _, outcome = rig.step()
    assert isinstance(outcome, Failed)


def test_after_lost_events_the_configurations_are_sent_again() -> None:
    rig = Rig()
    rig.step()
    rig.step(rig.report(CAN, done=2))
    rig.progress.resynced()
    writes, _ = rig.step()
    assert configured(writes) == [LEAD, CAN, ETH]


def test_a_new_run_after_failed_starts_from_nothing() -> None:
    """Storing the deployment of a Failed cluster again is a new run: it sends and deploys."""
    rig = Rig()
    rig.step()
    _, outcome = rig.step(rig.report(CAN, error=ParameterKind.CAN_BRIDGE))
    assert isinstance(outcome, Failed)
    rig.progress = start_deploy()
    writes, outcome = rig.step()
    assert outcome is None and configured(writes) == [LEAD, CAN, ETH]
    assert isinstance(states(writes)[0], Deploying)
    _, outcome = rig.step(*rig.everything())
    assert outcome == Deployed()


# -- undeploy_cluster ------------------------------------------------------------------------------
def test_undeploy_sends_absent_to_every_online_member_and_counts_down() -> None:
    rig = Rig(Target.ABSENT)
    writes, outcome = rig.step()
    assert outcome is None and configured(writes) == [LEAD, CAN, ETH]
    assert all(p.target == Target.ABSENT for c in rig.sent.values() for p in c.parameters)
    (shown,) = states(writes)
    assert shown == Undeploying(done=0, total=rig.total())
    writes, _ = rig.step(rig.report(CAN, done=2))
    assert states(writes) == [Undeploying(done=2, total=rig.total())]


def test_undeploy_clears_the_peers_then_says_undeployed() -> None:
    rig = Rig(Target.ABSENT)
    rig.step()
    writes, outcome = rig.step(*rig.everything())
    assert outcome == Undeployed()
    assert writes[-2:] == [ClearPeers((LEAD, CAN, ETH)), PublishState(Undeployed())]


def test_an_offline_member_is_undeployed_already() -> None:
    """A bench that drops out forgets its configuration; one back in a new session too."""
    rig = Rig(Target.ABSENT)
    del rig.online[ETH]
    writes, _ = rig.step()
    assert configured(writes) == [LEAD, CAN]
    rig.online[CAN] = Reachable("10.0.0.2", session=5)  # rebooted since it was sent Absent
    writes, outcome = rig.step(rig.report(LEAD))
    assert outcome == Undeployed()


def test_undeploy_fails_on_an_error_or_a_silent_member() -> None:
    rig = Rig(Target.ABSENT)
    rig.step()
    _, outcome = rig.step(rig.report(CAN, error=ParameterKind.CAN_BRIDGE))
    assert isinstance(outcome, Failed) and outcome.peer == CAN
    assert outcome.reason == "undeploy: peer 'bench-can': can_bridge failed: port in use"

    rig = Rig(Target.ABSENT)
    rig.step()
    rig.step(rig.report(LEAD), rig.report(CAN))
    rig.now = TIMEOUT
    _, outcome = rig.step()
    assert isinstance(outcome, Failed) and outcome.peer == ETH
    assert outcome.reason.startswith("undeploy: peer 'bench-eth' reported no progress on ")
    assert next(p for p in rig.sent[ETH].parameters if p.id == outcome.parameter).target == Target.ABSENT


def test_undeploy_after_lost_events_asks_only_the_pending_again() -> None:
    rig = Rig(Target.ABSENT)
    rig.step()
    rig.step(rig.report(LEAD))
    rig.progress.resynced()
    writes, _ = rig.step()
    assert configured(writes) == [CAN, ETH]


def test_undeploy_members_are_those_of_its_start() -> None:
    rig = Rig(Target.ABSENT)
    assert rig.progress.members == (LEAD, CAN, ETH)


# -- the parts ---------------------------------------------------------------------------------------
def test_parameter_progress_deadline_and_overdue_agree() -> None:
    """A timer set for the deadline finds the peer overdue (no spinning a hair before it)."""
    rig = Rig()
    rig.step()
    parameters = rig.progress.parameters
    assert isinstance(parameters, ParameterProgress)
    for since in (0.0, 0.1, 1 / 3, 12345.678):
        deadline = parameters.deadline(0.7, since)
        assert deadline is not None
        assert parameters.overdue(0.7, deadline, since) is not None
        assert parameters.overdue(0.7, deadline - 1e-6, since) is None


@pytest.mark.parametrize("online_again", [True, False])
def test_world_sessions(online_again: bool) -> None:
    """A peer coming online starts a new session; an update while online does not."""
    from datetime import UTC, datetime

    from resources.events import Event, EventType
    from resources.kinds import ResourceKind

    world = World()
    at = datetime(2024, 5, 1, tzinfo=UTC)

    def connection(revision: int, online: bool, host: str = "10.0.0.9") -> Event:
        state = Online(remote_host=host, since=at) if online else None
        resource = PeerConnectionState(id=CAN, state=state) if state is not None else None
        return Event(
            epoch="e", revision=revision, type=EventType.UPDATED if resource else EventType.DELETED,
            kind=ResourceKind.PEER_CONNECTION_STATE, id=CAN, resource=resource, actor="t", at=at, tx=UUID(int=revision),
        )

    assert world.apply(connection(1, True)) is True
    first = world.online[CAN].session
    assert world.apply(connection(2, True, "10.0.0.10")) is False  # still online: same session
    assert world.online[CAN] == Reachable("10.0.0.10", first)
    assert world.apply(connection(3, False)) is True and CAN not in world.online
    if online_again:
        world.apply(connection(4, True))
        assert world.online[CAN].session != first
