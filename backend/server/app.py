"""The HTTP + WebSocket API of DESIGN section 8 (docs/protocol.md), over one Backend.

Every error is RFC 9457 problem+json carrying the stable ``code`` from ``resources.errors``; bad
input is always a 4xx and changes nothing.
"""


import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import Depends, FastAPI, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend import actions
from backend.backend import Backend
from backend.logs import Throttle
from backend.subscription import StreamSubscription
from backend.tokens import TOKEN_NAME_PATTERN, TOKEN_NAME_RULE, Role, TokenInfo, TokenStore
from resources.base import MAX_INT64, Model
from resources.cluster import ClusterDescriptor
from resources.documents import parse_resource
from resources.errors import (
    Forbidden,
    InvalidDocument,
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
M = TypeVar("M", bound=Model)
#: The server's log (uvicorn's; its level is the server_log_level setting): closed streams go there.
server_log = logging.getLogger("uvicorn.error")

API = "/api/v1"
PROBLEM = "application/problem+json"
MAX_BODY = 1024 * 1024
PING_SECONDS = 15.0
#: How often an open stream's token is looked up again even when nothing is sent (it is also looked
#: up before every chunk of messages): a revoked token's stream closes within this, plus a lookup.
TOKEN_RECHECK_SECONDS = 0.5
#: Messages taken from the queue, checked against the token once, then sent one by one.
STREAM_CHUNK = 64
#: A stream's sender yields to the event loop after this much work (a replay is long; others wait).
SLICE_SECONDS = 0.0005
PING_TEXT = Ping().model_dump_json()
#: Largest revision a query may name (SQLite integers are 64-bit signed).
MAX_REVISION = MAX_INT64
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


class MethodNotAllowed(LeaError):
    code = "method_not_allowed"
    title = "Method not allowed"
    http_status = 405


class InternalError(LeaError):
    code = "internal_error"
    title = "Internal server error"
    http_status = 500


class _KindConvertor(Convertor[str]):
    """``{kind:kind}`` in a route matches only a resource kind's name.

    So ``/api/v1/tokens`` and ``/api/v1/tokens/{name}`` never fall into the generic per-kind routes,
    an unknown kind is a 404 like any unknown path, and a 405 names the right methods.
    """

    regex = "|".join(sorted((re.escape(kind.value) for kind in ResourceKind), key=len, reverse=True))

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("kind", _KindConvertor())


def problem_response(error: LeaError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    headers = dict(headers or {})
    if error.http_status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(
        error.to_problem().model_dump(mode="json"),
        status_code=error.http_status,
        media_type=PROBLEM,
        headers=headers or None,
    )


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The generated OpenAPI, corrected where FastAPI's differs from what the API sends and takes.

    - Error responses are application/problem+json: FastAPI files a response ``model`` under the
      route's media type (application/json), so the schema is moved.
    - An optional header or query parameter is absent or a string, never ``null``: FastAPI documents
      ``str | None`` as ``anyOf: [string, null]``.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # cached by FastAPI after the first call; the rewrite is idempotent
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if str(status).isdigit() and int(status) >= 400 and PROBLEM in content:
                        problem = content.get("application/json", content[PROBLEM])
                        response["content"] = {PROBLEM: problem}
                for parameter in operation.get("parameters", []):
                    _drop_null(parameter.get("schema", {}))
        return schema

    return openapi


def _drop_null(schema: dict[str, Any]) -> None:
    options = schema.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        del schema["anyOf"]
        if len(rest) == 1:
            schema.update(rest[0])
        else:
            schema["anyOf"] = rest


#: Where BodyLimit leaves the request body it read (bytes; empty when there was none).
BODY_SCOPE_KEY = "lea.body"


class BodyLimit:
    """Read every request body up front, refusing one over ``limit`` bytes (413) on every route.

    Reading it here, not when a route asks, means a route that never reads its body cannot be sent
    an unbounded one; the routes then find it in ``scope[BODY_SCOPE_KEY]`` and in ``receive``.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away before it finished sending: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        scope[BODY_SCOPE_KEY] = body
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await problem_response(PayloadTooLarge(f"request body over {self.limit} bytes"))(scope, receive, send)


_VERSION_TAG = re.compile(r'(?:W/)?(?P<quote>"?)(?P<version>[0-9]{1,18})(?P=quote)')
IF_MATCH_PATTERN = r'^((W/)?("[0-9]{1,18}"|[0-9]{1,18}))?$'


def parse_if_match(value: str | None) -> int | None:
    """``If-Match: "<version>"`` (also unquoted, or weak ``W/"<version>"``) as a version number.

    An empty field is an empty list of entity tags (RFC 9110 ``#entity-tag``): no condition.
    """
    if value is None or not value.strip():
        return None
    match = _VERSION_TAG.fullmatch(value.strip())
    if match is None:
        raise InvalidRequest(f'If-Match must be a resource version, like "3", not {value!r}')
    return int(match["version"])


def _allowed_methods(request: Request) -> str:
    """The methods of every route whose path matches the request's (the ``Allow`` of a 405)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


def _refuse_repeated(items: Iterable[tuple[str, str]]) -> None:
    """A query parameter given twice is ambiguous: refused, not "the last one wins"."""
    seen: set[str] = set()
    for key, _ in items:
        if key in seen:
            raise InvalidRequest(f"the query parameter {key[:40]!r} is given more than once")
        seen.add(key)


def request_body(model: type[Model]) -> dict[str, Any]:
    """The OpenAPI of a route's JSON body (read by resource_body, not by FastAPI: after the token)."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def parse_if_none_match(value: str | None) -> bool:
    if value is None or not value.strip():
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
    app.openapi = _openapi(app)  # type: ignore[method-assign]

    @app.exception_handler(LeaError)
    async def _lea_error(request: Request, exc: LeaError) -> JSONResponse:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Path, query and header parameters only: request bodies are parsed by resource_body().
        return problem_response(invalid_resource_from_errors(list(exc.errors()), "request"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error: LeaError
        if exc.status_code == 404:
            error = NotFound(f"there is no {request.url.path}")
        elif exc.status_code == 413:
            error = PayloadTooLarge(str(exc.detail))
        elif exc.status_code == 400:
            error = InvalidRequest(str(exc.detail))
        elif exc.status_code == 405:
            error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
            # Starlette names only the first route matching the path; list every method of the path.
            return problem_response(error, {**(exc.headers or {}), "Allow": _allowed_methods(request)})
        else:
            error = LeaError(str(exc.detail))
            error.http_status = exc.status_code  # type: ignore[misc]
        return problem_response(error, exc.headers)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # A bug: still answer with a problem (Starlette logs the traceback and re-raises after this).
        return problem_response(InternalError("the server failed to handle the request; see its log"))

    bearer = HTTPBearer(
        auto_error=False,
        description="A token made with `lea-backend token create` (roles: viewer, editor, admin).",
    )

    def authenticate(authorization: str | None) -> TokenInfo:
        """The token's owner from an ``Authorization`` header value; Unauthorized otherwise."""
        if tokens is None:
            return ANONYMOUS
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _refused(Unauthorized("a bearer token is required (Authorization: Bearer <token>)"))
        info = tokens.authenticate(token.strip())
        if info is None:
            raise _refused(Unauthorized("the token is unknown or was revoked"))
        return info

    def check_request(request: Request) -> None:
        """What every route refuses, after authentication: a repeated query parameter, and a body
        on a route that takes none (a route takes one when its OpenAPI says so: resource_body)."""
        _refuse_repeated(request.query_params.multi_items())
        route = request.scope.get("route")
        takes_body = isinstance(route, APIRoute) and "requestBody" in (route.openapi_extra or {})
        if request.scope.get(BODY_SCOPE_KEY) and not takes_body:
            raise InvalidRequest(f"{request.method} {request.url.path} takes no request body")

    roles: dict[Role, Callable[..., TokenInfo]] = {}

    def role(needed: Role) -> Callable[..., TokenInfo]:
        """The dependency authorising ``needed``: one function per role, so FastAPI runs it once a request."""
        if needed in roles:
            return roles[needed]

        def dependency(
            request: Request,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        ) -> TokenInfo:
            info = authenticate(f"Bearer {credentials.credentials}" if credentials is not None else None)
            if not info.role.allows(needed):
                raise Forbidden(f"'{info.name}' has the {info.role} role; this needs {needed}")
            check_request(request)
            return info

        roles[needed] = dependency
        return dependency

    def resource_body(model: type[M], what: str, needed: Role = Role.EDITOR) -> Callable[..., M]:
        """The dependency reading a route's body as ``model``, once the caller has the ``needed`` role.

        Depending on the role makes FastAPI authenticate first, so a client without a valid token
        learns nothing about how its body would have been read. Pair it with request_body(model).
        """

        def dependency(request: Request, user: Annotated[TokenInfo, Depends(role(needed))]) -> M:
            encoding = request.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise InvalidDocument(
                    f"compressed request bodies are not accepted (Content-Encoding: {encoding[:40]}); send plain JSON"
                )
            media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
            if media_type != "application/json" and not (
                media_type.startswith("application/") and media_type.endswith("+json")
            ):
                shown = f"not {media_type[:60]}" if media_type else "none was given"
                raise InvalidDocument(f"the request body must be sent as Content-Type: application/json ({shown})")
            return parse_resource(model, request.scope.get(BODY_SCOPE_KEY, b""), what)

        return dependency

    Viewer = Annotated[TokenInfo, Depends(role(Role.VIEWER))]
    Editor = Annotated[TokenInfo, Depends(role(Role.EDITOR))]
    Admin = Annotated[TokenInfo, Depends(role(Role.ADMIN))]
    # The patterns document the accepted forms; parse_if_match/parse_if_none_match check them (400).
    IfMatch = Annotated[
        str | None,
        Header(
            alias="If-Match",
            description='Write only if the resource is at this version: "3" (also 3 or W/"3"); else 412 conflict.',
            json_schema_extra={"pattern": IF_MATCH_PATTERN},
        ),
    ]
    IfNoneMatch = Annotated[
        str | None,
        Header(
            alias="If-None-Match",
            description="`*`: create only; 412 already_exists when the resource exists.",
            json_schema_extra={"pattern": r"^\*?$"},
        ),
    ]

    @app.get(
        "/healthz", tags=["meta"], responses={s: ERROR_RESPONSES[s] for s in (400, 413)},
        dependencies=[Depends(check_request)],
    )
    async def healthz() -> dict[str, Any]:  # on the event loop: no thread-pool hop, cheap
        # "ok" while the process serves (reads and streams go on); "storage" says whether writes do.
        storage = "failing" if manager.storage_failing else "ok"
        return {"status": "ok", "storage": storage, "epoch": manager.epoch, "revision": manager.revision}

    @app.get(f"{API}/whoami", tags=["meta"], responses=ERROR_RESPONSES)
    def whoami(user: Viewer) -> dict[str, str]:
        return {"name": user.name, "role": user.role.value}

    @app.get(f"{API}/snapshot", response_model=StateSnapshot, tags=["read"], responses=ERROR_RESPONSES)
    def snapshot(user: Viewer) -> StateSnapshot:
        return manager.fetch_snapshot()

    @app.get(f"{API}/events", response_model=list[Event], tags=["read"], responses=ERROR_RESPONSES)
    def events(
        user: Viewer,
        after: Annotated[int, Query(ge=0, le=MAX_REVISION)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> list[Event]:
        return list(backend.store.read_events(after=after, limit=limit))

    if tokens is not None:
        token_store = tokens

        @app.get(f"{API}/tokens", tags=["admin"], responses=ERROR_RESPONSES)
        def list_tokens(user: Admin) -> list[dict[str, str]]:
            return [{"name": t.name, "role": t.role.value, "created_at": t.created_at} for t in token_store.list()]

        @app.post(f"{API}/tokens", tags=["admin"], responses=ERROR_RESPONSES)
        def create_token(
            name: Annotated[
                str,
                Query(
                    description=f"Who uses the token: the actor of their changes ({TOKEN_NAME_RULE}).",
                    json_schema_extra={"pattern": TOKEN_NAME_PATTERN},  # checked by TokenStore.create (400)
                ),
            ],
            token_role: Annotated[Role, Query(alias="role")],
            user: Admin,
        ) -> dict[str, str]:
            token = token_store.create(name, token_role)
            return {"name": name, "role": token_role.value, "token": token}

        @app.delete(f"{API}/tokens/{{name}}", tags=["admin"], responses=ERROR_RESPONSES)
        def revoke_token(name: str, user: Admin) -> dict[str, str]:
            token_store.revoke(name)
            return {"revoked": name}

    @app.get(f"{API}/{{kind:kind}}", response_model=list[Resource], tags=["read"], responses=ERROR_RESPONSES)
    def list_kind(kind: ResourceKind, user: Viewer) -> list[AnyResource]:
        return manager.resources_of(kind)

    @app.get(f"{API}/{{kind:kind}}/{{id}}", response_model=Resource, tags=["read"], responses=ERROR_RESPONSES)
    def get_one(kind: ResourceKind, id: UUID, user: Viewer) -> AnyResource:
        found = manager.get(kind, id)
        if found is None:
            raise NotFound(f"{kind} {id} does not exist", kind=kind.value, id=str(id))
        return found

    @app.get(
        f"{API}/{{kind:kind}}/{{id}}/history", response_model=list[Event], tags=["read"], responses=ERROR_RESPONSES
    )
    def history(kind: ResourceKind, id: UUID, user: Viewer) -> list[Event]:
        return list(backend.store.read_events(kind=kind, resource_id=id))

    def same_id(path_id: UUID, body_id: UUID) -> None:
        if path_id != body_id:
            raise InvalidRequest(f"the id in the body ({body_id}) differs from the id in the URL ({path_id})")

    @app.put(
        f"{API}/peer/{{id}}", response_model=WriteResult, tags=["write"], responses=ERROR_RESPONSES,
        openapi_extra=request_body(PeerDescriptor),
    )
    def put_peer(
        id: UUID,
        peer: Annotated[PeerDescriptor, Depends(resource_body(PeerDescriptor, "peer"))],
        user: Editor,
        if_match: IfMatch = None,
        if_none_match: IfNoneMatch = None,
    ) -> WriteResult:
        same_id(id, peer.id)
        return actions.store_peer_descriptor(
            manager, peer, user.name, parse_if_match(if_match), parse_if_none_match(if_none_match)
        )

    @app.delete(f"{API}/peer/{{id}}", response_model=WriteResult, tags=["write"], responses=ERROR_RESPONSES)
    def delete_peer(id: UUID, user: Editor, if_match: IfMatch = None) -> WriteResult:
        return actions.delete_peer_descriptor(manager, id, user.name, parse_if_match(if_match))

    @app.put(
        f"{API}/cluster/{{id}}", response_model=WriteResult, tags=["write"], responses=ERROR_RESPONSES,
        openapi_extra=request_body(ClusterDescriptor),
    )
    def put_cluster(
        id: UUID,
        cluster: Annotated[ClusterDescriptor, Depends(resource_body(ClusterDescriptor, "cluster"))],
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

    @app.websocket(f"{API}/watch")
    async def watch(websocket: WebSocket) -> None:
        token_header = websocket.headers.get("authorization")
        try:
            user = authenticate(token_header)  # first: without a token, nothing else is looked at
            epoch, after = watch_position(websocket.query_params.multi_items())
        except LeaError as exc:
            if "websocket.http.response" in websocket.scope.get("extensions", {}):
                await websocket.send_denial_response(problem_response(exc))  # HTTP 401/400 + problem
            else:
                await websocket.close(code=4000 + exc.http_status, reason=exc.message[:120])
            return
        await websocket.accept()
        subscription = manager.subscribe_stream(after=after, epoch=epoch)
        try:
            await _stream(
                websocket, subscription, lambda: _still_valid(authenticate, token_header),
                backend.settings.slow_reader_timeout, f"'{user.name}'",
            )
        finally:
            subscription.close()  # also when the client went away or the task was cancelled

    return app


_refusals = Throttle()


def _refused(error: Unauthorized) -> Unauthorized:
    """Log a refused token (an INFO line, throttled: a client retrying must not flood the log)."""
    left_out = _refusals.allow("token")
    if left_out is not None:
        more = f" ({left_out} more refused since, not logged)" if left_out else ""
        log.info("refused a request: %s%s", error.message, more)
    return error

_EPOCH = re.compile(r"[A-Za-z0-9_-]{1,64}")
_REVISION = re.compile(r"[0-9]{1,19}")


def watch_position(query: Iterable[tuple[str, str]]) -> tuple[str | None, int | None]:
    """``epoch`` and ``after`` of ``WS /api/v1/watch``; InvalidRequest (400) when malformed."""
    items = list(query)
    _refuse_repeated(items)
    params = dict(items)
    epoch, after = params.get("epoch"), params.get("after")
    if epoch is not None and not _EPOCH.fullmatch(epoch):
        raise InvalidRequest(
            f"epoch must be the epoch a hello named (1 to 64 letters, digits, '-' and '_'), not {epoch[:40]!r}"
        )
    if after is not None and not (_REVISION.fullmatch(after) and int(after) <= MAX_REVISION):
        raise InvalidRequest(f"after must be a revision, a whole number from 0 to {MAX_REVISION}, not {after[:40]!r}")
    return epoch, int(after) if after is not None else None


def _still_valid(authenticate: Callable[[str | None], TokenInfo], header: str | None) -> bool:
    try:
        authenticate(header)
    except LeaError:
        return False
    return True


#: Why the server closes a stream: (WebSocket close code, reason), most important first.
REVOKED = (4401, "the token was revoked")
SHUTTING_DOWN = (1001, "backend shutting down")
SLOW_READER = (4408, "the client read nothing for too long")
_CLOSE_PRIORITY = (REVOKED, SHUTTING_DOWN, SLOW_READER)
Close = tuple[int, str]


async def _stream(
    websocket: WebSocket,
    subscription: StreamSubscription,
    token_valid: Callable[[], bool],
    send_timeout: float,
    who: str,
) -> None:
    """Forward the subscription's messages; ping when idle; close on revocation, a stuck reader or shutdown.

    Three tasks: the sender, a reader of the client's messages (their end is the disconnect), and a
    watchdog that re-checks the token and the age of a pending send even while that send waits on
    a client that does not read.
    """
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    sending = _Sending()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            loop.call_soon_threadsafe(ready.set)

    subscription.on_ready = wake
    tasks = [
        asyncio.ensure_future(_send(websocket, subscription, ready, token_valid, sending)),
        asyncio.ensure_future(_read(websocket)),
        asyncio.ensure_future(_watch(token_valid, sending, send_timeout)),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        subscription.on_ready = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    reasons = {task.result() for task in done}  # a task's unexpected error propagates: a bug
    close = next((c for c in _CLOSE_PRIORITY if c in reasons), None)
    if close is None:  # the client went away
        return
    if close == SLOW_READER:
        server_log.info("closed the event stream of %s: it read nothing for %g s (%d)", who, send_timeout, close[0])
    else:
        server_log.info("closed the event stream of %s: %s (%d)", who, close[1], close[0])
    # The close frame is queued even if the client reads nothing (backend.server.limits); bounded anyway.
    with contextlib.suppress(TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
        async with asyncio.timeout(send_timeout):
            await websocket.close(code=close[0], reason=close[1])


class _Sending:
    """When the pending send started (None: none pending); read by the watchdog."""

    since: float | None = None


async def _send(
    websocket: WebSocket,
    subscription: StreamSubscription,
    ready: asyncio.Event,
    token_valid: Callable[[], bool],
    sending: _Sending,
) -> Close | None:
    loop = asyncio.get_running_loop()
    last_sent = slice_start = loop.time()
    try:
        while True:
            ready.clear()
            messages = subscription.take(STREAM_CHUNK)
            if not messages:
                if subscription.closed:
                    return SHUTTING_DOWN
                try:
                    async with asyncio.timeout(max(0.0, last_sent + PING_SECONDS - loop.time())):
                        await ready.wait()
                    continue
                except TimeoutError:
                    messages = [PING_TEXT]
            elif not token_valid():  # every message taken was committed before this look-up
                return REVOKED
            for text in messages:
                sending.since = loop.time()
                await websocket.send_text(text)
                sending.since = None
                last_sent = loop.time()
                # A send does not yield while the socket takes data: let other clients run (a replay is long).
                if last_sent - slice_start >= SLICE_SECONDS:
                    await asyncio.sleep(0)
                    slice_start = loop.time()
    except WebSocketDisconnect:
        return None


async def _read(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it disconnects; returns then."""
    while (await websocket.receive()).get("type") != "websocket.disconnect":
        pass


async def _watch(token_valid: Callable[[], bool], sending: _Sending, send_timeout: float) -> Close:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(TOKEN_RECHECK_SECONDS)
        if not token_valid():
            return REVOKED
        if sending.since is not None and loop.time() - sending.since >= send_timeout:
            return SLOW_READER
