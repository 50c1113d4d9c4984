"""ResourceTableModel: one incremental QAbstractTableModel per table.

Store changes are collected by id and applied on a short timer (coalesced per frame, de-duplicated
by id): removals, insertions at their sorted position and dataChanged ranges, never a reset for a
single change. Sorting and text filtering happen inside the model (a sorting proxy over a live
column costs seconds per thousand updates).
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast
from uuid import UUID

import shiboken6
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor

from lea_app.models.status_icons import STALE_COLOUR, StatusIcon, status_icon
from lea_app.sync.budget import UI_BUDGET
from lea_app.sync.store import Store, StoreChange

R = TypeVar("R")
Index = QModelIndex | QPersistentModelIndex

ID_ROLE = Qt.ItemDataRole.UserRole + 1
PROGRESS_ROLE = Qt.ItemDataRole.UserRole + 2  # (done, total) or None
SORT_ROLE = Qt.ItemDataRole.UserRole + 3
COALESCE_MS = 50
STALE = QBrush(QColor(STALE_COLOUR))
#: More pending insertions than this (and than the current row count) are loaded with one reset.
BULK_LOAD = 500
#: More separate ranges of updated rows than this in one flush are announced as one dataChanged.
MAX_CHANGED_RANGES = 16
#: Rows inserted or removed in one slice of a flush, at most: each is signalled on its own, and a
#: view does work for each (bench/gui_burst.py: 20-30 ms flushes of the dashboard's deployments in
#: progress, rows coming and going by the hundred); the rest follows in the next pass.
MAX_MOVES = 64
#: Rows the view shows, (first, last), asked at each flush (lea_app/views/tables.py sets it).
VisibleRows = Callable[[], tuple[int, int]]
#: Seconds of row building one event-loop pass may do for all models together; the rest follows in
#: the next pass, so a burst touching thousands of rows of several tables never holds the loop for
#: long. A flush also waits for its turn in the UI thread's budget (lea_app/sync/budget.py): after
#: the sync engine's slice, never right behind it, so the paint it causes comes after it alone.
FLUSH_SLICE = 0.005
#: While the sync engine works (a burst), a flush turn comes at most this often (seconds).
BUSY_FLUSH_GAP = 0.1
#: How long a model nobody sees (its table is on a page not shown) coalesces its changes (ms):
#: during a burst each flush then covers a second of changes, each row built once, not twenty times.
BACKGROUND_MS = 1000


class Sliced(Protocol):
    #: Nobody sees it: flushed after the models that are seen, its changes coalesced for longer.
    background: bool

    def flush_until(self, deadline: float) -> bool:
        """Apply pending changes until about ``deadline`` (time.perf_counter()); True if some remain."""
        ...


class Coalescing:
    """A model whose changes wait on ``_timer`` (COALESCE_MS, BACKGROUND_MS while nobody sees it),
    then ask the flusher for a turn (``_request_flush``)."""

    background = False
    _timer: QTimer
    _scheduled: bool

    def _schedule(self) -> None:
        """Changes wait: COALESCE_MS, BACKGROUND_MS while nobody sees a model that has rows (its
        first load, a snapshot, is never held back: the page may be shown any moment)."""
        if not self._scheduled:
            self._scheduled = True
            loaded = cast(QAbstractTableModel, self).rowCount() > 0
            self._timer.start(BACKGROUND_MS if self.background and loaded else COALESCE_MS)

    def _request_flush(self) -> None:
        self._scheduled = False
        request_flush(cast(Sliced, self))

    def set_background(self, background: bool) -> None:
        """Its table was hidden (True) or shown (False): shown, what waits is flushed at once."""
        if background == self.background:
            return
        self.background = background
        if not background:
            self._timer.stop()
            self._request_flush()


class _Flusher(QObject):
    """Runs the timer-driven flushes of every model, FLUSH_SLICE seconds per event-loop pass.

    A model's own timer coalesces its changes (COALESCE_MS), then asks for a flush here; models
    take turns, so one pass never runs every table's flush back to back. Models nobody sees wait
    until those that are seen have nothing left.
    """

    def __init__(self) -> None:
        super().__init__()
        self._queue: deque[Sliced] = deque()
        self._background: deque[Sliced] = deque()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        # Not 0: Qt runs zero timers only when no other event waits (glib's idle priority), and a
        # burst keeps events coming; 1 ms lets a pass in after the events already queued.
        self._timer.setInterval(1)
        self._timer.timeout.connect(self._run)

    def request(self, model: Sliced) -> None:
        queue, other = (self._background, self._queue) if model.background else (self._queue, self._background)
        if model in other:
            other.remove(model)
        if model not in queue:
            queue.append(model)
        if not self._timer.isActive():
            self._timer.start(1)

    def _run(self) -> None:
        # While the sync engine is busy (a burst), the tables follow at most every BUSY_FLUSH_GAP:
        # each flush and its paint take the engine's time, and the rows catch up once it is done.
        wait = BUSY_FLUSH_GAP - UI_BUDGET.since("flush")
        if wait > 0 and UI_BUDGET.since("sync") < BUSY_FLUSH_GAP:
            self._timer.start(max(1, int(wait * 1000)))
            return
        # A flush is followed by a paint: it starts a chain of the UI thread's work of its own.
        start = UI_BUDGET.clock()
        granted = UI_BUDGET.turn("flush", fresh=True)
        if granted is None:
            self._timer.start(1)  # RETRY later
            return
        deadline = min(granted, start + FLUSH_SLICE)
        try:
            self._flush_until(deadline)
        finally:
            UI_BUDGET.done("flush", start, UI_BUDGET.clock())

    def _flush_until(self, deadline: float) -> None:
        while self._queue or self._background:
            queue = self._queue or self._background
            model = queue.popleft()
            if not shiboken6.isValid(model):
                continue  # deleted meanwhile
            if model.flush_until(deadline):
                self.request(model)  # (it may have been shown or hidden meanwhile)
            if time.perf_counter() >= deadline:
                break
        if self._queue or self._background:
            self._timer.start(1)


_flusher: _Flusher | None = None


def request_flush(model: Sliced) -> None:
    """Flush ``model`` soon, sharing the event loop's flushing budget with the other models."""
    global _flusher
    if _flusher is None or not shiboken6.isValid(_flusher):
        _flusher = _Flusher()
    _flusher.request(model)


@dataclass(frozen=True)
class Column(Generic[R]):
    title: str
    display: Callable[[R], str]
    sort_key: Callable[[R], Any] | None = None
    tooltip: Callable[[R], str] | None = None
    progress: Callable[[R], tuple[int, int] | None] | None = None
    foreground: Callable[[R], Any] | None = None
    checkable: Callable[[R], bool | None] | None = None  # checked state, or None for no checkbox
    #: The status icon shown before the text (a shape as well as a colour), or None for none.
    decoration: Callable[[R], StatusIcon | None] | None = None
    width: int = 120
    #: The narrowest it may be made to fit a narrow window (0: its title's width).
    min_width: int = 0


class _Desc:
    """Reverses the order of a sort key."""

    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key

    def __lt__(self, other: _Desc) -> bool:
        return bool(other.key < self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and self.key == other.key

    __hash__ = None  # type: ignore[assignment]


class ResourceTableModel(Coalescing, QAbstractTableModel, Generic[R]):
    """Rows are ids; each row's content is an R built by ``make_row`` from the store."""

    columns: Sequence[Column[R]] = ()
    flushed = Signal()

    def __init__(self, store: Store, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self._ids: list[UUID] = []
        self._keys: list[Any] = []
        self._key_of: dict[UUID, Any] = {}  # each row's current sort key (not recomputed to find the row)
        self._rows: dict[UUID, R] = {}
        self._pending: set[UUID] = set()
        self._pending_all = False
        self._deferred = False  # a subclass has work only a flush can resolve (see ``defer``)
        self._scheduled = False  # the coalescing timer runs (a flag: asking Qt costs, per batch)
        self._sort_column = 0
        self._sort_order = Qt.SortOrder.AscendingOrder
        self._filter = ""
        #: Whether the user may tick checkable cells (the page follows the controller's write permission).
        self.checks_enabled = False
        #: While LEA is not live the rows are what the store last heard: greyed, icons too.
        self._stale = False
        #: The rows its view shows; None: not known (every updated row is announced).
        self.visible_rows: VisibleRows | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(COALESCE_MS)
        self._timer.timeout.connect(self._request_flush)
        # Stop hearing the store when Qt deletes the model (the store may outlive the window).
        self.destroyed.connect(store.listen(self._on_change))

    # -- what subclasses provide -----------------------------------------------------------
    def candidate_ids(self) -> Iterable[UUID]:
        """Every id that may be a row."""
        raise NotImplementedError

    def affected_ids(self, change: StoreChange) -> set[UUID] | None:
        """Rows a store change may affect; None means every row."""
        raise NotImplementedError

    def make_row(self, id: UUID) -> R | None:
        """The row for ``id``, or None when it is not a row (any more)."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Called once before a flush builds rows (cache what many rows need)."""

    def deferred_ids(self) -> set[UUID]:
        """Rows that changes recorded with ``defer`` affect, worked out once per flush."""
        return set()

    def defer(self) -> None:
        """``affected_ids`` recorded a change whose rows are cheaper to find at flush time."""
        self._deferred = True

    def checked(self, id: UUID, checked: bool) -> None:
        """The user ticked (or cleared) the checkable cell of row ``id``: announce it as a signal."""
        raise NotImplementedError

    def search_text(self, row: R) -> str:
        return " ".join(c.display(row) for c in self.columns).casefold()

    # -- change intake ---------------------------------------------------------------------
    def _on_change(self, change: StoreChange) -> None:
        ids = self.affected_ids(change)
        if ids is None:
            self._pending_all = True
        elif ids:
            self._pending |= ids
        elif not self._deferred:
            return
        self._schedule()

    def refresh_all(self) -> None:
        self._pending_all = True
        self.flush()

    def flush(self) -> None:
        """Apply every pending change now (pages and tests call this to see the store's state)."""
        self.flush_until(None)

    def flush_until(self, deadline: float | None) -> bool:
        """Apply pending changes, all or those done by ``deadline`` (a bulk load is never split).

        Returns True when some are left for later. The cost is that of the pending rows, not of the
        table: a row's key is kept, not recomputed to find it; a row built equal to the one shown is
        left alone (no dataChanged for it).
        """
        self._timer.stop()
        self._scheduled = False
        pending = set(self._rows) | set(self.candidate_ids()) if self._pending_all else self._pending
        self._pending = set()
        self._pending_all = False
        if self._deferred:
            self._deferred = False
            pending |= self.deferred_ids()
        if not pending:
            return False
        if len(pending) > BULK_LOAD and not self._ids:
            deadline = None  # a first load goes in as one reset (later ones in slices, MAX_MOVES each)
        left = False
        self.prepare()
        removals: list[UUID] = []
        inserts: list[tuple[Any, UUID, R]] = []
        updates: list[tuple[UUID, R]] = []
        rows, key_of, make_row, key_for = self._rows, self._key_of, self.make_row, self._key
        text, search_text = self._filter, self.search_text
        todo = list(pending)
        for n, id in enumerate(todo):
            if deadline is not None and (
                (n % 16 == 15 and time.perf_counter() > deadline) or len(removals) + len(inserts) >= MAX_MOVES
            ):
                self._pending.update(todo[n:])  # for the next pass, after other events
                left = True
                break
            row = make_row(id)
            if row is not None and text and text not in search_text(row):
                row = None
            old = rows.get(id)
            if row is None:
                if old is not None:
                    removals.append(id)
                continue
            if old is not None and (old is row or old == row):
                continue  # nothing to show
            key = key_for(row, id)
            if old is None:
                inserts.append((key, id, row))
            elif key != key_of[id]:
                removals.append(id)  # its sort position changed: move it
                inserts.append((key, id, row))
            else:
                updates.append((id, row))
        self._apply_removals(removals)
        self._apply_inserts(inserts)
        self._apply_updates(updates)
        self.flushed.emit()
        return left

    def _index_of(self, id: UUID) -> int:
        # Keys are unique (they end with the id), so bisect finds the row in O(log n).
        return bisect.bisect_left(self._keys, self._key_of[id])

    def _apply_removals(self, ids: list[UUID]) -> None:
        rows = sorted((self._index_of(id) for id in ids), reverse=True)
        for start, end in _ranges_desc(rows):
            self.beginRemoveRows(QModelIndex(), start, end)
            for r in range(end, start - 1, -1):
                id = self._ids[r]
                del self._rows[id]
                del self._key_of[id]
            del self._ids[start : end + 1]
            del self._keys[start : end + 1]
            self.endRemoveRows()

    def _apply_inserts(self, inserts: list[tuple[Any, UUID, R]]) -> None:
        if not inserts:
            return
        inserts.sort(key=lambda t: t[0])
        if len(inserts) > BULK_LOAD and len(inserts) > len(self._ids):
            self.beginResetModel()  # a bulk load (first snapshot), not a single change
            for key, id, row in inserts:
                self._rows[id] = row
                self._key_of[id] = key
            merged = sorted(
                [*zip(self._keys, self._ids, strict=True), *((k, i) for k, i, _ in inserts)], key=lambda t: t[0]
            )
            self._keys = [k for k, _ in merged]
            self._ids = [i for _, i in merged]
            self.endResetModel()
            return
        # New rows that land next to each other (nothing shown between them) go in as one block.
        groups: list[tuple[int, list[tuple[Any, UUID, R]]]] = []
        for item in inserts:
            pos = bisect.bisect_left(self._keys, item[0])
            if groups and groups[-1][0] == pos:
                groups[-1][1].append(item)
            else:
                groups.append((pos, [item]))
        shift = 0
        for pos, block in groups:
            start = pos + shift
            self.beginInsertRows(QModelIndex(), start, start + len(block) - 1)
            self._keys[start:start] = [k for k, _, _ in block]
            self._ids[start:start] = [i for _, i, _ in block]
            for key, id, row in block:
                self._rows[id] = row
                self._key_of[id] = key
            self.endInsertRows()
            shift += len(block)

    def _apply_updates(self, updates: list[tuple[UUID, R]]) -> None:
        if not updates:
            return
        rows = []
        for id, row in updates:
            self._rows[id] = row
            rows.append(self._index_of(id))
        last = len(self.columns) - 1
        ranges = _ranges_desc(sorted(rows, reverse=True))
        if self.visible_rows is not None:
            # Only what the view shows is repainted: a burst updating rows all over a table of
            # thousands changes one or two of the thirty shown, and a span over them all made the
            # view repaint every cell (bench/gui_burst.py). A row scrolled to later is read afresh.
            first, final = self.visible_rows()
            ranges = [(max(a, first), min(b, final)) for a, b in ranges if a <= final and b >= first]
        if len(ranges) > MAX_CHANGED_RANGES:
            # Scattered updates (a burst): one signal for the span; the view repaints what it shows.
            ranges = [(ranges[-1][0], ranges[0][1])]
        for start, end in ranges:
            self.dataChanged.emit(self.index(start, 0), self.index(end, last))

    # -- sorting and filtering -------------------------------------------------------------
    def _key(self, row: R, id: UUID) -> Any:
        column = self.columns[self._sort_column]
        value = column.sort_key(row) if column.sort_key else column.display(row).casefold()
        key = (value, str(id))
        return key if self._sort_order == Qt.SortOrder.AscendingOrder else _Desc(key)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(self.columns):
            return
        self.layoutAboutToBeChanged.emit()
        old_ids = list(self._ids)
        self._sort_column, self._sort_order = column, order
        keyed = sorted(((self._key(self._rows[id], id), id) for id in self._ids), key=lambda t: t[0])
        self._keys = [k for k, _ in keyed]
        self._ids = [i for _, i in keyed]
        self._key_of = {i: k for k, i in keyed}
        position = {id: r for r, id in enumerate(self._ids)}
        old_indexes = self.persistentIndexList()
        new_indexes = [
            self.index(position[old_ids[i.row()]], i.column()) if 0 <= i.row() < len(old_ids) else QModelIndex()
            for i in old_indexes
        ]
        self.changePersistentIndexList(old_indexes, new_indexes)
        self.layoutChanged.emit()

    def set_filter_text(self, text: str) -> None:
        self._filter = text.strip().casefold()
        self.refresh_all()

    @property
    def filter_text(self) -> str:
        return self._filter

    @property
    def stale(self) -> bool:
        return self._stale

    def set_stale(self, stale: bool) -> None:
        """Show every row greyed (not live: the store keeps what it last heard), or live again."""
        if stale == self._stale:
            return
        self._stale = stale
        if self._ids:
            roles = [Qt.ItemDataRole.ForegroundRole, Qt.ItemDataRole.DecorationRole]
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._ids) - 1, len(self.columns) - 1), roles)

    # -- access ----------------------------------------------------------------------------
    def id_at(self, row: int) -> UUID | None:
        return self._ids[row] if 0 <= row < len(self._ids) else None

    def row_of(self, id: UUID) -> int | None:
        return self._index_of(id) if id in self._rows else None

    def row_data(self, id: UUID) -> R | None:
        return self._rows.get(id)

    def ids(self) -> list[UUID]:
        return list(self._ids)

    # -- QAbstractTableModel ---------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._ids)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        horizontal = orientation == Qt.Orientation.Horizontal
        if horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(self.columns):
            return self.columns[section].title
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        # A paint asks every visible cell for about seven roles: answer the roles no column has at
        # once, and the others without Qt enum lookups (bench/gui_burst.py: 1,300 calls per paint).
        answer = _ROLE_ANSWERS.get(role)
        if answer is None:
            return None
        r, c = index.row(), index.column()  # -1 for an invalid index
        if not (0 <= r < len(self._ids) and 0 <= c < len(self.columns)):
            return None
        id = self._ids[r]
        return answer(self, id, self._rows[id], self.columns[c])

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled
        column = self.columns[index.column()] if 0 <= index.column() < len(self.columns) else None
        if column is not None and column.checkable is not None and self.checks_enabled:
            flags |= Qt.ItemFlag.ItemIsUserCheckable
        return flags

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.CheckStateRole or not index.isValid() or not self.checks_enabled:
            return False
        column = self.columns[index.column()]
        if column.checkable is None:
            return False
        id = self._ids[index.row()]
        checked = value == Qt.CheckState.Checked or value == Qt.CheckState.Checked.value
        # The row changes when the backend's event arrives, not now.
        self.checked(id, bool(checked))
        return True


def _display(model: ResourceTableModel[Any], id: UUID, row: Any, column: Column[Any]) -> Any:
    return column.display(row)


def _id(model: ResourceTableModel[Any], id: UUID, row: Any, column: Column[Any]) -> Any:
    return str(id)


def _tooltip(model: ResourceTableModel[Any], id: UUID, row: Any, column: Column[Any]) -> Any:
    return column.tooltip(row) if column.tooltip is not None else None


def _progress(model: ResourceTableModel[Any], id: UUID, row: Any, column: Column[Any]) -> Any:
    return column.progress(row) if column.progress is not None else None


def _foreground(model: ResourceTableModel[Any], id: UUID, row: Any, column: Column[Any]) -> Any:
    if model.stale:
        return STALE
    return column.foreground(row) if column.foreground is not None else None


def _decoration(model: ResourceTableModel[Any], id: UUID, row: Any, column: Column[Any]) -> Any:
    if column.decoration is None:
        return None
    kind = column.decoration(row)
    return status_icon(kind, model.stale) if kind is not None else None


def _check_state(model: ResourceTableModel[Any], id: UUID, row: Any, column: Column[Any]) -> Any:
    if column.checkable is None:
        return None
    checked = column.checkable(row)
    if checked is None:
        return None
    return Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked


#: What ``ResourceTableModel.data`` answers, by role (plain ints: a role arrives as one).
_ROLE_ANSWERS: dict[int, Callable[[ResourceTableModel[Any], UUID, Any, Column[Any]], Any]] = {
    int(Qt.ItemDataRole.DisplayRole): _display,
    int(ID_ROLE): _id,
    int(Qt.ItemDataRole.ToolTipRole): _tooltip,
    int(PROGRESS_ROLE): _progress,
    int(Qt.ItemDataRole.ForegroundRole): _foreground,
    int(Qt.ItemDataRole.DecorationRole): _decoration,
    int(Qt.ItemDataRole.CheckStateRole): _check_state,
}


def _ranges_desc(rows_desc: list[int]) -> list[tuple[int, int]]:
    """Contiguous (start, end) ranges of row numbers given in descending order, highest first."""
    ranges: list[tuple[int, int]] = []
    for r in rows_desc:
        if ranges and ranges[-1][0] == r + 1:
            ranges[-1] = (r, ranges[-1][1])
        elif not ranges or ranges[-1][0] != r:
            ranges.append((r, r))
    return ranges
