"""The agent as a real process (``python -m lea_peer run --data-plane memory``) against the in-test
backend: a final close or HTTP 401 ends it with exit status 2 and one clear line; SIGTERM and
SIGINT make it say bye and exit 0; without --underlay-address it announces its route's source."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from resources.agent import CloseCode
from resources.configuration import ParameterPresent
from tests.helpers.agent_parameters import PEER, configuration
from tests.helpers.fake_agent_backend import TOKEN, FakeAgentBackend
from tests.helpers.server import make_tls

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 20.0


@asynccontextmanager
async def agent_process(
    backend_url: str, tmp_path: Path, token: str = TOKEN, *extra: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lea_peer", "run", "--backend", backend_url.replace("ws", "http", 1),
        "--peer-id", str(PEER), "--token-file", str(token_file), "--data-plane", "memory", *extra,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(process.wait(), WAIT_S)


async def finished(process: asyncio.subprocess.Process) -> tuple[int, str]:
    assert process.stderr is not None
    stderr = await asyncio.wait_for(process.stderr.read(), WAIT_S)
    code = await asyncio.wait_for(process.wait(), WAIT_S)
    return code, stderr.decode()


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def test_final_close_code_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    async def main() -> None:
        async with FakeAgentBackend() as backend:
            backend.close_on_hello = (CloseCode.PEER_DELETED, "no such peer")
            async with agent_process(backend.url, tmp_path, TOKEN, "--underlay-address", "10.0.0.1") as process:
                code, stderr = await finished(process)
            assert code == 2, stderr
            assert last_line(stderr) == (
                f"lea-peer: the backend has no peer {PEER} (no such peer): it was deleted or never created"
            )
            assert len(backend.sessions) == 1

    asyncio.run(main())


def test_http_401_exits_2_without_retrying(tmp_path: Path) -> None:
    async def main() -> None:
        async with FakeAgentBackend() as backend:
            async with agent_process(backend.url, tmp_path, "wrong-token", "--underlay-address", "10.0.0.1") as process:
                code, stderr = await finished(process)
            assert code == 2, stderr
            assert last_line(stderr).startswith("lea-peer: the backend refused the agent's token with HTTP 401")
            assert backend.sessions == []

    asyncio.run(main())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_sends_bye_and_exits_0(tmp_path: Path, sig: signal.Signals) -> None:
    async def main() -> None:
        async with FakeAgentBackend() as backend, agent_process(backend.url, tmp_path) as process:
            session = await backend.session(1)
            assert session.hello is not None
            assert session.hello.underlay_address == "127.0.0.1"  # the route's source towards the backend
            await session.configure(1, configuration())
            await backend.until(
                lambda: bool(session.reports)
                and all(isinstance(p.state, ParameterPresent) for p in session.reports[-1].parameters),
                "the configuration applied by the process")
            process.send_signal(sig)
            code, stderr = await finished(process)
            assert code == 0, stderr
            await asyncio.wait_for(session.closed.wait(), WAIT_S)
            assert session.bye is not None
            assert "saying bye" in stderr and "SIMULATED" in stderr

    asyncio.run(main())


def test_https_backend_with_ca_file(tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tls.cert_path, tls.key_path)

    async def main() -> None:
        async with FakeAgentBackend(tls=server_context) as backend, agent_process(
            backend.url, tmp_path, TOKEN, "--ca-file", str(tls.ca_path)
        ) as process:
            session = await backend.session(1)
            assert session.hello is not None and session.hello.peer_id == PEER
            process.send_signal(signal.SIGTERM)
            code, stderr = await finished(process)
            assert code == 0, stderr

    asyncio.run(main())
