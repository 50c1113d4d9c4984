"""Real benches end to end, as root: a real ``lea-backend serve`` on 127.0.0.1 and two real agents
(``python -m lea_peer run --data-plane netlink --netns PEER_NS``, in the root namespace) configuring
network namespaces this test creates and always deletes (tests/helpers/netns.py):

    ECU A (ea) --veth-- peer A (pa) ==underlay veth, MTU 1550== peer B (pb) --veth-- ECU B (eb)

Peers are created over HTTP with their device interface's name, the cluster is deployed over HTTP,
and then ECU A reaches ECU B with a UDP echo through the tunnel (a full 1500-byte packet too), the
leader's RemotePeerCheck reports Present, and an undeploy removes every marked link in both peer
namespaces (the echo fails again). An agent killed with SIGKILL (mid-deploy or once deployed)
while the cluster is undeployed is restarted and leaves no orphan. Skips only where the agent's
probe says the kernel lacks something (namespaces; gretap), printing the reason.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from lea_peer.probe import probe_capabilities
from lea_peer.remote_check import PROBE_PORT_PREFIX
from resources import Device, EthernetConfiguration, NetworkInterface, PeerDescriptor
from resources.agent import Capabilities, TunnelType
from tests.helpers.agent_process import AgentProcess, agent_process, start_agent, wait_for
from tests.helpers.bench_api import AdminServer, BenchApi, admin_server
from tests.helpers.echo import FULL_FRAME_PAYLOAD, udp_echo, udp_echo_server
from tests.helpers.netns import links, namespaces, namespaces_supported, sweep_leftovers, veth
from tests.helpers.server import ServerProcess

_UNSUPPORTED = namespaces_supported()
pytestmark = [
    pytest.mark.skipif(_UNSUPPORTED is not None, reason=_UNSUPPORTED or ""),
    pytest.mark.timeout(240),
]

DEVICE = "ecu0"
UNDERLAY = ("10.99.0.1", "10.99.0.2")
ECU = ("192.168.77.1", "192.168.77.2")
SERVE_ARGS = ["--agent-heartbeat", "1", "--agent-timeout", "5"]


@pytest.fixture(scope="module", autouse=True)
def _no_leftover_namespaces() -> Iterator[None]:
    sweep_leftovers()  # what a killed earlier run left behind
    yield
    sweep_leftovers()


@pytest.fixture(scope="module")
def capabilities() -> Capabilities:
    return asyncio.run(probe_capabilities())


def needs(capabilities: Capabilities, tunnel: TunnelType) -> None:
    if tunnel not in capabilities.tunnels:
        found = [t.value for t in capabilities.tunnels]
        reason = f"the kernel cannot create {tunnel.value} links (the probe found {found})"
        print(f"SKIP: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminServer]:
    with admin_server(tmp_path_factory.mktemp("benches") / "data", SERVE_ARGS) as running:
        yield running


@pytest.fixture
def server(backend: AdminServer) -> ServerProcess:
    return backend.process


@pytest.fixture
def api(backend: AdminServer) -> Iterator[BenchApi]:
    with backend.process.client(backend.admin) as http:
        yield BenchApi(http)


@dataclass(frozen=True)
class Bench:
    peer: PeerDescriptor
    token: str
    netns: str  # the peer's namespace (the agent configures it)
    ecu_netns: str  # the ECU's, behind the peer's device interface
    underlay: str
    ecu: str


@pytest.fixture
def benches(api: BenchApi) -> Iterator[tuple[Bench, Bench]]:
    """Two benches: their namespaces wired up, their peers created over HTTP (A leads)."""
    with namespaces("pa", "pb", "ea", "eb") as (pa, pb, ea, eb):
        veth(pa, "u0", pb, "u0", mtu=1550, address_a=f"{UNDERLAY[0]}/24", address_b=f"{UNDERLAY[1]}/24")
        veth(pa, DEVICE, ea, "eth0", address_b=f"{ECU[0]}/24")
        veth(pb, DEVICE, eb, "eth0", address_b=f"{ECU[1]}/24")
        made = []
        for name, ns, ecu_ns, underlay, ecu in (("a", pa, ea, UNDERLAY[0], ECU[0]), ("b", pb, eb, UNDERLAY[1], ECU[1])):
            peer = api.add_peer(bench_peer(f"bench-{name}-{uuid.uuid4().hex[:6]}"))
            made.append(Bench(peer, api.token(peer), ns, ecu_ns, underlay, ecu))
        yield made[0], made[1]


def bench_peer(name: str) -> PeerDescriptor:
    iface = NetworkInterface(id=uuid.uuid4(), name=DEVICE, configuration=EthernetConfiguration())
    device = Device(id=uuid.uuid4(), name="ecu", interface=iface.id)
    return PeerDescriptor(id=uuid.uuid4(), name=name, interfaces=(iface,), devices=(device,))


def start(tmp_path: Path, server: ServerProcess, bench: Bench) -> AgentProcess:
    return start_agent(tmp_path, server.url, bench.peer.id, bench.token, underlay=bench.underlay,
                       data_plane="netlink", netns=bench.netns, verbose=False)


def marked(ns: str) -> dict[str, str]:
    """The links the agents own in ``ns``: name -> ownership marker. The running agent's probe port
    (a non-persistent tap carrying its bridge's marker, gone with the bridge or the agent) is not
    a link of the configuration and is left out."""
    return {
        name: alias
        for name, alias in links(ns).items()
        if alias.startswith("lea:") and not name.startswith(PROBE_PORT_PREFIX)
    }


def echo(a: Bench, b: Bench, size: int = 64, attempts: int = 3) -> bool:
    with udp_echo_server(b.ecu_netns, b.ecu):
        return udp_echo(a.ecu_netns, b.ecu, size, 2.0, attempts)


def describe(api: BenchApi, cluster: UUID, *agents: AgentProcess) -> Any:
    def text() -> str:
        return f"cluster state: {api.cluster_state(cluster)}\n" + "\n".join(a.describe() for a in agents)

    return text


def parameter(api: BenchApi, peer: PeerDescriptor, kind: str) -> dict[str, Any]:
    configuration = api.configuration(peer) or {"parameters": []}
    return next(p for p in configuration["parameters"] if p["kind"] == kind)


def online(api: BenchApi, benches: tuple[Bench, ...], agents: tuple[AgentProcess, ...]) -> None:
    wait_for("agents online", lambda: all(api.online(b.peer) for b in benches),
             describe=lambda: "\n".join(a.describe() for a in agents))


@pytest.mark.parametrize("encapsulation", [TunnelType.VXLAN, TunnelType.GRETAP])
def test_a_deployed_cluster_lets_the_ecus_talk_and_undeploy_removes_every_marked_link(
    api: BenchApi, server: ServerProcess, benches: tuple[Bench, Bench], capabilities: Capabilities,
    tmp_path: Path, encapsulation: TunnelType,
) -> None:
    needs(capabilities, encapsulation)
    a, b = benches
    assert not echo(a, b, attempts=1), "the ECUs must not reach each other before the deployment"
    with (
        agent_process(tmp_path, server.url, a.peer.id, a.token, underlay=a.underlay, data_plane="netlink",
                      netns=a.netns, verbose=False) as agent_a,
        agent_process(tmp_path, server.url, b.peer.id, b.token, underlay=b.underlay, data_plane="netlink",
                      netns=b.netns, verbose=False) as agent_b,
    ):
        online(api, (a, b), (agent_a, agent_b))
        announced = api.connection(a.peer)["agent"]["capabilities"]
        assert announced["underlay_mtu"] == 1550 and encapsulation.value in announced["tunnels"], announced
        cluster = api.add_cluster(a.peer, b.peer).id
        api.deploy(cluster)
        wait_for("deployed", lambda: api.status(cluster) == "deployed",
                 describe=describe(api, cluster, agent_a, agent_b))

        tunnel = parameter(api, a.peer, "gre_interface")["value"]
        assert (tunnel["encapsulation"], tunnel["mtu"]) == (encapsulation.value, 1500), tunnel
        assert (tunnel["local"], tunnel["remote"]) == (a.underlay, b.underlay)
        check = parameter(api, a.peer, "remote_peer_check")
        states = {r["id"]: r["state"] for r in api.reports(a.peer)}
        assert states[check["id"]]["status"] == "present", states[check["id"]]
        assert str(b.peer.id) in (states[check["id"]].get("detail") or "")
        for bench in (a, b):
            assert api.consistent(bench.peer), api.reports(bench.peer)
            assert set(marked(bench.netns)) == {"br-lea", parameter(api, bench.peer, "gre_interface")["value"]["name"]}

        assert echo(a, b), "a small UDP echo from ECU A to ECU B across the tunnel"
        assert echo(a, b, FULL_FRAME_PAYLOAD), "a full 1500-byte packet (tunnel MTU 1500 over a 1550 underlay)"

        api.undeploy(cluster)
        wait_for("undeployed", lambda: api.status(cluster) == "undeployed",
                 describe=describe(api, cluster, agent_a, agent_b))
        for bench in (a, b):
            assert marked(bench.netns) == {}, links(bench.netns)
            assert DEVICE in links(bench.netns), "a device interface is never deleted"
        assert not echo(a, b, attempts=1), "no echo once the tunnel is gone"
        assert agent_a.alive() and agent_b.alive()


@pytest.mark.parametrize("when", ["mid-deploy", "after-deploy"])
def test_an_agent_killed_with_sigkill_and_restarted_after_an_undeploy_leaves_no_orphan(
    api: BenchApi, server: ServerProcess, benches: tuple[Bench, Bench], capabilities: Capabilities,
    tmp_path: Path, when: str,
) -> None:
    needs(capabilities, TunnelType.VXLAN)
    a, b = benches
    agent_a = start(tmp_path, server, a)
    agent_b = start(tmp_path, server, b)
    try:
        online(api, (a, b), (agent_a, agent_b))
        cluster = api.add_cluster(a.peer, b.peer).id
        api.deploy(cluster)
        if when == "mid-deploy":
            wait_for("B's first marked link", lambda: marked(b.netns), describe=agent_b.describe)
        else:
            wait_for("deployed", lambda: api.status(cluster) == "deployed",
                     describe=describe(api, cluster, agent_a, agent_b))
        agent_b.kill()
        left = marked(b.netns)
        assert left, "the killed agent left marked links behind"
        print(f"killed B {when}; it left {sorted(left)}")
        wait_for("B offline", lambda: api.offline(b.peer))
        api.undeploy(cluster)
        wait_for("A's links removed", lambda: not marked(a.netns), describe=agent_a.describe)
        assert marked(b.netns) == left, "nobody touches B's links while its agent is down"

        agent_b = start(tmp_path, server, b)
        wait_for("undeployed", lambda: api.status(cluster) == "undeployed",
                 describe=describe(api, cluster, agent_a, agent_b))
        wait_for("B's links removed", lambda: not marked(b.netns), describe=agent_b.describe)
        assert DEVICE in links(b.netns) and "u0" in links(b.netns)
        assert agent_b.alive()
    finally:
        agent_a.stop()
        agent_b.stop()
