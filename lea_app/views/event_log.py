"""The event log: the live stream (filtered by kind, resource, actor and time; volatile states hidden
unless asked for), the whole history of a selected resource, and the change an event made (the
resource's fields before and after)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from lea_app.controller import Controller
from lea_app.models.event_text import (
    ABSENT,
    KIND_CHOICES,
    TIME_CHOICES,
    EventFilter,
    FieldChange,
    describe_change,
    diff_resources,
    local_time,
    names_from,
    utc_time,
)
from lea_app.models.events import CHANGE, RESOURCE, EventTableModel, LiveEventLogModel, resource_label
from lea_app.views.tables import setup_table_view
from resources.events import Event
from resources.kinds import PERSISTED_KINDS, ResourceKind

WIDTHS = (150, 180, 170, 110, 70)
#: Before and after, tinted (the text says it too: colour is never alone).
BEFORE_TINT, AFTER_TINT = QColor("#fde7e9"), QColor("#e5f4e7")
ALL = "__all__"
#: The pause in typing after which the filter text applies.
TYPING_MS = 150


def _table(model: EventTableModel, name: str, stretch: int = RESOURCE, hidden: tuple[int, ...] = ()) -> QTableView:
    view = QTableView()
    view.setModel(model)
    view.setAccessibleName(name)
    for column in hidden:  # before the columns are fitted
        view.hideColumn(column)
    setup_table_view(view, WIDTHS, stretch=stretch)  # the spare width goes to the names, not the revision
    return view


class ChangeView(QWidget):
    """The change one event made: the resource's fields before and after, one row per field."""

    def __init__(self) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel("<b>Change</b>: select an event to see what it changed.")
        self.title.setWordWrap(True)
        self.table = QTableWidget(0, 3)
        self.table.setAccessibleName("Change: fields before and after")
        self.table.setHorizontalHeaderLabels(["Field", "Before", "After"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.table.setColumnWidth(0, 200)
        self.table.setColumnWidth(1, 150)
        layout.addWidget(self.title)
        layout.addWidget(self.table, 1)
        self.changes: list[FieldChange] = []

    def show_change(self, event: Event, label: str, changes: list[FieldChange] | None) -> None:
        """``changes`` None: the version before is not known (yet)."""
        when = f"<span title='{utc_time(event.at)}'>{local_time(event.at)}</span>"
        head = f"<b>{describe_change(event)}</b>: {label}, by {event.actor} at {when} (revision {event.revision})"
        if changes is None:
            note = "loading the version before…"
        elif not changes:
            note = "no field changed"
        else:
            note = f"{len(changes)} field{'s' if len(changes) != 1 else ''}"
        self.title.setText(f"{head} — {note}")
        self.title.setToolTip(f"{utc_time(event.at)}; {event.type.value} {event.kind.value} {event.id}")
        self.changes = changes or []
        self.table.setRowCount(len(self.changes))
        for row, change in enumerate(self.changes):
            for column, text in enumerate(change):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if column and text != ABSENT:
                    item.setBackground(BEFORE_TINT if column == 1 else AFTER_TINT)
                self.table.setItem(row, column, item)

    def clear(self) -> None:
        self.changes = []
        self.table.setRowCount(0)
        self.title.setText("<b>Change</b>: select an event to see what it changed.")


class EventLogPage(QWidget):
    title = "Event log"

    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.addWidget(QLabel("<h2 style='margin:0'>Event log</h2>"))
        hint = QLabel(
            "Changes as they arrive, newest first. Select one to see what it changed and its resource's whole history."
        )
        hint.setStyleSheet("color:#6b6b6b;")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        self.live = LiveEventLogModel(controller.store, parent=self)
        layout.addLayout(self._filter_bar())
        splitter = QSplitter(Qt.Orientation.Vertical)
        self.live_table = _table(self.live, "Live events")
        self.live_table.selectionModel().selectionChanged.connect(lambda *_: self._live_selected())
        splitter.addWidget(self.live_table)
        lower = QSplitter(Qt.Orientation.Horizontal)
        history_box = QWidget()
        history_layout = QVBoxLayout(history_box)
        history_layout.setContentsMargins(0, 6, 0, 0)
        self.history_title = QLabel("<b>History</b>: select an event above, or use “History” on a peer or cluster.")
        self.history_title.setWordWrap(True)
        history_layout.addWidget(self.history_title)
        self.history = EventTableModel(controller.store, self)
        # One resource: its name is in the title.
        self.history_table = _table(self.history, "Resource history", stretch=CHANGE, hidden=(RESOURCE,))
        self.history_table.selectionModel().selectionChanged.connect(lambda *_: self._history_selected())
        history_layout.addWidget(self.history_table, 1)
        lower.addWidget(history_box)
        self.change = ChangeView()
        self.change.setContentsMargins(0, 6, 0, 0)
        lower.addWidget(self.change)
        lower.setSizes([520, 480])
        splitter.addWidget(lower)
        splitter.setSizes([360, 300])
        layout.addWidget(splitter, 1)
        self.history_for: tuple[ResourceKind, UUID] | None = None
        self._history_events: list[Event] = []  # oldest first
        self._changed: Event | None = None  # the event whose change is shown
        self.apply_filter()
        # Bound method (not a lambda): PySide disconnects it when the page is deleted.
        controller.sync_state_changed.connect(self._sync_state_changed)

    def _sync_state_changed(self, state: str) -> None:
        """Greyed while not live, as the other pages (the status bar says since when)."""
        for model in (self.live, self.history):
            model.set_stale(self.controller.stale)

    # -- the filter ------------------------------------------------------------------------
    def _filter_bar(self) -> QHBoxLayout:
        bar = QHBoxLayout()
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter by resource, change or actor (Ctrl+F)")
        self.filter.setAccessibleName("Filter events")
        self.filter.setClearButtonEnabled(True)
        # Typing re-filters after a short pause (10,000 kept events take ~50 ms to filter).
        self._typing = QTimer(self)
        self._typing.setSingleShot(True)
        self._typing.setInterval(TYPING_MS)
        self._typing.timeout.connect(self.apply_filter)
        self.filter.textChanged.connect(lambda *_: self._typing.start())
        self.kind_combo = QComboBox()
        self.kind_combo.setAccessibleName("Kind")
        self.actor_combo = QComboBox()
        self.actor_combo.setAccessibleName("Actor")
        self.actor_combo.addItem("All actors", ALL)
        self.time_combo = QComboBox()
        self.time_combo.setAccessibleName("Time")
        for label, _ in TIME_CHOICES:
            self.time_combo.addItem(label)
        self.volatile_check = QCheckBox("Show &volatile states")
        self.volatile_check.setToolTip(
            "Connection states, deployment progress and configuration reports: broadcast, never stored; "
            "they arrive by the thousand during a deploy"
        )
        self.count = QLabel()
        self.count.setStyleSheet("color:#6b6b6b;")
        self._fill_kinds()
        for combo in (self.kind_combo, self.actor_combo, self.time_combo):
            combo.currentIndexChanged.connect(self.apply_filter)
        self.volatile_check.toggled.connect(self._volatile_toggled)
        self.live.actors_changed.connect(self._fill_actors)
        self.live.rowsInserted.connect(lambda *_: self._update_count())
        self.live.rowsRemoved.connect(lambda *_: self._update_count())
        bar.addWidget(self.filter, 2)
        for widget in (self.kind_combo, self.actor_combo, self.time_combo, self.volatile_check):
            bar.addWidget(widget)
        bar.addWidget(self.count, 1)
        return bar

    def _fill_kinds(self) -> None:
        current = self.kind_combo.currentData()
        kinds = [k for k in KIND_CHOICES if self.volatile_check.isChecked() or k in PERSISTED_KINDS]
        self.kind_combo.blockSignals(True)
        try:
            self.kind_combo.clear()
            self.kind_combo.addItem("All kinds", ALL)
            for kind in kinds:
                self.kind_combo.addItem(KIND_CHOICES[kind], kind.value)
            found = self.kind_combo.findData(current) if current is not None else 0
            self.kind_combo.setCurrentIndex(max(found, 0))
        finally:
            self.kind_combo.blockSignals(False)

    def _fill_actors(self) -> None:
        current = self.actor_combo.currentData()
        self.actor_combo.blockSignals(True)
        try:
            self.actor_combo.clear()
            self.actor_combo.addItem("All actors", ALL)
            for actor in sorted(self.live.actors, key=str.casefold):
                self.actor_combo.addItem(actor, actor)
            self.actor_combo.setCurrentIndex(max(self.actor_combo.findData(current), 0))
        finally:
            self.actor_combo.blockSignals(False)

    def _volatile_toggled(self) -> None:
        self._fill_kinds()
        self.apply_filter()

    def current_filter(self) -> EventFilter:
        kind = self.kind_combo.currentData()
        actor = self.actor_combo.currentData()
        back = TIME_CHOICES[max(self.time_combo.currentIndex(), 0)][1]
        return EventFilter(
            volatile=self.volatile_check.isChecked(),
            kinds=None if kind in (None, ALL) else frozenset({ResourceKind(kind)}),
            actor=None if actor in (None, ALL) else str(actor),
            text=self.filter.text(),
            since=None if back is None else datetime.now(UTC) - back,
        )

    def apply_filter(self, *_: object) -> None:
        self._typing.stop()
        selected = self._selected_live()
        self.live.set_filter(self.current_filter())
        if selected is not None:  # the selection follows the event, or clears
            row = next((r for r in range(self.live.rowCount()) if self.live.event_at(r) is selected), None)
            if row is not None:
                self.live_table.selectRow(row)
        self._update_count()

    def _update_count(self) -> None:
        hidden = "" if self.volatile_check.isChecked() else "; volatile states hidden"
        noun = "event" if self.live.rowCount() == 1 else "events"
        self.count.setText(f"{self.live.rowCount()} {noun}{hidden}")

    def focus_filter(self) -> None:
        """Ctrl+F (the window's Find shortcut) on this page."""
        self.filter.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.filter.selectAll()

    # -- selection: the change and the history ---------------------------------------------
    def _selected_live(self) -> Event | None:
        rows = self.live_table.selectionModel().selectedRows()
        return self.live.event_at(rows[0].row()) if rows else None

    def _live_selected(self) -> None:
        event = self._selected_live()
        if event is None:
            return
        label = resource_label(self.controller.store, event)
        self._changed = event
        if event.kind.persisted:
            before = self.live.event_before(event)
            known = before is not None or event.type.value == "created"
            self._show_change(event, label, before if known else None, known)
        else:  # volatile: the live log holds the versions it saw
            self._show_change(event, label, self.live.event_before(event), True)
        # Volatile states have no stored history: show the history of the resource they describe.
        kind = _owner_kind(event)
        self.load_history(kind, event.id, label)

    def _history_selected(self) -> None:
        rows = self.history_table.selectionModel().selectedRows()
        event = self.history.event_at(rows[0].row()) if rows else None
        if event is not None:
            self._changed = event
            self._show_change(event, resource_label(self.controller.store, event), self._before(event), True)

    def _before(self, event: Event) -> Event | None:
        """The previous version of ``event``'s resource in the loaded history."""
        older = [e for e in self._history_events if e.kind == event.kind and e.revision < event.revision]
        return older[-1] if older else None

    def _show_change(self, event: Event, label: str, before: Event | None, known: bool) -> None:
        if not known:
            self.change.show_change(event, label, None)
            return
        store = self.controller.store
        previous = before.resource if before is not None else None
        current = [*store.of_kind(ResourceKind.PEER).values(), *store.of_kind(ResourceKind.CLUSTER).values()]
        name_of = names_from([*(e.resource for e in self._history_events if e.resource is not None), *current])
        self.change.show_change(event, label, diff_resources(previous, event.resource, name_of))

    def show_history(self, kind: ResourceKind, id: UUID, name: str | None) -> None:
        """The history a page asked for ("History" on a peer or cluster): no live event is selected."""
        self.live_table.clearSelection()
        self._changed = None
        self.change.clear()
        self.load_history(kind, id, name)

    def load_history(self, kind: ResourceKind, id: UUID, name: str | None) -> None:
        self.history_for = (kind, id)
        label = name or str(id)
        self.history_title.setText(f"<b>History of {kind.value} {label}</b> (loading…)")

        def show(events: list[Event]) -> None:
            if self.history_for != (kind, id):
                return  # another selection won meanwhile
            self._history_events = list(events)
            self.history.set_events(list(reversed(events)))
            self.history_title.setText(f"<b>History of {kind.value} {label}</b>: {_summary(events)}")
            changed = self._changed
            if changed is not None and changed.kind.persisted and changed.id == id and not self.change.changes:
                self._show_change(changed, label, self._before(changed), True)

        self.controller.run(lambda: self.controller.connection.history(kind, id), on_done=show)


def _summary(events: list[Event]) -> str:
    """"5 stored changes; deployed by erin at 10:04:05, undeployed by erin at 10:09:12" (the
    newest deploy and undeploy: who and when, the audit question)."""
    text = f"{len(events)} stored change{'s' if len(events) != 1 else ''}"
    deployments = [e for e in events if e.kind == ResourceKind.CLUSTER_DEPLOYMENT]
    notes = []
    for verb in ("Deployed", "Undeployed"):
        last = next((e for e in reversed(deployments) if describe_change(e).startswith(verb)), None)
        if last is not None:
            notes.append(
                f"{verb.lower()} by {last.actor} at <span title='{utc_time(last.at)}'>{local_time(last.at)}</span>"
            )
    return text + ("; " + ", ".join(notes) if notes else "")


def _owner_kind(event: Event) -> ResourceKind:
    """The persisted kind whose history holds ``event`` (a volatile state's id is its resource's id)."""
    if event.kind in (ResourceKind.CLUSTER_STATE, ResourceKind.CLUSTER_DEPLOYMENT):
        return ResourceKind.CLUSTER
    if event.kind.persisted:
        return event.kind
    return ResourceKind.PEER

