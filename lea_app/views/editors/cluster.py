"""The cluster editor: name, leader and devices of a cluster (read-only while it is deployed)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from lea_app.views.editors.base import ResourceEditor
from lea_app.views.editors.problems import Data, Problem, cluster_blocked_reason, missing_references
from lea_app.views.editors.widgets import FieldRow, line_edit, set_choices
from resources.cluster import ClusterDescriptor
from resources.events import WriteResult
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor


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
        missing = missing_references(self.store, str(data.get("name", "")), self.leader_id, self.picker.selected)
        return [*super().store_problems(data), *missing]

    def blocked_reason(self) -> str | None:
        return cluster_blocked_reason(self.store, self.resource_id)

    def tab_sequence(self) -> list[QWidget]:
        return [self.name_edit, self.leader_combo, self.picker.filter, self.picker.list]

    async def write(
        self, resource: ClusterDescriptor, expected_version: int | None, create_only: bool
    ) -> WriteResult:
        return await self.controller.connection.store_cluster_descriptor(resource, expected_version, create_only)
