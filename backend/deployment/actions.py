"""The deploy_cluster and undeploy_cluster actions.

Each runs on its own thread with its own subscription (as in the seed): it sends every member its
PeerConfiguration through the peer's broker and turns the peers' reports into ClusterState
progress, published as each report arrives. Progress is monotonic; offline members make a
deployment wait; an Error report or a timeout fails it, naming the peer, the parameter and why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

from backend import actions
from backend.deployment.parameters import cluster_members, compute_configurations
from backend.manager import Delete, ResourcesManager
from backend.peers.broker import Brokers
from backend.subscription import Subscription
from resources.cluster import ClusterDescriptor
from resources.configuration import (
    ParameterError,
    ParameterPresent,
    PeerConfiguration,
    PeerConfigurationState,
    Target,
)
from resources.errors import LeaError
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
            view = self._fetch_view()
            if view is not None:
                self._run(view, subscription)
        except LeaError as exc:  # backend closing, cluster deleted meanwhile, ...
            log.info("%s stopped: %s", self.name, exc)
        except Exception:  # a bug must not kill the operator
            log.exception("%s failed unexpectedly", self.name)
        finally:
            subscription.close()
            self._on_done(self)

    def _fetch_view(self) -> _View | None:
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

    def members(self, view: _View) -> list[UUID]:
        owner = {d.id: p.id for p in view.peers.values() for d in p.devices}
        return [m for m in cluster_members(view.cluster, owner) if m in view.peers]

    def publish(self, status: ClusterStatus) -> None:
        if status == self._last_status or self.cancelled:
            return
        self._last_status = status
        actions.set_cluster_state(self.manager, self.cluster.id, status, ACTOR)

    def send(self, view: _View, configurations: dict[UUID, PeerConfiguration]) -> dict[UUID, int]:
        """Store each member's desired configuration and hand it to the member's broker."""
        sent: dict[UUID, int] = {}
        for member, configuration in configurations.items():
            result = actions.set_peer_configuration(self.manager, configuration, ACTOR)
            sent[member] = result.revision
            broker = self.brokers.for_peer(view.peers[member])
            if broker is not None:
                broker.configure(member, configuration)
        return sent

    def _run(self, view: _View, subscription: Subscription) -> None:
        raise NotImplementedError


class _Progress:
    """Per-peer done counts against the parameters sent, monotonic for display."""

    def __init__(self, configurations: dict[UUID, PeerConfiguration], target: Target) -> None:
        self.configurations = configurations
        self.target = target
        self.shown: dict[UUID, int] = dict.fromkeys(configurations, 0)
        self.actual: dict[UUID, int] = dict.fromkeys(configurations, 0)

    @property
    def total(self) -> int:
        return sum(len(c.parameters) for c in self.configurations.values())

    def report(self, peer: UUID, state: PeerConfigurationState) -> tuple[UUID, str] | None:
        """Count a report; returns (parameter, reason) of an error, if any."""
        wanted = {p.id for p in self.configurations[peer].parameters}
        done = 0
        for item in state.parameters:
            if item.id not in wanted:
                continue
            if isinstance(item.state, ParameterError):
                return item.id, item.state.reason
            if isinstance(item.state, ParameterPresent) == (self.target == Target.PRESENT):
                done += 1
        self.actual[peer] = done
        self.shown[peer] = max(self.shown[peer], done)
        return None

    def complete(self, peer: UUID) -> None:
        self.actual[peer] = self.shown[peer] = len(self.configurations[peer].parameters)

    @property
    def finished(self) -> bool:
        return all(self.actual[p] == len(c.parameters) for p, c in self.configurations.items())

    def first_pending(self) -> tuple[UUID, UUID] | None:
        for peer, config in self.configurations.items():
            if self.actual[peer] < len(config.parameters):
                return peer, config.parameters[0].id
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
        last_change = time.monotonic()
        while not self.cancelled:
            members = self.members(view)
            offline = [m for m in members if m not in view.addresses]
            busy = self.registry.busy(set(members), self.cluster.id)
            if offline or busy:
                self.publish(self._waiting(view, offline, busy))
                sent = {}  # a member that was away forgot its configuration: send everything again
            else:
                if not sent:
                    configurations = compute_configurations(view.cluster, view.peers, view.addresses, self.target)
                    configurations = {m: configurations[m] for m in members}
                    if progress is None or progress.configurations.keys() != configurations.keys():
                        progress = _Progress(configurations, self.target)
                    else:
                        progress.configurations = configurations
                    sent = self.send(view, configurations)
                    last_change = time.monotonic()
                assert progress is not None
                self.publish(
                    Deploying(done=progress.done, total=progress.total, peers=progress.per_peer())
                )
                if progress.finished:
                    self.outcome = Deployed()
                    self.publish(self.outcome)
                    return
                if time.monotonic() - last_change > self.timeout:
                    pending = progress.first_pending()
                    peer, param = pending if pending else (None, None)
                    self.outcome = Failed(
                        peer=peer, parameter=param,
                        reason=f"peer '{_peer_name(view, peer) if peer else '?'}' reported no progress "
                        f"within {self.timeout:g} s",
                    )
                    self.publish(self.outcome)
                    return
            item = _next(subscription)
            if item is None:
                return
            if isinstance(item, Resync):
                refreshed = self._fetch_view()
                if refreshed is not None:
                    view = refreshed
                sent = {}
                continue
            for event in item:
                if _apply_event(view, event) and progress is not None and event.id in sent:
                    if event.revision <= sent[event.id]:
                        continue  # a report about an earlier configuration
                    assert isinstance(event.resource, PeerConfigurationState)
                    error = progress.report(event.id, event.resource)
                    last_change = time.monotonic()
                    if error is not None:
                        self.outcome = Failed(
                            peer=event.id, parameter=error[0],
                            reason=f"peer '{_peer_name(view, event.id)}': {_param_kind(progress, event.id, error[0])} "
                            f"failed: {error[1]}",
                        )
                        self.publish(self.outcome)
                        return

    def _waiting(self, view: _View, offline: list[UUID], busy: dict[UUID, str]) -> Waiting:
        parts = []
        if offline:
            parts.append(f"peer {', '.join(repr(_peer_name(view, p)) for p in offline)} offline")
        for peer, cluster_name in sorted(busy.items(), key=lambda kv: str(kv[0])):
            parts.append(f"peer '{_peer_name(view, peer)}' still undeploying from cluster '{cluster_name}'")
        return Waiting(reason="; ".join(parts), peers=tuple([*offline, *busy]))


class UndeployCluster(ClusterAction):
    """undeploy_cluster: the same parameters with target Absent; Undeploying, then Undeployed."""

    target = Target.ABSENT

    def _run(self, view: _View, subscription: Subscription) -> None:
        members = self.members(view)
        self.registry.hold(view.cluster, set(members))
        try:
            self._undeploy(view, subscription, members)
        finally:
            self.registry.release(self.cluster.id)

    def _undeploy(self, view: _View, subscription: Subscription, members: list[UUID]) -> None:
        configurations = compute_configurations(view.cluster, view.peers, view.addresses, self.target)
        configurations = {m: configurations[m] for m in members}
        progress = _Progress(configurations, self.target)
        online = [m for m in members if m in view.addresses]
        for m in members:
            if m not in view.addresses:
                progress.complete(m)  # an offline bench forgets its configuration when it comes back
        sent = self.send(view, {m: configurations[m] for m in online})
        last_change = time.monotonic()
        while not self.cancelled:
            self.publish(Undeploying(done=progress.done, total=progress.total))
            if progress.finished:
                self._clear(members)
                self.outcome = Undeployed()
                self.publish(self.outcome)
                return
            if time.monotonic() - last_change > self.timeout:
                pending = progress.first_pending()
                peer = pending[0] if pending else None
                self.outcome = Failed(
                    peer=peer, parameter=pending[1] if pending else None,
                    reason=f"undeploy: peer '{_peer_name(view, peer) if peer else '?'}' reported no progress "
                    f"within {self.timeout:g} s",
                )
                self.publish(self.outcome)
                return
            item = _next(subscription)
            if item is None:
                return
            if isinstance(item, Resync):
                continue
            for event in item:
                if event.kind == ResourceKind.PEER_CONNECTION_STATE and event.id in configurations:
                    if not isinstance(getattr(event.resource, "state", None), Online):
                        progress.complete(event.id)
                        last_change = time.monotonic()
                elif _apply_event(view, event) and event.id in sent and event.revision > sent[event.id]:
                    assert isinstance(event.resource, PeerConfigurationState)
                    error = progress.report(event.id, event.resource)
                    last_change = time.monotonic()
                    if error is not None:
                        self.outcome = Failed(
                            peer=event.id, parameter=error[0],
                            reason=f"undeploy: peer '{_peer_name(view, event.id)}': {error[1]}",
                        )
                        self.publish(self.outcome)
                        return

    def _clear(self, members: list[UUID]) -> None:
        """The peers are free again: drop their desired configuration and reports."""
        changes = [
            Delete(kind, m, missing_ok=True)
            for m in members
            for kind in (ResourceKind.PEER_CONFIGURATION, ResourceKind.PEER_CONFIGURATION_STATE)
        ]
        if not self.cancelled:
            self.manager.write(changes, ACTOR)


def _param_kind(progress: _Progress, peer: UUID, param: UUID) -> str:
    for p in progress.configurations[peer].parameters:
        if p.id == param:
            return p.kind.value
    return "parameter"


def _apply_event(view: _View, event: Event) -> bool:
    if event.kind == ResourceKind.PEER:
        if isinstance(event.resource, PeerDescriptor):
            view.peers[event.id] = event.resource
        return False
    if event.kind == ResourceKind.PEER_CONNECTION_STATE:
        state = getattr(event.resource, "state", None)
        if isinstance(state, Online):
            view.addresses[event.id] = state.remote_host
        else:
            view.addresses.pop(event.id, None)
        return False
    return event.kind == ResourceKind.PEER_CONFIGURATION_STATE and event.type != EventType.DELETED


def _next(subscription: Subscription) -> list[Event] | Resync | None:
    """The next events (or Resync); [] after a short poll; None when the subscription closed."""
    try:
        item = subscription.get(timeout=POLL)
    except TimeoutError:
        return []
    if item is None:
        return None
    if isinstance(item, Resync):
        return item
    if isinstance(item, EventBatch):
        return list(item.events)
    return []
