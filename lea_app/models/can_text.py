"""CAN as an engineer reads it (Qt-free): a bench's CAN capability, the CAN parameters' values in
one line each ("can1: CAN FD 500 kbit/s / 2 Mbit/s, sample points 80.0 % / 75.0 %")
and a parameter state's metrics ("frames sent 120, received 118; datagrams lost 0").

The value functions take the keys they understand out of ``value`` (a copy), so that
``parameters.describe_value`` can append whatever is left as ``key=value``: never hidden.
"""

from __future__ import annotations

from collections.abc import Mapping

from resources.agent import CanSupport
from resources.state import AgentInfo

Value = dict[str, str | int | bool]

CAN_TEXT = {CanSupport.KERNEL: "kernel", CanSupport.USERSPACE: "userspace", CanSupport.NONE: "none"}
CAN_TOOLTIP = {
    CanSupport.KERNEL: "Kernel CAN: vcan bridge and cangw routes; the bench's CAN controllers take part",
    CanSupport.USERSPACE: (
        "Userspace CAN: this bench's kernel has no CAN support; an in-process hub relays frames, and only "
        "simulated ECU endpoints (lea-peer run --can-sim) take part"
    ),
    CanSupport.NONE: "No CAN: the agent refuses every CAN parameter",
}
#: The counters a CAN relay reports, in the order they read best: (short label, what it counts).
#: Any other counter follows, sorted, its name's underscores read as spaces.
KNOWN_METRICS = {
    "frames_sent": ("frames sent", "CAN frames sent to the remote relay"),
    "frames_received": ("received", "CAN frames received from the remote relay"),
    "datagrams_lost": ("lost", "datagrams lost (gaps in the sequence numbers)"),
    "datagrams_malformed": ("malformed", "datagrams rejected as malformed"),
    "datagrams_out_of_order": ("out of order", "datagrams that arrived out of order"),
}


def can_capability(demo: bool, online: bool, agent: AgentInfo | None) -> str:
    """How the bench carries CAN: "kernel", "userspace" or "none" as its agent announced; "simulated"
    for a demo bench; "" while offline; "unknown" for an online bench whose agent said nothing."""
    if demo:
        return "simulated"
    if not online:
        return ""
    return CAN_TEXT[agent.capabilities.can] if agent is not None else "unknown"


def can_capability_tooltip(demo: bool, online: bool, agent: AgentInfo | None) -> str:
    if demo:
        return "A simulated demo bench: its CAN is a simulation, nothing is configured for real"
    if not online:
        return "Not connected: the CAN capability is known once its agent connects"
    if agent is None:
        return "The agent announced nothing"
    return CAN_TOOLTIP[agent.capabilities.can]


def _take_int(value: Value, key: str) -> int | None:
    """``value[key]`` removed, if it is an integer (a bool or text stays, to be shown as it is)."""
    item = value.get(key)
    if isinstance(item, int) and not isinstance(item, bool):
        del value[key]
        return item
    return None


def _take_bool(value: Value, key: str) -> bool | None:
    item = value.get(key)
    if isinstance(item, bool):
        del value[key]
        return item
    return None


def _take_text(value: Value, key: str) -> str:
    item = value.get(key)
    if isinstance(item, str):
        del value[key]
        return item
    return ""


def _decimal(number: int, unit: int) -> str:
    """``number / unit`` exactly, without trailing zeros (83_333 / 1000 -> "83.333")."""
    whole, rest = divmod(number, unit)
    if rest == 0:
        return str(whole)
    return f"{whole}.{str(rest).rjust(len(str(unit)) - 1, '0').rstrip('0')}"


def bitrate_text(bitrate: int) -> str:
    if bitrate >= 1_000_000:
        return f"{_decimal(bitrate, 1_000_000)} Mbit/s"
    if bitrate >= 1000:
        return f"{_decimal(bitrate, 1000)} kbit/s"
    return f"{bitrate} bit/s"


def sample_point_text(tenths: int) -> str:
    """Tenths of a percent (the kernel's unit) as a percentage: 875 -> "87.5 %"."""
    return f"{tenths // 10}.{tenths % 10} %"


def _timing(bitrate: int | None, sample_point: int | None) -> str:
    parts = [bitrate_text(bitrate) if bitrate is not None else ""]
    if sample_point is not None:
        parts.append(f"sample point {sample_point_text(sample_point)}")
    return ", ".join(p for p in parts if p)


def device_interface(value: Value) -> str:
    """"eth0"; "vcan0: virtual CAN"; "can0: CAN 500 kbit/s, sample point 87.5 %"; with FD nominal /
    data phase: "can1: CAN FD 500 kbit/s / 2 Mbit/s, sample points 80.0 % / 75.0 %"."""
    name = _take_text(value, "interface") or _take_text(value, "name")
    can = _take_text(value, "can")
    if not can:
        return name
    if can == "vcan":
        return f"{name}: virtual CAN"
    if can != "can":
        value["can"] = can  # a kind this LEA does not know: shown as it is
        return name
    fd = _take_bool(value, "fd")
    bitrate, sample_point = _take_int(value, "bitrate"), _take_int(value, "sample_point")
    if not fd:
        nominal = _timing(bitrate, sample_point)
        return f"{name}: CAN {nominal}" if nominal else f"{name}: CAN"
    # Nominal / data phase, the way CAN FD tools write it; a missing figure is a "?", not a blank.
    data_bitrate, data_sample_point = _take_int(value, "data_bitrate"), _take_int(value, "data_sample_point")
    rates = " / ".join(bitrate_text(b) if b is not None else "?" for b in (bitrate, data_bitrate))
    points = " / ".join(sample_point_text(p) if p is not None else "?" for p in (sample_point, data_sample_point))
    return f"{name}: CAN FD {rates}, sample points {points}"


def can_connection(value: Value) -> str:
    """"server 192.0.2.1:20001 <-> 192.0.2.2:20001" (both ends bind and send to the same port)."""
    role = _take_text(value, "role")
    local, remote = _take_text(value, "local"), _take_text(value, "remote")
    port = _take_int(value, "port")
    suffix = f":{port}" if port else ""
    ends = f"{local}{suffix} <-> {remote or '?'}{suffix}" if local else f"{remote or '?'}{suffix}"
    return f"{role} {ends}" if role else ends


def can_local_route(value: Value) -> str:
    """"can0 -> vcan-lea (+FD)": FD frames are routed too; without "(+FD)", classic frames only."""
    source, destination = _take_text(value, "source"), _take_text(value, "destination")
    fd = _take_bool(value, "fd")
    return f"{source or '?'} -> {destination or '?'}" + (" (+FD)" if fd else "")


def _ordered(metrics: Mapping[str, int]) -> list[str]:
    return [k for k in KNOWN_METRICS if k in metrics] + sorted(k for k in metrics if k not in KNOWN_METRICS)


def metrics_text(metrics: Mapping[str, int]) -> str:
    """Counters in one short line: "frames sent 120, received 118, lost 0" (every counter, zeros too)."""
    return ", ".join(
        f"{KNOWN_METRICS[k][0] if k in KNOWN_METRICS else k.replace('_', ' ')} {metrics[k]}" for k in _ordered(metrics)
    )


def metrics_tooltip(metrics: Mapping[str, int]) -> str:
    """Every counter under its full name, one a line ("datagrams lost (gaps in the sequence numbers): 2")."""
    return "\n".join(
        f"{KNOWN_METRICS[k][1] if k in KNOWN_METRICS else k.replace('_', ' ')}: {metrics[k]} ({k})"
        for k in _ordered(metrics)
    )
