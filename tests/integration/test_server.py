"""``lea-backend serve`` for real: a subprocess on a loopback port, over HTTP(S) and WebSocket.

Covers docs/protocol.md: every endpoint, every role boundary, preconditions, bad input (always a 4xx
problem that changes nothing), the actor of events, immediate revocation, the watch stream (hello,
ordered batches, replay, resync), TLS with a test-made CA, the refusal to start unsafely, the demo
fleet deploying over HTTP, and a clean SIGTERM shutdown that loses no acknowledged write.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection

from resources import ClusterDescriptor, PeerDescriptor
from tests.helpers.factories import make_cluster, make_peer
from tests.helpers.server import (
    API,
    ServerProcess,
    create_token,
    lea_backend,
    make_tls,
    running_server,
    start_server,
)

PROBLEM = "application/problem+json"
JSON = {"Content-Type": "application/json"}
KINDS = (
    "peer", "cluster", "cluster_deployment", "peer_connection_state", "cluster_state", "peer_configuration",
    "peer_configuration_state",
)


@dataclass
class Env:
    """The shared server and one token per role (names are the actors of their writes)."""

    server: ServerProcess
    admin: str
    editor: str
    viewer: str
    peer: PeerDescriptor  # stored by the fixture, so reads have something to find

    def http(self, token: str | None) -> httpx.Client:
        return self.server.client(token, headers=JSON)


ADMIN, EDITOR, VIEWER = "ada", "erin", "vic"


def _make_tokens(data_dir: Path, *names_roles: tuple[str, str]) -> list[str]:
    with ThreadPoolExecutor(len(names_roles)) as pool:
        return list(pool.map(lambda nr: create_token(data_dir, nr[1], nr[0]), names_roles))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    data_dir = tmp_path_factory.mktemp("server") / "data"
    admin, editor, viewer = _make_tokens(data_dir, (ADMIN, "admin"), (EDITOR, "editor"), (VIEWER, "viewer"))
    server = start_server(data_dir)
    try:
        peer = make_peer("fixture-bench")
        with server.client(editor) as http:
            ok(put_peer(http, peer))
        yield Env(server, admin, editor, viewer, peer)
    finally:
        server.stop()
    assert_quiet(server)


def assert_quiet(server: ServerProcess) -> None:
    """Nothing but the stop line on stderr: no traceback, no error logged (a 5xx logs one)."""
    stderr = server.output()[1]
    assert stderr.strip().splitlines() == ["lea-backend: stopped"], stderr


# -- helpers --------------------------------------------------------------------------------------
def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    return response.json()


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """An RFC 9457 problem with this status and stable code."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert body["status"] == status and body["code"] == code, body
    assert body["title"] and body["detail"] and body["type"], body
    return dict(body)


def body(resource: PeerDescriptor | ClusterDescriptor) -> str:
    return resource.model_dump_json()


def put_peer(http: httpx.Client, peer: PeerDescriptor, **headers: str) -> httpx.Response:
    return http.put(f"{API}/peer/{peer.id}", content=body(peer), headers={**JSON, **headers})


def put_cluster(http: httpx.Client, cluster: ClusterDescriptor, **headers: str) -> httpx.Response:
    return http.put(f"{API}/cluster/{cluster.id}", content=body(cluster), headers={**JSON, **headers})


def snapshot(env: Env) -> dict[str, Any]:
    with env.http(env.viewer) as http:
        return dict(ok(http.get(f"{API}/snapshot")))


@contextmanager
def unchanged(env: Env, *, persisted_only: bool = False) -> Iterator[None]:
    """The block changes nothing: same revision, same resources, no new event.

    ``persisted_only``: compare the stored kinds only, for when an operator may still update
    volatile state (a cluster_state) by itself meanwhile.
    """
    before = snapshot(env)
    yield
    after = snapshot(env)
    if persisted_only:
        assert _persisted(after["resources"]) == _persisted(before["resources"])
    else:
        assert after["revision"] == before["revision"]
        assert after["resources"] == before["resources"]
    with env.http(env.viewer) as http:  # stored events: the persisted kinds
        assert ok(http.get(f"{API}/events", params={"after": before["revision"]})) == []


def _persisted(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in resources if r["kind"] in ("peer", "cluster", "cluster_deployment")]


def settle(env: Env, quiet: float = 0.3, timeout: float = 10.0) -> None:
    """Wait until the revision stays put for ``quiet`` seconds (operators done reacting)."""
    deadline = time.monotonic() + timeout
    with env.http(None) as http:
        revision, since = ok(http.get("/healthz"))["revision"], time.monotonic()
        while time.monotonic() - since < quiet:
            assert time.monotonic() < deadline, "the backend kept changing"
            time.sleep(0.05)
            now = ok(http.get("/healthz"))["revision"]
            if now != revision:
                revision, since = now, time.monotonic()


def receive(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    return ServerProcess.receive(ws, timeout)


def receive_events(ws: ClientConnection, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The events of the next batches, until ``count`` events arrived (pings skipped).

    Each batch is one transaction: contiguous revisions, one ``tx``.
    """
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(events) < count:
        message = receive(ws, max(0.1, deadline - time.monotonic()))
        if message["type"] == "ping":
            continue
        assert message["type"] == "events", message
        batch = message["events"]
        assert batch and len({e["tx"] for e in batch}) == 1, batch
        assert [e["revision"] for e in batch] == list(range(batch[0]["revision"], batch[0]["revision"] + len(batch)))
        events += batch
    return events


def wait_closed(ws: ClientConnection, timeout: float) -> ConnectionClosed:
    """Read until the server closes the socket; returns the close exception."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"the socket is still open after {timeout} s")
        try:
            ws.recv(timeout=remaining)
        except ConnectionClosed as closed:
            return closed
        except TimeoutError:
            continue


# -- meta -----------------------------------------------------------------------------------------
def test_healthz_needs_no_token(env: Env) -> None:
    with env.http(None) as http:
        health = ok(http.get("/healthz"))
    assert health["status"] == "ok"
    assert isinstance(health["epoch"], str) and health["epoch"]
    assert isinstance(health["revision"], int) and health["revision"] >= 1


def test_whoami_names_the_token_and_its_role(env: Env) -> None:
    roles = ((env.admin, ADMIN, "admin"), (env.editor, EDITOR, "editor"), (env.viewer, VIEWER, "viewer"))
    for token, name, role in roles:
        with env.http(token) as http:
            assert ok(http.get(f"{API}/whoami")) == {"name": name, "role": role}


def test_openapi_and_docs_are_served(env: Env) -> None:
    with env.http(None) as http:
        schema = ok(http.get("/openapi.json"))
        docs = http.get("/docs")
    assert docs.status_code == 200 and "html" in docs.headers["content-type"]
    assert f"{API}/snapshot" in schema["paths"] and f"{API}/peer/{{id}}" in schema["paths"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_unknown_path_and_method_are_problems(env: Env) -> None:
    with env.http(env.admin) as http:
        problem(http.get("/no/such/path"), 404, "not_found")
        response = http.post(f"{API}/whoami")
        problem(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "GET"
        # A path served by routes of two routers (read, write): Allow names the methods of both.
        response = http.post(f"{API}/peer/{uuid.uuid4()}")
        problem(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "DELETE, GET, PUT"
        response = http.patch(f"{API}/tokens")
        problem(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "GET, POST"


# -- reads ----------------------------------------------------------------------------------------
def test_snapshot_lists_and_single_resources(env: Env) -> None:
    with env.http(env.viewer) as http:
        snap = ok(http.get(f"{API}/snapshot"))
        health = ok(http.get("/healthz"))
        assert snap["epoch"] == health["epoch"] and snap["revision"] <= health["revision"]
        assert snap["schema_version"] >= 1
        stored = env.peer.model_dump(mode="json")
        peers = ok(http.get(f"{API}/peer"))
        mine = next(p for p in peers if p["id"] == str(env.peer.id))
        assert {k: v for k, v in mine.items() if k != "version"} == {k: v for k, v in stored.items() if k != "version"}
        assert mine in snap["resources"]
        assert ok(http.get(f"{API}/peer/{env.peer.id}")) == mine
        for kind in KINDS:  # every kind has a list, volatile kinds too
            listed = ok(http.get(f"{API}/{kind}"))
            assert isinstance(listed, list) and all(r["kind"] == kind for r in listed)
        problem(http.get(f"{API}/peer/{uuid.uuid4()}"), 404, "not_found")
        problem(http.get(f"{API}/cluster/{env.peer.id}"), 404, "not_found")


def test_events_after_and_limit(env: Env) -> None:
    with env.http(env.editor) as http:
        peers = [make_peer(f"events-{i}") for i in range(3)]
        revisions = [ok(put_peer(http, p))["revision"] for p in peers]
        first = revisions[0]
        events = ok(http.get(f"{API}/events", params={"after": first - 1}))
        assert [e["revision"] for e in events] == list(range(first, first + len(events)))
        assert [e["id"] for e in events[:3]] == [str(p.id) for p in peers]
        limited = ok(http.get(f"{API}/events", params={"after": first - 1, "limit": 2}))
        assert [e["revision"] for e in limited] == [first, first + 1]
        assert ok(http.get(f"{API}/events", params={"after": revisions[-1] + 10_000})) == []
        default = ok(http.get(f"{API}/events"))
        assert default[0]["revision"] == 1 and len(default) <= 200
        problem(http.get(f"{API}/events", params={"limit": 0}), 422, "invalid_resource")
        problem(http.get(f"{API}/events", params={"limit": 1001}), 422, "invalid_resource")
        problem(http.get(f"{API}/events", params={"after": -1}), 422, "invalid_resource")
        problem(http.get(f"{API}/events", params={"after": "ten"}), 422, "invalid_resource")
        problem(http.get(f"{API}/events", params={"after": 10**30}), 422, "invalid_resource")


def test_history_of_one_resource(env: Env) -> None:
    peer = make_peer("history-bench")
    with env.http(env.editor) as http:
        ok(put_peer(http, peer))
        ok(put_peer(http, peer.model_copy(update={"location": "Lab C"})))
        history = ok(http.get(f"{API}/peer/{peer.id}/history"))
        assert [(e["type"], e["resource"]["version"]) for e in history] == [("created", 1), ("updated", 2)]
        assert all(e["id"] == str(peer.id) and e["kind"] == "peer" for e in history)
        ok(http.delete(f"{API}/peer/{peer.id}"))
        history = ok(http.get(f"{API}/peer/{peer.id}/history"))
        assert [e["type"] for e in history] == ["created", "updated", "deleted"]
        assert history[-1]["resource"] is None
        assert ok(http.get(f"{API}/peer/{uuid.uuid4()}/history")) == []
        problem(http.get(f"{API}/peer/not-a-uuid/history"), 422, "invalid_resource")
        problem(http.get(f"{API}/no_such_kind/{peer.id}/history"), 404, "not_found")


def test_a_clusters_history_says_who_deployed_and_undeployed_it(env: Env) -> None:
    leader, member = make_peer("audit-leader"), make_peer("audit-member")
    cluster = make_cluster("audit-cluster", leader, member)
    with env.http(env.editor) as http:
        ok(put_peer(http, leader))
        ok(put_peer(http, member))
        ok(put_cluster(http, cluster))
        ok(http.put(f"{API}/cluster/{cluster.id}/deployment"))
        ok(http.delete(f"{API}/cluster/{cluster.id}/deployment"))
        history = ok(http.get(f"{API}/cluster/{cluster.id}/history"))
    assert [(e["kind"], e["type"]) for e in history] == [
        ("cluster", "created"), ("cluster_deployment", "created"), ("cluster_deployment", "deleted"),
    ]
    assert {e["actor"] for e in history} == {EDITOR}  # the token's name
    assert all(e["at"] for e in history) and all(e["id"] == str(cluster.id) for e in history)


# -- writes ---------------------------------------------------------------------------------------
def test_peer_and_cluster_crud_with_versions(env: Env) -> None:
    leader, member = make_peer("crud-leader"), make_peer("crud-member")
    cluster = make_cluster("crud-cluster", leader, member)
    with env.http(env.editor) as http:
        created = ok(put_peer(http, leader, **{"If-None-Match": "*"}))
        assert created["version"] == 1 and created["id"] == str(leader.id) and created["revision"] >= 1
        ok(put_peer(http, member))
        updated = ok(put_peer(http, leader.model_copy(update={"location": "Lab B"}), **{"If-Match": '"1"'}))
        assert updated["version"] == 2 and updated["revision"] > created["revision"]
        assert ok(http.get(f"{API}/peer/{leader.id}"))["location"] == "Lab B"

        stored = ok(put_cluster(http, cluster, **{"If-None-Match": "*"}))
        assert stored["version"] == 1
        assert ok(http.get(f"{API}/cluster/{cluster.id}"))["name"] == "crud-cluster"
        renamed = ok(put_cluster(http, cluster.model_copy(update={"name": "crud-renamed"}), **{"If-Match": "1"}))
        assert renamed["version"] == 2
        # a peer a cluster uses cannot go: a 409 rule problem, nothing changed
        with unchanged(env):
            problem(http.delete(f"{API}/peer/{member.id}"), 409, "referenced_by_cluster")

        deleted = ok(http.delete(f"{API}/cluster/{cluster.id}", headers={"If-Match": '"2"'}))
        assert deleted == {"revision": deleted["revision"], "version": 0, "id": str(cluster.id)}
        problem(http.get(f"{API}/cluster/{cluster.id}"), 404, "not_found")
        ok(http.delete(f"{API}/peer/{leader.id}", headers={"If-Match": "2"}))
        ok(http.delete(f"{API}/peer/{member.id}"))
        problem(http.get(f"{API}/peer/{leader.id}"), 404, "not_found")
        with unchanged(env):
            problem(http.delete(f"{API}/peer/{leader.id}"), 404, "not_found")
            problem(http.delete(f"{API}/cluster/{cluster.id}"), 404, "not_found")


def test_deployment_put_and_delete(env: Env) -> None:
    """PUT/DELETE /cluster/{id}/deployment on plain (non-demo) peers; the demo test sees it deploy."""
    leader, member = make_peer("deploy-leader"), make_peer("deploy-member")
    cluster = make_cluster("deploy-cluster", leader, member)
    with env.http(env.editor) as http:
        ok(put_peer(http, leader))
        ok(put_peer(http, member))
        ok(put_cluster(http, cluster))
        with unchanged(env):
            problem(http.put(f"{API}/cluster/{uuid.uuid4()}/deployment"), 422, "missing_reference")
            problem(http.delete(f"{API}/cluster/{cluster.id}/deployment"), 404, "not_found")
            problem(http.put(f"{API}/cluster/{cluster.id}/deployment", headers={"If-Match": "3"}), 412, "conflict")
        first = ok(http.put(f"{API}/cluster/{cluster.id}/deployment"))
        assert first["version"] == 1 and first["id"] == str(cluster.id)
        assert ok(http.get(f"{API}/cluster_deployment/{cluster.id}"))["version"] == 1
        again = ok(http.put(f"{API}/cluster/{cluster.id}/deployment", headers={"If-Match": "1"}))  # a retry
        assert again["version"] == 2
        # the operator reacts (cluster_state) in the background: compare the stored kinds only
        with unchanged(env, persisted_only=True):
            problem(http.delete(f"{API}/cluster/{cluster.id}"), 409, "cluster_deployed")
            problem(http.delete(f"{API}/cluster/{cluster.id}/deployment", headers={"If-Match": "1"}), 412, "conflict")
        ok(http.delete(f"{API}/cluster/{cluster.id}/deployment", headers={"If-Match": "2"}))
        problem(http.get(f"{API}/cluster_deployment/{cluster.id}"), 404, "not_found")
        ok(http.delete(f"{API}/cluster/{cluster.id}"))
        ok(http.delete(f"{API}/peer/{leader.id}"))
        ok(http.delete(f"{API}/peer/{member.id}"))
    settle(env)  # later tests compare revisions


def test_the_token_name_is_the_actor(env: Env) -> None:
    peer = make_peer("actor-bench")
    with env.http(env.editor) as http:
        ok(put_peer(http, peer))
    with env.http(env.admin) as http:
        ok(put_peer(http, peer.model_copy(update={"location": "moved"})))
        ok(http.delete(f"{API}/peer/{peer.id}"))
        history = ok(http.get(f"{API}/peer/{peer.id}/history"))
    assert [e["actor"] for e in history] == [EDITOR, ADMIN, ADMIN]


# -- preconditions --------------------------------------------------------------------------------
def test_if_match_and_if_none_match(env: Env) -> None:
    peer = make_peer("precondition-bench")
    with env.http(env.editor) as http:
        ok(put_peer(http, peer))  # version 1
        with unchanged(env):
            conflict = problem(put_peer(http, peer, **{"If-Match": '"7"'}), 412, "conflict")
            assert conflict["details"]["actual"] == 1 and conflict["details"]["expected"] == 7
            problem(put_peer(http, peer, **{"If-Match": "0"}), 412, "conflict")
            problem(put_peer(http, peer, **{"If-None-Match": "*"}), 412, "already_exists")
            problem(http.delete(f"{API}/peer/{peer.id}", headers={"If-Match": '"2"'}), 412, "conflict")
            fresh = make_peer("never-stored")
            problem(put_peer(http, fresh, **{"If-Match": "1"}), 412, "conflict")
            for bad in ("abc", '"1', "1\"", "-1", "1.5", "*", "W/", '""', "9" * 40):
                problem(put_peer(http, peer, **{"If-Match": bad}), 400, "invalid_request")
            problem(http.delete(f"{API}/peer/{peer.id}", headers={"If-Match": "v1"}), 400, "invalid_request")
            problem(put_peer(http, peer, **{"If-None-Match": '"1"'}), 400, "invalid_request")
        assert ok(put_peer(http, peer, **{"If-Match": 'W/"1"'}))["version"] == 2
        ok(http.delete(f"{API}/peer/{peer.id}", headers={"If-Match": '"2"'}))


# -- bad input ------------------------------------------------------------------------------------
def test_bad_bodies_are_4xx_problems_and_change_nothing(env: Env) -> None:
    peer = make_peer("bad-input-bench")
    other = make_peer("bad-input-other")
    good = peer.model_dump(mode="json")
    json_headers = {"Content-Type": "application/json"}
    cases: list[tuple[str, str, bytes | str, int, str]] = [
        ("PUT", f"/peer/{peer.id}", b"{not json", 400, "invalid_document"),
        ("PUT", f"/peer/{peer.id}", b'{"kind": "peer", "id": ', 400, "invalid_document"),
        ("PUT", f"/peer/{peer.id}", b"", 422, "invalid_resource"),
        ("PUT", f"/peer/{peer.id}", b"[]", 422, "invalid_resource"),
        ("PUT", f"/peer/{peer.id}", b"null", 422, "invalid_resource"),
        ("PUT", f"/peer/{peer.id}", b"\xff\xfe\x00garbage", 400, "invalid_document"),
        ("PUT", f"/peer/{peer.id}", httpx.Request("P", "/", json={**good, "name": 123}).content, 422,
         "invalid_resource"),
        ("PUT", f"/peer/{peer.id}", httpx.Request("P", "/", json={**good, "name": "has space"}).content, 422,
         "invalid_resource"),
        ("PUT", f"/peer/{peer.id}", httpx.Request("P", "/", json={**good, "interfaces": "eth0"}).content, 422,
         "invalid_resource"),
        ("PUT", f"/peer/{peer.id}", httpx.Request("P", "/", json={**good, "kind": "cluster"}).content, 422,
         "invalid_resource"),
        ("PUT", f"/peer/{peer.id}", httpx.Request("P", "/", json={**good, "id": "not-a-uuid"}).content, 422,
         "invalid_resource"),
        ("PUT", f"/peer/{peer.id}", body(other), 400, "invalid_request"),  # body id != URL id
        ("PUT", "/peer/not-a-uuid", body(peer), 422, "invalid_resource"),
        ("PUT", f"/cluster/{peer.id}", body(peer), 422, "invalid_resource"),  # a peer is not a cluster
        ("PUT", f"/cluster/{uuid.uuid4()}/deployment", b"", 422, "missing_reference"),
        ("PUT", f"/peer/{env.peer.id}/demo-online?online=maybe", b"", 422, "invalid_resource"),
        ("PUT", f"/peer/{env.peer.id}/demo-online", b"", 422, "invalid_resource"),
        ("PUT", f"/peer/{env.peer.id}/demo-online?online=true", b"", 404, "not_found"),  # not a demo peer
        ("PUT", f"/peer/{uuid.uuid4()}/demo-online?online=true", b"", 404, "not_found"),
        ("DELETE", f"/peer/{uuid.uuid4()}", b"", 404, "not_found"),
        ("DELETE", "/cluster/123", b"", 422, "invalid_resource"),
        ("GET", "/not_a_kind", b"", 404, "not_found"),
        ("GET", f"/not_a_kind/{uuid.uuid4()}", b"", 404, "not_found"),
        ("GET", f"/peer/{uuid.uuid4()}", b"", 404, "not_found"),
    ]
    with env.http(env.admin) as http, unchanged(env):
        for method, path, content, status, code in cases:
            response = http.request(method, API + path, content=content, headers=json_headers)
            assert response.status_code < 500, (method, path, response.text)
            problem(response, status, code)
        # a name another peer has: a rule, 409
        clash = make_peer(env.peer.name)
        problem(put_peer(http, clash), 409, "name_taken")
        # a cluster naming a peer that does not exist
        ghost = make_cluster("ghost-cluster", make_peer("ghost-a"), make_peer("ghost-b"))
        problem(put_cluster(http, ghost), 422, "missing_reference")


def test_oversize_bodies_are_413(env: Env) -> None:
    peer = make_peer("huge-bench")
    huge = peer.model_dump_json()[:-1] + ', "description": "' + "x" * (1024 * 1024 + 10) + '"}'
    with env.http(env.editor) as http, unchanged(env):
        problem(http.put(f"{API}/peer/{peer.id}", content=huge), 413, "payload_too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while streaming
            yield huge[:1000].encode()
            for _ in range(40):
                yield b"x" * 32_768

        try:
            response = http.put(f"{API}/peer/{peer.id}", content=chunks())
        except httpx.TransportError:  # the server may answer and close before the upload ends
            pass
        else:
            problem(response, 413, "payload_too_large")


# -- roles ----------------------------------------------------------------------------------------
def _writes(env: Env) -> list[tuple[str, str, str | None]]:
    peer = make_peer("role-bench")
    cluster = make_cluster("role-cluster", env.peer)
    return [
        ("PUT", f"/peer/{peer.id}", body(peer)),
        ("DELETE", f"/peer/{env.peer.id}", None),
        ("PUT", f"/cluster/{cluster.id}", body(cluster)),
        ("DELETE", f"/cluster/{cluster.id}", None),
        ("PUT", f"/cluster/{cluster.id}/deployment", None),
        ("DELETE", f"/cluster/{cluster.id}/deployment", None),
        ("PUT", f"/peer/{env.peer.id}/demo-online?online=false", None),
    ]


def _token_calls() -> list[tuple[str, str, str | None]]:
    return [
        ("GET", "/tokens", None),
        ("POST", "/tokens?name=mallory&role=admin", None),
        ("DELETE", f"/tokens/{ADMIN}", None),
    ]


def _reads(env: Env) -> list[tuple[str, str, str | None]]:
    return [
        ("GET", "/whoami", None),
        ("GET", "/snapshot", None),
        ("GET", "/events?after=0&limit=5", None),
        *(("GET", f"/{kind}", None) for kind in KINDS),
        ("GET", f"/peer/{env.peer.id}", None),
        ("GET", f"/peer/{env.peer.id}/history", None),
    ]


def test_401_without_a_token_or_with_a_wrong_one(env: Env) -> None:
    calls = _reads(env) + _writes(env) + _token_calls()
    headers_variants: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer lea_not-a-real-token"},
        {"Authorization": f"Basic {env.admin}"},
        {"Authorization": "Bearer"},
        {"Authorization": env.admin},
    ]
    with env.http(None) as http, unchanged(env):
        for headers in headers_variants:
            for method, path, content in calls:
                response = http.request(method, API + path, content=content, headers=headers)
                problem(response, 401, "unauthorized")
                assert response.headers["www-authenticate"] == "Bearer"


def test_viewer_reads_but_cannot_write_or_manage_tokens(env: Env) -> None:
    with env.http(env.viewer) as http:
        for method, path, _ in _reads(env):
            assert http.request(method, API + path).status_code == 200, path
        with unchanged(env):
            for method, path, content in _writes(env) + _token_calls():
                problem(http.request(method, API + path, content=content), 403, "forbidden")


def test_editor_writes_but_cannot_manage_tokens(env: Env) -> None:
    with env.http(env.editor) as http, unchanged(env):
        for method, path, content in _token_calls():
            problem(http.request(method, API + path, content=content), 403, "forbidden")
    peer = make_peer("editor-bench")
    with env.http(env.editor) as http:
        ok(put_peer(http, peer))
        ok(http.delete(f"{API}/peer/{peer.id}"))


def test_admin_manages_tokens(env: Env) -> None:
    with env.http(env.admin) as http:
        names = {t["name"]: t["role"] for t in ok(http.get(f"{API}/tokens"))}
        assert names[ADMIN] == "admin" and names[EDITOR] == "editor" and names[VIEWER] == "viewer"
        assert all("token" not in t and "hash" not in t for t in ok(http.get(f"{API}/tokens")))
        made = ok(http.post(f"{API}/tokens", params={"name": "api-made", "role": "viewer"}))
        assert made["name"] == "api-made" and made["role"] == "viewer" and made["token"].startswith("lea_")
        with env.http(made["token"]) as as_new:
            assert ok(as_new.get(f"{API}/whoami")) == {"name": "api-made", "role": "viewer"}
            problem(http.post(f"{API}/tokens", params={"name": "api-made", "role": "admin"}), 412, "already_exists")
            problem(http.post(f"{API}/tokens", params={"name": "has space", "role": "viewer"}), 400, "invalid_document")
            problem(http.post(f"{API}/tokens", params={"name": "x", "role": "root"}), 422, "invalid_resource")
            problem(http.post(f"{API}/tokens", params={"role": "viewer"}), 422, "invalid_resource")
            assert ok(http.delete(f"{API}/tokens/api-made")) == {"revoked": "api-made"}
            problem(as_new.get(f"{API}/whoami"), 401, "unauthorized")
        problem(http.delete(f"{API}/tokens/api-made"), 404, "not_found")
        assert "api-made" not in {t["name"] for t in ok(http.get(f"{API}/tokens"))}
    listed = env.server.cli("token", "list")
    assert listed.returncode == 0 and ADMIN in listed.stdout and "api-made" not in listed.stdout


def test_revocation_through_the_cli_is_immediate(env: Env) -> None:
    token = env.server.create_token("viewer", "short-lived")  # while the server runs
    with env.http(token) as http, env.server.watch(token) as ws:
        assert receive(ws)["type"] == "hello"
        assert ok(http.get(f"{API}/whoami"))["name"] == "short-lived"
        env.server.revoke_token("short-lived")
        revoked_at = time.monotonic()
        problem(http.get(f"{API}/whoami"), 401, "unauthorized")  # the very next request
        closed = wait_closed(ws, timeout=5.0)
        assert time.monotonic() - revoked_at < 2.0
        assert closed.rcvd is not None and closed.rcvd.code == 4401, closed
    with pytest.raises(InvalidStatus) as refused:
        env.server.watch(token)
    assert refused.value.response.status_code == 401


# -- the watch socket -----------------------------------------------------------------------------
def test_watch_needs_a_valid_token(env: Env) -> None:
    for token in (None, "lea_wrong"):
        with pytest.raises(InvalidStatus) as refused:
            env.server.watch(token)
        assert refused.value.response.status_code == 401
        assert b'"unauthorized"' in refused.value.response.body
    with pytest.raises(InvalidStatus) as refused:  # a malformed query: refused, not a server error
        env.server.watch(env.viewer, after="abc")  # type: ignore[arg-type]
    assert 400 <= refused.value.response.status_code < 500


def test_watch_hello_then_ordered_batches(env: Env) -> None:
    with env.server.watch(env.viewer) as ws:  # a viewer may watch
        hello = receive(ws)
        with env.http(None) as http:
            health = ok(http.get("/healthz"))
        assert hello["type"] == "hello" and hello["epoch"] == health["epoch"]
        assert hello["revision"] == health["revision"] and hello["schema_version"] >= 1
        peers = [make_peer(f"watched-{i}") for i in range(5)]
        with env.http(env.editor) as http:
            results = [ok(put_peer(http, p)) for p in peers]
            ok(http.delete(f"{API}/peer/{peers[0].id}"))
        events = receive_events(ws, 6)
    assert [e["revision"] for e in events] == list(range(hello["revision"] + 1, hello["revision"] + 7))
    assert [e["revision"] for e in events[:5]] == [r["revision"] for r in results]
    assert [(e["type"], e["id"]) for e in events] == [("created", str(p.id)) for p in peers] + [
        ("deleted", str(peers[0].id))
    ]
    assert {e["actor"] for e in events} == {EDITOR} and {e["epoch"] for e in events} == {hello["epoch"]}


def test_watch_resumes_from_the_ring_or_resyncs(env: Env) -> None:
    with env.server.watch(env.viewer) as live:
        hello = receive(live)
        epoch, start = hello["epoch"], hello["revision"]
        with env.http(env.editor) as http:
            peers = [make_peer(f"resume-{i}") for i in range(3)]
            for p in peers:
                ok(put_peer(http, p))
        seen = receive_events(live, 3)
    with env.server.watch(env.viewer, epoch=epoch, after=start) as resumed:
        again = receive(resumed)
        assert again["type"] == "hello" and again["epoch"] == epoch and again["revision"] >= start + 3
        assert receive_events(resumed, 3) == seen  # replayed from the ring, same order, same content
    with env.server.watch(env.viewer, epoch=epoch, after=start + 3) as current:  # nothing missed
        assert receive(current)["type"] == "hello"
        with pytest.raises(TimeoutError):
            current.recv(timeout=0.3)
    with env.server.watch(env.viewer, epoch="another-epoch", after=start) as other:
        assert receive(other)["type"] == "hello"
        resync = receive(other)
        assert resync["type"] == "resync" and "epoch" in resync["reason"]
    with env.server.watch(env.viewer, epoch=epoch, after=start + 10_000) as ahead:
        assert receive(ahead)["type"] == "hello"
        assert receive(ahead)["type"] == "resync"
    with env.http(env.editor) as http:
        for p in peers:
            ok(http.delete(f"{API}/peer/{p.id}"))


# -- TLS ------------------------------------------------------------------------------------------
def test_tls_with_a_test_made_certificate(tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    data_dir = tmp_path / "data"
    token = create_token(data_dir, "editor", "tls-user")
    with running_server(data_dir, tls=tls) as server:
        assert server.url.startswith("https://127.0.0.1:")
        with server.client(token) as http:
            assert ok(http.get(f"{API}/whoami")) == {"name": "tls-user", "role": "editor"}
            with server.watch(token) as ws:
                hello = receive(ws)
                assert hello["type"] == "hello"
                peer = make_peer("tls-bench")
                ok(put_peer(http, peer))
                (event,) = receive_events(ws, 1)
                assert event["id"] == str(peer.id) and event["actor"] == "tls-user"
        # the certificate is really checked: a client without the test CA refuses it
        with pytest.raises(httpx.ConnectError), httpx.Client(verify=True) as untrusting:
            untrusting.get(server.url + "/healthz")
        with pytest.raises(httpx.HTTPError), httpx.Client() as plain:  # plain HTTP on the TLS port
            plain.get(server.url.replace("https://", "http://") + "/healthz")


# Refusing unsafe exposure (no tokens or TLS off loopback, --insecure-no-auth, half TLS): test_refusals.py
# runs those start-ups with the other refused ones, and checks they change no file.


def test_insecure_no_auth_works_on_loopback(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", insecure_no_auth=True) as server:
        assert "(no authentication)" in server.output()[0]
        with server.client(None) as http:
            assert ok(http.get(f"{API}/whoami")) == {"name": "anonymous", "role": "admin"}
            peer = make_peer("anon-bench")
            ok(put_peer(http, peer))
            assert ok(http.get(f"{API}/peer/{peer.id}/history"))[0]["actor"] == "anonymous"
        with server.watch(None) as ws:
            assert receive(ws)["type"] == "hello"


# -- the demo fleet -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    token = create_token(data_dir, "editor", "demo-user")
    with running_server(data_dir, demo=True) as server:
        yield server, token
    assert_quiet(server)


def _by_name(http: httpx.Client, kind: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in ok(http.get(f"{API}/{kind}"))}


def test_demo_seeds_the_fleet(demo: tuple[ServerProcess, str]) -> None:
    server, token = demo
    with server.client(token) as http:
        peers, clusters = _by_name(http, "peer"), _by_name(http, "cluster")
    assert len(peers) == 6 and all(p["demo"] for p in peers.values())
    assert set(clusters) == {"demo-adas-loop", "demo-telematics", "demo-vehicle-e2e"}


def _wait_for_cluster_state(ws: ClientConnection, cluster_id: str, status: str, timeout: float) -> list[str]:
    """Follow the watch socket until the cluster's state has ``status``; returns the statuses seen."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while not seen or seen[-1] != status:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {status} within {timeout} s; saw {seen}")
        message = receive(ws, max(0.1, deadline - time.monotonic()))
        assert message["type"] in ("events", "ping"), message
        for event in message.get("events", []):
            if event["kind"] == "cluster_state" and event["id"] == cluster_id and event["resource"]:
                seen.append(event["resource"]["state"]["status"])
    return seen


def test_demo_cluster_deploys_over_http(demo: tuple[ServerProcess, str]) -> None:
    server, token = demo
    with server.client(token) as http, server.watch(token) as ws:
        assert receive(ws)["type"] == "hello"
        cluster = _by_name(http, "cluster")["demo-telematics"]
        requested = ok(http.put(f"{API}/cluster/{cluster['id']}/deployment"))
        assert requested["version"] >= 1
        statuses = _wait_for_cluster_state(ws, cluster["id"], "deployed", timeout=60)
        assert "deploying" in statuses
        assert ok(http.get(f"{API}/cluster_state/{cluster['id']}"))["state"]["status"] == "deployed"
        history = ok(http.get(f"{API}/cluster_deployment/{cluster['id']}/history"))
        assert history[-1]["actor"] == "demo-user"
        ok(http.delete(f"{API}/cluster/{cluster['id']}/deployment"))
        _wait_for_cluster_state(ws, cluster["id"], "undeployed", timeout=60)
        problem(http.get(f"{API}/cluster_deployment/{cluster['id']}"), 404, "not_found")


def test_demo_online_switch(demo: tuple[ServerProcess, str]) -> None:
    server, token = demo
    with server.client(token) as http, server.watch(token) as ws:
        assert receive(ws)["type"] == "hello"
        peer = _by_name(http, "peer")["demo-vehicle-02"]
        for online in (False, True):
            assert ok(http.put(f"{API}/peer/{peer['id']}/demo-online", params={"online": online})) == {
                "online": online
            }
            wanted = "online" if online else "offline"
            deadline = time.monotonic() + 10
            switched: list[dict[str, Any]] = []
            while not switched:
                assert time.monotonic() < deadline, f"peer_connection_state never became {wanted}"
                events = receive_events(ws, 1, timeout=max(0.1, deadline - time.monotonic()))
                switched = [e for e in events if e["kind"] == "peer_connection_state" and e["id"] == peer["id"]]
            assert [e["resource"]["state"]["status"] for e in switched] == [wanted]
            assert switched[0]["actor"] == "demo-simulation"
            assert ok(http.get(f"{API}/peer_connection_state/{peer['id']}"))["state"]["status"] == wanted


# -- clean shutdown -------------------------------------------------------------------------------
def test_sigterm_is_a_clean_shutdown_that_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    token = create_token(data_dir, "editor", "writer")
    acknowledged: dict[str, int] = {}  # peer id -> version the server acknowledged
    lock = threading.Lock()
    stop = threading.Event()
    server = start_server(data_dir)

    def writer(n: int) -> None:
        with server.client(token, timeout=10) as http:
            i = 0
            while not stop.is_set():
                peer = make_peer(f"w{n}-{i}")
                i += 1
                try:
                    response = put_peer(http, peer)
                except httpx.HTTPError:
                    return  # the server went away
                if response.status_code != 200:
                    return
                with lock:
                    acknowledged[str(peer.id)] = response.json()["version"]

    try:
        with server.watch(token) as ws:
            assert receive(ws)["type"] == "hello"
            threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 20
            while len(acknowledged) < 30 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(acknowledged) >= 30
            status = server.stop(timeout=20, check=False)  # SIGTERM while writes are in flight
            stop.set()
            for thread in threads:
                thread.join(20)
            wait_closed(ws, timeout=5)  # the open stream did not hold the shutdown up
    finally:
        stop.set()
        server.kill()
    stdout, stderr = server.output()
    assert status == 0, (stdout, stderr)
    assert "lea-backend: stopped" in stderr and "Traceback" not in stderr, stderr
    verify = lea_backend(data_dir, "verify")
    assert verify.returncode == 0 and "matches the checkpoint" in verify.stdout, verify.stdout + verify.stderr

    with running_server(data_dir) as again, again.client(token) as http:
        stored = {p["id"]: p["version"] for p in ok(http.get(f"{API}/peer"))}
    missing = {pid: v for pid, v in acknowledged.items() if stored.get(pid) != v}
    assert not missing, f"{len(missing)} acknowledged writes lost"
