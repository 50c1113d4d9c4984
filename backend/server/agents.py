"""``WS /api/v1/peer/connect``: one bench agent's stream (resources/agent.py, docs/protocol.md).

The token comes in the upgrade's ``Authorization: Bearer`` header and must be a ``peer`` token;
the first message must be the agent's hello, within the timeout, naming the token's peer. Then
the backend answers welcome, and both sides send heartbeats; the broker
(``backend/peers/agent.py``) turns the hello and the reports into events and sends configure
messages. While the stream is open the token and the peer are looked up again (at least once a
heartbeat): a revoked token closes it 4401, a deleted peer 4404, silence 4408.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any
from uuid import UUID

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from backend.peers.agent import AgentLink, AgentPeerBroker
from backend.server.auth import authenticate, still_valid
from backend.server.context import backend_of, tokens_of
from backend.settings import agent_timeout
from backend.tokens import Role, TokenInfo
from resources.agent import (
    AGENT_MESSAGE,
    CONNECT_PATH,
    PROTOCOL,
    AgentHello,
    AgentReport,
    Bye,
    CloseCode,
    Heartbeat,
    Welcome,
)
from resources.errors import LeaError
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor

server_log = logging.getLogger("uvicorn.error")
#: The longest a revoked token or a deleted peer goes unnoticed (capped by the heartbeat).
RECHECK_SECONDS = 1.0
NORMAL_CLOSURE = 1000
HEARTBEAT_TEXT = Heartbeat().model_dump_json()

router = APIRouter()


class _Closed(Exception):
    """Close the stream with this code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Link(AgentLink):
    """The broker's handle on one connection: a queue the sender task drains."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.closing: _Closed | None = None

    def send(self, text: str) -> None:
        if self.closing is None:
            self.outbox.put_nowait(text)

    def close(self, code: CloseCode, reason: str) -> None:
        if self.closing is None:
            self.closing = _Closed(code, reason)
            self.outbox.put_nowait(None)


@router.websocket(CONNECT_PATH)
async def peer_connect(websocket: WebSocket) -> None:
    backend = backend_of(websocket)
    tokens = tokens_of(websocket)
    header = websocket.headers.get("authorization")
    heartbeat = backend.settings.agent_heartbeat
    timeout = agent_timeout(backend.settings)
    await websocket.accept()  # refusals are close codes the agent acts on (docs/protocol.md)
    link = _Link(asyncio.get_running_loop())
    broker = backend.agent_peers
    hello: AgentHello | None = None
    who = "an agent"
    try:
        user = _peer_token(tokens is not None, header, authenticate_or_none(tokens, header))
        hello = await _hello(websocket, user, timeout)
        who = f"the agent of peer {hello.peer_id}"
        _check_peer(backend.manager.get(ResourceKind.PEER, hello.peer_id), hello.peer_id)
        link.send(Welcome(heartbeat_s=heartbeat, timeout_s=timeout).model_dump_json())
        broker.connected(hello, link)
        await _run(websocket, link, broker, hello.peer_id, lambda: _still_allowed(backend, tokens, header, hello))
        link.closing = link.closing or _Closed(NORMAL_CLOSURE, "goodbye")  # the agent said bye
    except _Closed as closed:
        link.closing = link.closing or closed
    except WebSocketDisconnect:
        pass
    except (RuntimeError, OSError) as exc:  # a send after the agent went away (uvicorn: ClientDisconnected)
        server_log.info("the connection of %s ended: %s", who, exc or type(exc).__name__)
    finally:
        if hello is not None:
            broker.disconnected(hello.peer_id, link)
    if link.closing is not None:
        server_log.info("closed the connection of %s: %s (%d)", who, link.closing.reason, link.closing.code)
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError, TimeoutError):
            async with asyncio.timeout(timeout):
                await websocket.close(code=int(link.closing.code), reason=_short(link.closing.reason))


def _short(reason: str) -> str:
    """A close reason fits 123 bytes of UTF-8."""
    return reason.encode()[:120].decode(errors="ignore")


def authenticate_or_none(tokens: Any, header: str | None) -> TokenInfo | None:
    try:
        return authenticate(tokens, header)
    except LeaError:
        return None


def _peer_token(auth: bool, header: str | None, user: TokenInfo | None) -> TokenInfo | None:
    """The peer token of the upgrade (None: the server authenticates nobody, loopback only)."""
    if not auth:
        return None
    if user is None:
        reason = "a peer token is required" if not header else "the token is unknown or was revoked"
        raise _Closed(CloseCode.BAD_CREDENTIALS, reason)
    if user.role is not Role.PEER:
        raise _Closed(CloseCode.WRONG_PEER, f"'{user.name}' is a {user.role} token, not a bench agent's (peer) token")
    return user


async def _hello(websocket: WebSocket, user: TokenInfo | None, timeout: float) -> AgentHello:
    try:
        async with asyncio.timeout(timeout):
            text = await _receive(websocket)
    except TimeoutError:
        raise _Closed(CloseCode.BAD_MESSAGE, f"no hello within {timeout:g} s") from None
    with contextlib.suppress(ValueError):
        raw = json.loads(text)
        if isinstance(raw, dict) and raw.get("type") == "hello" and raw.get("protocol") != PROTOCOL:
            wanted = raw.get("protocol")
            raise _Closed(CloseCode.UNSUPPORTED, f"protocol {wanted!r} is not supported; this is {PROTOCOL}")
    message = _parse(text)
    if not isinstance(message, AgentHello):
        raise _Closed(CloseCode.BAD_MESSAGE, f"the first message must be a hello, not a {message.type}")
    if user is not None and user.peer_id != message.peer_id:
        raise _Closed(CloseCode.WRONG_PEER, f"the token '{user.name}' is bound to another peer than {message.peer_id}")
    return message


def _check_peer(peer: Any, peer_id: UUID) -> None:
    if not isinstance(peer, PeerDescriptor):
        raise _Closed(CloseCode.PEER_DELETED, f"there is no peer {peer_id}")
    if peer.demo:
        raise _Closed(CloseCode.PEER_DELETED, f"peer '{peer.name}' is a demo peer: the backend simulates it")


def _still_allowed(backend: Any, tokens: Any, header: str | None, hello: AgentHello) -> None:
    if tokens is not None and not still_valid(tokens, header):
        raise _Closed(CloseCode.BAD_CREDENTIALS, "the token was revoked")
    _check_peer(backend.manager.get(ResourceKind.PEER, hello.peer_id), hello.peer_id)


async def _receive(websocket: WebSocket) -> str:
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if text is None:
        raise _Closed(CloseCode.BAD_MESSAGE, "messages are JSON text frames, not binary")
    return str(text)


def _parse(text: str) -> AgentHello | AgentReport | Heartbeat | Bye:
    try:
        return AGENT_MESSAGE.validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise _Closed(CloseCode.BAD_MESSAGE, f"not a valid message: {where}: {first['msg']}") from None


async def _run(
    websocket: WebSocket, link: _Link, broker: AgentPeerBroker, peer_id: UUID, allowed: Any
) -> None:
    """Read, send, heartbeat and watch until one of them ends the stream."""
    backend = backend_of(websocket)
    heartbeat = backend.settings.agent_heartbeat
    timeout = agent_timeout(backend.settings)
    heard = [time.monotonic()]

    async def read() -> None:
        while True:
            message = _parse(await _receive(websocket))
            heard[0] = time.monotonic()
            if isinstance(message, AgentReport):
                if not broker.reported(peer_id, link, message):
                    server_log.debug("dropped a report of generation %d from peer %s", message.generation, peer_id)
            elif isinstance(message, Bye):
                return
            elif isinstance(message, AgentHello):
                raise _Closed(CloseCode.BAD_MESSAGE, "a second hello on the same connection")

    async def send() -> None:
        while (text := await link.outbox.get()) is not None:
            await websocket.send_text(text)

    async def beat() -> None:
        while True:
            await asyncio.sleep(heartbeat)
            link.send(HEARTBEAT_TEXT)

    async def watch() -> None:
        while True:
            await asyncio.sleep(min(RECHECK_SECONDS, heartbeat))
            allowed()
            if time.monotonic() - heard[0] > timeout:
                raise _Closed(CloseCode.TIMEOUT, f"nothing heard for {timeout:g} s")

    tasks = [asyncio.ensure_future(t()) for t in (read, send, beat, watch)]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        exc = task.exception()
        if exc is not None:
            raise exc
