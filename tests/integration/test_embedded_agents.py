"""The embedded backend (LEA's child process) accepts bench agents only when asked (an agent-only listener)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from backend import actions
from backend.backend import Backend
from backend.server.agent_listener import AgentListener
from backend.tokens import Role, TokenStore
from lea_app.connection.child import ChildConnection
from resources.agent import CloseCode
from resources.errors import InvalidRequest
from resources.kinds import ResourceKind
from resources.state import PeerConnectionState
from tests.helpers.agent_client import agent_connection
from tests.helpers.child import child_options
from tests.helpers.factories import make_peer


def _online(backend: Backend, peer_id: object) -> bool:
    state = backend.manager.get(ResourceKind.PEER_CONNECTION_STATE, peer_id)  # type: ignore[arg-type]
    return isinstance(state, PeerConnectionState) and state.online


def test_the_listener_serves_the_agent_endpoint_with_the_data_dirs_tokens(tmp_path: Path) -> None:
    backend = Backend(tmp_path / "data", durability="off").start()
    try:
        peer = make_peer("bench-embedded", devices=1)
        actions.store_peer_descriptor(backend.manager, peer, "test")
        store = TokenStore(backend.data_dir.db_path)
        token = store.create("bench-1", Role.PEER, peer.id)
        url = backend.start_agent_listener("127.0.0.1", 0)
        assert url.startswith("http://127.0.0.1:")
        with agent_connection(url, token) as agent:
            agent.hello(peer.id)
            deadline = time.monotonic() + 20
            while not _online(backend, peer.id):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            store.revoke("bench-1")  # the embedded backend's lea.db, as LEA's revoke_token uses it
            assert agent.closed()[0] == CloseCode.BAD_CREDENTIALS
        store.close()
    finally:
        backend.close()


def test_off_loopback_it_needs_tls(tmp_path: Path) -> None:
    backend = Backend(tmp_path / "data", durability="off")
    try:
        with pytest.raises(InvalidRequest, match="without TLS"):
            AgentListener(backend, "0.0.0.0", 0)
    finally:
        backend.close()


def test_the_embedded_connection_names_the_agent_url_only_when_enabled(tmp_path: Path) -> None:
    async def run() -> None:
        off = await ChildConnection.open(child_options(tmp_path / "off"))
        try:
            assert off.agent_url is None
        finally:
            await off.close()
        on = await ChildConnection.open(child_options(tmp_path / "on", agents_listen=("127.0.0.1", 0)))
        try:
            assert on.agent_url is not None and on.agent_url.startswith("http://127.0.0.1:")
            info = on.process.info
            assert info is not None and on.agent_url != info.url  # a listener of its own, not the API's port
            peer = make_peer("bench-embedded", devices=1)
            await on.store_peer_descriptor(peer)
            token = await on.create_peer_token(peer.id, "bench-1")
            with agent_connection(on.agent_url, token) as agent:
                agent.hello(peer.id)
                deadline = time.monotonic() + 20
                while True:
                    state = next((r for r in (await on.fetch_snapshot()).resources
                                  if r.kind == ResourceKind.PEER_CONNECTION_STATE and r.id == peer.id), None)
                    if isinstance(state, PeerConnectionState) and state.online:
                        break
                    assert time.monotonic() < deadline, "the agent never showed online"
                    await asyncio.sleep(0.05)
        finally:
            await on.close()

    asyncio.run(run())
