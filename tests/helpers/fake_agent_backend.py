"""A small in-test backend speaking the agent protocol (resources/agent.py), for agent tests.

It accepts the agent's WebSocket, records every message, answers the hello with a welcome (or the
close code / HTTP status a test asks for), sends heartbeats unless told to be silent, and lets
the test send configures and close the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from resources.agent import (
    AGENT_MESSAGE,
    CONNECT_PATH,
    MAX_MESSAGE_BYTES,
    AgentHello,
    AgentReport,
    Bye,
    Configure,
    Heartbeat,
    Welcome,
)
from resources.configuration import PeerConfiguration

TOKEN = "bench-secret-token"
WAIT_S = 20.0


@dataclass
class Session:
    """One agent connection as the backend saw it."""

    ws: ServerConnection
    hello: AgentHello | None = None
    reports: list[AgentReport] = field(default_factory=list)
    heartbeats: int = 0
    bye: Bye | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int | None = None  # the code the agent closed with, if it closed

    async def configure(self, generation: int, configuration: PeerConfiguration) -> None:
        await self.ws.send(Configure(generation=generation, configuration=configuration).model_dump_json())

    async def close(self, code: int, reason: str = "") -> None:
        await self.ws.close(code, reason)


class FakeAgentBackend:
    def __init__(
        self, heartbeat_s: float = 0.2, timeout_s: float = 2.0, token: str = TOKEN, tls: ssl.SSLContext | None = None
    ) -> None:
        self.tls = tls
        self.heartbeat_s = heartbeat_s
        self.timeout_s = timeout_s
        self.token = token
        self.sessions: list[Session] = []
        self.port = 0
        #: Send heartbeats; False makes the backend silent (the agent's timeout must fire).
        self.heartbeats = True
        #: Refuse the upgrade with this HTTP status.
        self.refuse_http: int | None = None
        #: Close right after the hello with (code, reason) instead of welcoming.
        self.close_on_hello: tuple[int, str] | None = None
        #: Sent right after every welcome (the backend re-sends the stored configuration).
        self.stored: tuple[int, PeerConfiguration] | None = None
        self._server: Server | None = None

    async def __aenter__(self) -> FakeAgentBackend:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._check, max_size=MAX_MESSAGE_BYTES, ping_interval=None,
            ssl=self.tls,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}"

    @property
    def current(self) -> Session:
        return self.sessions[-1]

    def welcomed(self) -> list[Session]:
        return [s for s in self.sessions if s.hello is not None and not s.closed.is_set()]

    async def until(self, condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            await asyncio.sleep(0.01)

    async def session(self, number: int) -> Session:
        """The ``number``-th connection (1-based) once its hello arrived."""
        await self.until(lambda: len(self.sessions) >= number and self.sessions[number - 1].hello is not None,
                         f"hello of connection {number}")
        return self.sessions[number - 1]

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path != CONNECT_PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, "no such endpoint\n")
        if self.refuse_http is not None:
            return connection.respond(HTTPStatus(self.refuse_http), "refused\n")
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return connection.respond(HTTPStatus.UNAUTHORIZED, "bad token\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        session = Session(ws)
        self.sessions.append(session)
        beat: asyncio.Task[None] | None = None
        try:
            hello = AGENT_MESSAGE.validate_json(await ws.recv())
            assert isinstance(hello, AgentHello), hello
            session.hello = hello
            if self.close_on_hello is not None:
                await ws.close(*self.close_on_hello)
                return
            await ws.send(Welcome(heartbeat_s=self.heartbeat_s, timeout_s=self.timeout_s).model_dump_json())
            if self.stored is not None:
                await session.configure(*self.stored)
            beat = asyncio.create_task(self._beat(ws))
            async for raw in ws:
                message = AGENT_MESSAGE.validate_json(raw)
                if isinstance(message, AgentReport):
                    session.reports.append(message)
                elif isinstance(message, Heartbeat):
                    session.heartbeats += 1
                elif isinstance(message, Bye):
                    session.bye = message
        except ConnectionClosed:
            pass
        finally:
            if beat is not None:
                beat.cancel()
            received = ws.protocol.close_rcvd
            if received is not None:
                session.close_code = received.code
            session.closed.set()

    async def _beat(self, ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(self.heartbeat_s)
                if self.heartbeats:
                    await ws.send(Heartbeat().model_dump_json())
