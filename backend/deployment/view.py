"""What a deployment step knows of the world, and the World the operator keeps it from.

``ClusterView`` is one cluster's slice at one moment, built by the runner (or by a test) and only
read by a step. ``World`` is the operator's copy of the peers, clusters, deployments and
connections, kept current from its one subscription and shared by every running action.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, field
from uuid import UUID

from backend.deployment.parameters import TunnelPlan, compute_configurations, plan_tunnels
from resources.agent import TunnelType
from resources.cluster import ClusterDescriptor
from resources.configuration import PeerConfiguration, PeerConfigurationState, Target
from resources.derived import device_owners, ordered_member_ids
from resources.events import Event, StateSnapshot
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.resource import AnyResource
from resources.state import ClusterState, ClusterStatus, Online, PeerConnectionState


@dataclass(frozen=True)
class Reachable:
    """An online peer: where it is, and which time it came online (``session``): a peer seen in a
    new session was away, and a bench that drops out forgets its configuration."""

    address: str
    session: int
    #: Tunnel types its kernel can make (a demo peer, with no agent, can make both).
    tunnels: frozenset[TunnelType] = frozenset(TunnelType)
    underlay_mtu: int = 0  # 0: not announced (1500 is assumed)


def reachable(state: Online, session: int) -> Reachable:
    """An online peer as the deployment sees it: what its agent announced, if it has one."""
    if state.agent is None:
        return Reachable(state.remote_host, session)
    capabilities = state.agent.capabilities
    return Reachable(state.remote_host, session, frozenset(capabilities.tunnels), capabilities.underlay_mtu)


@dataclass(frozen=True)
class Report:
    """A peer's PeerConfigurationState, with the revision it was stored at."""

    peer: UUID
    revision: int
    state: PeerConfigurationState


@dataclass(frozen=True)
class ClusterView:
    """One cluster as a step sees it: its members (leader first), the peers, who is online, which
    members another cluster is still being undeployed from, and the storage's health."""

    cluster: ClusterDescriptor
    members: tuple[UUID, ...]
    peers: Mapping[UUID, PeerDescriptor]
    online: Mapping[UUID, Reachable]
    undeploying: Mapping[UUID, str] = field(default_factory=dict)  # member -> the other cluster's name
    timeout: float = 60.0
    storage_failing: bool = False
    storage_recovered_at: float = 0.0  # monotonic time; 0.0: storage never failed
    #: The VNIs the other deployed clusters' tunnels use (asked only when vxlan is chosen).
    vnis_in_use: Callable[[], Set[int]] = frozenset

    def peer_name(self, peer: UUID) -> str:
        p = self.peers.get(peer)
        return p.name if p is not None else str(peer)

    def addresses(self) -> dict[UUID, str]:
        """The members' reachable addresses (an offline member has none)."""
        return {m: self.online[m].address for m in self.members if m in self.online}

    def tunnel_plan(self) -> TunnelPlan | str:
        """The tunnels every existing member can make (see plan_tunnels), or why there are none."""
        members = tuple(m for m in self.members if m in self.peers)
        tunnels = {m: self.online[m].tunnels for m in members if m in self.online}
        mtus = {m: self.online[m].underlay_mtu for m in members if m in self.online}
        names = {m: self.peer_name(m) for m in members}
        return plan_tunnels(self.cluster, members, tunnels, mtus, names, self.vnis_in_use)

    def configurations(self, target: Target) -> dict[UUID, PeerConfiguration]:
        """Each existing member's configuration (none once the leader itself is gone: every
        parameter is about the tunnels to it). Without a common tunnel type (an undeploy with a
        member offline) the values are the default plan's: removal goes by parameter id."""
        if self.cluster.leader not in self.peers:
            return {}
        peers = {m: self.peers[m] for m in self.members if m in self.peers}
        plan = self.tunnel_plan()
        tunnels = plan if isinstance(plan, TunnelPlan) else None
        return compute_configurations(self.cluster, peers, self.addresses(), target, tunnels)


def members_of(
    cluster: ClusterDescriptor, peers: Mapping[UUID, PeerDescriptor], owners: dict[UUID, UUID]
) -> tuple[UUID, ...]:
    """The cluster's existing member peers, leader first."""
    return tuple(m for m in ordered_member_ids(cluster, owners) if m in peers)


class World:
    """Peers, clusters, deployments and connections as of the last event the operator handled."""

    def __init__(self) -> None:
        self.revision = 0  # of the snapshot it was last rebuilt from: older events are in it already
        self.peers: dict[UUID, PeerDescriptor] = {}
        self.clusters: dict[UUID, ClusterDescriptor] = {}
        self.deployments: set[UUID] = set()
        self.online: dict[UUID, Reachable] = {}
        self._owners: dict[UUID, UUID] | None = None
        # peer -> the clusters (deployed or not) it is a member of; None: to be rebuilt, after a peer
        # or cluster changed. A connection change then costs a lookup, not every cluster's members.
        self._clusters_of: dict[UUID, list[UUID]] | None = None
        self._sessions = itertools.count(1)

    def members(self, cluster: ClusterDescriptor) -> tuple[UUID, ...]:
        if self._owners is None:
            self._owners = device_owners(self.peers.values())
        return members_of(cluster, self.peers, self._owners)

    def deployed_clusters_with(self, peer: UUID) -> list[ClusterDescriptor]:
        if self._clusters_of is None:
            index: dict[UUID, list[UUID]] = {}
            for cluster in self.clusters.values():
                for member in self.members(cluster):
                    index.setdefault(member, []).append(cluster.id)
            self._clusters_of = index
        return [self.clusters[c] for c in self._clusters_of.get(peer, ()) if c in self.deployments]

    def rebuild(self, snapshot: StateSnapshot) -> dict[UUID, ClusterStatus]:
        """Start again from ``snapshot``; returns the cluster states it holds.

        A peer online before and now keeps its session (nothing says it was away); the actions
        are told to resend anyway, since reports may have been lost.
        """
        self.revision = snapshot.revision
        self.peers, self.clusters, self.deployments = {}, {}, set()
        online, self.online = self.online, {}
        states: dict[UUID, ClusterStatus] = {}
        for r in snapshot.resources:
            if isinstance(r, PeerDescriptor):
                self.peers[r.id] = r
            elif isinstance(r, ClusterDescriptor):
                self.clusters[r.id] = r
            elif r.kind == ResourceKind.CLUSTER_DEPLOYMENT:
                self.deployments.add(r.id)
            elif isinstance(r, ClusterState):
                states[r.id] = r.state
            elif isinstance(r, PeerConnectionState) and isinstance(r.state, Online):
                before = online.get(r.id)
                session = before.session if before is not None else next(self._sessions)
                self.online[r.id] = reachable(r.state, session)
        self._owners = self._clusters_of = None
        return states

    def refresh(self, peer_id: UUID, descriptor: AnyResource | None, connection: AnyResource | None) -> None:
        """The peer as the manager's state holds it now (it was not followed from events before).

        A peer online before and now keeps its session; one the World did not know online gets a new one.
        """
        if isinstance(descriptor, PeerDescriptor):
            self.peers[peer_id] = descriptor
        else:
            self.peers.pop(peer_id, None)
        state = connection.state if isinstance(connection, PeerConnectionState) else None
        if isinstance(state, Online):
            before = self.online.get(peer_id)
            self.online[peer_id] = reachable(state, before.session if before is not None else next(self._sessions))
        else:
            self.online.pop(peer_id, None)
        self._owners = self._clusters_of = None

    def forget(self, peer_id: UUID) -> None:
        """Stop keeping the peer (no event of it is followed any more: a copy would go stale)."""
        self.peers.pop(peer_id, None)
        self.online.pop(peer_id, None)
        self._owners = self._clusters_of = None

    def apply(self, event: Event) -> bool:
        """Apply one event; True when it brought a peer online or took it offline."""
        if event.kind == ResourceKind.PEER:
            if isinstance(event.resource, PeerDescriptor):
                self.peers[event.id] = event.resource
            else:
                self.peers.pop(event.id, None)
            self._owners = self._clusters_of = None
        elif event.kind == ResourceKind.CLUSTER:
            if isinstance(event.resource, ClusterDescriptor):
                self.clusters[event.id] = event.resource
            else:
                self.clusters.pop(event.id, None)
            self._clusters_of = None
        elif event.kind == ResourceKind.CLUSTER_DEPLOYMENT:
            if event.resource is None:
                self.deployments.discard(event.id)
            else:
                self.deployments.add(event.id)
        elif event.kind == ResourceKind.PEER_CONNECTION_STATE:
            state = event.resource.state if isinstance(event.resource, PeerConnectionState) else None
            before = self.online.get(event.id)
            if isinstance(state, Online):
                session = before.session if before is not None else next(self._sessions)
                self.online[event.id] = reachable(state, session)
                return before is None
            self.online.pop(event.id, None)
            return before is not None
        return False
