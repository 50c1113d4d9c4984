"""The bit timing of a CAN controller: from a DeviceInterface value to netlink, and back.

A DeviceInterface of a CAN controller (``"can": "can"``) says ``bitrate`` (bit/s) and
``sample_point`` in tenths of a percent (the kernel's unit: 875 = 87.5 %; 0 lets the kernel pick
its CiA-recommended point), ``fd`` and with it ``data_bitrate`` and ``data_sample_point``. The
agent sends what ``ip link set can0 type can bitrate 500000 sample-point 0.875 dbitrate 2000000
dsample-point 0.75 fd on`` sends: IFLA_LINKINFO kind "can" with IFLA_INFO_DATA holding
IFLA_CAN_CTRLMODE (mask and flags of CAN_CTRLMODE_FD), IFLA_CAN_BITTIMING and, with FD,
IFLA_CAN_DATA_BITTIMING (``struct can_bittiming``: bitrate, sample_point, then tq, prop_seg,
phase_seg1, phase_seg2, sjw, brp left 0 so that the kernel computes them from the bitrate).

The kernel reports what the controller's clock achieves, which may differ a little from what was
asked (it refuses more than 5 % off): a timing within :data:`BITRATE_TOLERANCE` and
:data:`SAMPLE_POINT_TOLERANCE` counts as configured, so the periodic re-check never bounces a
controller for a rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: ISO 11898: the arbitration (nominal) phase runs at most 1 Mbit/s.
MAX_BITRATE = 1_000_000
#: CAN FD data phases beyond 16 Mbit/s exist on no controller the kernel drives.
MAX_DATA_BITRATE = 16_000_000
BITRATE_TOLERANCE = 0.01  # 1 %
SAMPLE_POINT_TOLERANCE = 20  # tenths of a percent: 2 percentage points


@dataclass(frozen=True, slots=True)
class BitTiming:
    bitrate: int
    sample_point: int = 0
    fd: bool = False
    data_bitrate: int = 0
    data_sample_point: int = 0

    def describe(self) -> str:
        text = f"{self.bitrate} bit/s{_point(self.sample_point)}"
        if self.fd:
            text += f", CAN FD data phase {self.data_bitrate} bit/s{_point(self.data_sample_point)}"
        return text


def _point(tenths: int) -> str:
    return f" at {tenths / 10:.1f} %" if tenths else ""


def _integer(value: dict[str, str | int | bool], key: str) -> int | None:
    raw = value.get(key, 0)
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


def wanted_timing(value: dict[str, str | int | bool]) -> BitTiming | str:
    """The timing a CAN controller's DeviceInterface asks for, or the sentence why it is invalid."""
    name = value.get("interface", "?")
    numbers: dict[str, int] = {}
    for key in ("bitrate", "sample_point", "data_bitrate", "data_sample_point"):
        number = _integer(value, key)
        if number is None:
            return f"CAN interface {name}: {key} {value.get(key)!r} is not a whole number"
        numbers[key] = number
    fd = value.get("fd", False)
    if not isinstance(fd, bool):
        return f"CAN interface {name}: fd {fd!r} is not true or false"
    if not 1 <= numbers["bitrate"] <= MAX_BITRATE:
        return f"CAN interface {name}: bitrate {numbers['bitrate']} is not from 1 to {MAX_BITRATE} bit/s"
    for key in ("sample_point", "data_sample_point"):
        if not 0 <= numbers[key] < 1000:
            return f"CAN interface {name}: {key} {numbers[key]} is not in tenths of a percent (0 to 999)"
    if fd and not 1 <= numbers["data_bitrate"] <= MAX_DATA_BITRATE:
        return (
            f"CAN interface {name}: a CAN FD data bitrate from 1 to {MAX_DATA_BITRATE} bit/s is needed,"
            f" not {numbers['data_bitrate']}"
        )
    if not fd:
        numbers["data_bitrate"] = numbers["data_sample_point"] = 0
    return BitTiming(fd=fd, **numbers)


def current_timing(info: dict[str, Any]) -> BitTiming | None:
    """The timing a CAN link reports (its IFLA_INFO_DATA, prefix dropped); None before any was set."""
    nominal = info.get("BITTIMING") or {}
    bitrate = int(nominal.get("bitrate") or 0)
    if not bitrate:
        return None
    fd = (info.get("CTRLMODE") or {}).get("fd") == "on"
    data = (info.get("DATA_BITTIMING") or {}) if fd else {}
    return BitTiming(
        bitrate=bitrate, sample_point=int(nominal.get("sample_point") or 0), fd=fd,
        data_bitrate=int(data.get("bitrate") or 0), data_sample_point=int(data.get("sample_point") or 0),
    )


def _close(actual: int, wanted: int) -> bool:
    return abs(actual - wanted) <= wanted * BITRATE_TOLERANCE


def mismatch(current: BitTiming | None, wanted: BitTiming) -> str | None:
    """How the controller's timing differs from the wanted one (None: it is as configured)."""
    if current is None:
        return "it has no bit timing yet"
    if not _close(current.bitrate, wanted.bitrate):
        return f"it runs at {current.bitrate} bit/s, not {wanted.bitrate}"
    if wanted.sample_point and abs(current.sample_point - wanted.sample_point) > SAMPLE_POINT_TOLERANCE:
        return f"its sample point is {current.sample_point / 10:.1f} %, not {wanted.sample_point / 10:.1f} %"
    if current.fd != wanted.fd:
        return "CAN FD is on" if current.fd else "CAN FD is off"
    if wanted.fd:
        if not _close(current.data_bitrate, wanted.data_bitrate):
            return f"its data phase runs at {current.data_bitrate} bit/s, not {wanted.data_bitrate}"
        if (
            wanted.data_sample_point
            and abs(current.data_sample_point - wanted.data_sample_point) > SAMPLE_POINT_TOLERANCE
        ):
            return (
                f"its data sample point is {current.data_sample_point / 10:.1f} %,"
                f" not {wanted.data_sample_point / 10:.1f} %"
            )
    return None


def link_attributes(wanted: BitTiming) -> dict[str, Any]:
    """The keyword arguments of ``ipr.link("set", index=..., **link_attributes(t))``."""
    attributes: dict[str, Any] = {
        "kind": "can",
        "can_ctrlmode": {"fd": "on" if wanted.fd else "off"},
        "can_bittiming": {"bitrate": wanted.bitrate, "sample_point": wanted.sample_point},
    }
    if wanted.fd:
        attributes["can_data_bittiming"] = {"bitrate": wanted.data_bitrate, "sample_point": wanted.data_sample_point}
    return attributes
