"""Table pages: peers, clusters, deployments. Each is a filter box, a row of actions and a table.

A page never reaches for the window it sits in: what it cannot do itself (open an editor, confirm
a delete, show a history, go to another page) it asks for with a signal, which the window connects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QTableView, QVBoxLayout, QWidget

from lea_app.controller import Controller
from lea_app.models.resources import ClusterRow, ClustersModel, DeploymentRow, DeploymentsModel, PeerRow, PeersModel
from lea_app.models.table import ResourceTableModel
from lea_app.views.tables import EmptyState, configure_table
from resources.state import Deployed, Failed


class TablePage(QWidget):
    title = ""
    #: New…: a new resource of the page's kind, in an editor.
    create_requested = Signal()
    #: Edit… (View…), Enter or a double click: the editor of this resource (its id).
    edit_requested = Signal(object)
    #: Delete…: the confirmation for deleting this resource (its id).
    delete_requested = Signal(object)
    #: History: this resource's stored changes (kind, id, name).
    history_requested = Signal(object, object, str)

    def __init__(self, controller: Controller, model: ResourceTableModel[Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.model = model
        model.setParent(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        top = QHBoxLayout()
        heading = QLabel(f"<h2 style='margin:0'>{self.title}</h2>")
        top.addWidget(heading)
        #: While LEA is not live: the rows are greyed and this says as of when they are.
        self.stale_label = QLabel()
        self.stale_label.setObjectName("staleLabel")
        self.stale_label.setStyleSheet("color:#6b6b6b; padding-left:10px;")
        self.stale_label.setAccessibleName("Data not live")
        self.stale_label.hide()
        top.addWidget(self.stale_label)
        top.addStretch(1)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter (Ctrl+F)")
        self.filter.setClearButtonEnabled(True)
        self.filter.setMaximumWidth(280)
        self.filter.setAccessibleName(f"Filter {self.title.lower()}")
        self.filter.textChanged.connect(model.set_filter_text)
        self.filter.textChanged.connect(lambda *_: self.update_actions())  # an empty table's hint too
        top.addWidget(self.filter)
        layout.addLayout(top)
        self.actions_row = QHBoxLayout()
        layout.addLayout(self.actions_row)
        self.table = QTableView()
        self.table.setAccessibleName(f"{self.title} table")
        configure_table(self.table, model)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self.update_actions())
        self.table.doubleClicked.connect(lambda *_: self.activate())
        model.flushed.connect(self.update_actions)
        layout.addWidget(self.table, 1)
        #: What to do next, inside the table's area while it has no rows.
        self.empty_hint = EmptyState(self.table)
        self.buttons: dict[str, QPushButton] = {}
        # Bound methods (not lambdas): PySide disconnects them when the page is deleted.
        controller.sync_state_changed.connect(self._sync_state_changed)
        controller.identity_changed.connect(self.update_actions)

    def _sync_state_changed(self, state: str) -> None:
        self.model.set_stale(self.controller.stale)
        self.stale_label.setVisible(self.controller.stale)
        self.stale_label.setText(f"Not live: {self.controller.as_of_text()}")
        self.update_actions()

    def add_button(self, key: str, text: str, slot: Callable[[], object], tip: str = "") -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip or text)
        button.clicked.connect(slot)
        self.actions_row.addWidget(button)
        self.buttons[key] = button
        return button

    def finish_actions(self) -> None:
        self.actions_row.addStretch(1)
        self.update_actions()

    def selected_id(self) -> UUID | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.id_at(rows[0].row()) if rows else None

    def select(self, id: UUID) -> None:
        self.model.flush()
        row = self.model.row_of(id)
        if row is not None:
            self.table.selectRow(row)
            self.table.scrollTo(self.model.index(row, 0))

    def activate(self) -> None:
        """Double click or Enter on a row."""

    def update_actions(self) -> None:
        count = self.model.rowCount()
        if count == 0:
            self.empty_hint.set_text(
                "Nothing matches the filter — clear the filter box to see every row."
                if self.model.filter_text else self.empty_text()
            )
        self.empty_hint.setVisible(count == 0)

    def empty_text(self) -> str:
        return "Nothing here yet."

    def focus_filter(self) -> None:
        self.filter.setFocus()
        self.filter.selectAll()


class PeersPage(TablePage):
    title = "Peers"
    #: Set up bench…: the token and agent set-up of this (non-demo) peer (its id).
    bench_setup_requested = Signal(object)
    #: Configuration…: this peer's configuration and reported parameter states (its id).
    configuration_requested = Signal(object)

    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(controller, PeersModel(controller.store), parent)
        self.add_button("new", "New peer…", lambda: self.create_requested.emit(), "Create a peer (Ctrl+N)")
        self.add_button("edit", "Edit…", self.activate, "Edit the selected peer (Enter)")
        self.add_button("delete", "Delete…", self.delete, "Delete the selected peer (Del)")
        self.add_button("history", "History", self.history, "Show the selected peer's history")
        self.add_button(
            "online", "Switch demo bench off", self.toggle_online, "Simulate the demo bench going off or on line"
        )
        self.add_button(
            "bench", "Set up bench…", self.set_up_bench, "Create the bench's token and show how to run its agent"
        )
        self.add_button(
            "configuration", "Configuration…", self.show_configuration,
            "The selected peer's configuration: every parameter and its reported state, live",
        )
        self.finish_actions()

    def row(self) -> PeerRow | None:
        id = self.selected_id()
        return self.model.row_data(id) if id else None

    def activate(self) -> None:
        id = self.selected_id()
        if id is not None:
            self.edit_requested.emit(id)

    def delete(self) -> None:
        id = self.selected_id()
        if id is not None:
            self.delete_requested.emit(id)

    def history(self) -> None:
        row = self.row()
        if row is not None:
            self.history_requested.emit(row.peer.kind, row.peer.id, row.peer.name)

    def set_up_bench(self) -> None:
        row = self.row()
        if row is not None and not row.peer.demo and self.controller.can_admin:
            self.bench_setup_requested.emit(row.peer.id)

    def show_configuration(self) -> None:
        id = self.selected_id()
        if id is not None:
            self.configuration_requested.emit(id)

    def toggle_online(self) -> None:
        row = self.row()
        if row is not None and row.peer.demo:
            self.controller.run(
                lambda: self.controller.connection.set_demo_peer_online(row.peer.id, not row.online),
                success=f"Demo bench '{row.peer.name}' switched {'off' if row.online else 'on'}",
            )

    def update_actions(self) -> None:
        super().update_actions()
        row = self.row()
        writable = self.controller.can_write
        self.buttons["new"].setEnabled(writable)
        self.buttons["edit"].setEnabled(row is not None)
        self.buttons["edit"].setText("Edit…" if writable else "View…")
        self.buttons["delete"].setEnabled(writable and row is not None)
        self.buttons["history"].setEnabled(row is not None)
        demo_controls = self.controller.connected and self.controller.connection.demo_controls
        is_demo = row is not None and row.peer.demo
        self.buttons["online"].setVisible(demo_controls)
        self.buttons["online"].setEnabled(writable and is_demo)
        if row is not None and is_demo:
            self.buttons["online"].setText("Switch demo bench off" if row.online else "Switch demo bench on")
        bench = self.buttons["bench"]
        bench.setEnabled(self.controller.can_admin and row is not None and not is_demo)
        if row is not None and is_demo:
            bench.setToolTip("A demo bench is simulated: it runs no agent")
        elif not self.controller.can_admin:
            bench.setToolTip("Setting up a bench creates a token: that needs an admin token and a live connection")
        else:
            bench.setToolTip("Create the bench's token and show how to run its agent")
        self.buttons["configuration"].setEnabled(row is not None)

    def empty_text(self) -> str:
        return (
            "No benches yet — add one with “New peer…” and “Set up bench…” to connect its agent, "
            "or start LEA with --demo to try a simulated fleet."
        )


class ClustersPage(TablePage):
    title = "Clusters"
    #: The user clicked a cluster's Deploy toggle (cluster id, deploy), while writes are allowed.
    deploy_toggled = Signal(object, bool)

    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        model = ClustersModel(controller.store)
        super().__init__(controller, model, parent)
        model.deploy_toggled.connect(self.deploy_toggled)
        self.add_button("new", "New cluster…", lambda: self.create_requested.emit(), "Create a cluster (Ctrl+N)")
        self.add_button("edit", "Edit…", self.activate, "Edit the selected cluster (Enter)")
        self.add_button("delete", "Delete…", self.delete, "Delete the selected cluster (Del)")
        self.add_button("deploy", "Deploy", self.deploy, "Deploy the selected cluster (Ctrl+D)")
        self.add_button("undeploy", "Undeploy", self.undeploy, "Undeploy the selected cluster (Ctrl+U)")
        self.add_button("history", "History", self.history, "Show the selected cluster's history")
        self.finish_actions()

    def row(self) -> ClusterRow | None:
        id = self.selected_id()
        return self.model.row_data(id) if id else None

    def activate(self) -> None:
        id = self.selected_id()
        if id is not None:
            self.edit_requested.emit(id)

    def delete(self) -> None:
        id = self.selected_id()
        if id is not None:
            self.delete_requested.emit(id)

    def deploy(self) -> None:
        row = self.row()
        if row is not None:
            self.controller.deploy(row.cluster.id, row.cluster.name)

    def undeploy(self) -> None:
        row = self.row()
        if row is not None and row.deployed:
            self.controller.undeploy(row.cluster.id, row.cluster.name)

    def history(self) -> None:
        row = self.row()
        if row is not None:
            self.history_requested.emit(row.cluster.kind, row.cluster.id, row.cluster.name)

    def update_actions(self) -> None:
        super().update_actions()
        row = self.row()
        writable = self.controller.can_write
        self.model.checks_enabled = writable
        self.buttons["new"].setEnabled(writable)
        self.buttons["edit"].setEnabled(row is not None)
        self.buttons["edit"].setText("Edit…" if writable and row is not None and not row.deployed else "View…")
        self.buttons["delete"].setEnabled(writable and row is not None)
        failed = row is not None and isinstance(row.status, Failed)
        self.buttons["deploy"].setEnabled(writable and row is not None and (not row.deployed or failed))
        self.buttons["deploy"].setText("Retry" if failed and row is not None and row.deployed else "Deploy")
        self.buttons["undeploy"].setEnabled(writable and row is not None and row.deployed)
        self.buttons["history"].setEnabled(row is not None)

    def empty_text(self) -> str:
        return "No clusters yet — group devices of your peers with “New cluster…” (at least two devices)."


class DeploymentsPage(TablePage):
    title = "Deployments"
    #: Show cluster, Enter or a double click: this cluster (its id) on the Clusters page.
    cluster_requested = Signal(object)
    #: Failing bench…: the configuration of the peer a Failed deployment names (peer id, parameter id or None).
    configuration_requested = Signal(object, object)

    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(controller, DeploymentsModel(controller.store), parent)
        self.add_button("retry", "Deploy again", self.retry, "Store the deployment again (retries a failed one)")
        self.add_button("undeploy", "Undeploy", self.undeploy, "Undeploy the selected cluster (Ctrl+U)")
        self.add_button("cluster", "Show cluster", self.show_cluster, "Go to the cluster")
        self.add_button(
            "failing", "Failing bench…", self.show_failing_bench,
            "The configuration of the bench that failed, at the parameter that failed",
        )
        self.finish_actions()

    def row(self) -> DeploymentRow | None:
        id = self.selected_id()
        return self.model.row_data(id) if id else None

    def retry(self) -> None:
        row = self.row()
        if row is not None:
            self.controller.deploy(row.cluster.id, row.cluster.name)

    def undeploy(self) -> None:
        row = self.row()
        if row is not None and row.requested:
            self.controller.undeploy(row.cluster.id, row.cluster.name)

    def show_cluster(self) -> None:
        row = self.row()
        if row is not None:
            self.cluster_requested.emit(row.cluster.id)

    activate = show_cluster

    def show_failing_bench(self) -> None:
        row = self.row()
        if row is not None and isinstance(row.status, Failed) and row.status.peer is not None:
            self.configuration_requested.emit(row.status.peer, row.status.parameter)

    def update_actions(self) -> None:
        super().update_actions()
        row = self.row()
        writable = self.controller.can_write
        self.buttons["retry"].setEnabled(writable and row is not None and not isinstance(row.status, Deployed))
        self.buttons["undeploy"].setEnabled(writable and row is not None and row.requested)
        self.buttons["cluster"].setEnabled(row is not None)
        failed = row is not None and isinstance(row.status, Failed) and row.status.peer is not None
        self.buttons["failing"].setEnabled(failed)

    def empty_text(self) -> str:
        return "No deployments yet — select a cluster on the Clusters page and deploy it (Ctrl+D)."

