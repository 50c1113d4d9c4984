"""CAN across benches end to end, as root, with userspace CAN: a real ``lea-backend serve`` and two
real agents (netlink data plane, ``--can-sim can0=udp:127.0.0.1:30000`` each) configuring network
namespaces this test creates and always deletes:

    ECU A (a socket in pa) -udp- agent A's simulated can0 | hub | relay ==underlay== relay | hub | can0 - ECU B

A frame ECU A sends reaches ECU B through the leader's relay (classic, FD, extended ids, in
order); the relays' states carry their metrics; cutting the underlay makes both relays report
Error with the reason, and they recover when it returns; after the undeploy no frame passes.
This host has no kernel CAN (no vcan, no AF_CAN): the kernel path is tested where the probe
finds it (tests/integration/test_can_kernel_netns.py).
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute

from lea_peer.can.cannelloni import CAN_EFF_FLAG, CANFD_BRS, CanFrame
from resources import CanConfiguration, Device, NetworkInterface, PeerDescriptor
from tests.helpers.agent_process import AgentProcess, agent_process, wait_for
from tests.helpers.bench_api import AdminServer, BenchApi, admin_server
from tests.helpers.can import CannelloniSocket
from tests.helpers.netns import namespaces, namespaces_supported, sweep_leftovers, veth

_UNSUPPORTED = namespaces_supported()
pytestmark = [
    pytest.mark.skipif(_UNSUPPORTED is not None, reason=_UNSUPPORTED or ""),
    pytest.mark.timeout(240),
]

DEVICE = "can0"
UNDERLAY = ("10.98.0.1", "10.98.0.2")
ECU_ENDPOINT = ("127.0.0.1", 30000)  # inside each peer's namespace
SERVE_ARGS = ["--agent-heartbeat", "1", "--agent-timeout", "5"]
LATENCY_BOUND_S = 0.100


@pytest.fixture(scope="module", autouse=True)
def _no_leftover_namespaces() -> Iterator[None]:
    sweep_leftovers()
    yield
    sweep_leftovers()


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminServer]:
    with admin_server(tmp_path_factory.mktemp("can") / "data", SERVE_ARGS) as running:
        yield running


@pytest.fixture
def api(backend: AdminServer) -> Iterator[BenchApi]:
    with backend.process.client(backend.admin) as http:
        yield BenchApi(http)


@dataclass(frozen=True)
class Bench:
    peer: PeerDescriptor
    token: str
    netns: str
    underlay: str


def can_peer(name: str) -> PeerDescriptor:
    iface = NetworkInterface(id=uuid.uuid4(), name=DEVICE, configuration=CanConfiguration(
        bitrate=500_000, sample_point=0.875, fd=True, data_bitrate=2_000_000, data_sample_point=0.75))
    device = Device(id=uuid.uuid4(), name="body-ecu", interface=iface.id)
    return PeerDescriptor(id=uuid.uuid4(), name=name, interfaces=(iface,), devices=(device,))


@pytest.fixture
def benches(api: BenchApi) -> Iterator[tuple[Bench, Bench]]:
    with namespaces("ca", "cb") as (ca, cb):
        veth(ca, "u0", cb, "u0", address_a=f"{UNDERLAY[0]}/24", address_b=f"{UNDERLAY[1]}/24")
        made = []
        for name, ns, underlay in (("a", ca, UNDERLAY[0]), ("b", cb, UNDERLAY[1])):
            peer = api.add_peer(can_peer(f"can-bench-{name}-{uuid.uuid4().hex[:6]}"))
            made.append(Bench(peer, api.token(peer), ns, underlay))
        yield made[0], made[1]


def agent(tmp_path: Path, backend: AdminServer, bench: Bench) -> Any:
    sim = f"{DEVICE}=udp:{ECU_ENDPOINT[0]}:{ECU_ENDPOINT[1]}"
    return agent_process(tmp_path, backend.process.url, bench.peer.id, bench.token, underlay=bench.underlay,
                         data_plane="netlink", netns=bench.netns, verbose=False,
                         extra=["--can-sim", sim, "--recheck-s", "2"])


def ecu(bench: Bench) -> CannelloniSocket:
    """The test's ECU behind bench's simulated can0: a UDP socket in the bench's namespace."""
    return CannelloniSocket("127.0.0.1", 0, remote=ECU_ENDPOINT, netns=bench.netns)


def state_of(api: BenchApi, bench: Bench, kind: str) -> dict[str, Any]:
    configuration = api.configuration(bench.peer) or {"parameters": []}
    wanted = next(p["id"] for p in configuration["parameters"] if p["kind"] == kind)
    return next((r["state"] for r in api.reports(bench.peer) if r["id"] == wanted), {"status": "unknown"})


def relay_is(api: BenchApi, bench: Bench, status: str) -> Callable[[], bool]:
    return lambda: bool(state_of(api, bench, "can_connection")["status"] == status)


def relay_hears_its_peer(api: BenchApi, bench: Bench) -> Callable[[], bool]:
    return lambda: "peer relay alive" in (state_of(api, bench, "can_connection").get("detail") or "")


def parameter_value(api: BenchApi, bench: Bench, kind: str) -> dict[str, Any]:
    configuration = api.configuration(bench.peer) or {"parameters": []}
    value: dict[str, Any] = next(p["value"] for p in configuration["parameters"] if p["kind"] == kind)
    return value


def set_link(ns: str, name: str, up: bool) -> None:
    with IPRoute(netns=ns, flags=0) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up" if up else "down")


def relayed(sender: CannelloniSocket, receiver: CannelloniSocket, frames: list[CanFrame]) -> list[float]:
    """Send each frame in a datagram of its own, waiting for it at the receiver; the latencies."""
    latencies = []
    for frame in frames:
        started = time.monotonic()
        sender.send([frame])
        got = receiver.frames(1, 2.0)
        assert got == [frame], f"sent {frame}, ECU B received {got}"
        latencies.append(time.monotonic() - started)
    return latencies


def describe(api: BenchApi, *agents: AgentProcess) -> Any:
    return lambda: "\n".join(a.describe() for a in agents)


def test_frames_cross_the_relay_the_underlay_cut_is_reported_and_undeploy_stops_them(
    api: BenchApi, backend: AdminServer, benches: tuple[Bench, Bench], tmp_path: Path,
) -> None:
    a, b = benches
    with agent(tmp_path, backend, a) as agent_a, agent(tmp_path, backend, b) as agent_b:
        wait_for("agents online", lambda: api.online(a.peer) and api.online(b.peer),
                 describe=describe(api, agent_a, agent_b))
        assert api.connection(a.peer)["agent"]["capabilities"]["can"] == "userspace"
        cluster = api.add_cluster(a.peer, b.peer).id
        api.deploy(cluster)
        wait_for("deployed", lambda: api.status(cluster) == "deployed", describe=describe(api, agent_a, agent_b))
        device_state = state_of(api, a, "device_interface")
        assert device_state["detail"] == "simulated ECU endpoint udp:127.0.0.1:30000 (simulation)", device_state

        with ecu(a) as ecu_a, ecu(b) as ecu_b:
            ecu_b.send([])  # ECU B speaks first: its endpoint learns where to send B's frames
            warm = CanFrame(0x001, b"warm")
            ecu_a.send([warm])
            assert ecu_b.frames(1, 5.0) == [warm], "the first frame from ECU A reaches ECU B"

            frames = [CanFrame(0x100 + i, bytes([i]) * 8) if i % 2 else
                      CanFrame(CAN_EFF_FLAG | 0x18DA00F1 + i, bytes(range(64)), fd=True, flags=CANFD_BRS)
                      for i in range(20)]
            latencies = relayed(ecu_a, ecu_b, frames)
            print(f"CAN frame ECU A -> ECU B: median {statistics.median(latencies) * 1e3:.2f} ms,"
                  f" max {max(latencies) * 1e3:.2f} ms over {len(latencies)} frames")
            assert statistics.median(latencies) < LATENCY_BOUND_S, latencies
            batch = [CanFrame(0x200 + i, bytes([i])) for i in range(8)] + [CanFrame(0x7FF, b"", fd=True)]
            ecu_a.send(batch)
            assert ecu_b.frames(len(batch), 2.0) == batch, "a batch arrives complete and in order"
            assert ecu_a.frames(1, 0.2) == [], "ECU A does not hear its own frames echoed"
            ecu_b.send([CanFrame(0x321, b"back")])
            assert ecu_a.frames(1, 2.0) == [CanFrame(0x321, b"back")], "and the other way"

            wait_for("the leader's relay metrics", lambda: state_of(api, a, "can_connection")
                     .get("metrics", {}).get("frames_sent", 0) >= len(frames) + len(batch) + 1)
            metrics = state_of(api, a, "can_connection")["metrics"]
            assert metrics["datagrams_malformed"] == 0 and metrics["datagrams_lost"] == 0, metrics

            for bench in (a, b):  # only a remote heard sending keepalives is declared lost for silence
                wait_for("keepalives heard", relay_hears_its_peer(api, bench))
            set_link(a.netns, "u0", up=False)  # the underlay is cut
            for bench in (a, b):
                wait_for(f"{bench.peer.name}'s relay reported lost", relay_is(api, bench, "error"),
                         timeout=15, describe=describe(api, agent_a, agent_b))
            reason_a = state_of(api, a, "can_connection")["reason"]
            reason_b = state_of(api, b, "can_connection")["reason"]
            print(f"underlay cut: A says {reason_a!r}; B says {reason_b!r}")
            port = parameter_value(api, a, "can_connection")["port"]
            assert reason_a.endswith((f"sending to {UNDERLAY[1]}:{port} failed: Network is unreachable",
                                      f"no datagram from {UNDERLAY[1]}:{port} for 3.0 s: relay peer lost")), reason_a
            assert reason_b.endswith(f"no datagram from {UNDERLAY[0]}:{port} for 3.0 s: relay peer lost"), reason_b

            set_link(a.netns, "u0", up=True)
            for bench in (a, b):
                wait_for(f"{bench.peer.name}'s relay recovered", relay_is(api, bench, "present"),
                         timeout=15, describe=describe(api, agent_a, agent_b))
            ecu_b.drain()
            assert relayed(ecu_a, ecu_b, [CanFrame(0x0AA, b"again")]), "frames pass again"

            api.undeploy(cluster)
            wait_for("undeployed", lambda: api.status(cluster) == "undeployed",
                     describe=describe(api, agent_a, agent_b))
            ecu_b.drain()
            ecu_a.send([CanFrame(0x0BB, b"gone")])
            assert ecu_b.frames(1, 1.0) == [], "no frame passes once the cluster is undeployed"
        assert agent_a.alive() and agent_b.alive()
