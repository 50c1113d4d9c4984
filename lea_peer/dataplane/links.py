"""A link as the data plane sees it: a small typed view of pyroute2's RTM_NEWLINK message, and the
ownership marker read back from its ``ifalias``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from resources.agent import parse_ownership_marker

IFF_UP = 0x1


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: str  # "" for a plain (physical or veth-less) device without IFLA_LINKINFO
    alias: str
    up: bool
    master: int  # ifindex of the bridge it is joined to, 0 if none
    mtu: int
    #: IFLA_INFO_DATA of a tunnel or CAN controller, with the prefix dropped: {"ID": 4711, "GROUP":
    #: "10.0.0.2", ...} or {"BITTIMING": {"bitrate": 500000, "sample_point": 875, ...}, ...}
    info: dict[str, Any] = field(default_factory=dict)
    #: ifi_type, the ARPHRD_* of the device (ARPHRD_CAN = 280 for every CAN device)
    device_type: int = 0

    @property
    def owned(self) -> bool:
        return parse_ownership_marker(self.alias) is not None


def link_from_message(msg: Any) -> Link:
    """The typed view of one pyroute2 link message."""
    kind = msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or ""
    data = msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
    info: dict[str, Any] = {}
    if data is not None:
        for key, value in data.get("attrs", []):
            for prefix in ("IFLA_VXLAN_", "IFLA_GRE_", "IFLA_CAN_"):
                if key.startswith(prefix):
                    # Struct attributes (CAN bit timing, control modes) decode to dict-like NLAs.
                    info[key[len(prefix) :]] = _plain(value)
    return Link(
        index=int(msg["index"]),
        name=str(msg.get("IFLA_IFNAME") or ""),
        kind=str(kind),
        alias=str(msg.get("IFLA_IFALIAS") or ""),
        up=bool(int(msg["flags"]) & IFF_UP),
        master=int(msg.get("IFLA_MASTER") or 0),
        mtu=int(msg.get("IFLA_MTU") or 0),
        info=info,
        device_type=int(msg.get("ifi_type") or 0),
    )


def _plain(value: Any) -> Any:
    if hasattr(value, "items"):
        return {key: item for key, item in value.items() if key != "header"}
    return value
