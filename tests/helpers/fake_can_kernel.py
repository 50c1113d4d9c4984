"""A fake of the kernel boundary of the kernel CAN plane, for hosts without CAN (like the CI one).

``FakeNetlink`` answers the few AsyncIPRoute calls the plane makes with real pyroute2 link
messages (encoded and decoded by pyroute2's own ``ifinfmsg``), and keeps the kernel's rules the
plane depends on: a vcan's MTU and a controller's bit timing change only while the link is down
(EBUSY), a controller comes up only with a bit timing (EINVAL), FD needs an FD-capable controller
(EOPNOTSUPP), the controller's clock may round the bitrate. ``FakeGateway`` keeps cangw rules the
way net/can/gw.c does: identical rules twice, delete only an exact match (EINVAL otherwise), hop
limits up to max_hops (EINVAL), both ends existing CAN devices (ENODEV), rules of a deleted device
dropped.
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from pyroute2.iproute.linux import get_arguments_processor
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from lea_peer.can.cangw import Gateway, GatewayFailure, GatewayRule, ListedRule

ARPHRD_CAN = 280
ARPHRD_ETHER = 1


@dataclass
class FakeLink:
    index: int
    name: str
    kind: str  # "can", "vcan", "veth", ""
    alias: str = ""
    up: bool = False
    mtu: int = 16
    device_type: int = ARPHRD_CAN
    fd_capable: bool = True
    bittiming: dict[str, int] | None = None
    data_bittiming: dict[str, int] | None = None
    fd: bool = False


def _message(link: FakeLink) -> Any:
    """The RTM_NEWLINK message the kernel would send for ``link``, through pyroute2's codec."""
    msg = ifinfmsg()
    msg["index"], msg["flags"], msg["change"], msg["family"], msg["ifi_type"] = (
        link.index, 1 if link.up else 0, 0, 0, link.device_type,
    )
    msg["attrs"] = [("IFLA_IFNAME", link.name), ("IFLA_MTU", link.mtu)]
    if link.alias:
        msg["attrs"].append(("IFLA_IFALIAS", link.alias))
    if link.kind:
        info: list[Any] = [("IFLA_INFO_KIND", link.kind)]
        if link.kind == "can":
            data: list[Any] = [("IFLA_CAN_CTRLMODE", {"fd": "on" if link.fd else "off"}), ("IFLA_CAN_STATE", 0)]
            if link.bittiming:
                data.append(("IFLA_CAN_BITTIMING", link.bittiming))
            if link.fd and link.data_bittiming:
                data.append(("IFLA_CAN_DATA_BITTIMING", link.data_bittiming))
            info.append(("IFLA_INFO_DATA", {"attrs": data}))
        msg["attrs"].append(("IFLA_LINKINFO", {"attrs": info}))
    msg.encode()
    decoded = ifinfmsg(msg.data)
    decoded.decode()
    return decoded


def _error(code: int) -> NetlinkError:
    return NetlinkError(code, errno.errorcode.get(code, str(code)))


@dataclass
class FakeNetlink:
    links: dict[int, FakeLink] = field(default_factory=dict)
    vcan_supported: bool = True
    #: The bitrate the controller's clock reaches for a requested one (exact by default).
    clock: Callable[[int], int] = lambda bitrate: bitrate
    #: Every change request: ("add"|"set"|"del", name, the keyword arguments).
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    closed: bool = False
    _next: int = 100

    def add_device(self, name: str, kind: str = "can", **fields: Any) -> FakeLink:
        self._next += 1
        link = FakeLink(self._next, name, kind, **fields)
        self.links[link.index] = link
        return link

    def named(self, name: str) -> FakeLink | None:
        return next((link for link in self.links.values() if link.name == name), None)

    async def setup_endpoint(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def _find(self, kwargs: dict[str, Any]) -> FakeLink:
        link = self.links.get(kwargs["index"]) if "index" in kwargs else self.named(kwargs.get("ifname", ""))
        if link is None:
            raise _error(errno.ENODEV)
        return link

    async def link(self, command: str, **kwargs: Any) -> Any:
        if command == "get":
            return [_message(self._find(kwargs))]
        if command == "dump":
            return self._dump()
        if command == "add":
            return self._add(kwargs)
        if command == "set":
            return self._set(kwargs)
        if command == "del":
            link = self._find(kwargs)
            self.calls.append(("del", link.name, kwargs))
            del self.links[link.index]
            return []
        raise AssertionError(f"the plane made an unexpected netlink call: link {command} {kwargs}")

    async def _dump(self) -> AsyncIterator[Any]:
        for link in list(self.links.values()):
            yield _message(link)

    def _add(self, kwargs: dict[str, Any]) -> list[Any]:
        name, kind = kwargs["ifname"], kwargs.get("kind", "")
        self.calls.append(("add", name, kwargs))
        if kind == "vcan" and not self.vcan_supported:
            raise _error(errno.EOPNOTSUPP)
        if self.named(name) is not None:
            raise _error(errno.EEXIST)
        self.add_device(name, kind, mtu=kwargs.get("mtu", 16))
        return []

    def _set(self, kwargs: dict[str, Any]) -> list[Any]:
        link = self._find(kwargs)
        self.calls.append(("set", link.name, kwargs))
        # What pyroute2 would send: this also proves the keyword arguments encode.
        get_arguments_processor("link", "set", dict(kwargs))
        if "ifalias" in kwargs:
            link.alias = kwargs["ifalias"]
        if "mtu" in kwargs:
            if link.up:
                raise _error(errno.EBUSY)
            link.mtu = kwargs["mtu"]
        if kwargs.get("kind") == "can":
            if link.up:
                raise _error(errno.EBUSY)  # drivers/net/can/dev/netlink.c: bit timing only while down
            ctrl = kwargs.get("can_ctrlmode", {})
            if ctrl.get("fd") == "on" and not link.fd_capable:
                raise _error(errno.EOPNOTSUPP)
            if "fd" in ctrl:
                link.fd = ctrl["fd"] == "on"
            for key, attr in (("can_bittiming", "bittiming"), ("can_data_bittiming", "data_bittiming")):
                if key in kwargs:
                    asked = kwargs[key]
                    setattr(link, attr, {"bitrate": self.clock(asked["bitrate"]),
                                         "sample_point": asked.get("sample_point") or 875})
        if kwargs.get("state") == "up":
            if link.kind == "can" and not link.bittiming:
                raise _error(errno.EINVAL)  # "bit-timing not yet defined"
            link.up = True
        elif kwargs.get("state") == "down":
            link.up = False
        return []


@dataclass
class FakeGateway(Gateway):
    """cangw in a fake kernel whose links are ``netlink``'s."""

    netlink: FakeNetlink = field(default_factory=FakeNetlink)
    max_hops: int = 2
    listed: list[ListedRule] = field(default_factory=list)
    requests: list[tuple[str, GatewayRule]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(None)

    def _alive(self) -> list[ListedRule]:
        self.listed = [
            r for r in self.listed if r.rule.source in self.netlink.links and r.rule.destination in self.netlink.links
        ]
        return self.listed

    async def rules(self) -> list[ListedRule]:
        return list(self._alive())

    async def add(self, rule: GatewayRule) -> None:
        self.requests.append(("add", rule))
        if rule.hops and not 1 <= rule.hops <= self.max_hops:
            raise GatewayFailure(errno.errorcode[errno.EINVAL], errno.EINVAL)
        for index in (rule.source, rule.destination):
            link = self.netlink.links.get(index)
            if link is None or link.device_type != ARPHRD_CAN:
                raise GatewayFailure(errno.errorcode[errno.ENODEV], errno.ENODEV)
        self.listed.insert(0, ListedRule(rule))

    async def delete(self, rule: GatewayRule) -> None:
        self.requests.append(("delete", rule))
        for listed in self._alive():
            if listed.plain and listed.rule == rule:
                self.listed.remove(listed)
                return
        raise GatewayFailure(errno.errorcode[errno.EINVAL], errno.EINVAL)

    def close(self) -> None:
        return None
