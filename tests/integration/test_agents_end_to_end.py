"""The control plane end to end, without root: a real ``lea-backend serve`` on 127.0.0.1 and real
``python -m lea_peer run --data-plane memory`` processes (tests/helpers/agent_process.py).

Auth (a token of another peer, a viewer token, a revoked token: exit 2 with one clear line), a
two-peer cluster deployed over HTTP to Deployed, a redeploy racing the first deploy (stale
generations dropped: the final state is consistent), the heartbeat timeout (SIGSTOP -> Offline,
SIGCONT -> back), a second agent replacing the first, reconnects through a misbehaving TCP proxy,
and backend restarts (SIGTERM and SIGKILL) with a deployed cluster: reconciled, nothing removed.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from resources import PeerDescriptor
from tests.helpers.agent_process import AgentProcess, ProxyThread, agent_process, wait_for
from tests.helpers.bench_api import AdminServer, BenchApi, Watcher, admin_server
from tests.helpers.server import ServerProcess, create_token, start_server

pytestmark = pytest.mark.timeout(180)

HEARTBEAT = "0.5"
TIMEOUT = "3"  # seconds of silence before Offline: generous, the machine is loaded
SERVE_ARGS = ["--agent-heartbeat", HEARTBEAT, "--agent-timeout", TIMEOUT]
CONNECTED = r"connected as peer"
RETRYING = r"connecting again in"


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminServer]:
    with admin_server(tmp_path_factory.mktemp("e2e") / "data", SERVE_ARGS) as running:
        yield running


@pytest.fixture
def server(backend: AdminServer) -> ServerProcess:
    return backend.process


@pytest.fixture
def api(backend: AdminServer) -> Iterator[BenchApi]:
    with backend.process.client(backend.admin) as http:
        yield BenchApi(http)


@pytest.fixture
def watcher(backend: AdminServer) -> Iterator[Watcher]:
    with Watcher(backend.process, backend.admin) as events:
        yield events


def exits_with(agent: AgentProcess, text: str) -> None:
    """The agent exits 2 and its last line (the one for the operator) contains ``text``."""
    code = agent.wait_exit()
    assert code == 2, agent.describe()
    assert agent.last_line().startswith("lea-peer: "), agent.describe()
    assert text in agent.last_line(), agent.describe()


def describe(api: BenchApi, cluster: Any, *agents: AgentProcess) -> Any:
    def text() -> str:
        return f"cluster state: {api.cluster_state(cluster)}\n" + "\n".join(a.describe() for a in agents)

    return text


def two_benches(api: BenchApi) -> tuple[PeerDescriptor, str, PeerDescriptor, str]:
    lead, member = api.new_peer("lead"), api.new_peer("member")
    return lead, api.token(lead), member, api.token(member)


# -- hello and auth --------------------------------------------------------------------------------
def test_a_token_of_another_peer_makes_the_agent_exit_2(server: ServerProcess, api: BenchApi, tmp_path: Path) -> None:
    mine, other = api.new_peer("mine"), api.new_peer("other")
    result = server.cli("token", "create", "--role", "peer", "--peer-id", str(mine.id), "--name", mine.name)
    assert result.returncode == 0, result.stderr
    with agent_process(tmp_path, server.url, other.id, result.stdout.strip()) as agent:
        exits_with(agent, f"the token is not a bench token for peer {other.id}")
        assert agent.count(RETRYING) == 0, "a final refusal is not retried"
    assert api.offline(other)


def test_a_viewer_token_makes_the_agent_exit_2(server: ServerProcess, api: BenchApi, tmp_path: Path) -> None:
    peer = api.new_peer("viewer")
    viewer = api.token(peer, name=f"vic-{peer.name}", role="viewer")
    with agent_process(tmp_path, server.url, peer.id, viewer) as agent:
        exits_with(agent, "is a viewer token, not a bench agent's (peer) token")
    assert api.offline(peer)


def test_revoking_the_token_closes_the_stream_and_the_agent_exits_2(
    server: ServerProcess, api: BenchApi, tmp_path: Path
) -> None:
    peer = api.new_peer("revoked")
    token = api.token(peer)
    with agent_process(tmp_path, server.url, peer.id, token, underlay="192.0.2.33") as agent:
        online = wait_for("online", lambda: (s := api.connection(peer))["status"] == "online" and s,
                          describe=agent.describe)
        assert online["remote_host"] == "192.0.2.33"
        assert online["agent"]["version"] and "vxlan" in online["agent"]["capabilities"]["tunnels"]
        api.revoke(peer.name)
        exits_with(agent, "the backend refused the token (the token was revoked)")
    wait_for("offline", lambda: api.offline(peer))


# -- configure and reports -------------------------------------------------------------------------
def test_a_two_peer_cluster_deploys_over_http(api: BenchApi, server: ServerProcess, tmp_path: Path) -> None:
    lead, lead_token, member, member_token = two_benches(api)
    with (
        agent_process(tmp_path, server.url, lead.id, lead_token, underlay="192.0.2.1") as a,
        agent_process(tmp_path, server.url, member.id, member_token, underlay="192.0.2.2") as b,
    ):
        wait_for("both online", lambda: api.online(lead) and api.online(member), describe=lambda: a.log() + b.log())
        cluster = api.add_cluster(lead, member)
        api.deploy(cluster.id)
        wait_for("deployed", lambda: api.status(cluster.id) == "deployed", describe=describe(api, cluster.id, a, b))
        for peer in (lead, member):
            assert api.consistent(peer), (api.configuration(peer), api.reports(peer))
        tunnel = next(
            p for p in (api.configuration(lead) or {})["parameters"] if p["kind"] == "gre_interface"
        )
        assert (tunnel["value"]["local"], tunnel["value"]["remote"]) == ("192.0.2.1", "192.0.2.2")
        details = [r["state"].get("detail") or "" for r in api.reports(lead)]
        assert any("simulated" in d for d in details), details  # the memory data plane says so
        api.undeploy(cluster.id)
        wait_for("undeployed", lambda: api.status(cluster.id) == "undeployed", describe=describe(api, cluster.id, a, b))
        for peer in (lead, member):
            assert set(api.reported(peer).values()) <= {"absent"}, api.reports(peer)
        assert a.alive() and b.alive()
        assert "(absent," in a.log(), "removals are logged so (the restart test relies on it)"


def test_a_redeploy_right_after_a_deploy_ends_consistent(
    api: BenchApi, server: ServerProcess, watcher: Watcher, tmp_path: Path
) -> None:
    lead, lead_token, member, member_token = two_benches(api)
    with (
        agent_process(tmp_path, server.url, lead.id, lead_token, underlay="192.0.2.1") as a,
        agent_process(tmp_path, server.url, member.id, member_token, underlay="192.0.2.2") as b,
    ):
        wait_for("both online", lambda: api.online(lead) and api.online(member), describe=lambda: a.log() + b.log())
        cluster = api.add_cluster(lead, member)
        api.deploy(cluster.id)
        api.deploy(cluster.id)  # a newer generation while the first is being applied and reported
        wait_for("deployed", lambda: api.status(cluster.id) == "deployed" and api.consistent(lead)
                 and api.consistent(member), describe=describe(api, cluster.id, a, b))
        # Undeploy and deploy again at once: the removal's reports must not end the new deployment.
        api.undeploy(cluster.id)
        api.deploy(cluster.id)
        wait_for("deployed again", lambda: api.status(cluster.id) == "deployed" and api.consistent(lead)
                 and api.consistent(member), describe=describe(api, cluster.id, a, b))
        assert a.count(r"configure generation") >= 2, a.log()
        api.undeploy(cluster.id)
        api.deploy(cluster.id)
        api.undeploy(cluster.id)
        wait_for("undeployed", lambda: api.status(cluster.id) == "undeployed", describe=describe(api, cluster.id, a, b))
        for peer in (lead, member):
            assert set(api.reported(peer).values()) <= {"absent"}, api.reports(peer)


def deployed_pair(api: BenchApi, a: AgentProcess, b: AgentProcess, lead: PeerDescriptor, member: PeerDescriptor) -> Any:
    wait_for("both online", lambda: api.online(lead) and api.online(member), describe=lambda: a.log() + b.log())
    cluster = api.add_cluster(lead, member)
    api.deploy(cluster.id)
    wait_for("deployed", lambda: api.status(cluster.id) == "deployed", describe=describe(api, cluster.id, a, b))
    return cluster.id


# -- losing the connection -------------------------------------------------------------------------
def test_a_frozen_agent_goes_offline_and_comes_back(
    api: BenchApi, server: ServerProcess, watcher: Watcher, tmp_path: Path
) -> None:
    lead, lead_token, member, member_token = two_benches(api)
    with (
        agent_process(tmp_path, server.url, lead.id, lead_token) as a,
        agent_process(tmp_path, server.url, member.id, member_token) as b,
    ):
        cluster = deployed_pair(api, a, b, lead, member)
        mark = watcher.mark()
        b.sigstop()  # no heartbeats any more: after the timeout the backend gives up on it
        try:
            wait_for("offline", lambda: api.offline(member), describe=describe(api, cluster, a, b))
        finally:
            b.sigcont()
        b.wait_for_log(CONNECTED, times=2)
        wait_for("online and deployed", lambda: api.online(member) and api.status(cluster) == "deployed",
                 describe=describe(api, cluster, a, b))
        assert "offline" in watcher.connection_statuses(member.id, mark)
        assert "absent" not in watcher.configured_targets(member.id), "nothing was to be removed"
        assert b.alive() and api.consistent(member)


def test_a_second_agent_for_the_same_peer_replaces_the_first(
    api: BenchApi, server: ServerProcess, tmp_path: Path
) -> None:
    peer = api.new_peer("twice")
    token = api.token(peer)
    with agent_process(tmp_path, server.url, peer.id, token, underlay="192.0.2.10") as first:
        wait_for("online", lambda: api.connection(peer).get("remote_host") == "192.0.2.10", describe=first.describe)
        with agent_process(tmp_path, server.url, peer.id, token, underlay="192.0.2.20") as second:
            exits_with(first, f"another agent connected as peer {peer.id} and replaced this one")
            wait_for("the newer agent", lambda: api.connection(peer).get("remote_host") == "192.0.2.20",
                     describe=second.describe)
            assert second.alive() and api.online(peer)
            assert second.count(CONNECTED) == 1


@pytest.mark.parametrize("misbehaviour", ["pause", "blackhole", "reset"])
def test_the_agent_reconnects_through_a_misbehaving_network(
    api: BenchApi, server: ServerProcess, watcher: Watcher, tmp_path: Path, misbehaviour: str
) -> None:
    lead, lead_token, member, member_token = two_benches(api)
    port = int(server.url.rsplit(":", 1)[1])
    with (
        ProxyThread("127.0.0.1", port) as proxy,
        agent_process(tmp_path, server.url, lead.id, lead_token) as a,
        agent_process(tmp_path, proxy.url, member.id, member_token) as b,
    ):
        cluster = deployed_pair(api, a, b, lead, member)
        mark = watcher.mark()
        getattr(proxy, misbehaviour)()
        wait_for("offline", lambda: "offline" in watcher.connection_statuses(member.id, mark),
                 describe=describe(api, cluster, a, b))
        proxy.resume()
        b.wait_for_log(CONNECTED, times=2)
        wait_for("online and deployed again", lambda: api.online(member) and api.status(cluster) == "deployed"
                 and api.consistent(member), describe=describe(api, cluster, a, b))
        assert b.alive() and b.count(RETRYING) >= 1
        assert "absent" not in watcher.configured_targets(member.id), "nothing was to be removed"


# -- backend restarts ------------------------------------------------------------------------------
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_restarted_backend_reconciles_the_deployed_cluster_and_nothing_is_removed(
    tmp_path: Path, how: signal.Signals
) -> None:
    data_dir = tmp_path / "data"
    admin = create_token(data_dir, "admin", "root")
    server = start_server(data_dir, extra_args=SERVE_ARGS)
    port = int(server.url.rsplit(":", 1)[1])
    try:
        with server.client(admin) as http:
            api = BenchApi(http)
            lead, lead_token, member, member_token = two_benches(api)
        with (
            agent_process(tmp_path, server.url, lead.id, lead_token, underlay="192.0.2.1") as a,
            agent_process(tmp_path, server.url, member.id, member_token, underlay="192.0.2.2") as b,
        ):
            with server.client(admin) as http:
                cluster = deployed_pair(BenchApi(http), a, b, lead, member)
            if how is signal.SIGTERM:
                assert server.stop() == 0
            else:
                server.kill()
            for agent in (a, b):
                agent.wait_for_log(RETRYING)  # it retries and does not exit (e.g. on uvicorn's close 1012)
                assert agent.alive(), agent.describe()
            server = start_server(data_dir, port=port, extra_args=SERVE_ARGS)
            with server.client(admin) as http, Watcher(server, admin) as watcher:
                api = BenchApi(http)
                for agent in (a, b):
                    agent.wait_for_log(CONNECTED, times=2)
                wait_for("reconciled to deployed", lambda: api.status(cluster) == "deployed"
                         and api.consistent(lead) and api.consistent(member), describe=describe(api, cluster, a, b))
                for peer in (lead, member):
                    assert "absent" not in watcher.configured_targets(peer.id), "the backend asked for a removal"
            for agent in (a, b):
                assert agent.alive(), agent.describe()
                # The agent never removed anything: no Absent parameter applied, no link swept.
                assert "(absent," not in agent.log() and "swept" not in agent.log(), agent.describe()
                assert agent.count(r"configure generation \d+ \(0 parameters\)") == 0, agent.describe()
                closes = [line for line in agent.log().splitlines() if RETRYING in line]
                print(f"the agent saw the backend go away as: {closes[0]}")
    finally:
        server.stop(check=False)
