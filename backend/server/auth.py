"""Who is asking: bearer tokens, the role each route needs, and the (throttled) log of refusals."""

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backend.logs import Throttle
from backend.server.context import tokens_of
from backend.server.inputs import check_request
from backend.tokens import Role, TokenInfo, TokenStore
from resources.agent import CONNECT_PATH
from resources.errors import Forbidden, LeaError, Unauthorized

#: The logger refusals have always gone to (its name is in every log line): kept when app.py was split.
log = logging.getLogger("backend.server.app")
#: Who asks when there is no token store (loopback only).
ANONYMOUS = TokenInfo("anonymous", Role.ADMIN, "")

bearer = HTTPBearer(
    auto_error=False,
    description="A token made with `lea-backend token create` (roles: viewer, editor, admin; "
    "a peer token is accepted only by the agent endpoint).",
)


def authenticate(tokens: TokenStore | None, authorization: str | None) -> TokenInfo:
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


def still_valid(tokens: TokenStore | None, authorization: str | None) -> bool:
    """Whether the header's token is still accepted (an open stream asks again and again)."""
    try:
        authenticate(tokens, authorization)
    except LeaError:
        return False
    return True


def authorise(info: TokenInfo, needed: Role) -> TokenInfo:
    """``info`` when its role allows ``needed``; Forbidden (403) otherwise, a peer token always."""
    if info.role is Role.PEER:
        raise Forbidden(
            f"'{info.name}' is a bench agent's token (role peer): it is accepted only on the agent endpoint "
            f"{CONNECT_PATH}, not for the API or the event stream"
        )
    if not info.role.allows(needed):
        raise Forbidden(f"'{info.name}' has the {info.role} role; this needs {needed}")
    return info


_roles: dict[Role, Callable[..., Awaitable[TokenInfo]]] = {}


def role(needed: Role) -> Callable[..., Awaitable[TokenInfo]]:
    """The dependency authorising ``needed``: one function per role, so FastAPI runs it once a request."""
    if needed in _roles:
        return _roles[needed]

    # A coroutine: FastAPI runs a plain function in its thread pool, a hop there and back (about a
    # third of a write's HTTP overhead) for one token look-up (~20 us, as an open stream does).
    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> TokenInfo:
        header = f"Bearer {credentials.credentials}" if credentials is not None else None
        info = authorise(authenticate(tokens_of(request), header), needed)
        check_request(request)
        return info

    _roles[needed] = dependency
    return dependency


Viewer = Annotated[TokenInfo, Depends(role(Role.VIEWER))]
Editor = Annotated[TokenInfo, Depends(role(Role.EDITOR))]
Admin = Annotated[TokenInfo, Depends(role(Role.ADMIN))]

_refusals = Throttle()


def _refused(error: Unauthorized) -> Unauthorized:
    """Log a refused token (an INFO line, throttled: a client retrying must not flood the log)."""
    left_out = _refusals.allow("token")
    if left_out is not None:
        more = f" ({left_out} more refused since, not logged)" if left_out else ""
        log.info("refused a request: %s%s", error.message, more)
    return error
