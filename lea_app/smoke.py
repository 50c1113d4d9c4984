"""``lea --smoke-test``: prove an installed LEA works, end to end, on a temporary data directory.

Starts the embedded backend's child process with the demo fleet (from the same executable in a
bundle), the real window on it, deploys one demo cluster through the child's real operators, waits
until it reads Deployed, optionally saves a screenshot, and exits 0 (non-zero with the reason on
stderr otherwise). Installer builds run it on the bundle.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from lea_app.app import Options, settings, spawn_embedded
from lea_app.controller import Controller
from lea_app.views.main_window import MainWindow
from resources.cluster import ClusterDescriptor
from resources.errors import LeaError
from resources.kinds import ResourceKind
from resources.state import ClusterState, Deployed, Failed

SMOKE_CLUSTER = "demo-telematics"
T = TypeVar("T")


async def smoke_test(screenshot: Path | None, timeout: float = 60.0) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lea-smoke-") as tmp:
        data_dir = Path(tmp)
        child_pid = 0
        try:
            spawned = spawn_embedded(Options(data_dir=data_dir, demo=True, demo_delay_scale=0.05))
        except LeaError as exc:
            print(f"lea: smoke test FAILED: {exc.message}", file=sys.stderr)
            return 1
        controller = Controller()
        # window settings in the temporary directory: the smoke test never touches the user's
        window = MainWindow(controller, settings(path=data_dir / "lea.ini"), data_dir=str(data_dir), demo=True)
        window.resize(1280, 780)
        window.show()
        try:
            connection = await spawned.ready()
            child = spawned.process.info
            if child is None or child.pid == os.getpid():
                raise SmokeFailure("the embedded backend is not a process of its own")
            child_pid = child.pid
            await controller.start(connection)
            cluster = await _wait_for(lambda: _cluster(controller), timeout, "the demo fleet never appeared")
            controller.deploy(cluster.id, cluster.name)
            window.show_page(2)
            await _wait_for(lambda: _deployed(controller, cluster), timeout, f"{cluster.name} never reached Deployed")
            await asyncio.sleep(0.2)  # let the coalesced table update paint
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                if not window.grab().save(str(screenshot)):
                    raise SmokeFailure(f"could not write the screenshot {screenshot}")
        except (SmokeFailure, LeaError) as exc:
            print(f"lea: smoke test FAILED: {exc.message if isinstance(exc, LeaError) else exc}", file=sys.stderr)
            return 1
        finally:
            window.close()
            await controller.close()
            if not controller.connected:
                await spawned.close()  # started, never handed to the controller (or already closed: no-op)
    print(
        f"lea: smoke test passed: {SMOKE_CLUSTER} deployed in {time.monotonic() - started:.1f} s "
        f"through the embedded backend's process {child_pid} ({' '.join(spawned.options.command()[:4])})"
    )
    return 0


class SmokeFailure(Exception):
    pass


def _cluster(controller: Controller) -> ClusterDescriptor | None:
    for cluster in controller.store.all(ResourceKind.CLUSTER).values():
        if isinstance(cluster, ClusterDescriptor) and cluster.name == SMOKE_CLUSTER:
            return cluster
    return None


def _deployed(controller: Controller, cluster: ClusterDescriptor) -> bool | None:
    state = controller.store.get(ResourceKind.CLUSTER_STATE, cluster.id)
    if isinstance(state, ClusterState) and isinstance(state.state, Failed):
        raise SmokeFailure(f"{cluster.name} failed: {state.state.reason}")
    return True if isinstance(state, ClusterState) and isinstance(state.state, Deployed) else None


async def _wait_for(check: Callable[[], T | None], timeout: float, failure: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise SmokeFailure(failure)
