"""The dashboard: peers online/offline, clusters by state, deployments in progress with their bars."""

from __future__ import annotations

from collections import Counter
from uuid import UUID

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QTableView, QVBoxLayout, QWidget

from lea_app.controller import Controller
from lea_app.models.resources import DeploymentsModel, cluster_status
from lea_app.models.table import COALESCE_MS
from lea_app.sync.store import StoreChange
from lea_app.views.tables import configure_table
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.state import (
    Deployed,
    Deploying,
    Failed,
    Online,
    PeerConnectionState,
    Undeployed,
    Undeploying,
    Waiting,
)

#: The kinds of cluster state, counted by type (a degraded Deployed is deployed), in display order.
StateType = type[Deployed | Deploying | Waiting | Failed | Undeploying | Undeployed]
CLUSTER_STATES: tuple[tuple[StateType, str], ...] = (
    (Deployed, "deployed"),
    (Deploying, "deploying"),
    (Waiting, "waiting"),
    (Failed, "failed"),
    (Undeploying, "undeploying"),
    (Undeployed, "undeployed"),
)


class Card(QFrame):
    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        self.setStyleSheet("#card { background: palette(base); border: 1px solid palette(mid); border-radius: 6px; }")
        layout = QVBoxLayout(self)
        heading = QLabel(title)
        heading.setStyleSheet("color: palette(dark); font-weight: 600;")
        layout.addWidget(heading)
        self.value = QLabel("-")
        self.value.setStyleSheet("font-size: 22pt; font-weight: 600;")
        self.value.setAccessibleName(title)
        layout.addWidget(self.value)
        self.detail = QLabel("")
        self.detail.setWordWrap(True)
        layout.addWidget(self.detail)
        layout.addStretch(1)


class DashboardPage(QWidget):
    title = "Dashboard"

    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.store = controller.store
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.addWidget(QLabel("<h2 style='margin:0'>Dashboard</h2>"))
        cards = QGridLayout()
        self.peers_card = Card("Peers online")
        self.offline_card = Card("Peers offline")
        self.clusters_card = Card("Clusters deployed")
        self.attention_card = Card("Need attention")
        for i, card in enumerate((self.peers_card, self.offline_card, self.clusters_card, self.attention_card)):
            cards.addWidget(card, 0, i)
        layout.addLayout(cards)
        self.states_label = QLabel()
        self.states_label.setWordWrap(True)
        layout.addWidget(self.states_label)
        row = QHBoxLayout()
        row.addWidget(QLabel("<b>Deployments in progress</b>"))
        row.addStretch(1)
        layout.addLayout(row)
        self.active = DeploymentsModel(self.store, self, active_only=True)
        self.table = QTableView()
        self.table.setAccessibleName("Deployments in progress")
        configure_table(self.table, self.active)
        layout.addWidget(self.table, 1)
        self.idle_hint = QLabel("No deployment in progress.")
        self.idle_hint.setStyleSheet("color:#6b6b6b; padding:6px;")
        layout.addWidget(self.idle_hint)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(COALESCE_MS * 2)
        self._timer.timeout.connect(self._refresh_due)
        self._scheduled = False  # the timer runs (a flag: asking Qt costs, per batch)
        # The counts are kept per peer and per cluster, brought up to date for the ids that changed
        # (a refresh during a burst must not walk every peer and cluster).
        self._online: set[UUID] = set()
        self._demo: set[UUID] = set()
        self._cluster_states: dict[UUID, StateType] = {}
        self._peers_dirty: set[UUID] = set(self.store.all(ResourceKind.PEER))
        self._clusters_dirty: set[UUID] = set(self.store.all(ResourceKind.CLUSTER))
        self.destroyed.connect(self.store.listen(self._on_change))
        self.active.flushed.connect(lambda: self.idle_hint.setVisible(self.active.rowCount() == 0))
        self.refresh()

    def _on_change(self, change: StoreChange) -> None:
        if change.kind in (ResourceKind.PEER, ResourceKind.PEER_CONNECTION_STATE):
            self._peers_dirty |= change.inserted | change.changed | change.removed
        elif change.kind in (ResourceKind.CLUSTER, ResourceKind.CLUSTER_STATE):
            self._clusters_dirty |= change.inserted | change.changed | change.removed
        elif change.kind != ResourceKind.CLUSTER_DEPLOYMENT:
            return
        if not self._scheduled:
            self._scheduled = True
            self._timer.start()

    def _refresh_due(self) -> None:
        self._scheduled = False
        self.refresh()

    def counts(self) -> tuple[int, int, int, Counter[StateType]]:
        """Peers online, offline, demo benches among them; clusters by the type of their state."""
        peers = self.store.all(ResourceKind.PEER)
        for peer_id in self._peers_dirty:
            peer = peers.get(peer_id)
            state = self.store.get(ResourceKind.PEER_CONNECTION_STATE, peer_id)
            if peer_id in peers and isinstance(state, PeerConnectionState) and isinstance(state.state, Online):
                self._online.add(peer_id)
            else:
                self._online.discard(peer_id)
            if isinstance(peer, PeerDescriptor) and peer.demo:
                self._demo.add(peer_id)
            else:
                self._demo.discard(peer_id)
        self._peers_dirty = set()
        clusters = self.store.all(ResourceKind.CLUSTER)
        for cluster_id in self._clusters_dirty:
            if cluster_id in clusters:
                self._cluster_states[cluster_id] = type(cluster_status(self.store.get, cluster_id))
            else:
                self._cluster_states.pop(cluster_id, None)
        self._clusters_dirty = set()
        online = len(self._online)
        return online, len(peers) - online, len(self._demo), Counter(self._cluster_states.values())

    def refresh(self) -> None:
        online, offline, demo, by_state = self.counts()
        self.peers_card.value.setText(str(online))
        demo_note = f", {demo} of them demo benches" if demo else ""
        self.peers_card.detail.setText(f"of {online + offline} peers{demo_note}")
        self.offline_card.value.setText(str(offline))
        self.offline_card.detail.setText("a deployment waits for its offline members")
        self.clusters_card.value.setText(str(by_state.get(Deployed, 0)))
        total = sum(by_state.values())
        self.clusters_card.detail.setText(f"of {total} clusters")
        attention = by_state.get(Failed, 0) + by_state.get(Waiting, 0)
        self.attention_card.value.setText(str(attention))
        style = "font-size: 22pt; font-weight: 600;" + (" color:#b3261e;" if attention else "")
        if self.attention_card.value.styleSheet() != style:  # re-polishing costs: only when it changes
            self.attention_card.value.setStyleSheet(style)
        self.attention_card.detail.setText(f"{by_state.get(Failed, 0)} failed, {by_state.get(Waiting, 0)} waiting")
        self.states_label.setText(
            "Clusters by state: " + ", ".join(f"{name} {by_state.get(kind, 0)}" for kind, name in CLUSTER_STATES)
        )
        self.idle_hint.setVisible(self.active.rowCount() == 0)
