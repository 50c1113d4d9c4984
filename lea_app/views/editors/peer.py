"""The peer editor: name, location, bridge, network interfaces and devices of a test bench."""

from __future__ import annotations

from PySide6.QtWidgets import QFormLayout, QLabel, QVBoxLayout, QWidget

from lea_app.views.editors.base import ResourceEditor
from lea_app.views.editors.problems import Data, Problem, peer_blocked_reason, removed_devices_in_use
from lea_app.views.editors.rows import DeviceRow, InterfaceRow, RowTable
from lea_app.views.editors.widgets import FieldRow, line_edit
from resources.events import WriteResult
from resources.kinds import ResourceKind
from resources.peer import DEFAULT_BRIDGE_NAME, PeerDescriptor


class PeerEditor(ResourceEditor[PeerDescriptor]):
    """Name, location, bridge, interfaces and devices of a peer (a test bench)."""

    kind = ResourceKind.PEER
    noun = "peer"

    def model_type(self) -> type[PeerDescriptor]:
        return PeerDescriptor

    def build(self, body: QVBoxLayout) -> None:
        self.resize(1000, 680)
        self._demo = False
        self._loaded: PeerDescriptor | None = None
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
        self._loaded = peer
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
        kept = (d["id"] for d in data["devices"])
        return [*super().store_problems(data), *removed_devices_in_use(self.store, self._loaded, kept)]

    def blocked_reason(self) -> str | None:
        return peer_blocked_reason(self.store, self.resource_id)

    def name_of(self, id: str) -> str | None:
        """An interface's name, as the form has it or as it was loaded (one the form removed)."""
        for row in self.interfaces.rows:
            if str(row.id) == id and row.name():
                return row.name()
        for device in self.devices.rows:  # the name a device row last saw for its interface
            if device.interface_id == id and device.interface_name:
                return device.interface_name
        loaded = self._loaded.interfaces if self._loaded is not None else ()
        return next((i.name for i in loaded if str(i.id) == id), None)

    def tab_sequence(self) -> list[QWidget]:
        return [self.name_edit, self.location_edit, self.bridge_edit, *self.interfaces.inputs(),
                *self.devices.inputs()]

    async def write(self, resource: PeerDescriptor, expected_version: int | None, create_only: bool) -> WriteResult:
        return await self.controller.connection.store_peer_descriptor(resource, expected_version, create_only)
