"""The embedded backend as LEA's own child process: ``lea-backend serve --child`` (issue #13).

LEA starts the child, hands it a fresh random session token on its stdin (never on the command
line), waits for its one ready line and then talks to it with the remote connection - the only
connection there is; nothing of ``backend`` runs in LEA's interpreter. The child exits cleanly
when LEA closes it (SIGTERM: final checkpoint) and on its own when its stdin closes (LEA died).
If the child dies, ``ChildConnection`` says so, starts a new one with backoff, and the sync
engine resumes against it (a new epoch: resync, the views keep their rows).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar
from uuid import UUID

from lea_app.connection.base import Connection, ConnectionLost, EventStream, Identity, PeerToken
from lea_app.connection.remote import RemoteConnection
from resources.app import BACKEND_SUBCOMMAND
from resources.backoff import Backoff
from resources.cluster import ClusterDescriptor
from resources.errors import ERRORS_BY_CODE, LeaError
from resources.events import Event, StateSnapshot, WriteResult
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor

log = logging.getLogger(__name__)
T = TypeVar("T")

READY = "lea-backend: ready "
FAILED = "lea-backend: failed "
#: The child's stderr (tracebacks, WARNING+ records; its full log is logs/backend.log), kept per data dir.
STDERR_FILE = "lea-backend.stderr"
STDERR_KEEP_BYTES = 1_000_000
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
#: A child that ran this long before dying is restarted at once again (its backoff starts over).
HEALTHY_SECONDS = 30.0


def backend_command() -> list[str]:
    """How to start ``lea-backend``: the bundle's own executable (a hidden sub-command), else this Python."""
    if getattr(sys, "frozen", False):
        return [sys.executable, BACKEND_SUBCOMMAND]
    return [sys.executable, "-m", "backend"]


@dataclass(frozen=True)
class ChildOptions:
    """What the child is started with (the same on every restart)."""

    data_dir: Path
    demo: bool = False
    demo_delay_scale: float = 1.0
    agents_listen: tuple[str, int] | None = None
    agents_tls_cert: Path | None = None
    agents_tls_key: Path | None = None
    #: More ``serve`` options (tests: agent timeouts).
    extra_args: tuple[str, ...] = ()

    def command(self) -> list[str]:
        command = [*backend_command(), "serve", "--child", "--data-dir", str(self.data_dir),
                   "--host", "127.0.0.1", "--port", "0"]
        if self.demo:
            command += ["--demo", "--demo-delay-scale", repr(self.demo_delay_scale)]
        if self.agents_listen is not None:
            host, port = self.agents_listen
            command += ["--agents-listen", f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
        if self.agents_tls_cert is not None:
            command += ["--agents-tls-cert", str(self.agents_tls_cert)]
        if self.agents_tls_key is not None:
            command += ["--agents-tls-key", str(self.agents_tls_key)]
        return [*command, *self.extra_args]


@dataclass(frozen=True)
class ChildInfo:
    """What the ready line says."""

    url: str
    pid: int
    version: str
    agent_url: str | None


async def _outcome(future: Future[T]) -> T:
    """Await a thread's future; cancelling the waiter leaves the future itself alone (others await it too)."""
    return await asyncio.shield(asyncio.wrap_future(future))


def describe_exit(status: int) -> str:
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


@dataclass
class BackendProcess:
    """One launch of the child: its process, session token and ready line."""

    options: ChildOptions
    process: subprocess.Popen[bytes]
    token: str
    stderr_path: Path | None
    stderr_offset: int
    started_at: float = field(default_factory=time.monotonic)
    _line: Future[str] = field(default_factory=Future)
    _exited: Future[int] = field(default_factory=Future)
    info: ChildInfo | None = None

    @classmethod
    def spawn(cls, options: ChildOptions) -> BackendProcess:
        """Start the child now (it restores while the caller goes on); ``wait_ready`` for its address."""
        token = secrets.token_urlsafe(32)
        stderr_path, stderr, offset = _open_stderr(options.data_dir)
        # The user's server token is not the child's business.
        env = {k: v for k, v in os.environ.items() if k != "LEA_TOKEN"}
        try:
            process = subprocess.Popen(
                options.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env,
                # Its own session: Ctrl+C in LEA's terminal reaches LEA, which then stops the child in order.
                start_new_session=True,
            )
        except OSError as exc:
            raise LeaError(f"cannot start the embedded backend ({' '.join(options.command()[:3])}): {exc}") from exc
        finally:
            if stderr is not subprocess.DEVNULL:
                assert not isinstance(stderr, int)
                stderr.close()
        child = cls(options, process, token, stderr_path, offset)
        assert process.stdin is not None and process.stdout is not None
        with contextlib.suppress(OSError):  # a child that died at once: wait_ready says why
            process.stdin.write(f"{token}\n".encode())
            process.stdin.flush()
        threading.Thread(target=child._read_line, args=(process.stdout,), name="lea-child-ready", daemon=True).start()
        threading.Thread(target=child._wait, name="lea-child-wait", daemon=True).start()
        log.info("started the embedded backend, pid %d: %s", process.pid, " ".join(options.command()))
        return child

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def exited(self) -> Future[int]:
        """Resolves with the exit status once the process has exited."""
        return self._exited

    def _read_line(self, stdout: IO[bytes]) -> None:
        try:
            line = stdout.readline().decode("utf-8", "replace")
        except (OSError, ValueError):
            line = ""
        finally:
            with contextlib.suppress(OSError):
                stdout.close()  # the child sends nothing after its one line
        self._line.set_result(line)

    def _wait(self) -> None:
        self._exited.set_result(self.process.wait())

    async def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> ChildInfo:
        """The ready line's address; the child's own error (e.g. data directory in use) otherwise."""
        try:
            line = await asyncio.wait_for(_outcome(self._line), timeout)
        except TimeoutError:
            self.kill()
            raise LeaError(f"the embedded backend did not start within {timeout:g} s{self._stderr_tail()}") from None
        if line.startswith(READY):
            data = json.loads(line[len(READY):])
            self.info = ChildInfo(str(data["url"]), int(data["pid"]), str(data["version"]), data.get("agent_url"))
            return self.info
        if line.startswith(FAILED):
            data = json.loads(line[len(FAILED):])
            await self._reap()
            raise ERRORS_BY_CODE.get(str(data.get("code")), LeaError)(str(data.get("message")))
        status = await self._reap()
        raise LeaError(f"the embedded backend exited during start-up ({describe_exit(status)}){self._stderr_tail()}")

    async def _reap(self, timeout: float = 10.0) -> int:
        try:
            return await asyncio.wait_for(_outcome(self._exited), timeout)
        except TimeoutError:
            self.kill()
            return await _outcome(self._exited)

    async def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM (clean shutdown, final checkpoint) and wait; kill -9 after ``timeout``."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
        try:
            status = await asyncio.wait_for(_outcome(self._exited), timeout)
        except TimeoutError:
            log.error("the embedded backend (pid %d) did not stop within %g s: killed", self.pid, timeout)
            self.kill()
            status = await _outcome(self._exited)
        self._close_stdin()
        if status != 0:
            log.warning("the embedded backend (pid %d) stopped: %s", self.pid, describe_exit(status))
        return status

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self._close_stdin()

    def _close_stdin(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()

    def _stderr_tail(self, lines: int = 3) -> str:
        if self.stderr_path is None:
            return ""
        try:
            with self.stderr_path.open("rb") as file:
                file.seek(self.stderr_offset)
                text = file.read().decode("utf-8", "replace")
        except OSError:
            return ""
        tail = [line for line in text.splitlines() if line.strip()][-lines:]
        return (": " + " / ".join(tail)) if tail else f" (see {self.stderr_path})"


def _open_stderr(data_dir: Path) -> tuple[Path | None, Any, int]:
    """``DATA_DIR/logs/lea-backend.stderr`` for appending (started afresh past 1 MB), else /dev/null."""
    path = data_dir / "logs" / STDERR_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = "wb" if path.exists() and path.stat().st_size > STDERR_KEEP_BYTES else "ab"
        file = path.open(mode)
        return path, file, file.tell()
    except OSError:
        return None, subprocess.DEVNULL, 0  # an unusable data directory: the child says so itself


class ChildConnection(Connection):
    """The remote connection to LEA's own backend process, which it starts, watches and restarts."""

    demo_controls = True
    address = ""  # the connection dialog's "this computer"

    def __init__(self, options: ChildOptions, *, restart_backoff: Backoff | None = None) -> None:
        self.options = options
        self.data_dir = options.data_dir
        #: (level, text) for the window's message bar and status bar: the child died, is back.
        self.on_status: Callable[[str, str], None] | None = None
        self._backoff = restart_backoff or Backoff(first=0.5, maximum=30.0)
        self._process: BackendProcess = BackendProcess.spawn(options)
        self._remote: RemoteConnection | None = None
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self.restarts = 0

    @classmethod
    def spawn(cls, options: ChildOptions, **kwargs: Any) -> ChildConnection:
        """Start the child at once; ``await ready()`` before using the connection."""
        return cls(options, **kwargs)

    @classmethod
    async def open(cls, options: ChildOptions, **kwargs: Any) -> ChildConnection:
        return await cls.spawn(options, **kwargs).ready()

    async def ready(self) -> ChildConnection:
        """Wait for the child's ready line, connect, and from then on watch the process."""
        try:
            await self._connect(self._process)
        except BaseException:
            self._closing = True
            await self._process.stop()
            raise
        self._supervisor = asyncio.ensure_future(self._supervise())
        return self

    async def _connect(self, process: BackendProcess) -> None:
        info = await process.wait_ready()
        remote = RemoteConnection(info.url, process.token)
        try:
            await remote.whoami()
        except BaseException:
            await remote.close()
            raise
        self._remote = remote

    # -- what the About box and the status bar say ---------------------------------------------
    @property
    def process(self) -> BackendProcess:
        return self._process

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def description(self) -> str:  # type: ignore[override]
        info = self._process.info
        if self._remote is None or info is None:
            return f"embedded backend (process {self._process.pid}, starting)"
        return f"embedded backend (process {info.pid} on {info.url}, lea-backend {info.version})"

    @property
    def agent_url(self) -> str | None:  # type: ignore[override]
        info = self._process.info
        return info.agent_url if info is not None and self._remote is not None else None

    def _status(self, level: str, text: str) -> None:
        log.log(logging.ERROR if level == "error" else logging.INFO, "%s", text)
        if self.on_status is not None:
            self.on_status(level, text)

    # -- the child's life ------------------------------------------------------------------------
    async def _supervise(self) -> None:
        while not self._closing:
            process = self._process
            status = await _outcome(process.exited)
            if self._closing:
                return
            lived = time.monotonic() - process.started_at
            remote, self._remote = self._remote, None
            if remote is not None:
                await remote.close()
            if lived > HEALTHY_SECONDS:
                self._backoff.reset()
            self._status(
                "error",
                f"The embedded backend process {process.pid} stopped unexpectedly ({describe_exit(status)}): "
                "restarting it; LEA is read-only meanwhile.",
            )
            await self._restart()

    async def _restart(self) -> None:
        while not self._closing:
            await asyncio.sleep(self._backoff.next_delay())
            if self._closing:
                return
            try:
                self._process = BackendProcess.spawn(self.options)
                await self._connect(self._process)
            except (LeaError, ConnectionLost) as exc:
                message = exc.message if isinstance(exc, LeaError) else str(exc)
                self._status("error", f"The embedded backend could not be restarted: {message} (retrying)")
                if self._process.alive():
                    await self._process.stop()
                continue
            self.restarts += 1
            self._status("info", f"The embedded backend was restarted (process {self._process.pid}).")
            return

    def _current(self) -> RemoteConnection:
        if self._remote is None:
            raise ConnectionLost("the embedded backend is restarting")
        return self._remote

    async def close(self) -> None:
        """Stop the child cleanly (final checkpoint) and wait for it."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        remote, self._remote = self._remote, None
        try:
            if remote is not None:
                await remote.close()
        finally:
            await self._process.stop()

    # -- Connection: the current child's remote connection ---------------------------------------
    async def subscribe(self, after: int | None = None, epoch: str | None = None) -> EventStream:
        return await self._current().subscribe(after, epoch)

    async def fetch_snapshot(self) -> StateSnapshot:
        return await self._current().fetch_snapshot()

    async def store_peer_descriptor(
        self, peer: PeerDescriptor, expected_version: int | None = None, create_only: bool = False
    ) -> WriteResult:
        return await self._current().store_peer_descriptor(peer, expected_version, create_only)

    async def delete_peer_descriptor(self, peer_id: UUID, expected_version: int | None = None) -> WriteResult:
        return await self._current().delete_peer_descriptor(peer_id, expected_version)

    async def store_cluster_descriptor(
        self, cluster: ClusterDescriptor, expected_version: int | None = None, create_only: bool = False
    ) -> WriteResult:
        return await self._current().store_cluster_descriptor(cluster, expected_version, create_only)

    async def delete_cluster_descriptor(self, cluster_id: UUID, expected_version: int | None = None) -> WriteResult:
        return await self._current().delete_cluster_descriptor(cluster_id, expected_version)

    async def store_cluster_deployment(self, cluster_id: UUID) -> WriteResult:
        return await self._current().store_cluster_deployment(cluster_id)

    async def delete_cluster_deployment(self, cluster_id: UUID) -> WriteResult:
        return await self._current().delete_cluster_deployment(cluster_id)

    async def history(self, kind: ResourceKind, resource_id: UUID) -> list[Event]:
        return await self._current().history(kind, resource_id)

    async def events(self, after: int = 0, limit: int = 200) -> list[Event]:
        return await self._current().events(after, limit)

    async def whoami(self) -> Identity:
        return await self._current().whoami()

    async def set_demo_peer_online(self, peer_id: UUID, online: bool) -> None:
        await self._current().set_demo_peer_online(peer_id, online)

    async def create_peer_token(self, peer_id: UUID, name: str) -> str:
        return await self._current().create_peer_token(peer_id, name)

    async def peer_tokens(self) -> list[PeerToken]:
        return await self._current().peer_tokens()

    async def revoke_token(self, name: str) -> None:
        await self._current().revoke_token(name)
