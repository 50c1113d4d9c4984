"""RemoteConnection's mapping of HTTP answers to LEA's errors (httpx MockTransport, no server).

A typed problem becomes the same LeaError the embedded backend raises; a proxy's "bad gateway"
page while the server restarts is a lost connection (the sync engine resumes), not an error that
would stop syncing for good.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from uuid import uuid4

import httpx
import pytest

from lea_app.connection.base import ConnectionLost
from lea_app.connection.remote import RemoteConnection, normalise_url
from resources.errors import LeaError, NotFound, StorageFailed, Unauthorized

URL = "http://lea.example.org:8421"


def connection(handler: Callable[[httpx.Request], httpx.Response]) -> RemoteConnection:
    remote = RemoteConnection(URL, "lea_token")
    remote._client = httpx.AsyncClient(
        base_url=remote.url, headers=remote._client.headers, transport=httpx.MockTransport(handler)
    )
    return remote


def snapshot_with(response: httpx.Response) -> object:
    async def go() -> object:
        remote = connection(lambda request: response)
        try:
            return await remote.fetch_snapshot()
        finally:
            await remote.close()

    return asyncio.run(go())


def problem(status: int, code: str, detail: str) -> httpx.Response:
    body = {"type": "about:blank", "title": code, "status": status, "detail": detail, "code": code, "details": {}}
    return httpx.Response(status, json=body, headers={"Content-Type": "application/problem+json"})


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_gateway_error_page_is_a_lost_connection(status: int) -> None:
    with pytest.raises(ConnectionLost, match=f"HTTP {status}"):
        snapshot_with(httpx.Response(status, text="<html><body>Bad Gateway</body></html>"))


def test_a_typed_problem_is_the_typed_error() -> None:
    with pytest.raises(StorageFailed, match="disk full"):
        snapshot_with(problem(503, "storage_failed", "disk full"))
    with pytest.raises(NotFound, match="no such peer"):
        snapshot_with(problem(404, "not_found", "no such peer"))


def test_a_bare_401_is_unauthorized() -> None:
    with pytest.raises(Unauthorized):
        snapshot_with(httpx.Response(401, text="nope"))


def test_an_unreadable_answer_is_a_clear_error() -> None:
    with pytest.raises(LeaError, match="unreadable answer"):
        snapshot_with(httpx.Response(200, text="<html>login page</html>"))


def test_a_snapshot_that_does_not_validate_is_a_clear_error_naming_the_field() -> None:
    body = {"epoch": "e1", "revision": -1, "schema_version": 3, "resources": []}
    with pytest.raises(LeaError, match=r"snapshot.*revision"):
        snapshot_with(httpx.Response(200, json=body))


def test_a_valid_snapshot_is_read_with_its_resources() -> None:
    from resources.events import StateSnapshot
    from tests.helpers.factories import make_peer

    peer = make_peer("bench-01", devices=2)
    sent = StateSnapshot(epoch="e1", revision=4, resources=(peer,))
    got = snapshot_with(httpx.Response(200, content=sent.model_dump_json().encode()))
    assert got == sent


def test_writes_send_the_preconditions() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"revision": 7, "version": 3, "id": None})

    async def go() -> None:
        remote = connection(handler)
        try:
            result = await remote.delete_cluster_descriptor(uuid4(), expected_version=2)
            assert (result.revision, result.version) == (7, 3)
        finally:
            await remote.close()

    asyncio.run(go())
    assert seen[0].method == "DELETE" and seen[0].headers["If-Match"] == '"2"'
    assert seen[0].headers["Authorization"] == "Bearer lea_token"


def test_normalise_url() -> None:
    assert normalise_url("lea.example.org:8421/") == "http://lea.example.org:8421"
    assert normalise_url(" https://lea.example.org ") == "https://lea.example.org"
    with pytest.raises(LeaError, match="not a server address"):
        normalise_url("ftp://lea.example.org")


def test_the_address_is_the_server_url_as_the_connection_dialog_shows_it() -> None:
    remote = RemoteConnection("lea.example.org:8421/", None)
    try:
        assert remote.address == URL
    finally:
        asyncio.run(remote.close())


def test_a_list_of_servers_moves_on_from_a_standby_and_an_unreachable_one() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "a.example.org":
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.host == "b.example.org":
            return problem(503, "standby", "this server is the standby")
        return httpx.Response(200, json={"revision": 7, "version": 1, "id": str(uuid4())})

    async def go() -> None:
        remote = RemoteConnection("a.example.org:8421, https://b.example.org:8421/,c.example.org:8421", "t")
        assert remote.urls == ["http://a.example.org:8421", "https://b.example.org:8421", "http://c.example.org:8421"]
        remote._client = httpx.AsyncClient(headers=remote._client.headers, transport=httpx.MockTransport(handler))
        try:
            result = await remote.delete_cluster_deployment(uuid4())
            assert result.revision == 7 and remote.url == "http://c.example.org:8421"
            assert seen == ["a.example.org", "b.example.org", "c.example.org"]
            await remote.delete_cluster_deployment(uuid4())  # stays on the one that answered
            assert seen[-1] == "c.example.org" and remote.switches == 2
        finally:
            await remote.close()

    asyncio.run(go())


def test_only_standbys_is_a_lost_connection_and_a_write_cut_mid_way_is_not_sent_again() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "a.example.org":
            raise httpx.ReadError("connection reset", request=request)
        return problem(503, "standby", "this server is the standby")

    async def go() -> None:
        remote = RemoteConnection("a.example.org:8421,b.example.org:8421", "t")
        remote._client = httpx.AsyncClient(headers=remote._client.headers, transport=httpx.MockTransport(handler))
        try:
            with pytest.raises(ConnectionLost, match=r"cannot reach http://a\.example\.org"):
                await remote.delete_cluster_deployment(uuid4())  # it may have arrived: not sent again
            assert seen == ["a.example.org"]
            with pytest.raises(ConnectionLost, match="no active server"):
                await remote.fetch_snapshot()  # a read goes on: b is a standby, and so is every other
            assert seen == ["a.example.org", "a.example.org", "b.example.org"]
        finally:
            await remote.close()

    asyncio.run(go())


def test_normalise_urls_is_the_canonical_list() -> None:
    from lea_app.connection.remote import normalise_urls

    assert normalise_urls(" a.lab:8421 , https://b.lab:8421/ ,a.lab:8421") == "http://a.lab:8421,https://b.lab:8421"
    assert normalise_urls("https://a.lab") == "https://a.lab"  # one server: as before (the saved token's key)
    with pytest.raises(LeaError, match="not a server address"):
        normalise_urls(" , ")
    with pytest.raises(LeaError, match="not a server address: 'ftp://b'"):
        normalise_urls("a.lab:1,ftp://b")
