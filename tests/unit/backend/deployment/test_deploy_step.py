"""deploy_cluster and undeploy_cluster as pure steps: a fake clock, no threads, no manager.

A ``Rig`` holds one cluster of three peers and plays the runner's part: it builds the view, calls
the step, and for each Configure the step returns assigns the next revision and tells the progress
(as the runner does once the write is stored). Reports are built from what was last sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast
from uuid import UUID

import pytest

from backend.deployment.deploy_cluster import deploy_cluster, start_deploy
from backend.deployment.progress import ClusterProgress, ParameterProgress
from backend.deployment.runner import ActionRunner
from backend.deployment.undeploy_cluster import start_undeploy, undeploy_cluster
from backend.deployment.view import ClusterView, Reachable, Report, World
from backend.deployment.writes import ClearPeers, Configure, PublishState, Write
from backend.manager import Delete, Put, ResourcesManager, TxResult
from backend.peers.broker import Brokers, PeerBroker
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
    dependency_order,
)
from resources.errors import LeaError, MissingReference, ShuttingDown, StorageFailed
from resources.events import Event, EventType
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.state import (
    ClusterState,
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
        lead = make_peer("bench-lead", devices=3, can=True, id=LEAD, demo=True)
        can = make_peer("bench-can", devices=2, can=True, id=CAN, demo=True)
        eth = make_peer("bench-eth", devices=1, id=ETH, demo=True)
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
        reached: ParameterStatus = ParameterPresent()
        missed: ParameterStatus = ParameterAbsent()
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
    world = World()
    at = AT

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


# -- the runner, on the test's thread: a fake manager and a fake clock -------------------------------
class FakeManager:
    """Accepts (or, while ``refusing``, refuses) writes in order, like the sequencer would."""

    def __init__(self) -> None:
        self.revision = 0
        self.refusing = False
        self.storage_failing = False
        self.storage_recovered_at = 0.0
        self.written: list[Put | Delete] = []
        self.attempts = 0
        self.errors: dict[ResourceKind, LeaError] = {}  # a write of this kind fails with that error

    def write(self, changes: Sequence[Put | Delete], actor: str) -> TxResult:
        self.attempts += 1
        if self.refusing:
            raise StorageFailed("the change could not be saved: database or disk is full (test)")
        for change in changes:
            error = self.errors.get(change.resource.kind if isinstance(change, Put) else change.kind)
            if error is not None:
                raise error
        events = []
        for change in changes:
            self.revision += 1
            self.written.append(change)
            resource = change.resource.model_copy(update={"version": 1}) if isinstance(change, Put) else None
            kind, id = (
                (change.resource.kind, change.resource.id) if isinstance(change, Put) else (change.kind, change.id)
            )
            events.append(Event(
                epoch="e", revision=self.revision, type=EventType.UPDATED if resource else EventType.DELETED,
                kind=kind, id=id, resource=resource, actor=actor, at=AT, tx=UUID(int=self.revision),
            ))
        return TxResult(tuple(events))

    def cluster_states(self) -> list[ClusterStatus]:
        return [c.resource.state for c in self.written if isinstance(c, Put) and isinstance(c.resource, ClusterState)]

    def configurations(self) -> list[PeerConfiguration]:
        return [c.resource for c in self.written if isinstance(c, Put) and isinstance(c.resource, PeerConfiguration)]


class RecordingBroker(PeerBroker):
    def __init__(self) -> None:
        self.configured: list[PeerConfiguration] = []

    def manages(self, peer: PeerDescriptor) -> bool:
        return True

    def start(self) -> None:
        pass

    def configure(self, peer_id: UUID, configuration: PeerConfiguration) -> None:
        self.configured.append(configuration)

    def stop(self) -> None:
        pass


AT = datetime(2024, 5, 1, tzinfo=UTC)


class RunnerRig:
    """Two clusters sharing no peer (A: lead, can, eth; B: two more peers), all online."""

    def __init__(self) -> None:
        self.manager = FakeManager()
        self.broker = RecordingBroker()
        self.world = World()
        a = Rig()
        self.b_peers = (make_peer("bench-b1", id=UUID(int=11)), make_peer("bench-b2", id=UUID(int=12)))
        self.a, self.b = a.cluster, make_cluster("other-cluster", *self.b_peers)
        self.world.peers = {**a.peers, **{p.id: p for p in self.b_peers}}
        self.world.clusters = {self.a.id: self.a, self.b.id: self.b}
        self.world.online = {p: Reachable(f"10.0.1.{p.int}", session=1) for p in self.world.peers}
        self.runner = ActionRunner(cast(ResourcesManager, self.manager), Brokers([self.broker]), self.world, TIMEOUT)
        self.now = 0.0

    def run(self) -> None:
        self.runner.run(self.now)

    def run_when_due(self) -> None:
        """Run as the operator's thread would, the fake clock jumping to each wake-up, until what
        is left is a deadline (or nothing)."""
        for _ in range(100):
            wake = self.runner.next_wake()
            if wake is None or (wake > self.now and not self.runner.retrying()):
                return
            self.now = max(self.now, wake)
            self.run()
        raise AssertionError("the runner never settles")

    def report_all(self, peer: UUID, target: Target = Target.PRESENT) -> Report:
        """The peer reports every parameter of what it was last configured with as done."""
        configuration = next(c for c in reversed(self.broker.configured) if c.id == peer)
        state: ParameterStatus = ParameterPresent() if target == Target.PRESENT else ParameterAbsent()
        items = tuple(ParameterReport(id=p.id, state=state) for p in configuration.parameters)
        report = PeerConfigurationState(id=peer, parameters=items)
        self.manager.revision += 1
        return Report(peer, self.manager.revision, report)


def test_runner_writes_what_the_step_asks_through_actions_and_hands_configurations_to_brokers() -> None:
    rig = RunnerRig()
    rig.runner.deploy(rig.a)
    rig.run()
    assert [c.id for c in rig.manager.configurations()] == [LEAD, CAN, ETH]
    assert rig.broker.configured == rig.manager.configurations()  # after each was stored
    assert isinstance(rig.manager.cluster_states()[-1], Deploying)
    for peer in (LEAD, CAN, ETH):
        rig.runner.report(rig.report_all(peer))
    rig.run()
    assert rig.manager.cluster_states()[-1] == Deployed()
    assert rig.runner.running(rig.a.id) is None  # done: the action ended
    assert rig.runner.watched == frozenset()


def test_runner_reports_reach_only_the_action_of_their_cluster() -> None:
    rig = RunnerRig()
    a, b = rig.runner.deploy(rig.a), rig.runner.deploy(rig.b)
    rig.run()
    assert rig.runner.watched == {LEAD, CAN, ETH, *(p.id for p in rig.b_peers)}
    rig.runner.report(rig.report_all(CAN))
    assert len(a.reports) == 1 and a.due
    assert b.reports == [] and not b.due
    assert rig.runner.next_wake() == 0.0  # something to do now


def test_runner_sleeps_until_the_first_deadline() -> None:
    rig = RunnerRig()
    rig.runner.deploy(rig.a)
    rig.run()
    assert rig.runner.next_wake() == TIMEOUT
    rig.now = TIMEOUT
    rig.run()
    failed = rig.manager.cluster_states()[-1]
    assert isinstance(failed, Failed) and failed.peer == LEAD  # nobody said a word; the leader is first
    assert rig.runner.next_wake() is None


def test_runner_retries_a_refused_write_with_growing_pauses_and_holds_the_cluster_meanwhile() -> None:
    rig = RunnerRig()
    rig.manager.refusing = True
    action = rig.runner.deploy(rig.a)
    rig.run()
    assert rig.runner.retrying()
    pauses = []
    for _ in range(5):
        wake = rig.runner.next_wake()
        assert wake is not None
        pauses.append(round(wake - rig.now, 6))
        rig.now = wake
        rig.run()
    assert pauses == [0.0, 0.01, 0.02, 0.04, 0.08]
    assert rig.broker.configured == []  # nothing is handed to a peer before it is stored
    assert action.progress.configured == {LEAD: None, CAN: None, ETH: None}
    rig.manager.refusing = False
    rig.run_when_due()
    assert not rig.runner.retrying()
    assert [c.id for c in rig.manager.configurations()] == [LEAD, CAN, ETH]  # each once, in order
    assert isinstance(rig.manager.cluster_states()[-1], Deploying)


def test_runner_a_newer_request_cancels_the_older_and_drops_its_writes() -> None:
    rig = RunnerRig()
    rig.manager.refusing = True
    older = rig.runner.deploy(rig.a)
    rig.run()  # its first configuration is refused and waits
    newer = rig.runner.undeploy(rig.a, rig.now)
    assert rig.runner.running(rig.a.id) is newer and older is not newer
    rig.manager.refusing = False
    rig.run_when_due()
    # Not one write of the cancelled deployment: the undeploy's Absent configurations only.
    assert rig.manager.configurations() and all(
        p.target == Target.ABSENT for c in rig.manager.configurations() for p in c.parameters
    )
    assert all(isinstance(s, Undeploying) for s in rig.manager.cluster_states())


def test_runner_a_deployment_waiting_for_an_undeploy_goes_on_when_it_ends() -> None:
    rig = RunnerRig()
    shared = make_cluster("sharing-cluster", rig.world.peers[CAN], rig.world.peers[ETH])
    rig.world.clusters[shared.id] = shared
    rig.runner.undeploy(rig.a, rig.now)
    rig.run()
    assert rig.runner.undeploying() == {LEAD: "step-cluster", CAN: "step-cluster", ETH: "step-cluster"}
    waiting = rig.runner.deploy(shared)
    rig.run()
    state = rig.manager.cluster_states()[-1]
    assert isinstance(state, Waiting) and set(state.peers) == {CAN, ETH} and "step-cluster" in state.reason
    for peer in (CAN, ETH):
        rig.runner.report(rig.report_all(peer, Target.ABSENT))
    rig.run()
    assert isinstance(rig.manager.cluster_states()[-1], Undeploying)
    rig.runner.report(rig.report_all(LEAD, Target.ABSENT))  # the leader is no member of the other
    assert not waiting.due
    rig.run()  # the undeploy ends, and that alone makes the waiting deployment go on
    assert rig.runner.undeploying() == {}
    assert isinstance(rig.manager.cluster_states()[-1], Deploying)
    cleared = [c for c in rig.manager.written if isinstance(c, Delete)]
    assert {c.id for c in cleared} == {LEAD, CAN, ETH}
    assert rig.manager.written.index(cleared[-1]) < rig.manager.written.index(
        next(c for c in rig.manager.written if isinstance(c, Put) and isinstance(c.resource, PeerConfiguration)
             and c.resource.cluster == shared.id)
    )  # cleared before the new configurations: the clean-up removes nothing of the new deployment


def test_runner_an_operator_state_waits_its_turn_behind_refused_writes() -> None:
    rig = RunnerRig()
    rig.manager.refusing = True
    rig.runner.publish(rig.b.id, Deployed(health="degraded"), rig.now)
    assert rig.runner.retrying() and rig.runner.status(rig.b.id) == Deployed(health="degraded")
    rig.manager.refusing = False
    rig.run_when_due()
    assert rig.manager.cluster_states() == [Deployed(health="degraded")]


def test_runner_reports_wait_while_their_clusters_write_is_refused_then_count() -> None:
    rig = RunnerRig()
    action = rig.runner.deploy(rig.a)
    other = rig.runner.deploy(rig.b)
    rig.run()
    rig.manager.refusing = True
    rig.runner.report(rig.report_all(CAN))
    rig.run()  # its progress cannot be shown: the cluster waits for that write
    assert rig.runner.retrying()
    rig.runner.report(rig.report_all(ETH))
    rig.runner.report(rig.report_all(LEAD))
    rig.now = 0.001
    rig.run()
    assert len(action.reports) == 2 and action.outcome is None  # held, not stepped
    rig.manager.refusing = False
    for peer in rig.b_peers:
        rig.runner.report(rig.report_all(peer.id))
    rig.run_when_due()
    assert action.outcome == Deployed() and other.outcome == Deployed()
    states = rig.manager.cluster_states()
    assert states.count(Deployed()) == 2


def test_runner_a_state_for_a_deleted_cluster_is_skipped_and_the_undeploy_goes_on() -> None:
    rig = RunnerRig()
    rig.manager.errors[ResourceKind.CLUSTER_STATE] = MissingReference("cluster state for a cluster that does not exist")
    action = rig.runner.undeploy(rig.a, rig.now)
    rig.run()
    for peer in (LEAD, CAN, ETH):
        rig.runner.report(rig.report_all(peer, Target.ABSENT))
    rig.run()
    assert action.outcome == Undeployed() and rig.runner.running(rig.a.id) is None
    assert rig.manager.cluster_states() == []
    assert {c.id for c in rig.manager.written if isinstance(c, Delete)} == {LEAD, CAN, ETH}  # cleared
    assert not rig.runner.retrying()


def test_runner_an_action_stopped_by_an_error_leaves_its_cluster_free() -> None:
    rig = RunnerRig()
    rig.manager.errors[ResourceKind.PEER_CONFIGURATION] = ShuttingDown("the backend is shutting down")
    rig.runner.deploy(rig.a)
    rig.run()
    assert rig.runner.running(rig.a.id) is None and not rig.runner.retrying()
    assert rig.runner.watched == frozenset()
    del rig.manager.errors[ResourceKind.PEER_CONFIGURATION]
    rig.runner.deploy(rig.a)
    rig.run()
    assert [c.id for c in rig.manager.configurations()] == [LEAD, CAN, ETH]
