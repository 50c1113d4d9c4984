"""ClusterDeploymentOperator: turns ClusterDeployment events into deploy/undeploy actions.

- ClusterDeployment created or stored again -> deploy_cluster (a Failed cluster is retried);
  deleted -> undeploy_cluster (even when the descriptor is deleted right after: the operator
  keeps the descriptors it saw, in event order).
- At start-up and after a resync: reconcile every persisted deployment (volatile state is gone);
  a Failed cluster stays Failed until its deployment is stored again.
- A member peer coming online -> roll its deployed cluster out again; going offline while the
  cluster is Deployed -> Deployed{health: degraded}, naming every offline member (a second one
  going offline renames them). A Failed cluster is left as it is.
- At most one action per cluster: a newer request cancels the older one cleanly first.

One thread and one subscription (registered before the manager accepts writes): the operator
keeps a ``World`` from its events, applies the rules above in event order, and runs every action
on the same thread (``ActionRunner``): reports reach only the actions of their peers, and the
thread sleeps until a delivery or the runner's next timer, never polling.

Only the peers that can matter are followed (``_cover``): the members of every deployed cluster
and of every cluster with a running action. A descriptor or connection change of any other peer
is not delivered at all (the subscription's ``accept``, on the writer's thread), so the thread is
not woken for it and takes no GIL from the writer. When a peer starts to matter (a deployment is
created, an action starts, a cluster or a peer changes its members) the operator reads it from
the manager's state as it is then, under the publish lock, where no event can slip between the
read and the new filter; while a peer does not matter the World does not keep it.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from uuid import UUID

from backend.deployment.runner import ActionRunner, ClusterAction
from backend.deployment.view import Report, World
from backend.manager import ResourcesManager
from backend.peers.broker import Brokers
from backend.state import State
from resources.cluster import ClusterDescriptor
from resources.configuration import PeerConfigurationState
from resources.errors import LeaError
from resources.events import Event, EventType
from resources.kinds import ResourceKind
from resources.resource import AnyResource
from resources.state import Deployed, Failed, Undeployed
from resources.wire import EventBatch, Resync

log = logging.getLogger(__name__)

WATCHED = (
    ResourceKind.PEER, ResourceKind.CLUSTER, ResourceKind.CLUSTER_DEPLOYMENT,
    ResourceKind.PEER_CONNECTION_STATE, ResourceKind.PEER_CONFIGURATION_STATE,
)


class ClusterDeploymentOperator:
    def __init__(self, manager: ResourcesManager, brokers: Brokers, deploy_timeout: float) -> None:
        self.manager = manager
        self._world = World()
        self._runner = ActionRunner(manager, brokers, self._world, deploy_timeout)
        self._cond = threading.Condition()
        self._signalled = True  # the Hello, and whatever is delivered before the thread starts
        self._busy = True  # until the thread has reconciled and waits
        self._stopping = False
        self.wakeups = 0  # deliveries that woke the thread (for tests and benchmarks)
        # The peers followed from events, and the clusters whose members are (see _cover); read on
        # the writer's thread by _accepts, so replaced as a whole, only under the publish lock.
        self._covered_peers: frozenset[UUID] = frozenset()
        self._covered_clusters: frozenset[UUID] = frozenset()
        self._covered_watched: frozenset[UUID] | None = None  # runner.watched as of the last _cover
        self._cover_due = True
        self._fresh_at: dict[UUID, int] = {}  # peer -> the revision it was read at by _cover
        # Registered now, before the manager accepts writes: nothing is missed. Reports of peers
        # no action is about are not even delivered.
        self._subscription = manager.subscribe(kinds=WATCHED, accept=self._accepts)
        self._subscription.on_ready = self._wake
        self._thread = threading.Thread(target=self._run, name="lea-cluster-deployment-operator", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop reacting and drop every running action: no write and no thread after this."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._subscription.close()
        if self._thread.is_alive():
            self._thread.join()
        self._runner.stop()

    def running(self, cluster_id: UUID) -> ClusterAction | None:
        """The action running for the cluster, if any."""
        return self._runner.running(cluster_id)

    def undeploying(self) -> dict[UUID, str]:
        """Peer -> the cluster it is still being undeployed from (a deployment on it waits)."""
        return self._runner.undeploying()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every delivery so far is handled and no refused write waits for a retry;
        True when reached. With the revision read first (``Backend.wait_idle``), a barrier."""
        with self._cond:
            return self._cond.wait_for(self._idle, timeout)

    def _idle(self) -> bool:
        # Only read while the thread waits (not busy), so the runner is not changing under us.
        return self._stopping or (not self._busy and not self._signalled and not self._runner.retrying())

    # -- the operator's thread -------------------------------------------------------------
    def _accepts(self, event: Event) -> bool:
        """On the writer's thread, under the publish lock: drop reports no running action needs,
        and descriptor and connection changes of peers that are in no followed cluster."""
        kind = event.kind
        if kind == ResourceKind.PEER_CONFIGURATION_STATE:
            return event.id in self._runner.watched
        if kind == ResourceKind.PEER or kind == ResourceKind.PEER_CONNECTION_STATE:
            # A member of a followed cluster as of this event (it may have just joined one): the
            # published state already holds the event, and the publish lock is held (reentrant).
            return event.id in self._covered_peers or self.manager.read(self._in_covered_cluster(event.id))
        return True

    def _in_covered_cluster(self, peer_id: UUID) -> Callable[[State], bool]:
        return lambda state: not self._covered_clusters.isdisjoint(state.clusters_of_peer(peer_id))

    def _cover(self) -> None:
        """Follow exactly the peers that can matter now; read the newly followed ones as they are.

        Under the publish lock: every event offered before the read is in what is read (its own
        delivery, if any, is skipped by ``_fresh_at``), every event after it meets the new filter.
        """
        for _ in range(4):  # a refresh re-indexes the running actions, which may follow more peers
            watched = self._runner.watched
            if not self._cover_due and watched is self._covered_watched:
                return
            self._cover_due = False
            self._covered_watched = watched
            revision, fresh = self.manager.read(functools.partial(self._cover_in, watched=watched))
            world = self._world
            dropped = [p for p in world.peers.keys() | world.online.keys() if p not in self._covered_peers]
            for peer_id in dropped:
                world.forget(peer_id)
                self._fresh_at.pop(peer_id, None)
            for peer_id, (descriptor, connection) in fresh.items():
                world.refresh(peer_id, descriptor, connection)
                self._fresh_at[peer_id] = revision
            if not fresh and not dropped:
                return
            self._runner.peers_changed()  # members may have changed: re-index, step every action

    def _cover_in(
        self, state: State, watched: frozenset[UUID]
    ) -> tuple[int, dict[UUID, tuple[AnyResource | None, AnyResource | None]]]:
        """(Under the publish lock.) Publish the new filter; the newly followed peers as of now."""
        world = self._world
        clusters = set(world.deployments)
        clusters.update(state.of_kind(ResourceKind.CLUSTER_DEPLOYMENT))
        clusters.update(self._runner.watched_clusters)
        peers = set(watched)
        for cluster_id in clusters:
            peers.update(state.members(cluster_id))
            known = world.clusters.get(cluster_id)
            if known is not None:
                peers.add(known.leader)
        old = self._covered_peers
        fresh = {
            p: (state.get(ResourceKind.PEER, p), state.get(ResourceKind.PEER_CONNECTION_STATE, p))
            for p in peers if p not in old
        }
        self._covered_clusters = frozenset(clusters)
        self._covered_peers = frozenset(peers)
        return self.manager.revision, fresh

    def _wake(self) -> None:
        self.wakeups += 1
        with self._cond:
            self._signalled = True
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            self._reconcile()
            while True:
                self._cover()
                self._runner.run(time.monotonic())
                self._cover()
                if not self._sleep():
                    return
                self._take()
                if self._subscription.closed:
                    return
        except LeaError as exc:
            log.info("cluster deployment operator stopped: %s", exc)
        except Exception:  # a bug here must be visible, not silently stop deployments
            log.exception("cluster deployment operator failed")
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def _sleep(self) -> bool:
        """Wait for a delivery or the runner's next timer; False when stopping."""
        with self._cond:
            self._busy = False
            self._cond.notify_all()
            while not self._signalled and not self._stopping:
                wake = self._runner.next_wake()
                if wake is None:
                    self._cond.wait()
                    continue
                delay = wake - time.monotonic()
                if delay <= 0:
                    break
                self._cond.wait(delay)
            if self._stopping:
                return False
            self._signalled = False
            self._busy = True
            return True

    def _take(self) -> None:
        """Handle everything delivered so far; a Resync makes what came before it moot."""
        items = []
        while (item := self._subscription.get_nowait()) is not None:
            items.append(item)
        resyncs = [i for i, item in enumerate(items) if isinstance(item, Resync)]
        if resyncs:
            items = items[resyncs[-1] + 1:]
            self._reconcile()
        for item in items:
            if isinstance(item, EventBatch):
                for event in item.events:
                    if event.revision > self._world.revision:  # older ones are in the snapshot
                        self._handle(event)
        self._cover()

    def _handle(self, event: Event) -> None:
        if event.kind == ResourceKind.PEER_CONFIGURATION_STATE:
            if isinstance(event.resource, PeerConfigurationState):
                self._runner.report(Report(event.id, event.revision, event.resource))
            return
        kind = event.kind
        if kind == ResourceKind.PEER or kind == ResourceKind.PEER_CONNECTION_STATE:
            if event.revision <= self._fresh_at.get(event.id, 0):
                return  # read by _cover after this event: already in the World
            if event.id not in self._covered_peers:
                self._cover_due = True  # it joined a followed cluster: follow it (read it again)
        if kind == ResourceKind.PEER or kind == ResourceKind.CLUSTER or kind == ResourceKind.CLUSTER_DEPLOYMENT:
            self._cover_due = True
        came_or_went = self._world.apply(event)
        if event.kind == ResourceKind.PEER:
            self._runner.peers_changed()
        elif event.kind == ResourceKind.PEER_CONNECTION_STATE:
            self._runner.peer_changed(event.id)
            if came_or_went:
                self._member_changed(event.id, event.id in self._world.online)
        elif event.kind == ResourceKind.CLUSTER_DEPLOYMENT:
            if event.type == EventType.DELETED:
                # Not _cover first: the cluster is no longer deployed, and its members are kept
                # followed by the undeploy action itself once it has begun.
                self._undeploy(event.id)
            else:
                self._cover()  # its members as they are now, before the action is given them
                self._deploy(event.id)

    def _member_changed(self, peer_id: UUID, online: bool) -> None:
        for cluster in self._world.deployed_clusters_with(peer_id):
            action = self._runner.running(cluster.id)
            if action is not None and action.outcome is None:
                continue  # the running action watches its members itself
            status = self._runner.status(cluster.id)
            if isinstance(status, Failed):
                continue  # failed stays failed until the user stores the deployment again
            if online:
                self._runner.deploy(cluster)
            elif isinstance(status, Deployed):
                degraded = self._degraded(cluster)
                if degraded != status:
                    self._runner.publish(cluster.id, degraded, time.monotonic())

    def _degraded(self, cluster: ClusterDescriptor) -> Deployed:
        """Deployed{degraded}, naming the members that are offline now (leader first)."""
        offline = tuple(m for m in self._world.members(cluster) if m not in self._world.online)
        peers = self._world.peers
        names = ", ".join(repr(peers[m].name) if m in peers else str(m) for m in offline)
        reason = f"{'peer' if len(offline) == 1 else 'peers'} {names} offline" if offline else ""
        return Deployed(health="degraded", reason=reason, peers=offline)

    def _reconcile(self) -> None:
        """Idempotently bring every cluster's action in line with its persisted deployment."""
        snapshot = self.manager.fetch_snapshot(
            kinds=[
                ResourceKind.PEER, ResourceKind.CLUSTER, ResourceKind.CLUSTER_DEPLOYMENT,
                ResourceKind.CLUSTER_STATE, ResourceKind.PEER_CONNECTION_STATE,
            ]
        )
        states = self._world.rebuild(snapshot)
        self._fresh_at.clear()
        self._cover_due = True
        self._runner.known_statuses(states)
        self._runner.resynced()
        self._runner.peers_changed()
        for cluster_id in self._world.deployments:
            running = self._runner.running(cluster_id)
            if running is not None and running.deploying:
                continue
            state = self._runner.status(cluster_id)
            if running is None and (isinstance(state, Failed) or state == Deployed()):
                continue
            self._deploy(cluster_id)
        for cluster_id in states:
            state = self._runner.status(cluster_id)
            running = self._runner.running(cluster_id)
            if cluster_id in self._world.deployments or isinstance(state, Undeployed):
                continue
            if isinstance(state, Failed) and running is None:
                continue
            if running is None or running.deploying:
                self._undeploy(cluster_id)

    def _deploy(self, cluster_id: UUID) -> None:
        cluster = self._cluster(cluster_id)
        if cluster is not None:
            self._runner.deploy(cluster)

    def _undeploy(self, cluster_id: UUID) -> None:
        cluster = self._cluster(cluster_id)
        if cluster is not None:
            self._runner.undeploy(cluster, time.monotonic())

    def _cluster(self, cluster_id: UUID) -> ClusterDescriptor | None:
        """The descriptor as of the event handled, or the one its running action keeps (an
        undeploy may outlive its descriptor)."""
        known = self._world.clusters.get(cluster_id)
        if known is not None:
            return known
        running = self._runner.running(cluster_id)
        return running.cluster if running is not None else None
