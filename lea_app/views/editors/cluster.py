"""The cluster editor: name, leader and devices of a cluster (read-only while it is deployed)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from lea_app.views.editors.base import ResourceEditor
from lea_app.views.editors.choices import (
    DeviceChoice,
    DeviceGroup,
    device_groups,
    leader_choices,
    online_text,
    sorted_peers,
)
from lea_app.views.editors.problems import Data, Problem, cluster_blocked_reason, missing_references
from lea_app.views.editors.widgets import FieldRow, line_edit, set_choices
from resources.cluster import ClusterDescriptor
from resources.events import WriteResult
from resources.kinds import ResourceKind

#: The peer a picker item belongs to (its name).
PEER_ROLE = Qt.ItemDataRole.UserRole + 1


class DevicePicker(QWidget):
    """Every device, grouped by peer (with its online state), checkable and filterable by peer,
    device or cluster name; each device says which other clusters use it. The checked ones are
    ``selected``. A peer's box checks or unchecks all its devices."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        super().__init__()
        self._on_change = on_change
        self.selected: set[str] = set()
        self.filter = line_edit("Filter by peer, device or cluster name")
        self.filter.setClearButtonEnabled(True)
        self.filter.setAccessibleName("Filter devices")
        self.filter.textChanged.connect(self._apply_filter)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Device", "Also used by"])
        self.tree.setColumnWidth(0, 260)
        self.tree.setUniformRowHeights(True)
        self.tree.setMinimumHeight(220)
        self.tree.itemChanged.connect(self._item_changed)
        self.count = QLabel()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.filter)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.count)
        self._groups: list[DeviceGroup] = []
        self._headers: dict[str, QTreeWidgetItem] = {}
        self._updating = False

    def set_groups(self, groups: Sequence[DeviceGroup]) -> None:
        """The devices in the store, grouped by peer, in display order."""
        groups = list(groups)
        if [g._replace(online=False) for g in groups] == [g._replace(online=False) for g in self._groups]:
            self._groups = groups  # only online states changed: no rebuild (500 benches, 1,500 devices)
            for group in groups:
                header = self._headers.get(group.peer_id)
                if header is not None:
                    header.setText(0, self._header_text(group))
            return
        self._groups = groups
        self._rebuild()

    def set_selected(self, ids: Iterable[str]) -> None:
        self.selected = set(ids)
        self._rebuild()

    @staticmethod
    def _header_text(group: DeviceGroup) -> str:
        count = len(group.devices)
        return f"{group.peer} — {online_text(group.online)}, {count} device{'s' if count != 1 else ''}"

    def _rebuild(self) -> None:
        """Checked devices that vanished from the store stay listed (and checked), labelled as deleted."""
        known = {d.id for g in self._groups for d in g.devices}
        missing = sorted(self.selected - known)
        groups = list(self._groups)
        if missing:
            gone = tuple(DeviceChoice("(deleted device)", value, "") for value in missing)
            groups.append(DeviceGroup("Deleted devices", "", False, gone))
        expand = len(groups) <= 12
        self._updating = True
        self.tree.setUpdatesEnabled(False)
        try:
            self.tree.clear()
            self._headers = {}
            for group in groups:
                header = QTreeWidgetItem([self._header_text(group) if group.peer_id else group.peer, ""])
                header.setFlags(header.flags() | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsAutoTristate)
                header.setData(0, PEER_ROLE, group.peer)
                for device in group.devices:
                    item = QTreeWidgetItem([device.name, device.used_by])
                    item.setData(0, Qt.ItemDataRole.UserRole, device.id)
                    item.setData(0, PEER_ROLE, group.peer)
                    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                    checked = device.id in self.selected
                    item.setCheckState(0, Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
                    if device.used_by:
                        item.setToolTip(1, f"{device.name} is also used by {device.used_by}")
                    header.addChild(item)
                self.tree.addTopLevelItem(header)
                header.setFirstColumnSpanned(True)  # "bench-a — online, 3 devices" across both columns
                header.setExpanded(expand or any(d.id in self.selected for d in group.devices))
                if group.peer_id:
                    self._headers[group.peer_id] = header
        finally:
            self.tree.setUpdatesEnabled(True)
            self._updating = False
        self._apply_filter()
        self._update_count()

    def groups(self) -> list[QTreeWidgetItem]:
        found = (self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount()))
        return [item for item in found if item is not None]

    def items(self) -> list[QTreeWidgetItem]:
        """The device items (not the peers'), in display order."""
        return [item for group in self.groups() for item in _children(group)]

    def item_for(self, peer: str, device: str) -> QTreeWidgetItem | None:
        return next((i for i in self.items() if i.data(0, PEER_ROLE) == peer and i.text(0) == device), None)

    def _item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if self._updating or column != 0 or item.parent() is None:
            return  # a peer's box changes through its devices (auto tristate)
        value = str(item.data(0, Qt.ItemDataRole.UserRole))
        if item.checkState(0) == Qt.CheckState.Checked:
            self.selected.add(value)
        else:
            self.selected.discard(value)
        self._update_count()
        self._on_change()

    def _apply_filter(self, *_: object) -> None:
        needle = self.filter.text().strip().casefold()
        for group in self.groups():
            whole = not needle or needle in str(group.data(0, PEER_ROLE)).casefold()
            shown = 0
            for item in _children(group):
                hit = whole or needle in item.text(0).casefold() or needle in item.text(1).casefold()
                item.setHidden(not hit)
                shown += hit
            group.setHidden(shown == 0)
            if needle and shown:
                group.setExpanded(True)

    def _update_count(self) -> None:
        total = sum(len(g.devices) for g in self._groups)
        peers = sum(1 for g in self._groups if any(d.id in self.selected for d in g.devices))
        self.count.setText(
            f"{len(self.selected)} of {total} devices selected, on {peers} peer{'s' if peers != 1 else ''}"
        )


def _children(item: QTreeWidgetItem) -> list[QTreeWidgetItem]:
    found = (item.child(i) for i in range(item.childCount()))
    return [child for child in found if child is not None]


class ClusterEditor(ResourceEditor[ClusterDescriptor]):
    """Name, leader and devices of a cluster; read-only while it is deployed."""

    kind = ResourceKind.CLUSTER
    noun = "cluster"
    #: The leader picker shows each peer's online state.
    watched = ResourceEditor.watched | {ResourceKind.PEER_CONNECTION_STATE}

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
            FieldRow("&Devices:", "Devices", self.picker.tree, shown=self.picker),
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

    def refresh_choices(self) -> None:
        peers = sorted_peers(self.store)
        set_choices(self.leader_combo, leader_choices(self.store, peers), self.leader_id, "(deleted peer)")
        self.picker.set_groups(device_groups(self.store, peers, self.resource_id))

    def touch_inputs(self) -> list[tuple[QWidget, Callable[[], object]]]:
        return [*super().touch_inputs(), (self.picker.tree, lambda: frozenset(self.picker.selected))]

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
        return [self.name_edit, self.leader_combo, self.picker.filter, self.picker.tree]

    async def write(
        self, resource: ClusterDescriptor, expected_version: int | None, create_only: bool
    ) -> WriteResult:
        return await self.controller.connection.store_cluster_descriptor(resource, expected_version, create_only)
