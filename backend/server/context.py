"""What an app's routes share: the Backend and TokenStore it was made for, kept on ``app.state``."""

from typing import Annotated

from fastapi import Depends, FastAPI
from starlette.requests import HTTPConnection

from backend.backend import Backend
from backend.manager import ResourcesManager
from backend.tokens import TokenStore


def attach(app: FastAPI, backend: Backend, tokens: TokenStore | None) -> None:
    """Make ``backend`` and ``tokens`` (None: no authentication) what ``app``'s routes use."""
    app.state.backend = backend
    app.state.tokens = tokens


def backend_of(connection: HTTPConnection) -> Backend:
    backend: Backend = connection.app.state.backend
    return backend


def manager_of(connection: HTTPConnection) -> ResourcesManager:
    return backend_of(connection).manager


def tokens_of(connection: HTTPConnection) -> TokenStore | None:
    tokens: TokenStore | None = connection.app.state.tokens
    return tokens


def token_store_of(connection: HTTPConnection) -> TokenStore:
    """The token store of an app with authentication (the token routes exist only there)."""
    tokens = tokens_of(connection)
    assert tokens is not None, "the token routes are mounted only when there is a token store"
    return tokens


# The dependencies are coroutines: FastAPI runs a plain function in its thread pool, and a hop there
# and back for an attribute read is what made /healthz wait behind busy streams.
async def _backend(connection: HTTPConnection) -> Backend:
    return backend_of(connection)


async def _manager(connection: HTTPConnection) -> ResourcesManager:
    return manager_of(connection)


async def _token_store(connection: HTTPConnection) -> TokenStore:
    return token_store_of(connection)


BackendDep = Annotated[Backend, Depends(_backend)]
ManagerDep = Annotated[ResourcesManager, Depends(_manager)]
TokenStoreDep = Annotated[TokenStore, Depends(_token_store)]
