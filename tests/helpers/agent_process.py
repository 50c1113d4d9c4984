"""The real agent as a subprocess (``python -m lea_peer run ...``), and the TCP proxy on a thread.

For end-to-end tests against a real ``lea-backend serve`` (tests/helpers/server.py)::

    with agent_process(tmp_path, server.url, peer.id, token, underlay="192.0.2.1") as agent:
        agent.wait_for_log("connected as peer")           # bounded; fails with the agent's log
        agent.sigstop(); agent.sigcont()                  # freeze it (heartbeats stop)
        code = agent.wait_exit()                          # exit status (2: final error)
    # here the agent is stopped (SIGTERM, kill -9 after a while) and reaped

The agent logs (with ``--verbose`` unless told otherwise) to a file (``agent.log_path``), so tests can read what it did
(e.g. that it never applied an Absent parameter). ``ProxyThread`` runs tests/helpers/tcp_proxy.py's
asyncio proxy on its own loop, for synchronous tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from uuid import UUID

from tests.helpers.server import REPO
from tests.helpers.tcp_proxy import TcpProxy

T = TypeVar("T")
WAIT_S = 30.0
STOP_S = 15.0


def wait_for(what: str, fn: Callable[[], T | None], timeout: float = WAIT_S, describe: Callable[[], str] = str) -> T:
    """Poll ``fn`` until it returns something truthy; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{describe()}")
        time.sleep(0.05)


@dataclass
class AgentProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    command: tuple[str, ...]
    starts: list[float] = field(default_factory=list)

    def log(self) -> str:
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def describe(self) -> str:
        return f"agent: {' '.join(self.command)}\nexit status: {self.process.poll()}\n--- agent log\n{self.log()}"

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log()))

    def wait_for_log(self, pattern: str, times: int = 1, timeout: float = WAIT_S) -> None:
        """Until ``pattern`` (a regex) occurs ``times`` times in the log."""
        wait_for(f"{pattern!r} x{times} in the agent's log", lambda: self.count(pattern) >= times, timeout,
                 self.describe)

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_exit(self, timeout: float = WAIT_S) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the agent did not exit within {timeout:g} s\n{self.describe()}") from None

    def last_line(self) -> str:
        lines = self.log().strip().splitlines()
        return lines[-1] if lines else ""

    def sigstop(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def sigcont(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """kill -9 (the agent gets no chance to clean up), then reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(STOP_S)

    def stop(self) -> int | None:
        """SIGCONT (in case it is stopped) and SIGTERM; kill -9 if it does not exit in time."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_S)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode


def agent_command(
    backend_url: str,
    peer_id: UUID,
    token_file: Path,
    *,
    underlay: str | None = "192.0.2.1",
    data_plane: str = "memory",
    netns: str | None = None,
    verbose: bool = True,
    extra: Sequence[str] = (),
) -> list[str]:
    """``verbose`` logs debug lines (each parameter applied, with its target): chatty with netlink."""
    command = [sys.executable, "-m", "lea_peer", *(["--verbose"] if verbose else []), "run", "--backend", backend_url,
               "--peer-id", str(peer_id), "--token-file", str(token_file), "--data-plane", data_plane]
    if underlay is not None:
        command += ["--underlay-address", underlay]
    if netns is not None:
        command += ["--netns", netns]
    return [*command, *extra]


def start_agent(
    directory: Path, backend_url: str, peer_id: UUID, token: str, **options: object
) -> AgentProcess:
    """Start ``python -m lea_peer run`` (``options``: see ``agent_command``); its log in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.monotonic_ns()
    token_file = directory / f"token-{peer_id}-{stamp}"
    token_file.write_text(token + "\n")
    log_path = directory / f"agent-{peer_id}-{stamp}.log"
    command = agent_command(backend_url, peer_id, token_file, **options)  # type: ignore[arg-type]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True,
        )
    return AgentProcess(process, log_path, tuple(command))


@contextlib.contextmanager
def agent_process(
    directory: Path, backend_url: str, peer_id: UUID, token: str, **options: object
) -> Iterator[AgentProcess]:
    agent = start_agent(directory, backend_url, peer_id, token, **options)
    try:
        yield agent
    finally:
        agent.stop()


class ProxyThread:
    """``TcpProxy`` to ``target`` on an event loop of its own thread; its methods are thread-safe."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._proxy = TcpProxy(target_host, target_port)
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)

    def __enter__(self) -> ProxyThread:
        self._thread.start()
        self._call(self._proxy.start())
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self._call(self._proxy.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    def _do(self, fn: Callable[[], None]) -> None:
        async def run() -> None:
            fn()

        self._call(run())

    @property
    def url(self) -> str:
        return f"http://{self._proxy.host}:{self._proxy.port}"

    @property
    def accepted(self) -> int:
        return self._proxy.accepted

    def pause(self) -> None:
        self._do(self._proxy.pause)

    def resume(self) -> None:
        self._do(self._proxy.resume)

    def blackhole(self) -> None:
        self._do(self._proxy.blackhole)

    def reset(self) -> None:
        self._do(self._proxy.reset)
