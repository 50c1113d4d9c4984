"""The main window: navigation, pages, a non-modal message bar, status bar and shortcuts.

It owns the pages and connects what they ask for (editors, delete confirmations, histories,
deploy toggles) to the editors, dialogs and the controller.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from uuid import UUID

from PySide6.QtCore import QByteArray, QEvent, QSettings, QSize, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from lea_app.controller import Controller
from lea_app.sync.budget import UI_BUDGET
from lea_app.views.app_icon import app_icon
from lea_app.views.bench_dialog import BenchSetupDialog
from lea_app.views.configuration_dialog import PeerConfigurationDialog
from lea_app.views.connect_dialog import ConnectDialog, ConnectionChoice
from lea_app.views.dashboard import DashboardPage
from lea_app.views.dialogs import (
    cluster_benches,
    cluster_delete_blockers,
    cluster_summary,
    confirm_delete,
    confirm_undeploy,
    peer_delete_blockers,
    show_about,
)
from lea_app.views.editors.base import ResourceEditor
from lea_app.views.editors.cluster import ClusterEditor
from lea_app.views.editors.peer import PeerEditor
from lea_app.views.event_log import EventLogPage
from lea_app.views.focus import install_focus_ring
from lea_app.views.message_bar import MessageBar
from lea_app.views.navigation import Navigation
from lea_app.views.notifications import DeploymentNews, DesktopNotifier
from lea_app.views.pages import ClustersPage, DeploymentsPage, PeersPage, TablePage, undeploy_refusal
from resources.cluster import ClusterDescriptor
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor

SYNC_TEXT = {
    "syncing": "Synchronising…",
    "live": "Live",
    "resuming": "Connection lost: reconnecting… (read-only)",
    "stopped": "Stopped",
}


#: The first window's size, made smaller where the screen's available area is (fit_to_screen).
DEFAULT_SIZE = QSize(1200, 760)
#: Small enough for a 1366x768 screen at 150 % (910x512 logical pixels, less a panel).
MINIMUM_SIZE = QSize(760, 440)
FRAME_ALLOWANCE = QSize(8, 40)
CONNECTION_LOST = "Connection to the backend lost: reconnecting. LEA is read-only."


class MainWindow(QMainWindow):
    closed = Signal()

    def __init__(
        self,
        controller: Controller,
        settings: QSettings,
        *,
        data_dir: str = "",
        demo: bool = False,
        log_path: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        install_focus_ring()
        self.controller = controller
        self.settings = settings
        self.data_dir = data_dir
        self.demo = demo
        self.log_path = log_path
        self._shown_once = False
        #: Warnings about the backend process, withdrawn once LEA is live again.
        self._connection_warnings: set[str] = set()
        self.editors: dict[tuple[str, UUID | None], ResourceEditor[Any]] = {}
        #: Set by the application: connect to the backend chosen in the connection dialog.
        self.switch_backend: Callable[[ConnectionChoice], object] | None = None
        self.dialogs: list[QWidget] = []
        #: Open Set up bench and Configuration windows, by (what, peer id).
        self.windows: dict[tuple[str, UUID], QWidget] = {}
        #: Closing without the unsaved-editors question (after "Discard and quit", or on SIGTERM).
        self._closing = False
        self.quit_box: QMessageBox | None = None
        #: The connect dialog LEA opens when the start-up connection fails (lea_app.app).
        self.connect_dialog: ConnectDialog | None = None
        self.setWindowTitle("LEA desktop — demo (simulated benches)" if demo else "LEA desktop")
        self.setWindowIcon(app_icon())
        self.setMinimumSize(MINIMUM_SIZE)

        central = QWidget()
        outer = QVBoxLayout(central)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        self.nav = Navigation()
        self.stack = QStackedWidget()
        self.dashboard = DashboardPage(controller)
        self.peers = PeersPage(controller)
        self.clusters = ClustersPage(controller)
        self.deployments = DeploymentsPage(controller)
        self.event_log = EventLogPage(controller)
        self.pages: list[DashboardPage | TablePage | EventLogPage] = [
            self.dashboard, self.peers, self.clusters, self.deployments, self.event_log,
        ]
        for i, page in enumerate(self.pages):
            item = QListWidgetItem(page.title)
            item.setToolTip(f"{page.title} (Ctrl+{i + 1})")
            self.nav.addItem(item)
            self.stack.addWidget(page)
        self.nav.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.nav.fit()
        # Messages float over the bottom of the pages: nothing moves when one appears (issue #16).
        self.message_bar = MessageBar(queued=True, host=self.stack)
        self.stack.currentChanged.connect(self.message_bar.raise_)  # the page shown is raised: the bar above it
        body.addWidget(self.nav)
        body.addWidget(self.stack, 1)
        outer.addLayout(body, 1)
        self.setCentralWidget(central)

        self.sync_label = QLabel(SYNC_TEXT["syncing"])
        self.sync_label.setAccessibleName("Sync state")
        self.backend_label = QLabel("Connecting…")
        self.statusBar().addWidget(self.sync_label)
        self.statusBar().addPermanentWidget(self.backend_label)
        if demo:
            demo_label = QLabel(" DEMO: simulated test benches ")
            demo_label.setStyleSheet("background:#fff4ce; color:#5c4400; border-radius:3px;")
            self.statusBar().addPermanentWidget(demo_label)

        self._connect_pages()
        self._build_menus()
        controller.message.connect(self.show_message)
        self.news = DeploymentNews(controller, self)
        self.desktop = DesktopNotifier(self, app_icon())
        self.news.news.connect(self._deployment_news)
        controller.sync_state_changed.connect(self._sync_state_changed)
        controller.identity_changed.connect(self._identity_changed)
        controller.backend_status.connect(self._backend_status)
        self._restore_settings()

    def _connect_pages(self) -> None:
        self.peers.create_requested.connect(functools.partial(self.open_peer_editor, None))
        self.peers.edit_requested.connect(self.open_peer_editor)
        self.peers.delete_requested.connect(self.confirm_delete_peer)
        self.peers.bench_setup_requested.connect(self.open_bench_setup)
        self.peers.configuration_requested.connect(self.open_configuration)
        self.clusters.create_requested.connect(functools.partial(self.open_cluster_editor, None))
        self.clusters.edit_requested.connect(self.open_cluster_editor)
        self.clusters.delete_requested.connect(self.confirm_delete_cluster)
        self.clusters.undeploy_requested.connect(self.confirm_undeploy)
        self.deployments.undeploy_requested.connect(self.confirm_undeploy)
        for page in (self.peers, self.clusters):
            page.history_requested.connect(self.show_history)
        self.deployments.cluster_requested.connect(self.go_to_cluster)
        self.deployments.configuration_requested.connect(self.open_configuration)

    # -- menus and shortcuts ---------------------------------------------------------------
    def _build_menus(self) -> None:
        """The menus hold the pages' own commands (the QActions of their buttons), never copies."""
        file_menu = self.menuBar().addMenu("&File")
        file_menu.setToolTipsVisible(True)
        file_menu.addAction(self.peers.commands["new"])
        file_menu.addAction(self.clusters.commands["new"])
        file_menu.addSeparator()
        self._action(file_menu, "C&onnect to…", "Ctrl+Shift+O", self.open_connect_dialog)
        file_menu.addSeparator()
        self.quit_action = self._action(file_menu, "&Quit", QKeySequence.StandardKey.Quit, self.close)
        go_menu = self.menuBar().addMenu("&Go")
        for i, page in enumerate(self.pages):
            self._action(go_menu, page.title, f"Ctrl+{i + 1}", functools.partial(self.show_page, i))
        #: The shown page's commands (Deploy Ctrl+D, Undeploy Ctrl+U, Delete…): rebuilt on a page switch,
        #: so that a shortcut only ever acts on the page in view.
        self.page_menu = self.menuBar().addMenu("&Peer")
        self.page_menu.setToolTipsVisible(True)
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&About LEA desktop", None, self.show_about)
        page_keys: list[tuple[Any, Any]] = [
            (QKeySequence.StandardKey.Find, self._focus_filter),
            (QKeySequence.StandardKey.New, self._new_on_page),
        ]
        for key, slot in page_keys:
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.activated.connect(slot)
        self.stack.currentChanged.connect(self._page_shown)
        self._page_shown(self.stack.currentIndex())

    def _action(self, menu: Any, text: str, shortcut: Any, slot: Any) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _page_shown(self, index: int) -> None:
        page = self.stack.widget(index)
        menu = self.page_menu
        menu.clear()
        if isinstance(page, TablePage):
            menu.setTitle({"peer": "&Peer", "cluster": "&Cluster", "deployment": "&Deployment"}[page.noun])
            for key, action in page.commands.items():
                if key == "new":
                    continue  # in the File menu
                menu.addAction(action)
        menu.menuAction().setVisible(isinstance(page, TablePage))

    def show_page(self, index: int) -> None:
        self.nav.setCurrentRow(index)

    def current_table_page(self) -> TablePage | None:
        page = self.stack.currentWidget()
        return page if isinstance(page, TablePage) else None

    def _focus_filter(self) -> None:
        focus = getattr(self.stack.currentWidget(), "focus_filter", None)  # table pages and the event log
        if focus is not None:
            focus()

    def _new_on_page(self) -> None:
        """Ctrl+N: the shown page's New… command (a new peer on a page without one), as enabled."""
        page = self.clusters if self.stack.currentWidget() is self.clusters else self.peers
        page.commands["new"].trigger()

    # -- editors and dialogs ---------------------------------------------------------------
    def _open_editor(self, key: tuple[str, UUID | None], factory: Callable[[], ResourceEditor[Any]]) -> QWidget:
        existing = self.editors.get(key)
        if existing is not None and existing.isVisible():
            existing.raise_()
            existing.activateWindow()
            return existing
        editor = factory()
        self.editors[key] = editor
        editor.destroyed.connect(lambda *_: self.editors.pop(key, None))
        editor.show()
        return editor

    def open_peer_editor(self, peer_id: UUID | None) -> QWidget | None:
        if peer_id is None and not self.controller.can_write:
            return None
        return self._open_editor(("peer", peer_id), lambda: PeerEditor(self.controller, peer_id, self))

    def open_cluster_editor(self, cluster_id: UUID | None) -> QWidget | None:
        if cluster_id is None and not self.controller.can_write:
            return None
        return self._open_editor(("cluster", cluster_id), lambda: ClusterEditor(self.controller, cluster_id, self))

    def _open_window(self, key: tuple[str, UUID], factory: Callable[[], QWidget]) -> QWidget:
        """One non-modal window per key: a second request raises the open one."""
        existing = self.windows.get(key)
        if existing is not None and existing.isVisible():
            existing.raise_()
            existing.activateWindow()
            return existing
        window = factory()
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.windows[key] = window
        window.destroyed.connect(lambda *_: self.windows.pop(key, None))
        window.show()
        return window

    def open_bench_setup(self, peer_id: UUID) -> QWidget | None:
        """Set up bench (admins, non-demo peers): the token and the agent's command."""
        peer = self.controller.store.get(ResourceKind.PEER, peer_id)
        if not isinstance(peer, PeerDescriptor) or peer.demo or not self.controller.can_admin:
            return None
        return self._open_window(("bench", peer_id), lambda: BenchSetupDialog(self.controller, peer, self))

    def open_configuration(self, peer_id: UUID, parameter_id: UUID | None = None) -> QWidget | None:
        """A peer's configuration, live (at ``parameter_id``'s row: the one a failure names)."""
        if not isinstance(self.controller.store.get(ResourceKind.PEER, peer_id), PeerDescriptor):
            return None
        view = self._open_window(
            ("configuration", peer_id), lambda: PeerConfigurationDialog(self.controller, peer_id, self)
        )
        if parameter_id is not None and isinstance(view, PeerConfigurationDialog):
            view.select_parameter(parameter_id)
        return view

    def confirm_undeploy(self, cluster_id: UUID) -> None:
        """Undeploy asks first, naming the cluster and the benches it is removed from."""
        cluster = self.controller.store.get(ResourceKind.CLUSTER, cluster_id)
        if not isinstance(cluster, ClusterDescriptor) or undeploy_refusal(self.controller, cluster_id) is not None:
            return

        def undeploy() -> None:
            if undeploy_refusal(self.controller, cluster_id) is None:  # still deployed, still allowed
                self.controller.undeploy(cluster_id, cluster.name)

        self._keep(confirm_undeploy(self, cluster.name, cluster_benches(self.controller.store, cluster), undeploy))

    def confirm_delete_peer(self, peer_id: UUID) -> None:
        peer = self.controller.store.get(ResourceKind.PEER, peer_id)
        if not isinstance(peer, PeerDescriptor) or not self.controller.can_write:
            return
        blocker = peer_delete_blockers(self.controller.store, peer)
        version = peer.version

        def delete() -> None:
            self.controller.run(
                lambda: self.controller.connection.delete_peer_descriptor(peer_id, version),
                success=f"Peer '{peer.name}' deleted",
            )

        self._keep(confirm_delete(self, "peer", peer.name, blocker, delete))

    def confirm_delete_cluster(self, cluster_id: UUID) -> None:
        cluster = self.controller.store.get(ResourceKind.CLUSTER, cluster_id)
        if not isinstance(cluster, ClusterDescriptor) or not self.controller.can_write:
            return
        blocker = cluster_delete_blockers(self.controller.store, cluster)
        version = cluster.version

        def delete() -> None:
            self.controller.run(
                lambda: self.controller.connection.delete_cluster_descriptor(cluster_id, version),
                success=f"Cluster '{cluster.name}' deleted",
            )

        detail = cluster_summary(self.controller.store, cluster)
        self._keep(confirm_delete(self, "cluster", cluster.name, blocker, delete, detail))

    def _keep(self, dialog: QWidget) -> None:
        self.dialogs = [d for d in self.dialogs if d.isVisible()] + [dialog]

    def show_history(self, kind: ResourceKind, id: UUID, name: str) -> None:
        self.show_page(self.pages.index(self.event_log))
        self.event_log.show_history(kind, id, name)

    def go_to_cluster(self, cluster_id: UUID) -> None:
        self.show_page(self.pages.index(self.clusters))
        self.clusters.select(cluster_id)

    def open_connect_dialog(self) -> None:
        current = self.controller.connection.address if self.controller.connected else ""
        dialog = ConnectDialog(current, self)

        def chosen() -> None:
            if dialog.choice is not None and self.switch_backend is not None:
                self.switch_backend(dialog.choice)

        dialog.accepted.connect(chosen)
        dialog.open()
        self._keep(dialog)

    def show_about(self) -> None:
        description = self.controller.connection.description if self.controller.connected else "not connected"
        self._keep(show_about(self, description, self.data_dir, self.demo, self.log_path))

    # -- state -----------------------------------------------------------------------------
    def show_message(self, level: str, text: str) -> None:
        self.message_bar.show_message(level, text)

    def _deployment_news(self, level: str, title: str, text: str, clusters: list[str]) -> None:
        """A deployment finished, failed or degraded: said in the window (instead of its "requested",
        if that still waits), and on the desktop when LEA's window is not the one the user looks at."""
        self.message_bar.dismiss(
            *(f"{verb} of '{cluster}' requested" for cluster in clusters for verb in ("Deployment", "Undeployment"))
        )
        self.message_bar.show_message(level, text)
        self.desktop.notify(level, title, text)

    def _sync_state_changed(self, state: str) -> None:
        self.sync_label.setText(SYNC_TEXT.get(state, state))
        if self.controller.stale:
            self.sync_label.setText(f"{self.sync_label.text()} — data {self.controller.as_of_text()}")
        # A message about the backend process itself (it died: restarting) says more than this one.
        backend_news = self.message_bar.has_urgent()
        if state == "resuming" and not backend_news:
            self.message_bar.show_message("warning", CONNECTION_LOST)
        elif state == "live":  # the connection is back: what was said about it is moot
            self.message_bar.dismiss(CONNECTION_LOST)
            for text in self._connection_warnings:
                self.message_bar.dismiss(text)
            self._connection_warnings.clear()

    def _backend_status(self, level: str, text: str) -> None:
        if level == "warning":
            self._connection_warnings.add(text)
        if level == "info":
            self._identity_changed()  # the backend is back: its description (new process) again
        else:
            self.backend_label.setText("Embedded backend stopped: restarting…")
            self.backend_label.setToolTip(text)

    def _identity_changed(self) -> None:
        identity = self.controller.identity
        description = self.controller.connection.description if self.controller.connected else ""
        self.backend_label.setText(f"{description} — {identity.name} ({identity.role})")

    # -- settings --------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        restored = isinstance(geometry, QByteArray | bytes) and self.restoreGeometry(QByteArray(geometry))
        if not restored:
            self.resize(DEFAULT_SIZE)
        self.fit_to_screen()
        page = self.settings.value("window/page", 0)
        try:
            index = int(str(page))
        except (TypeError, ValueError):
            index = 0
        self.show_page(index if 0 <= index < len(self.pages) else 0)

    def fit_to_screen(self) -> None:
        """Keep the whole window, frame and status bar included, on the screen's available area
        (a default or restored size too large for a small or scaled screen is made to fit)."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return
        available = screen.availableGeometry()
        frame = self.frameGeometry().size() - self.geometry().size()  # the title bar and borders
        if frame.isEmpty():  # not shown yet: leave room for what a window manager usually adds
            frame = FRAME_ALLOWANCE
        room = QSize(available.width() - frame.width(), available.height() - frame.height())
        self.setMinimumSize(MINIMUM_SIZE.boundedTo(room))
        size = self.size().boundedTo(room)
        if size != self.size():
            self.resize(size)
        position = self.frameGeometry()
        x = min(max(position.x(), available.x()), available.right() - size.width() - frame.width() + 1)
        y = min(max(position.y(), available.y()), available.bottom() - size.height() - frame.height() + 1)
        if (x, y) != (position.x(), position.y()):
            self.move(x, y)

    def save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/page", self.nav.currentRow())
        self.settings.sync()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._shown_once:  # now the frame and the screen the window is on are known
            self._shown_once = True
            self.fit_to_screen()

    def event(self, event: QEvent) -> bool:
        if event.type() != QEvent.Type.UpdateRequest:
            return super().event(event)
        # The window paints what changed: that counts in the UI thread's budget of back-to-back
        # work (lea_app/sync/budget.py), so the engine and the flushes yield right after a paint.
        start = UI_BUDGET.clock()
        try:
            return super().event(event)
        finally:
            UI_BUDGET.done("paint", start, UI_BUDGET.clock())

    def unsaved_editors(self) -> list[ResourceEditor[Any]]:
        return [e for e in self.editors.values() if e.isVisible() and e.is_dirty()]

    def force_close(self) -> None:
        """Close without asking about unsaved editors (SIGTERM, Ctrl+C in the terminal)."""
        self._closing = True
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        unsaved = self.unsaved_editors()
        if unsaved and not self._closing:
            # Quit (Ctrl+Q) and the window's close button ask first, as an editor's Escape does.
            event.ignore()
            self._ask_before_closing(unsaved)
            return
        self.save_settings()
        for editor in list(self.editors.values()):
            editor.discard()
        for window in list(self.windows.values()):
            window.close()
        super().closeEvent(event)
        self.closed.emit()

    def _ask_before_closing(self, unsaved: list[ResourceEditor[Any]]) -> None:
        if self.quit_box is not None and self.quit_box.isVisible():
            self.quit_box.raise_()
            return
        box = QMessageBox(self)
        box.setObjectName("quitWithUnsavedChanges")
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Unsaved changes")
        titles = ", ".join(f"“{e.windowTitle()}”" for e in unsaved)
        box.setText("Quit and discard your unsaved changes?" if len(unsaved) == 1
                    else f"Quit and discard unsaved changes in {len(unsaved)} editors?")
        box.setInformativeText(f"Not saved: {titles}.")
        discard = box.addButton("Discard and quit", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.buttonClicked.connect(lambda button: self.force_close() if button is discard else None)
        self.quit_box = box
        box.open()
