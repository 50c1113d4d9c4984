"""A real ``lea-backend serve`` in a subprocess, for integration tests (and convergence tests).

The server runs as ``python -m backend serve --port 0 ...`` on a data directory of the test's; the
helper reads the URL the server prints once it listens, waits for ``/healthz``, and stops it with
SIGTERM, expecting a clean shutdown (exit status 0), with ``kill -9`` only as a fallback.

Typical use::

    from tests.helpers.server import running_server

    def test_something(tmp_path: Path) -> None:
        with running_server(tmp_path / "data") as server:     # or demo=True, tls=make_tls(tmp_path)
            token = server.create_token("editor", "erin")       # as the CLI does, while it runs
            with server.client(token) as http:                  # httpx.Client on server.url
                http.get("/api/v1/whoami").raise_for_status()
            with server.watch(token) as ws:                     # websockets' sync client
                hello = server.receive(ws)                      # one parsed JSON message
        # here the server has exited 0 (asserted)

or, for a module-scoped fixture, ``start_server(...)`` and ``server.stop()`` yourself. Output goes to
``server.stdout_path`` / ``server.stderr_path`` (files, so a chatty server never blocks on a pipe).
Tokens can also be made before the server starts, with ``create_token(data_dir, role, name)``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import trustme
from websockets.sync.client import ClientConnection, connect

from backend.datadir import DataDir
from backend.storage.sqlite import SqliteEventStore
from backend.tokens import Role, TokenStore

REPO = Path(__file__).resolve().parents[2]
API = "/api/v1"
READY_LINE = re.compile(r"^lea-backend: serving (?P<dir>.+) on (?P<url>https?://\S+)")
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


# -- TLS ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a server certificate it signed, written as PEM files."""

    ca: trustme.CA
    ca_path: Path
    cert_path: Path
    key_path: Path

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts only this CA (hostname checking on)."""
        return ssl.create_default_context(cafile=str(self.ca_path))


def make_tls(directory: Path, hosts: Sequence[str] = ("127.0.0.1", "localhost")) -> TlsFiles:
    """A self-signed CA and a server certificate for ``hosts`` (IPs and names) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    cert = ca.issue_cert(*hosts)
    files = TlsFiles(ca, directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(files.ca_path))
    cert.cert_chain_pems[0].write_to_path(str(files.cert_path))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(files.cert_path), append=True)
    cert.private_key_pem.write_to_path(str(files.key_path))
    return files


# -- the CLI --------------------------------------------------------------------------------------
def lea_backend(
    data_dir: Path | None, *args: str, timeout: float = 60.0, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m backend [--data-dir D] ARGS`` to completion (never raises on failure)."""
    command = [sys.executable, "-m", "backend"]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO,
        env=dict(env) if env is not None else None,
    )


def create_token(data_dir: Path, role: str, name: str) -> str:
    """A new token, made in this process as ``lea-backend token create`` makes it (with or without a
    running server; test_token_cli.py runs the command itself). A second process costs ~1 s."""
    directory = DataDir(data_dir)
    directory.ensure()
    SqliteEventStore(directory.db_path).close()  # a new data directory gets its database first
    tokens = TokenStore(directory.db_path)
    try:
        return tokens.create(name, Role(role))
    finally:
        tokens.close()


def revoke_token(data_dir: Path, name: str) -> None:
    """``lea-backend token revoke NAME``."""
    result = lea_backend(None, "token", "revoke", name, "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr


# -- the server -----------------------------------------------------------------------------------
class ServerFailed(AssertionError):
    """The server did not start, or did not stop cleanly."""


@dataclass
class ServerProcess:
    """A running ``lea-backend serve``; see the module docstring."""

    url: str  # http(s)://127.0.0.1:PORT, no trailing slash
    data_dir: Path
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    tls: TlsFiles | None = None
    args: tuple[str, ...] = ()

    # -- addresses and clients --
    @property
    def ws_url(self) -> str:
        """The event stream's URL (ws:// or wss://) without a query."""
        parts = urlsplit(self.url)
        return urlunsplit(("wss" if parts.scheme == "https" else "ws", parts.netloc, API + "/watch", "", ""))

    def ssl_context(self) -> ssl.SSLContext | None:
        return self.tls.ssl_context() if self.tls is not None else None

    def headers(self, token: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token else {}

    def client(
        self,
        token: str | None = None,
        *,
        timeout: float | httpx.Timeout = 30.0,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Client:
        """An httpx client on the server's URL, sending ``token`` (trusting the test CA under TLS).

        ``headers`` are sent with every request too; ``kwargs`` go to ``httpx.Client``. Use it as a
        context manager (the caller closes it).
        """
        verify: ssl.SSLContext | bool = self.ssl_context() or True
        return httpx.Client(
            base_url=self.url,
            headers={**self.headers(token), **(headers or {})},
            verify=verify,
            timeout=timeout,
            **kwargs,
        )

    def watch(
        self,
        token: str | None,
        *,
        epoch: str | None = None,
        after: int | None = None,
        open_timeout: float = 10.0,
        **kwargs: Any,
    ) -> ClientConnection:
        """Open ``WS /api/v1/watch`` (a websockets sync connection; use it as a context manager).

        Raises ``websockets.exceptions.InvalidStatus`` when the server refuses the upgrade.
        """
        query = urlencode({k: v for k, v in (("epoch", epoch), ("after", after)) if v is not None})
        url = self.ws_url + (f"?{query}" if query else "")
        context = self.ssl_context()
        if context is not None:
            # websockets' sync client reads in a thread while the caller writes, on one SSL object,
            # which Python's ssl does not make thread-safe. Under TLS 1.3 the server's session tickets
            # arrive after the handshake, right while the upgrade request is written, and now and
            # then (under load) the upgrade never completes and the client hangs for good. TLS 1.2
            # sends its tickets inside the handshake. (LEA uses the asyncio client: one thread.)
            context.maximum_version = ssl.TLSVersion.TLSv1_2
        connection: ClientConnection = connect(
            url,
            additional_headers=self.headers(token),
            ssl=context,
            open_timeout=open_timeout,
            ping_interval=None,
            max_size=None,
            **kwargs,
        )
        return connection

    @staticmethod
    def receive(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
        """The next message of a watch socket, parsed; TimeoutError when none comes in time."""
        message = ws.recv(timeout=timeout)
        data = json.loads(message)
        assert isinstance(data, dict), data
        return data

    # -- tokens through the CLI, while the server runs --
    def create_token(self, role: str, name: str) -> str:
        return create_token(self.data_dir, role, name)

    def revoke_token(self, name: str) -> None:
        revoke_token(self.data_dir, name)

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Any ``lea-backend`` command on this server's data directory."""
        return lea_backend(self.data_dir, *args, timeout=timeout)

    # -- output and life cycle --
    def output(self) -> tuple[str, str]:
        """(stdout, stderr) so far."""
        return _read(self.stdout_path), _read(self.stderr_path)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT, *, check: bool = True) -> int:
        """SIGTERM, wait for the exit; kill -9 only if it does not exit within ``timeout``.

        With ``check``, a kill or a non-zero exit status fails (a clean shutdown is expected).
        Returns the exit status. Safe to call twice.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                if check:
                    raise ServerFailed(
                        f"the server did not exit within {timeout:g} s of SIGTERM (killed)\n{self._describe()}"
                    ) from None
        status = self.process.returncode
        if check and status != 0:
            raise ServerFailed(f"the server exited with status {status} after SIGTERM\n{self._describe()}")
        return status

    def kill(self) -> None:
        """kill -9 (a crash), then reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)

    def _describe(self) -> str:
        stdout, stderr = self.output()
        return f"command: {' '.join(self.args)}\n--- stdout\n{stdout}--- stderr\n{stderr}"


def serve_command(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: TlsFiles | None = None,
    demo: bool = False,
    insecure_http: bool = False,
    insecure_no_auth: bool = False,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The ``python -m backend serve ...`` command line for these options."""
    command = [sys.executable, "-m", "backend", "serve", "--data-dir", str(data_dir), "--host", host,
               "--port", str(port)]
    if tls is not None:
        command += ["--tls-cert", str(tls.cert_path), "--tls-key", str(tls.key_path)]
    if demo:
        command.append("--demo")
    if insecure_http:
        command.append("--insecure-http")
    if insecure_no_auth:
        command.append("--insecure-no-auth")
    return [*command, *extra_args]


def start_server(
    data_dir: Path,
    *,
    port: int = 0,
    tls: TlsFiles | None = None,
    demo: bool = False,
    insecure_no_auth: bool = False,
    extra_args: Sequence[str] = (),
    log_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    startup_timeout: float = STARTUP_TIMEOUT,
) -> ServerProcess:
    """Start ``lea-backend serve`` on loopback and wait until ``/healthz`` answers.

    ``port`` 0 (the default) lets the server pick a free port; pass the port of an earlier run to
    restart on the same URL. ``log_dir`` (default: next to ``data_dir``) receives the output files;
    ``env`` adds environment variables.
    Raises ServerFailed (with the server's output) when it exits or does not get ready in time.
    """
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log_dir = log_dir or data_dir.parent
    log_dir.mkdir(parents=True, exist_ok=True)
    stamp = f"{time.monotonic_ns()}"
    stdout_path = log_dir / f"serve-{stamp}.out"
    stderr_path = log_dir / f"serve-{stamp}.err"
    command = serve_command(
        data_dir, port=port, tls=tls, demo=demo, insecure_no_auth=insecure_no_auth, extra_args=extra_args
    )
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            command, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, cwd=REPO,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )
    server = ServerProcess("", data_dir, process, stdout_path, stderr_path, tls, tuple(command))
    try:
        server.url = _wait_for_url(server, time.monotonic() + startup_timeout)
        _wait_for_health(server, time.monotonic() + startup_timeout)
    except BaseException:
        server.kill()
        raise
    return server


@contextmanager
def running_server(data_dir: Path, *, check_stop: bool = True, **options: Any) -> Iterator[ServerProcess]:
    """``start_server(data_dir, **options)``; at the end SIGTERM and (``check_stop``) assert exit 0."""
    server = start_server(data_dir, **options)
    try:
        yield server
    except BaseException:
        server.stop(check=False)
        raise
    server.stop(check=check_stop)


def _wait_for_url(server: ServerProcess, deadline: float) -> str:
    while time.monotonic() < deadline:
        for line in _read(server.stdout_path).splitlines():
            match = READY_LINE.match(line)
            if match:
                return match["url"]
        if server.process.poll() is not None:
            raise ServerFailed(f"the server exited with status {server.process.returncode}\n{server._describe()}")
        time.sleep(0.05)
    raise ServerFailed(f"the server printed no URL in time\n{server._describe()}")


def _wait_for_health(server: ServerProcess, deadline: float) -> None:
    verify: ssl.SSLContext | bool = server.ssl_context() or True
    last: Exception | None = None
    with httpx.Client(verify=verify, timeout=5.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise ServerFailed(f"the server exited with status {server.process.returncode}\n{server._describe()}")
            try:
                if client.get(server.url + "/healthz").status_code == 200:
                    return
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.05)
    raise ServerFailed(f"/healthz did not answer in time ({last!r})\n{server._describe()}")


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
