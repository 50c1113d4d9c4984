"""The deploy_cluster and undeploy_cluster actions.

Each runs on its own thread with its own subscription (as in the seed): it sends every member its
PeerConfiguration through the peer's broker and turns the peers' reports into ClusterState
progress, published as reports arrive (reports that queued up while the action was busy are
taken together, so a backlog costs one progress event, not one each). Progress is monotonic;
offline members make a deployment wait; an Error report fails it, and so does a member with work
left that reported nothing for ``deploy_timeout`` seconds (judged per peer, and only after every
queued report was taken), naming the peer, the parameter and why. While storage refuses writes
(a full disk) the peers' reports cannot be stored, so no peer is judged silent meanwhile, and the
action's own writes are retried with a growing pause until they succeed or it is cancelled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar
from uuid import UUID

from backend import actions
from backend.deployment.parameters import cluster_members, compute_configurations, dependency_order
from backend.manager import Delete, ResourcesManager
from backend.peers.broker import Brokers
from backend.state import State
from backend.subscription import Subscription
from resources.cluster import ClusterDescriptor
from resources.configuration import (
    Parameter,
    ParameterError,
    ParameterPresent,
    PeerConfiguration,
    PeerConfigurationState,
    Target,
)
from resources.errors import LeaError, MissingReference, StorageFailed
from resources.events import Event, EventType
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.state import (
    ClusterStatus,
    Deployed,
    Deploying,
    Failed,
    Online,
    PeerConnectionState,
    Progress,
    Undeployed,
    Undeploying,
    Waiting,
)
from resources.wire import EventBatch, Resync

log = logging.getLogger(__name__)
ACTOR = "cluster-deployment-operator"
POLL = 0.05
#: After this many seconds of refused commits an action's write is logged as a warning (it keeps retrying).
COMMIT_RETRY_FOR = 10.0
#: The longest pause between two attempts of a refused write.
COMMIT_RETRY_MAX_PAUSE = 2.0
T = TypeVar("T")


class UndeployRegistry:
    """Which peers are still being undeployed from which cluster (a new deployment waits)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy: dict[UUID, tuple[str, frozenset[UUID]]] = {}

    def hold(self, cluster: ClusterDescriptor, peers: set[UUID]) -> None:
        with self._lock:
            self._busy[cluster.id] = (cluster.name, frozenset(peers))

    def release(self, cluster_id: UUID) -> None:
        with self._lock:
            self._busy.pop(cluster_id, None)

    def busy(self, peers: set[UUID], except_cluster: UUID) -> dict[UUID, str]:
        """Peer -> name of the other cluster it is still undeploying from."""
        with self._lock:
            return {
                peer: name
                for cid, (name, held) in self._busy.items()
                if cid != except_cluster
                for peer in held & peers
            }


@dataclass
class _View:
    """What the action knows of the world, kept current from its subscription."""

    cluster: ClusterDescriptor
    peers: dict[UUID, PeerDescriptor]
    addresses: dict[UUID, str] = field(default_factory=dict)
    _members: list[UUID] | None = field(default=None, init=False, repr=False)

    def members(self) -> list[UUID]:
        """The cluster's member peers (leader first); recomputed only when a peer changed."""
        if self._members is None:
            owner = {d.id: p.id for p in self.peers.values() for d in p.devices}
            self._members = [m for m in cluster_members(self.cluster, owner) if m in self.peers]
        return self._members

    def peer_changed(self, peer: UUID, descriptor: PeerDescriptor | None) -> None:
        if descriptor is None:
            self.peers.pop(peer, None)
        else:
            self.peers[peer] = descriptor
        self._members = None


class ClusterAction(threading.Thread):
    """Common loop of deploy_cluster and undeploy_cluster; one instance per request."""

    target: Target

    def __init__(
        self,
        manager: ResourcesManager,
        brokers: Brokers,
        cluster: ClusterDescriptor,
        registry: UndeployRegistry,
        timeout: float,
        on_done: Callable[[ClusterAction], None] = lambda action: None,
    ) -> None:
        super().__init__(name=f"lea-{type(self).__name__}-{cluster.name}", daemon=True)
        self.manager = manager
        self.brokers = brokers
        self.cluster = cluster
        self.registry = registry
        self.timeout = timeout
        self._on_done = on_done
        self._cancelled = threading.Event()
        self._last_status: ClusterStatus | None = None
        self.outcome: ClusterStatus | None = None

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def run(self) -> None:
        subscription = self.manager.subscribe(
            kinds=[ResourceKind.PEER, ResourceKind.PEER_CONNECTION_STATE, ResourceKind.PEER_CONFIGURATION_STATE]
        )
        try:
            self._run(self._fetch_view(), subscription)
        except LeaError as exc:  # backend closing, ...
            log.info("%s stopped: %s", self.name, exc)
        except Exception:  # a bug must not kill the operator
            log.exception("%s failed unexpectedly", self.name)
        finally:
            subscription.close()
            self._release()
            self._on_done(self)

    def _release(self) -> None:
        """Give back what the action held (called once the thread ends)."""

    def _fetch_view(self) -> _View:
        snapshot = self.manager.fetch_snapshot(
            kinds=[ResourceKind.PEER, ResourceKind.CLUSTER, ResourceKind.PEER_CONNECTION_STATE]
        )
        peers = {r.id: r for r in snapshot.resources if isinstance(r, PeerDescriptor)}
        cluster = next(
            (r for r in snapshot.resources if isinstance(r, ClusterDescriptor) and r.id == self.cluster.id),
            self.cluster,  # an undeploy may outlive its (deleted) descriptor
        )
        view = _View(cluster, peers)
        for r in snapshot.resources:
            if isinstance(r, PeerConnectionState) and isinstance(r.state, Online):
                view.addresses[r.id] = r.state.remote_host
        return view

    def configurations(self, view: _View, members: list[UUID]) -> dict[UUID, PeerConfiguration]:
        configurations = compute_configurations(view.cluster, view.peers, view.addresses, self.target)
        return {m: configurations[m] for m in members}

    def committed(self, write: Callable[[], T]) -> T:
        """Run one of the action's writes, retrying it for as long as storage refuses it.

        A failed commit fails every write of its group, however innocent, and a full disk fails
        every commit until it is freed. The action must not die of it: the operator reconciles only
        on a Resync (which a failure of volatile writes does not cause) and would not restart it.
        The pause doubles up to COMMIT_RETRY_MAX_PAUSE; cancelling ends the wait at once.
        """
        started = time.monotonic()
        pause = 0.01
        said = 0  # 1: the first refusal was logged; 2: the long one too
        while True:
            try:
                return write()
            except StorageFailed as exc:
                if self.cancelled:
                    raise
                refused_for = time.monotonic() - started
                if said == 0:
                    said = 1
                    log.info("%s: a write failed (%s); retrying", self.name, exc)
                elif said == 1 and refused_for > COMMIT_RETRY_FOR:
                    said = 2
                    log.warning("%s: writes refused for %.0f s (%s); still retrying", self.name, refused_for, exc)
                if self._cancelled.wait(pause):
                    raise
                pause = min(pause * 2, COMMIT_RETRY_MAX_PAUSE)

    def publish(self, status: ClusterStatus) -> None:
        if status == self._last_status or self.cancelled:
            return
        self._last_status = status
        try:
            self.committed(lambda: actions.set_cluster_state(self.manager, self.cluster.id, status, ACTOR))
        except MissingReference:
            # The descriptor was deleted after its deployment: there is no state to show any
            # more, but the peers must still be undeployed.
            log.debug("%s: cluster %s is gone; state %s not shown", self.name, self.cluster.name, status.status)

    def send(self, view: _View, configurations: dict[UUID, PeerConfiguration], progress: _Progress) -> dict[UUID, int]:
        """Store each member's desired configuration and hand it to the member's broker.

        Returns the revision of each stored configuration: only reports after it answer it.
        """
        sent: dict[UUID, int] = {}
        for member, configuration in configurations.items():
            if self.cancelled:
                break
            result = self.committed(partial(actions.set_peer_configuration, self.manager, configuration, ACTOR))
            sent[member] = result.revision
            progress.restart(member, configuration)
            broker = self.brokers.for_peer(view.peers[member])
            if broker is not None:
                broker.configure(member, configuration)
        return sent

    def overdue(self, view: _View, progress: _Progress, what: str) -> Failed | None:
        if self.manager.storage_failing:
            return None  # the peers' reports cannot be stored now: that is no silence of theirs
        late = progress.overdue(self.timeout, time.monotonic(), since=self.manager.storage_recovered_at)
        if late is None:
            return None
        peer, parameter = late
        return Failed(
            peer=peer, parameter=parameter.id,
            reason=f"{what}peer '{_peer_name(view, peer)}' reported no progress on {parameter.kind.value} "
            f"within {self.timeout:g} s",
        )

    def rejected(self, view: _View, progress: _Progress, peer: UUID, error: tuple[UUID, str], what: str) -> Failed:
        """Failed, for a parameter a peer reported as Error."""
        parameter, reason = error
        return Failed(
            peer=peer, parameter=parameter,
            reason=f"{what}peer '{_peer_name(view, peer)}': {_param_kind(progress, peer, parameter)} failed: {reason}",
        )

    def finish(self, outcome: ClusterStatus) -> None:
        self.outcome = outcome
        self.publish(outcome)

    def _run(self, view: _View, subscription: Subscription) -> None:
        raise NotImplementedError


class _Progress:
    """Which parameters each peer reported done, against the configuration last sent to it.

    ``done`` per peer as shown is monotonic (a peer that starts over after a reboot does not make
    the bar go back); ``finished`` and the timeouts use what the peers actually reported.
    """

    def __init__(self, configurations: dict[UUID, PeerConfiguration], target: Target) -> None:
        self.configurations = dict(configurations)
        self.target = target
        self.shown: dict[UUID, int] = dict.fromkeys(configurations, 0)
        self.done_ids: dict[UUID, set[UUID]] = {p: set() for p in configurations}
        self.heard: dict[UUID, float] = dict.fromkeys(configurations, time.monotonic())
        self.changes = 0  # bumped whenever what is shown may have changed

    @property
    def total(self) -> int:
        return sum(len(c.parameters) for c in self.configurations.values())

    def restart(self, peer: UUID, configuration: PeerConfiguration) -> None:
        """A configuration was (re)sent: only reports about it count from now on."""
        self.configurations[peer] = configuration
        self.done_ids[peer] = set()
        self.heard[peer] = time.monotonic()
        self.changes += 1

    def report(self, peer: UUID, state: PeerConfigurationState) -> tuple[UUID, str] | None:
        """Count a report; returns (parameter, reason) of an error, if any."""
        self.heard[peer] = time.monotonic()
        wanted = {p.id for p in self.configurations[peer].parameters}
        done: set[UUID] = set()
        for item in state.parameters:
            if item.id not in wanted:
                continue
            if isinstance(item.state, ParameterError):
                return item.id, item.state.reason
            if isinstance(item.state, ParameterPresent) == (self.target == Target.PRESENT):
                done.add(item.id)
        self.done_ids[peer] = done
        self.shown[peer] = max(self.shown[peer], len(done))
        self.changes += 1
        return None

    def complete(self, peer: UUID) -> None:
        self.done_ids[peer] = {p.id for p in self.configurations[peer].parameters}
        self.shown[peer] = len(self.configurations[peer].parameters)
        self.changes += 1

    def pending(self, peer: UUID) -> list[Parameter]:
        """The peer's parameters not reported done, dependencies first."""
        done = self.done_ids[peer]
        return [p for p in dependency_order(self.configurations[peer].parameters) if p.id not in done]

    def peer_finished(self, peer: UUID) -> bool:
        return len(self.done_ids[peer]) == len(self.configurations[peer].parameters)  # done_ids: only wanted ids

    @property
    def finished(self) -> bool:
        return all(self.peer_finished(p) for p in self.configurations)

    def overdue(self, timeout: float, now: float, since: float = 0.0) -> tuple[UUID, Parameter] | None:
        """The first peer with work left that has said nothing for ``timeout`` (counted from
        ``since`` at the earliest), and what it owes."""
        for peer in self.configurations:
            if now - max(self.heard[peer], since) > timeout and not self.peer_finished(peer):
                return peer, self.pending(peer)[0]
        return None

    def per_peer(self) -> dict[UUID, Progress]:
        return {p: Progress(done=self.shown[p], total=len(c.parameters)) for p, c in self.configurations.items()}

    @property
    def done(self) -> int:
        return sum(self.shown.values())


def _peer_name(view: _View, peer: UUID) -> str:
    p = view.peers.get(peer)
    return p.name if p is not None else str(peer)


class DeployCluster(ClusterAction):
    """deploy_cluster: Waiting while members are offline or busy, Deploying with progress, Deployed."""

    target = Target.PRESENT

    def _run(self, view: _View, subscription: Subscription) -> None:
        progress: _Progress | None = None
        sent: dict[UUID, int] = {}
        shown_changes = -1
        while not self.cancelled:
            members = view.members()
            offline = [m for m in members if m not in view.addresses]
            busy = self.registry.busy(set(members), self.cluster.id)
            if offline or busy:
                self.publish(self._waiting(view, offline, busy))
                sent = {}  # a member that was away forgot its configuration: send everything again
            else:
                if not sent:
                    configurations = self.configurations(view, members)
                    if progress is None or progress.configurations.keys() != configurations.keys():
                        progress = _Progress(configurations, self.target)
                        shown_changes = -1
                    sent = self.send(view, configurations, progress)
                    if self.cancelled:
                        return
                assert progress is not None
                if progress.changes != shown_changes:  # building the state costs: only when it moved
                    shown_changes = progress.changes
                    self.publish(Deploying(done=progress.done, total=progress.total, peers=progress.per_peer()))
                if progress.finished:
                    self.finish(Deployed())
                    return
                failed = self.overdue(view, progress, "")
                if failed is not None:
                    self.finish(failed)
                    return
            taken = _take(subscription)
            if taken.closed:
                return
            if taken.resync:  # events were lost: start from a fresh view
                view = self._fetch_view()
                sent = {}
            for event in taken.events:
                if not (_apply_event(view, event) and progress is not None and event.id in sent):
                    continue
                if event.revision <= sent[event.id]:
                    continue  # a report about an earlier configuration
                assert isinstance(event.resource, PeerConfigurationState)
                error = progress.report(event.id, event.resource)
                if error is not None:
                    self.finish(self.rejected(view, progress, event.id, error, ""))
                    return

    def _waiting(self, view: _View, offline: list[UUID], busy: dict[UUID, str]) -> Waiting:
        parts = []
        if offline:
            parts.append(f"peer {', '.join(repr(_peer_name(view, p)) for p in offline)} offline")
        for peer, cluster_name in sorted(busy.items(), key=lambda kv: str(kv[0])):
            parts.append(f"peer '{_peer_name(view, peer)}' still undeploying from cluster '{cluster_name}'")
        return Waiting(reason="; ".join(parts), peers=tuple([*offline, *sorted(busy, key=str)]))


class UndeployCluster(ClusterAction):
    """undeploy_cluster: the same parameters with target Absent; Undeploying, then Undeployed.

    Its members count as undeploying (a new deployment on them waits) from ``start()``, i.e.
    before the operator handles its next event, until the thread ends.
    """

    target = Target.ABSENT

    def start(self) -> None:
        def members(state: State) -> set[UUID]:
            return state.cluster_members(self.cluster)

        held = self.manager.read(members)
        assert isinstance(held, set)
        self.registry.hold(self.cluster, held)
        try:
            super().start()
        except BaseException:
            self.registry.release(self.cluster.id)
            raise

    def _release(self) -> None:
        self.registry.release(self.cluster.id)

    def _run(self, view: _View, subscription: Subscription) -> None:
        members = view.members()
        self.registry.hold(view.cluster, set(members))
        progress = _Progress(self.configurations(view, members), self.target)
        sent: dict[UUID, int] = {}

        def send_pending() -> None:
            """Send Absent to the online members not done yet; offline ones are done: a bench
            that drops out forgets its configuration."""
            configurations = self.configurations(view, members)
            for m in members:
                if m not in view.addresses:
                    progress.complete(m)
            online = {m: c for m, c in configurations.items() if m in view.addresses and progress.pending(m)}
            sent.update(self.send(view, online, progress))

        send_pending()
        shown_changes = -1
        while not self.cancelled:
            if progress.changes != shown_changes:
                shown_changes = progress.changes
                self.publish(Undeploying(done=progress.done, total=progress.total))
            if progress.finished:
                self._clear(members)
                self.finish(Undeployed())
                return
            failed = self.overdue(view, progress, "undeploy: ")
            if failed is not None:
                self.finish(failed)
                return
            taken = _take(subscription)
            if taken.closed:
                return
            if taken.resync:  # events were lost: a fresh view, ask the pending again
                view = self._fetch_view()
                send_pending()
            for event in taken.events:
                if event.kind == ResourceKind.PEER_CONNECTION_STATE and event.id in progress.configurations:
                    _apply_event(view, event)
                    if event.id not in view.addresses:
                        progress.complete(event.id)
                elif _apply_event(view, event) and event.id in sent and event.revision > sent[event.id]:
                    assert isinstance(event.resource, PeerConfigurationState)
                    error = progress.report(event.id, event.resource)
                    if error is not None:
                        self.finish(self.rejected(view, progress, event.id, error, "undeploy: "))
                        return

    def _clear(self, members: list[UUID]) -> None:
        """The peers are free again: drop their desired configuration and reports."""
        changes = [
            Delete(kind, m, missing_ok=True)
            for m in members
            for kind in (ResourceKind.PEER_CONFIGURATION, ResourceKind.PEER_CONFIGURATION_STATE)
        ]
        if not self.cancelled:
            self.committed(lambda: self.manager.write(changes, ACTOR))


def _param_kind(progress: _Progress, peer: UUID, param: UUID) -> str:
    for p in progress.configurations[peer].parameters:
        if p.id == param:
            return p.kind.value
    return "parameter"


def _apply_event(view: _View, event: Event) -> bool:
    if event.kind == ResourceKind.PEER:
        view.peer_changed(event.id, event.resource if isinstance(event.resource, PeerDescriptor) else None)
        return False
    if event.kind == ResourceKind.PEER_CONNECTION_STATE:
        state = getattr(event.resource, "state", None)
        if isinstance(state, Online):
            view.addresses[event.id] = state.remote_host
        else:
            view.addresses.pop(event.id, None)
        return False
    return event.kind == ResourceKind.PEER_CONFIGURATION_STATE and event.type != EventType.DELETED


@dataclass
class _Taken:
    events: list[Event] = field(default_factory=list)
    resync: bool = False
    closed: bool = False


def _take(subscription: Subscription) -> _Taken:
    """Everything delivered so far: waits up to POLL for the first delivery, then takes all that
    is queued, so that progress and timeouts are judged on every report that has arrived (a
    backlog must not look like a silent peer) and a backlog costs one publish, not one each."""
    taken = _Taken()
    try:
        item = subscription.get(timeout=POLL)
    except TimeoutError:
        return taken
    while item is not None:
        if isinstance(item, Resync):
            taken.resync = True
            taken.events.clear()  # the fresh view covers them; keep only what comes after
        elif isinstance(item, EventBatch):
            taken.events.extend(item.events)
        item = subscription.get_nowait()
    taken.closed = subscription.closed
    return taken
