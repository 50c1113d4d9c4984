"""Editors for peers and clusters: non-modal dialogs validated on every edit.

Validation is the backend's own: the form is turned into the pydantic model on each edit and its
errors (``invalid_resource_from``) are shown next to the field they name, plus the cross-resource
rules LEA can pre-check from its store. A refusal from the backend is shown the same way and the
form keeps everything typed. A banner says when the resource changes underneath an open editor.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Generic, NamedTuple, Protocol, TypeVar
from uuid import UUID

from pydantic import ValidationError
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from lea_app.controller import Controller
from lea_app.sync.store import Store, StoreChange
from lea_app.views.message_bar import STYLES, MessageBar
from resources.cluster import ClusterDescriptor
from resources.derived import blocking_clusters
from resources.errors import (
    Conflict,
    DeviceIdTaken,
    InvalidResource,
    LeaError,
    MissingReference,
    NameTaken,
    ReferencedByCluster,
    invalid_resource_from,
)
from resources.events import WriteResult
from resources.kinds import ResourceKind
from resources.peer import DEFAULT_BRIDGE_NAME, CanConfiguration, Device, NetworkInterface, PeerDescriptor

EDITOR_STYLE = """
*[invalid="true"] { border: 1px solid #c42b1c; border-radius: 2px; }
QLabel#fieldError { color: #a4262c; }
QLabel#saveSummary[tone="error"] { color: #a4262c; }
QLabel#saveSummary[tone="info"] { color: #5f5f5f; }
QLabel#readOnlyNote { background: #e8f1fb; color: #163f6b; border: 1px solid #a9c7ea; border-radius: 4px;
                      padding: 6px 10px; }
"""
#: How long store changes are gathered before an editor reacts (a burst becomes one refresh).
STORE_COALESCE_MS = 50
Data = dict[str, Any]


# -- problems and where they are shown ---------------------------------------------------------
class Problem(NamedTuple):
    """A broken rule at a field path as resources.errors names it, e.g. ``interfaces[0].name``."""

    field: str
    rule: str


class Placed(NamedTuple):
    """A problem inside one error target: the row (for tables), the field within it, the rule."""

    row: int | None
    field: str
    rule: str


_PATH = re.compile(r"^(?P<head>\w+)(?:\[(?P<index>\d+)\])?(?:\.(?P<rest>.+))?$")
_FIELD = re.compile(r"^(?P<name>\w+)(?:\[(?P<index>\d+)\])?")


def validation_problems(parse: Callable[[Data], Any], data: Data) -> tuple[Any, list[Problem]]:
    """Build the model the backend would build; on failure, its problems (field, friendly rule)."""
    try:
        return parse(data), []
    except ValidationError as exc:
        return None, refusal_problems(invalid_resource_from(exc))


def refusal_problems(error: LeaError) -> list[Problem]:
    """The fields a backend refusal names (the rest of a refusal is shown at the top)."""
    if isinstance(error, InvalidResource):
        return [Problem(str(e["field"]), str(e["rule"])) for e in error.details.get("errors", [])]
    if isinstance(error, NameTaken):
        return [Problem("name", error.message)]
    if isinstance(error, MissingReference) and "field" in error.details:
        return [Problem(str(error.details["field"]), error.message)]
    if isinstance(error, DeviceIdTaken | ReferencedByCluster) and "device" in error.details:
        return [Problem("devices", error.message)]
    return []


def name_taken(store: Store, kind: ResourceKind, own_id: UUID, name: str) -> list[Problem]:
    """Names are unique per kind, ignoring case (the backend's rule, pre-checked from the store)."""
    folded = name.casefold()
    for other in store.all(kind).values():
        other_name = getattr(other, "name", None)
        if other.id != own_id and isinstance(other_name, str) and other_name.casefold() == folded:
            rule = f"is already used by {kind.value} '{other_name}' (names are unique, ignoring case)"
            return [Problem("name", rule)]
    return []


def repolish(widget: QWidget) -> None:
    widget.style().unpolish(widget)
    widget.style().polish(widget)


def mark_invalid(widget: QWidget, rules: Sequence[str]) -> None:
    """A red border, and the rules as tooltip and accessible description (screen readers say why)."""
    invalid = bool(rules)
    if bool(widget.property("invalid")) != invalid:
        widget.setProperty("invalid", invalid)
        repolish(widget)
    text = "; ".join(rules)
    widget.setToolTip(text)
    widget.setAccessibleDescription(text)


def set_choices(combo: QComboBox, choices: Sequence[tuple[str, str]], current: str | None, missing: str) -> None:
    """Offer (label, value) choices and keep ``current`` selected; a vanished one stays, labelled ``missing``."""
    if current is not None and all(value != current for _, value in choices):
        choices = [*choices, (missing, current)]
    shown = [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())]
    combo.blockSignals(True)
    try:
        if shown != list(choices):
            combo.clear()
            for label, value in choices:
                combo.addItem(label, value)
        combo.setCurrentIndex(combo.findData(current) if current is not None else -1)
    finally:
        combo.blockSignals(False)


def line_edit(placeholder: str = "") -> QLineEdit:
    edit = QLineEdit()
    edit.setPlaceholderText(placeholder)
    return edit


def put_text(data: Data, key: str, text: str) -> None:
    """Numbers are typed as text and parsed by the model; an empty box means "not given"."""
    if text.strip():
        data[key] = text.strip()


def number_text(value: float | int | None) -> str:
    return "" if value is None else str(value)


class ErrorLabel(QLabel):
    """The red rule(s) under a field; hidden while there is nothing to say."""

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("fieldError")
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hide()

    def show_rules(self, rules: Sequence[str]) -> None:
        unique = list(dict.fromkeys(rules))
        self.setText("\n".join(unique))
        self.setVisible(bool(unique))


class ErrorTarget(Protocol):
    """Something that shows the problems of one top-level field (a single input or a table)."""

    def describe(self, index: int | None, field: str) -> str: ...

    def show_errors(self, errors: Sequence[Placed]) -> None: ...


class FieldRow:
    """One form input with its label (buddy, mnemonic) and the error label beneath it."""

    def __init__(self, label_text: str, title: str, widget: QWidget, shown: QWidget | None = None) -> None:
        self.title = title
        self.widget = widget
        self.error = ErrorLabel()
        widget.setAccessibleName(title)
        self.label = QLabel(label_text)
        self.label.setBuddy(widget)
        self.container = QWidget()
        box = QVBoxLayout(self.container)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        box.addWidget(shown or widget)
        box.addWidget(self.error)

    def add_to(self, form: QFormLayout) -> None:
        form.addRow(self.label, self.container)

    def describe(self, index: int | None, field: str) -> str:
        return self.title

    def show_errors(self, errors: Sequence[Placed]) -> None:
        rules = [e.rule for e in errors]
        self.error.show_rules(rules)
        mark_invalid(self.widget, rules)


# -- tables of interfaces and devices ----------------------------------------------------------
class TableRow:
    """One editable row: its cell widgets, its part of the model data, and where its errors go."""

    noun: ClassVar[str] = "row"
    headers: ClassVar[tuple[str, ...]] = ()
    widths: ClassVar[tuple[int, ...]] = ()
    #: The column that takes the table's spare width.
    stretch: ClassVar[int] = 0

    def __init__(self, id: UUID, on_change: Callable[[], None]) -> None:
        self.id = id
        self.number = 0
        self._on_change = on_change

    def cells(self) -> list[QWidget]:
        raise NotImplementedError

    def data(self) -> Data:
        raise NotImplementedError

    def name(self) -> str:
        raise NotImplementedError

    def widgets_for(self, field: str) -> list[QWidget]:
        """The cells to mark for an error at ``field`` (a path inside the row)."""
        raise NotImplementedError

    def set_number(self, number: int) -> None:
        self.number = number
        for header, cell in zip(self.headers, self.cells(), strict=True):
            words = header if header.isupper() else header[0].lower() + header[1:]  # "FD" stays "FD"
            cell.setAccessibleName(f"{self.noun.capitalize()} {number} {words}")

    def title(self) -> str:
        name = self.name()
        return f"{self.noun.capitalize()} {self.number}" + (f" '{name}'" if name else "")

    def describe_field(self, field: str) -> str:
        match = _FIELD.match(field.removeprefix("configuration."))
        if match is None:
            return field
        name = match["name"].replace("_", " ")
        if match["index"] is not None:
            return f"{name.removesuffix('s')} {int(match['index']) + 1}"
        return "CAN settings" if name == "configuration" else name

    def changed(self, *_: object) -> None:
        self._on_change()


INTERFACE_TYPES = (("Ethernet", "ethernet"), ("VCAN", "vcan"), ("CAN", "can"))


class InterfaceRow(TableRow):
    """A network interface. CAN fields are editable only for CAN, data fields only with FD (or
    while they still hold a value FD would need: the rule then says so instead of dropping it)."""

    noun = "interface"
    headers = ("Name", "Type", "Bitrate (bit/s)", "Sample point", "FD", "Data bitrate (bit/s)", "Data sample point")
    widths = (110, 95, 110, 95, 40, 130, 120)
    #: Example values, shown only while a field is editable (a greyed-out "500000" reads like a value).
    examples = ("can0", "", "500000", "0.875", "", "2000000", "0.8")

    def __init__(self, interface: NetworkInterface | None, on_change: Callable[[], None]) -> None:
        super().__init__(interface.id if interface else uuid.uuid4(), on_change)
        self.name_edit = line_edit(self.examples[0])
        self.type_combo = QComboBox()
        for label, value in INTERFACE_TYPES:
            self.type_combo.addItem(label, value)
        self.bitrate = line_edit()
        self.sample_point = line_edit()
        self.fd = QCheckBox()
        self.data_bitrate = line_edit()
        self.data_sample_point = line_edit()
        if interface is not None:
            self._load(interface)
        self._update_enabled()
        for edit in (self.name_edit, self.bitrate, self.sample_point, self.data_bitrate, self.data_sample_point):
            edit.textChanged.connect(self.changed)
        self.type_combo.currentIndexChanged.connect(self.changed)
        self.fd.toggled.connect(self.changed)

    def _load(self, interface: NetworkInterface) -> None:
        self.name_edit.setText(interface.name)
        config = interface.configuration
        self.type_combo.setCurrentIndex(self.type_combo.findData(config.type))
        if isinstance(config, CanConfiguration):
            self.bitrate.setText(number_text(config.bitrate))
            self.sample_point.setText(number_text(config.sample_point))
            self.fd.setChecked(config.fd)
            self.data_bitrate.setText(number_text(config.data_bitrate))
            self.data_sample_point.setText(number_text(config.data_sample_point))

    def changed(self, *_: object) -> None:
        self._update_enabled()
        super().changed()

    @property
    def is_can(self) -> bool:
        return bool(self.type_combo.currentData() == "can")

    def _update_enabled(self) -> None:
        for widget in (self.bitrate, self.sample_point, self.fd):
            widget.setEnabled(self.is_can)
        for edit in (self.data_bitrate, self.data_sample_point):
            edit.setEnabled(self.is_can and (self.fd.isChecked() or bool(edit.text().strip())))
        for cell, example in zip(self.cells(), self.examples, strict=True):
            if isinstance(cell, QLineEdit):
                cell.setPlaceholderText(example if cell.isEnabled() else "")

    def cells(self) -> list[QWidget]:
        return [self.name_edit, self.type_combo, self.bitrate, self.sample_point, self.fd, self.data_bitrate,
                self.data_sample_point]

    def name(self) -> str:
        return self.name_edit.text()

    def data(self) -> Data:
        config: Data = {"type": self.type_combo.currentData()}
        if self.is_can:
            put_text(config, "bitrate", self.bitrate.text())
            put_text(config, "sample_point", self.sample_point.text())
            config["fd"] = self.fd.isChecked()
            put_text(config, "data_bitrate", self.data_bitrate.text())
            put_text(config, "data_sample_point", self.data_sample_point.text())
        return {"id": str(self.id), "name": self.name_edit.text(), "configuration": config}

    def widgets_for(self, field: str) -> list[QWidget]:
        by_field: dict[str, QWidget] = {
            "name": self.name_edit, "configuration.bitrate": self.bitrate,
            "configuration.sample_point": self.sample_point, "configuration.fd": self.fd,
            "configuration.data_bitrate": self.data_bitrate, "configuration.data_sample_point": self.data_sample_point,
        }
        if field in by_field:
            return [by_field[field]]
        if field == "configuration":  # the FD rule: mark the data fields that break it
            data = [self.data_bitrate, self.data_sample_point]
            culprits: list[QWidget] = [e for e in data if bool(e.text().strip()) != self.fd.isChecked()]
            return culprits or [*data]
        return [self.name_edit]


class DeviceRow(TableRow):
    """A device: name, description, the interface it hangs on (chosen by name), tags (comma-separated)."""

    noun = "device"
    headers = ("Name", "Description", "Interface", "Tags")
    widths = (150, 250, 120, 190)
    stretch = 1

    def __init__(
        self, device: Device | None, on_change: Callable[[], None], interfaces: Sequence[tuple[str, str]]
    ) -> None:
        super().__init__(device.id if device else uuid.uuid4(), on_change)
        self.name_edit = line_edit("ecu-1")
        self.description = line_edit("optional")
        self.interface_combo = QComboBox()
        self.interface_combo.setPlaceholderText("Choose…")
        self.tags = line_edit("tag, another tag")
        self.interface_id: str | None = None
        if device is not None:
            self.name_edit.setText(device.name)
            self.description.setText(device.description)
            self.tags.setText(", ".join(device.tags))
            self.interface_id = str(device.interface)
        elif interfaces:
            self.interface_id = interfaces[0][1]
        self.set_interfaces(interfaces)
        for edit in (self.name_edit, self.description, self.tags):
            edit.textChanged.connect(self.changed)
        self.interface_combo.currentIndexChanged.connect(self._interface_chosen)

    def set_interfaces(self, interfaces: Sequence[tuple[str, str]]) -> None:
        set_choices(self.interface_combo, interfaces, self.interface_id, "(removed interface)")

    def _interface_chosen(self, *_: object) -> None:
        self.interface_id = self.interface_combo.currentData()
        self.changed()

    def cells(self) -> list[QWidget]:
        return [self.name_edit, self.description, self.interface_combo, self.tags]

    def name(self) -> str:
        return self.name_edit.text()

    def data(self) -> Data:
        data: Data = {
            "id": str(self.id),
            "name": self.name_edit.text(),
            "description": self.description.text(),
            "tags": [tag.strip() for tag in self.tags.text().split(",") if tag.strip()],
        }
        if self.interface_id is not None:
            data["interface"] = self.interface_id
        return data

    def widgets_for(self, field: str) -> list[QWidget]:
        by_field: dict[str, QWidget] = {
            "name": self.name_edit, "description": self.description, "interface": self.interface_combo,
            "tags": self.tags,
        }
        return [by_field.get(field.split("[")[0], self.name_edit)]


R = TypeVar("R", bound=TableRow)


class RowTable(QGroupBox, Generic[R]):
    """A table of rows with Add and a Remove button per row; errors under the table and on the cells."""

    edited = Signal()
    rows_changed = Signal()

    def __init__(
        self,
        title: str,
        add_text: str,
        row_type: type[R],
        make_row: Callable[[Any, Callable[[], None]], R],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(title, parent)
        self._make_row = make_row
        self.rows: list[R] = []
        self.remove_buttons: list[QPushButton] = []
        headers = row_type.headers
        self.table = QTableWidget(0, len(headers) + 1)
        self.table.setAccessibleName(title)
        self.table.setHorizontalHeaderLabels([*headers, ""])
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setTabKeyNavigation(False)  # Tab walks the cell inputs, not the grid
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(32)
        for column, width in enumerate((*row_type.widths, 80)):
            self.table.setColumnWidth(column, width)
        self.table.horizontalHeader().setSectionResizeMode(row_type.stretch, QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumHeight(150)
        self.add_button = QPushButton(add_text)
        self.add_button.setAccessibleName(add_text.replace("&", ""))
        self.add_button.clicked.connect(lambda: self.add_row())
        self.error = ErrorLabel()
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(self.error)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)

    def set_items(self, items: Iterable[Any]) -> None:
        self.table.setRowCount(0)
        self.rows.clear()
        self.remove_buttons.clear()
        for item in items:
            self._insert(self._make_row(item, self.edited.emit))
        self._rows_changed()

    def add_row(self, item: Any = None) -> R:
        row = self._make_row(item, self.edited.emit)
        self._insert(row)
        self._rows_changed()
        row.cells()[0].setFocus()
        return row

    def _insert(self, row: R) -> None:
        at = self.table.rowCount()
        self.table.insertRow(at)
        for column, cell in enumerate(row.cells()):
            self.table.setCellWidget(at, column, cell)
        remove = QPushButton("Remove")
        remove.clicked.connect(lambda: self.remove_row(row))
        self.table.setCellWidget(at, len(row.headers), remove)
        self.rows.append(row)
        self.remove_buttons.append(remove)

    def remove_row(self, row: R) -> None:
        at = self.rows.index(row)
        self.rows.pop(at)
        self.remove_buttons.pop(at)
        self.table.removeRow(at)
        self._rows_changed()
        self.add_button.setFocus()

    def _rows_changed(self) -> None:
        for number, (row, remove) in enumerate(zip(self.rows, self.remove_buttons, strict=True), start=1):
            row.set_number(number)
            remove.setAccessibleName(f"Remove {row.noun} {number}")
        self.rows_changed.emit()
        self.edited.emit()

    def data(self) -> list[Data]:
        return [row.data() for row in self.rows]

    def inputs(self) -> list[QWidget]:
        """Tab order: each row left to right, then Add."""
        cells = [w for row, remove in zip(self.rows, self.remove_buttons, strict=True) for w in (*row.cells(), remove)]
        return [*cells, self.add_button]

    def describe(self, index: int | None, field: str) -> str:
        if index is None or index >= len(self.rows):
            return self.title()
        row = self.rows[index]
        return f"{row.title()} {row.describe_field(field)}" if field else row.title()

    def show_errors(self, errors: Sequence[Placed]) -> None:
        marks: dict[int, list[str]] = {}
        lines = []
        for error in errors:
            lines.append(f"{self.describe(error.row, error.field)}: {error.rule}")
            if error.row is not None and error.row < len(self.rows):
                for widget in self.rows[error.row].widgets_for(error.field):
                    marks.setdefault(id(widget), []).append(error.rule)
        for row in self.rows:
            for cell in row.cells():
                mark_invalid(cell, marks.get(id(cell), []))
        self.error.show_rules(lines)


# -- the common editor -------------------------------------------------------------------------
class Banner(QFrame):
    """The changed-under-you warning, with Reload when there is something newer to load."""

    def __init__(self, on_reload: Callable[[], None]) -> None:
        super().__init__()
        self.setObjectName("changedBanner")
        self.setStyleSheet(f"#changedBanner {{{STYLES['warning']} border-radius:4px;}}")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        layout.addWidget(self.label, 1)
        self.reload_button = QPushButton("&Reload")
        self.reload_button.setAccessibleName("Reload their changes")
        self.reload_button.clicked.connect(on_reload)
        layout.addWidget(self.reload_button)
        self.hide()

    def show_warning(self, text: str, reload: bool) -> None:
        self.label.setText(text)
        self.setAccessibleDescription(text)
        self.reload_button.setVisible(reload)
        self.show()

    @property
    def text(self) -> str:
        return self.label.text()


M = TypeVar("M", bound=PeerDescriptor | ClusterDescriptor)


class ResourceEditor(QDialog, Generic[M]):
    """What both editors share: the warning banner, refusal message, read-only note, error routing,
    the save flow (expected_version = the version loaded) and closing without losing work unasked.

    Subclasses build the form, turn it into data for the model, and say what the store forbids.
    """

    kind: ClassVar[ResourceKind]
    noun: ClassVar[str]
    #: Store changes of these kinds may change what the editor shows, allows or forbids.
    watched: ClassVar[frozenset[ResourceKind]] = frozenset(
        {ResourceKind.PEER, ResourceKind.CLUSTER, ResourceKind.CLUSTER_DEPLOYMENT}
    )

    def __init__(self, controller: Controller, resource_id: UUID | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.store = controller.store
        self.is_new = resource_id is None
        self.resource_id: UUID = resource_id or uuid.uuid4()
        self.loaded_version: int | None = None
        self.targets: dict[str, ErrorTarget] = {}
        self.problems: list[Problem] = []  # the local ones: they block saving
        self._refusal: list[Problem] = []  # the backend's, shown until the next edit
        self._valid: M | None = None
        self._clean: Data = {}
        self._loading = False
        self._saving = False
        self._stale_version: int | None = None
        self._deleted = False
        self._read_only: str | None = None
        self.discard_box: QMessageBox | None = None
        self._focus_before_save: QWidget | None = None

        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setModal(False)
        self.setStyleSheet(EDITOR_STYLE)
        self.banner = Banner(self.reload)
        self.refusal = MessageBar()
        self.read_only_note = QLabel()
        self.read_only_note.setObjectName("readOnlyNote")
        self.read_only_note.setWordWrap(True)
        self.read_only_note.hide()
        self.body = QWidget()
        body = QVBoxLayout(self.body)
        body.setContentsMargins(0, 0, 0, 0)
        self.build(body)
        self.summary = QLabel()
        self.summary.setObjectName("saveSummary")
        self.summary.setWordWrap(True)
        self.save_button = QPushButton("&Save")
        self.save_button.setToolTip("Save (Ctrl+S)")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.save)
        self.close_button = QPushButton("Close")
        self.close_button.setAutoDefault(False)
        self.close_button.clicked.connect(self.reject)
        self._layout()
        QShortcut(QKeySequence(QKeySequence.StandardKey.Save), self).activated.connect(self.save)

        self._store_timer = QTimer(self)
        self._store_timer.setSingleShot(True)
        self._store_timer.setInterval(STORE_COALESCE_MS)
        self._store_timer.timeout.connect(self._store_changed)
        unlisten = self.store.listen(self._on_store_change)
        self._unlisten = unlisten
        self.destroyed.connect(lambda *_: unlisten())
        controller.sync_state_changed.connect(self._refresh)
        controller.identity_changed.connect(self._refresh)

        existing = self.store.get(self.kind, resource_id) if resource_id is not None else None
        self.load(existing if isinstance(existing, self.model_type()) else None)
        if resource_id is not None and existing is None:
            self._deleted = True
            self.banner.show_warning(f"This {self.noun} does not exist (any more).", reload=False)
        self._refresh()
        self.first_input().setFocus()

    def _layout(self) -> None:
        root = QVBoxLayout(self)
        for widget in (self.banner, self.refusal, self.read_only_note):
            root.addWidget(widget)
        root.addWidget(self.body, 1)
        footer = QHBoxLayout()
        footer.addWidget(self.summary, 1)
        footer.addWidget(self.save_button)
        footer.addWidget(self.close_button)
        root.addLayout(footer)

    # -- what a subclass provides ----------------------------------------------------------
    def model_type(self) -> type[M]:
        raise NotImplementedError

    def build(self, body: QVBoxLayout) -> None:
        """Create the inputs, register each in ``targets`` by its top-level field name."""
        raise NotImplementedError

    def fill(self, resource: M | None) -> None:
        """Show ``resource`` (None: an empty form for a new one)."""
        raise NotImplementedError

    def form_data(self) -> Data:
        """What the form says, in the model's shape (numbers as typed)."""
        raise NotImplementedError

    def store_problems(self, data: Data) -> list[Problem]:
        """The backend's cross-resource rules that the store can pre-check."""
        return name_taken(self.store, self.kind, self.resource_id, str(data.get("name", "")))

    def blocked_reason(self) -> str | None:
        """Why this resource cannot be changed now (e.g. deployed), or None."""
        return None

    def refresh_choices(self) -> None:
        """Bring choices that come from the store (peers, devices) up to date."""

    def on_edit(self) -> None:
        """Keep dependent inputs in step after an edit."""

    def tab_sequence(self) -> list[QWidget]:
        raise NotImplementedError

    async def write(self, resource: M, expected_version: int | None, create_only: bool) -> WriteResult:
        raise NotImplementedError

    # -- loading and state -----------------------------------------------------------------
    def load(self, resource: M | None) -> None:
        self._loading = True
        try:
            self.fill(resource)
        finally:
            self._loading = False
        self.loaded_version = resource.version if resource is not None else None
        self._stale_version = None
        self._deleted = False
        self._refusal = []
        self.banner.hide()
        self.refusal.hide()
        self._clean = self.form_data()
        title = f"New {self.noun}" if resource is None else f"{self.noun.capitalize()} '{resource.name}'"
        self.setWindowTitle(f"{title} — LEA")
        self.update_tab_order()

    def first_input(self) -> QWidget:
        return self.tab_sequence()[0]

    def update_tab_order(self) -> None:
        chain = [self.banner.reload_button, *self.tab_sequence(), self.save_button, self.close_button]
        for before, after in itertools.pairwise(chain):
            QWidget.setTabOrder(before, after)

    def is_dirty(self) -> bool:
        return self.form_data() != self._clean

    def edited(self, *_: object) -> None:
        """Any user edit: the backend's last refusal no longer applies to what is typed."""
        if self._loading:
            return
        self._refusal = []
        self.on_edit()
        self.revalidate()

    def _refresh(self, *_: object) -> None:
        if not isValid(self):
            return
        self._read_only = self.read_only_reason()
        self.body.setEnabled(self._read_only is None and not self._saving)  # no edits while a save is on its way
        self.read_only_note.setText(self._read_only or "")
        self.read_only_note.setVisible(self._read_only is not None)
        self.revalidate()

    def read_only_reason(self) -> str | None:
        if not self.is_new and (reason := self.blocked_reason()):
            return reason
        if not self.controller.identity.can_write:
            return f"Read-only: your role ({self.controller.identity.role}) cannot change {self.noun}s."
        if not self.controller.live:
            return "Read-only until LEA is back in sync with the backend."
        return None

    # -- validation ------------------------------------------------------------------------
    def revalidate(self) -> None:
        data = self.form_data()
        valid, found = validation_problems(self.model_type().model_validate, data)
        problems = [*found, *self.store_problems(data)]
        self.problems = problems
        self._valid = valid if not problems else None
        self._show_problems([*problems, *self._refusal])
        self._update_save()

    def _place(self, problem: Problem) -> tuple[str, Placed] | None:
        match = _PATH.match(problem.field)
        if match is None or match["head"] not in self.targets:
            return None
        index = int(match["index"]) if match["index"] is not None else None
        return match["head"], Placed(index, match["rest"] or "", problem.rule)

    def describe(self, problem: Problem) -> str:
        placed = self._place(problem)
        if placed is None:
            return f"{problem.field}: {problem.rule}"
        key, where = placed
        return f"{self.targets[key].describe(where.row, where.field)}: {problem.rule}"

    def _show_problems(self, problems: Sequence[Problem]) -> None:
        by_target: dict[str, list[Placed]] = {key: [] for key in self.targets}
        for problem in problems:
            placed = self._place(problem)
            if placed is not None:
                by_target[placed[0]].append(placed[1])
        for key, target in self.targets.items():
            target.show_errors(by_target[key])

    def save_blocker(self) -> tuple[str, str] | None:
        """Why Save is disabled now, as (summary, tone), or None when it is enabled."""
        if self._read_only is not None:
            return "", "info"
        if self._saving:
            return "Saving…", "info"
        if self._deleted:
            return f"This {self.noun} no longer exists, so it cannot be saved.", "error"
        if self._stale_version is not None:
            return f"Reload before saving: this {self.noun} was changed by someone else.", "error"
        if self.problems:
            more = len(self.problems) - 1
            extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
            return f"Cannot save: {self.describe(self.problems[0])}{extra}.", "error"
        if not self.is_new and not self.is_dirty():
            return "No changes.", "info"
        return None

    def _update_save(self) -> None:
        blocker = self.save_blocker()
        self.save_button.setEnabled(blocker is None)
        text, tone = blocker or ("", "info")
        self.summary.setText(text)
        if self.summary.property("tone") != tone:
            self.summary.setProperty("tone", tone)
            repolish(self.summary)

    # -- saving ----------------------------------------------------------------------------
    def save(self) -> None:
        self.revalidate()
        resource = self._valid
        if resource is None or not self.save_button.isEnabled():
            return
        expected = None if self.is_new else self.loaded_version
        create_only = self.is_new
        self._saving = True
        self._focus_before_save = self.focusWidget()
        self.refusal.hide()
        self._refresh()
        self.controller.run(
            lambda: self.write(resource, expected, create_only),
            success=f"{self.noun.capitalize()} '{resource.name}' saved",
            on_done=self._saved,
            on_error=self._refused,
        )

    def _saved(self, result: WriteResult) -> None:
        if not isValid(self):
            return
        self._saving = False
        self.loaded_version = result.version
        self._clean = self.form_data()
        self.accept()

    def _refused(self, error: LeaError) -> None:
        if not isValid(self):  # closed meanwhile: say it in the main window instead
            self.controller.message.emit("error", error.message)
            return
        self._saving = False
        self.refusal.show_message("error", f"Not saved: {error.message}")
        if isinstance(error, Conflict):
            current = self.store.get(self.kind, self.resource_id)
            actual = current.version if current is not None else error.details.get("actual", "?")
            self._show_changed(actual)
        self._refusal = refusal_problems(error)
        self._check_own_version()  # skipped while the save was on its way
        self._refresh()
        focus = self._focus_before_save
        if focus is not None and isValid(focus) and focus.isEnabled():
            focus.setFocus()  # the form was disabled while saving: the keyboard user carries on where they were

    # -- the resource changing underneath ------------------------------------------------------
    def _on_store_change(self, change: StoreChange) -> None:
        if change.kind in self.watched and isValid(self):
            self._store_timer.start()

    def _store_changed(self) -> None:
        self.refresh_choices()
        self._check_own_version()
        self._refresh()

    def _check_own_version(self) -> None:
        if self._saving or self.is_new:
            return  # our own save's event arrives before its reply: not someone else's change
        current = self.store.get(self.kind, self.resource_id)
        if current is None:
            self._deleted = True
            self.banner.show_warning(
                f"This {self.noun} was deleted by someone else. It can no longer be saved.", reload=False
            )
        elif current.version != self.loaded_version:
            self._show_changed(current.version)

    def _show_changed(self, version: object) -> None:
        self._stale_version = version if isinstance(version, int) else -1
        self.banner.show_warning(
            f"This {self.noun} was changed by someone else (version {version}). "
            "Saving will be refused; Reload to take their changes.",
            reload=True,
        )

    def reload(self) -> None:
        current = self.store.get(self.kind, self.resource_id)
        if isinstance(current, self.model_type()):
            self.load(current)
            self._refresh()

    # -- closing ---------------------------------------------------------------------------
    def reject(self) -> None:
        """Escape, Close and the window's close button: ask only when something would be lost."""
        if not self.is_dirty():
            self.discard()
            return
        box = QMessageBox(self)
        box.setObjectName("discardChanges")
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Discard changes")
        box.setText(f"Discard your changes to this {self.noun}?")
        discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.buttonClicked.connect(lambda button: self.discard() if button is discard else None)
        self.discard_box = box
        box.open()

    def discard(self) -> None:
        """Close without asking; unsaved changes are dropped."""
        super().reject()

    def done(self, result: int) -> None:
        self._store_timer.stop()
        self._unlisten()
        super().done(result)


# -- peers -------------------------------------------------------------------------------------
class PeerEditor(ResourceEditor[PeerDescriptor]):
    """Name, location, bridge, interfaces and devices of a peer (a test bench)."""

    kind = ResourceKind.PEER
    noun = "peer"

    def model_type(self) -> type[PeerDescriptor]:
        return PeerDescriptor

    def build(self, body: QVBoxLayout) -> None:
        self.resize(1000, 680)
        self._demo = False
        self._loaded_devices: dict[UUID, str] = {}
        self.name_edit = line_edit("bench-01")
        self.location_edit = line_edit("Lab A, rack 1 (optional)")
        self.bridge_edit = line_edit(DEFAULT_BRIDGE_NAME)
        self.demo_label = QLabel("demo bench (simulated)")
        self.demo_label.setAccessibleName("Demo bench (simulated)")
        fields = [
            FieldRow("&Name:", "Name", self.name_edit),
            FieldRow("&Location:", "Location", self.location_edit),
            FieldRow("&Bridge name:", "Bridge name", self.bridge_edit),
        ]
        form = QFormLayout()
        for field in fields:
            field.add_to(form)
        for edit in (self.name_edit, self.location_edit, self.bridge_edit):
            edit.textChanged.connect(self.edited)
        self.demo_caption = QLabel("Demo:")
        form.addRow(self.demo_caption, self.demo_label)
        body.addLayout(form)
        self.interfaces = RowTable("Network interfaces", "Add &interface", InterfaceRow, InterfaceRow)
        self.devices = RowTable(
            "Devices", "Add &device", DeviceRow,
            lambda device, changed: DeviceRow(device, changed, self.interface_choices()),
        )
        for table in (self.interfaces, self.devices):
            table.edited.connect(self.edited)
            table.rows_changed.connect(self.update_tab_order)
            body.addWidget(table, 1)
        self.targets = {"name": fields[0], "location": fields[1], "bridge_name": fields[2],
                        "interfaces": self.interfaces, "devices": self.devices}

    def fill(self, peer: PeerDescriptor | None) -> None:
        self.name_edit.setText(peer.name if peer else "")
        self.location_edit.setText(peer.location or "" if peer else "")
        self.bridge_edit.setText(peer.bridge_name or "" if peer else "")
        self._demo = peer.demo if peer else False
        self.demo_caption.setVisible(self._demo)
        self.demo_label.setVisible(self._demo)
        self._loaded_devices = {d.id: d.name for d in peer.devices} if peer else {}
        self.interfaces.set_items(peer.interfaces if peer else ())
        self.devices.set_items(peer.devices if peer else ())

    def form_data(self) -> Data:
        return {
            "id": str(self.resource_id),
            "version": self.loaded_version or 0,
            "name": self.name_edit.text(),
            "location": self.location_edit.text() or None,
            "demo": self._demo,
            "bridge_name": self.bridge_edit.text() or None,
            "interfaces": self.interfaces.data(),
            "devices": self.devices.data(),
        }

    def interface_choices(self) -> list[tuple[str, str]]:
        return [(row.name() or f"(interface {row.number})", str(row.id)) for row in self.interfaces.rows]

    def on_edit(self) -> None:
        choices = self.interface_choices()
        for row in self.devices.rows:
            row.set_interfaces(choices)

    def store_problems(self, data: Data) -> list[Problem]:
        problems = super().store_problems(data)
        kept = {d["id"] for d in data["devices"]}
        removed = {id: name for id, name in self._loaded_devices.items() if str(id) not in kept}
        users: dict[UUID, list[str]] = {}
        for cluster in self.store.all(ResourceKind.CLUSTER).values():
            if isinstance(cluster, ClusterDescriptor):
                for device_id in removed.keys() & set(cluster.devices):
                    users.setdefault(device_id, []).append(cluster.name)
        for device_id, names in users.items():
            clusters = ", ".join(f"'{n}'" for n in sorted(names))
            problems.append(Problem(
                "devices", f"device '{removed[device_id]}' cannot be removed: it is used by cluster {clusters}"
            ))
        return problems

    def blocked_reason(self) -> str | None:
        peers = [p for p in self.store.all(ResourceKind.PEER).values() if isinstance(p, PeerDescriptor)]
        clusters = [c for c in self.store.all(ResourceKind.CLUSTER).values() if isinstance(c, ClusterDescriptor)]
        blocker = blocking_clusters(peers, clusters, self.store.all(ResourceKind.CLUSTER_DEPLOYMENT)).get(
            self.resource_id
        )
        if blocker is None:
            return None
        return f"This peer is used by deployed cluster '{blocker.name}' and cannot be changed; undeploy it first."

    def tab_sequence(self) -> list[QWidget]:
        return [self.name_edit, self.location_edit, self.bridge_edit, *self.interfaces.inputs(),
                *self.devices.inputs()]

    async def write(self, resource: PeerDescriptor, expected_version: int | None, create_only: bool) -> WriteResult:
        return await self.controller.connection.store_peer_descriptor(resource, expected_version, create_only)


# -- clusters ----------------------------------------------------------------------------------
class DevicePicker(QWidget):
    """All devices as "peer / device", checkable and filterable; the checked ones are ``selected``."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        super().__init__()
        self._on_change = on_change
        self.selected: set[str] = set()
        self.filter = line_edit("Filter by peer or device name")
        self.filter.setClearButtonEnabled(True)
        self.filter.setAccessibleName("Filter devices")
        self.filter.textChanged.connect(self._apply_filter)
        self.list = QListWidget()
        self.list.setMinimumHeight(220)
        self.list.itemChanged.connect(self._item_changed)
        self.count = QLabel()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.filter)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.count)
        self._known: list[tuple[str, str]] = []

    def set_entries(self, entries: Sequence[tuple[str, str]]) -> None:
        """(label, device id) for every device in the store, in display order."""
        if list(entries) != self._known:
            self._known = list(entries)
            self._rebuild()

    def set_selected(self, ids: Iterable[str]) -> None:
        self.selected = set(ids)
        self._rebuild()

    def _rebuild(self) -> None:
        """Checked devices that vanished from the store stay listed (and checked), labelled as deleted."""
        known = {value for _, value in self._known}
        missing = [(f"(deleted device {value[:8]})", value) for value in sorted(self.selected - known)]
        self.list.blockSignals(True)
        try:
            self.list.clear()
            for label, value in [*self._known, *missing]:
                item = QListWidgetItem(label)
                item.setData(Qt.ItemDataRole.UserRole, value)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                checked = value in self.selected
                item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
                self.list.addItem(item)
        finally:
            self.list.blockSignals(False)
        self._apply_filter()
        self._update_count()

    def items(self) -> list[QListWidgetItem]:
        return [self.list.item(i) for i in range(self.list.count())]

    def _item_changed(self, item: QListWidgetItem) -> None:
        value = str(item.data(Qt.ItemDataRole.UserRole))
        if item.checkState() == Qt.CheckState.Checked:
            self.selected.add(value)
        else:
            self.selected.discard(value)
        self._update_count()
        self._on_change()

    def _apply_filter(self, *_: object) -> None:
        needle = self.filter.text().strip().casefold()
        for item in self.items():
            item.setHidden(bool(needle) and needle not in item.text().casefold())

    def _update_count(self) -> None:
        self.count.setText(f"{len(self.selected)} of {len(self._known)} devices selected")


class ClusterEditor(ResourceEditor[ClusterDescriptor]):
    """Name, leader and devices of a cluster; read-only while it is deployed."""

    kind = ResourceKind.CLUSTER
    noun = "cluster"

    def model_type(self) -> type[ClusterDescriptor]:
        return ClusterDescriptor

    def build(self, body: QVBoxLayout) -> None:
        self.resize(600, 640)
        self.leader_id: str | None = None
        self.name_edit = line_edit("my-cluster")
        self.leader_combo = QComboBox()
        self.leader_combo.setPlaceholderText("Choose the leader peer")
        self.picker = DevicePicker(self.edited)
        fields = [
            FieldRow("&Name:", "Name", self.name_edit),
            FieldRow("&Leader:", "Leader", self.leader_combo),
            FieldRow("&Devices:", "Devices", self.picker.list, shown=self.picker),
        ]
        form = QFormLayout()
        for field in fields:
            field.add_to(form)
        body.addLayout(form, 1)
        self.name_edit.textChanged.connect(self.edited)
        self.leader_combo.currentIndexChanged.connect(self._leader_chosen)
        self.targets = {"name": fields[0], "leader": fields[1], "devices": fields[2]}

    def _leader_chosen(self, *_: object) -> None:
        self.leader_id = self.leader_combo.currentData()
        self.edited()

    def _peers(self) -> list[PeerDescriptor]:
        peers = [p for p in self.store.all(ResourceKind.PEER).values() if isinstance(p, PeerDescriptor)]
        return sorted(peers, key=lambda p: p.name.casefold())

    def refresh_choices(self) -> None:
        peers = self._peers()
        set_choices(self.leader_combo, [(p.name, str(p.id)) for p in peers], self.leader_id, "(deleted peer)")
        self.picker.set_entries([
            (f"{p.name} / {d.name}", str(d.id))
            for p in peers
            for d in sorted(p.devices, key=lambda d: d.name.casefold())
        ])

    def fill(self, cluster: ClusterDescriptor | None) -> None:
        self.name_edit.setText(cluster.name if cluster else "")
        self.leader_id = str(cluster.leader) if cluster else None
        self.picker.set_selected(str(d) for d in (cluster.devices if cluster else ()))
        self.refresh_choices()

    def form_data(self) -> Data:
        data: Data = {
            "id": str(self.resource_id),
            "version": self.loaded_version or 0,
            "name": self.name_edit.text(),
            "devices": sorted(self.picker.selected),
        }
        if self.leader_id is not None:
            data["leader"] = self.leader_id
        return data

    def store_problems(self, data: Data) -> list[Problem]:
        problems = super().store_problems(data)
        peers = self.store.all(ResourceKind.PEER)
        if self.leader_id is not None and UUID(self.leader_id) not in peers:
            problems.append(Problem("leader", "is not an existing peer any more (it was deleted)"))
        known = {str(d.id) for p in peers.values() if isinstance(p, PeerDescriptor) for d in p.devices}
        missing = len(self.picker.selected - known)
        if missing:
            problems.append(Problem("devices", f"{missing} checked device(s) no longer exist; uncheck them"))
        return problems

    def blocked_reason(self) -> str | None:
        if self.resource_id in self.store.all(ResourceKind.CLUSTER_DEPLOYMENT):
            return "Deployed clusters cannot be changed; undeploy first."
        return None

    def tab_sequence(self) -> list[QWidget]:
        return [self.name_edit, self.leader_combo, self.picker.filter, self.picker.list]

    async def write(
        self, resource: ClusterDescriptor, expected_version: int | None, create_only: bool
    ) -> WriteResult:
        return await self.controller.connection.store_cluster_descriptor(resource, expected_version, create_only)
