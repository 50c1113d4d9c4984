"""The HTTP routes of DESIGN section 8 (docs/protocol.md), one APIRouter per tag.

They reach the Backend and the token store through FastAPI dependencies (backend.server.context).
"""

import re
from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from starlette.convertors import Convertor, register_url_convertor

from backend import actions
from backend.server.auth import Admin, Editor, Viewer, role
from backend.server.context import BackendDep, ManagerDep, TokenStoreDep
from backend.server.inputs import (
    IfMatch,
    IfNoneMatch,
    check_request,
    parse_if_match,
    parse_if_none_match,
    read_body,
    request_body,
)
from backend.server.problems import ERROR_RESPONSES
from backend.tokens import TOKEN_NAME_PATTERN, TOKEN_NAME_RULE, Role, TokenInfo
from resources.base import MAX_INT64, Model
from resources.cluster import ClusterDescriptor
from resources.errors import InvalidRequest, NotFound
from resources.events import Event, StateSnapshot, WriteResult
from resources.kinds import ResourceKind, history_kinds
from resources.peer import PeerDescriptor
from resources.resource import AnyResource, Resource

M = TypeVar("M", bound=Model)
API = "/api/v1"
#: Largest revision a query may name (SQLite integers are 64-bit signed).
MAX_REVISION = MAX_INT64


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


def resource_body(model: type[M], what: str, needed: Role = Role.EDITOR) -> Callable[..., M]:
    """The dependency reading a route's body as ``model``, once the caller has the ``needed`` role.

    Depending on the role makes FastAPI authenticate first, so a client without a valid token
    learns nothing about how its body would have been read. Pair it with request_body(model).
    """

    def dependency(request: Request, user: Annotated[TokenInfo, Depends(role(needed))]) -> M:
        return read_body(request, model, what)

    return dependency


def same_id(path_id: UUID, body_id: UUID) -> None:
    if path_id != body_id:
        raise InvalidRequest(f"the id in the body ({body_id}) differs from the id in the URL ({path_id})")


meta = APIRouter(tags=["meta"])


async def _checked(request: Request) -> None:
    check_request(request)  # on the event loop: it only reads the request


@meta.get("/healthz", responses={s: ERROR_RESPONSES[s] for s in (400, 413)}, dependencies=[Depends(_checked)])
async def healthz(manager: ManagerDep) -> dict[str, Any]:  # on the event loop: no thread-pool hop
    # "ok" while the process serves (reads and streams go on); "storage" says whether writes do.
    storage = "failing" if manager.storage_failing else "ok"
    return {"status": "ok", "storage": storage, "epoch": manager.epoch, "revision": manager.revision}


@meta.get(f"{API}/whoami", responses=ERROR_RESPONSES)
def whoami(user: Viewer) -> dict[str, str]:
    return {"name": user.name, "role": user.role.value}


#: The whole state and the event log.
log_reads = APIRouter(tags=["read"])


@log_reads.get(f"{API}/snapshot", response_model=StateSnapshot, responses=ERROR_RESPONSES)
def snapshot(user: Viewer, manager: ManagerDep) -> StateSnapshot:
    return manager.fetch_snapshot()


@log_reads.get(f"{API}/events", response_model=list[Event], responses=ERROR_RESPONSES)
def events(
    user: Viewer,
    backend: BackendDep,
    after: Annotated[int, Query(ge=0, le=MAX_REVISION)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[Event]:
    return list(backend.store.read_events(after=after, limit=limit))


#: Token administration: mounted only when the server authenticates.
admin = APIRouter(tags=["admin"])


@admin.get(f"{API}/tokens", responses=ERROR_RESPONSES)
def list_tokens(user: Admin, tokens: TokenStoreDep) -> list[dict[str, str | None]]:
    return [token_row(t) for t in tokens.list()]


def token_row(token: TokenInfo) -> dict[str, str | None]:
    """A token as the API lists it; ``peer_id`` is null except for a peer token."""
    return {
        "name": token.name, "role": token.role.value, "created_at": token.created_at,
        "peer_id": str(token.peer_id) if token.peer_id is not None else None,
    }


@admin.post(f"{API}/tokens", responses=ERROR_RESPONSES)
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
    tokens: TokenStoreDep,
    peer_id: Annotated[
        UUID | None,
        Query(description="The peer a peer token is bound to (required with role peer, refused otherwise)."),
    ] = None,
) -> dict[str, str | None]:
    token = tokens.create(name, token_role, peer_id)
    return {
        "name": name, "role": token_role.value, "token": token,
        "peer_id": str(peer_id) if peer_id is not None else None,
    }


@admin.delete(f"{API}/tokens/{{name}}", responses=ERROR_RESPONSES)
def revoke_token(name: str, user: Admin, tokens: TokenStoreDep) -> dict[str, str]:
    tokens.revoke(name)
    return {"revoked": name}


#: Resources of one kind, one resource, its history.
resource_reads = APIRouter(tags=["read"])


@resource_reads.get(f"{API}/{{kind:kind}}", response_model=list[Resource], responses=ERROR_RESPONSES)
def list_kind(kind: ResourceKind, user: Viewer, manager: ManagerDep) -> list[AnyResource]:
    return manager.resources_of(kind)


@resource_reads.get(f"{API}/{{kind:kind}}/{{id}}", response_model=Resource, responses=ERROR_RESPONSES)
def get_one(kind: ResourceKind, id: UUID, user: Viewer, manager: ManagerDep) -> AnyResource:
    found = manager.get(kind, id)
    if found is None:
        raise NotFound(f"{kind} {id} does not exist", kind=kind.value, id=str(id))
    return found


@resource_reads.get(f"{API}/{{kind:kind}}/{{id}}/history", response_model=list[Event], responses=ERROR_RESPONSES)
def history(kind: ResourceKind, id: UUID, user: Viewer, backend: BackendDep) -> list[Event]:
    return list(backend.store.read_events(kinds=history_kinds(kind), resource_id=id))


write = APIRouter(tags=["write"])


@write.put(
    f"{API}/peer/{{id}}", response_model=WriteResult, responses=ERROR_RESPONSES,
    openapi_extra=request_body(PeerDescriptor),
)
def put_peer(
    id: UUID,
    peer: Annotated[PeerDescriptor, Depends(resource_body(PeerDescriptor, "peer"))],
    user: Editor,
    manager: ManagerDep,
    if_match: IfMatch = None,
    if_none_match: IfNoneMatch = None,
) -> WriteResult:
    same_id(id, peer.id)
    return actions.store_peer_descriptor(
        manager, peer, user.name, parse_if_match(if_match), parse_if_none_match(if_none_match)
    )


@write.delete(f"{API}/peer/{{id}}", response_model=WriteResult, responses=ERROR_RESPONSES)
def delete_peer(id: UUID, user: Editor, manager: ManagerDep, if_match: IfMatch = None) -> WriteResult:
    return actions.delete_peer_descriptor(manager, id, user.name, parse_if_match(if_match))


@write.put(
    f"{API}/cluster/{{id}}", response_model=WriteResult, responses=ERROR_RESPONSES,
    openapi_extra=request_body(ClusterDescriptor),
)
def put_cluster(
    id: UUID,
    cluster: Annotated[ClusterDescriptor, Depends(resource_body(ClusterDescriptor, "cluster"))],
    user: Editor,
    manager: ManagerDep,
    if_match: IfMatch = None,
    if_none_match: IfNoneMatch = None,
) -> WriteResult:
    same_id(id, cluster.id)
    return actions.store_cluster_descriptor(
        manager, cluster, user.name, parse_if_match(if_match), parse_if_none_match(if_none_match)
    )


@write.delete(f"{API}/cluster/{{id}}", response_model=WriteResult, responses=ERROR_RESPONSES)
def delete_cluster(id: UUID, user: Editor, manager: ManagerDep, if_match: IfMatch = None) -> WriteResult:
    return actions.delete_cluster_descriptor(manager, id, user.name, parse_if_match(if_match))


deploy = APIRouter(tags=["deploy"])


@deploy.put(f"{API}/cluster/{{id}}/deployment", response_model=WriteResult, responses=ERROR_RESPONSES)
def put_deployment(id: UUID, user: Editor, manager: ManagerDep, if_match: IfMatch = None) -> WriteResult:
    return actions.store_cluster_deployment(manager, id, user.name, parse_if_match(if_match))


@deploy.delete(f"{API}/cluster/{{id}}/deployment", response_model=WriteResult, responses=ERROR_RESPONSES)
def delete_deployment(id: UUID, user: Editor, manager: ManagerDep, if_match: IfMatch = None) -> WriteResult:
    return actions.delete_cluster_deployment(manager, id, user.name, parse_if_match(if_match))


demo = APIRouter(tags=["demo"])


@demo.put(f"{API}/peer/{{id}}/demo-online", response_model=dict[str, bool], responses=ERROR_RESPONSES)
def set_demo_online(id: UUID, online: bool, user: Editor, backend: BackendDep) -> dict[str, bool]:
    """Demo simulation only: switch a demo bench on or off."""
    peer = backend.manager.get(ResourceKind.PEER, id)
    if not isinstance(peer, PeerDescriptor) or not peer.demo:
        raise NotFound(f"no demo bench with id {id}")
    backend.demo_peers.set_online(id, online)
    return {"online": online}


def routers(*, with_tokens: bool) -> list[APIRouter]:
    """The HTTP routers in the order they are mounted (which is the OpenAPI document's order)."""
    return [meta, log_reads, *([admin] if with_tokens else []), resource_reads, write, deploy, demo]
