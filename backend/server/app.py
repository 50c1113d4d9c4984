"""The HTTP + WebSocket API of DESIGN section 8 (docs/protocol.md), over one Backend.

Every error is RFC 9457 problem+json carrying the stable ``code`` from ``resources.errors``; bad
input is always a 4xx and changes nothing.
"""


import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, FastAPI, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend import actions
from backend.backend import Backend
from backend.subscription import Subscription
from backend.tokens import Role, TokenInfo, TokenStore
from resources.cluster import ClusterDescriptor
from resources.errors import (
    Forbidden,
    InvalidRequest,
    LeaError,
    NotFound,
    PayloadTooLarge,
    Problem,
    Unauthorized,
    invalid_resource_from_errors,
)
from resources.events import Event, StateSnapshot, WriteResult
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.resource import AnyResource, Resource
from resources.wire import Ping

log = logging.getLogger(__name__)

API = "/api/v1"
PROBLEM = "application/problem+json"
MAX_BODY = 1024 * 1024
PING_SECONDS = 15.0
TOKEN_RECHECK_SECONDS = 1.0
ANONYMOUS = TokenInfo("anonymous", Role.ADMIN, "")
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM: {}}, "description": description}
    for status, description in {
        400: "Bad request",
        401: "No or unknown token",
        403: "Role not allowed",
        404: "Not found",
        409: "A rule refused the change",
        412: "Version precondition failed",
        413: "Body too large",
        422: "Invalid resource",
        503: "Backend unavailable",
    }.items()
}


def problem_response(error: LeaError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.http_status == 401 else None
    return JSONResponse(
        error.to_problem().model_dump(mode="json"),
        status_code=error.http_status,
        media_type=PROBLEM,
        headers=headers,
    )


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes (by Content-Length, and while streaming)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_large = PayloadTooLarge(f"request body over {self.limit} bytes")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await problem_response(too_large)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await problem_response(too_large)(scope, receive, send)


class _TooLarge(Exception):
    pass


def parse_if_match(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise InvalidRequest(f"If-Match must be a resource version number, not {value!r}")
    return int(text)


def parse_if_none_match(value: str | None) -> bool:
    if value is None:
        return False
    if value.strip() != "*":
        raise InvalidRequest("If-None-Match supports only '*' (create only)")
    return True


def create_app(backend: Backend, tokens: TokenStore | None, *, max_body: int = MAX_BODY) -> FastAPI:
    """The API over ``backend``. ``tokens`` None means no authentication (loopback only)."""
    manager = backend.manager
    app = FastAPI(
        title="LEA backend",
        version="1",
        description="Event-sourced resources of LEA desktop: peers, clusters, deployments. See docs/protocol.md.",
    )
    app.add_middleware(BodyLimit, limit=max_body)

    @app.exception_handler(LeaError)
    async def _lea_error(request: Request, exc: LeaError) -> JSONResponse:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(invalid_resource_from_errors(list(exc.errors()), "request"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = NotFound(str(exc.detail)) if exc.status_code == 404 else LeaError(str(exc.detail))
        error.http_status = exc.status_code  # type: ignore[misc]
        return problem_response(error)

    def authenticate(authorization: str | None) -> TokenInfo:
        if tokens is None:
            return ANONYMOUS
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Unauthorized("a bearer token is required (Authorization: Bearer <token>)")
        info = tokens.authenticate(authorization[7:].strip())
        if info is None:
            raise Unauthorized("the token is unknown or was revoked")
        return info

    def role(needed: Role) -> Callable[..., TokenInfo]:
        def dependency(authorization: Annotated[str | None, Header()] = None) -> TokenInfo:
            info = authenticate(authorization)
            if not info.role.allows(needed):
                raise Forbidden(f"'{info.name}' has the {info.role} role; this needs {needed}")
            return info

        return dependency

    Viewer = Annotated[TokenInfo, Depends(role(Role.VIEWER))]
    Editor = Annotated[TokenInfo, Depends(role(Role.EDITOR))]
    Admin = Annotated[TokenInfo, Depends(role(Role.ADMIN))]
    IfMatch = Annotated[str | None, Header(alias="If-Match")]
    IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match")]

    @app.get("/healthz", tags=["meta"])
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "epoch": manager.epoch, "revision": manager.revision}

    @app.get(f"{API}/whoami", tags=["meta"], responses=ERROR_RESPONSES)
    def whoami(user: Viewer) -> dict[str, str]:
        return {"name": user.name, "role": user.role.value}

    @app.get(f"{API}/snapshot", response_model=StateSnapshot, tags=["read"], responses=ERROR_RESPONSES)
    def snapshot(user: Viewer) -> StateSnapshot:
        return manager.fetch_snapshot()

    @app.get(f"{API}/events", response_model=list[Event], tags=["read"], responses=ERROR_RESPONSES)
    def events(
        user: Viewer, after: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=1000)] = 200
    ) -> list[Event]:
        return list(backend.store.read_events(after=after, limit=limit))

    @app.get(f"{API}/{{kind}}", response_model=list[Resource], tags=["read"], responses=ERROR_RESPONSES)
    def list_kind(kind: ResourceKind, user: Viewer) -> list[AnyResource]:
        return manager.resources_of(kind)

    @app.get(f"{API}/{{kind}}/{{id}}", response_model=Resource, tags=["read"], responses=ERROR_RESPONSES)
    def get_one(kind: ResourceKind, id: UUID, user: Viewer) -> AnyResource:
        found = manager.get(kind, id)
        if found is None:
            raise NotFound(f"{kind} {id} does not exist", kind=kind.value, id=str(id))
        return found

    @app.get(f"{API}/{{kind}}/{{id}}/history", response_model=list[Event], tags=["read"], responses=ERROR_RESPONSES)
    def history(kind: ResourceKind, id: UUID, user: Viewer) -> list[Event]:
        return list(backend.store.read_events(kind=kind, resource_id=id))

    def same_id(path_id: UUID, body_id: UUID) -> None:
        if path_id != body_id:
            raise InvalidRequest(f"the id in the body ({body_id}) differs from the id in the URL ({path_id})")

    @app.put(f"{API}/peer/{{id}}", response_model=WriteResult, tags=["write"], responses=ERROR_RESPONSES)
    def put_peer(
        id: UUID, peer: PeerDescriptor, user: Editor, if_match: IfMatch = None, if_none_match: IfNoneMatch = None
    ) -> WriteResult:
        same_id(id, peer.id)
        return actions.store_peer_descriptor(
            manager, peer, user.name, parse_if_match(if_match), parse_if_none_match(if_none_match)
        )

    @app.delete(f"{API}/peer/{{id}}", response_model=WriteResult, tags=["write"], responses=ERROR_RESPONSES)
    def delete_peer(id: UUID, user: Editor, if_match: IfMatch = None) -> WriteResult:
        return actions.delete_peer_descriptor(manager, id, user.name, parse_if_match(if_match))

    @app.put(f"{API}/cluster/{{id}}", response_model=WriteResult, tags=["write"], responses=ERROR_RESPONSES)
    def put_cluster(
        id: UUID,
        cluster: ClusterDescriptor,
        user: Editor,
        if_match: IfMatch = None,
        if_none_match: IfNoneMatch = None,
    ) -> WriteResult:
        same_id(id, cluster.id)
        return actions.store_cluster_descriptor(
            manager, cluster, user.name, parse_if_match(if_match), parse_if_none_match(if_none_match)
        )

    @app.delete(f"{API}/cluster/{{id}}", response_model=WriteResult, tags=["write"], responses=ERROR_RESPONSES)
    def delete_cluster(id: UUID, user: Editor, if_match: IfMatch = None) -> WriteResult:
        return actions.delete_cluster_descriptor(manager, id, user.name, parse_if_match(if_match))

    @app.put(f"{API}/cluster/{{id}}/deployment", response_model=WriteResult, tags=["deploy"], responses=ERROR_RESPONSES)
    def put_deployment(id: UUID, user: Editor, if_match: IfMatch = None) -> WriteResult:
        return actions.store_cluster_deployment(manager, id, user.name, parse_if_match(if_match))

    @app.delete(
        f"{API}/cluster/{{id}}/deployment", response_model=WriteResult, tags=["deploy"], responses=ERROR_RESPONSES
    )
    def delete_deployment(id: UUID, user: Editor, if_match: IfMatch = None) -> WriteResult:
        return actions.delete_cluster_deployment(manager, id, user.name, parse_if_match(if_match))

    @app.put(f"{API}/peer/{{id}}/demo-online", response_model=dict[str, bool], tags=["demo"], responses=ERROR_RESPONSES)
    def set_demo_online(id: UUID, online: bool, user: Editor) -> dict[str, bool]:
        """Demo simulation only: switch a demo bench on or off."""
        peer = manager.get(ResourceKind.PEER, id)
        if not isinstance(peer, PeerDescriptor) or not peer.demo:
            raise NotFound(f"no demo bench with id {id}")
        backend.demo_peers.set_online(id, online)
        return {"online": online}

    if tokens is not None:
        token_store = tokens

        @app.get(f"{API}/tokens", tags=["admin"], responses=ERROR_RESPONSES)
        def list_tokens(user: Admin) -> list[dict[str, str]]:
            return [{"name": t.name, "role": t.role.value, "created_at": t.created_at} for t in token_store.list()]

        @app.post(f"{API}/tokens", tags=["admin"], responses=ERROR_RESPONSES)
        def create_token(name: str, token_role: Annotated[Role, Query(alias="role")], user: Admin) -> dict[str, str]:
            return {"name": name, "role": token_role.value, "token": token_store.create(name, token_role)}

        @app.delete(f"{API}/tokens/{{name}}", tags=["admin"], responses=ERROR_RESPONSES)
        def revoke_token(name: str, user: Admin) -> dict[str, str]:
            token_store.revoke(name)
            return {"revoked": name}

    @app.websocket(f"{API}/watch")
    async def watch(websocket: WebSocket, epoch: str | None = None, after: int | None = None) -> None:
        token_header = websocket.headers.get("authorization")
        try:
            authenticate(token_header)
        except LeaError as exc:
            await websocket.close(code=4401, reason=exc.message[:120])
            return
        await websocket.accept()
        subscription = manager.subscribe(after=after, epoch=epoch)
        try:
            await _stream(websocket, subscription, lambda: _still_valid(authenticate, token_header))
        except WebSocketDisconnect:
            pass
        finally:
            subscription.close()

    return app


def _still_valid(authenticate: Callable[[str | None], TokenInfo], header: str | None) -> bool:
    try:
        authenticate(header)
    except LeaError:
        return False
    return True


async def _stream(websocket: WebSocket, subscription: Subscription, token_valid: Callable[[], bool]) -> None:
    """Forward the subscription's deliveries; ping when idle; stop on revocation or close."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            loop.call_soon_threadsafe(ready.set)

    subscription.on_ready = wake
    receiver = asyncio.ensure_future(websocket.receive())
    last_sent = time.monotonic()
    last_check = time.monotonic()
    try:
        while True:
            ready.clear()
            while (item := subscription.get_nowait()) is not None:
                await websocket.send_text(item.model_dump_json())
                last_sent = time.monotonic()
            if subscription.closed:
                await websocket.close(code=1001, reason="backend shutting down")
                return
            now = time.monotonic()
            if now - last_check > TOKEN_RECHECK_SECONDS:
                last_check = now
                if not token_valid():
                    await websocket.close(code=4401, reason="the token was revoked")
                    return
            waiter = asyncio.ensure_future(ready.wait())
            done, _ = await asyncio.wait(
                {waiter, receiver},
                timeout=min(PING_SECONDS, TOKEN_RECHECK_SECONDS * 2),
                return_when=asyncio.FIRST_COMPLETED,
            )
            waiter.cancel()
            if receiver in done:
                message = receiver.result()
                if message.get("type") == "websocket.disconnect":
                    return
                receiver = asyncio.ensure_future(websocket.receive())  # clients may send pongs; ignore
            if not done and time.monotonic() - last_sent >= PING_SECONDS:
                await websocket.send_text(Ping().model_dump_json())
                last_sent = time.monotonic()
    finally:
        subscription.on_ready = None
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receiver
