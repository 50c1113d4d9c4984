"""ClusterDeploymentOperator: turns ClusterDeployment events into deploy/undeploy actions.

- ClusterDeployment created or stored again -> deploy_cluster (a Failed cluster is retried);
  deleted -> undeploy_cluster (even when the descriptor is deleted right after: the operator
  keeps the descriptors it saw, in event order).
- At start-up and after a resync: reconcile every persisted deployment (volatile state is gone);
  a Failed cluster stays Failed until its deployment is stored again.
- A member peer coming online -> roll its deployed cluster out again; going offline while the
  cluster is Deployed -> Deployed{health: degraded}. A Failed cluster is left as it is.
- At most one action per cluster: a newer request cancels the older one cleanly first.
"""

from __future__ import annotations

import logging
import threading
from uuid import UUID

from backend import actions
from backend.deployment.actions import (
    ACTOR,
    ClusterAction,
    DeployCluster,
    UndeployCluster,
    UndeployRegistry,
)
from backend.manager import ResourcesManager
from backend.peers.broker import Brokers
from backend.state import State
from resources.cluster import ClusterDescriptor
from resources.errors import LeaError
from resources.events import Event, EventType
from resources.kinds import ResourceKind
from resources.state import ClusterState, Deployed, Failed, Online, PeerConnectionState, Undeployed
from resources.wire import EventBatch, Resync

log = logging.getLogger(__name__)

WATCHED = (ResourceKind.CLUSTER, ResourceKind.CLUSTER_DEPLOYMENT, ResourceKind.PEER_CONNECTION_STATE)


class ClusterDeploymentOperator:
    def __init__(self, manager: ResourcesManager, brokers: Brokers, deploy_timeout: float) -> None:
        self.manager = manager
        self.brokers = brokers
        self.deploy_timeout = deploy_timeout
        self.registry = UndeployRegistry()
        # Registered now, before the manager accepts writes: nothing is missed.
        self._subscription = manager.subscribe(kinds=WATCHED)
        self._actions: dict[UUID, ClusterAction] = {}
        self._online: set[UUID] = set()
        # Cluster descriptors as of the event being handled (the published state may be ahead:
        # a deployment's deletion is followed at once by its descriptor's).
        self._clusters: dict[UUID, ClusterDescriptor] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="lea-cluster-deployment-operator", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop reacting, cancel and join every running action: no thread and no event after this."""
        with self._lock:
            self._stopping = True
        self._subscription.close()
        if self._thread.is_alive():
            self._thread.join()
        with self._lock:
            running = list(self._actions.values())
        for action in running:
            action.cancel()
        for action in running:
            action.join()

    def running(self, cluster_id: UUID) -> ClusterAction | None:
        with self._lock:
            action = self._actions.get(cluster_id)
        return action if action is not None and action.is_alive() else None

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Join every running action (tests and benchmarks); True when all finished."""
        with self._lock:
            running = list(self._actions.values())
        for action in running:
            action.join(timeout)
        return not any(a.is_alive() for a in running)

    # -- the operator thread ---------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._reconcile()
            for item in self._subscription:
                if isinstance(item, Resync):
                    self._reconcile()
                elif isinstance(item, EventBatch):
                    for event in item.events:
                        self._handle(event)
        except LeaError as exc:
            log.info("cluster deployment operator stopped: %s", exc)
        except Exception:  # a bug here must be visible, not silently stop deployments
            log.exception("cluster deployment operator failed")

    def _handle(self, event: Event) -> None:
        if event.kind == ResourceKind.CLUSTER:
            if isinstance(event.resource, ClusterDescriptor):
                self._clusters[event.id] = event.resource
            else:
                self._clusters.pop(event.id, None)
        elif event.kind == ResourceKind.CLUSTER_DEPLOYMENT:
            if event.type == EventType.DELETED:
                self._start(event.id, UndeployCluster)
            else:
                self._start(event.id, DeployCluster)
        elif event.kind == ResourceKind.PEER_CONNECTION_STATE:
            online = isinstance(event.resource, PeerConnectionState) and isinstance(event.resource.state, Online)
            was_online = event.id in self._online
            if online:
                self._online.add(event.id)
            else:
                self._online.discard(event.id)
            if online != was_online:
                self._member_changed(event.id, online)

    def _member_changed(self, peer_id: UUID, online: bool) -> None:
        for cluster in self._deployed_clusters_of(peer_id):
            action = self.running(cluster.id)
            if action is not None:
                if action.outcome is None:
                    continue  # the running action watches connection states itself
                action.join()  # it has just decided (it may not have seen this change): judge after it
            current = self.manager.get(ResourceKind.CLUSTER_STATE, cluster.id)
            status = current.state if isinstance(current, ClusterState) else None
            if isinstance(status, Failed):
                continue  # failed stays failed until the user stores the deployment again
            if online:
                self._start(cluster.id, DeployCluster)
            elif isinstance(status, Deployed):
                try:
                    actions.set_cluster_state(self.manager, cluster.id, Deployed(health="degraded"), ACTOR)
                except LeaError as exc:
                    log.info("could not mark cluster %s degraded: %s", cluster.name, exc)

    def _deployed_clusters_of(self, peer_id: UUID) -> list[ClusterDescriptor]:
        def find(state: State) -> list[ClusterDescriptor]:
            return [c for c in state.deployed_clusters() if peer_id in state.cluster_members(c)]

        found = self.manager.read(find)
        assert isinstance(found, list)
        return found

    def _reconcile(self) -> None:
        """Idempotently bring every cluster's action in line with its persisted deployment."""
        snapshot = self.manager.fetch_snapshot(
            kinds=[
                ResourceKind.CLUSTER, ResourceKind.CLUSTER_DEPLOYMENT, ResourceKind.CLUSTER_STATE,
                ResourceKind.PEER_CONNECTION_STATE,
            ]
        )
        # Keep descriptors an action may still need (an undeploy outliving its descriptor).
        self._clusters = {
            **{cid: a.cluster for cid, a in self._running_actions().items()},
            **{r.id: r for r in snapshot.resources if isinstance(r, ClusterDescriptor)},
        }
        deployments = {r.id for r in snapshot.resources if r.kind == ResourceKind.CLUSTER_DEPLOYMENT}
        states = {r.id: r.state for r in snapshot.resources if isinstance(r, ClusterState)}
        self._online = {
            r.id for r in snapshot.resources if isinstance(r, PeerConnectionState) and isinstance(r.state, Online)
        }
        for cluster_id in deployments:
            running = self.running(cluster_id)
            if isinstance(running, DeployCluster):
                continue
            state = states.get(cluster_id)
            if running is None and (
                isinstance(state, Failed) or (isinstance(state, Deployed) and state.health == "healthy")
            ):
                continue
            self._start(cluster_id, DeployCluster)
        for cluster_id, state in states.items():
            if cluster_id in deployments or isinstance(state, Undeployed):
                continue
            if isinstance(state, Failed) and self.running(cluster_id) is None:
                continue
            if not isinstance(self.running(cluster_id), UndeployCluster):
                self._start(cluster_id, UndeployCluster)

    def _start(self, cluster_id: UUID, kind: type[ClusterAction]) -> None:
        with self._lock:
            if self._stopping:
                return
            previous = self._actions.get(cluster_id)
        if previous is not None and previous.is_alive():
            previous.cancel()
            previous.join()
        cluster = self._cluster(cluster_id, previous)
        if cluster is None:
            return
        action = kind(
            self.manager, self.brokers, cluster, self.registry, self.deploy_timeout, on_done=self._finished
        )
        with self._lock:
            if self._stopping:
                return
            self._actions[cluster_id] = action
        action.start()

    def _cluster(self, cluster_id: UUID, previous: ClusterAction | None) -> ClusterDescriptor | None:
        known = self._clusters.get(cluster_id)
        if known is not None:
            return known
        found = self.manager.get(ResourceKind.CLUSTER, cluster_id)
        if isinstance(found, ClusterDescriptor):
            return found
        return previous.cluster if previous is not None else None

    def _running_actions(self) -> dict[UUID, ClusterAction]:
        with self._lock:
            return {cid: a for cid, a in self._actions.items() if a.is_alive()}

    def _finished(self, action: ClusterAction) -> None:
        with self._lock:
            if self._actions.get(action.cluster.id) is action:
                del self._actions[action.cluster.id]
