"""The agent's connection to the backend: one WebSocket at a time, kept alive forever.

hello -> welcome, then heartbeats every ``heartbeat_s``; silence for ``timeout_s`` means the
connection is lost. A lost or refused connection is retried with ``ReconnectSchedule``; the data
plane and the applier keep running meanwhile (the bench stays as configured). A close code that
retrying cannot fix (``CloseCode.final``) or an HTTP 401/403 on the upgrade raises ``FinalError``
(the CLI prints its one line and exits 2). ``stop`` (SIGTERM/SIGINT) sends ``bye`` and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

import lea_peer
from lea_peer.applier import RECHECK_S, Applier
from lea_peer.dataplane.base import DataPlane
from lea_peer.reconnect import ReconnectSchedule
from lea_peer.reports import ReportOutbox
from resources.agent import (
    BACKEND_MESSAGE,
    MAX_MESSAGE_BYTES,
    AgentHello,
    Bye,
    Capabilities,
    CloseCode,
    Configure,
    Heartbeat,
    Welcome,
)

log = logging.getLogger("lea_peer.connection")

T = TypeVar("T")

#: How long the upgrade and the welcome may take before the attempt counts as failed.
OPEN_TIMEOUT_S = 10.0
#: How long stopping waits for the data-plane call in progress (below systemd's TimeoutStopSec=15).
STOP_WAIT_S = 10.0
#: How long to wait for the backend's close frame (a black-holed link never sends one).
CLOSE_TIMEOUT_S = 2.0


class FinalError(Exception):
    """Retrying cannot help (bad token, wrong peer, deleted peer, replaced, protocol): exit 2."""


class DataPlaneUnavailable(Exception):
    """The bench cannot be read at start-up (e.g. the namespace is missing): exit 1, systemd retries."""


class ConnectionLost(Exception):
    """This connection is over; the agent connects again after a pause."""


@dataclass(frozen=True)
class AgentSettings:
    #: The full WebSocket URL of the agent endpoint (``ws(s)://host:port/api/v1/peer/connect``).
    url: str
    peer_id: UUID
    token: str
    underlay_address: str
    ssl: ssl.SSLContext | None = None
    recheck_s: float = RECHECK_S
    open_timeout_s: float = OPEN_TIMEOUT_S
    #: Further servers of the same database (standbys): a failed connection tries the next one.
    fallback_urls: tuple[str, ...] = ()


def final_message(code: int, reason: str, peer_id: UUID) -> str | None:
    """The one line the agent exits with for close ``code``; None when it should reconnect."""
    try:
        close = CloseCode(code)
    except ValueError:
        return None
    if not close.final:
        return None
    said = f" ({reason})" if reason else ""
    return {
        CloseCode.BAD_CREDENTIALS: f"the backend refused the token{said}: it is unknown or was revoked;"
        " create a new one with Set up bench in LEA",
        CloseCode.WRONG_PEER: f"the token is not a bench token for peer {peer_id}{said};"
        " use the token LEA created for this bench",
        CloseCode.PEER_DELETED: f"the backend has no peer {peer_id}{said}: it was deleted or never created",
        CloseCode.REPLACED: f"another agent connected as peer {peer_id} and replaced this one{said};"
        " run only one agent per bench",
        CloseCode.BAD_MESSAGE: f"the backend refused a message of this agent{said}",
        CloseCode.UNSUPPORTED: f"the backend does not speak this agent's protocol version{said};"
        f" update lea-peer (this is {lea_peer.__version__})",
    }.get(close, f"the backend closed the connection with code {code}{said}")


class Agent:
    """One bench's agent: the connection loop around an ``Applier``."""

    def __init__(
        self,
        settings: AgentSettings,
        data_plane: DataPlane,
        schedule: ReconnectSchedule | None = None,
        outbox: ReportOutbox | None = None,
    ) -> None:
        self.settings = settings
        self.data_plane = data_plane
        self.schedule = schedule or ReconnectSchedule(random.Random())
        self.outbox = outbox or ReportOutbox()
        self.applier = Applier(data_plane, self.outbox, settings.recheck_s)
        self.capabilities = Capabilities()
        #: Connections that reached the welcome (tests read it).
        self.sessions = 0
        self._urls = (settings.url, *settings.fallback_urls)
        self._turn = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, apply and report until ``stop`` is set; raises ``FinalError``."""
        try:
            await self.data_plane.start()
            self.capabilities = await self.data_plane.probe()
            await self.applier.load()
        except Exception as exc:
            await self.data_plane.close()
            raise DataPlaneUnavailable(f"the data plane cannot start: {exc}") from exc
        log.info("capabilities: %s", self.capabilities.model_dump_json())
        applier_task = asyncio.create_task(self.applier.run(), name="lea-peer applier")
        try:
            while not stop.is_set():
                started: float | None = None
                try:
                    log.info("connecting to %s", self._url)
                    ws = await _unless_stopped(self._connect(), stop)
                    if ws is None:
                        return
                    started = time.monotonic()
                    async with ws:
                        if await self._session(ws, stop):
                            return
                except InvalidStatus as exc:
                    status = exc.response.status_code
                    if status in (401, 403):
                        raise FinalError(
                            f"the backend refused the agent's token with HTTP {status}: it is unknown, revoked"
                            f" or not a bench token for peer {self.settings.peer_id}"
                        ) from None
                    why = f"the backend answered HTTP {status}"
                except ConnectionClosed as exc:
                    close = exc.rcvd
                    if close is not None:
                        message = final_message(close.code, close.reason, self.settings.peer_id)
                        if message is not None:
                            raise FinalError(message) from None
                    why = f"connection closed: {exc}"
                except ConnectionLost as exc:
                    why = str(exc)
                except (OSError, TimeoutError, WebSocketException) as exc:
                    why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if started is not None:
                    self.schedule.connected_for(time.monotonic() - started)
                self._turn += 1  # the next server of the list (the same one when there is one)
                delay = self.schedule.next_delay()
                log.warning("%s; connecting again in %.1f s", why, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        finally:
            # Never cut a data-plane call in half (a link made but not yet marked would be orphaned).
            self.applier.stop()
            try:
                await asyncio.wait_for(asyncio.shield(applier_task), STOP_WAIT_S)
            except TimeoutError:
                log.warning("the data plane did not finish its call within %.0f s; stopping anyway", STOP_WAIT_S)
                applier_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await applier_task
            await self.data_plane.close()

    @property
    def _url(self) -> str:
        return self._urls[self._turn % len(self._urls)]

    async def _connect(self) -> ClientConnection:
        return await connect(
            self._url,
            additional_headers={"Authorization": f"Bearer {self.settings.token}"},
            ssl=self.settings.ssl,
            max_size=MAX_MESSAGE_BYTES,
            open_timeout=self.settings.open_timeout_s,
            close_timeout=CLOSE_TIMEOUT_S,
            ping_interval=None,  # the protocol's own heartbeats detect a dead link
        )

    async def _session(self, ws: ClientConnection, stop: asyncio.Event) -> bool:
        """One connection; True when it ended because of ``stop`` (bye sent)."""
        hello = AgentHello(
            peer_id=self.settings.peer_id,
            agent_version=lea_peer.__version__,
            underlay_address=self.settings.underlay_address,
            capabilities=self.capabilities,
            applied=self.applier.applied(),
        )
        await ws.send(hello.model_dump_json())
        welcome = await self._welcome(ws)
        self.sessions += 1
        log.info("connected as peer %s (heartbeat %.1f s, timeout %.1f s)", self.settings.peer_id,
                 welcome.heartbeat_s, welcome.timeout_s)
        self.outbox.resend()  # what changed while disconnected: the current full list
        tasks = {
            asyncio.create_task(self._receive(ws, welcome.timeout_s), name="receive"),
            asyncio.create_task(self._heartbeat(ws, welcome.heartbeat_s), name="heartbeat"),
            asyncio.create_task(self._send_reports(ws), name="reports"),
        }
        stopper = asyncio.create_task(stop.wait(), name="stop")
        try:
            done, _ = await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (*tasks, stopper):
                task.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)
        if stopper in done:
            log.info("stopping: saying bye to the backend")
            with contextlib.suppress(ConnectionClosed, OSError):
                await ws.send(Bye(reason="agent stopped").model_dump_json())
                await ws.close()
            return True
        # What ended the connection; the receiver's reason (e.g. the silence timeout) says most.
        for task in sorted(done, key=lambda t: t.get_name() != "receive"):
            task.result()
        raise ConnectionLost("connection ended")

    async def _welcome(self, ws: ClientConnection) -> Welcome:
        try:
            raw = await asyncio.wait_for(ws.recv(), self.settings.open_timeout_s)
        except TimeoutError:
            await ws.close(CloseCode.TIMEOUT, "no welcome")
            raise ConnectionLost(f"no welcome within {self.settings.open_timeout_s:.0f} s") from None
        message = await self._parse(ws, raw)
        if not isinstance(message, Welcome):
            await ws.close(CloseCode.BAD_MESSAGE, "expected welcome")
            raise ConnectionLost(f"the backend sent {message.type} before welcome")
        return message

    async def _receive(self, ws: ClientConnection, timeout_s: float) -> None:
        while True:
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout_s)
            except TimeoutError:
                await ws.close(CloseCode.TIMEOUT, "no message within timeout")
                raise ConnectionLost(f"no message from the backend for {timeout_s:.1f} s") from None
            message = await self._parse(ws, raw)
            if isinstance(message, Configure):
                log.info("configure generation %d (%d parameters)", message.generation,
                         len(message.configuration.parameters))
                self.applier.configure(message.generation, message.configuration)

    async def _parse(self, ws: ClientConnection, raw: str | bytes) -> Welcome | Configure | Heartbeat:
        try:
            return BACKEND_MESSAGE.validate_json(raw)
        except ValidationError as exc:
            await ws.close(CloseCode.BAD_MESSAGE, "not a valid message")
            raise ConnectionLost(f"the backend sent a message this agent does not understand: {exc}") from None

    async def _heartbeat(self, ws: ClientConnection, every_s: float) -> None:
        beat = Heartbeat().model_dump_json()
        while True:
            await asyncio.sleep(every_s)
            await ws.send(beat)

    async def _send_reports(self, ws: ClientConnection) -> None:
        while True:
            report = await self.outbox.next()
            await ws.send(report.model_dump_json())


async def _unless_stopped(coro: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """``coro``'s result, or None (``coro`` cancelled) if ``stop`` is set first."""
    task = asyncio.ensure_future(coro)
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return None
