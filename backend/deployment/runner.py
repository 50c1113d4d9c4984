"""The runner: every running deploy_cluster and undeploy_cluster action of one operator.

It lives on the operator's thread and owns no thread of its own. The operator hands it the events
(reports go only to the actions whose cluster has that peer) and calls ``run`` after each batch and
at ``next_wake()``; ``run`` steps every action that something happened to, or whose ``wake_at``
has come, and submits the writes each step returned through the actions of ``backend/actions.py``,
in order, one cluster's writes after another's.

A write storage refuses (a full disk fails every commit until it is freed) stays first in its
cluster's outbox and is tried again after a growing pause (``Backoff``); meanwhile that cluster's
action is not stepped (its reports wait for it), the other clusters carry on. At most one action
per cluster: a newer one cancels the older, whose writes not yet made are dropped.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from backend import actions
from backend.deployment.deploy_cluster import deploy_cluster, start_deploy
from backend.deployment.progress import ClusterProgress
from backend.deployment.undeploy_cluster import start_undeploy, undeploy_cluster
from backend.deployment.view import ClusterView, Report, World
from backend.deployment.writes import ClearPeers, Configure, PublishState, Write
from backend.manager import ResourcesManager
from backend.peers.broker import Brokers
from resources.agent import TunnelType
from resources.backoff import Backoff
from resources.cluster import ClusterDescriptor
from resources.configuration import ParameterKind, PeerConfiguration, Target
from resources.errors import LeaError, MissingReference, StorageFailed
from resources.kinds import ResourceKind
from resources.state import ClusterStatus

log = logging.getLogger(__name__)
ACTOR = "cluster-deployment-operator"
#: After this many seconds of refused commits a cluster's write is logged as a warning (it keeps retrying).
COMMIT_RETRY_FOR = 10.0
#: The pauses between two attempts of a refused write: at once, then doubled from the first up to the longest.
COMMIT_RETRY_FIRST_PAUSE = 0.01
COMMIT_RETRY_MAX_PAUSE = 2.0

Step = Callable[[ClusterView, ClusterProgress, Sequence[Report], float], tuple[list[Write], ClusterStatus | None]]


@dataclass(eq=False)
class ClusterAction:
    """One run of deploy_cluster or undeploy_cluster for one cluster."""

    step: Step
    cluster: ClusterDescriptor
    progress: ClusterProgress
    reports: list[Report] = field(default_factory=list)  # arrived since the last step
    due: bool = True  # something happened to it: step it at the next run

    @property
    def deploying(self) -> bool:
        return self.progress.target == Target.PRESENT

    @property
    def outcome(self) -> ClusterStatus | None:
        return self.progress.outcome

    @property
    def name(self) -> str:
        return f"{'deploy' if self.deploying else 'undeploy'}_cluster '{self.cluster.name}'"


@dataclass(eq=False)
class _Outbox:
    """One cluster's writes not yet accepted by storage, in order (None: the operator's own)."""

    writes: deque[tuple[Write, ClusterAction | None]] = field(default_factory=deque)
    backoff: Backoff = field(default_factory=lambda: Backoff(COMMIT_RETRY_FIRST_PAUSE, COMMIT_RETRY_MAX_PAUSE))
    retry_at: float | None = None
    refused_since: float | None = None  # when this episode of refusals began
    warned: bool = False


class ActionRunner:
    def __init__(self, manager: ResourcesManager, brokers: Brokers, world: World, timeout: float) -> None:
        self.manager = manager
        self.brokers = brokers
        self.world = world
        self.timeout = timeout
        self._lock = threading.Lock()  # guards _actions for readers on other threads
        self._actions: dict[UUID, ClusterAction] = {}
        self._outboxes: dict[UUID, _Outbox] = {}
        self._members: dict[UUID, tuple[UUID, ...]] = {}  # cluster -> its running action's members
        self._by_peer: dict[UUID, set[UUID]] = {}  # member -> clusters with a running action
        self._statuses: dict[UUID, ClusterStatus] = {}  # the last status decided for each cluster
        #: Every member of a running action; read on the writer's thread (reports of other peers
        #: are not delivered at all), so replaced as a whole, never changed in place.
        self.watched: frozenset[UUID] = frozenset()
        #: The clusters with a running action (replaced with ``watched``).
        self.watched_clusters: frozenset[UUID] = frozenset()

    # -- reading (any thread) --------------------------------------------------------------
    def running(self, cluster_id: UUID) -> ClusterAction | None:
        with self._lock:
            return self._actions.get(cluster_id)

    def undeploying(self) -> dict[UUID, str]:
        """Peer -> the cluster it is still being undeployed from."""
        with self._lock:
            undeploys = [a for a in self._actions.values() if not a.deploying]
        return {m: a.cluster.name for a in undeploys for m in a.progress.members}

    # -- reading (the operator's thread, or while it waits) ----------------------------------
    def status(self, cluster_id: UUID) -> ClusterStatus | None:
        """The status last decided for the cluster (it may still be on its way to storage)."""
        return self._statuses.get(cluster_id)

    def retrying(self) -> bool:
        """True while a refused write waits for its next attempt."""
        return bool(self._outboxes)

    def next_wake(self) -> float | None:
        """When ``run`` has something to do if no event comes first."""
        times: list[float] = []
        for cluster_id, action in self._actions.items():
            if self._blocked(cluster_id):
                continue
            if action.due:
                return 0.0
            if action.progress.wake_at is not None:
                times.append(action.progress.wake_at)
        times += [o.retry_at for o in self._outboxes.values() if o.retry_at is not None]
        return min(times) if times else None

    # -- what the operator asks for --------------------------------------------------------
    def deploy(self, cluster: ClusterDescriptor) -> ClusterAction:
        return self._begin(ClusterAction(deploy_cluster, cluster, start_deploy()), self.world.members(cluster))

    def undeploy(self, cluster: ClusterDescriptor, now: float) -> ClusterAction:
        progress = start_undeploy(self._view(cluster, self.world.members(cluster)), now)
        return self._begin(ClusterAction(undeploy_cluster, cluster, progress), progress.members)

    def publish(self, cluster_id: UUID, status: ClusterStatus, now: float) -> None:
        """A state of the operator's own (no action decides it), written in turn with the cluster's."""
        self._statuses[cluster_id] = status
        self._outbox(cluster_id).writes.append((PublishState(status), None))
        self._flush(cluster_id, now)

    def known_statuses(self, states: dict[UUID, ClusterStatus]) -> None:
        """After a snapshot: the published states, except where an action decided since."""
        decided = {cid: a.progress.status for cid, a in self._actions.items() if a.progress.status is not None}
        self._statuses = {**states, **decided}

    def peers_changed(self) -> None:
        """Peer descriptors changed: a deployment's members may have too."""
        for cluster_id, action in list(self._actions.items()):
            if action.deploying:
                self._index(cluster_id, self.world.members(action.cluster))
            action.due = True
        self._rewatch()

    def peer_changed(self, peer: UUID) -> None:
        """The peer's connection changed: step the actions it is a member of."""
        for cluster_id in self._by_peer.get(peer, ()):
            self._actions[cluster_id].due = True

    def report(self, report: Report) -> None:
        for cluster_id in self._by_peer.get(report.peer, ()):
            action = self._actions[cluster_id]
            action.reports.append(report)
            action.due = True

    def resynced(self) -> None:
        """Events were lost: every action sends again what it had sent."""
        for action in self._actions.values():
            action.progress.resynced()
            action.reports.clear()
            action.due = True

    def stop(self) -> None:
        with self._lock:
            self._actions.clear()
        self._outboxes.clear()

    # -- running ---------------------------------------------------------------------------
    def run(self, now: float) -> None:
        """Retry the writes whose pause is over, then step every action that is due."""
        for cluster_id, outbox in list(self._outboxes.items()):
            if outbox.retry_at is not None and outbox.retry_at <= now:
                self._flush(cluster_id, now)
        for cluster_id, action in list(self._actions.items()):
            if self._actions.get(cluster_id) is not action or self._blocked(cluster_id):
                continue
            wake_at = action.progress.wake_at
            if not action.due and (wake_at is None or wake_at > now):
                continue
            action.due = False
            reports, action.reports = action.reports, []
            view = self._view(action.cluster, self._members[cluster_id])
            try:
                writes, _ = action.step(view, action.progress, reports, now)
            except Exception:  # a bug must not stop every other deployment
                log.exception("%s failed unexpectedly", action.name)
                self._end(action)
                continue
            self._write(cluster_id, writes, action, now)

    def _write(self, cluster_id: UUID, writes: list[Write], action: ClusterAction, now: float) -> None:
        outbox = self._outbox(cluster_id)
        for write in writes:
            if isinstance(write, PublishState):
                self._statuses[cluster_id] = write.status
            outbox.writes.append((write, action))
        self._flush(cluster_id, now)

    def _flush(self, cluster_id: UUID, now: float) -> None:
        """Make the cluster's pending writes in order, until one is refused."""
        outbox = self._outboxes.get(cluster_id)
        while outbox is not None and outbox.writes:
            write, action = outbox.writes[0]
            if action is not None and self._actions.get(cluster_id) is not action:
                outbox.writes.popleft()  # of a cancelled action
                continue
            try:
                self._perform(cluster_id, write, action)
            except StorageFailed as exc:
                self._refused(outbox, action, exc, now)
                return
            except LeaError as exc:
                if isinstance(exc, MissingReference) and isinstance(write, PublishState):
                    # The descriptor was deleted after its deployment: there is no state to show
                    # any more, but the peers must still be undeployed.
                    log.debug("cluster %s is gone; state %s not shown", cluster_id, write.status.status)
                else:  # the backend is closing, a peer was deleted, ...
                    log.info("%s stopped: %s", action.name if action else f"cluster {cluster_id}", exc)
                    outbox.writes.clear()
                    if action is not None:
                        self._end(action)
                    break
            outbox.writes.popleft()
        self._outboxes.pop(cluster_id, None)  # all written: the next refusal starts a new episode
        current = self._actions.get(cluster_id)
        if current is not None and current.outcome is not None:
            self._end(current)

    def _perform(self, cluster_id: UUID, write: Write, action: ClusterAction | None) -> None:
        if isinstance(write, PublishState):
            actions.set_cluster_state(self.manager, cluster_id, write.status, ACTOR)
        elif isinstance(write, Configure):
            configuration = write.configuration
            result = actions.set_peer_configuration(self.manager, configuration, ACTOR)
            if action is not None:
                action.progress.stored(configuration.id, result.revision)
            peer = self.world.peers.get(configuration.id)
            broker = self.brokers.for_peer(peer) if peer is not None else None
            if broker is not None:
                broker.configure(configuration.id, configuration)
        else:
            assert isinstance(write, ClearPeers)
            actions.clear_peer_configurations(self.manager, write.peers, ACTOR)

    def _refused(self, outbox: _Outbox, action: ClusterAction | None, exc: StorageFailed, now: float) -> None:
        """Storage refused a write: the action must not die of it (the operator reconciles only on
        a Resync, which a failure of volatile writes does not cause); try again after a pause."""
        name = action.name if action is not None else "cluster deployment operator"
        if outbox.refused_since is None:
            outbox.refused_since = now
            log.info("%s: a write failed (%s); retrying", name, exc)
        elif not outbox.warned and now - outbox.refused_since > COMMIT_RETRY_FOR:
            outbox.warned = True
            log.warning("%s: writes refused for %.0f s (%s); still retrying", name, now - outbox.refused_since, exc)
        outbox.retry_at = now + outbox.backoff.next_delay()

    # -- bookkeeping -----------------------------------------------------------------------
    def _begin(self, action: ClusterAction, members: tuple[UUID, ...]) -> ClusterAction:
        cluster_id = action.cluster.id
        previous = self._actions.get(cluster_id)
        if previous is not None:
            self._end(previous)  # cancelled: its writes not yet made are dropped
        outbox = self._outboxes.get(cluster_id)
        if outbox is not None:
            outbox.writes = deque(w for w in outbox.writes if w[1] is None)
            if not outbox.writes:
                del self._outboxes[cluster_id]
        with self._lock:
            self._actions[cluster_id] = action
        self._index(cluster_id, members)
        self._rewatch()
        return action

    def _end(self, action: ClusterAction) -> None:
        cluster_id = action.cluster.id
        if self._actions.get(cluster_id) is not action:
            return
        with self._lock:
            del self._actions[cluster_id]
        freed = self._members.pop(cluster_id, ())
        for peer in freed:
            holders = self._by_peer.get(peer)
            if holders is not None:
                holders.discard(cluster_id)
                if not holders:
                    del self._by_peer[peer]
                for other in holders or ():
                    self._actions[other].due = True  # e.g. a deployment waiting for this undeploy
        self._rewatch()

    def _index(self, cluster_id: UUID, members: tuple[UUID, ...]) -> None:
        for peer in self._members.get(cluster_id, ()):
            holders = self._by_peer.get(peer)
            if holders is not None:
                holders.discard(cluster_id)
                if not holders:
                    del self._by_peer[peer]
        self._members[cluster_id] = members
        for peer in members:
            self._by_peer.setdefault(peer, set()).add(cluster_id)

    def _rewatch(self) -> None:
        self.watched_clusters = frozenset(self._members)
        self.watched = frozenset(self._by_peer)

    def _outbox(self, cluster_id: UUID) -> _Outbox:
        outbox = self._outboxes.get(cluster_id)
        if outbox is None:
            outbox = self._outboxes[cluster_id] = _Outbox()
        return outbox

    def _blocked(self, cluster_id: UUID) -> bool:
        """A write of the cluster waits for a retry: its action is not stepped meanwhile."""
        return cluster_id in self._outboxes

    def _view(self, cluster: ClusterDescriptor, members: tuple[UUID, ...]) -> ClusterView:
        """The cluster as its action's step sees it now: members still undeploying elsewhere too."""
        undeploying = {
            m: self._actions[c].cluster.name
            for m in members
            for c in self._by_peer.get(m, ())
            if c != cluster.id and not self._actions[c].deploying
        }
        return ClusterView(
            cluster=cluster, members=members, peers=self.world.peers, online=self.world.online,
            undeploying=undeploying, timeout=self.timeout,
            storage_failing=self.manager.storage_failing, storage_recovered_at=self.manager.storage_recovered_at,
            vnis_in_use=functools.partial(self._vnis_in_use, cluster.id),
        )

    def _vnis_in_use(self, cluster_id: UUID) -> frozenset[int]:
        """The VNIs of the tunnels the other clusters' stored configurations hold."""
        return frozenset(
            int(p.value["vni"])
            for c in self.manager.resources_of(ResourceKind.PEER_CONFIGURATION)
            if isinstance(c, PeerConfiguration) and c.cluster != cluster_id
            for p in c.parameters
            if p.kind == ParameterKind.GRE_INTERFACE and p.value.get("encapsulation") == TunnelType.VXLAN.value
        )
