"""Table pages: peers, clusters, deployments. Each is a filter box, a row of commands and a table.

Every command is one QAction: its button (a QToolButton driven by the action), its place in the
window's menu, the table's context menu and its shortcut are that action, so they are enabled
alike, and a disabled one says why in its tooltip and status tip. A shortcut of a page's command is
live only while the page is shown (Qt ignores a shortcut whose widgets are all hidden).

A page never reaches for the window it sits in: what it cannot do itself (open an editor, confirm
a delete or an undeploy, show a history, go to another page) it asks for with a signal, which the
window connects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QMenu, QTableView, QToolButton, QVBoxLayout, QWidget

from lea_app.controller import Controller
from lea_app.models.resources import (
    ClusterRow,
    ClustersModel,
    DeploymentRow,
    DeploymentsModel,
    PeerRow,
    PeersModel,
    cluster_status,
    status_text,
)
from lea_app.models.table import ResourceTableModel
from lea_app.views.tables import EmptyState, configure_table
from resources import rules
from resources.cluster import ClusterDescriptor
from resources.derived import is_deployed
from resources.kinds import ResourceKind
from resources.state import Failed

Shortcut = QKeySequence | QKeySequence.StandardKey | str | None


def sentence(text: str) -> str:
    """A rule's message (lower-case, as the backend words it) as a tooltip's sentence."""
    return text[:1].upper() + text[1:] if text else text


def first_reason(*reasons: str | None) -> str | None:
    return next((r for r in reasons if r), None)


def deploy_refusal(controller: Controller, cluster_id: UUID | None) -> tuple[str | None, str]:
    """Why Deploy is refused for this cluster now (None: it may be deployed), and the command's
    text: "Retry" for a deployed cluster that failed, else "Deploy".

    Read from the store, not from a table row, so that a row not yet refreshed cannot let a second
    deployment of a deployed cluster through.
    """
    store = controller.store
    cluster = store.get(ResourceKind.CLUSTER, cluster_id) if cluster_id is not None else None
    if not isinstance(cluster, ClusterDescriptor):
        return "Select a cluster in the table first", "Deploy"
    status = cluster_status(store.get, cluster.id)
    deployed = is_deployed(store, cluster.id)
    failed = isinstance(status, Failed)
    text = "Retry" if deployed and failed else "Deploy"
    writable = controller.write_refusal("deploying")
    if writable is not None:
        return writable, text
    if deployed and not failed:
        return f"'{cluster.name}' is deployed already ({status_text(status)}); undeploy it to deploy it anew", text
    blocked = rules.not_deployable(store, cluster.id)
    if blocked is not None:
        return f"{sentence(blocked.message)}: undeploy that cluster first", text
    return None, text


def undeploy_refusal(controller: Controller, cluster_id: UUID | None) -> str | None:
    """Why Undeploy is refused for this cluster now (None: it may be undeployed)."""
    store = controller.store
    cluster = store.get(ResourceKind.CLUSTER, cluster_id) if cluster_id is not None else None
    if not isinstance(cluster, ClusterDescriptor):
        return "Select a cluster in the table first"
    return first_reason(
        controller.write_refusal("undeploying"),
        None if is_deployed(store, cluster.id) else f"'{cluster.name}' is not deployed",
    )


class TablePage(QWidget):
    title = ""
    #: What a row is, in tooltips ("Select a peer first").
    noun = "row"
    #: The command Enter and a double click on a row trigger.
    activate_key = "edit"
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
        # The selection follows its resource through filtering and re-sorting, or clears; never
        # another row Qt picks when the selected one goes (the commands would act on that one).
        # Connected before the view's own handlers (setModel), which move the selection.
        self._kept: UUID | None = None
        self._model_moving = False
        for about_to in (model.rowsAboutToBeRemoved, model.rowsAboutToBeInserted):
            about_to.connect(self._model_moves)
        model.modelAboutToBeReset.connect(self._model_moves)
        self.table = QTableView()
        self.table.setAccessibleName(f"{self.title} table")
        configure_table(self.table, model)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._show_context_menu)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.table.doubleClicked.connect(self._double_clicked)
        model.flushed.connect(self._model_moved)
        layout.addWidget(self.table, 1)
        #: What to do next, inside the table's area while it has no rows.
        self.empty_hint = EmptyState(self.table)
        #: The page's commands by key, in the order of their buttons (the window's menu shows them).
        self.commands: dict[str, QAction] = {}
        self.buttons: dict[str, QToolButton] = {}
        self._tips: dict[str, str] = {}
        self._row_commands: list[str] = []
        #: The context menu last shown on the table (kept for tests and so it is not collected).
        self.context_menu: QMenu | None = None
        # Bound methods (not lambdas): PySide disconnects them when the page is deleted.
        controller.sync_state_changed.connect(self._sync_state_changed)
        controller.identity_changed.connect(self.update_actions)

    def _sync_state_changed(self, state: str) -> None:
        self.model.set_stale(self.controller.stale)
        self.stale_label.setVisible(self.controller.stale)
        self.stale_label.setText(f"Not live: {self.controller.as_of_text()}")
        self.update_actions()

    # -- commands --------------------------------------------------------------------------
    def add_command(
        self, key: str, text: str, slot: Callable[[], object], tip: str, *, shortcut: Shortcut = None,
        on_table: bool = False, row: bool = True,
    ) -> QAction:
        """One command: a QAction with its button. ``on_table``: its shortcut works while the table
        has the focus (Enter, Delete), else while the page is shown. ``row``: it acts on the selected
        row (and is in the row's context menu)."""
        action = QAction(text, self)
        action.setIconText(text)  # a tool button shows the icon text, which Qt derives without the "…"
        action.setObjectName(key)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if on_table:
            action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
            self.table.addAction(action)
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        button = QToolButton()
        button.setDefaultAction(action)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.actions_row.addWidget(button)
        self.commands[key] = action
        self.buttons[key] = button
        self._tips[key] = tip
        if row:
            self._row_commands.append(key)
        return action

    def set_command(self, key: str, refusal: str | None, *, text: str | None = None, tip: str | None = None) -> None:
        """Enable a command, or disable it saying why (``refusal``) in its tooltip and status tip."""
        action = self.commands[key]
        if text is not None and text != action.text():
            action.setText(text)
            action.setIconText(text)
        if tip is not None:
            self._tips[key] = tip
        action.setEnabled(refusal is None)
        shown = refusal if refusal is not None else self._tips[key]
        action.setToolTip(shown)
        action.setStatusTip(shown)

    def show_command(self, key: str, visible: bool) -> None:
        """Show or hide a command: its action (menus, shortcut) and its button alike."""
        self.commands[key].setVisible(visible)
        self.buttons[key].setVisible(visible)

    def finish_actions(self) -> None:
        self.actions_row.addStretch(1)
        self.update_actions()

    def nothing_selected(self) -> str:
        return f"Select a {self.noun} in the table first"

    def context_menu_for(self, pos: QPoint) -> QMenu:
        """The context menu at ``pos`` (viewport coordinates): a row's commands, after selecting the
        row; on empty space, the page's other commands (New…)."""
        index = self.table.indexAt(pos)
        if index.isValid():
            if index.row() not in {i.row() for i in self.table.selectionModel().selectedRows()}:
                self.table.selectRow(index.row())
            keys = self._row_commands
        else:
            keys = [k for k in self.commands if k not in self._row_commands]
        menu = QMenu(self)
        menu.setToolTipsVisible(True)
        for key in keys:
            menu.addAction(self.commands[key])
        return menu

    def _show_context_menu(self, pos: QPoint) -> None:
        if self.context_menu is not None:
            self.context_menu.deleteLater()
        self.context_menu = self.context_menu_for(pos)
        self.context_menu.popup(self.table.viewport().mapToGlobal(pos))

    def _double_clicked(self, *_: object) -> None:
        self.commands[self.activate_key].trigger()  # nothing when disabled

    # -- selection -------------------------------------------------------------------------
    def selected_id(self) -> UUID | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.id_at(rows[0].row()) if rows else None

    def select(self, id: UUID) -> None:
        self.model.flush()
        row = self.model.row_of(id)
        if row is not None:
            self.table.selectRow(row)
            self.table.scrollTo(self.model.index(row, 0))

    def _selection_changed(self, *_: object) -> None:
        if not self._model_moving:
            self._kept = self.selected_id()
            self.update_actions()

    def _model_moves(self, *_: object) -> None:
        self._model_moving = True

    def _model_moved(self) -> None:
        """After a flush: the kept resource selected again (at its new row), or nothing selected."""
        if self._model_moving:
            self._model_moving = False
            kept = self._kept
            row = self.model.row_of(kept) if kept is not None else None
            if row is None:
                self._kept = None
                if self.table.selectionModel().hasSelection():
                    self.table.clearSelection()
                self.table.selectionModel().clearCurrentIndex()
            elif self.selected_id() != kept:
                self.table.selectRow(row)
        self.update_actions()

    def activate(self) -> None:
        """Double click or Enter on a row."""

    def request_create(self) -> None:
        self.create_requested.emit()

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
    noun = "peer"
    #: Set up bench…: the token and agent set-up of this (non-demo) peer (its id).
    bench_setup_requested = Signal(object)
    #: Configuration…: this peer's configuration and reported parameter states (its id).
    configuration_requested = Signal(object)

    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(controller, PeersModel(controller.store), parent)
        self.add_command(
            "new", "New peer…", self.request_create, "Create a peer (Ctrl+N)",
            shortcut="Ctrl+Shift+P", row=False,
        )
        self.add_command(
            "edit", "Edit…", self.activate, "Edit the selected peer (Enter)", shortcut="Return", on_table=True
        )
        self.add_command(
            "delete", "Delete…", self.delete, "Delete the selected peer (Del)",
            shortcut=QKeySequence.StandardKey.Delete, on_table=True,
        )
        self.add_command("history", "History", self.history, "Show the selected peer's history")
        self.add_command(
            "bench", "Set up bench…", self.set_up_bench, "Create the bench's token and show how to run its agent"
        )
        self.add_command(
            "configuration", "Configuration…", self.show_configuration,
            "The selected peer's configuration: every parameter and its reported state, live",
        )
        # Last: it is shown only for a demo bench, and shifts no other button when it appears.
        self.add_command(
            "online", "Switch demo bench off", self.toggle_online, "Simulate the demo bench going off or on line"
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
        if id is not None and self.commands["delete"].isEnabled():
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
        if row is not None and row.peer.demo and self.controller.can_write:
            self.controller.run(
                lambda: self.controller.connection.set_demo_peer_online(row.peer.id, not row.online),
                success=f"Demo bench '{row.peer.name}' switched {'off' if row.online else 'on'}",
            )

    def update_actions(self) -> None:
        super().update_actions()
        row = self.row()
        selected = None if row is not None else self.nothing_selected()
        controller = self.controller
        self.set_command("new", controller.write_refusal("creating a peer"))
        self.set_command(
            "edit", selected, text="Edit…" if controller.can_write else "View…",
            tip="Edit the selected peer (Enter)" if controller.can_write
            else "Show the selected peer, read-only (Enter)",
        )
        in_use = rules.peer_in_use(controller.store, row.peer.id) if row is not None else None
        self.set_command("delete", first_reason(
            controller.write_refusal("deleting a peer"), selected,
            f"{sentence(in_use.message)}: remove it from those clusters first" if in_use is not None else None,
        ))
        self.set_command("history", selected)
        is_demo = row is not None and row.peer.demo
        self.set_command("bench", first_reason(
            controller.admin_refusal("setting up a bench (it creates a token)"), selected,
            "A demo bench is simulated: it runs no agent" if is_demo else None,
        ))
        self.set_command("configuration", selected)
        demo_controls = controller.connected and controller.connection.demo_controls
        self.show_command("online", demo_controls and is_demo)
        if row is not None and is_demo:
            self.set_command(
                "online", controller.write_refusal("switching a demo bench"),
                text="Switch demo bench off" if row.online else "Switch demo bench on",
            )

    def empty_text(self) -> str:
        return (
            "No benches yet — add one with “New peer…” and “Set up bench…” to connect its agent, "
            "or start LEA with --demo to try a simulated fleet."
        )


class ClustersPage(TablePage):
    title = "Clusters"
    noun = "cluster"
    #: Undeploy: the confirmation for undeploying this cluster (its id).
    undeploy_requested = Signal(object)

    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(controller, ClustersModel(controller.store), parent)
        self.add_command(
            "new", "New cluster…", self.request_create, "Create a cluster (Ctrl+N)",
            shortcut="Ctrl+Shift+C", row=False,
        )
        self.add_command(
            "edit", "Edit…", self.activate, "Edit the selected cluster (Enter)",
            shortcut="Return", on_table=True,
        )
        self.add_command(
            "delete", "Delete…", self.delete, "Delete the selected cluster (Del)",
            shortcut=QKeySequence.StandardKey.Delete, on_table=True,
        )
        self.add_command("deploy", "Deploy", self.deploy, "Deploy the selected cluster (Ctrl+D)", shortcut="Ctrl+D")
        self.add_command(
            "undeploy", "Undeploy…", self.undeploy, "Undeploy the selected cluster (Ctrl+U)", shortcut="Ctrl+U"
        )
        self.add_command("history", "History", self.history, "Show the selected cluster's history")
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
        if id is not None and self.commands["delete"].isEnabled():
            self.delete_requested.emit(id)

    def deploy(self) -> None:
        row = self.row()
        if row is not None and deploy_refusal(self.controller, row.cluster.id)[0] is None:
            self.controller.deploy(row.cluster.id, row.cluster.name)

    def undeploy(self) -> None:
        id = self.selected_id()
        if id is not None and undeploy_refusal(self.controller, id) is None:
            self.undeploy_requested.emit(id)

    def history(self) -> None:
        row = self.row()
        if row is not None:
            self.history_requested.emit(row.cluster.kind, row.cluster.id, row.cluster.name)

    def update_actions(self) -> None:
        super().update_actions()
        row = self.row()
        id = row.cluster.id if row is not None else None
        selected = None if row is not None else self.nothing_selected()
        controller = self.controller
        writable = controller.can_write
        self.set_command("new", controller.write_refusal("creating a cluster"))
        editable = writable and not (row is not None and row.deployed)  # a deployed cluster is read-only
        self.set_command(
            "edit", selected, text="Edit…" if editable else "View…",
            tip="Edit the selected cluster (Enter)" if editable else "Show the selected cluster, read-only (Enter)",
        )
        deployed = rules.cluster_deployed(controller.store, id, "deleted") if id is not None else None
        self.set_command("delete", first_reason(
            controller.write_refusal("deleting a cluster"), selected,
            sentence(deployed.message) if deployed is not None else None,
        ))
        refusal, text = deploy_refusal(controller, id)
        self.set_command(
            "deploy", refusal, text=text,
            tip="Deploy the failed cluster again (Ctrl+D)" if text == "Retry"
            else "Deploy the selected cluster (Ctrl+D)",
        )
        self.set_command("undeploy", undeploy_refusal(controller, id))
        self.set_command("history", selected)

    def empty_text(self) -> str:
        return "No clusters yet — group devices of your peers with “New cluster…” (at least two devices)."


class DeploymentsPage(TablePage):
    title = "Deployments"
    noun = "deployment"
    activate_key = "cluster"
    #: Show cluster, Enter or a double click: this cluster (its id) on the Clusters page.
    cluster_requested = Signal(object)
    #: Failing bench…: the configuration of the peer a Failed deployment names (peer id, parameter id or None).
    configuration_requested = Signal(object, object)
    #: Undeploy: the confirmation for undeploying this cluster (its id).
    undeploy_requested = Signal(object)

    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(controller, DeploymentsModel(controller.store), parent)
        self.add_command(
            "retry", "Deploy again", self.retry, "Deploy the cluster again (Ctrl+D)", shortcut="Ctrl+D"
        )
        self.add_command(
            "undeploy", "Undeploy…", self.undeploy, "Undeploy the selected cluster (Ctrl+U)", shortcut="Ctrl+U"
        )
        self.add_command(
            "cluster", "Show cluster", self.show_cluster, "Go to the cluster (Enter)",
            shortcut="Return", on_table=True,
        )
        self.add_command(
            "failing", "Failing bench…", self.show_failing_bench,
            "The configuration of the bench that failed, at the parameter that failed",
        )
        self.finish_actions()

    def row(self) -> DeploymentRow | None:
        id = self.selected_id()
        return self.model.row_data(id) if id else None

    def retry(self) -> None:
        row = self.row()
        if row is not None and deploy_refusal(self.controller, row.cluster.id)[0] is None:
            self.controller.deploy(row.cluster.id, row.cluster.name)

    def undeploy(self) -> None:
        id = self.selected_id()
        if id is not None and undeploy_refusal(self.controller, id) is None:
            self.undeploy_requested.emit(id)

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
        id = row.cluster.id if row is not None else None
        selected = None if row is not None else self.nothing_selected()
        refusal, text = deploy_refusal(self.controller, id)
        self.set_command(
            "retry", refusal, text="Retry" if text == "Retry" else "Deploy again",
            tip="Deploy the failed cluster again (Ctrl+D)" if text == "Retry"
            else "Deploy the cluster again: its undeployment is not finished (Ctrl+D)",
        )
        self.set_command("undeploy", undeploy_refusal(self.controller, id))
        self.set_command("cluster", selected)
        failed = row is not None and isinstance(row.status, Failed) and row.status.peer is not None
        self.set_command("failing", first_reason(
            selected, None if failed else "Only a failed deployment names a failing bench",
        ))

    def empty_text(self) -> str:
        return "No deployments yet — select a cluster on the Clusters page and deploy it (Ctrl+D)."

