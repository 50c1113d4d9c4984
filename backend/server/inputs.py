"""What every request is checked for before a route uses it: body size, a body where none is
taken, a repeated query parameter, the JSON body's encoding, and the version preconditions."""

import re
from collections.abc import Iterable
from typing import Annotated, Any, TypeVar

from fastapi import Header, Request
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.server.problems import problem_response
from resources.base import Model
from resources.documents import parse_resource
from resources.errors import InvalidDocument, InvalidRequest, PayloadTooLarge

M = TypeVar("M", bound=Model)
MAX_BODY = 1024 * 1024
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


def refuse_repeated(items: Iterable[tuple[str, str]]) -> None:
    """A query parameter given twice is ambiguous: refused, not "the last one wins"."""
    seen: set[str] = set()
    for key, _ in items:
        if key in seen:
            raise InvalidRequest(f"the query parameter {key[:40]!r} is given more than once")
        seen.add(key)


def check_request(request: Request) -> None:
    """What every route refuses, after authentication: a repeated query parameter, and a body
    on a route that takes none (a route takes one when its OpenAPI says so: request_body)."""
    refuse_repeated(request.query_params.multi_items())
    route = request.scope.get("route")
    takes_body = isinstance(route, APIRoute) and "requestBody" in (route.openapi_extra or {})
    if request.scope.get(BODY_SCOPE_KEY) and not takes_body:
        raise InvalidRequest(f"{request.method} {request.url.path} takes no request body")


def request_body(model: type[Model]) -> dict[str, Any]:
    """The OpenAPI of a route's JSON body (read by read_body, not by FastAPI: after the token)."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def read_body(request: Request, model: type[M], what: str) -> M:
    """The request's body (kept by BodyLimit) as ``model``: plain JSON only."""
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


def parse_if_none_match(value: str | None) -> bool:
    if value is None or not value.strip():
        return False
    if value.strip() != "*":
        raise InvalidRequest("If-None-Match supports only '*' (create only)")
    return True


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
