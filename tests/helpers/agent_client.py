"""A raw agent for tests: speaks ``WS /api/v1/peer/connect`` (resources/agent.py) by hand.

Typical use::

    with agent_connection(server, token) as agent:       # websockets' sync client
        welcome = agent.hello(peer_id)                   # sends hello, returns the Welcome
        configure = agent.expect(Configure)              # skips heartbeats
        agent.report(configure.generation, present(configure.configuration))
        code, reason = agent.closed()                    # waits for the backend to close
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from ssl import SSLContext
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from resources.agent import (
    BACKEND_MESSAGE,
    CONNECT_PATH,
    AgentHello,
    AgentReport,
    Bye,
    Capabilities,
    Configure,
    Heartbeat,
    TunnelType,
    Welcome,
)
from resources.configuration import (
    ParameterAbsent,
    ParameterPresent,
    ParameterReport,
    ParameterStatus,
    PeerConfiguration,
    Target,
)
from tests.helpers.server import ServerProcess

M = TypeVar("M", Welcome, Configure, Heartbeat)
BOTH = Capabilities(tunnels=(TunnelType.GRETAP, TunnelType.VXLAN), underlay_mtu=1500)
VXLAN_ONLY = Capabilities(tunnels=(TunnelType.VXLAN,), underlay_mtu=1500)


class RawAgent:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    def send_text(self, text: str) -> None:
        self.ws.send(text)

    def hello(
        self,
        peer_id: UUID,
        *,
        underlay: str = "192.0.2.1",
        capabilities: Capabilities = BOTH,
        applied: tuple[ParameterReport, ...] = (),
        version: str = "test-agent 0",
    ) -> Welcome:
        message = AgentHello(
            peer_id=peer_id, agent_version=version, underlay_address=underlay, capabilities=capabilities,
            applied=applied,
        )
        self.ws.send(message.model_dump_json())
        return self.expect(Welcome)

    def receive(self, timeout: float = 20.0) -> Welcome | Configure | Heartbeat:
        return BACKEND_MESSAGE.validate_json(self.ws.recv(timeout=timeout))

    def expect(self, kind: type[M], timeout: float = 20.0) -> M:
        """The next message of ``kind``, skipping heartbeats (and configures, when another kind is wanted)."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.receive(max(deadline - time.monotonic(), 0.01))
            if isinstance(message, kind):
                return message
            if isinstance(message, Welcome):
                raise AssertionError(f"unexpected {message}")

    def report(self, generation: int, parameters: tuple[ParameterReport, ...]) -> None:
        self.ws.send(AgentReport(generation=generation, parameters=parameters).model_dump_json())

    def heartbeat(self) -> None:
        self.ws.send(Heartbeat().model_dump_json())

    def bye(self) -> None:
        self.ws.send(Bye(reason="test").model_dump_json())

    def closed(self, timeout: float = 20.0) -> tuple[int | None, str]:
        """Wait until the backend closes the connection (messages meanwhile are read and dropped)."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01))
        except ConnectionClosed as exc:
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd is not None else (None, "")
        raise AssertionError(f"the backend did not close the connection within {timeout:g} s")


def applied(configuration: PeerConfiguration, state: ParameterStatus | None = None) -> tuple[ParameterReport, ...]:
    """Every parameter reported as done for its target (Present / Absent), or as ``state``."""
    def status(target: Target) -> ParameterStatus:
        if state is not None:
            return state
        return ParameterPresent() if target == Target.PRESENT else ParameterAbsent()

    return tuple(ParameterReport(id=p.id, state=status(p.target)) for p in configuration.parameters)


@contextmanager
def agent_connection(
    server: ServerProcess | str, token: str | None, *, ssl: SSLContext | None = None
) -> Iterator[RawAgent]:
    """A raw agent's connection to a server (or a backend URL such as an embedded listener's)."""
    base = server if isinstance(server, str) else server.url
    context = ssl if isinstance(server, str) else server.ssl_context()
    parts = urlsplit(base)
    url = urlunsplit(("wss" if parts.scheme == "https" else "ws", parts.netloc, CONNECT_PATH, "", ""))
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    with connect(
        url, additional_headers=headers, ssl=context, open_timeout=20, max_size=2**21, ping_interval=None,
    ) as ws:
        yield RawAgent(ws)
