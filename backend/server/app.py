"""The HTTP + WebSocket API of DESIGN section 8 (docs/protocol.md), over one Backend.

Assembled from small modules: problems (errors as problem+json), inputs (body and query checks),
auth (tokens and roles), routes (HTTP), watch (the WebSocket stream), context (what they share).
"""

from fastapi import FastAPI

from backend.backend import Backend
from backend.server import agents, routes, watch
from backend.server.context import attach
from backend.server.inputs import MAX_BODY, BodyLimit
from backend.server.problems import add_problem_handlers, problem_openapi
from backend.tokens import TokenStore


def create_app(backend: Backend, tokens: TokenStore | None, *, max_body: int = MAX_BODY) -> FastAPI:
    """The API over ``backend``. ``tokens`` None means no authentication (loopback only)."""
    app = FastAPI(
        title="LEA backend",
        version="1",
        description="Event-sourced resources of LEA desktop: peers, clusters, deployments. See docs/protocol.md.",
    )
    attach(app, backend, tokens)
    app.add_middleware(BodyLimit, limit=max_body)
    app.openapi = problem_openapi(app)  # type: ignore[method-assign]
    add_problem_handlers(app)
    for router in routes.routers(with_tokens=tokens is not None):
        app.include_router(router)
    app.include_router(watch.router)
    app.include_router(agents.router)
    return app
