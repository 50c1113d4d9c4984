"""Set up bench: create a bench's peer token and show what to run on the bench, to copy.

The token is shown once (the backend keeps only its hash), next to the commands that write the
token file, the exact ``lea-peer run`` line and a systemd unit; the bench's tokens are listed with
a Revoke action. Every call runs through the controller, so the dialog never blocks the window.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TypeVar

import shiboken6
from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from lea_app.connection.base import PeerToken
from lea_app.controller import Controller
from lea_app.models import bench_setup
from lea_app.views.message_bar import MessageBar
from resources.errors import LeaError
from resources.peer import PeerDescriptor

T = TypeVar("T")
#: Width of the dialog's content: every command in full, the notes in a few lines.
PREFERRED_WIDTH = 960
WARNING_STYLE = "background:#fff4ce; color:#5c4400; border:1px solid #e6cf7a; padding:6px;"
NOT_CREATED = "# Create the token above: it is shown here once, with the commands that store it."


class CodeBox(QWidget):
    """Read-only monospace text sized to its lines, with a Copy button."""

    def __init__(self, text: str = "", what: str = "", parent: QWidget | None = None, *, max_lines: int = 0) -> None:
        super().__init__(parent)
        self.max_lines = max_lines  # 0: show every line; else at most this many, the rest scrolls
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.text_edit = QPlainTextEdit()
        self.text_edit.setReadOnly(True)
        self.text_edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text_edit.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text_edit.setAccessibleName(what)
        layout.addWidget(self.text_edit, 1)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip(f"Copy {what} to the clipboard" if what else "Copy to the clipboard")
        self.copy_button.clicked.connect(self.copy)
        layout.addWidget(self.copy_button, 0, Qt.AlignmentFlag.AlignTop)
        self.set_text(text)

    def text(self) -> str:
        return self.text_edit.toPlainText()

    def set_text(self, text: str) -> None:
        self.text_edit.setPlainText(text)
        lines = text.split("\n")
        metrics = self.text_edit.fontMetrics()
        # Every line in full width (long commands come on several lines): nothing clipped sideways.
        frame = 2 * (self.text_edit.frameWidth() + round(self.text_edit.document().documentMargin()))
        shown = min(len(lines), self.max_lines) if self.max_lines else len(lines)
        scrolls = shown < len(lines)
        bar = self.text_edit.verticalScrollBar().sizeHint().width() if scrolls else 0
        self.text_edit.setFixedHeight(shown * metrics.lineSpacing() + frame + 2)
        self.text_edit.setMinimumWidth(max(metrics.horizontalAdvance(line) for line in lines) + frame + 8 + bar)
        self.text_edit.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.text_edit.setVerticalScrollBarPolicy(
            Qt.ScrollBarPolicy.ScrollBarAlwaysOn if scrolls else Qt.ScrollBarPolicy.ScrollBarAlwaysOff
        )

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text())
        self.copy_button.setText("Copied")
        # With the button as context: the timer is dropped if the dialog is closed (and deleted) first.
        QTimer.singleShot(1500, self.copy_button, lambda: self.copy_button.setText("Copy"))


def bench_needs(agent_url: str) -> str:
    """What a bench needs besides the agent (docs/benches.md has the long form)."""
    return (
        "<p><b>The bench needs</b></p><ul style='margin-left:-20px'>"
        f"<li>to reach <code>{html.escape(agent_url)}</code> (the token travels there: https beyond the lab);</li>"
        "<li>Linux with the bridge module and vxlan or gretap (<code>lea-peer probe</code> prints what it "
        "finds; the backend picks gretap when every member has it, else vxlan);</li>"
        "<li>between the benches: UDP 4789 open for VXLAN, or IP protocol 47 for GRE; for CAN, UDP 20000 "
        "upwards (the CAN relays: 20000 + the member's position in the cluster);</li>"
        "<li>an underlay MTU of at least 1550 for full 1500-byte frames (VXLAN adds 50 bytes, gretap 38): "
        "over a 1500-byte underlay the tunnel gets MTU 1450 (1462) and bigger frames are dropped.</li></ul>"
        "<p>Once it runs, the Peers page shows the bench Online with its agent version, tunnel types and "
        "underlay MTU, and Configuration… shows each parameter as the bench reports it. The agent reconnects "
        "by itself and keeps the configured links while the backend is away.</p>"
    )


def _page(*widgets: QWidget) -> QWidget:
    """A tab's page: its widgets from the top down."""
    page = QWidget()
    layout = QVBoxLayout(page)
    for widget in widgets:
        layout.addWidget(widget)
    layout.addStretch(1)
    return page


class BenchSetupDialog(QDialog):
    def __init__(self, controller: Controller, peer: PeerDescriptor, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("benchSetupDialog")
        self.controller = controller
        self.peer = peer
        self.agent_url = controller.connection.agent_url if controller.connected else None
        self.token: str | None = None
        self.tokens: list[PeerToken] = []
        self.tokens_listed = False  # the first list of the bench's tokens arrived
        self._name_edited = False
        self.setWindowTitle(f"Set up bench — {peer.name}")
        self.setMinimumWidth(640)
        outer = self._outer = QVBoxLayout(self)
        # The content scrolls on a small screen instead of being squeezed (overlapping boxes).
        self.body = QWidget()
        layout = QVBoxLayout(self.body)
        layout.setContentsMargins(0, 0, 0, 0)
        self.scroller = QScrollArea()
        self.scroller.setWidgetResizable(True)
        self.scroller.setFrameShape(QFrame.Shape.NoFrame)
        self.scroller.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroller.setWidget(self.body)
        outer.addWidget(self.scroller, 1)
        intro = QLabel(
            f"<h3 style='margin:0'>Set up bench “{peer.name}”</h3>"
            "Run the <b>lea-peer</b> agent on the test bench: it connects to this backend, applies each "
            "deployment's configuration with netlink and reports every parameter's state."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.message = MessageBar()
        layout.addWidget(self.message)
        if self.agent_url is None:
            self._build_not_accepting(layout)
        else:
            self._build_setup(layout, self.agent_url)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        outer.addWidget(buttons)
        if self.agent_url is not None:
            self.load_tokens()
        self.resize(self.sizeHint())  # show() would cap it at 2/3 of the screen

    def sizeHint(self) -> QSize:
        """All of the content at a comfortable width, as high as the screen allows (the rest scrolls);
        a scroll area alone would hint a small box."""
        margins = self._outer.contentsMargins()
        bar = self.scroller.verticalScrollBar().sizeHint().width()
        inner = max(PREFERRED_WIDTH, self.body.minimumSizeHint().width())
        content = self.body.heightForWidth(inner) if self.body.hasHeightForWidth() else -1
        height = (content if content > 0 else self.body.sizeHint().height()) + margins.top() + margins.bottom() + 48
        screen = self.screen()
        if screen is not None:
            height = min(height, screen.availableGeometry().height() * 9 // 10)
        return QSize(inner + margins.left() + margins.right() + bar, height)

    # -- the backend accepts no agents -----------------------------------------------------
    def _build_not_accepting(self, layout: QVBoxLayout) -> None:
        self.hint = QLabel(
            "<p><b>This backend does not accept bench agents</b>, so no token can be created for a bench.</p>"
            "<p>The embedded backend accepts agents only when you enable it: quit LEA and start it with "
            f"<code>{bench_setup.ENABLE_AGENTS}</code>, on an address the bench can reach (for example "
            "<code>lea --agents-listen 0.0.0.0:8422</code>; beyond loopback with TLS, as for "
            "<code>lea-backend serve</code>). Then open Set up bench again.</p>"
            "<p>A shared server (<code>lea-backend serve</code>) accepts agents at its own address.</p>"
        )
        self.hint.setObjectName("agentsDisabledHint")
        self.hint.setWordWrap(True)
        self.hint.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.hint)
        layout.addWidget(CodeBox("lea --agents-listen 0.0.0.0:8422", "the command that enables agents"))

    # -- the setup -------------------------------------------------------------------------
    def _build_setup(self, layout: QVBoxLayout, agent_url: str) -> None:
        top = QHBoxLayout()
        token_group = QGroupBox("1. Create the bench's token and store it on the bench (as root)")
        token_layout = QVBoxLayout(token_group)
        name_row = QHBoxLayout()
        name_row.addWidget(QLabel("Token name:"))
        self.name_edit = QLineEdit(bench_setup.suggested_token_name(self.peer.name, ()))
        self.name_edit.setAccessibleName("Token name")
        self.name_edit.setToolTip(f"Names the token and its file on the bench ({bench_setup.TOKEN_NAME_RULE})")
        self.name_edit.textEdited.connect(self._name_changed)
        name_row.addWidget(self.name_edit, 1)
        self.create_button = QPushButton("Create token")
        self.create_button.setDefault(True)
        self.create_button.setToolTip("Create a peer token bound to this bench (shown once)")
        self.create_button.clicked.connect(self.create_token)
        name_row.addWidget(self.create_button)
        token_layout.addLayout(name_row)
        self.name_problem = QLabel()
        self.name_problem.setStyleSheet("color:#b3261e;")
        self.name_problem.hide()
        token_layout.addWidget(self.name_problem)
        self.warning = QLabel(
            "⚠ The token is shown only now: nothing keeps a copy. Store it on the bench before closing; "
            "if it is lost, revoke it and create another."
        )
        self.warning.setObjectName("tokenWarning")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(WARNING_STYLE)
        self.warning.hide()
        token_layout.addWidget(self.warning)
        self.token_box = CodeBox(NOT_CREATED, "the commands that write the token file")
        self.token_box.copy_button.setEnabled(False)
        token_layout.addWidget(self.token_box)
        token_layout.addStretch(1)
        top.addWidget(token_group, 3)

        tokens_group = QGroupBox("Tokens of this bench")
        tokens_layout = QVBoxLayout(tokens_group)
        self.tokens_table = QTableWidget(0, 2)
        self.tokens_table.setHorizontalHeaderLabels(["Name", "Created"])
        self.tokens_table.setAccessibleName("Tokens of this bench")
        self.tokens_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.tokens_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tokens_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tokens_table.verticalHeader().setVisible(False)
        self.tokens_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tokens_table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.tokens_table.setMinimumWidth(300)
        self.tokens_table.setFixedHeight(96)
        self.tokens_table.itemSelectionChanged.connect(self._update_revoke)
        tokens_layout.addWidget(self.tokens_table)
        self.revoke_button = QPushButton("Revoke…")
        self.revoke_button.setToolTip("Revoke the selected token: a bench connected with it is disconnected at once")
        self.revoke_button.clicked.connect(self.confirm_revoke)
        tokens_layout.addWidget(self.revoke_button, 0, Qt.AlignmentFlag.AlignRight)
        top.addWidget(tokens_group, 2)
        layout.addLayout(top)

        run_group = QGroupBox("2. Run the agent on the bench")
        run_layout = QVBoxLayout(run_group)
        self.ways = QTabWidget()
        self.run_box = CodeBox("", "the lea-peer run command")
        self.needs = QLabel(bench_needs(agent_url))
        self.needs.setObjectName("benchNeeds")
        self.needs.setWordWrap(True)
        self.needs.setTextFormat(Qt.TextFormat.RichText)
        self.ways.addTab(_page(QLabel("As root, or with CAP_NET_ADMIN:"), self.run_box, self.needs), "Command")
        self.unit_box = CodeBox("", "the systemd unit", max_lines=17)
        self.steps_box = CodeBox(bench_setup.SYSTEMD_STEPS, "the systemctl commands")
        self.ways.addTab(
            _page(QLabel("Save as /etc/systemd/system/lea-peer.service (the packaged unit with this bench's "
                         "values; scroll for its sandboxing):"), self.unit_box,
                  QLabel("Then start it, now and at every boot:"), self.steps_box),
            "systemd service",
        )
        run_layout.addWidget(self.ways)
        layout.addWidget(run_group)
        self.confirmation: QMessageBox | None = None
        self._show_commands()
        self._update_revoke()

    def token_name(self) -> str:
        return self.name_edit.text().strip()

    def _name_changed(self, _text: str) -> None:
        self._name_edited = True
        self._show_commands()

    def _show_commands(self) -> None:
        assert self.agent_url is not None
        name = self.token_name()
        problem = bench_setup.token_name_problem(name)
        self.name_problem.setText(problem or "")
        self.name_problem.setVisible(problem is not None)
        self.create_button.setEnabled(problem is None and self.token is None)
        shown = name if problem is None else "<token-name>"
        self.run_box.set_text(bench_setup.run_command_lines(self.agent_url, self.peer.id, shown))
        self.unit_box.set_text(bench_setup.systemd_unit(self.agent_url, self.peer.id, shown, self.peer.name))

    # -- the calls -------------------------------------------------------------------------
    def _while_open(self, callback: Callable[[T], None]) -> Callable[[T], None]:
        """``callback``, skipped when the dialog was closed (and deleted) before the call returned."""

        def call(value: T) -> None:
            if shiboken6.isValid(self):
                callback(value)

        return call

    def _error(self, what: str) -> Callable[[LeaError], None]:
        def show(exc: LeaError) -> None:
            self.message.show_message("error", f"{what}: {exc.message}")

        return self._while_open(show)

    def load_tokens(self) -> None:
        peer_id = self.peer.id

        def loaded(tokens: list[PeerToken]) -> None:
            self.tokens = sorted((t for t in tokens if t.peer_id == peer_id), key=lambda t: t.created_at)
            self.tokens_listed = True
            self._show_tokens()
            if not self._name_edited and self.token is None:
                self.name_edit.setText(bench_setup.suggested_token_name(self.peer.name, (t.name for t in tokens)))
                self._show_commands()

        self.controller.run(
            self.controller.connection.peer_tokens, on_done=self._while_open(loaded),
            on_error=self._error("Could not list the bench's tokens"),
        )

    def _show_tokens(self) -> None:
        self.tokens_table.setRowCount(len(self.tokens))
        for row, token in enumerate(self.tokens):
            self.tokens_table.setItem(row, 0, QTableWidgetItem(token.name))
            self.tokens_table.setItem(row, 1, QTableWidgetItem(token.created_at))
        self._update_revoke()

    def create_token(self) -> None:
        name = self.token_name()
        if bench_setup.token_name_problem(name) is not None or self.token is not None:
            return
        self.create_button.setEnabled(False)
        self.name_edit.setReadOnly(True)
        peer_id = self.peer.id

        def created(token: str) -> None:
            self.token = token
            self.token_box.set_text(bench_setup.token_file_commands(name, token))
            self.token_box.copy_button.setEnabled(True)
            self.warning.show()
            self.create_button.setText("Token created")
            self.message.hide()  # an earlier refusal is over
            self.load_tokens()

        def failed(exc: LeaError) -> None:
            self.name_edit.setReadOnly(False)
            self._show_commands()
            self.message.show_message("error", f"Could not create the token: {exc.message}")

        self.controller.run(lambda: self.controller.connection.create_peer_token(peer_id, name),
                            on_done=self._while_open(created), on_error=self._while_open(failed))

    def selected_token(self) -> str | None:
        rows = self.tokens_table.selectionModel().selectedRows()
        return self.tokens[rows[0].row()].name if rows else None

    def _update_revoke(self) -> None:
        self.revoke_button.setEnabled(self.selected_token() is not None)

    def confirm_revoke(self) -> None:
        name = self.selected_token()
        if name is None:
            return
        box = QMessageBox(self)
        box.setObjectName("revokeConfirmation")
        box.setWindowTitle("Revoke bench token")
        box.setIcon(QMessageBox.Icon.Warning)
        box.setText(f"Revoke token '{name}' of bench '{self.peer.name}'?")
        box.setInformativeText("A bench connected with it is disconnected at once and cannot reconnect with it.")
        revoke = box.addButton("Revoke", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.buttonClicked.connect(lambda button: self.revoke(name) if button is revoke else None)
        box.open()
        self.confirmation = box

    def revoke(self, name: str) -> None:
        def revoked(_: None) -> None:
            self.message.show_message("info", f"Token '{name}' revoked.")
            self.load_tokens()

        self.controller.run(lambda: self.controller.connection.revoke_token(name), on_done=self._while_open(revoked),
                            on_error=self._error(f"Could not revoke token '{name}'"))
