"""The table of one peer's configuration: every parameter with kind, value, target and reported state.

Rows are parameter ids (the same for Present and Absent, so an undeploy updates the rows in place);
the rows come from ``lea_app.models.parameters`` (Qt-free) and follow the store live, sorted inside
the model like every LEA table.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from PySide6.QtCore import QObject
from PySide6.QtGui import QBrush

from lea_app.models.parameters import ParameterRow, parameter_rows
from lea_app.models.resources import GREEN, GREY, RED
from lea_app.models.status_icons import StatusIcon
from lea_app.models.table import Column, ResourceTableModel
from lea_app.sync.store import Store, StoreChange
from resources.configuration import PeerConfiguration, PeerConfigurationState
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor

KINDS = (ResourceKind.PEER_CONFIGURATION, ResourceKind.PEER_CONFIGURATION_STATE)


def _state_brush(row: ParameterRow) -> QBrush:
    if row.failed:
        return RED
    return GREEN if row.reached else GREY


def _state_icon(row: ParameterRow) -> StatusIcon:
    if row.failed:
        return StatusIcon.FAILED
    if row.reached:
        return StatusIcon.OK
    return StatusIcon.IDLE if row.state is None else StatusIcon.BUSY


def _state_tooltip(row: ParameterRow) -> str:
    if row.state is None:
        return "The bench has not reported this parameter yet"
    wanted = "as wanted" if row.reached else f"wanted: {row.target}"
    text = f"{row.state_text} ({wanted})" + (f": {row.detail}" if row.detail else "")
    return text + ("\nThe bench reports a simulation here (see the detail)" if row.simulated else "")


class PeerConfigurationModel(ResourceTableModel[ParameterRow]):
    columns = (
        Column[ParameterRow](
            "#", lambda r: str(r.order), sort_key=lambda r: r.order, width=40,
            tooltip=lambda r: "Position in dependency order (the order the bench applies them in)",
        ),
        Column[ParameterRow]("Kind", lambda r: r.kind, width=125),
        Column[ParameterRow]("Value", lambda r: r.value, tooltip=lambda r: r.value, width=330),
        Column[ParameterRow]("Target", lambda r: r.target, width=65),
        Column[ParameterRow](
            "State", lambda r: r.state_text, foreground=_state_brush, tooltip=_state_tooltip, width=135,
            decoration=_state_icon,
            sort_key=lambda r: (not r.failed, r.reached, r.order),  # errors first, then what is not there yet
        ),
        Column[ParameterRow]("Detail", lambda r: r.detail, tooltip=lambda r: r.detail, width=210),
        Column[ParameterRow]("Metrics", lambda r: r.metrics, tooltip=lambda r: r.metrics_tooltip, width=200),
    )

    def __init__(self, store: Store, peer_id: UUID, parent: QObject | None = None) -> None:
        super().__init__(store, parent)
        self.peer_id = peer_id
        self._built: dict[UUID, ParameterRow] = {}

    def candidate_ids(self) -> Iterable[UUID]:
        configuration = self.store.get(ResourceKind.PEER_CONFIGURATION, self.peer_id)
        return [p.id for p in configuration.parameters] if isinstance(configuration, PeerConfiguration) else []

    def affected_ids(self, change: StoreChange) -> set[UUID] | None:
        if change.kind in KINDS and self.peer_id in (change.inserted | change.changed | change.removed):
            return None  # a configuration is a few dozen rows: rebuild them all (unchanged ones stay)
        return set()

    def prepare(self) -> None:
        self._built = self.all_rows()

    def make_row(self, id: UUID) -> ParameterRow | None:
        return self._built.get(id)

    def configuration(self) -> PeerConfiguration | None:
        configuration = self.store.get(ResourceKind.PEER_CONFIGURATION, self.peer_id)
        return configuration if isinstance(configuration, PeerConfiguration) else None

    def reports(self) -> PeerConfigurationState | None:
        state = self.store.get(ResourceKind.PEER_CONFIGURATION_STATE, self.peer_id)
        return state if isinstance(state, PeerConfigurationState) else None

    def all_rows(self) -> dict[UUID, ParameterRow]:
        """Every row, as the store has it now (the dialog's summary)."""
        return parameter_rows(self.configuration(), self.reports(), self._peer_name)

    def _peer_name(self, peer_id: UUID) -> str | None:
        peer = self.store.get(ResourceKind.PEER, peer_id)
        return peer.name if isinstance(peer, PeerDescriptor) else None
