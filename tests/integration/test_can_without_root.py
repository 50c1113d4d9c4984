"""Userspace CAN without root: a real ``lea-backend serve`` and two real agents with the in-memory
data plane and ``--can-sim`` (the real userspace CAN plane: hub, routes, relays over UDP in this
namespace; bench A's underlay 127.0.0.1, bench B's 127.0.0.2). A frame from ECU A reaches ECU B;
an agent frozen with SIGSTOP makes the other's relay report its peer lost, and SIGCONT brings it
back. Runs anywhere (no namespaces), next to the netns test (test_can_netns.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lea_peer.can.cannelloni import CanFrame
from tests.helpers.agent_process import agent_process, wait_for
from tests.helpers.bench_api import AdminServer, BenchApi, admin_server
from tests.helpers.can import CannelloniSocket, free_port
from tests.integration.test_can_netns import can_peer

pytestmark = pytest.mark.timeout(180)
UNDERLAY = ("127.0.0.1", "127.0.0.2")


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminServer]:
    with admin_server(tmp_path_factory.mktemp("can-memory") / "data",
                      ["--agent-heartbeat", "1", "--agent-timeout", "5"]) as running:
        yield running


def relay_state(api: BenchApi, peer: Any) -> dict[str, Any]:
    configuration = api.configuration(peer) or {"parameters": []}
    wanted = next(p["id"] for p in configuration["parameters"] if p["kind"] == "can_connection")
    return next((r["state"] for r in api.reports(peer) if r["id"] == wanted), {"status": "unknown"})


def test_frames_cross_benches_with_the_memory_data_plane_and_a_frozen_peer_is_reported_lost(
    backend: AdminServer, tmp_path: Path,
) -> None:
    with backend.process.client(backend.admin) as http:
        api = BenchApi(http)
        peers = [api.add_peer(can_peer(f"can-mem-{name}-{uuid.uuid4().hex[:6]}")) for name in "ab"]
        ports = [free_port(UNDERLAY[0]), free_port(UNDERLAY[1])]

        def agent(index: int) -> Any:
            sim = f"can0=udp:{UNDERLAY[index]}:{ports[index]}"
            return agent_process(tmp_path, backend.process.url, peers[index].id, api.token(peers[index]),
                                 underlay=UNDERLAY[index], data_plane="memory", verbose=False,
                                 extra=["--can-sim", sim, "--recheck-s", "2"])

        with agent(0) as agent_a, agent(1) as agent_b:
            logs = lambda: agent_a.describe() + "\n" + agent_b.describe()  # noqa: E731
            wait_for("agents online", lambda: all(api.online(p) for p in peers), describe=logs)
            cluster = api.add_cluster(*peers).id
            api.deploy(cluster)
            wait_for("deployed", lambda: api.status(cluster) == "deployed", describe=logs)
            with (CannelloniSocket(UNDERLAY[0], 0, remote=(UNDERLAY[0], ports[0])) as ecu_a,
                  CannelloniSocket(UNDERLAY[1], 0, remote=(UNDERLAY[1], ports[1])) as ecu_b):
                ecu_b.send([])
                frames = [CanFrame(0x123, b"mem"), CanFrame(0x456, bytes(64), fd=True)]
                ecu_a.send(frames)
                assert ecu_b.frames(2, 5.0) == frames

                # Only a remote that was heard sending keepalives can be declared lost for silence.
                wait_for("A's relay hears B's", lambda: "peer relay alive" in (relay_state(api, peers[0]).get("detail")
                                                                             or ""), describe=logs)
                agent_b.sigstop()
                try:
                    wait_for("A's relay reports its peer lost", lambda: relay_state(api, peers[0])["status"] == "error",
                             timeout=20, describe=logs)
                    reason = relay_state(api, peers[0])["reason"]
                    assert reason.endswith(f"no datagram from {UNDERLAY[1]}:20001 for 3.0 s: relay peer lost"), reason
                finally:
                    agent_b.sigcont()
                wait_for("A's relay recovered", lambda: relay_state(api, peers[0])["status"] == "present",
                         timeout=20, describe=logs)
                ecu_a.send([CanFrame(0x789, b"back")])
                assert ecu_b.frames(1, 5.0) == [CanFrame(0x789, b"back")]
            api.undeploy(cluster)
            wait_for("undeployed", lambda: api.status(cluster) == "undeployed", describe=logs)
