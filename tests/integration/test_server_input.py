"""Hostile or sloppy input to a real ``lea-backend serve`` (issue #9): every body is bounded, every
parse failure is ``invalid_document`` with a sentence, authentication comes first, user-visible names
are clean, wire documents are strict, token names are safe and a repeated query parameter is refused.

Every refusal is a 4xx problem that changes nothing (``unchanged``).
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from resources import ClusterDescriptor, PeerDescriptor
from tests.helpers.factories import make_cluster, make_peer
from tests.helpers.server import API, ServerProcess, create_token, start_server

PROBLEM = "application/problem+json"
JSON = {"Content-Type": "application/json"}
LIMIT = 1024 * 1024


@dataclass
class Env:
    server: ServerProcess
    admin: str
    editor: str
    viewer: str
    leader: PeerDescriptor
    cluster: ClusterDescriptor  # stored, not deployed

    def http(self, token: str | None) -> httpx.Client:
        return self.server.client(token, headers=JSON)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    data_dir = tmp_path_factory.mktemp("input") / "data"
    admin, editor, viewer = (create_token(data_dir, role, name) for role, name in
                             (("admin", "ada"), ("editor", "erin"), ("viewer", "vic")))
    server = start_server(data_dir)
    try:
        leader, member = make_peer("input-leader", can=True), make_peer("input-member")
        cluster = make_cluster("input-cluster", leader, member)
        with server.client(editor, headers=JSON) as http:
            for peer in (leader, member):
                ok(http.put(f"{API}/peer/{peer.id}", content=peer.model_dump_json()))
            ok(http.put(f"{API}/cluster/{cluster.id}", content=cluster.model_dump_json()))
        yield Env(server, admin, editor, viewer, leader, cluster)
    finally:
        server.stop()
    stderr = server.output()[1]
    assert stderr.strip().splitlines() == ["lea-backend: stopped"], stderr  # no traceback: no 5xx


# -- helpers --------------------------------------------------------------------------------------
def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()


def problem(response: httpx.Response, status: int, code: str, *fragments: str) -> dict[str, Any]:
    """A problem+json with this status and code whose sentence contains every fragment."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code, body
    for fragment in fragments:
        assert fragment in body["detail"], (fragment, body["detail"])
    return body


def snapshot(env: Env) -> dict[str, Any]:
    with env.http(env.viewer) as http:
        return dict(ok(http.get(f"{API}/snapshot")))


@contextmanager
def unchanged(env: Env) -> Iterator[None]:
    """The block stores nothing: the same persisted resources and no new stored event."""
    before = snapshot(env)
    yield
    after = snapshot(env)

    def persisted(snap: dict[str, Any]) -> list[Any]:
        return [r for r in snap["resources"] if r["kind"] in ("peer", "cluster", "cluster_deployment")]

    assert persisted(after) == persisted(before)
    with env.http(env.viewer) as http:
        assert ok(http.get(f"{API}/events", params={"after": before["revision"]})) == []


def peer_json(peer: PeerDescriptor, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(peer.model_dump_json())
    data.update(changes)
    return data


def put_peer_raw(http: httpx.Client, peer_id: uuid.UUID, content: bytes, **headers: str) -> httpx.Response:
    return http.put(f"{API}/peer/{peer_id}", content=content, headers={**JSON, **headers})


def chunks_of(total: int, size: int = 32_768) -> Iterator[bytes]:
    """A body streamed without Content-Length (chunked transfer encoding)."""
    while total > 0:
        yield b"x" * min(size, total)
        total -= size


# -- every body is limited ------------------------------------------------------------------------
def test_a_chunked_body_over_the_limit_is_refused_where_no_route_reads_it(env: Env) -> None:
    """PUT/DELETE /cluster/{id}/deployment read no body: an oversize chunked one was applied anyway."""
    path = f"{API}/cluster/{env.cluster.id}/deployment"
    with env.http(env.editor) as http:
        for method in ("PUT", "DELETE"):
            with unchanged(env):
                try:
                    response = http.request(method, path, content=chunks_of(2 * LIMIT))
                except httpx.TransportError:  # answered and closed before the upload ended: also refused
                    continue
                problem(response, 413, "payload_too_large")
        with env.http(env.viewer) as viewer:
            problem(viewer.get(f"{API}/cluster_deployment/{env.cluster.id}"), 404, "not_found")


def test_a_body_is_refused_on_every_route_that_takes_none(env: Env) -> None:
    with env.http(None) as http:
        schema = ok(http.get("/openapi.json"))
    values = {"id": str(env.cluster.id), "kind": "peer", "name": "nobody"}
    calls = [
        (method.upper(), path.format(**values))
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "requestBody" not in operation
    ]
    assert ("PUT", f"{API}/cluster/{env.cluster.id}/deployment") in calls and ("GET", "/healthz") in calls
    with env.http(env.admin) as http, unchanged(env):
        for method, path in calls:
            for content in (b"{}", iter([b"{", b"}"])):  # with Content-Length, and chunked
                response = http.request(method, path, content=content)
                problem(response, 400, "invalid_request", "takes no request body")
    with env.http(env.viewer) as viewer:
        problem(viewer.get(f"{API}/cluster_deployment/{env.cluster.id}"), 404, "not_found")


def test_the_routes_with_a_body_still_take_one(env: Env) -> None:
    """The other side of the rule above: the documented bodies are read, unknown fields ignored."""
    peer = make_peer("input-body-ok")
    newer = {**peer_json(peer), "added_in_a_later_version": {"x": [1, 2]}}
    with env.http(None) as http:
        schema = ok(http.get("/openapi.json"))
    for path, model in ((f"{API}/peer/{{id}}", "PeerDescriptor"), (f"{API}/cluster/{{id}}", "ClusterDescriptor")):
        body = schema["paths"][path]["put"]["requestBody"]
        assert body["required"] and body["content"]["application/json"]["schema"]["$ref"].endswith(f"/{model}")
        assert "kind" in schema["components"]["schemas"][model]["required"]
    with env.http(env.editor) as http:
        assert ok(put_peer_raw(http, peer.id, json.dumps(newer).encode()))["version"] == 1
        ok(http.delete(f"{API}/peer/{peer.id}"))


# -- parse failures are invalid_document ---------------------------------------------------------
def _parse_failures(peer: PeerDescriptor) -> list[tuple[str, bytes, dict[str, str], str]]:
    good = peer.model_dump_json()
    plain = good.encode()

    def with_field(raw: str) -> bytes:
        return (good[:-1] + ", " + raw + "}").encode("utf-8", "surrogatepass")

    return [
        ("invalid UTF-8", good.replace('"input-parse"', '"input-\xff"').encode("latin-1"), {}, "not UTF-8"),
        ("gzip, declared", gzip.compress(plain), {"Content-Encoding": "gzip"}, "Content-Encoding: gzip"),
        ("gzip, undeclared", gzip.compress(plain), {}, "gzip-compressed"),
        ("declared but plain", plain, {"Content-Encoding": "br"}, "compressed request bodies are not accepted"),
        ("nested 100 deep", with_field('"extra": ' + "[" * 100 + "]" * 100), {}, "nested deeper than 32"),
        ("nested 100000 deep", with_field('"extra": ' + "[" * 100_000 + "]" * 100_000), {}, "nested deeper"),
        ("a 5000-digit integer", with_field('"extra": ' + "7" * 5000), {}, "5000 digits"),
        ("NaN", with_field('"extra": NaN'), {}, "NaN"),
        ("a key twice", with_field('"name": "input-other"'), {}, "the key 'name' twice"),
        ("a lone surrogate", with_field('"extra": "\\ud800"'), {}, "unpaired surrogate"),
        ("a byte order mark", b"\xef\xbb\xbf" + plain, {}, "byte order mark"),
        ("not JSON", b"{not json", {}, "not valid JSON"),
        ("not sent as JSON", plain, {"Content-Type": "text/plain"}, "Content-Type: application/json"),
    ]


PARSE_PEER = make_peer("input-parse")
PARSE_FAILURES = _parse_failures(PARSE_PEER)


@pytest.mark.parametrize("case", PARSE_FAILURES, ids=[c[0] for c in PARSE_FAILURES])
def test_parse_failures_are_invalid_document_with_a_sentence(
    env: Env, case: tuple[str, bytes, dict[str, str], str]
) -> None:
    label, content, headers, fragment = case
    peer = PARSE_PEER
    with env.http(env.editor) as http, unchanged(env):
        body = problem(put_peer_raw(http, peer.id, content, **headers), 400, "invalid_document", fragment)
    assert body["title"] == "Invalid document", label


def test_authentication_comes_before_the_body_is_read(env: Env) -> None:
    peer = make_peer("input-auth-first")
    broken = [b"{not json", b"\xff\xfe", gzip.compress(peer.model_dump_json().encode()), b"[" * 100_000]
    with unchanged(env):
        for content in broken:
            with env.http(None) as anonymous:
                problem(put_peer_raw(anonymous, peer.id, content), 401, "unauthorized")
            with env.http("lea_not-a-token") as wrong:
                problem(put_peer_raw(wrong, peer.id, content), 401, "unauthorized")
            with env.http(env.viewer) as viewer:  # a role that may not write learns nothing either
                problem(put_peer_raw(viewer, peer.id, content), 403, "forbidden")
        with env.http(None) as anonymous:  # a body where none is expected: also 401 first
            problem(anonymous.put(f"{API}/cluster/{env.cluster.id}/deployment", content=b"{}"), 401, "unauthorized")


def _refused_watch(env: Env, token: str | None, **query: Any) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as refused:
        env.server.watch(token, **query)
    return refused.value


@pytest.mark.parametrize(
    "query",
    [{"after": "abc"}, {"after": "-1"}, {"after": "1.5"}, {"after": ""}, {"after": "9" * 25},
     {"epoch": ""}, {"epoch": "e" * 65}, {"epoch": "not an epoch"}, {"epoch": "e\n1", "after": 0}],
    ids=repr,
)
def test_a_bad_watch_position_is_a_400_problem_after_the_token(env: Env, query: dict[str, Any]) -> None:
    refused = _refused_watch(env, env.viewer, **query)
    assert refused.response.status_code == 400
    assert refused.response.headers["content-type"].startswith(PROBLEM)
    body = json.loads(refused.response.body or b"{}")
    assert body["code"] == "invalid_request" and body["status"] == 400, body
    assert ("after" in query and "after must be a revision" in body["detail"]) or "epoch must be" in body["detail"]
    without_token = _refused_watch(env, None, **query)
    assert without_token.response.status_code == 401 and b'"unauthorized"' in (without_token.response.body or b"")


def test_a_good_watch_position_still_replays(env: Env) -> None:
    with env.server.watch(env.viewer) as ws:
        hello = env.server.receive(ws)
    with env.server.watch(env.viewer, epoch=hello["epoch"], after=hello["revision"]) as ws:
        assert env.server.receive(ws)["type"] == "hello"
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.2)


# -- names users see are clean --------------------------------------------------------------------
HOSTILE = ["\x00", "\n", "\r", "\x1b[2J", "\u202e", "\u2066", "\u200b", "\u200d", "\ufeff", "\u2028", "\u2029"]


def _hostile_peers(peer: PeerDescriptor, char: str) -> list[tuple[str, dict[str, Any]]]:
    data = peer_json(peer)
    cases: list[tuple[str, dict[str, Any]]] = [("location", {**data, "location": f"Lab{char}4"})]
    iface = json.loads(json.dumps(data))
    iface["interfaces"][0]["name"] = f"e{char}0"
    cases.append(("interfaces[0].name", iface))
    cases.append(("bridge_name", {**data, "bridge_name": f"br{char}x"}))
    device = json.loads(json.dumps(data))
    device["devices"][0]["name"] = f"ecu{char}1"
    cases.append(("devices[0].name", device))
    tags = json.loads(json.dumps(data))
    tags["devices"][1]["tags"] = ["ok", f"t{char}g"]
    cases.append(("devices[1].tags[1]", tags))
    described = json.loads(json.dumps(data))
    described["devices"][0]["description"] = f"front{char}ECU"
    cases.append(("devices[0].description", described))
    return cases


def test_names_refuse_control_and_invisible_characters(env: Env) -> None:
    peer = make_peer("input-names")
    with env.http(env.editor) as http, unchanged(env):
        for char in HOSTILE:
            for field, data in _hostile_peers(peer, char):
                response = put_peer_raw(http, peer.id, json.dumps(data).encode())
                body = problem(response, 422, "invalid_resource", f": {field} ")
                assert body["details"]["errors"][0]["field"] == field, body


def test_lea_backend_list_cannot_be_made_to_print_a_fake_row(env: Env) -> None:
    peer = make_peer("input-listed")
    fake_row = f"L\nfake-bench  {uuid.uuid4()}"  # 50 characters: within the location's 64
    with env.http(env.editor) as http:
        problem(put_peer_raw(http, peer.id, json.dumps(peer_json(peer, location=fake_row)).encode()), 422,
                "invalid_resource", "location")
        ok(put_peer_raw(http, peer.id, json.dumps(peer_json(peer, location="Lab 9")).encode()))
        stored = ok(http.get(f"{API}/peer"))
        listed = env.server.cli("list", "peer")
        ok(http.delete(f"{API}/peer/{peer.id}"))
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 1 + len(stored), listed.stdout  # the header and one line per peer
    assert not any(line.startswith("fake-bench") for line in lines), listed.stdout


# -- strict where it matters ----------------------------------------------------------------------
def _loose_documents(peer: PeerDescriptor) -> list[tuple[str, dict[str, Any], str]]:
    data = peer_json(peer)
    without_kind = {k: v for k, v in data.items() if k != "kind"}
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("demo", {**data, "demo": "yes"}, "demo must be true or false"),
        ("demo", {**data, "demo": 1}, "demo must be true or false"),
        ("version", {**data, "version": "1"}, "version must be a whole number"),
        ("version", {**data, "version": 1.0}, "version must be a whole number"),
        ("version", {**data, "version": 2**64}, "version must be <="),
        ("kind", without_kind, "kind is required"),
        ("name", {**data, "name": 1234}, "name must be a string"),
    ]
    for key, value, rule in (("bitrate", 2**64, "must be <= 4294967295"), ("bitrate", "500000", "whole number"),
                             ("sample_point", "0.875", "must be a number"), ("fd", "false", "true or false")):
        can = json.loads(json.dumps(data))
        can["interfaces"][1]["configuration"][key] = value
        cases.append((f"interfaces[1].configuration.{key}", can, rule))
    return cases


def test_wire_documents_are_strict_not_coerced(env: Env) -> None:
    peer = make_peer("input-strict", can=True)
    with env.http(env.editor) as http, unchanged(env):
        for field, data, rule in _loose_documents(peer):
            body = problem(put_peer_raw(http, peer.id, json.dumps(data).encode()), 422, "invalid_resource", rule)
            assert body["details"]["errors"][0]["field"] == field, body
        cluster = json.loads(env.cluster.model_dump_json())
        cluster.pop("kind")
        problem(http.put(f"{API}/cluster/{env.cluster.id}", content=json.dumps(cluster)), 422, "invalid_resource",
                "kind is required")


# -- token names and query parameters -------------------------------------------------------------
def test_token_names_are_a_safe_alphabet_so_every_token_can_be_revoked(env: Env) -> None:
    with env.http(env.admin) as http, unchanged(env):
        for name in ("team/ci", "..", ".hidden", "a+b", "a%2Fb", "jörg", "x" * 65, "tab\tname"):
            problem(http.post(f"{API}/tokens", params={"name": name, "role": "viewer"}), 400, "invalid_document",
                    "a token name must be")
        for name in ("ci.bot", "erin@lab.example", "Build_42-x"):
            made = ok(http.post(f"{API}/tokens", params={"name": name, "role": "viewer"}))
            with env.server.client(made["token"]) as as_new:
                assert ok(as_new.get(f"{API}/whoami"))["name"] == name
            assert ok(http.delete(f"{API}/tokens/{name}")) == {"revoked": name}
        assert {t["name"] for t in ok(http.get(f"{API}/tokens"))} == {"ada", "erin", "vic"}
    refused = env.server.cli("token", "create", "--role", "viewer", "--name", "team/ci")
    assert refused.returncode == 2 and "a token name must be" in refused.stderr, refused.stderr


def test_a_repeated_query_parameter_is_refused(env: Env) -> None:
    with env.http(env.admin) as http, unchanged(env):
        calls = [
            ("GET", f"{API}/events?after=1&after=2"),
            ("GET", f"{API}/events?limit=5&after=0&limit=6"),
            ("POST", f"{API}/tokens?name=one&name=two&role=viewer"),
            ("PUT", f"{API}/peer/{env.leader.id}/demo-online?online=true&online=false"),
            ("GET", "/healthz?x=1&x=2"),
        ]
        for method, path in calls:
            problem(http.request(method, path), 400, "invalid_request", "given more than once")
    with pytest.raises(InvalidStatus) as refused:  # and the watch socket's query
        connect(env.server.ws_url + "?after=1&after=2", additional_headers=env.server.headers(env.viewer),
                open_timeout=10).close()
    assert refused.value.response.status_code == 400
    assert b"given more than once" in (refused.value.response.body or b"")
