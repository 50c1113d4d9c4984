"""A peer's configuration, live: every parameter with kind, value, target and reported state.

Where an engineer looks when a deployment fails: the cluster's state, the bench's connection, a
summary line, and the table (sort by State to bring errors first).
"""

from __future__ import annotations

import html
from uuid import UUID

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTableView, QVBoxLayout, QWidget

from lea_app.controller import Controller
from lea_app.models.can_text import can_capability, can_capability_tooltip
from lea_app.models.configuration import PeerConfigurationModel
from lea_app.models.parameters import summarise
from lea_app.models.resources import cluster_status, progress_text, reason_text, status_text, waiting_names
from lea_app.sync.store import StoreChange
from lea_app.views.tables import configure_table
from resources.cluster import ClusterDescriptor
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.state import Deploying, Online, PeerConnectionState, Undeploying

HEADER_KINDS = (ResourceKind.PEER, ResourceKind.PEER_CONNECTION_STATE, ResourceKind.CLUSTER_STATE, ResourceKind.CLUSTER)


class PeerConfigurationDialog(QDialog):
    def __init__(self, controller: Controller, peer_id: UUID, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("peerConfigurationDialog")
        self.controller = controller
        self.store = controller.store
        self.peer_id = peer_id
        self.resize(1240, 520)
        layout = QVBoxLayout(self)
        self.heading = QLabel()
        layout.addWidget(self.heading)
        self.status = QLabel()
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.can = QLabel()
        self.can.setObjectName("benchCanCapability")
        layout.addWidget(self.can)
        self.summary = QLabel()
        self.summary.setObjectName("configurationSummary")
        layout.addWidget(self.summary)
        self.model = PeerConfigurationModel(self.store, peer_id, self)
        self.table = QTableView()
        self.table.setAccessibleName("Parameters")
        configure_table(self.table, self.model)
        layout.addWidget(self.table, 1)
        hint = QLabel("Sort by State to bring errors first. Hover a cell for the whole text.")
        hint.setStyleSheet("color:#6b6b6b;")
        layout.addWidget(hint)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout.addWidget(buttons)
        self.model.flushed.connect(self.refresh_header)
        self.destroyed.connect(self.store.listen(self._on_change))
        # Not live: the reported states are as of then, greyed like the pages' rows.
        self.model.set_stale(controller.stale)
        controller.sync_state_changed.connect(self._sync_state_changed)
        self.model.refresh_all()
        self.refresh_header()

    def _sync_state_changed(self, state: str) -> None:
        self.model.set_stale(self.controller.stale)

    def select_parameter(self, parameter_id: UUID) -> bool:
        """Select (and show) a parameter's row; False when the configuration has no such parameter."""
        self.model.flush()
        row = self.model.row_of(parameter_id)
        if row is None:
            return False
        self.table.selectRow(row)
        self.table.scrollTo(self.model.index(row, 0))
        return True

    def selected_parameter(self) -> UUID | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.id_at(rows[0].row()) if rows else None

    def _on_change(self, change: StoreChange) -> None:
        if change.kind in HEADER_KINDS:
            self.refresh_header()

    def refresh_header(self) -> None:
        peer = self.store.get(ResourceKind.PEER, self.peer_id)
        name = peer.name if isinstance(peer, PeerDescriptor) else str(self.peer_id)
        demo = isinstance(peer, PeerDescriptor) and peer.demo
        self.setWindowTitle(f"Configuration — {name}")
        self.heading.setText(
            f"<h3 style='margin:0'>Configuration of “{name}”{' (demo simulation)' if demo else ''}</h3>"
        )
        self.status.setText(f"{self._cluster_line()} &nbsp;·&nbsp; {self._connection_line(demo)}")
        self._refresh_can(demo)
        self.summary.setText(f"<b>{summarise(self.model.all_rows()).text()}</b>")

    def _cluster_line(self) -> str:
        configuration = self.model.configuration()
        if configuration is None or configuration.cluster is None:
            return "In no deployed cluster"
        cluster = self.store.get(ResourceKind.CLUSTER, configuration.cluster)
        cluster_name = cluster.name if isinstance(cluster, ClusterDescriptor) else str(configuration.cluster)[:8]
        status = cluster_status(self.store.get, configuration.cluster)
        text = f"Cluster <b>{cluster_name}</b>: {status_text(status)}"
        if isinstance(status, Deploying | Undeploying):
            text += f", {progress_text(status)}"
        reason = reason_text(status, waiting_names(self.store.get, status))
        return text + (f" — {html.escape(reason)}" if reason else "")

    def _refresh_can(self, demo: bool) -> None:
        """The bench's CAN capability, as its agent announced it (a demo bench's is simulated)."""
        connection = self.store.get(ResourceKind.PEER_CONNECTION_STATE, self.peer_id)
        state = connection.state if isinstance(connection, PeerConnectionState) else None
        online = state if isinstance(state, Online) else None
        agent = online.agent if online is not None else None
        capability = can_capability(demo, online is not None, agent)
        explained = can_capability_tooltip(demo, online is not None, agent)
        self.can.setText(f"CAN: <b>{capability or 'not known while offline'}</b> — {html.escape(explained)}")
        self.can.setToolTip(explained)

    def _connection_line(self, demo: bool) -> str:
        connection = self.store.get(ResourceKind.PEER_CONNECTION_STATE, self.peer_id)
        state = connection.state if isinstance(connection, PeerConnectionState) else None
        if not isinstance(state, Online):
            return "<span style='color:#6b6b6b'>Bench offline</span>"
        agent = f"lea-peer {state.agent.version}" if state.agent is not None else ("simulated" if demo else "agent")
        return f"<span style='color:#1b7f3b'>Bench online</span> ({agent} at {html.escape(state.remote_host)})"
