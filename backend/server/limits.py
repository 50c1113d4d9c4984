"""What ``lea-backend serve`` allows a client: timeouts, sizes and a connection cap (docs/protocol.md, "Limits").

``server_options(settings)`` gives the ``uvicorn.Config`` keyword arguments. uvicorn's own options
cover the keep-alive timeout, the request-head size and the size of WebSocket messages; the
protocol classes here (uvicorn's h11 and websockets-sansio ones, subclassed) add what it lacks:

- a request timeout: uvicorn arms no timer before a connection's first request, so a connection
  that sends nothing, or a request head a byte at a time, stayed open for good;
- a cap on open connections, refused at once with 503 (uvicorn's ``limit_concurrency`` answers 503
  per request, leaves the connection open and does not count WebSocket upgrades);
- 431 for an oversize head and 414 for an oversize target, as problems: uvicorn answers every
  parse error 400, and its WebSocket protocol never sends the answer of websockets' own parser
  (a header line over 8 KiB, or over 128 headers) - the upgrade hung;
- a client that reads nothing: an HTTP response that cannot be written for slow_reader_timeout
  drops the connection; a WebSocket's close frame is queued even while writes are paused, and if
  it is still unsent slow_reader_timeout later the connection is dropped (uvicorn waited forever).

Every refusal is logged at INFO on uvicorn's error log (level: the ``server_log_level`` setting).
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, Scope
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import (
    HeaderLineTooLong,
    InvalidState,
    PayloadTooBig,
    RequestLineTooLong,
    TooManyHeaders,
)
from websockets.http11 import Request

from backend.settings import Settings
from resources.agent import CONNECT_PATH, MAX_MESSAGE_BYTES
from resources.errors import InvalidRequest, LeaError

#: Descriptors kept free of connections (database, WAL, pipes, threads) when max_connections is
#: above what the process may open.
RESERVED_FDS = 32
#: Connections asyncio accepts in one go. A refused connection's descriptor is released two loop
#: iterations after its accept, while each iteration may accept a whole backlog again: up to three
#: backlogs are in flight, and they must fit the descriptors the cap leaves free (else EMFILE, an
#: ERROR and a 1 s accept pause).
ACCEPT_BACKLOG = 16
IN_FLIGHT_ACCEPTS = 3 * ACCEPT_BACKLOG


class RequestTimeout(LeaError):
    code = "request_timeout"
    title = "Request timeout"
    http_status = 408


class UriTooLong(LeaError):
    code = "uri_too_long"
    title = "URI too long"
    http_status = 414


class HeadersTooLarge(LeaError):
    code = "headers_too_large"
    title = "Request header fields too large"
    http_status = 431


class TooManyConnections(LeaError):
    code = "too_many_connections"
    title = "Too many connections"
    http_status = 503


@dataclass(frozen=True)
class Limits:
    request_timeout: float
    slow_reader_timeout: float
    max_connections: int
    max_header_bytes: int
    max_url_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        cap = settings.max_connections
        if soft != resource.RLIM_INFINITY:
            cap = max(1, min(cap, soft - RESERVED_FDS - IN_FLIGHT_ACCEPTS))
        return cls(
            settings.request_timeout, settings.slow_reader_timeout, cap, settings.max_header_bytes,
            settings.max_url_bytes,
        )


def server_options(settings: Settings) -> dict[str, Any]:
    """The ``uvicorn.Config`` keyword arguments for these settings."""
    limits = Limits.of(settings)

    class Http(LimitedH11Protocol):
        LIMITS = limits

    class Ws(LimitedWebSocketProtocol):
        LIMITS = limits

    return {
        "http": Http,
        "ws": Ws,
        "ws_max_size": settings.ws_max_message_bytes,
        # Compression is per connection: every watcher would deflate every message again, on the one
        # event-loop thread (30 ms for a 1 MiB event). Sent as is (docs/decisions.md).
        "ws_per_message_deflate": False,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "log_level": settings.server_log_level,
        "backlog": ACCEPT_BACKLOG,
    }


def problem_bytes(error: LeaError) -> bytes:
    """A whole HTTP/1.1 problem+json response (then the connection closes), given below the ASGI app."""
    body = error.to_problem().model_dump_json().encode()
    head = [
        b"HTTP/1.1 %d %s" % (error.http_status, error.title.encode()),
        b"content-type: application/problem+json",
        b"content-length: %d" % len(body),
        b"connection: close",
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def drop(transport: asyncio.Transport) -> None:
    """Close at once, discarding what is unsent (a reset: the kernel keeps nothing either)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class HeadLimit:
    """Refuse, before the app, a request whose target is over ``max_url`` bytes (414) or whose head
    is over ``max_head`` (431): h11 limits only a head that arrives in pieces."""

    def __init__(self, app: ASGI3Application, limits: Limits, log: Callable[[str, LeaError], None]) -> None:
        self.app = app
        self.max_url = limits.max_url_bytes
        self.max_head = limits.max_header_bytes
        self.log = log

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] in ("http", "websocket"):
            target = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") + 1
            head = target
            for name, value in scope.get("headers") or ():
                head += len(name) + len(value) + 4
            error: LeaError | None = None
            if target > self.max_url:
                error = UriTooLong(f"the request target is {target} bytes; the limit is {self.max_url}")
            elif head > self.max_head:
                error = HeadersTooLarge(f"the request head is about {head} bytes; the limit is {self.max_head}")
            if error is not None:
                self.log(_peer(scope.get("client")), error)
                await _send_problem(scope["type"], error, send)
                return
        await self.app(scope, receive, send)


async def _send_problem(kind: str, error: LeaError, send: ASGISendCallable) -> None:
    body = error.to_problem().model_dump_json().encode()
    headers = [(b"content-type", b"application/problem+json"), (b"content-length", b"%d" % len(body))]
    if kind == "websocket":  # a refused upgrade: an HTTP response instead of the handshake
        await send({"type": "websocket.http.response.start", "status": error.http_status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
    else:
        await send({"type": "http.response.start", "status": error.http_status, "headers": headers, "trailers": False})
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _peer(client: Any) -> str:
    return f"{client[0]}:{client[1]}" if client else "a client"


class LimitedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a request timeout, a connection cap, 431/414 and a stall limit."""

    LIMITS: ClassVar[Limits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app = HeadLimit(self.app, self.LIMITS, self._log_refusal)
        self._request_timer: asyncio.TimerHandle | None = None
        self._stall_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        if len(self.connections) > self.LIMITS.max_connections:
            self._refused = True
            self.logger.info(
                "refused a connection from %s (503): %d connections are open (max_connections)",
                _peer(self.client), len(self.connections) - 1,
            )
            self.transport.write(problem_bytes(TooManyConnections(
                f"the server has {self.LIMITS.max_connections} open connections, its limit; try again later"
            )))
            self.transport.close()
            return
        self._arm_request_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._request_timer is None and self.conn.their_state is h11.IDLE:
            self._arm_request_timer()  # the first byte of the next request on a kept-alive connection
        super().data_received(data)
        if self.transport.get_protocol() is not self:
            self._cancel_timers()  # a WebSocket now: its protocol takes over
        elif self.conn.their_state is not h11.IDLE and self.conn.their_state is not h11.SEND_BODY:
            self._cancel_request_timer()  # the whole request is in

    def send_400_response(self, msg: str) -> None:
        """h11 refused the request: say why (431 for an oversize head, 414 if it is the target)."""
        buffered = self.conn.trailing_data[0]
        error: LeaError
        if len(buffered) > self.LIMITS.max_header_bytes:
            line_end = buffered.find(b"\n")
            if line_end < 0 or line_end > self.LIMITS.max_url_bytes:
                error = UriTooLong(f"the request line is over {self.LIMITS.max_url_bytes} bytes")
            else:
                error = HeadersTooLarge(f"the request head is over {self.LIMITS.max_header_bytes} bytes")
        else:
            error = InvalidRequest("the request is not valid HTTP/1.1")
        self._refuse(error)

    def _log_refusal(self, peer: str, error: LeaError) -> None:
        self.logger.info("refused a request from %s (%d): %s", peer, error.http_status, error.message)

    def _refuse(self, error: LeaError) -> None:
        self._log_refusal(_peer(self.client), error)
        self._cancel_timers()
        self.transport.write(problem_bytes(error))
        self.transport.close()

    # -- the request timeout --
    def _arm_request_timer(self) -> None:
        self._cancel_request_timer()
        self._request_timer = self.loop.call_later(self.LIMITS.request_timeout, self._request_timed_out)

    def _cancel_request_timer(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _request_timed_out(self) -> None:
        self._request_timer = None
        if self.transport.is_closing():
            return
        self.logger.info(
            "closed the connection from %s: no complete request within %g s", _peer(self.client),
            self.LIMITS.request_timeout,
        )
        if self.conn.our_state is h11.IDLE and self.conn.their_state is h11.IDLE:  # nothing answered yet
            self.transport.write(problem_bytes(RequestTimeout(
                f"no complete request within {self.LIMITS.request_timeout:g} s"
            )))
        self.transport.close()

    # -- a client that reads nothing --
    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall_timer is None:
            self._stall_timer = self.loop.call_later(self.LIMITS.slow_reader_timeout, self._stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _stalled(self) -> None:
        self._stall_timer = None
        self.logger.info(
            "dropped the connection from %s: it read nothing for %g s", _peer(self.client),
            self.LIMITS.slow_reader_timeout,
        )
        drop(self.transport)

    def _cancel_timers(self) -> None:
        self._cancel_request_timer()
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None


class LimitedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, answering refused upgrades and never stuck on a close."""

    LIMITS: ClassVar[Limits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app = HeadLimit(self.app, self.LIMITS, self._log_refusal)
        self.close_timeout = self.LIMITS.slow_reader_timeout
        self._unsent: list[bytes] = []  # frames of this loop iteration, written in one go

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if event.path.partition("?")[0] == CONNECT_PATH:
            # A bench agent's report lists every parameter: its messages may be larger (1 MiB).
            self.conn.max_message_size = MAX_MESSAGE_BYTES

    def _log_refusal(self, peer: str, error: LeaError) -> None:
        self.logger.info("refused an upgrade from %s (%d): %s", peer, error.http_status, error.message)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        exc = self.conn.handshake_exc
        if exc is not None and not self.handshake_initiated and not self.transport.is_closing():
            # websockets' parser refused the upgrade request; uvicorn would never send its answer.
            self.conn.data_to_send()  # discarded: the answer is a problem, like every other error
            error: LeaError
            if isinstance(exc, RequestLineTooLong):
                error = UriTooLong("the request line is over 8 KiB")
            elif isinstance(exc, HeaderLineTooLong | TooManyHeaders):
                error = HeadersTooLarge(f"the upgrade request's headers are too large: {exc}")
            else:
                error = InvalidRequest("the WebSocket upgrade request is not valid")
            self._log_refusal(_peer(self.client), error)
            self.handshake_complete = self.close_sent = True
            self.transport.write(problem_bytes(error))
            self.transport.close()

    def handle_parser_exception(self) -> None:
        exc = self.conn.parser_exc
        if isinstance(exc, PayloadTooBig):
            self.logger.info("closed the WebSocket of %s (1009): %s", _peer(self.client), exc)
        super().handle_parser_exception()

    async def send(self, message: ASGISendEvent) -> None:
        if message["type"] == "websocket.send" and self.handshake_complete and self.initial_response is None:
            # One write (one system call) per loop iteration instead of one per message: each costs
            # ~90 us on loopback, more than framing the message.
            await self.writable.wait()
            if self.disconnected or self.close_sent:
                raise ClientDisconnected()
            text, data = message.get("text"), message.get("bytes")
            try:
                if data is not None:
                    self.conn.send_binary(data)
                elif text is not None:
                    self.conn.send_text(text.encode())
            except InvalidState:
                raise ClientDisconnected() from None
            if not self._unsent:
                self.loop.call_soon(self._write_unsent)
            self._unsent += self.conn.data_to_send()
            return
        self._write_unsent()  # what was sent before goes first
        closing = message["type"] == "websocket.close" and self.handshake_complete and not self.close_sent
        if closing:
            self.writable.set()  # the close frame is queued even if the client reads nothing: it is tiny
        await super().send(message)
        if closing and self.close_timer is not None:
            self.close_timer.cancel()  # uvicorn's timer only calls close(), which waits for a flush
            self.close_timer = self.loop.call_later(self.close_timeout, self._close_or_drop)

    def _write_unsent(self) -> None:
        if self._unsent and not self.transport.is_closing():
            self.transport.write(b"".join(self._unsent))
        self._unsent.clear()

    def _close_or_drop(self) -> None:
        self.close_timer = None
        if self.transport.get_write_buffer_size():
            self.logger.info(
                "dropped the connection from %s: it read nothing for %g s after the close",
                _peer(self.client), self.close_timeout,
            )
            drop(self.transport)
        else:
            self.transport.close()
