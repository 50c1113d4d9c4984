"""The event log: the live stream (newest first, capped) and one resource's history."""

from __future__ import annotations

from collections import deque
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, QTimer

from lea_app.models.table import COALESCE_MS, ID_ROLE
from lea_app.sync.store import Store
from resources.events import Event
from resources.kinds import ResourceKind

Index = QModelIndex | QPersistentModelIndex
HEADERS = ("Revision", "Time (UTC)", "Actor", "Change", "Kind", "Resource", "Stored")


def resource_label(store: Store | None, event: Event) -> str:
    resource = event.resource
    name = getattr(resource, "name", None)
    if name is None and store is not None:
        # Volatile states carry the id of the peer or cluster they describe.
        for kind in (ResourceKind.PEER, ResourceKind.CLUSTER):
            owner = store.get(kind, event.id)
            if owner is not None:
                name = getattr(owner, "name", None)
                break
    return str(name) if name else str(event.id)


def event_cells(store: Store | None, event: Event) -> tuple[str, ...]:
    return (
        str(event.revision),
        event.at.strftime("%Y-%m-%d %H:%M:%S"),
        event.actor,
        event.type.value,
        event.kind.value,
        resource_label(store, event),
        "stored" if event.kind.persisted else "volatile",
    )


class EventTableModel(QAbstractTableModel):
    """A list of events shown as rows (fixed content, replaced as a whole by ``set_events``)."""

    def __init__(self, store: Store | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self._events: list[Event] = []
        self._cells: list[tuple[str, ...]] = []

    def set_events(self, events: list[Event]) -> None:
        self.beginResetModel()
        self._events = list(events)
        self._cells = [event_cells(self.store, e) for e in self._events]
        self.endResetModel()

    def event_at(self, row: int) -> Event | None:
        return self._events[row] if 0 <= row < len(self._events) else None

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._events)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(
            HEADERS
        ):
            return HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._events) or not 0 <= index.column() < len(HEADERS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._cells[index.row()][index.column()]
        if role == ID_ROLE:
            return str(self._events[index.row()].id)
        return None


class LiveEventLogModel(EventTableModel):
    """Every applied event, newest first, capped; inserts are coalesced on a short timer."""

    def __init__(self, store: Store, capacity: int = 5000, parent: QObject | None = None) -> None:
        super().__init__(store, parent)
        self.capacity = capacity
        self._incoming: deque[Event] = deque(maxlen=capacity)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(COALESCE_MS)
        self._timer.timeout.connect(self.flush)
        self.destroyed.connect(store.listen_events(self._on_events))

    def _on_events(self, events: list[Event]) -> None:
        self._incoming.extend(events)
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        self._timer.stop()
        if not self._incoming:
            return
        fresh = list(reversed(self._incoming))
        self._incoming.clear()
        self.beginInsertRows(QModelIndex(), 0, len(fresh) - 1)
        self._events[:0] = fresh
        self._cells[:0] = [event_cells(self.store, e) for e in fresh]
        self.endInsertRows()
        excess = len(self._events) - self.capacity
        if excess > 0:
            start = len(self._events) - excess
            self.beginRemoveRows(QModelIndex(), start, len(self._events) - 1)
            del self._events[start:]
            del self._cells[start:]
            self.endRemoveRows()
