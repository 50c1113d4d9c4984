"""GUI burst: the real LEA window (offscreen) with 10,000 resources, then a burst of 20,000 events.

The backend is what LEA runs: its own child process (``lea-backend serve --child``, issue #13), here
``bench/_burst_child.py``, the same serve code plus the burst writer, which has to run in the
backend's process. LEA's process holds only the window and the sync engine on the remote connection.

Setup (not timed): a backend on a temporary data directory (durability off) gets PEERS peers and
CLUSTERS clusters (9,000 + 1,000) in transactions of 1,000 through ``manager.write``, then closes;
the directory is copied so that both phases below start from the same state. The benchmark keeps
only ids and small numbers of its own (no resources), so that it does not weigh on the garbage
collector of the process it measures.

Phase 1, LEA: create the QApplication, then do what ``lea_app.app.run_window`` does - start the
child first, build the real MainWindow on the Peers page while it restores, show it, connect,
``Controller.start`` - and time the **first paint**: the Peers table's viewport painted with every
peer in the model (a paint event, then ``QTimer.singleShot(0)`` so the paint has finished) and every
cluster in the Clusters model. The **memory** of LEA's process (and of the child) is read from
/proc once painted. Then a **burst** of EVENTS events, built and submitted by a thread inside the
child (SIGUSR1 starts it; ``manager.submit``, open loop, transactions of 1..TX_MAX changes):
  * 50 % ClusterState progress (Deploying 0/8 .. 8/8 with per-peer progress, then Deployed), so the
    live progress column and the Deployments / dashboard tables move;
  * 40 % PeerConnectionState (online / offline flips of random peers);
  * 10 % PeerDescriptor updates (a new location), which touch the leader and member columns.
Measured: the longest event-loop **stall** (a 5 ms precise QTimer records the gaps between its
ticks; the benchmark's own consistency checks are not counted) and the p99 of the gaps, with the
UI thread's CPU time in the worst gap less garbage collection (what LEA's own code held the loop
for; the rest of a gap is waiting for the CPU or the collector), the pauses of Python's **garbage
collector**, **resyncs** of the controller's engine (a subscription that overflowed in the child
resyncs too), the time until every event is **applied** to the store, and until the **tables are
consistent** with the child's snapshot (peers, clusters, deployments and the dashboard's table
compared row by row with models built from the snapshot, the dashboard's counts and the live event
log's newest revision); the time until consistent is that of the last model flush before the check
passed.

Phase 2, baseline (same run, same loop, same burst, a copy of the same data, its own child): a
Store + SyncEngine on the same kind of connection with no Qt models. Ratio = events/s with the
window / events/s without it, both from the burst's first submit to the last event applied (1.0
means the window keeps up with the sync engine alone).

    .venv/bin/python bench/gui_burst.py [--quick] [--profile FILE] [--gc-automatic] [--gc-freeze]
        [--gc-threshold G0,G1,G2]

(QT_QPA_PLATFORM is set to offscreen by the script.) Startup is timed from creating the
QApplication; the import time of this process (measured from the first line of this script; LEA's
modules only, the setup's backend modules are imported later) is printed too, and their sum is
"process start to painted". The window phase runs LEA's collector policy (the raised threshold,
then the scheduled collector of lea_app/app.py from the burst's start; the engine-alone phase keeps
the threshold and one freeze); ``--gc-automatic`` runs the previous policy (threshold, one freeze,
allocation-triggered collections); ``--gc-freeze`` and ``--gc-threshold`` try other settings;
``--profile`` writes a cProfile of the UI thread during the burst. The
figures and ratios are the last lines printed.
"""

# ruff: noqa: E402 - the clock starts before the imports
from __future__ import annotations

import time

T_PROCESS = time.perf_counter()

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ.setdefault("QT_API", "pyside6")

import asyncio
import contextlib
import cProfile
import gc
import json
import pstats
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import PySide6  # noqa: F401 - PySide6 before qasync
import qasync
from _burst import Op, make_burst, preload, save_plan
from _common import machine, parser, percentile, temp_dir, verdict
from PySide6.QtCore import QEvent, QObject, QSettings, Qt, QTimer
from PySide6.QtWidgets import QApplication

from lea_app.app import schedule_collections
from lea_app.connection.child import ChildConnection
from lea_app.connection.process import ChildOptions, backend_command
from lea_app.controller import Controller
from lea_app.models.resources import ClustersModel, DeploymentsModel, PeersModel
from lea_app.models.table import ResourceTableModel
from lea_app.sync.engine import SyncEngine, SyncState
from lea_app.sync.store import Store
from lea_app.views.main_window import MainWindow
from resources.events import StateSnapshot
from resources.gc_policy import ScheduledCollector, raise_gc_threshold
from resources.state import Online, PeerConnectionState

T_IMPORTED = time.perf_counter()
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class BenchChild(ChildOptions):
    """LEA's child, started as ``bench/_burst_child.py`` (serve --child plus the burst writer)."""

    def command(self) -> list[str]:
        return [sys.executable, str(HERE / "_burst_child.py"), *super().command()[len(backend_command()):]]


def rss_mib(pid: int | str = "self") -> float:
    """Resident memory of a process (VmRSS), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- probes ----------------------------------------------------------------------------------
class StallProbe(QObject):
    """A precise QTimer every ``interval`` ms; records the gaps between its ticks.

    Also the CPU time the UI thread spent in each gap (``time.thread_time``), less its garbage
    collections: on a machine shared with other work a gap also holds waits for the CPU and for the
    GIL (the backend's threads run in this process); the rest is what LEA's own code held the loop for.
    """

    def __init__(self, interval: int = 5) -> None:
        super().__init__()
        self.gaps: list[float] = []
        self.ends: list[float] = []
        self.cpu: list[float] = []
        self._last = 0.0
        self._last_cpu = 0.0
        self._last_gc = 0.0
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.gaps = []
        self.ends = []
        self.cpu = []
        self._last = time.perf_counter()
        self._last_cpu = time.thread_time()
        self._last_gc = GC.ui_cpu
        self._timer.start()

    def pause(self) -> None:
        """Stop counting (the benchmark's own checks are not LEA's stalls)."""
        self._tick()
        self._timer.stop()

    def resume(self) -> None:
        self._last = time.perf_counter()
        self._last_cpu = time.thread_time()
        self._last_gc = GC.ui_cpu
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self._tick()

    def _tick(self) -> None:
        now, cpu, collecting = time.perf_counter(), time.thread_time(), GC.ui_cpu
        self.gaps.append(now - self._last)
        self.ends.append(now)
        self.cpu.append(cpu - self._last_cpu - (collecting - self._last_gc))
        self._last, self._last_cpu, self._last_gc = now, cpu, collecting

    def worst(self, origin: float, n: int = 5) -> str:
        """The ``n`` longest gaps as 'gap ms @ end ms after origin'."""
        top = sorted(zip(self.gaps, self.ends, self.cpu, strict=True), reverse=True)[:n]
        return ", ".join(
            f"{g * 1000:.0f} ms (cpu {c * 1000:.0f}) @ {(e - origin) * 1000:.0f} ms" for g, e, c in top
        )

    def summary(self) -> tuple[float, float, int, float]:
        """(longest gap, p99 gap, gaps over 50 ms, longest UI-thread CPU time in one gap), in seconds."""
        s = sorted(self.gaps)
        return (s[-1] if s else 0.0, percentile(s, 99), sum(1 for g in s if g > 0.05), max(self.cpu, default=0.0))


class GcProbe:
    """Pauses of Python's cyclic garbage collector (every thread waits for them: the GIL is held)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float, float]] = []  # (generation, seconds, end)
        self.ui_cpu = 0.0  # CPU seconds the UI thread spent collecting
        self.cpu_pauses: list[tuple[int, float, float]] = []  # (generation, UI-thread CPU seconds, end)
        self._start = 0.0
        self._start_cpu = 0.0
        self._ui = threading.get_ident()
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        ui = threading.get_ident() == self._ui
        if phase == "start":
            self._start = now
            self._start_cpu = time.thread_time() if ui else 0.0
        else:
            self.pauses.append((int(info["generation"]), now - self._start, now))
            if ui:
                cpu = time.thread_time() - self._start_cpu
                self.ui_cpu += cpu
                self.cpu_pauses.append((int(info["generation"]), cpu, now))

    def by_generation(self, start: float, end: float) -> str:
        """'gen G: N, longest L ms, total T ms' for the pauses that ended in [start, end]."""
        parts = []
        for generation in (0, 1, 2):
            pauses = [d for g, d, e in self.pauses if g == generation and start <= e <= end]
            cpu = [c for g, c, e in self.cpu_pauses if g == generation and start <= e <= end]
            if pauses:
                parts.append(
                    f"gen {generation}: {len(pauses)}, longest {max(pauses) * 1000:.0f} ms, "
                    f"total {sum(pauses) * 1000:.0f} ms (UI-thread CPU: longest {max(cpu, default=0) * 1000:.0f} ms, "
                    f"total {sum(cpu) * 1000:.0f} ms)"
                )
        return "; ".join(parts) or "none"

    def between(self, start: float, end: float) -> tuple[float, int]:
        """(longest pause, full collections) that ended in [start, end]."""
        inside = [(g, d) for g, d, e in self.pauses if start <= e <= end]
        return (max((d for _, d in inside), default=0.0), sum(1 for g, _ in inside if g == 2))


GC = GcProbe()


class PaintProbe(QObject):
    """Notes when ``widget`` has finished a paint while ``ready()`` holds."""

    def __init__(self, widget: QObject, ready: Callable[[], bool]) -> None:
        super().__init__()
        self.ready = ready
        self.painted_at: float | None = None
        self.paints = 0
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.paints += 1
            if self.painted_at is None and self.ready():
                QTimer.singleShot(0, self._mark)  # after this paint has been done
        return False

    def _mark(self) -> None:
        if self.painted_at is None:
            self.painted_at = time.perf_counter()


@dataclass
class Burst:
    started: float = 0.0
    committed: float = 0.0
    events: int = 0
    errors: list[str] = field(default_factory=list)


async def fire(connection: ChildConnection, result_path: Path) -> Burst:
    """Start the planned burst in the child (SIGUSR1) and wait, without blocking the loop, for it to
    report every transaction committed."""
    result_path.unlink(missing_ok=True)
    connection.process.process.send_signal(signal.SIGUSR1)
    while not result_path.exists():
        await asyncio.sleep(0.005)
    data = json.loads(result_path.read_text(encoding="utf-8"))
    return Burst(float(data["started"]), float(data["committed"]), int(data["events"]), list(data["errors"]))


async def revision_of(client: httpx.AsyncClient, connection: ChildConnection) -> int:
    """The child's published revision (``/healthz``: a few bytes, unlike the snapshot the checks parse).

    ``client`` is made before the stall probe starts: creating an httpx client builds an SSL
    context (20-33 ms of CPU), which, made here, showed up as the burst's worst gap in both phases."""
    info = connection.process.info
    assert info is not None
    response = await client.get(info.url + "/healthz")
    return int(response.json()["revision"])


async def wait_until(condition: Callable[[], bool], timeout: float = 120.0, step: float = 0.002) -> float:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(step)
    return time.perf_counter()


# -- consistency -----------------------------------------------------------------------------
def table_problems(
    name: str, model: ResourceTableModel[Any], reference: ResourceTableModel[Any], full: bool
) -> list[str]:
    reference.refresh_all()
    if model.ids() != reference.ids():
        return [f"{name}: {model.rowCount()} rows, expected {reference.rowCount()} (or another order)"]
    if full:
        for id in model.ids():
            if model.row_data(id) != reference.row_data(id):
                return [f"{name}: row {id} differs from the snapshot"]
    return []


def gui_problems(window: MainWindow, snapshot: StateSnapshot) -> list[str]:
    reference = Store()
    reference.apply_snapshot(snapshot)
    holder = QObject()
    pairs: list[tuple[str, ResourceTableModel[Any], ResourceTableModel[Any]]] = [
        ("peers", window.peers.model, PeersModel(reference, holder)),
        ("clusters", window.clusters.model, ClustersModel(reference, holder)),
        ("deployments", window.deployments.model, DeploymentsModel(reference, holder)),
        ("dashboard", window.dashboard.active, DeploymentsModel(reference, holder, active_only=True)),
    ]
    problems: list[str] = []
    for name, model, ref in pairs:
        problems += table_problems(name, model, ref, full=True)
    online = sum(
        1
        for r in snapshot.resources
        if isinstance(r, PeerConnectionState) and isinstance(r.state, Online)
    )
    if window.dashboard.peers_card.value.text() != str(online):
        problems.append(f"dashboard: {window.dashboard.peers_card.value.text()} online, expected {online}")
    newest = window.event_log.live.newest_revision()  # shown or hidden by the log's filter (volatile states)
    if newest != snapshot.revision:
        problems.append(f"event log: newest {newest}, expected {snapshot.revision}")
    holder.deleteLater()
    return problems


# -- phases ----------------------------------------------------------------------------------
@dataclass
class GuiResult:
    painted: float = 0.0  # QApplication -> painted with every resource
    window_shown: float = 0.0
    live: float = 0.0
    rows: int = 0
    stall: tuple[float, float, int, float] = (0.0, 0.0, 0, 0.0)
    worst: str = ""
    gc: tuple[float, int] = (0.0, 0)
    gc_detail: str = ""
    resyncs: int = 0
    rss: float = 0.0  # MiB, LEA's process once painted
    rss_after: float = 0.0  # MiB, LEA's process once the tables are consistent after the burst
    gc_old: int = 0  # old-generation collections (+ freeze) of the scheduled collector during the burst
    gc_survivors: int = 0  # the scheduled collector's estimate of unfrozen survivors after the burst
    idle_gc: str = ""  # the scheduled collector's collections once LEA is quiet after the burst
    rss_idle: float = 0.0  # MiB, LEA's process after them
    gc_full: int = 0  # safety-net full collections of the scheduled collector during the burst
    gc_growth: int = 0  # objects it froze during the burst since its last full collection
    child_rss: float = 0.0  # MiB, the backend's child process then
    applied: float = 0.0  # burst start -> every event in the store
    consistent: float = 0.0  # burst start -> tables consistent (last flush)
    after_commit: float = 0.0  # last commit acknowledged -> tables consistent
    committed: float = 0.0
    events: int = 0
    problems: list[str] = field(default_factory=list)


async def gui_phase(
    data_dir: Path, settings_path: Path, result_path: Path, n_peers: int, n_clusters: int, t_app: float,
    profile: str | None, gc_freeze: bool, gc_scheduled: bool = False,
) -> GuiResult:
    result = GuiResult()
    spawned = ChildConnection.spawn(BenchChild(data_dir))  # first, as LEA does: it restores meanwhile
    controller = Controller()
    window = MainWindow(controller, QSettings(str(settings_path), QSettings.Format.IniFormat), data_dir=str(data_dir))
    window.resize(1280, 800)
    window.show_page(1)  # the Peers table (9,000 rows) is what is painted
    peers, clusters = window.peers.model, window.clusters.model
    # Painted: the visible Peers table painted with every peer, and every cluster in its model (the
    # Clusters page is hidden: its model filling later needs no paint).
    probe = PaintProbe(window.peers.table.viewport(), lambda: peers.rowCount() == n_peers)
    clusters_full: list[float] = []
    clusters.flushed.connect(
        lambda: clusters_full.append(time.perf_counter()) if clusters.rowCount() == n_clusters else None
    )
    window.show()
    result.window_shown = time.perf_counter() - t_app
    connection = await spawned.ready()
    await controller.start(connection)
    result.live = await wait_until(lambda: controller.live) - t_app
    await wait_until(lambda: probe.painted_at is not None and bool(clusters_full), timeout=60)
    assert probe.painted_at is not None
    result.painted = max(probe.painted_at, clusters_full[0]) - t_app
    result.rows = peers.rowCount() + clusters.rowCount()
    result.rss = rss_mib()
    result.child_rss = rss_mib(connection.pid)

    # -- the burst --
    flushes: list[float] = []
    for model in (peers, clusters, window.deployments.model, window.dashboard.active):
        model.flushed.connect(lambda: flushes.append(time.perf_counter()))
    await asyncio.sleep(0.3)  # let the first-paint work settle
    client = httpx.AsyncClient()
    scheduled: tuple[ScheduledCollector, Any] | None = None
    if gc_scheduled:
        # What LEA does once live (lea_app/app.py: tune_gc, GcSchedule).
        scheduled = schedule_collections(ScheduledCollector(activity=lambda: controller.engine.revision))
    elif gc_freeze:
        gc.freeze()
    stall = StallProbe()
    stall.start()
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    burst = await fire(connection, result_path)
    final = await revision_of(client, connection)
    await client.aclose()
    applied = await wait_until(lambda: (controller.engine.revision or 0) >= final)
    result.applied = applied - burst.started
    # Consistent: every model flushed after the last event, then compared with the snapshot.
    models: list[Any] = [peers, clusters, window.deployments.model, window.dashboard.active, window.event_log.live]
    while True:
        await wait_until(lambda: not any(m._timer.isActive() for m in [*models, window.dashboard]))
        last_flush = max([applied, *flushes])
        stall.pause()
        snapshot = await connection.fetch_snapshot()  # the check's own work: parsing 10,000 resources
        problems = gui_problems(window, snapshot)
        stall.resume()
        if not problems or time.perf_counter() - applied > 30:
            break
        await asyncio.sleep(0.01)
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)  # type: ignore[arg-type]
    stall.stop()
    result.rss_after = rss_mib()
    result.gc = GC.between(burst.started, time.perf_counter())
    result.gc_detail = GC.by_generation(burst.started, time.perf_counter())
    if scheduled is not None:
        result.gc_full = scheduled[0].full_collections
        result.gc_old = scheduled[0].old_collections
        result.gc_growth = scheduled[0].growth
        result.gc_survivors = scheduled[0].survivors
        # The survivors are collected once LEA is quiet: wait for it, note its pause and the memory then.
        t_idle = time.perf_counter()
        with contextlib.suppress(TimeoutError):
            await wait_until(lambda: scheduled[0].old_collections > 0, timeout=scheduled[0].idle_after + 10, step=0.05)
        result.idle_gc = f"after {time.perf_counter() - t_idle:.1f} s: {GC.by_generation(t_idle, time.perf_counter())}"
        result.rss_idle = rss_mib()
        scheduled[1].stop()
        scheduled[0].stop()
    result.problems = problems + burst.errors
    result.stall = stall.summary()
    result.worst = stall.worst(burst.started)
    result.consistent = last_flush - burst.started
    result.after_commit = last_flush - burst.committed
    result.committed = burst.committed - burst.started
    result.events = burst.events
    result.resyncs = controller.engine.resyncs
    window.close()
    await controller.close()
    window.deleteLater()
    return result


@dataclass
class EngineResult:
    applied: float = 0.0
    committed: float = 0.0
    stall: tuple[float, float, int, float] = (0.0, 0.0, 0, 0.0)
    worst: str = ""
    gc: tuple[float, int] = (0.0, 0)
    resyncs: int = 0
    problems: list[str] = field(default_factory=list)


async def engine_phase(data_dir: Path, result_path: Path, n_resources: int, gc_freeze: bool) -> EngineResult:
    """The same burst into a Store + SyncEngine on the child's connection, no Qt models."""
    result = EngineResult()
    connection = await ChildConnection.open(BenchChild(data_dir))
    store = Store()
    engine = SyncEngine(connection, store)
    task = asyncio.ensure_future(engine.run())
    await wait_until(lambda: engine.state == SyncState.LIVE and len(store) >= n_resources)
    await asyncio.sleep(0.3)
    client = httpx.AsyncClient()  # before the probe: see revision_of
    if gc_freeze:
        gc.freeze()
    stall = StallProbe()
    stall.start()
    burst = await fire(connection, result_path)
    final = await revision_of(client, connection)
    await client.aclose()
    applied = await wait_until(lambda: (engine.revision or 0) >= final)
    stall.stop()
    snapshot = await connection.fetch_snapshot()
    result.gc = GC.between(burst.started, time.perf_counter())
    result.applied = applied - burst.started
    result.committed = burst.committed - burst.started
    result.stall = stall.summary()
    result.worst = stall.worst(burst.started)
    result.resyncs = engine.resyncs
    expected = {(r.kind, r.id): r for r in snapshot.resources}
    got = {(r.kind, r.id): r for r in store.resources()}
    if expected != got:
        result.problems.append("the engine's store differs from the snapshot")
    result.problems += burst.errors
    await engine.stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    await connection.close()
    return result


def main() -> int:
    p = parser(__doc__.splitlines()[0] if __doc__ else "gui burst")
    p.add_argument("--peers", type=int, default=None)
    p.add_argument("--clusters", type=int, default=None)
    p.add_argument("--events", type=int, default=None)
    p.add_argument("--tx-max", type=int, default=8, help="transactions hold 1..TX_MAX changes")
    p.add_argument(
        "--gc-freeze", action="store_true", help="gc.freeze() after the initial load (a mitigation to compare)"
    )
    p.add_argument(
        "--gc-threshold", default=None, metavar="G0,G1,G2",
        help="gc.set_threshold(G0, G1, G2) before anything is loaded (a mitigation to compare)",
    )
    p.add_argument(
        "--no-app-gc", action="store_true",
        help="leave the collector at Python's defaults instead of LEA's policy (resources/gc_policy.py)",
    )
    p.add_argument(
        "--gc-automatic", action="store_true",
        help="LEA's previous policy in the window phase: the threshold and one freeze, collections triggered by "
        "allocations, instead of the scheduled collector (lea_app/app.py: schedule_collections)",
    )
    p.add_argument("--profile", default=None, help="cProfile the UI thread during the burst into this file")
    args = p.parse_args()
    if not args.no_app_gc:
        # What LEA does (resources/gc_policy.py): a higher threshold, and freeze once the first snapshot is in
        # (then the scheduled collector, unless --gc-automatic).
        raise_gc_threshold()
        args.gc_freeze = True
    args.gc_scheduled = not (args.no_app_gc or args.gc_automatic or args.gc_threshold)
    n_peers = args.peers or (1_800 if args.quick else 9_000)
    n_clusters = args.clusters or (200 if args.quick else 1_000)
    n_events = args.events or (4_000 if args.quick else 20_000)
    if args.gc_threshold:
        g0, g1, g2 = (int(x) for x in args.gc_threshold.split(","))
        gc.set_threshold(g0, g1, g2)

    with temp_dir(args.tmp_dir) as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        fleet = preload(root / "gui", n_peers, n_clusters)
        (root / "gui" / "lea.toml").write_text('durability = "off"\n', encoding="utf-8")  # as the preload
        shutil.copytree(root / "gui", root / "engine")
        txs: list[list[Op]] = make_burst(fleet, n_events, args.tx_max)
        save_plan(root / "plan.json", fleet, txs)
        os.environ["LEA_BENCH_PLAN"] = str(root / "plan.json")  # the children inherit it
        os.environ["LEA_BENCH_RESULT"] = str(root / "burst.json")
        del fleet
        setup = time.perf_counter() - t0
        kinds: dict[str, int] = {}
        for tx in txs:
            for kind, _, _ in tx:
                kinds[kind] = kinds.get(kind, 0) + 1
        gc.collect()

        t_app = time.perf_counter()
        app = QApplication.instance() or QApplication([])
        assert isinstance(app, QApplication)
        app.setQuitOnLastWindowClosed(False)  # as LEA does: quit after the backend has shut down
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        try:
            gui = loop.run_until_complete(
                gui_phase(
                    root / "gui", root / "lea.ini", root / "burst.json", n_peers, n_clusters, t_app, args.profile,
                    args.gc_freeze, args.gc_scheduled,
                )
            )
            gc.unfreeze()
            engine = loop.run_until_complete(
                engine_phase(root / "engine", root / "burst.json", n_peers + n_clusters, args.gc_freeze)
            )
        finally:
            loop.close()
        info = machine(root)

    if args.profile:
        pstats.Stats(args.profile).sort_stats("cumulative").print_stats(30)
    imports = T_IMPORTED - T_PROCESS
    gui_rate = gui.events / gui.applied
    gui_consistent_rate = gui.events / gui.consistent
    engine_rate = gui.events / engine.applied
    ok_paint = imports + gui.painted < 2.0
    ok_stall = gui.stall[0] < 0.05
    ok_p99 = gui.stall[1] < 0.02
    ok_ratio = gui_rate / engine_rate >= 0.9
    ok_resync = gui.resyncs == 0
    ok_consistent = not gui.problems
    print(f"machine: {info}")
    print(
        f"setup (not timed): {n_peers} peers + {n_clusters} clusters preloaded, "
        f"{len(txs)} burst transactions planned in {setup:.1f} s"
    )
    print(
        f"burst: {gui.events} events in {len(txs)} transactions of 1..{args.tx_max} "
        f"(cluster state / peer connection state / peer location): {kinds}"
    )
    if gui.problems or engine.problems:
        print(f"PROBLEMS: {gui.problems + engine.problems}")
    print(f"longest gaps with the window (after the burst started): {gui.worst}")
    print(f"longest gaps, engine alone: {engine.worst}")
    print(
        f"garbage collector during the burst: window run longest pause {gui.gc[0] * 1000:.0f} ms, "
        f"{gui.gc[1]} full collections; engine alone longest {engine.gc[0] * 1000:.0f} ms, {engine.gc[1]} full"
        + (" (gc.freeze() after the initial load)" if args.gc_freeze else "")
        + (f" (gc.set_threshold({args.gc_threshold}))" if args.gc_threshold else "")
    )
    print(
        f"collector pauses with the window by generation: {gui.gc_detail}"
        + (
            f" (scheduled collector: {gui.gc_old} old-generation collections + freeze, {gui.gc_full} "
            f"safety-net full collections, {gui.gc_growth:,} objects frozen during the burst, "
            f"~{gui.gc_survivors:,} young-collection survivors left for the old one)"
            if args.gc_scheduled else " (automatic collector)"
        )
    )
    print("--- results ---")
    print(f"imports (process start -> QApplication): {imports * 1000:.0f} ms")
    print(
        f"QApplication -> window shown {gui.window_shown * 1000:.0f} ms, live {gui.live * 1000:.0f} ms, "
        f"first paint with {gui.rows} resources {gui.painted * 1000:.0f} ms "
        f"(process start -> painted {(imports + gui.painted) * 1000:.0f} ms; target < 2000 ms: {verdict(ok_paint)})"
    )
    print(
        f"memory once painted: LEA's process {gui.rss:.0f} MiB, the backend's child {gui.child_rss:.0f} MiB; "
        f"LEA's process after the burst {gui.rss_after:.0f} MiB"
        + (f", after the quiet collection {gui.rss_idle:.0f} MiB" if gui.rss_idle else "")
    )
    if gui.idle_gc:
        print(f"scheduled collector once quiet after the burst: {gui.idle_gc}")
    print(
        f"burst stall with the window: longest {gui.stall[0] * 1000:.1f} ms (target < 50 ms: {verdict(ok_stall)}), "
        f"p99 {gui.stall[1] * 1000:.1f} ms (target < 20 ms: {verdict(ok_p99)}), {gui.stall[2]} gaps > 50 ms; "
        f"engine alone: longest {engine.stall[0] * 1000:.1f} ms, p99 {engine.stall[1] * 1000:.1f} ms"
    )
    print(
        f"UI-thread CPU in one gap (LEA's own work: no waits for CPU or GIL, no GC) "
        f"window {gui.stall[3] * 1000:.1f} ms, "
        f"engine alone {engine.stall[3] * 1000:.1f} ms"
    )
    print(
        f"resyncs during the burst (a subscription overflow in the child is one): {gui.resyncs} "
        f"(must be 0: {verdict(ok_resync)}); engine alone: {engine.resyncs}"
    )
    print(
        f"with the window: committed {gui.committed * 1000:.0f} ms, applied {gui.applied * 1000:.0f} ms, "
        f"tables consistent {gui.consistent * 1000:.0f} ms after the burst started "
        f"({gui.after_commit * 1000:.0f} ms after the last commit; consistent: {verdict(ok_consistent)})"
    )
    print(
        f"engine alone: committed {engine.committed * 1000:.0f} ms, applied {engine.applied * 1000:.0f} ms "
        "after the burst started"
    )
    print(
        f"events/s: window applied {gui_rate:,.0f}, window consistent {gui_consistent_rate:,.0f}, "
        f"engine alone {engine_rate:,.0f}"
    )
    print(
        f"ratio window/engine-alone events/s: applied {gui_rate / engine_rate:.2f}, "
        f"consistent {gui_consistent_rate / engine_rate:.2f} (applied: target >= 0.9: {verdict(ok_ratio)})"
    )
    # Timing targets print MET / MISSED; only wrong results (tables not consistent, a resync) fail.
    return 0 if ok_resync and ok_consistent and not engine.problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
