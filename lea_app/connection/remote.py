"""The remote connection: HTTP (httpx) for snapshot, reads and actions; one WebSocket for events.

The address may list several servers, comma-separated (an active and its standbys on one
PostgreSQL database, docs/server.md): requests go to the current one, and one that cannot be
reached (or answers 503 ``standby``) makes the connection try the next. A write moves on only when
it certainly did not reach a server (no connection, or a standby's refusal). The sync engine then
resumes on the new server, sees its new epoch and resyncs.

Errors arrive as problem+json and become the same typed LeaError the embedded backend raises;
network trouble becomes ConnectionLost, which the sync engine answers by resuming.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit
from uuid import UUID

import httpx
from pydantic import TypeAdapter, ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from lea_app.connection.base import Connection, ConnectionLost, Delivery, EventStream, Identity, PeerToken
from resources.cluster import ClusterDescriptor
from resources.errors import LeaError, Problem, Standby, Unauthorized, error_from_problem
from resources.events import Event, StateSnapshot, WriteResult
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.wire import Ping, WatchMessage

API = "/api/v1"
#: Seconds between the client's WebSocket pings, and to wait for the pong before the stream counts
#: as lost (the server's own pings only come after 15 s of silence and need no answer).
KEEPALIVE_SECONDS = 20.0
CLOSE_TIMEOUT_SECONDS = 3.0
_MESSAGE = TypeAdapter(WatchMessage)
_EVENTS = TypeAdapter(list[Event])


def normalise_url(url: str) -> str:
    """``host:port`` or ``http(s)://host:port[/]`` -> ``http(s)://host:port`` (clear error otherwise)."""
    text = url.strip().rstrip("/")
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LeaError(f"not a server address: {url!r} (expected e.g. https://lea.example.org:8421)")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def split_urls(text: str) -> list[str]:
    """``URL[,URL...]`` -> the normalised server addresses (at least one; duplicates dropped)."""
    urls: list[str] = []
    for item in text.split(","):
        if item.strip():
            url = normalise_url(item)
            if url not in urls:
                urls.append(url)
    if not urls:
        raise LeaError(f"not a server address: {text!r} (expected e.g. https://lea.example.org:8421)")
    return urls


def normalise_urls(text: str) -> str:
    """One or more server addresses as one canonical text (the key of the saved token)."""
    return ",".join(split_urls(text))


class RemoteEventStream(EventStream):
    def __init__(self, websocket: ClientConnection, on_close: Callable[[RemoteEventStream], None]) -> None:
        self._ws = websocket
        self._on_close = on_close

    async def next(self) -> Delivery:
        while True:
            try:
                raw = await self._ws.recv()
            except ConnectionClosed as exc:
                # The server's reason, else ours (e.g. "keepalive ping timeout": no pong in time).
                close = exc.rcvd or exc.sent
                reason = (close.reason if close is not None else "") or "connection closed"
                raise ConnectionLost(f"event stream closed: {reason}") from exc
            try:
                message = _MESSAGE.validate_json(raw)
            except ValidationError as exc:
                raise ConnectionLost(f"unreadable message from the server: {exc.errors()[0]['msg']}") from exc
            if not isinstance(message, Ping):
                return message

    async def close(self) -> None:
        self._on_close(self)
        await self._ws.close()


class RemoteConnection(Connection):
    demo_controls = True

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        ca_file: str | None = None,
        timeout: float = 15.0,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> None:
        self.urls = split_urls(url)
        self._current = 0
        self.address = ",".join(self.urls)
        self.agent_url = self.address  # benches connect to the same servers (WS /api/v1/peer/connect)
        self.token = token
        self.keepalive = keepalive
        self.description = f"server {self.address}" if len(self.urls) == 1 else f"servers {self.address}"
        self._ssl = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(
            base_url=self.url,
            headers=headers,
            timeout=timeout,
            verify=self._ssl if self.url.startswith("https") else True,
        )
        #: Server switches after a failure (tests and the status bar read it).
        self.switches = 0
        #: The event streams not closed yet: closing the connection ends them (as the embedded one does).
        self._streams: set[RemoteEventStream] = set()

    @property
    def url(self) -> str:
        """The server requests go to now."""
        return self.urls[self._current]

    def _next_server(self) -> None:
        if len(self.urls) > 1:
            self._current = (self._current + 1) % len(self.urls)
            self.switches += 1

    # -- plumbing --------------------------------------------------------------------------
    async def _response(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(len(self.urls)):
            last = attempt == len(self.urls) - 1
            url = self.url
            try:
                response = await self._client.request(method, url + API + path, **kwargs)
            except httpx.TransportError as exc:
                # A read may go anywhere again; a write only when it certainly reached no server.
                if not last and (method == "GET" or isinstance(exc, httpx.ConnectError)):
                    self._next_server()
                    continue
                raise ConnectionLost(f"cannot reach {url}: {exc}") from exc
            if response.status_code == 503 and _is_standby(response) and not last:
                self._next_server()
                continue
            break
        if response.status_code >= 400:
            raise _error(response)
        return response

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._response(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise LeaError(f"unreadable answer from {self.url}: {response.text[:200]!r}") from exc

    async def _write(
        self, method: str, path: str, *, body: Any = None, headers: dict[str, str] | None = None
    ) -> WriteResult:
        data = await self._request(
            method, path, content=body, headers={"Content-Type": "application/json", **(headers or {})}
        )
        return WriteResult.model_validate(data)

    @staticmethod
    def _preconditions(expected_version: int | None, create_only: bool = False) -> dict[str, str]:
        headers = {}
        if expected_version is not None:
            headers["If-Match"] = f'"{expected_version}"'
        if create_only:
            headers["If-None-Match"] = "*"
        return headers

    # -- Connection ------------------------------------------------------------------------
    async def subscribe(self, after: int | None = None, epoch: str | None = None) -> EventStream:
        failures: list[str] = []
        for _ in range(len(self.urls)):
            try:
                return await self._subscribe(after, epoch)
            except ConnectionLost as exc:
                failures.append(str(exc))
                self._next_server()
        raise ConnectionLost("; ".join(failures))

    async def _subscribe(self, after: int | None, epoch: str | None) -> EventStream:
        query = {k: v for k, v in (("after", after), ("epoch", epoch)) if v is not None}
        parts = urlsplit(self.url)
        ws_url = urlunsplit(
            (
                "wss" if parts.scheme == "https" else "ws",
                parts.netloc,
                parts.path + API + "/watch",
                urlencode(query),
                "",
            )
        )
        try:
            websocket = await connect(
                ws_url,
                additional_headers={"Authorization": f"Bearer {self.token}"} if self.token else None,
                ssl=self._ssl if parts.scheme == "https" else None,
                max_size=64 * 1024 * 1024,
                open_timeout=15,
                # A silent server (half-open TCP after a network drop or sleep, a frozen process)
                # must not look live forever: no pong within ``keepalive`` s closes the stream and
                # the sync engine resumes. Closing a dead stream must not hang either.
                ping_interval=self.keepalive,
                ping_timeout=self.keepalive,
                close_timeout=CLOSE_TIMEOUT_SECONDS,
            )
        except InvalidStatus as exc:
            raise ConnectionLost(
                f"{self.url} refused the event stream (HTTP {exc.response.status_code})"
            ) from exc
        except (OSError, WebSocketException, TimeoutError) as exc:
            raise ConnectionLost(f"cannot reach {self.url}: {exc}") from exc
        stream = RemoteEventStream(websocket, self._streams.discard)
        self._streams.add(stream)
        return stream

    async def fetch_snapshot(self) -> StateSnapshot:
        # The body straight to pydantic-core's JSON validator (every resource checked, as from any
        # server), not json.loads first and then validate_python: 5 MB for 10,000 resources.
        response = await self._response("GET", "/snapshot")
        try:
            return StateSnapshot.model_validate_json(response.content)
        except ValidationError as exc:
            errors = exc.errors()
            if any(error["type"] == "json_invalid" for error in errors):
                raise LeaError(f"unreadable answer from {self.url}: {response.text[:200]!r}") from exc
            where = ".".join(str(part) for part in errors[0]["loc"]) or "(the whole body)"
            raise LeaError(
                f"the snapshot from {self.url} is not valid: {where}: {errors[0]['msg']}"
                f"{f' (and {len(errors) - 1} more problems)' if len(errors) > 1 else ''}"
            ) from exc

    async def store_peer_descriptor(
        self, peer: PeerDescriptor, expected_version: int | None = None, create_only: bool = False
    ) -> WriteResult:
        return await self._write(
            "PUT",
            f"/peer/{peer.id}",
            body=peer.model_dump_json(),
            headers=self._preconditions(expected_version, create_only),
        )

    async def delete_peer_descriptor(self, peer_id: UUID, expected_version: int | None = None) -> WriteResult:
        return await self._write("DELETE", f"/peer/{peer_id}", headers=self._preconditions(expected_version))

    async def store_cluster_descriptor(
        self, cluster: ClusterDescriptor, expected_version: int | None = None, create_only: bool = False
    ) -> WriteResult:
        return await self._write(
            "PUT",
            f"/cluster/{cluster.id}",
            body=cluster.model_dump_json(),
            headers=self._preconditions(expected_version, create_only),
        )

    async def delete_cluster_descriptor(self, cluster_id: UUID, expected_version: int | None = None) -> WriteResult:
        return await self._write("DELETE", f"/cluster/{cluster_id}", headers=self._preconditions(expected_version))

    async def store_cluster_deployment(self, cluster_id: UUID) -> WriteResult:
        return await self._write("PUT", f"/cluster/{cluster_id}/deployment")

    async def delete_cluster_deployment(self, cluster_id: UUID) -> WriteResult:
        return await self._write("DELETE", f"/cluster/{cluster_id}/deployment")

    async def history(self, kind: ResourceKind, resource_id: UUID) -> list[Event]:
        return _EVENTS.validate_python(await self._request("GET", f"/{kind.value}/{resource_id}/history"))

    async def events(self, after: int = 0, limit: int = 200) -> list[Event]:
        return _EVENTS.validate_python(await self._request("GET", "/events", params={"after": after, "limit": limit}))

    async def whoami(self) -> Identity:
        data = await self._request("GET", "/whoami")
        return Identity(name=str(data["name"]), role=str(data["role"]))

    async def set_demo_peer_online(self, peer_id: UUID, online: bool) -> None:
        await self._request("PUT", f"/peer/{peer_id}/demo-online", params={"online": str(online).lower()})

    # -- bench tokens (an admin token is needed) ----------------------------------------------
    async def create_peer_token(self, peer_id: UUID, name: str) -> str:
        data = await self._request("POST", "/tokens", params={"name": name, "role": "peer", "peer_id": str(peer_id)})
        return str(data["token"])

    async def peer_tokens(self) -> list[PeerToken]:
        rows = await self._request("GET", "/tokens")
        return [
            PeerToken(name=str(r["name"]), peer_id=UUID(str(r["peer_id"])), created_at=str(r["created_at"]))
            for r in rows
            if r.get("role") == "peer" and r.get("peer_id")
        ]

    async def revoke_token(self, name: str) -> None:
        await self._request("DELETE", f"/tokens/{name}")

    async def close(self) -> None:
        """End every open event stream (a waiting next() raises ConnectionLost), then the HTTP client."""
        try:
            await asyncio.gather(*(stream.close() for stream in list(self._streams)))
        finally:
            await self._client.aclose()


#: Answers without a problem body that mean "not reachable right now" (a proxy in front of a server
#: that is down or restarting): the sync engine resumes instead of giving up.
_UNAVAILABLE = (502, 503, 504)


def _is_standby(response: httpx.Response) -> bool:
    try:
        return Problem.model_validate_json(response.content).code == Standby.code
    except ValidationError:
        return False


def _error(response: httpx.Response) -> LeaError | ConnectionLost:
    try:
        error = error_from_problem(Problem.model_validate_json(response.content))
        if isinstance(error, Standby):  # every server of the list is a standby: a takeover is under way
            return ConnectionLost(f"no active server: {error}")
        return error
    except ValidationError:
        if response.status_code in _UNAVAILABLE:
            return ConnectionLost(f"the server is unavailable (HTTP {response.status_code})")
        if response.status_code == 401:
            return Unauthorized("the server did not accept the token")
        return LeaError(f"the server answered HTTP {response.status_code}: {response.text[:200]}")
