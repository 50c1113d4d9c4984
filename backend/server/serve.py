"""``lea-backend serve``: the same Backend (storage, manager, operators) behind the HTTP API."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from backend.backend import Backend, os_actor
from backend.datadir import DataDir
from backend.demo import seed_demo
from backend.logs import setup_logging
from backend.server import child
from backend.server.app import create_app
from backend.server.limits import server_options
from backend.server.standby import StandbyApp, Switch
from backend.settings import Settings, load_settings
from backend.storage.pg_target import PostgresTarget
from backend.stores import count_tokens, resolve_store
from backend.tokens import TokenStore
from resources.errors import InvalidRequest
from resources.gc_policy import freeze_start_up, raise_gc_threshold

if TYPE_CHECKING:
    from backend.writer_lock import WriterLock

log = logging.getLogger(__name__)

#: Seconds open requests get to finish after SIGTERM/SIGINT before they are cancelled.
SHUTDOWN_GRACE_SECONDS = 10


@dataclass
class ServeOptions:
    data_dir: Path | None
    host: str = "127.0.0.1"
    port: int = 8421
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure_http: bool = False
    insecure_no_auth: bool = False
    demo: bool = False
    demo_delay_scale: float = 1.0
    agent_heartbeat: float | None = None  # seconds (None: the setting)
    agent_timeout: float | None = None
    #: LEA's own backend process (backend/server/child.py): session token on stdin, ready line, exits
    #: when stdin closes. Loopback only.
    child: bool = False
    #: Child only: accept bench agents on a listener of their own (HOST, PORT), TLS as for serve.
    agents_listen: tuple[str, int] | None = None
    agents_tls_cert: Path | None = None
    agents_tls_key: Path | None = None
    #: A PostgreSQL store instead of the data directory's lea.db (else lea.toml's ``store``).
    store: str | None = None
    store_password_file: Path | None = None
    #: PostgreSQL only: wait for the database's write lock (503 "standby" meanwhile), then take over.
    standby: bool = False


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(options: ServeOptions, count_tokens: Callable[[], int]) -> bool:
    """Refuse unsafe combinations; returns whether authentication is on.

    ``count_tokens`` is asked only off loopback, and must change no file (``backend.tokens.count_tokens``).
    """
    loopback = is_loopback(options.host)
    if options.child and not loopback:
        raise InvalidRequest(f"serve --child listens on a loopback address only, not on {options.host}")
    if options.child and options.insecure_no_auth:
        raise InvalidRequest("serve --child always checks LEA's session token: --insecure-no-auth does not apply")
    if options.agents_listen is not None and not options.child:
        raise InvalidRequest("--agents-listen is for serve --child (a server accepts agents on its own port)")
    if bool(options.tls_cert) != bool(options.tls_key):
        raise InvalidRequest("--tls-cert and --tls-key go together")
    if options.insecure_no_auth:
        if not loopback:
            raise InvalidRequest(f"--insecure-no-auth is accepted only on a loopback address, not on {options.host}")
        return False
    if not loopback:
        if count_tokens() == 0:
            raise InvalidRequest(
                f"refusing to serve on {options.host} without tokens: create one first with "
                "`lea-backend token create --role admin --name NAME`"
            )
        if options.tls_cert is None and not options.insecure_http:
            raise InvalidRequest(
                f"refusing to serve on {options.host} without TLS: pass --tls-cert and --tls-key, "
                "or --insecure-http if a proxy in front terminates TLS"
            )
    return True


def first_token_hint(data_dir: Path) -> str:
    """What a first start says (the packaged server's journal): every request needs a token, and there is none."""
    return (
        "lea-backend: no API token yet: create the first admin token with\n"
        f"    lea-backend --data-dir {data_dir} token create --role admin --name NAME\n"
        "  run as the user the server runs as (the lea-server package: sudo -u lea lea-backend ...);"
        " it prints the token once"
    )


class _PassPhraseNeeded(Exception):
    """Raised by the pass-phrase callback: LEA never prompts for one (OpenSSL would, on a terminal)."""


def _no_pass_phrase() -> str:
    raise _PassPhraseNeeded


def check_tls(options: ServeOptions) -> None:
    """Load the certificate and key once, as uvicorn will, so that a bad pair is refused before anything opens."""
    if options.tls_cert is None or options.tls_key is None:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(options.tls_cert, options.tls_key, password=_no_pass_phrase)
    except _PassPhraseNeeded:
        raise InvalidRequest(
            f"the TLS key {options.tls_key} is protected by a pass phrase, which LEA cannot ask for: "
            f"give it the key without one (`openssl pkey -in {options.tls_key} -out KEY`, kept private)"
        ) from None
    except OSError as exc:  # ssl.SSLError is an OSError
        raise InvalidRequest(
            f"cannot use the TLS certificate {options.tls_cert} and key {options.tls_key}: "
            f"{exc.strerror or exc}"
        ) from exc


def bind(host: str, port: int) -> socket.socket:
    """The listening socket: a busy port, a port out of range or an unknown host name is refused here."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio disables Nagle (TCP_NODELAY) only on sockets that say TCP, and
    # accepted connections inherit it; with Nagle on, every response split in two writes (headers,
    # body) waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError, ValueError) as exc:  # OverflowError: a port beyond 65535
        sock.close()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidRequest(f"cannot listen on {host}:{port}: {reason}") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, minus re-raising the stop signal once it has shut down.

    uvicorn re-raises a captured SIGTERM/SIGINT after its graceful shutdown, which would kill the
    process before ``serve`` closes the backend (no final checkpoint, exit status 143). Here the
    signal only stops the server; ``serve`` then closes the backend and returns 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        stop_signals = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in stop_signals}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def stop_soon(self) -> None:
        """Shut down as after SIGTERM (from any thread: uvicorn polls the flag)."""
        self.should_exit = True


class _RefusedUpgradeNoise(logging.Filter):
    """Drop uvicorn's false error after a WebSocket upgrade is refused with an HTTP response.

    The watch socket answers a missing or revoked token with a 401 problem instead of accepting;
    uvicorn's websockets-sansio protocol sends that response fine but then logs "ASGI callable
    returned without completing handshake." at ERROR level for every such refusal.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing handshake."


def serve(options: ServeOptions) -> int:
    # The collector's policy from the start: with Python's default threshold the restore of 10,000
    # resources ran ~1,000 collections (+40 % CPU, bench/startup_stages.py).
    raise_gc_threshold()
    entered, entered_cpu = time.perf_counter(), time.process_time()
    # Everything that can be checked without opening the data directory is checked first, reading
    # only: a refused start-up creates no directory and changes no file (docs/decisions.md).
    data_dir = DataDir(options.data_dir)
    settings = load_settings(
        data_dir.path, store=options.store, store_password_file=options.store_password_file
    )
    target = resolve_store(data_dir, settings)
    if options.child and target is not None:
        raise InvalidRequest(
            "serve --child is LEA's own embedded backend on lea.db; a PostgreSQL store is for `lea-backend serve`"
        )
    if options.standby and target is None:
        raise InvalidRequest(
            "--standby is for a PostgreSQL store (--store postgresql://...): servers on one lea.db cannot share it"
        )
    auth = check_exposure(options, lambda: count_tokens(data_dir, target))
    check_tls(options)
    session_token = child.read_session_token(sys.stdin) if options.child else None
    sock = bind(options.host, options.port)
    writer: WriterLock | None = None
    try:
        if target is not None:
            from backend.writer_lock import WriterLock  # (psycopg: only for a PostgreSQL store)

            writer = WriterLock(target, settings.durability)
            if not writer.try_acquire():
                if not options.standby:
                    writer.acquire()  # refused, naming the holder
                data_dir.lock().acquire().release()  # a data directory in use is refused now, not at takeover
                return _standby(options, settings, target, writer, sock, auth)
        # Refusals from here on (lock, damaged or newer database) happen before anything is written.
        restore_cpu = time.process_time()
        backend = Backend(
            options.data_dir, store=target, writer=writer, demo_delay_scale=options.demo_delay_scale,
            agent_heartbeat=options.agent_heartbeat, agent_timeout=options.agent_timeout,
        )
    except BaseException:
        if writer is not None:
            writer.release()
        sock.close()
        raise
    restore_cpu = time.process_time() - restore_cpu
    tokens: TokenStore | None = None
    started = False
    try:
        if session_token is not None:
            tokens = child.SessionTokens(backend.data_dir.db_path, session_token, os_actor())
        else:
            tokens = backend.open_tokens()
        app = create_app(backend, tokens if auth else None)
        server = _Server(_config(options, app, backend.settings))
        started = True  # from here on the backend writes (demo fleet, commits, the final checkpoint)
        setup_logging(backend.data_dir.path)
        lost = _watch_writer(backend, server)
        backend.start()
        if options.demo:
            seed_demo(backend.manager)
        if options.agents_listen is not None:
            backend.start_agent_listener(
                *options.agents_listen, tls_cert=options.agents_tls_cert, tls_key=options.agents_tls_key
            )
        freeze_start_up()  # everything loaded so far stays out of every later collection
        url = _url(options, sock)
        log.info(
            "start-up: ready %.0f ms after serve began (CPU: %.0f ms before serve - interpreter and imports -, "
            "restore %.0f ms, %.0f ms in all)",
            (time.perf_counter() - entered) * 1000, entered_cpu * 1000, restore_cpu * 1000,
            time.process_time() * 1000,
        )
        if options.child:
            agent_url = backend.agent_listener.url if backend.agent_listener is not None else None
            child.announce_ready(url, agent_url)
            child.watch_parent(sys.stdin, server.stop_soon)
        else:
            print(
                f"lea-backend: serving {backend.store_name} on {url}{'' if auth else ' (no authentication)'}",
                flush=True,
            )
            if auth and tokens.count() == 0:
                print(first_token_hint(backend.data_dir.path), flush=True)
        server.run(sockets=[sock])  # returns after SIGINT/SIGTERM, once connections are closed
        return _stopped(lost)
    finally:
        if tokens is not None:
            tokens.close()  # first: the store's close decides whether the WAL is merged
        if not started:
            backend.manager.close(checkpoint=False)  # refused: no shutdown checkpoint either
        # Clean shutdown: operators stop, a final checkpoint is written, the lock is released.
        backend.close()
        sock.close()


def _config(options: ServeOptions, app: Any, settings: Settings) -> uvicorn.Config:
    config = uvicorn.Config(
        app,
        ssl_certfile=str(options.tls_cert) if options.tls_cert else None,
        ssl_keyfile=str(options.tls_key) if options.tls_key else None,
        log_config=None,  # uvicorn's records go to the server's log (backend.logs), not its own handlers
        access_log=False,
        ws_ping_interval=None,  # the API sends its own pings
        lifespan="off",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        **server_options(settings),  # timeouts, sizes, connection cap, log level
    )
    logging.getLogger("uvicorn.error").addFilter(_RefusedUpgradeNoise())  # after Config set logging up
    try:
        config.load()  # now, so that a bad certificate fails before the "serving" line
    except OSError as exc:  # ssl.SSLError is an OSError
        raise InvalidRequest(
            f"cannot use the TLS certificate {options.tls_cert} and key {options.tls_key}: "
            f"{exc.strerror or exc}"
        ) from exc
    return config


def _url(options: ServeOptions, sock: socket.socket) -> str:
    scheme = "https" if options.tls_cert else "http"
    port = sock.getsockname()[1]
    shown_host = f"[{options.host}]" if ":" in options.host else options.host
    return f"{scheme}://{shown_host}:{port}"


def _watch_writer(backend: Backend, server: _Server) -> list[str]:
    """When another server became the writer while this one had lost its lock: fence and stop.
    Returns the list the reason lands in (the exit status is 1 then)."""
    lost: list[str] = []
    if backend.writer is not None:
        def taken(reason: str) -> None:
            backend.manager.fence(reason)
            lost.append(reason)
            server.stop_soon()

        backend.writer.on_taken = taken
    return lost


def _stopped(lost: list[str]) -> int:
    if lost:
        print(f"lea-backend: stopped: {lost[0]}", file=sys.stderr, flush=True)
        return 1
    print("lea-backend: stopped", file=sys.stderr, flush=True)
    return 0


def _standby(
    options: ServeOptions, settings: Settings, target: PostgresTarget, writer: WriterLock,
    sock: socket.socket, auth: bool,
) -> int:
    """Serve 503 "standby" until the write lock is ours, then restore, start and serve the API."""
    switch = Switch(StandbyApp(target.url))
    server = _Server(_config(options, switch, settings))
    setup_logging(DataDir(options.data_dir).path)
    url = _url(options, sock)
    print(f"lea-backend: standby for {target.url} on {url}: the active server is {writer.holder()}", flush=True)
    stop = threading.Event()
    state: dict[str, Any] = {}

    def take_over() -> None:
        if not writer.wait(stop):
            return
        started = time.monotonic()
        try:
            backend = Backend(
                options.data_dir, store=target, writer=writer, demo_delay_scale=options.demo_delay_scale,
                agent_heartbeat=options.agent_heartbeat, agent_timeout=options.agent_timeout,
            )
        except Exception as exc:
            writer.release()
            log.exception("standby: taking over %s failed", target.url)
            state["failed"] = exc
            server.stop_soon()
            return
        state["backend"] = backend
        try:
            tokens = backend.open_tokens()
            state["tokens"] = tokens
            app = create_app(backend, tokens if auth else None)
            state["lost"] = _watch_writer(backend, server)
            backend.start()
        except Exception as exc:
            log.exception("standby: starting on %s failed", target.url)
            state["failed"] = exc
            server.stop_soon()
            return
        freeze_start_up()  # as at an active server's start: what the takeover loaded stays out of collections
        switch.inner = app
        log.warning(
            "standby took over %s at revision %d (epoch %s) in %.2f s",
            target.url, backend.manager.revision, backend.manager.epoch, time.monotonic() - started,
        )
        print(f"lea-backend: serving {target.url} on {url}{'' if auth else ' (no authentication)'}", flush=True)

    thread = threading.Thread(target=take_over, name="lea-standby", daemon=True)
    thread.start()
    try:
        server.run(sockets=[sock])
    finally:
        stop.set()
        thread.join(60)
        tokens = state.get("tokens")
        if tokens is not None:
            tokens.close()
        backend = state.get("backend")
        if backend is not None:
            backend.close()
        else:
            writer.release()
        sock.close()
    failed = state.get("failed")
    if failed is not None:
        raise failed
    return _stopped(state.get("lost", []))
