"""An agent-only listener for the embedded backend: ``WS /api/v1/peer/connect`` and nothing else.

LEA's embedded backend (one user, no server) can let benches connect when the user enables it
(``lea --agents-listen HOST:PORT``): uvicorn on its own thread and event loop, the same endpoint
and limits as ``lea-backend serve``, tokens from the data directory's ``lea.db``. Off loopback it
needs TLS (or ``insecure_http``, when a proxy in front terminates TLS), like serve.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from backend.backend import Backend
from backend.server import agents
from backend.server.context import attach
from backend.server.limits import server_options
from backend.server.problems import add_problem_handlers
from backend.server.serve import ServeOptions, bind, check_tls, is_loopback
from backend.tokens import TokenStore
from resources.errors import InvalidRequest

log = logging.getLogger(__name__)
STARTUP_SECONDS = 10.0
STOP_SECONDS = 10.0


class AgentListener:
    def __init__(
        self,
        backend: Backend,
        host: str,
        port: int,
        *,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        insecure_http: bool = False,
    ) -> None:
        if bool(tls_cert) != bool(tls_key):
            raise InvalidRequest("the agents' TLS certificate and key go together")
        if not is_loopback(host) and tls_cert is None and not insecure_http:
            raise InvalidRequest(
                f"refusing to accept bench agents on {host} without TLS: give a certificate and key "
                "(their tokens would cross the network in clear)"
            )
        check_tls(ServeOptions(data_dir=None, host=host, port=port, tls_cert=tls_cert, tls_key=tls_key))
        self._sock = bind(host, port)
        self.tokens: TokenStore = backend.open_tokens()
        app = FastAPI(title="LEA backend (bench agents only)", docs_url=None, redoc_url=None, openapi_url=None)
        attach(app, backend, self.tokens)
        add_problem_handlers(app)
        app.include_router(agents.router)
        config = uvicorn.Config(
            app,
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
            log_config=None, access_log=False, ws_ping_interval=None, lifespan="off",
            timeout_graceful_shutdown=2, **server_options(backend.settings),
        )
        config.load()
        self._server = uvicorn.Server(config)  # off the main thread it installs no signal handlers
        scheme = "https" if tls_cert else "http"
        shown = f"[{host}]" if ":" in host else host
        #: What ``lea-peer run --backend`` is given.
        self.url = f"{scheme}://{shown}:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._run, name="lea-agent-listener", daemon=True)

    def start(self) -> AgentListener:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._server.started:
            self.stop()
            raise InvalidRequest(f"the bench agents' listener on {self.url} did not start")
        log.info("accepting bench agents on %s", self.url)
        return self

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except Exception:  # visible in the log; the embedded backend goes on without agents
            log.exception("the bench agents' listener stopped")

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(STOP_SECONDS)
        self._sock.close()
        self.tokens.close()
