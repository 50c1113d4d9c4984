"""A peer's configuration as an engineer reads it: one row per parameter, with its reported state.

Qt-free: ``parameter_rows`` joins a ``PeerConfiguration`` (what the backend wants) with the peer's
``PeerConfigurationState`` (what the bench reports), in dependency order; ``describe_value`` turns a
parameter's value into a line ("vxlan vni 4711 10.0.0.1 -> 10.0.0.2, mtu 1450").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from lea_app.models.can_text import can_connection, can_local_route, device_interface, metrics_text, metrics_tooltip
from resources.configuration import (
    Parameter,
    ParameterAbsent,
    ParameterError,
    ParameterKind,
    ParameterPresent,
    ParameterStatus,
    PeerConfiguration,
    PeerConfigurationState,
    Target,
    dependency_order,
)

KIND_TEXT: dict[ParameterKind, str] = {
    ParameterKind.DEVICE_INTERFACE: "Device interface",
    ParameterKind.ETHERNET_BRIDGE: "Ethernet bridge",
    ParameterKind.GRE_INTERFACE: "Tunnel",
    ParameterKind.INTERFACE_JOIN: "Interface join",
    ParameterKind.CAN_BRIDGE: "CAN bridge",
    ParameterKind.CAN_CONNECTION: "CAN connection",
    ParameterKind.CAN_LOCAL_ROUTE: "CAN local route",
    ParameterKind.REMOTE_PEER_CHECK: "Remote peer check",
}

Value = dict[str, str | int | bool]


PeerName = Callable[[UUID], str | None]


def _take(value: Value, *keys: str) -> str:
    """The first of ``keys`` present in ``value`` (removed from it), as text; "" when none is
    (or when it is 0: a gretap tunnel has vni 0 and port 0)."""
    for key in keys:
        if key in value:
            text = str(value.pop(key))
            return "" if text == "0" else text
    return ""


def _tunnel(value: Value) -> str:
    encapsulation = _take(value, "encapsulation", "tunnel", "type")
    vni = _take(value, "vni")
    port = _take(value, "port", "dstport")
    name = _take(value, "name")
    local, remote = _take(value, "local"), _take(value, "remote")
    mtu = _take(value, "mtu")
    words = [encapsulation, f"vni {vni}" if vni else "", f"port {port}" if port else "", f"{name}:" if name else ""]
    text = " ".join(w for w in words if w)
    text += f" {local or '?'} -> {remote or '?'}" if text else f"{local or '?'} -> {remote or '?'}"
    return text + (f", mtu {mtu}" if mtu else "")


def _remote_peer_check(value: Value, peer_name: PeerName | None) -> str:
    remote, peer, bridge = _take(value, "remote"), _take(value, "peer"), _take(value, "bridge")
    name = ""
    if peer:
        try:
            name = (peer_name(UUID(peer)) if peer_name else None) or peer[:8]
        except ValueError:
            name = peer
    target = f"{name} at {remote or '?'}" if name else remote or "?"
    return f"probe {target}" + (f" (its bridge {bridge})" if bridge else "")


_DESCRIBE: dict[ParameterKind, Callable[[Value], str]] = {
    ParameterKind.DEVICE_INTERFACE: device_interface,
    ParameterKind.ETHERNET_BRIDGE: lambda v: _take(v, "name"),
    ParameterKind.GRE_INTERFACE: _tunnel,
    ParameterKind.INTERFACE_JOIN: lambda v: f"{_take(v, 'interface')} into {_take(v, 'bridge')}",
    ParameterKind.CAN_BRIDGE: lambda v: _take(v, "name"),
    ParameterKind.CAN_CONNECTION: can_connection,
    ParameterKind.CAN_LOCAL_ROUTE: can_local_route,
}


def describe_value(parameter: Parameter, peer_name: PeerName | None = None) -> str:
    """The value in one line (peers by ``peer_name``); keys this LEA does not know are appended as
    ``key=value`` (never hidden)."""
    rest = dict(parameter.value)
    if parameter.kind == ParameterKind.REMOTE_PEER_CHECK:
        text = _remote_peer_check(rest, peer_name)
    else:
        text = _DESCRIBE[parameter.kind](rest)
    extra = ", ".join(f"{key}={value}" for key, value in sorted(rest.items()))
    return f"{text} ({extra})" if extra and text else text or extra


def state_text(state: ParameterStatus | None) -> str:
    """The state in a word; "(simulated)" added when the bench says it is a simulation (a simulated
    ECU endpoint, a demo bench's failure), so that it shows even where the detail is cut off."""
    if isinstance(state, ParameterPresent):
        text = "Present"
    elif isinstance(state, ParameterAbsent):
        return "Absent"
    elif isinstance(state, ParameterError):
        text = "Error"
    else:
        return "Not reported"
    return f"{text} (simulated)" if is_simulated(state) else text


def is_simulated(state: ParameterStatus | None) -> bool:
    """The bench's detail or reason says what it reports is a simulation."""
    if isinstance(state, ParameterPresent):
        return "simulat" in (state.detail or "").casefold()
    if isinstance(state, ParameterError):
        return "simulat" in state.reason.casefold()
    return False


@dataclass(frozen=True)
class ParameterRow:
    """One parameter of a peer's configuration and what the peer last reported for it."""

    order: int  # position in dependency order (the order the bench applies them in)
    parameter: Parameter
    state: ParameterStatus | None  # None: the bench has not reported this parameter yet
    value: str  # describe_value's line

    @property
    def kind(self) -> str:
        return KIND_TEXT[self.parameter.kind]

    @property
    def target(self) -> str:
        return "Present" if self.parameter.target == Target.PRESENT else "Absent"

    @property
    def state_text(self) -> str:
        return state_text(self.state)

    @property
    def detail(self) -> str:
        """The Error's reason, or what the bench made of a Present parameter."""
        if isinstance(self.state, ParameterError):
            return self.state.reason
        if isinstance(self.state, ParameterPresent):
            return self.state.detail or ""
        return ""

    @property
    def metrics(self) -> str:
        """The counters the bench reported with the state (a CAN relay's frames and losses)."""
        if isinstance(self.state, ParameterPresent | ParameterError):
            return metrics_text(self.state.metrics)
        return ""

    @property
    def metrics_tooltip(self) -> str:
        if isinstance(self.state, ParameterPresent | ParameterError) and self.state.metrics:
            return f"Counters the bench reported:\n{metrics_tooltip(self.state.metrics)}"
        return ""

    @property
    def simulated(self) -> bool:
        return is_simulated(self.state)

    @property
    def reached(self) -> bool:
        """The bench reports what the backend wants."""
        wanted = ParameterPresent if self.parameter.target == Target.PRESENT else ParameterAbsent
        return isinstance(self.state, wanted)

    @property
    def failed(self) -> bool:
        return isinstance(self.state, ParameterError)


def parameter_rows(
    configuration: PeerConfiguration | None, state: PeerConfigurationState | None, peer_name: PeerName | None = None
) -> dict[UUID, ParameterRow]:
    """Every parameter of ``configuration`` by id, in dependency order, with the report for it."""
    if configuration is None:
        return {}
    reports = {report.id: report.state for report in state.parameters} if state is not None else {}
    return {
        p.id: ParameterRow(n, p, reports.get(p.id), describe_value(p, peer_name))
        for n, p in enumerate(dependency_order(configuration.parameters), start=1)
    }


@dataclass(frozen=True)
class ConfigurationSummary:
    total: int
    reached: int
    errors: int
    unreported: int

    def text(self) -> str:
        if self.total == 0:
            return "No configuration: this peer is in no deployed cluster."
        parts = [f"{self.reached} of {self.total} parameters as wanted"]
        if self.errors:
            parts.append(f"{self.errors} error{'s' if self.errors != 1 else ''}")
        if self.unreported:
            parts.append(f"{self.unreported} not reported yet")
        return ", ".join(parts)


def summarise(rows: dict[UUID, ParameterRow]) -> ConfigurationSummary:
    values = rows.values()
    return ConfigurationSummary(
        total=len(rows),
        reached=sum(r.reached for r in values),
        errors=sum(r.failed for r in values),
        unreported=sum(r.state is None for r in values),
    )
