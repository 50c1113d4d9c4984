"""Starting and stopping the embedded backend's process, ``lea-backend serve --child`` (issue #13).

Standard library only at import time: ``lea`` starts the child with this
module before it imports Qt and the rest of the app, so the child restores while LEA loads.
``lea_app.connection.child.ChildConnection`` then connects to it, watches it and restarts it.
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
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

READY = "lea-backend: ready "
FAILED = "lea-backend: failed "
#: The child's stderr (tracebacks, WARNING+ records; its full log is logs/backend.log), kept per data dir.
STDERR_FILE = "lea-backend.stderr"
STDERR_KEEP_BYTES = 1_000_000
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def backend_command() -> list[str]:
    """How to start ``lea-backend``: the bundle's own executable (a hidden sub-command), else this Python."""
    if getattr(sys, "frozen", False):
        from resources.app import BACKEND_SUBCOMMAND  # here: importing resources costs pydantic (~0.15 s)

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


async def outcome(future: Future[T]) -> T:
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
            from resources.errors import LeaError

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
        from resources.errors import ERRORS_BY_CODE, LeaError

        try:
            line = await asyncio.wait_for(outcome(self._line), timeout)
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
            return await asyncio.wait_for(outcome(self._exited), timeout)
        except TimeoutError:
            self.kill()
            return await outcome(self._exited)

    async def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM (clean shutdown, final checkpoint) and wait; kill -9 after ``timeout``."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
        try:
            status = await asyncio.wait_for(outcome(self._exited), timeout)
        except TimeoutError:
            log.error("the embedded backend (pid %d) did not stop within %g s: killed", self.pid, timeout)
            self.kill()
            status = await outcome(self._exited)
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
