"""The tables of peers, clusters and deployments."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from PySide6.QtCore import QObject
from PySide6.QtGui import QBrush, QColor

from lea_app.models.can_text import can_capability, can_capability_tooltip
from lea_app.models.status_icons import StatusIcon
from lea_app.models.table import Column, ResourceTableModel
from lea_app.sync.store import Store, StoreChange
from resources.cluster import ClusterDescriptor
from resources.derived import blocked_peers
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.resource import AnyResource
from resources.state import (
    AgentInfo,
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

GREEN = QBrush(QColor("#1b7f3b"))
GREY = QBrush(QColor("#6b6b6b"))
RED = QBrush(QColor("#b3261e"))
AMBER = QBrush(QColor("#8a5a00"))
BLUE = QBrush(QColor("#1f5fa8"))


def is_degraded(status: ClusterStatus) -> bool:
    """Deployed, with members offline since: a state of its own wherever LEA shows states."""
    return isinstance(status, Deployed) and status.health != "healthy"


def status_text(status: ClusterStatus) -> str:
    if isinstance(status, Waiting):
        return "Waiting"
    if isinstance(status, Deploying):
        return "Deploying"
    if isinstance(status, Deployed):
        return "Degraded" if is_degraded(status) else "Deployed"
    if isinstance(status, Undeploying):
        return "Undeploying"
    if isinstance(status, Failed):
        return "Failed"
    return "Undeployed"


def status_detail(status: ClusterStatus) -> str:
    if isinstance(status, Waiting | Failed):
        return status.reason
    if is_degraded(status):
        assert isinstance(status, Deployed)
        return status.reason or "a member is offline"  # (a backend older than the reason field)
    return ""


def waiting_text(names: tuple[str, ...]) -> str:
    """Why an undeploy is not done: the offline benches that still hold the cluster's configuration."""
    if not names:
        return ""
    one = len(names) == 1
    return (
        f"{', '.join(names)} still {'holds' if one else 'hold'} the configuration: "
        f"removed when {'it reconnects' if one else 'they reconnect'}"
    )


def reason_text(status: ClusterStatus, waiting_for: tuple[str, ...]) -> str:
    """The Reason column: Waiting/Failed/Degraded's reason, or the benches an undeploy waits for."""
    return status_detail(status) or waiting_text(waiting_for)


def named_peer_ids(status: ClusterStatus) -> tuple[UUID, ...]:
    """The peers a state names: those a Waiting cluster waits for, a Degraded one's offline members,
    the benches an Undeploying one waits for."""
    if isinstance(status, Waiting | Deployed):
        return status.peers
    if isinstance(status, Undeploying):
        return status.waiting_for
    return ()


def peer_names_of(
    store_get: Callable[[ResourceKind, UUID], AnyResource | None], ids: Iterable[UUID]
) -> tuple[str, ...]:
    """The names of these peers, sorted (an unknown id by its prefix)."""
    names = []
    for peer_id in ids:
        peer = store_get(ResourceKind.PEER, peer_id)
        names.append(peer.name if isinstance(peer, PeerDescriptor) else str(peer_id)[:8])
    return tuple(sorted(names, key=str.casefold))


def waiting_names(
    store_get: Callable[[ResourceKind, UUID], AnyResource | None], status: ClusterStatus
) -> tuple[str, ...]:
    """The names of the benches an Undeploying cluster waits for (sorted; an unknown id by its prefix)."""
    return peer_names_of(store_get, status.waiting_for) if isinstance(status, Undeploying) else ()


def offline_names(
    store_get: Callable[[ResourceKind, UUID], AnyResource | None], status: ClusterStatus
) -> tuple[str, ...]:
    """The names of the peers a Waiting cluster waits for, or a Degraded cluster's offline members."""
    return peer_names_of(store_get, status.peers) if isinstance(status, Waiting | Deployed) else ()


def status_progress(status: ClusterStatus) -> tuple[int, int] | None:
    if isinstance(status, Deploying | Undeploying):
        return (status.done, status.total)
    return None


def progress_text(status: ClusterStatus, names: tuple[str, ...] = ()) -> str:
    """What the Progress column counts, in words ("11 of 19 parameters"), or what a state waits for."""
    if isinstance(status, Deploying):
        return f"{status.done} of {status.total} parameters"
    if isinstance(status, Undeploying):
        return f"{status.done} of {status.total} parameters removed"
    if isinstance(status, Waiting):
        return f"waiting for {', '.join(names)}" if names else "waiting"
    if is_degraded(status):
        return f"offline: {', '.join(names)}" if names else "a member offline"
    if isinstance(status, Deployed):
        return "every parameter applied"
    return ""


def status_brush(status: ClusterStatus) -> QBrush:
    if isinstance(status, Deployed):
        return GREEN if status.health == "healthy" else AMBER
    if isinstance(status, Failed):
        return RED
    if isinstance(status, Waiting):
        return AMBER
    if isinstance(status, Deploying | Undeploying):
        return BLUE
    return GREY


def status_icon_of(status: ClusterStatus) -> StatusIcon:
    """The icon that goes with the state's colour (its shape tells the state without the colour)."""
    if isinstance(status, Deployed):
        return StatusIcon.DEGRADED if is_degraded(status) else StatusIcon.OK
    if isinstance(status, Failed):
        return StatusIcon.FAILED
    if isinstance(status, Waiting):
        return StatusIcon.WAITING
    if isinstance(status, Deploying | Undeploying):
        return StatusIcon.BUSY
    return StatusIcon.IDLE


def cluster_status(store_get: Callable[[ResourceKind, UUID], AnyResource | None], cluster_id: UUID) -> ClusterStatus:
    state = store_get(ResourceKind.CLUSTER_STATE, cluster_id)
    return state.state if isinstance(state, ClusterState) else Undeployed()


def _changed_ids(change: StoreChange) -> set[UUID]:
    return change.inserted | change.changed | change.removed


class PeerLinks:
    """Clusters linked to peers, both ways: cluster -> its peers, peer -> its clusters."""

    def __init__(self) -> None:
        self._peers: dict[UUID, frozenset[UUID]] = {}
        self._clusters: dict[UUID, set[UUID]] = {}

    def link(self, cluster_id: UUID, peers: frozenset[UUID]) -> None:
        """Cluster ``cluster_id`` is linked to ``peers`` now (none: to no peer)."""
        before = self._peers.pop(cluster_id, frozenset())
        if peers:
            self._peers[cluster_id] = peers
        if peers == before:
            return
        for peer in before - peers:
            clusters = self._clusters.get(peer)
            if clusters is not None:
                clusters.discard(cluster_id)
                if not clusters:
                    del self._clusters[peer]
        for peer in peers - before:
            self._clusters.setdefault(peer, set()).add(cluster_id)

    def clusters_of(self, peers: Iterable[UUID]) -> set[UUID]:
        found: set[UUID] = set()
        for peer in peers:
            found |= self._clusters.get(peer, set())
        return found


class NamedPeers:
    """Which peers each cluster's state names by name (Waiting for them, Degraded by them, an undeploy
    waiting for them, a deployment's "Per peer"), and back: a peer's new name finds the rows showing
    it without walking every cluster state (issue #13: that walk took 6 ms per flush in a burst).
    A named peer need not be a member any more (its devices may have moved since the state was made).

    One per store (``NamedPeers.of``), kept up to date by the store's changes: the models that need
    it share it (three did the same 10,000 re-reads each in a 20,000-event burst)."""

    _shared: weakref.WeakKeyDictionary[Store, NamedPeers] = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, store: Store) -> NamedPeers:
        named = cls._shared.get(store)
        if named is None:
            named = cls._shared[store] = cls(store)
        return named

    def __init__(self, store: Store) -> None:
        self._store = weakref.ref(store)  # (the store keeps this alive: it holds the listener)
        self._links = PeerLinks()
        for cluster_id in store.all(ResourceKind.CLUSTER_STATE):  # made over a filled store
            self._index(store, cluster_id)
        store.listen(self._on_change)

    def _on_change(self, change: StoreChange) -> None:
        store = self._store()
        if change.kind == ResourceKind.CLUSTER_STATE and store is not None:
            for cluster_id in _changed_ids(change):
                self._index(store, cluster_id)

    def _index(self, store: Store, cluster_id: UUID) -> None:
        state = store.get(ResourceKind.CLUSTER_STATE, cluster_id)
        status = state.state if isinstance(state, ClusterState) else None
        named = frozenset(
            status.peers if isinstance(status, Deploying) else named_peer_ids(status) if status is not None else ()
        )
        self._links.link(cluster_id, named)

    def clusters_naming(self, peers: Iterable[UUID]) -> set[UUID]:
        return self._links.clusters_of(peers)


# -- peers ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PeerRow:
    peer: PeerDescriptor
    online: bool
    remote_host: str
    blocked_by: str
    since: datetime | None = None  # when the peer came online (None: offline)
    agent: AgentInfo | None = None  # what its agent announced (None: offline, or a demo peer)

    @property
    def name(self) -> str:
        return f"{self.peer.name} (demo)" if self.peer.demo else self.peer.name

    @property
    def since_text(self) -> str:
        return self.since.astimezone().strftime("%d %b %H:%M") if self.since is not None else ""

    @property
    def underlay_text(self) -> str:
        """The address the other members reach it at, and the underlay's MTU when the agent knows it."""
        if not self.online:
            return ""
        mtu = self.agent.capabilities.underlay_mtu if self.agent is not None else 0
        return f"{self.remote_host} · MTU {mtu}" if mtu else self.remote_host

    @property
    def agent_text(self) -> str:
        if self.peer.demo:
            return "demo simulation"
        if self.agent is None:
            return "" if not self.online else "unknown agent"
        tunnels = ", ".join(t.value for t in self.agent.capabilities.tunnels) or "no tunnels"
        return f"{self.agent.version} · {tunnels}"

    @property
    def agent_tooltip(self) -> str:
        if self.peer.demo:
            return "A simulated bench of the demo fleet: no agent, nothing is configured for real"
        if self.agent is None:
            return "No agent connected" if not self.online else "The agent announced nothing"
        capabilities = self.agent.capabilities
        return "\n".join((
            f"Agent version: lea-peer {self.agent.version}",
            f"Tunnel types: {', '.join(t.value for t in capabilities.tunnels) or 'none (no tunnel can be built)'}",
            f"CAN: {capabilities.can.value}",
            f"Underlay MTU: {capabilities.underlay_mtu or 'unknown'}",
        ))

    @property
    def can_text(self) -> str:
        return can_capability(self.peer.demo, self.online, self.agent)

    @property
    def can_tooltip(self) -> str:
        return can_capability_tooltip(self.peer.demo, self.online, self.agent)

    @property
    def needed(self) -> bool:
        """Offline although a deployed cluster has it as a member."""
        return not self.online and bool(self.blocked_by)

    @property
    def state_icon(self) -> StatusIcon:
        return StatusIcon.OK if self.online else StatusIcon.NEEDED_OFFLINE if self.needed else StatusIcon.IDLE

    @property
    def state_brush(self) -> QBrush:
        return GREEN if self.online else RED if self.needed else GREY

    @property
    def state_tooltip(self) -> str:
        if self.needed:
            return f"not connected, and deployed cluster '{self.blocked_by}' needs it"
        if not self.online:
            return "not connected"
        since = f" since {self.since.astimezone():%Y-%m-%d %H:%M:%S %Z}" if self.since is not None else ""
        return f"connected from {self.remote_host}{since}"


class PeersModel(ResourceTableModel[PeerRow]):
    # What the descriptor says, then the agent's connection (the first five keep their places).
    columns = (
        Column[PeerRow]("Name", lambda r: r.name, sort_key=lambda r: r.peer.name.casefold(), width=160, min_width=110),
        Column[PeerRow]("Location", lambda r: r.peer.location or "", width=95),
        Column[PeerRow](
            "State", lambda r: "Online" if r.online else "Offline", tooltip=lambda r: r.state_tooltip,
            foreground=lambda r: r.state_brush, decoration=lambda r: r.state_icon, width=85, min_width=80,
        ),
        Column[PeerRow](
            "Interfaces", lambda r: ", ".join(i.name for i in r.peer.interfaces),
            sort_key=lambda r: len(r.peer.interfaces), width=85,
        ),
        Column[PeerRow](
            "Devices", lambda r: str(len(r.peer.devices)),
            tooltip=lambda r: "\n".join(d.name for d in r.peer.devices), sort_key=lambda r: len(r.peer.devices),
            width=60,
        ),
        Column[PeerRow](
            "Underlay", lambda r: r.underlay_text, tooltip=lambda r: r.state_tooltip,
            sort_key=lambda r: (not r.online, r.remote_host), width=175,
        ),
        Column[PeerRow](
            "Agent", lambda r: r.agent_text, tooltip=lambda r: r.agent_tooltip,
            foreground=lambda r: GREY if r.peer.demo else None, width=145,
        ),
        Column[PeerRow](
            "CAN", lambda r: r.can_text, tooltip=lambda r: r.can_tooltip,
            foreground=lambda r: GREY if r.peer.demo else None, width=75,
        ),
        Column[PeerRow](
            "Online since", lambda r: r.since_text, tooltip=lambda r: r.state_tooltip,
            sort_key=lambda r: (r.since is None, r.since.timestamp() if r.since else 0.0), width=90,
        ),
        Column[PeerRow]("Blocked by", lambda r: r.blocked_by, width=120),
    )

    def __init__(self, store: Store, parent: QObject | None = None) -> None:
        super().__init__(store, parent)
        self._blocked: dict[UUID, ClusterDescriptor] | None = None  # None: not worked out yet
        self._blocked_stale = False

    def candidate_ids(self) -> Iterable[UUID]:
        return self.store.all(ResourceKind.PEER).keys()

    def affected_ids(self, change: StoreChange) -> set[UUID] | None:
        if change.kind == ResourceKind.PEER_CONNECTION_STATE:
            return _changed_ids(change)
        if change.kind in (ResourceKind.PEER, ResourceKind.CLUSTER, ResourceKind.CLUSTER_DEPLOYMENT):
            # Who blocks whom may change for any peer: the flush compares before and after.
            self._blocked_stale = True
            self.defer()
            if change.kind == ResourceKind.PEER:
                return _changed_ids(change)
        return set()

    def deferred_ids(self) -> set[UUID]:
        """The peers whose blocking cluster changed."""
        if not self._blocked_stale or self._blocked is None:
            return set()
        old, new = self._blocked, self._blocking()
        self._blocked, self._blocked_stale = new, False
        return {id for id in old.keys() | new.keys() if _name(old.get(id)) != _name(new.get(id))}

    def prepare(self) -> None:
        if self._blocked is None or self._blocked_stale:
            self._blocked, self._blocked_stale = self._blocking(), False

    def _blocking(self) -> dict[UUID, ClusterDescriptor]:
        """``resources.derived.blocked_peers`` of the store (read from its indexes)."""
        return blocked_peers(self.store)

    def make_row(self, id: UUID) -> PeerRow | None:
        peer = self.store.get(ResourceKind.PEER, id)
        if not isinstance(peer, PeerDescriptor):
            return None
        connection = self.store.get(ResourceKind.PEER_CONNECTION_STATE, id)
        state = connection.state if isinstance(connection, PeerConnectionState) else None
        assert self._blocked is not None  # prepare() ran
        blocker = self._blocked.get(id)
        online = state if isinstance(state, Online) else None
        return PeerRow(
            peer, online is not None, online.remote_host if online else "", blocker.name if blocker else "",
            online.since if online else None, online.agent if online else None,
        )


# -- clusters ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClusterRow:
    cluster: ClusterDescriptor
    leader: str
    members: int
    deployed: bool
    status: ClusterStatus
    waiting_for: tuple[str, ...] = ()  # Undeploying: the benches still holding the configuration
    offline: tuple[str, ...] = ()  # Waiting: the peers it waits for; Degraded: the members offline


def _state_tooltip(status: ClusterStatus, waiting_for: tuple[str, ...]) -> str:
    return reason_text(status, waiting_for) or status_text(status)


class ClustersModel(ResourceTableModel[ClusterRow]):
    columns = (
        Column[ClusterRow]("Name", lambda r: r.cluster.name, width=170, min_width=110),
        Column[ClusterRow]("Leader", lambda r: r.leader, width=140),
        Column[ClusterRow](
            "Devices", lambda r: f"{len(r.cluster.devices)} on {r.members} peers",
            sort_key=lambda r: len(r.cluster.devices), width=110,
        ),
        Column[ClusterRow](
            # Not a checkbox: deploying goes through the Deploy and Undeploy commands (docs/decisions.md).
            "Deploy", lambda r: "on" if r.deployed else "off",
            tooltip=lambda r: "Deployment requested (Undeploy: Ctrl+U)" if r.deployed
            else "Not deployed (Deploy: Ctrl+D)",
            width=70,
        ),
        Column[ClusterRow](
            "State", lambda r: status_text(r.status), foreground=lambda r: status_brush(r.status),
            tooltip=lambda r: _state_tooltip(r.status, r.waiting_for), decoration=lambda r: status_icon_of(r.status),
            width=120, min_width=118,
        ),
        Column[ClusterRow](
            "Progress", lambda r: progress_text(r.status, r.offline), progress=lambda r: status_progress(r.status),
            sort_key=lambda r: _progress_fraction(r.status), width=200, min_width=150,
        ),
        Column[ClusterRow](
            "Reason", lambda r: reason_text(r.status, r.waiting_for),
            tooltip=lambda r: reason_text(r.status, r.waiting_for), width=260, min_width=170,
        ),
    )

    def __init__(self, store: Store, parent: QObject | None = None) -> None:
        super().__init__(store, parent)
        self._peers_changed: set[UUID] = set()
        # The members each cluster's row was last built with (filtered out or not), and back: a changed
        # peer finds the rows built with it (only a peer's change moves a member).
        self._built = PeerLinks()
        self._named = NamedPeers.of(store)  # peers a row names in Progress and Reason, members or not

    def candidate_ids(self) -> Iterable[UUID]:
        return self.store.all(ResourceKind.CLUSTER).keys()

    def affected_ids(self, change: StoreChange) -> set[UUID] | None:
        if change.kind in (ResourceKind.CLUSTER, ResourceKind.CLUSTER_STATE, ResourceKind.CLUSTER_DEPLOYMENT):
            ids = _changed_ids(change)
            return ids
        if change.kind == ResourceKind.PEER:
            self._peers_changed |= _changed_ids(change)  # leader names and members: see deferred_ids
            self.defer()
        return set()

    def deferred_ids(self) -> set[UUID]:
        """Clusters a changed peer is a member of (it may be the leader, whose name a row shows), or
        whose state names it, and those whose members changed (a peer gained or lost one of their
        devices)."""
        peers, self._peers_changed = self._peers_changed, set()
        affected = self._named.clusters_naming(peers)
        for peer_id in peers:  # a member now, or when the row was built (only a peer's change moves one)
            affected |= self.store.clusters_of_peer(peer_id)
        affected |= self._built.clusters_of(peers)
        return affected

    def make_row(self, id: UUID) -> ClusterRow | None:
        cluster = self.store.get(ResourceKind.CLUSTER, id)
        if not isinstance(cluster, ClusterDescriptor):
            self._built.link(id, frozenset())
            return None
        leader = self.store.get(ResourceKind.PEER, cluster.leader)
        members = frozenset(self.store.members(id))
        self._built.link(id, members)
        status = cluster_status(self.store.get, id)
        return ClusterRow(
            cluster,
            leader.name if isinstance(leader, PeerDescriptor) else "(missing)",
            len(members),
            id in self.store.all(ResourceKind.CLUSTER_DEPLOYMENT),
            status,
            waiting_names(self.store.get, status),
            offline_names(self.store.get, status),
        )


def _name(cluster: ClusterDescriptor | None) -> str:
    return cluster.name if cluster else ""


def _progress_fraction(status: ClusterStatus) -> float:
    progress = status_progress(status)
    if progress is None:
        return 1.0 if isinstance(status, Deployed) else 0.0
    done, total = progress
    return done / total if total else 0.0


# -- deployments ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DeploymentRow:
    cluster: ClusterDescriptor
    requested: bool
    request_version: int
    status: ClusterStatus
    peers: str
    waiting_for: tuple[str, ...] = ()  # Undeploying: the benches still holding the configuration
    offline: tuple[str, ...] = ()  # Waiting: the peers it waits for; Degraded: the members offline


class DeploymentsModel(ResourceTableModel[DeploymentRow]):
    """Clusters with a deployment requested, or still on their way back to Undeployed."""

    columns = (
        Column[DeploymentRow]("Cluster", lambda r: r.cluster.name, width=170, min_width=110),
        Column[DeploymentRow](
            "Requested", lambda r: f"yes (#{r.request_version})" if r.requested else "no (undeploying)", width=120
        ),
        Column[DeploymentRow](
            "State", lambda r: status_text(r.status), foreground=lambda r: status_brush(r.status),
            tooltip=lambda r: _state_tooltip(r.status, r.waiting_for),
            decoration=lambda r: status_icon_of(r.status), width=120, min_width=118,
        ),
        Column[DeploymentRow](
            "Progress", lambda r: progress_text(r.status, r.offline), progress=lambda r: status_progress(r.status),
            sort_key=lambda r: _progress_fraction(r.status), width=200, min_width=150,
        ),
        Column[DeploymentRow]("Per peer", lambda r: r.peers, tooltip=lambda r: r.peers, width=240),
        Column[DeploymentRow](
            "Reason", lambda r: reason_text(r.status, r.waiting_for),
            tooltip=lambda r: reason_text(r.status, r.waiting_for), width=200, min_width=170,
        ),
    )

    def __init__(self, store: Store, parent: QObject | None = None, *, active_only: bool = False) -> None:
        super().__init__(store, parent)
        self.active_only = active_only
        self._peers_changed: set[UUID] = set()
        self._named = NamedPeers.of(store)  # peers a row names ("Per peer", an undeploy waiting for them)

    def candidate_ids(self) -> Iterable[UUID]:
        return set(self.store.all(ResourceKind.CLUSTER_DEPLOYMENT)) | set(self.store.all(ResourceKind.CLUSTER_STATE))

    def affected_ids(self, change: StoreChange) -> set[UUID] | None:
        if change.kind in (ResourceKind.CLUSTER, ResourceKind.CLUSTER_STATE, ResourceKind.CLUSTER_DEPLOYMENT):
            ids = _changed_ids(change)
            return ids
        if change.kind == ResourceKind.PEER:
            self._peers_changed |= _changed_ids(change)  # names in "Per peer": see deferred_ids
            self.defer()
        return set()

    def deferred_ids(self) -> set[UUID]:
        """Deployments showing a changed peer by its name (its progress, or an undeploy waiting for it)."""
        peers, self._peers_changed = self._peers_changed, set()
        return self._named.clusters_naming(peers)

    def make_row(self, id: UUID) -> DeploymentRow | None:
        cluster = self.store.get(ResourceKind.CLUSTER, id)
        if not isinstance(cluster, ClusterDescriptor):
            return None
        deployment = self.store.get(ResourceKind.CLUSTER_DEPLOYMENT, id)
        status = cluster_status(self.store.get, id)
        if deployment is None and isinstance(status, Undeployed):
            return None
        if self.active_only and not isinstance(status, Deploying | Undeploying | Waiting):
            return None
        peers = ""
        if isinstance(status, Deploying):
            parts = []
            for peer_id, progress in status.peers.items():
                peer = self.store.get(ResourceKind.PEER, peer_id)
                name = peer.name if isinstance(peer, PeerDescriptor) else str(peer_id)[:8]
                parts.append(f"{name} {progress.done}/{progress.total}")
            peers = ", ".join(sorted(parts))
        waiting = waiting_names(self.store.get, status)
        if waiting:
            peers = f"still held by {', '.join(waiting)} (offline)"
        return DeploymentRow(
            cluster, deployment is not None, deployment.version if deployment else 0, status, peers, waiting,
            offline_names(self.store.get, status),
        )
