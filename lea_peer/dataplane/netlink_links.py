"""Links on a bench over one netlink handle, and the ownership rules every netlink plane keeps.

Shared by the Ethernet data plane (lea_peer/dataplane/netlink.py) and the kernel CAN plane
(lea_peer/can/kernel.py): one long-lived AsyncIPRoute (opened with ``flags=0`` so that a missing
namespace is an error, never created), links created and marked with ``ownership_marker`` at
once, and the rules for a link a parameter makes (bridge, tunnel, vcan bridge):

- a link of that name we did not mark is an Error for Present and left alone for Absent;
- Absent deletes our link (``change``) or reports it still there;
- a marked link of an earlier deployment is adopted: re-marked with this parameter, set up.

Every netlink failure becomes a :class:`LinkFailure` whose sentence names the link and the cause.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from lea_peer.dataplane.links import Link, link_from_message
from resources.configuration import (
    Parameter,
    ParameterAbsent,
    ParameterError,
    ParameterPresent,
    ParameterStatus,
    Target,
)

ENODEV = 19


class LinkFailure(Exception):
    """A netlink request failed; ``str()`` is the sentence for the report."""


def cause(exc: BaseException) -> str:
    if isinstance(exc, NetlinkError):
        return os.strerror(exc.code) if exc.code else str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def not_ours(name: str) -> str:
    return f"a link named {name} exists that this agent did not create; rename or remove it"


class NetlinkLinks:
    """The links of one namespace (None: the agent's own) through one netlink handle."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._ipr: Any = None
        self._lock = asyncio.Lock()

    def _where(self) -> str:
        return f"network namespace {self.netns}" if self.netns else "this bench"

    async def _handle(self) -> Any:
        if self._ipr is None:
            try:
                ipr = AsyncIPRoute(netns=self.netns, flags=0) if self.netns else AsyncIPRoute()
                await ipr.setup_endpoint()  # opens the socket (in the namespace) now, not on first use
            except FileNotFoundError as exc:
                raise LinkFailure(f"network namespace {self.netns} does not exist") from exc
            except OSError as exc:
                raise LinkFailure(f"cannot open netlink in {self._where()}: {cause(exc)}") from exc
            self._ipr = ipr
        return self._ipr

    async def _request(self, what: str, call: Callable[[Any], Awaitable[Any]]) -> Any:
        ipr = await self._handle()
        try:
            return await call(ipr)
        except (NetlinkError, OSError) as exc:
            raise LinkFailure(f"{what}: {cause(exc)}") from exc

    async def _get(self, name: str) -> Link | None:
        ipr = await self._handle()
        try:
            messages = await ipr.link("get", ifname=name)
        except NetlinkError as exc:
            if exc.code == ENODEV:
                return None
            raise LinkFailure(f"cannot read link {name}: {cause(exc)}") from exc
        return link_from_message(messages[0])

    async def _by_index(self, index: int) -> Link | None:
        ipr = await self._handle()
        try:
            messages = await ipr.link("get", index=index)
        except NetlinkError:
            return None
        return link_from_message(messages[0])

    async def _links(self) -> list[Link]:
        ipr = await self._handle()
        return [link_from_message(msg) async for msg in await ipr.link("dump")]

    async def _set_up(self, link: Link) -> None:
        if not link.up:
            await self._request(f"cannot set {link.name} up", lambda ipr: ipr.link("set", index=link.index, state="up"))

    async def _mark(self, link: Link, marker: str) -> None:
        await self._request(
            f"cannot mark {link.name} as ours", lambda ipr: ipr.link("set", index=link.index, ifalias=marker)
        )

    async def _create(self, name: str, marker: str, kind: str, **attrs: Any) -> Link:
        """Add the link, mark it at once (netlink ignores IFLA_IFALIAS on creation), set it up."""
        await self._request(
            f"cannot create {kind} {name}", lambda ipr: ipr.link("add", ifname=name, kind=kind, **attrs)
        )
        created = await self._get(name)
        if created is None:
            raise LinkFailure(f"{kind} {name} vanished right after it was created")
        await self._mark(created, marker)
        await self._set_up(created)
        return created

    async def _adopt(self, link: Link, marker: str) -> None:
        """A marked link of an earlier deployment: mark it with this parameter (so the sweep keeps
        it) and set it up."""
        if link.alias != marker:
            await self._mark(link, marker)
        await self._set_up(link)

    async def _delete(self, link: Link) -> None:
        await self._request(f"cannot delete {link.name}", lambda ipr: ipr.link("del", index=link.index))

    async def _unowned_or_absent(
        self, name: str, link: Link | None, parameter: Parameter, change: bool
    ) -> ParameterStatus | None:
        """The answer for a link we make (bridge, tunnel, vcan bridge) when it is not ours or its
        target is Absent (removing it if ``change``); None when it is to be made or checked as Present."""
        if link is not None and not link.owned:
            if parameter.target is Target.ABSENT:
                return ParameterAbsent()  # that link is not ours to remove
            return ParameterError(reason=not_ours(name))
        if parameter.target is Target.ABSENT:
            if link is not None and change:
                await self._delete(link)
                return ParameterAbsent()
            return ParameterAbsent() if link is None else ParameterPresent()
        return None

    def _close_handle(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
