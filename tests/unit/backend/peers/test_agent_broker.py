"""AgentPeerBroker without a server: fake links, a real Backend on a temporary data directory."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backend import actions
from backend.backend import Backend
from backend.peers import agent as agent_module
from backend.peers.agent import AgentLink, AgentPeerBroker
from resources.agent import AgentHello, AgentReport, Capabilities, CloseCode, Configure, TunnelType
from resources.configuration import (
    Parameter,
    ParameterKind,
    ParameterPresent,
    ParameterReport,
    PeerConfiguration,
    PeerConfigurationState,
    Target,
)
from resources.errors import StorageFailed
from resources.kinds import ResourceKind
from resources.state import Offline, Online, PeerConnectionState
from tests.helpers.factories import make_cluster, make_peer

ACTOR = "test"
PEER = make_peer("bench-agent", devices=1)
CAPS = Capabilities(tunnels=(TunnelType.VXLAN,), underlay_mtu=1550)


class FakeLink(AgentLink):
    """Runs what the broker hands it at once (``call`` replaces the hop to a loop: it has none)."""

    def __init__(self) -> None:
        self.sent: list[Configure] = []
        self.closed: tuple[CloseCode, str] | None = None

    def call(self, fn: Callable[[], None]) -> None:
        fn()

    def send(self, text: str) -> None:
        self.sent.append(Configure.model_validate_json(text))

    def close(self, code: CloseCode, reason: str) -> None:
        self.closed = (code, reason)


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    opened = Backend(tmp_path / "data", durability="off").start()
    actions.store_peer_descriptor(opened.manager, PEER, ACTOR)
    try:
        yield opened
    finally:
        opened.close()


def hello(underlay_address: str = "192.0.2.9", applied: tuple[ParameterReport, ...] = ()) -> AgentHello:
    return AgentHello(peer_id=PEER.id, agent_version="lea-peer 1", underlay_address=underlay_address,
                      capabilities=CAPS, applied=applied)


def connection(backend: Backend) -> PeerConnectionState:
    assert backend.wait_idle()
    state = backend.manager.get(ResourceKind.PEER_CONNECTION_STATE, PEER.id)
    return state if isinstance(state, PeerConnectionState) else PeerConnectionState(id=PEER.id)


def configuration(target: Target = Target.PRESENT) -> PeerConfiguration:
    param = Parameter(id=PEER.devices[0].id, kind=ParameterKind.DEVICE_INTERFACE, target=target,
                      value={"interface": "eth0"})
    return PeerConfiguration(id=PEER.id, parameters=(param,))


def present(config: PeerConfiguration) -> tuple[ParameterReport, ...]:
    return tuple(ParameterReport(id=p.id, state=ParameterPresent(detail="ok")) for p in config.parameters)


def test_it_manages_every_peer_but_demo_ones(backend: Backend) -> None:
    broker = backend.agent_peers
    assert broker.manages(PEER) and not broker.manages(make_peer("bench-demo", demo=True))


def test_hello_brings_the_peer_online_with_its_agent(backend: Backend) -> None:
    backend.agent_peers.connected(hello(), FakeLink())
    state = connection(backend).state
    assert isinstance(state, Online) and state.remote_host == "192.0.2.9"
    assert state.agent is not None and (state.agent.version, state.agent.capabilities) == ("lea-peer 1", CAPS)


def test_hello_reports_what_was_applied_and_gets_the_stored_configuration(backend: Backend) -> None:
    desired = configuration()
    actions.set_peer_configuration(backend.manager, desired, ACTOR)
    link = FakeLink()
    backend.agent_peers.connected(hello(applied=present(desired)), link)
    assert [m.configuration.parameters for m in link.sent] == [desired.parameters]
    assert link.sent[0].generation > time.time_ns() - 60 * 10**9  # seeded from the clock: never reused
    assert backend.wait_idle()
    report = backend.manager.get(ResourceKind.PEER_CONFIGURATION_STATE, PEER.id)
    assert isinstance(report, PeerConfigurationState) and report.parameters == present(desired)


def test_configure_numbers_each_configuration_and_drops_older_reports(backend: Backend) -> None:
    broker, link = backend.agent_peers, FakeLink()
    broker.connected(hello(), link)
    broker.configure(PEER.id, configuration(Target.PRESENT))
    broker.configure(PEER.id, configuration(Target.ABSENT))
    first, second = link.sent
    assert second.generation > first.generation
    stale = AgentReport(generation=first.generation, parameters=present(first.configuration))
    assert not broker.reported(PEER.id, link, stale)
    assert not broker.reported(PEER.id, FakeLink(), AgentReport(generation=second.generation, parameters=()))
    assert broker.reported(PEER.id, link, AgentReport(generation=second.generation, parameters=()))
    assert backend.wait_idle()
    report = backend.manager.get(ResourceKind.PEER_CONFIGURATION_STATE, PEER.id)
    assert isinstance(report, PeerConfigurationState) and report.parameters == ()


def test_configure_of_an_offline_peer_sends_nothing(backend: Backend) -> None:
    backend.agent_peers.configure(PEER.id, configuration())  # no error, no link
    assert not backend.agent_peers.is_connected(PEER.id)


def test_the_newest_connection_wins(backend: Backend) -> None:
    broker, old, new = backend.agent_peers, FakeLink(), FakeLink()
    broker.connected(hello(), old)
    broker.connected(hello(underlay_address="192.0.2.10"), new)
    assert old.closed is not None and old.closed[0] == CloseCode.REPLACED and new.closed is None
    broker.disconnected(PEER.id, old)  # the old link's end does not take the peer offline
    state = connection(backend).state
    assert isinstance(state, Online) and state.remote_host == "192.0.2.10"
    broker.disconnected(PEER.id, new)
    assert isinstance(connection(backend).state, Offline)


def test_stop_closes_every_link_as_a_shutdown(tmp_path: Path) -> None:
    opened = Backend(tmp_path / "data", durability="off").start()
    actions.store_peer_descriptor(opened.manager, PEER, ACTOR)
    link = FakeLink()
    opened.agent_peers.connected(hello(), link)
    opened.close()
    assert link.closed is not None and link.closed[0] == CloseCode.SHUTDOWN


def test_refused_writes_are_retried_with_backoff(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    real = actions.set_peer_connection_state
    refusals = [2]

    def flaky(*args: object, **kwargs: object) -> object:
        if refusals[0]:
            refusals[0] -= 1
            raise StorageFailed("disk full (test)")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(actions, "set_peer_connection_state", flaky)
    monkeypatch.setattr(agent_module, "RETRY_FIRST", 0.01)
    broker = AgentPeerBroker(backend.manager)
    broker.start()
    try:
        broker.connected(hello(), FakeLink())
        deadline = time.monotonic() + 20
        while not isinstance(connection(backend).state, Online):
            assert time.monotonic() < deadline, "the refused write was never retried"
            broker.wait_idle(1)
            time.sleep(0.01)
        assert refusals[0] == 0
    finally:
        broker.stop()


def test_a_configuration_no_deployment_wants_is_cleared_on_hello(backend: Backend) -> None:
    """No desired configuration and no deployed cluster with the peer: it is sent an empty one."""
    link = FakeLink()
    backend.agent_peers.connected(hello(applied=present(configuration())), link)
    assert [(m.configuration.id, m.configuration.parameters) for m in link.sent] == [(PEER.id, ())]


def test_a_member_of_a_deployed_cluster_keeps_its_configuration_after_a_restart(backend: Backend) -> None:
    """After a restart the desired configuration is not stored yet: the operator sends it, nothing is cleared."""
    other = make_peer("bench-other", devices=1)
    actions.store_peer_descriptor(backend.manager, other, ACTOR)
    cluster = make_cluster("deployed-one", other, PEER)
    actions.store_cluster_descriptor(backend.manager, cluster, ACTOR)
    actions.store_cluster_deployment(backend.manager, cluster.id, ACTOR)
    assert backend.wait_idle()
    actions.clear_peer_configurations(backend.manager, [PEER.id], ACTOR)  # as after a restart
    link = FakeLink()
    backend.agent_peers.connected(hello(applied=present(configuration())), link)
    assert all(m.configuration.parameters for m in link.sent)


def test_a_clean_agent_with_nothing_wanted_gets_nothing(backend: Backend) -> None:
    link = FakeLink()
    backend.agent_peers.connected(hello(), link)
    assert link.sent == []
