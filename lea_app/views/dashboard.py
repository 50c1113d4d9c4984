"""The dashboard: peers online/offline, clusters by state, deployments in progress with their bars."""

from __future__ import annotations

import time
from collections import Counter
from uuid import UUID

from PySide6.QtCore import QEvent, QSize, Qt, QTimer
from PySide6.QtGui import QHideEvent, QResizeEvent, QShowEvent
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from lea_app.controller import Controller
from lea_app.models.resources import DeploymentsModel, cluster_status, is_degraded, status_detail
from lea_app.models.table import BACKGROUND_MS, COALESCE_MS
from lea_app.sync.store import StoreChange
from lea_app.views.tables import EmptyState, configure_table
from resources.cluster import ClusterDescriptor
from resources.derived import blocked_peers
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.state import (
    ClusterStatus,
    Deployed,
    Deploying,
    Failed,
    Online,
    PeerConnectionState,
    Undeploying,
    Waiting,
)

#: The states clusters are counted by, in display order: a degraded deployment is a state of its own.
CLUSTER_STATES = ("deployed", "degraded", "deploying", "waiting", "failed", "undeploying", "undeployed")
#: The states that need someone to look.
ATTENTION = ("failed", "degraded", "waiting")
#: How many clusters needing attention the card names (the rest are counted).
NAMED = 3
#: How often the figures follow the store while the page is shown (ms).
REFRESH_MS = COALESCE_MS * 2
#: Seconds of counting one event-loop pass may do.
COUNT_SLICE = 0.004


def state_name(status: ClusterStatus) -> str:
    """The state a cluster is counted under (one of CLUSTER_STATES)."""
    if isinstance(status, Deployed):
        return "degraded" if is_degraded(status) else "deployed"
    return {
        Deploying: "deploying", Waiting: "waiting", Failed: "failed", Undeploying: "undeploying",
    }.get(type(status), "undeployed")


class DetailLines(QLabel):
    """A card's detail: a fixed number of lines, each cut to the card's width ("…"; the tooltip has it
    all), so that what the card says never changes its height and moves the page below it."""

    def __init__(self, lines: int) -> None:
        super().__init__()
        self.lines_shown = lines
        self._lines: list[str] = []
        self.setWordWrap(False)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self._fit_height()

    def set_lines(self, lines: list[str]) -> None:
        if lines != self._lines:
            self._lines = list(lines)
            self.setToolTip("\n".join(lines))
            self._elide()

    def set_text(self, text: str) -> None:
        self.set_lines(text.split("\n") if text else [])

    def full_text(self) -> str:
        """Every line, uncut."""
        return "\n".join(self._lines)

    def _fit_height(self) -> None:
        self.setFixedHeight(self.fontMetrics().lineSpacing() * self.lines_shown + 2)

    def _elide(self) -> None:
        """Wrap the lines at word boundaries into the lines there are; cut the last one if need be."""
        metrics, width = self.fontMetrics(), max(self.width(), 40)
        shown: list[str] = []
        for number, line in enumerate(self._lines):
            words, current = line.split(" "), ""
            left = self.lines_shown - len(shown) - (len(self._lines) - number - 1)  # room for the lines after
            for word in words:
                candidate = f"{current} {word}" if current else word
                if metrics.horizontalAdvance(candidate) <= width or not current or left <= 1:
                    current = candidate
                else:
                    shown.append(current)
                    left -= 1
                    current = word
            shown.append(metrics.elidedText(current, Qt.TextElideMode.ElideRight, width))
        self.setText("\n".join(shown[: self.lines_shown]))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._fit_height()
            self._elide()

    def minimumSizeHint(self) -> QSize:
        return QSize(40, super().minimumSizeHint().height())  # it elides: never wider than the card


class Card(QFrame):
    def __init__(self, title: str, parent: QWidget | None = None, lines: int = 2) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        self.setStyleSheet("#card { background: palette(base); border: 1px solid palette(mid); border-radius: 6px; }")
        layout = QVBoxLayout(self)
        heading = QLabel(title)
        heading.setStyleSheet("color: palette(dark); font-weight: 600;")
        layout.addWidget(heading)
        self.value = QLabel("-")
        self.set_value_colour("")
        self.value.setAccessibleName(title)
        layout.addWidget(self.value)
        self.detail = DetailLines(lines)
        layout.addWidget(self.detail)
        layout.addStretch(1)

    def set_value_colour(self, colour: str) -> None:
        """The big number, twice the application's font size (it follows the user's font), coloured."""
        size = max(QApplication.font().pointSizeF(), 6.0) * 2.2
        style = f"font-size: {size:.0f}pt; font-weight: 600;" + (f" color:{colour};" if colour else "")
        if self.value.styleSheet() != style:  # re-polishing costs: only when it changes
            self.value.setStyleSheet(style)


class DashboardPage(QWidget):
    title = "Dashboard"

    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.store = controller.store
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        top = QHBoxLayout()
        top.addWidget(QLabel("<h2 style='margin:0'>Dashboard</h2>"))
        #: While LEA is not live: the figures are greyed and this says as of when they are.
        self.stale_label = QLabel()
        self.stale_label.setStyleSheet("color:#6b6b6b; padding-left:10px;")
        self.stale_label.setAccessibleName("Data not live")
        self.stale_label.hide()
        top.addWidget(self.stale_label)
        top.addStretch(1)
        layout.addLayout(top)
        cards = QGridLayout()
        self.peers_card = Card("Peers online")
        self.offline_card = Card("Peers offline")
        self.clusters_card = Card("Clusters deployed")
        self.attention_card = Card("Need attention", lines=2 + NAMED)
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
        self.idle_hint = EmptyState(self.table)
        self.idle_hint.set_text("No deployment in progress — deploy a cluster on the Clusters page (Ctrl+D).")
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFRESH_MS if self.isVisible() else BACKGROUND_MS)
        self._timer.timeout.connect(self._refresh_due)
        self._more = QTimer(self)  # the rest of a count cut short
        self._more.setSingleShot(True)
        self._more.setInterval(1)
        self._more.timeout.connect(self._refresh_due)
        self._scheduled = False  # the timer runs (a flag: asking Qt costs, per batch)
        # The counts are kept per peer and per cluster, brought up to date for the ids that changed
        # (a refresh during a burst must not walk every peer and cluster).
        self._online: set[UUID] = set()
        self._demo: set[UUID] = set()
        self._cluster_states: dict[UUID, str] = {}
        self._attention: set[UUID] = set()  # the clusters whose state is in ATTENTION
        self._peers_dirty: set[UUID] = set(self.store.all(ResourceKind.PEER))
        self._clusters_dirty: set[UUID] = set(self.store.all(ResourceKind.CLUSTER))
        self.destroyed.connect(self.store.listen(self._on_change))
        self.active.flushed.connect(lambda: self.idle_hint.setVisible(self.active.rowCount() == 0))
        controller.sync_state_changed.connect(self._sync_state_changed)
        self.refresh()

    def _sync_state_changed(self, state: str) -> None:
        self.active.set_stale(self.controller.stale)
        self.stale_label.setVisible(self.controller.stale)
        self.stale_label.setText(f"Not live: {self.controller.as_of_text()}")
        self.refresh()

    def _on_change(self, change: StoreChange) -> None:
        if change.kind in (ResourceKind.PEER, ResourceKind.PEER_CONNECTION_STATE):
            self._peers_dirty |= change.inserted | change.changed | change.removed
        elif change.kind in (ResourceKind.CLUSTER, ResourceKind.CLUSTER_STATE):
            self._clusters_dirty |= change.inserted | change.changed | change.removed
        elif change.kind != ResourceKind.CLUSTER_DEPLOYMENT:
            return
        else:
            self._clusters_dirty |= change.inserted | change.changed | change.removed
        if not self._scheduled:
            self._scheduled = True
            self._timer.start()
        elif not self.isVisible():
            # Not shown: counted once the changes pause (a burst would otherwise make each
            # refresh walk a second's worth of peers and clusters: 20 ms at once); shown: now.
            self._timer.start()

    def _refresh_due(self) -> None:
        # Counted in slices (a second of a burst's changes, hidden, are thousands of ids).
        if not self._catch_up(time.perf_counter() + COUNT_SLICE):
            self._more.start()
            return
        self._scheduled = False
        self.refresh()

    # While the page is not shown its figures follow BACKGROUND_MS after the changes pause; shown,
    # they are current.
    def showEvent(self, event: QShowEvent) -> None:
        self._timer.setInterval(REFRESH_MS)
        if self._scheduled:
            self._timer.stop()
            self._refresh_due()
        super().showEvent(event)

    def hideEvent(self, event: QHideEvent) -> None:
        self._timer.setInterval(BACKGROUND_MS)
        super().hideEvent(event)

    def counts(self) -> tuple[int, int, int, Counter[str]]:
        """Peers online, offline, demo benches among them; clusters by their state (CLUSTER_STATES)."""
        self._catch_up(None)
        online, peers = len(self._online), len(self.store.all(ResourceKind.PEER))
        return online, peers - online, len(self._demo), Counter(self._cluster_states.values())

    def _catch_up(self, deadline: float | None) -> bool:
        """Bring the counts up to date for the peers and clusters that changed, all or as many as
        ``deadline`` (time.perf_counter()) allows; True when nothing is left."""
        peers = self.store.all(ResourceKind.PEER)
        dirty = self._peers_dirty
        while dirty:
            if deadline is not None and len(dirty) % 64 == 0 and time.perf_counter() > deadline:
                return False
            peer_id = dirty.pop()
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
        clusters = self.store.all(ResourceKind.CLUSTER)
        dirty = self._clusters_dirty
        while dirty:
            if deadline is not None and len(dirty) % 64 == 0 and time.perf_counter() > deadline:
                return False
            cluster_id = dirty.pop()
            if cluster_id in clusters:
                name = self._cluster_states[cluster_id] = state_name(cluster_status(self.store.get, cluster_id))
                if name in ATTENTION:
                    self._attention.add(cluster_id)
                else:
                    self._attention.discard(cluster_id)
            else:
                self._cluster_states.pop(cluster_id, None)
                self._attention.discard(cluster_id)
        return True

    def needed_offline(self) -> list[str]:
        """The names of the offline peers a deployed cluster has as members, sorted."""
        blocked = blocked_peers(self.store)  # over the deployed clusters' members only
        names = []
        for peer_id in blocked:
            peer = self.store.get(ResourceKind.PEER, peer_id)
            if isinstance(peer, PeerDescriptor) and peer_id not in self._online:
                names.append(peer.name)
        return sorted(names, key=str.casefold)

    def attention(self) -> list[tuple[str, str, str]]:
        """(cluster name, state, why) of every cluster that needs attention: failed first, by name."""
        found = []
        for cluster_id in self._attention:
            name = self._cluster_states[cluster_id]
            cluster = self.store.get(ResourceKind.CLUSTER, cluster_id)
            if isinstance(cluster, ClusterDescriptor):
                status = cluster_status(self.store.get, cluster_id)
                found.append((cluster.name, name, status_detail(status)))
        return sorted(found, key=lambda t: (ATTENTION.index(t[1]), t[0].casefold()))

    def refresh(self) -> None:
        online, offline, demo, by_state = self.counts()
        stale = self.controller.stale
        grey = "#9a9a9a" if stale else ""
        self.peers_card.value.setText(str(online))
        self.peers_card.set_value_colour(grey)
        demo_note = f", {demo} of them demo benches" if demo else ""
        self.peers_card.detail.set_text(f"of {online + offline} peers{demo_note}")
        self.offline_card.value.setText(str(offline))
        needed = self.needed_offline() if offline else []
        self.offline_card.set_value_colour(grey or ("#b3261e" if needed else ""))
        if not offline:
            text = "every peer is connected" if online else "no peers yet"
        elif needed:
            shown = ", ".join(needed[:NAMED]) + (f" and {len(needed) - NAMED} more" if len(needed) > NAMED else "")
            text = f"{len(needed)} needed by a deployed cluster: {shown}"
        else:
            text = "no deployed cluster needs them"
        self.offline_card.detail.set_text(text)
        deployed, degraded = by_state.get("deployed", 0), by_state.get("degraded", 0)
        self.clusters_card.value.setText(str(deployed))
        self.clusters_card.set_value_colour(grey)
        total = sum(by_state.values())
        degraded_note = f"; {degraded} more deployed but degraded" if degraded else ""
        self.clusters_card.detail.set_text(f"healthy, of {total} clusters{degraded_note}")
        failed, waiting = by_state.get("failed", 0), by_state.get("waiting", 0)
        attention = failed + degraded + waiting
        self.attention_card.value.setText(str(attention))
        self.attention_card.set_value_colour(grey or ("#b3261e" if failed else "#b86e00" if attention else ""))
        lines = [f"{failed} failed, {degraded} degraded, {waiting} waiting"]
        needing = self.attention() if attention else []
        for name, state, why in needing[:NAMED]:
            lines.append(f"• {name}: {state}" + (f" — {why}" if why else ""))
        if len(needing) > NAMED:
            lines.append(f"and {len(needing) - NAMED} more (Deployments page)")
        self.attention_card.detail.set_lines(lines)
        self.states_label.setText(
            "Clusters by state: " + ", ".join(f"{name} {by_state.get(name, 0)}" for name in CLUSTER_STATES)
        )
        self.idle_hint.setVisible(self.active.rowCount() == 0)
