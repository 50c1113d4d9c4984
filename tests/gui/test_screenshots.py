"""Save a PNG of every page of the real window with demo data, for a reviewer to look at.

Written to tests/screenshots/ (git-ignored), or to $LEA_SCREENSHOT_DIR: `LEA_SCREENSHOT_DIR=docs/screenshots
make unit ARGS=tests/gui/test_screenshots.py` refreshes the ones in docs/.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from PySide6.QtGui import QImage
from pytestqt.qtbot import QtBot

from lea_app.app import settings
from lea_app.connection.embedded import EmbeddedConnection
from lea_app.controller import Controller
from lea_app.views.main_window import MainWindow
from resources.cluster import ClusterDescriptor
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.state import ClusterState, Deployed, Deploying
from tests.helpers.qt import run

PAGES = ("dashboard", "peers", "clusters", "deployments", "event-log")


def screenshot_dir() -> Path:
    path = Path(os.environ.get("LEA_SCREENSHOT_DIR") or Path(__file__).parents[1] / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def distinct_colours(image: QImage) -> int:
    colours = set()
    for y in range(0, image.height(), 7):
        for x in range(0, image.width(), 7):
            colours.add(image.pixel(x, y))
    return len(colours)


def state_of(controller: Controller, cluster_id: object) -> object:
    state = controller.store.get(ResourceKind.CLUSTER_STATE, cluster_id)  # type: ignore[arg-type]
    return state.state if isinstance(state, ClusterState) else None


def test_screenshot_every_page(qtbot: QtBot, aloop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    connection = run(qtbot, EmbeddedConnection.open(data_dir, demo=True, demo_delay_scale=0.6, durability="off"))
    controller = Controller()
    window = MainWindow(controller, settings(), data_dir=str(data_dir), demo=True)
    qtbot.addWidget(window)
    window.resize(1280, 780)
    window.show()
    try:
        run(qtbot, controller.start(connection))
        qtbot.waitUntil(lambda: controller.live and len(controller.store.all(ResourceKind.PEER)) == 6, timeout=10_000)
        clusters = {
            c.name: c for c in controller.store.all(ResourceKind.CLUSTER).values() if isinstance(c, ClusterDescriptor)
        }
        telematics, adas = clusters["demo-telematics"], clusters["demo-adas-loop"]
        controller.deploy(telematics.id, telematics.name)
        qtbot.waitUntil(lambda: isinstance(state_of(controller, telematics.id), Deployed), timeout=30_000)
        controller.deploy(adas.id, adas.name)

        def halfway() -> bool:
            state = state_of(controller, adas.id)
            return isinstance(state, Deploying) and state.total > 0 and state.done >= state.total // 3

        qtbot.waitUntil(halfway, timeout=30_000)
        out = screenshot_dir()
        for index, name in enumerate(PAGES):
            window.show_page(index)
            window.current_table_page() and window.current_table_page().model.flush()  # type: ignore[union-attr]
            qtbot.wait(120)
            if name == "event-log":
                window.event_log.live.flush()
                window.event_log.live_table.selectRow(0)
                qtbot.wait(300)
            image = window.grab().toImage()
            path = out / f"{name}.png"
            assert image.save(str(path)), f"could not write {path}"
            assert path.stat().st_size > 10_000
            assert distinct_colours(image) > 20, f"{name} looks blank"
        peers = {p.name: p for p in controller.store.all(ResourceKind.PEER).values() if isinstance(p, PeerDescriptor)}
        editors = {
            "peer-editor": window.open_peer_editor(peers["demo-vehicle-01"].id),
            "cluster-editor": window.open_cluster_editor(clusters["demo-vehicle-e2e"].id),
        }
        invalid = window.open_peer_editor(None)
        assert invalid is not None
        invalid.name_edit.setText("-bench")  # type: ignore[attr-defined]
        invalid.location_edit.setText("Lab C")  # type: ignore[attr-defined]
        editors["peer-editor-invalid"] = invalid
        for name, editor in editors.items():
            assert editor is not None
            editor.resize(900, 640)
            qtbot.wait(200)
            image = editor.grab().toImage()
            assert image.save(str(out / f"{name}.png"))
            assert distinct_colours(image) > 20, f"{name} looks blank"
    finally:
        window.close()
        run(qtbot, controller.close())
