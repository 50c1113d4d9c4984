"""Start-up of LEA's embedded backend, stage by stage: child process start -> snapshot in LEA's store.

The stages of ``bench/gui_burst.py``'s first paint that do not need a window, each timed on its own so
that a change to one shows independently of the machine's load (CPU seconds next to wall seconds):

* **child ready**: ``BackendProcess.spawn`` (the real ``lea-backend serve --child``) until its ready
  line; the child's CPU time then (``/proc/PID/stat``), and the child's own breakdown when it logs
  one (``start-up:`` in ``logs/backend.log``: interpreter + imports, restore, server set-up, CPU);
* **snapshot**: LEA's ``RemoteConnection.fetch_snapshot`` against it - wall time, LEA's CPU (HTTP
  client, JSON, validation) and the child's CPU meanwhile (building and sending 5 MB);
* **store**: ``Store.apply_snapshot`` of that snapshot (CPU);
* **restore in-process**: ``backend.restore.restore_state`` on the same database, read-only, with
  Python's default collector and with the raised threshold (CPU; what the child's restore costs).

Setup (not timed): PEERS + CLUSTERS (9,000 + 1,000; ``--quick`` 1,800 + 200) written as
``bench/gui_burst.py`` does, durability off, the backend closed (its final checkpoint is what a
start restores). ROUNDS rounds (default 5); medians and minima of each stage are printed. LEA's
process applies LEA's collector policy (``resources/gc_policy.py``) as ``lea`` does.

    .venv/bin/python bench/startup_stages.py [--quick] [--rounds N]
"""

from __future__ import annotations

import asyncio
import gc
import re
import sys
import time
from pathlib import Path

from _burst import preload
from _common import machine, median, parser, temp_dir

from lea_app.connection.process import BackendProcess, ChildOptions
from lea_app.connection.remote import RemoteConnection
from lea_app.sync.store import Store
from resources.gc_policy import raise_gc_threshold

TICKS = 100  # os.sysconf("SC_CLK_TCK") on Linux


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def child_breakdown(data_dir: Path, after: int) -> str:
    """The child's own ``start-up:`` line in logs/backend.log, after byte ``after``."""
    log = data_dir / "logs" / "backend.log"
    try:
        text = log.read_bytes()[after:].decode("utf-8", "replace")
    except OSError:
        return ""
    found = re.findall(r"start-up: (.*)", text)
    return found[-1] if found else ""


def log_size(data_dir: Path) -> int:
    try:
        return (data_dir / "logs" / "backend.log").stat().st_size
    except OSError:
        return 0


async def one_round(data_dir: Path) -> dict[str, float | str]:
    out: dict[str, float | str] = {}
    offset = log_size(data_dir)
    t0 = time.perf_counter()
    process = BackendProcess.spawn(ChildOptions(data_dir))
    try:
        info = await process.wait_ready()
        out["ready_wall"] = time.perf_counter() - t0
        out["ready_cpu"] = cpu_of(process.pid)
        remote = RemoteConnection(info.url, process.token)
        try:
            child_before, lea_before, t1 = cpu_of(process.pid), time.thread_time(), time.perf_counter()
            snapshot = await remote.fetch_snapshot()
            out["snapshot_wall"] = time.perf_counter() - t1
            out["snapshot_lea_cpu"] = time.thread_time() - lea_before
            out["snapshot_child_cpu"] = cpu_of(process.pid) - child_before
        finally:
            await remote.close()
        before = time.thread_time()
        store = Store()
        store.apply_snapshot(snapshot)
        out["store_cpu"] = time.thread_time() - before
        out["resources"] = len(store)
        del store, snapshot
        gc.collect()
    finally:
        await process.stop()
    out["child"] = child_breakdown(data_dir, offset)
    return out


def restore_cpu(db: Path, threshold: tuple[int, int, int] | None) -> float:
    """CPU seconds of ``restore_state`` on ``db`` (read-only) in a fresh interpreter."""
    import subprocess

    code = (
        "import gc, time\n"
        "from backend.storage.sqlite import SqliteEventStore\n"
        "from backend.restore import restore_state\n"
        f"threshold = {threshold!r}\n"
        "gc.set_threshold(*threshold) if threshold else None\n"
        f"store = SqliteEventStore({str(db)!r}, read_only=True)\n"
        "t = time.process_time(); restore_state(store); print(time.process_time() - t)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(result.stdout.strip())


def main() -> int:
    p = parser(__doc__.splitlines()[0] if __doc__ else "start-up stages")
    p.add_argument("--rounds", type=int, default=None)
    args = p.parse_args()
    rounds = args.rounds or (2 if args.quick else 5)
    n_peers, n_clusters = (1_800, 200) if args.quick else (9_000, 1_000)
    raise_gc_threshold()  # LEA's policy (lea_app/app.py: tune_gc) before it connects
    with temp_dir(args.tmp_dir) as tmp:
        data_dir = Path(tmp) / "data"
        preload(data_dir, n_peers, n_clusters)
        (data_dir / "lea.toml").write_text('durability = "off"\n', encoding="utf-8")
        results = []
        restores: dict[str, list[float]] = {"default": [], "raised": []}
        for i in range(rounds):
            results.append(asyncio.run(one_round(data_dir)))
            restores["default" if i % 2 == 0 else "raised"].append(
                restore_cpu(data_dir / "lea.db", None if i % 2 == 0 else (50_000, 20, 100))
            )
            restores["raised" if i % 2 == 0 else "default"].append(
                restore_cpu(data_dir / "lea.db", (50_000, 20, 100) if i % 2 == 0 else None)
            )
        info = machine(data_dir)

    def stage(key: str) -> str:
        values = [float(r[key]) * 1000 for r in results]
        return f"median {median(values):.0f} ms, min {min(values):.0f} ms"

    print(f"machine: {info}")
    resources = results[0]["resources"]
    print(f"{n_peers} peers + {n_clusters} clusters ({resources} resources in the store), {rounds} rounds")
    for r in results:
        if r["child"]:
            print(f"  child's own breakdown: {r['child']}")
    print("--- results ---")
    print(f"child: spawn -> ready line: wall {stage('ready_wall')}; child CPU by then {stage('ready_cpu')}")
    print(
        f"snapshot (fetch_snapshot): wall {stage('snapshot_wall')}; LEA CPU {stage('snapshot_lea_cpu')}; "
        f"child CPU {stage('snapshot_child_cpu')}"
    )
    print(f"Store.apply_snapshot: CPU {stage('store_cpu')}")
    for name, values in restores.items():
        print(
            f"restore_state in-process, {name} GC threshold: CPU median {median(values) * 1000:.0f} ms, "
            f"min {min(values) * 1000:.0f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
