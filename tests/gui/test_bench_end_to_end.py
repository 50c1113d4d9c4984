"""A test engineer's path through LEA with real agents (issue #11, "Done means"): the embedded
backend accepting agents (or a shared server: the same path), Set up bench for two benches, each
`lea-peer run` started with exactly the dialog's command (plus the in-memory data plane: no root
needed), both benches Online with their agent on the Peers page, a deployment Deployed with every
parameter Present in the configuration view, an undeploy that names the bench it waits for while
that agent is stopped, and a revoked token that ends its agent.

Needs the backend's agent endpoint and the agent (other parts of issue #11): skipped without them.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
from pytestqt.qtbot import QtBot

from lea_app.app import settings
from lea_app.connection.base import Connection
from lea_app.connection.child import ChildConnection
from lea_app.connection.remote import RemoteConnection
from lea_app.controller import Controller
from lea_app.models.bench_setup import joined
from lea_app.views.bench_dialog import BenchSetupDialog
from lea_app.views.configuration_dialog import PeerConfigurationDialog
from lea_app.views.main_window import MainWindow
from resources.kinds import ResourceKind
from resources.state import ClusterState, Deployed, Online, PeerConnectionState, Undeployed, Undeploying
from tests.helpers.child import child_options
from tests.helpers.factories import make_cluster, make_peer
from tests.helpers.qt import flushed, run
from tests.helpers.server import create_token, start_server

pytest.importorskip("lea_peer.connection", reason="the lea-peer agent is not in this tree")

ROOT = Path(__file__).resolve().parents[2]
WAIT_MS = 30_000


class Agents:
    """`lea-peer run` processes started from the Set up bench dialog's command; all stopped at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, dialog: BenchSetupDialog) -> subprocess.Popen[bytes]:
        """Store the dialog's token where its command reads it (here: a temporary file) and run it."""
        assert dialog.token is not None
        name = dialog.token_name()
        token_file = self.tmp_path / f"{name}.token"
        token_file.write_text(dialog.token + "\n")
        command = shlex.split(joined(dialog.run_box.text()))
        assert command[:2] == ["lea-peer", "run"]
        command[command.index("--token-file") + 1] = str(token_file)
        log = (self.tmp_path / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "lea_peer", *command[1:], "--data-plane", "memory",
             "--underlay-address", "127.0.0.1"],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=subprocess.STDOUT,
        )
        self.processes[name] = process
        return process

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait(timeout=20)


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Agents]:
    agents = Agents(tmp_path)
    yield agents
    agents.stop_all()


def exit_status(qtbot: QtBot, process: subprocess.Popen[bytes]) -> int:
    """Wait for the process to end while LEA's loop runs (a blocking wait would stall the revoke)."""
    qtbot.waitUntil(lambda: process.poll() is not None, timeout=WAIT_MS)
    return process.returncode


def connection_state(controller: Controller, peer_id: UUID) -> object:
    state = controller.store.get(ResourceKind.PEER_CONNECTION_STATE, peer_id)
    return state.state if isinstance(state, PeerConnectionState) else None


def cluster_state(controller: Controller, cluster_id: UUID) -> object:
    state = controller.store.get(ResourceKind.CLUSTER_STATE, cluster_id)
    return state.state if isinstance(state, ClusterState) else None


@pytest.fixture(params=["embedded", "remote"])
def backend(
    request: pytest.FixtureRequest, qtbot: QtBot, aloop: asyncio.AbstractEventLoop, tmp_path: Path
) -> Iterator[Connection]:
    """The embedded backend accepting agents, or a `lea-backend serve` with an admin's token: one path."""
    if request.param == "embedded":
        child = run(qtbot, ChildConnection.open(child_options(tmp_path / "data", agents_listen=("127.0.0.1", 0))))
        try:
            yield child
        finally:
            run(qtbot, child.close(), timeout=40_000)  # no-op when the test's controller closed it
        return
    data_dir = tmp_path / "server-data"
    token = create_token(data_dir, "admin", "alice")
    server = start_server(data_dir)
    try:
        yield RemoteConnection(server.url, token)
    finally:
        server.stop(check=False)


def test_two_benches_set_up_in_lea_deploy_and_undeploy_for_real(
    qtbot: QtBot, tmp_path: Path, backend: Connection, agents: Agents
) -> None:
    connection = backend
    controller = Controller()
    window = MainWindow(controller, settings(), data_dir=str(tmp_path / "data"))
    qtbot.addWidget(window)
    window.show()
    try:
        run(qtbot, controller.start(connection))
        qtbot.waitUntil(lambda: controller.live, timeout=WAIT_MS)
        leader, member = make_peer("bench-a", devices=1), make_peer("bench-b", devices=1)
        cluster = make_cluster("bench-loop", leader, member)
        for resource in (leader, member):
            run(qtbot, connection.store_peer_descriptor(resource))
        run(qtbot, connection.store_cluster_descriptor(cluster))
        qtbot.waitUntil(lambda: controller.store.get(ResourceKind.CLUSTER, cluster.id) is not None, timeout=WAIT_MS)

        # Set up bench, for each: create the token, run the command shown.
        dialogs = {}
        for peer in (leader, member):
            dialog = window.open_bench_setup(peer.id)
            assert isinstance(dialog, BenchSetupDialog)
            qtbot.waitUntil(lambda d=dialog: d.tokens_listed, timeout=WAIT_MS)  # type: ignore[misc]
            dialog.create_button.click()
            qtbot.waitUntil(lambda d=dialog: d.token is not None, timeout=WAIT_MS)  # type: ignore[misc]
            agents.start(dialog)
            dialogs[peer.id] = dialog

        # Both Online on the Peers page, with their agent's version and tunnel types.
        model = window.peers.model
        for peer in (leader, member):
            qtbot.waitUntil(lambda p=peer: isinstance(connection_state(controller, p.id), Online), timeout=WAIT_MS)  # type: ignore[misc]
            model.flush()
            row = model.row_data(peer.id)
            assert row is not None and row.online and row.agent is not None
            assert row.agent_text.startswith(row.agent.version) and row.underlay_text.startswith("127.0.0.1")

        # Deploy: Deployed, and the configuration view shows every parameter Present.
        controller.deploy(cluster.id, cluster.name)
        qtbot.waitUntil(lambda: isinstance(cluster_state(controller, cluster.id), Deployed), timeout=WAIT_MS)
        view = window.open_configuration(leader.id)
        assert isinstance(view, PeerConfigurationDialog)
        view.model.flush()
        rows = [view.model.row_data(id) for id in view.model.ids()]
        # The in-memory data plane says "simulated" in every detail: the State column says so too.
        assert rows and all(r is not None and r.state_text == "Present (simulated)" for r in rows)
        assert view.summary.text() == f"<b>{len(rows)} of {len(rows)} parameters as wanted</b>"
        view.close()

        # bench-b's agent stops: the undeploy waits for it, by name, and completes once it is back.
        agents.processes["bench-b"].send_signal(signal.SIGTERM)
        assert exit_status(qtbot, agents.processes["bench-b"]) == 0
        qtbot.waitUntil(lambda: not isinstance(connection_state(controller, member.id), Online), timeout=WAIT_MS)
        controller.undeploy(cluster.id, cluster.name)

        def waiting_for_b() -> bool:
            state = cluster_state(controller, cluster.id)
            return isinstance(state, Undeploying) and member.id in state.waiting_for

        qtbot.waitUntil(waiting_for_b, timeout=WAIT_MS)
        deployments = window.deployments.model
        qtbot.waitUntil(lambda: flushed(deployments).row_of(cluster.id) is not None, timeout=WAIT_MS)
        row = deployments.row_data(cluster.id)
        assert row is not None and row.waiting_for == ("bench-b",)
        agents.start(dialogs[member.id])
        qtbot.waitUntil(lambda: isinstance(cluster_state(controller, cluster.id), Undeployed | None), timeout=WAIT_MS)

        # Revoking bench-a's token in its dialog ends that agent (exit status 2: retrying cannot help).
        dialog = dialogs[leader.id]
        qtbot.waitUntil(lambda: dialog.tokens_table.rowCount() == 1, timeout=WAIT_MS)
        dialog.revoke(dialog.tokens[0].name)
        assert exit_status(qtbot, agents.processes["bench-a"]) == 2
        qtbot.waitUntil(lambda: not isinstance(connection_state(controller, leader.id), Online), timeout=WAIT_MS)
    finally:
        window.close()
        run(qtbot, controller.close())
