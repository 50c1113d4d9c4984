"""The editable tables of a peer editor: network interfaces and devices, a row of inputs each."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Generic, TypeVar
from uuid import UUID

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from lea_app.views.editors.problems import Data, Placed, describe_field
from lea_app.views.editors.widgets import ErrorLabel, line_edit, mark_invalid, set_choices
from resources.peer import CanConfiguration, Device, NetworkInterface


def put_text(data: Data, key: str, text: str) -> None:
    """Numbers are typed as text and parsed by the model; an empty box means "not given"."""
    if text.strip():
        data[key] = text.strip()


def number_text(value: float | int | None) -> str:
    return "" if value is None else str(value)


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
        return describe_field(field)

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
        self.interface_name = ""
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
        for label, value in interfaces:
            if value == self.interface_id and not label.startswith("("):
                self.interface_name = label  # remembered: named when the interface is removed
        gone = f"(removed interface {self.interface_name})" if self.interface_name else "(removed interface)"
        set_choices(self.interface_combo, interfaces, self.interface_id, gone)

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
        self._user_changed = False  # rows added or removed since the items were set
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
        self._user_changed = False
        self._rows_changed()

    def add_row(self, item: Any = None) -> R:
        row = self._make_row(item, self.edited.emit)
        self._insert(row)
        self._user_changed = True
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
        self._user_changed = True
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

    def inputs_for(self, where: Placed) -> list[QWidget]:
        if where.row is None or where.row >= len(self.rows):
            return [cell for row in self.rows for cell in row.cells()]
        row = self.rows[where.row]
        return row.widgets_for(where.field) if where.field else row.cells()

    def user_changed(self) -> bool:
        return self._user_changed

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
