"""The event log: the live stream (newest first, capped, filtered inside the model) and one
resource's history. What a row says is worked out Qt-free in ``event_text``."""

from __future__ import annotations

import time
from collections import deque
from typing import Any
from uuid import UUID

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, QTimer, Signal

from lea_app.models.event_text import EventFilter, describe_change, local_time, utc_time
from lea_app.models.table import COALESCE_MS, ID_ROLE, STALE, Coalescing
from lea_app.sync.store import Store
from resources.events import Event
from resources.kinds import ResourceKind

Index = QModelIndex | QPersistentModelIndex
HEADERS = ("Time", "Change", "Resource", "Actor", "Revision")
TIME, CHANGE, RESOURCE, ACTOR, REVISION = range(len(HEADERS))
#: Events a timer-driven flush of the live log shows at a time before it looks at the clock.
SLICE_EVENTS = 256


_NAMED_TYPES: dict[type, bool] = {}


def _own_name(resource: object) -> object:
    """``getattr(resource, "name", None)`` without pydantic's slow miss for nameless resources."""
    if resource is None:
        return None
    name = vars(resource).get("name")  # pydantic keeps field values in __dict__
    if name is not None:
        return name
    kind = type(resource)
    named = _NAMED_TYPES.get(kind)
    if named is None:
        named = _NAMED_TYPES[kind] = hasattr(kind, "name")  # a property called name, say
    return getattr(resource, "name", None) if named else None


def resource_label(store: Store | None, event: Event, known: dict[UUID, str] | None = None) -> str:
    """The resource's name: its own, its owner's (volatile states and deployments carry the id of
    the peer or cluster they describe), the one it had when deleted, or one ``known`` from other
    events; its id only when none is known."""
    resource = event.resource
    name = _own_name(resource)
    if name is None and store is not None:
        for kind in (ResourceKind.PEER, ResourceKind.CLUSTER):
            owner = store.get(kind, event.id)
            if owner is not None:
                name = getattr(owner, "name", None)
                break
        else:
            name = store.deleted_name(event.id)
    if name is None and known is not None:
        name = known.get(event.id)
    return str(name) if name else str(event.id)


def event_cells(store: Store | None, event: Event) -> tuple[str, ...]:
    return _cells(event, resource_label(store, event))


def _cells(event: Event, label: str) -> tuple[str, ...]:
    return (local_time(event.at), describe_change(event), label, event.actor, str(event.revision))


def _tooltip(event: Event, column: int) -> str | None:
    if column == TIME:
        return utc_time(event.at)
    if column == CHANGE:
        stored = "stored" if event.kind.persisted else "volatile: broadcast, never stored"
        return f"{event.type.value} {event.kind.value} ({stored})"
    if column == RESOURCE:
        return str(event.id)
    return None


class EventTableModel(QAbstractTableModel):
    """A list of events shown as rows (fixed content, replaced as a whole by ``set_events``)."""

    def __init__(self, store: Store | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self._events: list[Event] = []
        # The resource's label is taken when a row arrives (a name may change later); the other
        # cells depend on the event alone and are made when a row is first shown.
        self._labels: list[str] = []
        self._cells: list[tuple[str, ...] | None] = []
        self._stale = False

    @property
    def stale(self) -> bool:
        return self._stale

    def set_stale(self, stale: bool) -> None:
        """Show every row greyed (not live: nothing new arrives), or live again."""
        if stale == self._stale:
            return
        self._stale = stale
        if self._events:
            last = self.index(len(self._events) - 1, len(HEADERS) - 1)
            self.dataChanged.emit(self.index(0, 0), last, [Qt.ItemDataRole.ForegroundRole])

    def set_events(self, events: list[Event]) -> None:
        self.beginResetModel()
        self._events = list(events)
        known = {e.id: str(n) for e in self._events if (n := _own_name(e.resource)) is not None}
        self._labels = [resource_label(self.store, e, known) for e in self._events]
        self._cells = [None] * len(self._events)
        self.endResetModel()

    def _row_cells(self, row: int) -> tuple[str, ...]:
        cells = self._cells[row]
        if cells is None:
            cells = self._cells[row] = _cells(self._events[row], self._labels[row])
        return cells

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
            return self._row_cells(index.row())[index.column()]
        if role == Qt.ItemDataRole.ToolTipRole:
            return _tooltip(self._events[index.row()], index.column())
        if role == ID_ROLE:
            return str(self._events[index.row()].id)
        if role == Qt.ItemDataRole.ForegroundRole and self._stale:
            return STALE
        return None


class LiveEventLogModel(Coalescing, EventTableModel):
    """Every applied event, newest first, capped; inserts are coalesced on a short timer. The rows
    are the events the ``event_filter`` accepts; the model keeps the last ``capacity`` stored and
    the last ``capacity`` volatile events apart, so a flood of volatile states never pushes the
    stored changes out, and a new filter is applied to what is kept."""

    #: A new actor appeared (the page offers it in its actor filter).
    actors_changed = Signal()

    def __init__(self, store: Store, capacity: int = 5000, parent: QObject | None = None) -> None:
        super().__init__(store, parent)
        self.capacity = capacity
        self.event_filter = EventFilter()
        self.actors: set[str] = set()
        # Arrived, not yet shown: stored and volatile apart (each capped), so a burst of volatile
        # states cannot push a stored change out before it is shown.
        self._arriving: dict[bool, deque[Event]] = {True: deque(maxlen=capacity), False: deque(maxlen=capacity)}
        self._kept: dict[bool, deque[tuple[Event, str]]] = {
            True: deque(maxlen=capacity), False: deque(maxlen=capacity),  # by kind.persisted
        }
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(COALESCE_MS)
        self._timer.timeout.connect(self._request_flush)
        self._scheduled = False  # the timer runs (a flag: asking Qt costs, per batch)
        self.destroyed.connect(store.listen_events(self._on_events))

    @property
    def _incoming(self) -> int:
        """How many arrived events are not shown yet."""
        return len(self._arriving[True]) + len(self._arriving[False])

    def _on_events(self, events: list[Event]) -> None:
        for event in events:
            self._arriving[event.kind.persisted].append(event)
        self._schedule()

    def flush(self) -> None:
        """Show every event that arrived (tests call this; the timer flushes in slices)."""
        self.flush_until(None)

    def flush_until(self, deadline: float | None) -> bool:
        """Show arrived events, oldest first, until ``deadline``; True when some are left for later."""
        self._timer.stop()
        self._scheduled = False
        while self._incoming:
            count = self._incoming if deadline is None else min(self._incoming, SLICE_EVENTS)
            self._arrive([self._next_arrived() for _ in range(count)])
            if deadline is not None and time.perf_counter() >= deadline:
                break
        return bool(self._incoming)

    def _next_arrived(self) -> Event:
        """The oldest arrived event of both queues (revisions only grow)."""
        stored, volatile = self._arriving[True], self._arriving[False]
        if stored and (not volatile or stored[0].revision < volatile[0].revision):
            return stored.popleft()
        return volatile.popleft()

    def set_filter(self, event_filter: EventFilter) -> None:
        """Show the kept events ``event_filter`` accepts (newest first, at most ``capacity``)."""
        self.flush()
        self.event_filter = event_filter
        kept = sorted((*self._kept[True], *self._kept[False]), key=lambda pair: pair[0].revision, reverse=True)
        shown = [pair for pair in kept if event_filter.accepts(*pair)][: self.capacity]
        self.beginResetModel()
        self._events = [e for e, _ in shown]
        self._labels = [label for _, label in shown]
        self._cells = [None] * len(shown)
        self.endResetModel()

    def newest_revision(self) -> int | None:
        """The revision of the newest event the log has taken in (shown or filtered out)."""
        heads = [kept[-1][0].revision for kept in self._kept.values() if kept]
        return max(heads) if heads else None

    def event_before(self, event: Event) -> Event | None:
        """The newest kept event of the same resource older than ``event`` (its previous version)."""
        for older, _ in reversed(self._kept[event.kind.persisted]):
            if older.revision < event.revision and older.id == event.id and older.kind == event.kind:
                return older
        return None

    def _arrive(self, arrived: list[Event]) -> None:
        labelled = [(e, resource_label(self.store, e)) for e in arrived]
        new_actor = False
        for pair in labelled:
            self._kept[pair[0].kind.persisted].append(pair)
            if pair[0].actor not in self.actors:
                self.actors.add(pair[0].actor)
                new_actor = True
        accepts = self.event_filter.accepts
        shown = [pair for pair in labelled if accepts(*pair)]
        if shown:
            self._prepend(shown)
        if new_actor:
            self.actors_changed.emit()

    def _prepend(self, arrived: list[tuple[Event, str]]) -> None:
        fresh = list(reversed(arrived))
        self.beginInsertRows(QModelIndex(), 0, len(fresh) - 1)
        self._events[:0] = [e for e, _ in fresh]
        self._labels[:0] = [label for _, label in fresh]
        self._cells[:0] = [None] * len(fresh)
        self.endInsertRows()
        excess = len(self._events) - self.capacity
        if excess > 0:
            start = len(self._events) - excess
            self.beginRemoveRows(QModelIndex(), start, len(self._events) - 1)
            del self._events[start:]
            del self._labels[start:]
            del self._cells[start:]
            self.endRemoveRows()
