"""Cluster deployment end to end, in-process: the seed's sequence and everything around it.

A real Backend on a temporary data directory with demo peers (zero or small delays). Tests wait
for conditions, never for time: a state reached (polled, with a generous deadline), or
``Backend.wait_idle`` (every event up to the published revision handled by the operator and the
demo peers, nothing left for them to do): nothing here depends on how fast a loaded machine is.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import pytest

from backend import actions
from backend.backend import Backend
from backend.demo import CLUSTERS, FLEET, seed_demo
from backend.deployment.runner import ActionRunner, ClusterAction
from backend.peers.broker import PeerBroker
from backend.peers.demo import DemoFaults, OfflineFault, ParameterFailure
from backend.state import State
from resources.cluster import ClusterDescriptor
from resources.configuration import (
    ParameterKind,
    ParameterPresent,
    PeerConfiguration,
    PeerConfigurationState,
    Target,
)
from resources.derived import blocked_peers
from resources.errors import ClusterDeployed, PeerBlocked, ReferencedByCluster, StorageFailed
from resources.events import Event, EventType
from resources.kinds import PERSISTED_KINDS, ResourceKind
from resources.peer import PeerDescriptor
from resources.state import (
    ClusterState,
    ClusterStatus,
    Deployed,
    Deploying,
    Failed,
    PeerConnectionState,
    Undeployed,
    Undeploying,
    Waiting,
)
from resources.wire import EventBatch, Resync
from tests.helpers.factories import make_cluster, make_peer

ACTOR = "tester"
DEADLINE = 30.0  # generous: a loaded 2-core machine must never make a test fail
T = TypeVar("T")


# -- helpers ---------------------------------------------------------------------------------
def wait_for(predicate: Callable[[], T], timeout: float = DEADLINE, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)


def status(backend: Backend, cluster_id: UUID) -> ClusterStatus | None:
    state = backend.manager.get(ResourceKind.CLUSTER_STATE, cluster_id)
    return state.state if isinstance(state, ClusterState) else None


def wait_status(backend: Backend, cluster_id: UUID, kind: type[Any], timeout: float = DEADLINE) -> Any:
    return wait_for(
        lambda: (s := status(backend, cluster_id)) is not None and isinstance(s, kind) and s,
        timeout, f"cluster state {kind.__name__} (now {status(backend, cluster_id)!r})",
    )


def is_online(backend: Backend, peer_id: UUID) -> bool:
    state = backend.manager.get(ResourceKind.PEER_CONNECTION_STATE, peer_id)
    return isinstance(state, PeerConnectionState) and state.online


def wait_online(backend: Backend, *peers: PeerDescriptor, online: bool = True) -> None:
    for peer in peers:
        def arrived(peer_id: UUID = peer.id) -> bool:
            return is_online(backend, peer_id) == online

        wait_for(arrived, what=f"{peer.name} online={online}")


class Recorder:
    """Collects every event of a subscription on a thread, until the subscription closes."""

    def __init__(self, backend: Backend, kinds: list[ResourceKind]) -> None:
        self.subscription = backend.manager.subscribe(kinds=kinds)
        self.events: list[Event] = []
        self.resyncs = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="test-recorder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for item in self.subscription:
            with self._lock:
                if isinstance(item, EventBatch):
                    self.events.extend(item.events)
                elif isinstance(item, Resync):
                    self.resyncs += 1

    def snapshot(self) -> list[Event]:
        with self._lock:
            return list(self.events)

    def states(self, cluster_id: UUID) -> list[ClusterStatus]:
        return [
            e.resource.state for e in self.snapshot()
            if e.kind == ResourceKind.CLUSTER_STATE and e.id == cluster_id and isinstance(e.resource, ClusterState)
        ]

    def wait_state(self, cluster_id: UUID, kind: type[Any], timeout: float = DEADLINE) -> Any:
        return wait_for(
            lambda: next((s for s in self.states(cluster_id) if isinstance(s, kind)), None),
            timeout, f"a {kind.__name__} event (seen {[type(s).__name__ for s in self.states(cluster_id)]})",
        )

    def close(self) -> None:
        self.subscription.close()
        self._thread.join(10)


class Backends:
    """Opens backends on data directories and closes whatever a test left open."""

    def __init__(self) -> None:
        self.open: list[Backend] = []

    def start(self, data_dir: Path, **kwargs: Any) -> Backend:
        kwargs.setdefault("demo_delay_scale", 0.0)
        kwargs.setdefault("durability", "off")
        backend = Backend(data_dir, **kwargs)
        self.open.append(backend)
        return backend.start()

    def close(self, backend: Backend) -> None:
        self.open.remove(backend)
        backend.close()


@pytest.fixture
def backends() -> Iterator[Backends]:
    opened = Backends()
    yield opened
    for backend in list(opened.open):
        opened.close(backend)


def add_peers(backend: Backend, *peers: PeerDescriptor) -> None:
    for peer in peers:
        actions.store_peer_descriptor(backend.manager, peer, ACTOR)
    wait_online(backend, *(p for p in peers if p.demo))


def add_cluster(backend: Backend, name: str, leader: PeerDescriptor, *others: PeerDescriptor) -> ClusterDescriptor:
    cluster = make_cluster(name, leader, *others)
    actions.store_cluster_descriptor(backend.manager, cluster, ACTOR)
    return cluster


def three_demo_peers(prefix: str = "bench") -> tuple[PeerDescriptor, PeerDescriptor, PeerDescriptor]:
    return (
        make_peer(f"{prefix}-lead", devices=3, can=True, demo=True),
        make_peer(f"{prefix}-can", devices=2, can=True, demo=True),
        make_peer(f"{prefix}-eth", devices=1, demo=True),
    )


def configuration_total(backend: Backend, cluster: ClusterDescriptor) -> int:
    members = backend.manager.read(lambda s: s.cluster_members(cluster))
    total = 0
    for member in members:
        configuration = backend.manager.get(ResourceKind.PEER_CONFIGURATION, member)
        assert isinstance(configuration, PeerConfiguration)
        total += len(configuration.parameters)
    return total


def assert_progress_monotonic(states: list[ClusterStatus]) -> None:
    """done never goes down (overall and per peer) while the deployment goes on."""
    last = -1
    per_peer: dict[UUID, int] = {}
    for s in states:
        if isinstance(s, Deploying):
            assert s.done >= last, f"progress went down: {last} -> {s.done}"
            assert s.done <= s.total
            assert s.done == sum(p.done for p in s.peers.values())
            assert s.total == sum(p.total for p in s.peers.values())
            for peer, progress in s.peers.items():
                assert progress.done >= per_peer.get(peer, 0)
                assert progress.done <= progress.total
                per_peer[peer] = progress.done
            last = s.done


def lea_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("lea-") and t.is_alive()}


# -- the seed's sequence ----------------------------------------------------------------------
def test_seed_sequence_end_to_end(data_dir: Path, backends: Backends) -> None:
    backend = backends.start(data_dir)
    peers = three_demo_peers()
    add_peers(backend, *peers)
    cluster = add_cluster(backend, "seed-cluster", *peers)
    sentinel_peers = (make_peer("other-lead", demo=True), make_peer("other-eth", demo=True))
    add_peers(backend, *sentinel_peers)
    sentinel = add_cluster(backend, "other-cluster", *sentinel_peers)

    lea = backend.manager.subscribe(kinds=[ResourceKind.CLUSTER_DEPLOYMENT, ResourceKind.CLUSTER_STATE])
    stored = actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)
    wait_status(backend, cluster.id, Deployed)
    assert backend.wait_idle()  # every event handled, nothing left to do
    assert backend.operator.running(cluster.id) is None
    # A later write of a watched kind marks the end: everything before it is the whole sequence.
    marker = actions.store_cluster_deployment(backend.manager, sentinel.id, ACTOR)

    events: list[Event] = []
    while not any(e.revision == marker.revision for e in events):
        item = lea.get(timeout=DEADLINE)
        assert not isinstance(item, Resync)
        if isinstance(item, EventBatch):
            events.extend(item.events)
    events = [e for e in events if e.revision < marker.revision]

    first, states, last = events[0], events[1:-1], events[-1]
    assert (first.kind, first.type, first.id, first.revision) == (
        ResourceKind.CLUSTER_DEPLOYMENT, EventType.CREATED, cluster.id, stored.revision
    )
    assert all(e.kind == ResourceKind.CLUSTER_STATE and e.id == cluster.id for e in events[1:])
    assert states, "no Deploying event"
    assert states[0].type == EventType.CREATED
    progress = [e.resource.state for e in states if isinstance(e.resource, ClusterState)]
    assert all(isinstance(s, Deploying) for s in progress), [type(s).__name__ for s in progress]
    assert_progress_monotonic(progress)
    total = configuration_total(backend, cluster)
    assert {s.total for s in progress if isinstance(s, Deploying)} == {total}
    final_deploying = progress[-1]
    assert isinstance(final_deploying, Deploying) and final_deploying.done == total
    assert len(progress) >= 2  # progress is published as reports arrive, not only at the end
    assert isinstance(last.resource, ClusterState) and last.resource.state == Deployed()
    assert [e.revision for e in events] == sorted(e.revision for e in events)

    # Persisted: the deployment's event is in storage; the volatile kinds never are.
    stored_events = list(backend.store.read_events())
    assert any(
        e.kind == ResourceKind.CLUSTER_DEPLOYMENT and e.id == cluster.id and e.revision == stored.revision
        for e in stored_events
    )
    assert {e.kind for e in stored_events} <= PERSISTED_KINDS
    volatile_revisions = {e.revision for e in states}
    assert not volatile_revisions & {e.revision for e in stored_events}
    with closing(sqlite3.connect(backend.data_dir.db_path)) as db:  # the table itself, not the store's view
        kinds_in_table = {row[0] for row in db.execute("SELECT DISTINCT kind FROM events")}
    assert kinds_in_table == {"peer", "cluster", "cluster_deployment"}
    for kind in (ResourceKind.CLUSTER_STATE, ResourceKind.PEER_CONFIGURATION,
                 ResourceKind.PEER_CONFIGURATION_STATE, ResourceKind.PEER_CONNECTION_STATE):
        assert list(backend.store.read_events(kind=kind)) == []

    wait_status(backend, sentinel.id, Deployed)
    backends.close(backend)
    reopened = Backend(data_dir, durability="off")  # restored, not started
    try:
        assert reopened.manager.get(ResourceKind.CLUSTER_DEPLOYMENT, cluster.id) is not None
        assert reopened.manager.get(ResourceKind.CLUSTER_STATE, cluster.id) is None  # volatile: gone
        assert reopened.manager.resources_of(ResourceKind.PEER_CONNECTION_STATE) == []
    finally:
        reopened.close()


def test_wait_idle_is_a_barrier(data_dir: Path, backends: Backends) -> None:
    """Once it returns, the operator and the demo peers have reacted to everything written before."""
    backend = backends.start(data_dir)
    remote = make_peer("bench-away")  # no broker reaches it: the deployment can only wait
    lead, can, eth = three_demo_peers()
    for peer in (remote, lead, can, eth):
        actions.store_peer_descriptor(backend.manager, peer, ACTOR)
    waiting = add_cluster(backend, "waiting-cluster", remote)
    moving = add_cluster(backend, "moving-cluster", lead, can, eth)
    actions.store_cluster_deployment(backend.manager, waiting.id, ACTOR)
    actions.store_cluster_deployment(backend.manager, moving.id, ACTOR)
    assert backend.wait_idle()  # no wait for any state before it
    assert isinstance(status(backend, waiting.id), Waiting)
    assert status(backend, moving.id) == Deployed()
    assert backend.operator.running(moving.id) is None


def test_restart_with_a_deployed_cluster(data_dir: Path, backends: Backends) -> None:
    backend = backends.start(data_dir)
    peers = three_demo_peers()
    add_peers(backend, *peers)
    cluster = add_cluster(backend, "restart-cluster", *peers)
    actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)
    wait_status(backend, cluster.id, Deployed)
    backends.close(backend)

    backend = backends.start(data_dir)
    # Restored from storage; the volatile state is rebuilt by the operator's reconciliation.
    assert backend.manager.get(ResourceKind.CLUSTER_DEPLOYMENT, cluster.id) is not None
    wait_status(backend, cluster.id, Deployed)
    assert backend.wait_idle()  # every event handled, nothing left to do
    assert backend.operator.running(cluster.id) is None
    assert status(backend, cluster.id) == Deployed()
    for peer in peers:
        report = backend.manager.get(ResourceKind.PEER_CONFIGURATION_STATE, peer.id)
        assert isinstance(report, PeerConfigurationState)
        assert report.parameters and all(isinstance(p.state, ParameterPresent) for p in report.parameters)


# -- peers offline, failures, timeouts --------------------------------------------------------
def test_offline_member_waits_then_deploys(data_dir: Path, backends: Backends) -> None:
    backend = backends.start(data_dir)
    lead, can, eth = three_demo_peers()
    add_peers(backend, lead, can, eth)
    cluster = add_cluster(backend, "offline-cluster", lead, can, eth)
    backend.demo_peers.set_online(can.id, False)
    wait_online(backend, can, online=False)

    recorder = Recorder(backend, [ResourceKind.CLUSTER_STATE])
    actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)
    waiting = wait_status(backend, cluster.id, Waiting)
    assert waiting.peers == (can.id,)
    assert "bench-can" in waiting.reason and "offline" in waiting.reason
    assert "bench-lead" not in waiting.reason

    backend.demo_peers.set_online(can.id, True)
    wait_status(backend, cluster.id, Deployed)
    recorder.close()
    states = recorder.states(cluster.id)
    names = [type(s).__name__ for s in states]
    assert names[0] == "Waiting" and names[-1] == "Deployed", names
    first_deploying = names.index("Deploying")
    assert set(names[:first_deploying]) == {"Waiting"}
    assert set(names[first_deploying:-1]) == {"Deploying"}, names
    assert_progress_monotonic(states)


def test_offline_before_the_broker_knows_the_peer(data_dir: Path, backends: Backends) -> None:
    """set_online(False) right after storing a demo peer is not undone when the broker meets it."""
    backend = backends.start(data_dir)
    peer = make_peer("bench-late", demo=True)
    actions.store_peer_descriptor(backend.manager, peer, ACTOR)
    backend.demo_peers.set_online(peer.id, False)
    other = make_peer("bench-witness", demo=True)
    add_peers(backend, other)  # the broker has handled everything stored before the witness
    assert not is_online(backend, peer.id)
    assert not backend.demo_peers.is_online(peer.id)
    backend.demo_peers.set_online(peer.id, True)
    wait_online(backend, peer)


def test_a_peer_that_stops_being_a_demo_goes_offline(data_dir: Path, backends: Backends) -> None:
    backend = backends.start(data_dir)
    peer = make_peer("bench-switch", demo=True)
    add_peers(backend, peer)
    actions.store_peer_descriptor(backend.manager, peer.model_copy(update={"demo": False}), ACTOR)
    wait_online(backend, peer, online=False)  # no broker reaches it any more
    actions.store_peer_descriptor(backend.manager, peer, ACTOR)
    wait_online(backend, peer)


def test_failure_injection_then_retry(data_dir: Path, backends: Backends) -> None:
    faults = DemoFaults(failures=[ParameterFailure("bench-can", ParameterKind.CAN_CONNECTION, "port 20001 in use")])
    backend = backends.start(data_dir, demo_faults=faults)
    lead, can, eth = three_demo_peers()
    add_peers(backend, lead, can, eth)
    cluster = add_cluster(backend, "failing-cluster", lead, can, eth)
    actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)

    failed = wait_status(backend, cluster.id, Failed)
    assert failed.peer == can.id
    configuration = backend.manager.get(ResourceKind.PEER_CONFIGURATION, can.id)
    assert isinstance(configuration, PeerConfiguration)
    (parameter,) = [p for p in configuration.parameters if p.id == failed.parameter]
    assert parameter.kind == ParameterKind.CAN_CONNECTION
    assert "port 20001 in use" in failed.reason and "bench-can" in failed.reason
    assert "can_connection" in failed.reason
    assert backend.wait_idle()  # every event handled, nothing left to do
    assert backend.operator.running(cluster.id) is None
    assert isinstance(status(backend, cluster.id), Failed)  # it stays Failed: no silent retry

    backend.demo_peers.faults.failures.clear()
    actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)  # storing it again retries
    wait_status(backend, cluster.id, Deployed)


def test_peer_going_offline_mid_deployment(data_dir: Path, backends: Backends) -> None:
    faults = DemoFaults(offline=[OfflineFault("bench-can", after_parameters=3, back_after=0.3)])
    backend = backends.start(data_dir, demo_faults=faults, demo_delay_scale=0.02)
    lead, can, eth = three_demo_peers()
    add_peers(backend, lead, can, eth)
    cluster = add_cluster(backend, "flaky-cluster", lead, can, eth)
    recorder = Recorder(backend, [ResourceKind.CLUSTER_STATE])
    actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)
    recorder.wait_state(cluster.id, Waiting)
    wait_status(backend, cluster.id, Deployed)
    recorder.close()
    states = recorder.states(cluster.id)
    names = [type(s).__name__ for s in states]
    waiting_at = names.index("Waiting")
    assert "Deploying" in names[:waiting_at] and "Deploying" in names[waiting_at:], names
    waiting = states[waiting_at]
    assert isinstance(waiting, Waiting) and waiting.peers == (can.id,) and "bench-can" in waiting.reason
    assert names[-1] == "Deployed"
    assert_progress_monotonic(states)
    # Deployed means every member holds every parameter of its configuration again.
    for peer in (lead, can, eth):
        configuration = backend.manager.get(ResourceKind.PEER_CONFIGURATION, peer.id)
        report = backend.manager.get(ResourceKind.PEER_CONFIGURATION_STATE, peer.id)
        assert isinstance(configuration, PeerConfiguration) and isinstance(report, PeerConfigurationState)
        present = {r.id for r in report.parameters if isinstance(r.state, ParameterPresent)}
        assert {p.id for p in configuration.parameters} <= present, peer.name


def test_deployed_only_once_a_returning_peer_applied_everything_again(data_dir: Path, backends: Backends) -> None:
    """A member that finished, dropped out (forgetting it all) and came back must report again.

    The Ethernet-only member finishes first and drops out right after its last parameter; when it
    is back, the deployment is sent again to every member, the Ethernet one last (members are
    ordered by id): the others' reports must not complete the deployment on its behalf.
    """
    lead = make_peer("bench-lead", devices=3, can=True, demo=True, id=UUID(int=1))
    can = make_peer("bench-can", devices=2, can=True, demo=True, id=UUID(int=2))
    eth = make_peer("bench-eth", devices=1, demo=True, id=UUID(int=3))
    eth_total = 5  # device interface, bridge, GRE tunnel and its two joins
    # Seeded delays (fixed ids): the Ethernet member needs ~0.2 s, the leader ~0.8 s; the Ethernet
    # member is away for 1 s, long enough for the others to have finished when it is back.
    faults = DemoFaults(offline=[OfflineFault("bench-eth", after_parameters=eth_total, back_after=1.0)])
    backend = backends.start(data_dir, demo_faults=faults, demo_delay_scale=0.2)
    add_peers(backend, lead, can, eth)
    cluster = add_cluster(backend, "returning-cluster", lead, can, eth)
    recorder = Recorder(backend, [ResourceKind.CLUSTER_STATE, ResourceKind.PEER_CONFIGURATION_STATE])
    actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)
    wait_status(backend, cluster.id, Deployed)
    recorder.close()
    eth_configuration = backend.manager.get(ResourceKind.PEER_CONFIGURATION, eth.id)
    assert isinstance(eth_configuration, PeerConfiguration) and len(eth_configuration.parameters) == eth_total
    assert [type(s).__name__ for s in recorder.states(cluster.id)].count("Waiting") == 1
    # At the moment Deployed was published, every member's latest report had everything present.
    latest: dict[UUID, PeerConfigurationState] = {}
    for event in recorder.snapshot():
        if isinstance(event.resource, PeerConfigurationState):
            latest[event.id] = event.resource
        elif isinstance(event.resource, ClusterState) and isinstance(event.resource.state, Deployed):
            break
    for peer in (lead, can, eth):
        assert latest[peer.id].parameters, peer.name
        assert all(isinstance(r.state, ParameterPresent) for r in latest[peer.id].parameters), peer.name


def test_a_non_demo_peer_that_never_connects_waits(data_dir: Path, backends: Backends) -> None:
    backend = backends.start(data_dir, deploy_timeout=0.5)
    lead = make_peer("bench-demo", can=True, demo=True)
    remote = make_peer("bench-remote", can=True)  # no broker reaches it: it stays offline
    add_peers(backend, lead, remote)
    cluster = add_cluster(backend, "remote-cluster", lead, remote)
    actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)
    waiting = wait_status(backend, cluster.id, Waiting)
    assert waiting.peers == (remote.id,) and "bench-remote" in waiting.reason
    # Waiting for a peer is not a failure: once everything is handled, the action still runs and
    # has no timer armed, so no timeout can fail it (test_deploy_step checks it with a clock).
    assert backend.wait_idle()
    assert isinstance(status(backend, cluster.id), Waiting)
    action = backend.operator.running(cluster.id)
    assert action is not None and action.progress.wake_at is None


class _SilentOn(PeerBroker):
    """Wraps the demo broker but never delivers configurations to one peer (it never reports)."""

    def __init__(self, inner: PeerBroker, silent: UUID) -> None:
        self.inner, self.silent = inner, silent

    def manages(self, peer: PeerDescriptor) -> bool:
        return self.inner.manages(peer)

    def start(self) -> None:
        self.inner.start()

    def configure(self, peer_id: UUID, configuration: PeerConfiguration) -> None:
        if peer_id != self.silent:
            self.inner.configure(peer_id, configuration)

    def stop(self) -> None:
        self.inner.stop()

    def wait_idle(self, timeout: float) -> bool:
        return self.inner.wait_idle(timeout)


def test_a_demo_peer_that_never_reports_times_out(data_dir: Path, backends: Backends) -> None:
    backend = Backend(data_dir, demo_delay_scale=0.0, durability="off", deploy_timeout=0.5)
    backends.open.append(backend)
    lead, can, eth = three_demo_peers()
    backend.brokers.brokers = [_SilentOn(backend.demo_peers, can.id)]
    backend.start()
    add_peers(backend, lead, can, eth)
    cluster = add_cluster(backend, "silent-cluster", lead, can, eth)
    actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)
    failed = wait_status(backend, cluster.id, Failed)
    assert failed.peer == can.id
    assert "bench-can" in failed.reason and "0.5" in failed.reason
    configuration = backend.manager.get(ResourceKind.PEER_CONFIGURATION, can.id)
    assert isinstance(configuration, PeerConfiguration)
    assert failed.parameter in {p.id for p in configuration.parameters}
    # The others did their part.
    for peer in (lead, eth):
        report = backend.manager.get(ResourceKind.PEER_CONFIGURATION_STATE, peer.id)
        assert isinstance(report, PeerConfigurationState)
        assert all(isinstance(r.state, ParameterPresent) for r in report.parameters)


# -- undeploy and the rules around deployed clusters ---------------------------------------------
def test_undeploy_then_the_peers_are_free(data_dir: Path, backends: Backends) -> None:
    backend = backends.start(data_dir)
    lead, can, eth = three_demo_peers()
    add_peers(backend, lead, can, eth)
    cluster = add_cluster(backend, "first-cluster", lead, can, eth)
    other = add_cluster(backend, "second-cluster", can, eth)  # shares two peers
    actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)
    wait_status(backend, cluster.id, Deployed)
    total = configuration_total(backend, cluster)

    recorder = Recorder(backend, [ResourceKind.CLUSTER_STATE])
    actions.delete_cluster_deployment(backend.manager, cluster.id, ACTOR)
    wait_status(backend, cluster.id, Undeployed)
    recorder.close()
    states = recorder.states(cluster.id)
    assert isinstance(states[-1], Undeployed)
    undeploying = [s for s in states[:-1] if isinstance(s, Undeploying)]
    assert len(undeploying) == len(states) - 1 >= 2, [type(s).__name__ for s in states]
    assert [s.done for s in undeploying] == sorted(s.done for s in undeploying)
    assert {s.total for s in undeploying} == {total}
    assert undeploying[-1].done == total
    for peer in (lead, can, eth):  # the desired configuration and the reports are gone
        assert backend.manager.get(ResourceKind.PEER_CONFIGURATION, peer.id) is None
        assert backend.manager.get(ResourceKind.PEER_CONFIGURATION_STATE, peer.id) is None

    # The peers are available again: a cluster sharing them deploys.
    actions.store_cluster_deployment(backend.manager, other.id, ACTOR)
    wait_status(backend, other.id, Deployed)


def test_undeploy_failures(data_dir: Path, backends: Backends) -> None:
    """An Error report or a silent peer fails the undeploy too, naming the peer and the parameter;
    the peers are not held as undeploying after that."""
    backend = Backend(data_dir, demo_delay_scale=0.0, durability="off", deploy_timeout=0.5)
    backends.open.append(backend)
    lead, can, eth = three_demo_peers()
    silent = _SilentOn(backend.demo_peers, uuid.uuid4())
    backend.brokers.brokers = [silent]
    backend.start()
    add_peers(backend, lead, can, eth)
    erroring = add_cluster(backend, "erroring-cluster", lead, can)
    actions.store_cluster_deployment(backend.manager, erroring.id, ACTOR)
    wait_status(backend, erroring.id, Deployed)
    backend.demo_peers.faults.failures.append(ParameterFailure("bench-can", ParameterKind.CAN_BRIDGE, "busy"))
    actions.delete_cluster_deployment(backend.manager, erroring.id, ACTOR)
    failed = wait_status(backend, erroring.id, Failed)
    assert failed.peer == can.id and "busy" in failed.reason and "undeploy" in failed.reason
    assert "bench-can" in failed.reason and "can_bridge" in failed.reason
    assert backend.wait_idle()  # every event handled, nothing left to do
    assert backend.operator.running(erroring.id) is None
    assert backend.operator.undeploying() == {}  # the failed undeploy holds no peer any more
    backend.demo_peers.faults.failures.clear()

    quiet = add_cluster(backend, "quiet-cluster", eth, can)
    actions.store_cluster_deployment(backend.manager, quiet.id, ACTOR)
    wait_status(backend, quiet.id, Deployed)
    silent.silent = eth.id  # from now on the leader hears nothing
    actions.delete_cluster_deployment(backend.manager, quiet.id, ACTOR)
    failed = wait_status(backend, quiet.id, Failed)
    assert failed.peer == eth.id and "bench-eth" in failed.reason and "0.5" in failed.reason
    configuration = backend.manager.get(ResourceKind.PEER_CONFIGURATION, eth.id)
    assert isinstance(configuration, PeerConfiguration)
    (parameter,) = [p for p in configuration.parameters if p.id == failed.parameter]
    assert parameter.target == Target.ABSENT


def test_two_clusters_sharing_a_peer(data_dir: Path, backends: Backends) -> None:
    backend = backends.start(data_dir)
    lead, can, eth = three_demo_peers()
    solo = make_peer("bench-solo", demo=True)
    add_peers(backend, lead, can, eth, solo)
    first = add_cluster(backend, "first-cluster", lead, can)
    second = add_cluster(backend, "second-cluster", eth, can, lead)
    third = add_cluster(backend, "third-cluster", eth, solo)  # shares nothing with the first
    actions.store_cluster_deployment(backend.manager, first.id, ACTOR)

    with pytest.raises(PeerBlocked) as refused:
        actions.store_cluster_deployment(backend.manager, second.id, ACTOR)
    assert "bench-can" in refused.value.message and "bench-lead" in refused.value.message
    assert "first-cluster" in refused.value.message
    assert "bench-eth" not in refused.value.message
    assert refused.value.details["blocked_by"] == {"first-cluster": ["bench-can", "bench-lead"]}
    assert backend.manager.get(ResourceKind.CLUSTER_DEPLOYMENT, second.id) is None

    with pytest.raises(ClusterDeployed):
        actions.delete_cluster_descriptor(backend.manager, first.id, ACTOR)
    with pytest.raises(ReferencedByCluster) as referenced:
        actions.delete_peer_descriptor(backend.manager, can.id, ACTOR)
    assert "first-cluster" in referenced.value.message

    def blocked() -> dict[UUID, ClusterDescriptor]:
        return backend.manager.read(blocked_peers)

    assert {p: c.name for p, c in blocked().items()} == {lead.id: "first-cluster", can.id: "first-cluster"}
    actions.store_cluster_deployment(backend.manager, third.id, ACTOR)  # not blocked
    wait_status(backend, first.id, Deployed)
    wait_status(backend, third.id, Deployed)
    assert blocked()[eth.id].name == "third-cluster"


@pytest.mark.parametrize("refused", [False, True], ids=["prompt", "undeploy-stuck-on-a-refused-write"])
def test_a_new_deployment_waits_for_a_peer_still_undeploying(
    data_dir: Path, backends: Backends, monkeypatch: pytest.MonkeyPatch, refused: bool
) -> None:
    # refused: storage refuses the undeploy's first writes until the new deployment waits: its
    # peers count as undeploying from the moment the operator starts it, not once it got going.
    refusing = threading.Event()
    original = actions.set_peer_configuration

    def set_peer_configuration(manager: Any, configuration: PeerConfiguration, actor: str) -> Any:
        if refusing.is_set() and configuration.parameters[0].target == Target.ABSENT:
            raise StorageFailed("the change could not be saved: database or disk is full (test)")
        return original(manager, configuration, actor)

    monkeypatch.setattr(actions, "set_peer_configuration", set_peer_configuration)
    backend = backends.start(data_dir)
    lead, can, eth = three_demo_peers()
    add_peers(backend, lead, can, eth)
    first = add_cluster(backend, "first-cluster", lead, can, eth)
    second = add_cluster(backend, "second-cluster", eth, can)
    actions.store_cluster_deployment(backend.manager, first.id, ACTOR)
    wait_status(backend, first.id, Deployed)

    backend.demo_peers.delay_scale = 0.5  # undeploying takes a while
    if refused:
        refusing.set()
    recorder = Recorder(backend, [ResourceKind.CLUSTER_STATE])
    actions.delete_cluster_deployment(backend.manager, first.id, ACTOR)
    actions.store_cluster_deployment(backend.manager, second.id, ACTOR)  # at once: no grace period
    waiting = recorder.wait_state(second.id, Waiting)
    assert "undeploying" in waiting.reason and "first-cluster" in waiting.reason
    assert set(waiting.peers) == {can.id, eth.id}
    refusing.clear()
    backend.demo_peers.delay_scale = 0.0
    wait_status(backend, second.id, Deployed)
    recorder.close()

    # The second cluster started deploying only once the first was undeployed from the peers.
    states = [(e.revision, e.id, e.resource.state) for e in recorder.snapshot() if isinstance(e.resource, ClusterState)]
    undeployed_at = next(r for r, c, s in states if c == first.id and isinstance(s, Undeployed))
    deploying_at = next(r for r, c, s in states if c == second.id and isinstance(s, Deploying))
    assert undeployed_at < deploying_at
    for peer in (can, eth):  # the undeploy's clean-up did not remove the new configuration
        configuration = backend.manager.get(ResourceKind.PEER_CONFIGURATION, peer.id)
        assert isinstance(configuration, PeerConfiguration) and configuration.cluster == second.id
        assert all(p.target == Target.PRESENT for p in configuration.parameters)
    assert backend.manager.get(ResourceKind.PEER_CONFIGURATION, lead.id) is None


def test_a_newer_request_cancels_the_older(
    data_dir: Path, backends: Backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests in a burst: each cancels the cluster's running action before the next one begins."""
    lives: list[tuple[str, ClusterAction]] = []  # ("begin" | "end", action) in the order they happen
    begin, end = ActionRunner._begin, ActionRunner._end

    def recorded_begin(self: ActionRunner, action: ClusterAction, members: tuple[UUID, ...]) -> ClusterAction:
        started = begin(self, action, members)
        lives.append(("begin", action))
        return started

    def recorded_end(self: ActionRunner, action: ClusterAction) -> None:
        current = self.running(action.cluster.id) is action
        end(self, action)
        if current:
            lives.append(("end", action))

    monkeypatch.setattr(ActionRunner, "_begin", recorded_begin)
    monkeypatch.setattr(ActionRunner, "_end", recorded_end)
    backend = backends.start(data_dir, demo_delay_scale=0.01)
    lead, can, eth = three_demo_peers()
    add_peers(backend, lead, can, eth)
    cluster = add_cluster(backend, "busy-cluster", lead, can, eth)

    for _ in range(5):
        actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)
        actions.delete_cluster_deployment(backend.manager, cluster.id, ACTOR)
        actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)
        actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)  # stored again
        actions.delete_cluster_deployment(backend.manager, cluster.id, ACTOR)
    actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)
    wait_status(backend, cluster.id, Deployed)
    assert backend.wait_idle()
    assert backend.operator.running(cluster.id) is None
    mine = [(what, a) for what, a in lives if a.cluster.id == cluster.id]
    assert len(mine) >= 4
    # Strictly one at a time: every action ends before the next begins, and the last one ended.
    assert [what for what, _ in mine] == ["begin", "end"] * (len(mine) // 2), [w for w, _ in mine]
    assert all(mine[i][1] is mine[i + 1][1] for i in range(0, len(mine), 2))
    assert mine[-1][1].deploying and mine[-1][1].outcome == Deployed()
    assert status(backend, cluster.id) == Deployed()
    for peer in (lead, can, eth):  # the last word is the deployment's, on every member
        configuration = backend.manager.get(ResourceKind.PEER_CONFIGURATION, peer.id)
        report = backend.manager.get(ResourceKind.PEER_CONFIGURATION_STATE, peer.id)
        assert isinstance(configuration, PeerConfiguration) and isinstance(report, PeerConfigurationState)
        assert all(p.target == Target.PRESENT for p in configuration.parameters)
        assert all(isinstance(r.state, ParameterPresent) for r in report.parameters)


def test_member_offline_while_deployed_degrades_then_recovers(data_dir: Path, backends: Backends) -> None:
    backend = backends.start(data_dir)
    lead, can, eth = three_demo_peers()
    add_peers(backend, lead, can, eth)
    cluster = add_cluster(backend, "degrading-cluster", lead, can, eth)
    actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)
    wait_status(backend, cluster.id, Deployed)
    assert backend.wait_idle()  # every event handled, nothing left to do
    assert backend.operator.running(cluster.id) is None
    backend.demo_peers.set_online(eth.id, False)
    degraded = Deployed(health="degraded", reason=f"peer '{eth.name}' offline", peers=(eth.id,))
    wait_for(lambda: status(backend, cluster.id) == degraded, what="degraded, naming the offline member")
    backend.demo_peers.set_online(can.id, False)  # a second one: both named

    def both_named() -> bool:
        now = status(backend, cluster.id)
        return isinstance(now, Deployed) and set(now.peers) == {can.id, eth.id}

    wait_for(both_named, what="degraded, naming both offline members")
    now = status(backend, cluster.id)
    assert isinstance(now, Deployed) and now.health == "degraded"
    assert now.reason.startswith("peers ") and f"'{can.name}'" in now.reason and f"'{eth.name}'" in now.reason
    backend.demo_peers.set_online(can.id, True)
    backend.demo_peers.set_online(eth.id, True)  # they forgot everything: rolled out again
    wait_for(lambda: status(backend, cluster.id) == Deployed(health="healthy"), what="healthy again")
    report = backend.manager.get(ResourceKind.PEER_CONFIGURATION_STATE, eth.id)
    assert isinstance(report, PeerConfigurationState)
    assert all(isinstance(r.state, ParameterPresent) for r in report.parameters)


def test_the_operator_is_not_woken_for_peers_that_cannot_matter(data_dir: Path, backends: Backends) -> None:
    """A peer in no deployed cluster and no running action: its descriptor and connection changes
    do not wake the operator; when a cluster of it is deployed later, the operator reads it as it
    is then (here: it went offline and came back while nobody followed it)."""
    backend = backends.start(data_dir)
    lead, can, eth = three_demo_peers()
    outsider, other = make_peer("bench-outsider", devices=1, demo=True), make_peer("bench-other", demo=True)
    add_peers(backend, lead, can, eth, outsider, other)
    cluster = add_cluster(backend, "followed-cluster", lead, can, eth)
    later = add_cluster(backend, "later-cluster", other, outsider)
    actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)
    wait_status(backend, cluster.id, Deployed)
    assert backend.wait_idle()
    woken = backend.operator.wakeups

    for n in range(5):  # descriptor changes of a peer in no deployed cluster
        renamed = PeerDescriptor.model_validate({**outsider.model_dump(), "name": f"bench-outsider-{n}"})
        actions.store_peer_descriptor(backend.manager, renamed, ACTOR)
    backend.demo_peers.set_online(outsider.id, False)  # and its connection, both ways
    wait_online(backend, outsider, online=False)
    backend.demo_peers.set_online(outsider.id, True)
    wait_online(backend, outsider)
    assert backend.wait_idle()
    assert backend.operator.wakeups == woken

    backend.demo_peers.set_online(eth.id, False)  # a member of the deployed cluster: it matters
    wait_for(lambda: isinstance(s := status(backend, cluster.id), Deployed) and s.health == "degraded",
             what="degraded")
    assert backend.operator.wakeups > woken
    backend.demo_peers.set_online(eth.id, True)
    wait_for(lambda: status(backend, cluster.id) == Deployed(health="healthy"), what="healthy again")

    actions.store_cluster_deployment(backend.manager, later.id, ACTOR)
    wait_status(backend, later.id, Deployed)
    assert configuration_total(backend, later) > 0
    stored = backend.manager.get(ResourceKind.PEER, outsider.id)
    assert isinstance(stored, PeerDescriptor) and stored.name == "bench-outsider-4"
    backend.demo_peers.set_online(outsider.id, False)  # followed now: a deployed cluster's member
    wait_for(lambda: isinstance(s := status(backend, later.id), Deployed) and s.peers == (outsider.id,),
             what="the later cluster degraded, naming the outsider")


def test_the_operators_view_of_followed_peers_matches_the_state(data_dir: Path, backends: Backends) -> None:
    """Peers come and go, clusters are deployed and undeployed meanwhile: once idle, the operator
    follows exactly the members of the deployed clusters, and holds each as the state does."""
    backend = backends.start(data_dir)
    peers = [make_peer(f"bench-{n:02d}", devices=1, demo=True) for n in range(12)]
    add_peers(backend, *peers)
    clusters = [add_cluster(backend, f"churn-{n}", peers[2 * n], peers[2 * n + 1]) for n in range(5)]
    stop = threading.Event()

    def churn() -> None:  # every peer, in a cluster or not, goes away and comes back, over and over
        n = 0
        while not stop.is_set():
            backend.demo_peers.set_online(peers[n % len(peers)].id, n % 3 != 0)
            n += 1
            time.sleep(0.001)

    churner = threading.Thread(target=churn, name="test-churn", daemon=True)
    churner.start()
    try:
        for cluster in clusters:
            actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)
            time.sleep(0.02)
        for cluster in clusters[:2]:
            actions.delete_cluster_deployment(backend.manager, cluster.id, ACTOR)
        time.sleep(0.2)
    finally:
        stop.set()
        churner.join(10)
    for peer in peers:
        backend.demo_peers.set_online(peer.id, True)
    wait_online(backend, *peers)
    def healthy(cluster_id: UUID) -> Callable[[], bool]:
        return lambda: status(backend, cluster_id) == Deployed(health="healthy")

    for cluster in clusters[2:]:
        wait_for(healthy(cluster.id), what=f"{cluster.name} healthy")
    for cluster in clusters[:2]:
        wait_status(backend, cluster.id, Undeployed)
    assert backend.wait_idle()

    operator = backend.operator
    members = [backend.manager.read(functools.partial(State.cluster_members, cluster=c)) for c in clusters[2:]]
    expected = set().union(*members)
    assert operator._covered_peers == expected
    world = operator._world
    assert set(world.peers) == expected
    for peer_id in expected:
        assert world.peers[peer_id] == backend.manager.get(ResourceKind.PEER, peer_id)
        assert (peer_id in world.online) == is_online(backend, peer_id)


def test_a_failed_cluster_stays_failed_when_a_member_goes_offline(data_dir: Path, backends: Backends) -> None:
    faults = DemoFaults(failures=[ParameterFailure("bench-eth", ParameterKind.GRE_INTERFACE, "no route")])
    backend = backends.start(data_dir, demo_faults=faults)
    lead, can, eth = three_demo_peers()
    others = (make_peer("bench-marker-1", demo=True), make_peer("bench-marker-2", demo=True))
    add_peers(backend, lead, can, eth, *others)
    cluster = add_cluster(backend, "failed-cluster", lead, can, eth)
    marker = add_cluster(backend, "marker-cluster", *others)
    actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)
    failed = wait_status(backend, cluster.id, Failed)
    assert backend.wait_idle()  # every event handled, nothing left to do
    assert backend.operator.running(cluster.id) is None

    recorder = Recorder(backend, [ResourceKind.CLUSTER_STATE])
    backend.demo_peers.set_online(can.id, False)
    wait_online(backend, can, online=False)
    backend.demo_peers.set_online(can.id, True)
    wait_online(backend, can)
    # The operator handles events in order: once it has reacted to this later deployment, it has
    # handled the member's offline and online events too.
    actions.store_cluster_deployment(backend.manager, marker.id, ACTOR)
    wait_status(backend, marker.id, Deployed)
    recorder.close()
    assert status(backend, cluster.id) == failed
    assert recorder.states(cluster.id) == []  # neither "degraded" nor silently retried
    assert backend.operator.running(cluster.id) is None


def test_undeploy_survives_deleting_the_descriptor(data_dir: Path, backends: Backends) -> None:
    """Deleting the descriptor right after the deployment still undeploys the peers."""
    backend = backends.start(data_dir)
    lead, can, eth = three_demo_peers()
    add_peers(backend, lead, can, eth)
    cluster = add_cluster(backend, "short-lived", lead, can, eth)
    actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)
    wait_status(backend, cluster.id, Deployed)
    actions.delete_cluster_deployment(backend.manager, cluster.id, ACTOR)
    actions.delete_cluster_descriptor(backend.manager, cluster.id, ACTOR)
    for peer in (lead, can, eth):
        def cleared(peer_id: UUID = peer.id) -> bool:
            return backend.manager.get(ResourceKind.PEER_CONFIGURATION, peer_id) is None

        wait_for(cleared, what=f"{peer.name} cleared")
    assert backend.wait_idle()  # every event handled, nothing left to do
    assert backend.operator.running(cluster.id) is None
    assert backend.manager.get(ResourceKind.CLUSTER_STATE, cluster.id) is None  # not resurrected


def test_undeploy_with_a_member_offline(data_dir: Path, backends: Backends) -> None:
    backend = backends.start(data_dir)
    lead, can, eth = three_demo_peers()
    add_peers(backend, lead, can, eth)
    cluster = add_cluster(backend, "half-gone", lead, can, eth)
    actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)
    wait_status(backend, cluster.id, Deployed)
    backend.demo_peers.set_online(can.id, False)  # a bench that is off forgets its configuration
    degraded = Deployed(health="degraded", reason=f"peer '{can.name}' offline", peers=(can.id,))
    wait_for(lambda: status(backend, cluster.id) == degraded, what="degraded")
    actions.delete_cluster_deployment(backend.manager, cluster.id, ACTOR)
    wait_status(backend, cluster.id, Undeployed)
    for peer in (lead, can, eth):
        assert backend.manager.get(ResourceKind.PEER_CONFIGURATION, peer.id) is None


def _resync_everyone(backend: Backend) -> None:
    """What a failed commit does: every subscriber is told to start from a fresh snapshot."""
    manager = backend.manager
    with manager._publish_lock:
        for subscription in list(manager._subscribers):
            subscription._offer(Resync(reason="test: events were lost"))


def test_demo_peers_say_again_what_a_failed_commit_dropped(
    data_dir: Path, backends: Backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = backends.start(data_dir)
    peer = make_peer("bench-dropped", demo=True)
    add_peers(backend, peer)
    original = actions.set_peer_connection_state
    dropped: list[bool] = []

    def failing_once(*args: Any) -> Any:
        if not dropped:
            dropped.append(True)
            raise StorageFailed("the change could not be saved: disk I/O error (test)")
        return original(*args)

    monkeypatch.setattr(actions, "set_peer_connection_state", failing_once)  # the demo broker's write
    backend.demo_peers.set_online(peer.id, False)  # this write is lost with its commit group
    assert dropped and is_online(backend, peer.id)
    _resync_everyone(backend)  # as the manager does after a failed commit
    wait_online(backend, peer, online=False)


def test_resync_reconciles_idempotently(data_dir: Path, backends: Backends) -> None:
    faults = DemoFaults(failures=[ParameterFailure("bench-x-eth", ParameterKind.INTERFACE_JOIN, "bridge busy")])
    backend = backends.start(data_dir, demo_faults=faults, demo_delay_scale=0.02)
    lead, can, eth = three_demo_peers()
    failing = (make_peer("bench-x-lead", demo=True), make_peer("bench-x-eth", demo=True))
    steady = (make_peer("bench-y-lead", demo=True), make_peer("bench-y-eth", demo=True))
    markers = (make_peer("bench-z-lead", demo=True), make_peer("bench-z-eth", demo=True))
    add_peers(backend, lead, can, eth, *failing, *steady, *markers)
    moving = add_cluster(backend, "moving-cluster", lead, can, eth)
    broken = add_cluster(backend, "broken-cluster", *failing)
    settled = add_cluster(backend, "settled-cluster", *steady)
    marker = add_cluster(backend, "marker-cluster", *markers)
    actions.store_cluster_deployment(backend.manager, broken.id, ACTOR)
    actions.store_cluster_deployment(backend.manager, settled.id, ACTOR)
    failed = wait_status(backend, broken.id, Failed)
    wait_status(backend, settled.id, Deployed)
    assert backend.wait_idle()
    assert backend.operator.running(settled.id) is None and backend.operator.running(broken.id) is None

    recorder = Recorder(backend, [ResourceKind.CLUSTER_STATE])
    actions.store_cluster_deployment(backend.manager, moving.id, ACTOR)
    wait_status(backend, moving.id, Deploying)
    _resync_everyone(backend)  # mid-deployment
    wait_status(backend, moving.id, Deployed)
    actions.store_cluster_deployment(backend.manager, marker.id, ACTOR)  # handled after the resync
    wait_status(backend, marker.id, Deployed)
    recorder.close()
    assert status(backend, broken.id) == failed  # not retried behind the user's back
    assert status(backend, settled.id) == Deployed()
    assert not any(e.id in (broken.id, settled.id) for e in recorder.snapshot())  # untouched
    assert_progress_monotonic(recorder.states(moving.id))
    for peer in (lead, can, eth):
        report = backend.manager.get(ResourceKind.PEER_CONFIGURATION_STATE, peer.id)
        assert isinstance(report, PeerConfigurationState)
        assert all(isinstance(r.state, ParameterPresent) for r in report.parameters)


class _FailingAppends:
    """Wraps the store's append: fails every commit while ``failing`` is set."""

    def __init__(self, backend: Backend) -> None:
        self.original = backend.store.append
        self.failing = False
        self.failures = 0
        backend.store.append = self  # type: ignore[method-assign]

    def __call__(self, events: Any, reserve_up_to: int | None = None) -> None:
        if self.failing:
            self.failures += 1
            raise sqlite3.OperationalError("disk I/O error (test)")
        self.original(events, reserve_up_to=reserve_up_to)


def test_failed_commits_mid_deployment_do_not_strand_it(data_dir: Path, backends: Backends) -> None:
    """Every group that fails to commit fails all its writes, the deployment's own included, and
    every subscriber resyncs: the deployment must still finish."""
    backend = backends.start(data_dir, demo_delay_scale=0.05)
    lead, can, eth = three_demo_peers()
    extra = make_peer("bench-extra")
    add_peers(backend, lead, can, eth, extra)
    cluster = add_cluster(backend, "resilient-cluster", lead, can, eth)
    appends = _FailingAppends(backend)
    recorder = Recorder(backend, [ResourceKind.CLUSTER_STATE])
    actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)
    wait_status(backend, cluster.id, Deploying)

    # For a while, a persisted write rides in (nearly) every group, and every such group fails.
    appends.failing = True
    refused = 0
    for i in range(200):
        try:
            actions.store_peer_descriptor(backend.manager, extra, ACTOR)
        except StorageFailed:
            refused += 1
        if i == 100:  # a bench reboots meanwhile
            backend.demo_peers.set_online(eth.id, False)
            backend.demo_peers.set_online(eth.id, True)
    appends.failing = False
    assert refused > 0 and appends.failures > 0

    wait_status(backend, cluster.id, Deployed)
    assert backend.wait_idle()  # every event handled, nothing left to do
    assert backend.operator.running(cluster.id) is None
    recorder.close()
    assert recorder.resyncs > 0
    wait_online(backend, eth)  # what the demo broker knows is what everyone sees again
    for peer in (lead, can, eth):
        report = backend.manager.get(ResourceKind.PEER_CONFIGURATION_STATE, peer.id)
        assert isinstance(report, PeerConfigurationState)
        assert all(isinstance(r.state, ParameterPresent) for r in report.parameters)


# -- the demo fleet and shutdown --------------------------------------------------------------
def test_seed_demo(data_dir: Path, backends: Backends) -> None:
    backend = backends.start(data_dir)
    created = seed_demo(backend.manager)
    assert created == len(FLEET) + len(CLUSTERS)
    peers = [p for p in backend.manager.resources_of(ResourceKind.PEER) if isinstance(p, PeerDescriptor)]
    clusters = backend.manager.resources_of(ResourceKind.CLUSTER)
    assert 5 <= len(peers) <= 8 and len(clusters) == 3
    assert all(p.demo and p.name.startswith("demo-") for p in peers)
    assert any(any(i.is_can for i in p.interfaces) for p in peers)
    assert all(any(not i.is_can for i in p.interfaces) for p in peers)
    assert seed_demo(backend.manager) == 0  # idempotent
    wait_online(backend, *peers)

    # Something to deploy: a demo cluster deploys.
    cluster = next(c for c in clusters if isinstance(c, ClusterDescriptor) and c.name == "demo-adas-loop")
    actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)
    wait_status(backend, cluster.id, Deployed)

    backends.close(backend)
    backend = backends.start(data_dir)
    assert seed_demo(backend.manager) == 0  # still nothing to do after a restart
    assert len(backend.manager.resources_of(ResourceKind.PEER)) == len(peers)


def test_operators_stop_cleanly_on_shutdown(data_dir: Path, backends: Backends) -> None:
    before = lea_threads()
    backend = backends.start(data_dir, demo_delay_scale=1.0)  # slow: actions are running at close
    lead, can, eth = three_demo_peers()
    add_peers(backend, lead, can, eth)
    cluster = add_cluster(backend, "closing-cluster", lead, can, eth)
    subscriber = backend.manager.subscribe()
    actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)
    wait_status(backend, cluster.id, Deploying)
    assert backend.operator.running(cluster.id) is not None

    backends.close(backend)
    assert lea_threads() - before == set()
    # Everything delivered so far can be drained; then the subscription is closed: no more events.
    last = 0
    while (item := subscriber.get(timeout=0)) is not None:
        if isinstance(item, EventBatch):
            last = item.events[-1].revision
    assert subscriber.closed
    assert last <= backend.manager.revision
    assert subscriber.get(timeout=0) is None


def test_seed_demo_does_not_bring_back_what_the_user_deleted(tmp_path: Path) -> None:
    with Backend(tmp_path, durability="off", demo_delay_scale=0) as backend:
        backend.start()
        seed_demo(backend.manager)
        cluster = backend.manager.read(lambda state: state.id_by_name(ResourceKind.CLUSTER, "demo-telematics"))
        assert cluster is not None
        actions.delete_cluster_descriptor(backend.manager, cluster, "alice")
        assert seed_demo(backend.manager) == 0
        assert backend.manager.get(ResourceKind.CLUSTER, cluster) is None
