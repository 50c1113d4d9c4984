"""The embedded backend is LEA's own child process (issue #13): its life cycle, seen from the window.

kill -9 of the child: LEA says so (status bar, message bar), starts a new child, the sync engine
resyncs on its new epoch without emptying the views, and a deployment started before the crash is
reconciled by the new child's operator. kill -9 of LEA: the child notices its stdin closing and
shuts down cleanly (no orphan, final checkpoint). SIGTERM of LEA: the child is stopped, then LEA exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from lea_app.app import settings
from lea_app.connection.child import ChildConnection
from lea_app.controller import Controller
from lea_app.views.main_window import MainWindow
from resources.cluster import ClusterDescriptor
from resources.kinds import ResourceKind
from resources.state import ClusterState, Deployed, Deploying
from tests.helpers.child import alive, child_options, children_of, wait_gone
from tests.helpers.qt import Lea, flushed, run

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def slow_lea(qtbot: QtBot, aloop: object, tmp_path: Path) -> Iterator[Lea]:
    """LEA on a child whose demo benches take a few seconds to deploy (a crash can land mid-way)."""
    data_dir = tmp_path / "lea-data"
    connection = run(qtbot, ChildConnection.open(child_options(data_dir, demo=True, demo_delay_scale=1.0)))
    controller = Controller()
    window = MainWindow(controller, settings(), data_dir=str(data_dir), demo=True)
    qtbot.addWidget(window)
    window.show()
    run(qtbot, controller.start(connection))
    qtbot.waitUntil(lambda: controller.live, timeout=15_000)
    yield Lea(controller, connection, window, data_dir)
    window.close()
    run(qtbot, controller.close(), timeout=40_000)


def cluster_named(lea: Lea, name: str) -> ClusterDescriptor:
    for cluster in lea.controller.store.all(ResourceKind.CLUSTER).values():
        if isinstance(cluster, ClusterDescriptor) and cluster.name == name:
            return cluster
    raise AssertionError(f"no cluster {name}")


def state_of(lea: Lea, cluster: ClusterDescriptor) -> object:
    state = lea.controller.store.get(ResourceKind.CLUSTER_STATE, cluster.id)
    return state.state if isinstance(state, ClusterState) else None


def test_the_about_box_names_the_child_process(qtbot: QtBot, lea: Lea) -> None:
    info = lea.connection.process.info
    assert info is not None and info.pid == lea.connection.pid and alive(info.pid)
    assert info.pid in children_of(os.getpid())  # LEA's own child, not a server somewhere
    lea.window.show_about()
    text = lea.window.dialogs[-1].text()  # type: ignore[attr-defined]
    assert f"process {info.pid}" in text and info.url in text and f"lea-backend {info.version}" in text
    assert info.url.startswith("http://127.0.0.1:")
    # The child's logs are under the data directory's logs/.
    assert (lea.data_dir / "logs" / "backend.log").exists()


def test_the_child_refuses_a_request_without_its_session_token(lea: Lea) -> None:
    import httpx

    info = lea.connection.process.info
    assert info is not None
    assert httpx.get(info.url + "/api/v1/whoami").status_code == 401
    assert httpx.get(info.url + "/api/v1/whoami", headers={"Authorization": "Bearer guessed"}).status_code == 401
    # The token is on no command line (every user may read those).
    cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes().decode()
    assert lea.connection.process.token not in cmdline


def test_kill_9_of_the_child_lea_recovers_and_the_deployment_is_reconciled(qtbot: QtBot, slow_lea: Lea) -> None:
    lea = slow_lea
    peers_before = flushed(lea.window.peers.model).rowCount()
    assert peers_before > 0
    statuses: list[str] = []
    lea.controller.backend_status.connect(lambda level, text: statuses.append(level))
    cluster = cluster_named(lea, "demo-telematics")
    lea.controller.deploy(cluster.id, cluster.name)
    qtbot.waitUntil(lambda: isinstance(state_of(lea, cluster), Deploying), timeout=15_000)
    first_pid = lea.connection.pid
    epoch = lea.controller.engine.epoch
    os.kill(first_pid, signal.SIGKILL)
    # LEA shows it: the status bar and the message bar; writes are off meanwhile.
    qtbot.waitUntil(lambda: "error" in statuses, timeout=10_000)
    assert "stopped unexpectedly" in lea.window.message_bar.text and "SIGKILL" in lea.window.message_bar.text
    assert "restarting" in lea.window.backend_label.text()
    # A new child, a new epoch: the engine resyncs; the views never lost their rows.
    rows_seen: list[int] = []
    lea.window.peers.model.flushed.connect(lambda *_: rows_seen.append(lea.window.peers.model.rowCount()))
    qtbot.waitUntil(lambda: lea.connection.restarts == 1 and lea.controller.live, timeout=30_000)
    qtbot.waitUntil(lambda: lea.controller.engine.epoch != epoch, timeout=10_000)
    assert lea.connection.pid != first_pid and alive(lea.connection.pid) and not alive(first_pid)
    assert "info" in statuses and f"process {lea.connection.pid}" in lea.window.backend_label.text()
    # The deployment requested before the crash is persisted; the new child's operator rolls it out.
    qtbot.waitUntil(lambda: isinstance(state_of(lea, cluster), Deployed), timeout=60_000)
    assert flushed(lea.window.peers.model).rowCount() == peers_before
    assert all(count == peers_before for count in rows_seen)
    assert lea.controller.can_write


def lea_process(data_dir: Path, home: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "lea_app.main", "--demo", "--data-dir", str(data_dir)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
    )


def wait_live(process: subprocess.Popen[bytes], data_dir: Path) -> int:
    """The pid of LEA's child once LEA is live."""
    log = data_dir / "logs" / "lea.log"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (log.exists() and "-> live" in log.read_text()):
        assert process.poll() is None, "LEA exited"
        time.sleep(0.1)
    assert log.exists() and "-> live" in log.read_text(), "LEA never went live"
    children = children_of(process.pid)
    assert len(children) == 1, children
    return children[0]


def verify(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend", "--data-dir", str(data_dir), "verify"], capture_output=True, text=True,
        cwd=REPO,
    )


def test_kill_9_of_lea_leaves_no_child(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    process = lea_process(data_dir, tmp_path)
    try:
        child = wait_live(process, data_dir)
        process.kill()
        process.wait(10)
        # The child saw its stdin close and shut down by itself (no orphan left running).
        assert wait_gone(child, timeout=15) is not None, f"the child {child} outlived LEA"
    finally:
        if process.poll() is None:
            process.kill()
    log = (data_dir / "logs" / "backend.log").read_text()
    assert "LEA closed this backend's stdin" in log
    result = verify(data_dir)  # a clean shutdown: the final checkpoint matches the events
    assert result.returncode == 0 and "matches the checkpoint" in result.stdout, result.stdout + result.stderr


def test_sigterm_of_lea_stops_the_child_first(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    process = lea_process(data_dir, tmp_path)
    try:
        child = wait_live(process, data_dir)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert not alive(child)  # LEA waited for it
    finally:
        if process.poll() is None:
            process.kill()
    result = verify(data_dir)
    assert result.returncode == 0 and "matches the checkpoint" in result.stdout, result.stdout + result.stderr
