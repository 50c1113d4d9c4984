"""Errors as RFC 9457 problem+json: the response, the exception handlers, the OpenAPI fix-ups.

Every error carries the stable ``code`` from ``resources.errors``; bad input is always a 4xx.
"""

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from resources.errors import (
    InvalidRequest,
    LeaError,
    NotFound,
    PayloadTooLarge,
    Problem,
    invalid_resource_from_errors,
)

PROBLEM = "application/problem+json"
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


def add_problem_handlers(app: FastAPI) -> None:
    """Answer every error ``app`` meets (ours, FastAPI's, Starlette's, a bug) with a problem."""
    app.add_exception_handler(LeaError, _lea_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _internal)


async def _lea_error(request: Request, exc: LeaError) -> JSONResponse:
    return problem_response(exc)


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    # Path, query and header parameters only: request bodies are parsed by inputs.read_body().
    return problem_response(invalid_resource_from_errors(list(exc.errors()), "request"))


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


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    # A bug: still answer with a problem (Starlette logs the traceback and re-raises after this).
    return problem_response(InternalError("the server failed to handle the request; see its log"))


def _allowed_methods(request: Request) -> str:
    """The methods of every route whose path matches the request's (the ``Allow`` of a 405)."""
    methods: set[str] = set()
    # The routes of the included routers too (FastAPI keeps an included router as one entry).
    for context in iter_route_contexts(request.app.router.routes):
        route = context.original_route
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


def problem_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
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
