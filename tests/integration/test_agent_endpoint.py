"""``WS /api/v1/peer/connect`` on a real ``lea-backend serve``, with a raw agent (tests/helpers/agent_client.py).

Hello and auth, configure and reports (a stale generation dropped), heartbeat timeout, a newer
connection replacing the old, a deleted peer, a revoked token, and a backend restart with a
deployed cluster (reconciled, not torn down).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from resources.agent import PROTOCOL, CloseCode, Configure, Heartbeat, TunnelType
from resources.configuration import ParameterAbsent, ParameterKind, ParameterPresent, PeerConfiguration, Target
from resources.peer import PeerDescriptor
from tests.helpers.agent_client import VXLAN_ONLY, RawAgent, agent_connection, applied
from tests.helpers.factories import make_cluster, make_peer
from tests.helpers.server import ServerProcess, create_token, start_server

T = TypeVar("T")
HEARTBEAT = 0.4  # seconds: the silence timeout is 3 of them
API = "/api/v1"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("agents") / "data"
    admin = create_token(data_dir, "admin", "root")
    process = start_server(data_dir, extra_args=["--agent-heartbeat", str(HEARTBEAT)])
    process.admin = admin  # type: ignore[attr-defined]
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client(server.admin) as client:  # type: ignore[attr-defined]
        yield client


def wait_for(what: str, fn: Callable[[], T | None], timeout: float = 20.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def add_peer(http: httpx.Client, peer: PeerDescriptor) -> PeerDescriptor:
    http.put(f"{API}/peer/{peer.id}", content=peer.model_dump_json(), headers=JSON).raise_for_status()
    return peer


def peer_token(http: httpx.Client, peer: PeerDescriptor, name: str | None = None) -> str:
    response = http.post(f"{API}/tokens", params={"name": name or peer.name, "role": "peer", "peer_id": str(peer.id)})
    response.raise_for_status()
    return str(response.json()["token"])


def get(http: httpx.Client, kind: str, id: uuid.UUID) -> dict[str, Any] | None:
    response = http.get(f"{API}/{kind}/{id}")
    if response.status_code == 404:
        return None
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def connection(http: httpx.Client, peer: PeerDescriptor) -> dict[str, Any]:
    state = get(http, "peer_connection_state", peer.id)
    return state["state"] if state else {"status": "offline"}


def cluster_status(http: httpx.Client, cluster_id: uuid.UUID) -> str | None:
    state = get(http, "cluster_state", cluster_id)
    return state["state"]["status"] if state else None


def bench(http: httpx.Client, name: str) -> tuple[PeerDescriptor, str]:
    peer = add_peer(http, make_peer(f"{name}-{uuid.uuid4().hex[:6]}", devices=1))
    return peer, peer_token(http, peer)


# -- hello and auth --------------------------------------------------------------------------------
def test_hello_brings_the_peer_online_with_its_agent(server: ServerProcess, http: httpx.Client) -> None:
    peer, token = bench(http, "hello")
    with agent_connection(server, token) as agent:
        welcome = agent.hello(peer.id, underlay="198.51.100.7", capabilities=VXLAN_ONLY, version="lea-peer 1.2")
        assert (welcome.heartbeat_s, welcome.timeout_s) == (HEARTBEAT, 3 * HEARTBEAT)
        state = wait_for("online", lambda: (s := connection(http, peer))["status"] == "online" and s)
        assert state["remote_host"] == "198.51.100.7"
        assert state["agent"] == {"version": "lea-peer 1.2", "capabilities": VXLAN_ONLY.model_dump(mode="json")}
        assert isinstance(agent.receive(), Heartbeat)  # the backend beats too
        agent.bye()
        assert agent.closed()[0] == 1000
    wait_for("offline", lambda: connection(http, peer)["status"] == "offline")


@pytest.mark.parametrize(
    ("token", "code"), [(None, CloseCode.BAD_CREDENTIALS), ("lea_unknown", CloseCode.BAD_CREDENTIALS)]
)
def test_a_missing_or_unknown_token_is_refused(
    server: ServerProcess, http: httpx.Client, token: str | None, code: CloseCode
) -> None:
    bench(http, "anon")
    with agent_connection(server, token) as agent:  # closed before any message: nothing is looked at
        assert agent.closed()[0] == code


def test_a_viewer_token_is_not_a_peer_token(server: ServerProcess, http: httpx.Client) -> None:
    peer, _ = bench(http, "viewer")
    viewer = http.post(f"{API}/tokens", params={"name": f"vic-{peer.name}", "role": "viewer"}).json()["token"]
    with agent_connection(server, viewer) as agent:
        code, reason = agent.closed()
    assert code == CloseCode.WRONG_PEER and "viewer" in reason


def test_a_token_of_another_peer_is_refused(server: ServerProcess, http: httpx.Client) -> None:
    _, token = bench(http, "mine")
    other, _ = bench(http, "other")
    with agent_connection(server, token) as agent:
        agent.send_text(json.dumps({"type": "hello", "protocol": PROTOCOL, "peer_id": str(other.id),
                                    "agent_version": "x", "underlay_address": "192.0.2.1"}))
        assert agent.closed()[0] == CloseCode.WRONG_PEER
    assert connection(http, other)["status"] == "offline"


def test_other_protocols_bad_messages_and_silence_are_refused(server: ServerProcess, http: httpx.Client) -> None:
    peer, token = bench(http, "proto")
    with agent_connection(server, token) as agent:
        agent.send_text(json.dumps({"type": "hello", "protocol": PROTOCOL + 1, "peer_id": str(peer.id)}))
        assert agent.closed()[0] == CloseCode.UNSUPPORTED
    with agent_connection(server, token) as agent:
        agent.send_text('{"type": "report", "generation": -1}')
        code, reason = agent.closed()
        assert code == CloseCode.BAD_MESSAGE and "not a valid message" in reason
    with agent_connection(server, token) as agent:
        agent.heartbeat()
        code, reason = agent.closed()
        assert code == CloseCode.BAD_MESSAGE and "must be a hello" in reason
    with agent_connection(server, token) as agent:  # says nothing at all
        code, reason = agent.closed()
        assert code == CloseCode.BAD_MESSAGE and "no hello within" in reason


def test_a_message_over_1_mib_is_refused(server: ServerProcess, http: httpx.Client) -> None:
    peer, token = bench(http, "big")
    with agent_connection(server, token) as agent:  # 100 KiB passes the size check (the watch's is 4 KiB)
        agent.hello(peer.id)
        agent.send_text(json.dumps({"type": "bye", "reason": "x" * 100_000}))
        code, reason = agent.closed()
        assert code == CloseCode.BAD_MESSAGE and "reason" in reason
    with agent_connection(server, token) as agent:
        agent.hello(peer.id)
        agent.send_text(json.dumps({"type": "bye", "reason": "x" * (1024 * 1024)}))
        assert agent.closed()[0] == CloseCode.MESSAGE_TOO_BIG


def test_a_missing_or_demo_peer_is_refused(server: ServerProcess, http: httpx.Client) -> None:
    demo = add_peer(http, make_peer(f"demo-{uuid.uuid4().hex[:6]}", demo=True))
    for peer_id, name in ((demo.id, "demo-agent"), (uuid.uuid4(), "ghost-agent")):
        response = http.post(f"{API}/tokens", params={"name": name, "role": "peer", "peer_id": str(peer_id)})
        with agent_connection(server, response.json()["token"]) as agent:
            agent.send_text(json.dumps({"type": "hello", "protocol": PROTOCOL, "peer_id": str(peer_id),
                                        "agent_version": "x", "underlay_address": "192.0.2.1"}))
            assert agent.closed()[0] == CloseCode.PEER_DELETED


def test_a_peer_token_passes_no_rest_or_watch_check(server: ServerProcess, http: httpx.Client) -> None:
    peer, token = bench(http, "rest")
    with server.client(token) as client:
        refused = client.get(f"{API}/whoami")
    assert refused.status_code == 403 and "bench agent's token" in refused.json()["detail"]
    with pytest.raises(InvalidStatus) as watch:
        server.watch(token).close()
    assert watch.value.response.status_code == 403
    rows = {row["name"]: row for row in http.get(f"{API}/tokens").json()}
    assert rows[peer.name]["peer_id"] == str(peer.id) and rows[peer.name]["role"] == "peer"
    assert rows["root"]["peer_id"] is None


def test_token_creation_checks_the_peer_binding(http: httpx.Client) -> None:
    missing = http.post(f"{API}/tokens", params={"name": "nopeer", "role": "peer"})
    assert missing.status_code == 422 and "bound to one peer" in missing.json()["detail"]
    extra = http.post(f"{API}/tokens", params={"name": "ed", "role": "editor", "peer_id": str(uuid.uuid4())})
    assert extra.status_code == 422 and "takes no peer id" in extra.json()["detail"]


# -- while connected -------------------------------------------------------------------------------
def test_revoking_the_token_closes_the_stream(server: ServerProcess, http: httpx.Client) -> None:
    peer, token = bench(http, "revoked")
    with agent_connection(server, token) as agent:
        agent.hello(peer.id)
        http.delete(f"{API}/tokens/{peer.name}").raise_for_status()
        assert agent.closed()[0] == CloseCode.BAD_CREDENTIALS
    wait_for("offline", lambda: connection(http, peer)["status"] == "offline")


def test_silence_means_offline(server: ServerProcess, http: httpx.Client) -> None:
    peer, token = bench(http, "silent")
    with agent_connection(server, token) as agent:
        agent.hello(peer.id)
        wait_for("online", lambda: connection(http, peer)["status"] == "online")
        code, reason = agent.closed()  # never answers: no heartbeat of its own
        assert code == CloseCode.TIMEOUT and "nothing heard" in reason
    wait_for("offline", lambda: connection(http, peer)["status"] == "offline")


def test_a_newer_connection_replaces_the_older(server: ServerProcess, http: httpx.Client) -> None:
    peer, token = bench(http, "twice")
    with agent_connection(server, token) as first:
        first.hello(peer.id, underlay="192.0.2.10")
        with agent_connection(server, token) as second:
            second.hello(peer.id, underlay="192.0.2.20")
            assert first.closed()[0] == CloseCode.REPLACED
            wait_for("the newer address", lambda: connection(http, peer).get("remote_host") == "192.0.2.20")
            second.heartbeat()
            time.sleep(0)  # the old link's end must not take the peer offline
            assert connection(http, peer)["status"] == "online"
            second.bye()


def test_deleting_the_peer_closes_the_stream(server: ServerProcess, http: httpx.Client) -> None:
    peer, token = bench(http, "deleted")
    with agent_connection(server, token) as agent:
        agent.hello(peer.id)
        wait_for("online", lambda: connection(http, peer)["status"] == "online")
        http.delete(f"{API}/peer/{peer.id}").raise_for_status()
        assert agent.closed()[0] == CloseCode.PEER_DELETED


# -- configure and reports -------------------------------------------------------------------------
def _deploy_two(http: httpx.Client) -> tuple[PeerDescriptor, str, PeerDescriptor, str, uuid.UUID]:
    lead, lead_token = bench(http, "lead")
    member, member_token = bench(http, "member")
    cluster = make_cluster(f"c-{uuid.uuid4().hex[:6]}", lead, member)
    http.put(f"{API}/cluster/{cluster.id}", content=cluster.model_dump_json(), headers=JSON).raise_for_status()
    http.put(f"{API}/cluster/{cluster.id}/deployment").raise_for_status()
    return lead, lead_token, member, member_token, cluster.id


def _beating(agents: list[RawAgent], until: Callable[[], bool], timeout: float = 20.0) -> None:
    """Keep the agents alive (heartbeats) until ``until`` holds."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "timed out"
        for agent in agents:
            agent.heartbeat()
        time.sleep(0.05)


def _reports_of(watch: Any, peer: uuid.UUID, until: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    """The peer's PeerConfigurationState events seen on a watch socket until ``until`` holds for them."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20
    while not until(seen):
        assert time.monotonic() < deadline, seen
        message = ServerProcess.receive(watch)
        for event in message.get("events", ()) if message["type"] == "events" else ():
            if event["kind"] == "peer_configuration_state" and event["id"] == str(peer) and event["resource"]:
                seen.append(event["resource"])
    return seen


def test_configure_reports_and_a_stale_generation(server: ServerProcess, http: httpx.Client) -> None:
    lead, lead_token, member, member_token, cluster_id = _deploy_two(http)
    with (
        server.watch(server.admin) as watch,  # type: ignore[attr-defined]
        agent_connection(server, lead_token) as a,
        agent_connection(server, member_token) as b,
    ):
        a.hello(lead.id, capabilities=VXLAN_ONLY)
        b.hello(member.id, underlay="192.0.2.2")
        first_a, first_b = a.expect(Configure), b.expect(Configure)
        gre = next(p for p in first_a.configuration.parameters if p.kind == ParameterKind.GRE_INTERFACE)
        assert gre.value["encapsulation"] == TunnelType.VXLAN and gre.value["remote"] == "192.0.2.2"
        assert gre.value["port"] == 4789 and gre.value["mtu"] == 1450 and int(gre.value["vni"]) >= 1
        # Redeploy: a newer generation; a report of the first one is then dropped.
        http.put(f"{API}/cluster/{cluster_id}/deployment").raise_for_status()
        newer_a = a.expect(Configure)
        assert newer_a.generation > first_a.generation
        a.report(first_a.generation, applied(first_a.configuration, ParameterAbsent()))  # stale
        fresh = applied(newer_a.configuration, ParameterPresent(detail="fresh"))
        a.report(newer_a.generation, fresh)
        seen = _reports_of(
            watch, lead.id, lambda s: any(p["state"].get("detail") == "fresh" for r in s for p in r["parameters"])
        )
        assert not any(p["state"]["status"] == "absent" for r in seen for p in r["parameters"]), seen
        b.report(first_b.generation, applied(first_b.configuration))  # b's newest may not be there yet
        deadline = time.monotonic() + 20
        while cluster_status(http, cluster_id) != "deployed":
            assert time.monotonic() < deadline, cluster_status(http, cluster_id)
            a.heartbeat()
            try:
                message = b.receive(timeout=0.1)
            except TimeoutError:
                continue
            if isinstance(message, Configure):
                b.report(message.generation, applied(message.configuration))


def test_undeploy_waits_for_an_offline_agent_until_it_reports_absent(server: ServerProcess, http: httpx.Client) -> None:
    lead, lead_token, member, member_token, cluster_id = _deploy_two(http)
    with agent_connection(server, lead_token) as a:
        a.hello(lead.id)
        with agent_connection(server, member_token) as b:
            b.hello(member.id)
            held: dict[uuid.UUID, PeerConfiguration] = {}
            for agent in (a, b):
                message = agent.expect(Configure)
                held[message.configuration.id] = message.configuration
                agent.report(message.generation, applied(message.configuration))
            _beating([a, b], lambda: cluster_status(http, cluster_id) == "deployed")
            b.bye()
            b.closed()
        wait_for("member offline", lambda: connection(http, member)["status"] == "offline")
        http.delete(f"{API}/cluster/{cluster_id}/deployment").raise_for_status()
        removal = a.expect(Configure)
        assert {p.target for p in removal.configuration.parameters} == {Target.ABSENT}
        a.report(removal.generation, applied(removal.configuration))

        def undeploying_for_member() -> bool:
            state = get(http, "cluster_state", cluster_id)
            return state is not None and state["state"].get("waiting_for") == [str(member.id)]

        _beating([a], undeploying_for_member)
        time.sleep(3 * HEARTBEAT)  # past what would be a timeout: still waiting, not failed
        assert cluster_status(http, cluster_id) == "undeploying"
        with agent_connection(server, member_token) as b:
            b.hello(member.id, applied=applied(held[member.id]))  # it still holds the deployment
            absent = b.expect(Configure)
            assert {p.target for p in absent.configuration.parameters} == {Target.ABSENT}
            b.report(absent.generation, applied(absent.configuration))
            deadline = time.monotonic() + 20
            while cluster_status(http, cluster_id) != "undeployed":
                assert time.monotonic() < deadline, get(http, "cluster_state", cluster_id)
                a.heartbeat()
                try:
                    incoming = b.receive(timeout=0.1)
                except TimeoutError:
                    continue
                if isinstance(incoming, Configure):
                    b.report(incoming.generation, applied(incoming.configuration))


def test_a_restarted_backend_reconciles_a_deployed_cluster(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    admin = create_token(data_dir, "admin", "root")
    process = start_server(data_dir, extra_args=["--agent-heartbeat", "2"])
    try:
        with process.client(admin) as http:
            lead, lead_token, member, member_token, cluster_id = _deploy_two(http)
            with agent_connection(process, lead_token) as a, agent_connection(process, member_token) as b:
                a.hello(lead.id)
                b.hello(member.id)
                configured: dict[uuid.UUID, PeerConfiguration] = {}
                for agent in (a, b):
                    message = agent.expect(Configure)
                    configured[message.configuration.id] = message.configuration
                    agent.report(message.generation, applied(message.configuration))
                wait_for("deployed", lambda: cluster_status(http, cluster_id) == "deployed")
        process.stop()
        port = int(process.url.rsplit(":", 1)[1])
        process = start_server(data_dir, port=port, extra_args=["--agent-heartbeat", "2"])
        with (
            process.client(admin) as http,
            agent_connection(process, lead_token) as a,
            agent_connection(process, member_token) as b,
        ):
            seen: list[Configure] = []
            for agent, peer in ((a, lead), (b, member)):
                agent.hello(peer.id, applied=applied(configured[peer.id]))
            for agent in (a, b):
                message = agent.expect(Configure)
                seen.append(message)
                agent.report(message.generation, applied(message.configuration))
            _beating([a, b], lambda: cluster_status(http, cluster_id) == "deployed")
            # Reconciled: the same configuration again, nothing torn down.
            assert all(p.target == Target.PRESENT for m in seen for p in m.configuration.parameters)
            assert all(m.configuration == configured[m.configuration.id] for m in seen)
    finally:
        process.stop()
