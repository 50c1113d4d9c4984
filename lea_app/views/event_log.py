"""The event log: the live stream, and the whole history of a selected resource."""

from __future__ import annotations

from uuid import UUID

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QLabel,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from lea_app.controller import Controller
from lea_app.models.events import EventTableModel, LiveEventLogModel, resource_label
from lea_app.views.tables import setup_table_view
from resources.events import Event
from resources.kinds import ResourceKind

WIDTHS = (80, 150, 160, 80, 170, 220, 80)


def _table(model: EventTableModel, name: str) -> QTableView:
    view = QTableView()
    view.setModel(model)
    view.setAccessibleName(name)
    setup_table_view(view, WIDTHS)
    return view


class EventLogPage(QWidget):
    title = "Event log"

    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.addWidget(QLabel("<h2 style='margin:0'>Event log</h2>"))
        hint = QLabel("Live events as they arrive (newest first). Select one to see its resource's whole history.")
        hint.setStyleSheet("color:#6b6b6b;")
        layout.addWidget(hint)
        splitter = QSplitter(Qt.Orientation.Vertical)
        self.live = LiveEventLogModel(controller.store, parent=self)
        self.live_table = _table(self.live, "Live events")
        self.live_table.selectionModel().selectionChanged.connect(lambda *_: self._live_selected())
        splitter.addWidget(self.live_table)
        lower = QWidget()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 6, 0, 0)
        self.history_title = QLabel("<b>History</b>: select an event above, or use “History” on a peer or cluster.")
        lower_layout.addWidget(self.history_title)
        self.history = EventTableModel(controller.store, self)
        self.history_table = _table(self.history, "Resource history")
        lower_layout.addWidget(self.history_table, 1)
        splitter.addWidget(lower)
        splitter.setSizes([400, 250])
        layout.addWidget(splitter, 1)
        self.history_for: tuple[ResourceKind, UUID] | None = None

    def _live_selected(self) -> None:
        rows = self.live_table.selectionModel().selectedRows()
        event = self.live.event_at(rows[0].row()) if rows else None
        if event is not None:
            # Volatile states have no stored history: show the history of the resource they describe.
            kind = event.kind if event.kind.persisted else _owner_kind(event)
            self.load_history(kind, event.id, resource_label(self.controller.store, event))

    def load_history(self, kind: ResourceKind, id: UUID, name: str | None) -> None:
        self.history_for = (kind, id)
        label = name or str(id)
        self.history_title.setText(f"<b>History of {kind.value} {label}</b> (loading…)")

        def show(events: list[Event]) -> None:
            if self.history_for != (kind, id):
                return  # another selection won meanwhile
            self.history.set_events(list(reversed(events)))
            self.history_title.setText(
                f"<b>History of {kind.value} {label}</b>: {len(events)} stored change{'s' if len(events) != 1 else ''}"
            )

        self.controller.run(lambda: self.controller.connection.history(kind, id), on_done=show)


def _owner_kind(event: Event) -> ResourceKind:
    """The persisted kind a volatile state describes (its id is that resource's id)."""
    return ResourceKind.CLUSTER if event.kind == ResourceKind.CLUSTER_STATE else ResourceKind.PEER
