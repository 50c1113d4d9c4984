"""Connection.create_peer_token / peer_tokens / revoke_token, embedded (the child process: its data dir's
lea.db, through the same REST calls) and remote (REST)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from lea_app.connection.base import Connection
from lea_app.connection.child import ChildConnection
from lea_app.connection.remote import RemoteConnection
from resources.errors import LeaError
from tests.helpers.child import child_options
from tests.helpers.server import create_token, running_server


async def _exercise(connection: Connection) -> None:
    peer = uuid.uuid4()
    secret = await connection.create_peer_token(peer, "bench-1")
    assert secret.startswith("lea_")
    tokens = await connection.peer_tokens()
    assert [(t.name, t.peer_id) for t in tokens] == [("bench-1", peer)]  # only bench tokens are listed
    with pytest.raises(LeaError, match="already exists"):
        await connection.create_peer_token(peer, "bench-1")
    await connection.revoke_token("bench-1")
    assert await connection.peer_tokens() == []


def test_embedded_bench_tokens(tmp_path: Path) -> None:
    async def run() -> None:
        connection = await ChildConnection.open(child_options(tmp_path / "data"))
        try:
            await _exercise(connection)
        finally:
            await connection.close()

    asyncio.run(run())


def test_remote_bench_tokens(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    admin = create_token(data_dir, "admin", "root")
    with running_server(data_dir) as server:
        async def run() -> None:
            connection = RemoteConnection(server.url, admin)
            try:
                assert connection.agent_url == server.url
                await _exercise(connection)
            finally:
                await connection.close()

        asyncio.run(run())
