"""Fleet scale: one ``lea-backend serve``, PEERS demo peers, CLUSTERS deployed at once, WATCHERS LEA clients, 5 writers.

Processes on one machine (2 cores, shared: the figures are noisy):

- the fleet: CLUSTERS clusters of 4 demo peers (a leader with Ethernet + CAN, two CAN members, an
  Ethernet-only member, as bench/deploy.py) and one spare demo peer per cluster in no cluster: 500
  peers for 100 clusters;
- the server: ``python -m backend serve --data-dir D --port 0 --demo-delay-scale 0`` (default
  settings: durability full, auth on with an editor and a viewer token). Every peer is a demo peer
  whose simulated delays are zero, so what is measured is the backend: the manager, the
  ClusterDeploymentOperator, the demo broker's reports and the fan-out to every watcher;
- the writers (their own process): WRITERS threads, each a keep-alive ``http.client`` connection,
  each paced at RATE/WRITERS updates/s, each editing its own share of the spare peers in turn
  (``PUT /api/v1/peer/{id}`` with ``If-Match``, the ``location`` carrying ``time.monotonic()``),
  from before the deploy until it is over plus ``--tail`` seconds;
- this process: WATCHERS clients, each the code LEA runs (RemoteConnection, its WebSocket stream,
  SyncEngine, Store) on one asyncio loop, and the deploy: CLUSTERS ``PUT
  /api/v1/cluster/{id}/deployment`` at once (a pool of 10 HTTP connections).

Figures:

- time to all Deployed: first deployment PUT to the moment the server says every cluster is
  Deployed (``GET /api/v1/cluster_state`` polled every 50 ms from a thread) and to the moment
  watcher 0's Store shows it (the watchers share one process: on 2 cores they lag behind);
- server CPU per event: the server's CPU seconds (/proc) from the first deployment PUT until every
  watcher has caught up after the writers stopped, over the revisions assigned meanwhile;
- commit-to-watcher p50/p99 over every (watcher, event) pair: wall clock when the watcher's Store
  applied the event minus the event's ``at`` (taken when the manager staged it, before its commit:
  an upper bound); and writer-to-watcher for the writers' edits (``time.monotonic()`` before the
  PUT to the apply: HTTP, validation, commit, fan-out and the client's parsing);
- peak RSS of the server (VmHWM);
- convergence: at the end every watcher's Store equals ``GET /api/v1/snapshot`` (same revision,
  same resources) and no watcher applied a revision twice (or saw a resync).

    .venv/bin/python bench/fleet.py [--quick] [--clusters N] [--watchers N] [--rate R] [--tail S]
"""

from __future__ import annotations

import asyncio
import http.client
import json
import multiprocessing
import queue
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _common import machine, paced, parser, percentile, temp_dir, verdict
from remote_fanout import cli, embedded_time, process_cpu, stamped, start_server

PEERS_PER_CLUSTER = 4
#: Peers in no cluster, one per cluster, edited by the writers (a member of a deployed cluster may not be).
SPARE_PER_CLUSTER = 1
WRITERS = 5
DEADLINE = 600.0


def rss_peak_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM) in MiB (NaN when unknown)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


# -- the writers' process ------------------------------------------------------------------------
def writers_process(url: str, token: str, peers_json: list[str], rate: float, stop: Any, results: Any) -> None:
    """WRITERS threads editing their share of the peers at ``rate`` in all, until ``stop`` is set."""
    from resources.peer import PeerDescriptor

    parts = urlsplit(url)
    peers = [PeerDescriptor.model_validate_json(p) for p in peers_json]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    done: list[tuple[int, float, float]] = []  # (revision, sent, acknowledged)
    errors: list[str] = []
    lock = threading.Lock()

    def writer(w: int) -> None:
        mine = peers[w::WRITERS]
        versions = [p.version for p in mine]
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)

        count = 0

        def one(_i: int, _now: float) -> None:
            nonlocal count
            k, count = count % len(mine), count + 1
            body = stamped(mine[k])
            t_sent = embedded_time(body)
            assert t_sent is not None
            conn.request(
                "PUT", f"/api/v1/peer/{body.id}", body=body.model_dump_json().encode(),
                headers={**headers, "If-Match": f'"{versions[k]}"'},
            )
            response = conn.getresponse()
            payload = response.read()
            t_ack = time.monotonic()
            with lock:
                if response.status != 200:
                    errors.append(f"HTTP {response.status}: {payload[:160]!r}")
                    return
                data = json.loads(payload)
                versions[k] = data["version"]
                done.append((data["revision"], t_sent, t_ack))

        # Paced a second at a time (each writer's PUTs one after another), until told to stop.
        while not stop.is_set():
            paced(rate / WRITERS, 1.0, one, time.monotonic)
        conn.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    cpu = time.process_time()
    for t in threads:
        t.start()
    results.put("started")
    for t in threads:
        t.join()
    results.put((done, errors, time.process_time() - cpu))


# -- the watchers (this process) -----------------------------------------------------------------
@dataclass
class Outcome:
    deploy_wall: float = 0.0
    deploy_server: float = 0.0
    deploy_events: int = 0
    events: int = 0
    server_cpu: float = 0.0
    clients_cpu: float = 0.0
    writer_cpu: float = 0.0
    rss_mib: float = 0.0
    commit_to_watcher: list[float] = field(default_factory=list)
    writer_to_watcher: list[float] = field(default_factory=list)
    round_trips: list[float] = field(default_factory=list)
    edits: int = 0
    resyncs: int = 0
    problems: list[str] = field(default_factory=list)


async def run_watchers(
    url: str, viewer: str, editor: str, n_watchers: int, clusters: list[Any], peer_ids: set[Any],
    start_writers: Any, stop_writers: Any, server_pid: int, tail: float, out: Outcome,
) -> None:
    import httpx

    from lea_app.connection.remote import RemoteConnection
    from lea_app.sync.engine import SyncEngine, SyncState
    from lea_app.sync.store import Store
    from resources.events import Event
    from resources.kinds import ResourceKind
    from resources.state import ClusterState, Deployed, Failed, PeerConnectionState

    class CountingStore(Store):
        def __init__(self) -> None:
            super().__init__()
            self.revisions: list[int] = []
            self.latency: list[float] = []
            self.edits: list[float] = []

        def apply_events(self, events: Iterable[Event]) -> None:
            wall, mono = time.time(), time.monotonic()
            batch = list(events)
            for event in batch:
                self.revisions.append(event.revision)
                self.latency.append(wall - event.at.timestamp())
                sent = embedded_time(event.resource)
                if sent is not None:
                    self.edits.append(mono - sent)
            super().apply_events(batch)

    def online(store: Store) -> int:
        return sum(
            1 for r in store.of_kind(ResourceKind.PEER_CONNECTION_STATE).values()
            if isinstance(r, PeerConnectionState) and r.online and r.id in peer_ids
        )

    def settled(store: Store) -> tuple[int, list[str]]:
        """(clusters Deployed or Failed, reasons of the failed)."""
        states = store.of_kind(ResourceKind.CLUSTER_STATE)
        n, failed = 0, []
        for c in clusters:
            state = states.get(c.id)
            if isinstance(state, ClusterState) and isinstance(state.state, Deployed | Failed):
                n += 1
                if isinstance(state.state, Failed):
                    failed.append(state.state.reason)
        return n, failed

    async def until(what: str, ok: Any, timeout: float = DEADLINE) -> None:
        deadline = time.monotonic() + timeout
        while not ok():
            if time.monotonic() > deadline:
                raise SystemExit(f"fleet: {what} did not happen within {timeout:g} s")
            await asyncio.sleep(0.02)

    connections = [RemoteConnection(url, viewer) for _ in range(n_watchers)]
    stores = [CountingStore() for _ in range(n_watchers)]
    engines = [SyncEngine(c, s) for c, s in zip(connections, stores, strict=True)]
    tasks = [asyncio.ensure_future(e.run()) for e in engines]
    loop = asyncio.get_running_loop()
    try:
        await until("every watcher LIVE", lambda: all(e.state == SyncState.LIVE for e in engines))
        await until("every demo peer online", lambda: online(stores[0]) == len(peer_ids))
        await loop.run_in_executor(None, start_writers)
        first = engines[0].revision or 0
        for store in stores:  # only what happens from here on is measured
            store.revisions.clear()
            store.latency.clear()
            store.edits.clear()
        cpu0, clients0 = process_cpu(server_pid), time.process_time()
        started = time.perf_counter()

        def deploy_all() -> list[str]:
            errors = []
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {editor}"}, timeout=120) as http:
                def one(c: Any) -> None:
                    r = http.put(f"/api/v1/cluster/{c.id}/deployment")
                    if r.status_code != 200:
                        errors.append(f"HTTP {r.status_code}: {r.text[:160]}")
                with ThreadPoolExecutor(max_workers=10) as pool:
                    list(pool.map(one, clusters))
            return errors

        def server_deployed() -> float:
            ids = {str(c.id) for c in clusters}
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {viewer}"}, timeout=120) as http:
                while time.perf_counter() - started < DEADLINE:
                    states = http.get("/api/v1/cluster_state").json()
                    done = {s["id"] for s in states if s["state"]["status"] in ("deployed", "failed")}
                    if ids <= done:
                        return time.perf_counter() - started
                    time.sleep(0.05)
            return float("nan")

        deploy = loop.run_in_executor(None, deploy_all)
        server_done = loop.run_in_executor(None, server_deployed)
        await until("every cluster Deployed", lambda: settled(stores[0])[0] == len(clusters))
        out.deploy_wall = time.perf_counter() - started
        out.deploy_events = (engines[0].revision or 0) - first
        out.problems += await deploy
        out.deploy_server = await server_done
        out.problems += [f"cluster failed: {reason}" for reason in settled(stores[0])[1][:3]]
        await asyncio.sleep(tail)
        done, errors, out.writer_cpu = await loop.run_in_executor(None, stop_writers)
        out.problems += errors[:3]
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {viewer}"}, timeout=120) as http:
            snapshot = http.get("/api/v1/snapshot").json()
        last = snapshot["revision"]
        await until("every watcher caught up", lambda: all((e.revision or 0) >= last for e in engines))
        out.server_cpu = process_cpu(server_pid) - cpu0
        out.clients_cpu = time.process_time() - clients0
        out.events = last - first
        out.rss_mib = rss_peak_mib(server_pid)
        out.edits = len(done)
        out.round_trips = [ack - sent for _, sent, ack in done]
        # Convergence: every Store equals the snapshot; no revision applied twice.
        from resources.events import StateSnapshot

        wanted = {(r.kind, r.id): r for r in StateSnapshot.model_validate(snapshot).resources}
        for k, (engine, store) in enumerate(zip(engines, stores, strict=True)):
            have = {(r.kind, r.id): r for r in store.resources()}
            if engine.revision != last or have != wanted:
                out.problems.append(
                    f"watcher {k} did not converge (revision {engine.revision} vs {last}, "
                    f"{len(have)} vs {len(wanted)} resources)"
                )
            if len(set(store.revisions)) != len(store.revisions):
                out.problems.append(f"watcher {k} applied a revision twice")
            if store.revisions != sorted(store.revisions):
                out.problems.append(f"watcher {k} applied revisions out of order")
            out.commit_to_watcher += store.latency
            out.writer_to_watcher += store.edits
        out.resyncs = sum(e.resyncs for e in engines)
        if out.resyncs:
            out.problems.append(f"{out.resyncs} resyncs")
    finally:
        for engine in engines:
            await engine.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for connection in connections:
            await connection.close()


def run(data_dir: Path, n_clusters: int, n_watchers: int, rate: float, tail: float) -> Outcome:
    import httpx

    from tests.helpers.factories import make_cluster, make_peer

    data_dir.mkdir(parents=True)
    editor = cli(data_dir, "token", "create", "--role", "editor", "--name", "fleet-writer")
    viewer = cli(data_dir, "token", "create", "--role", "viewer", "--name", "fleet-watcher")
    proc, url = start_server(data_dir, "--demo-delay-scale", "0")
    out = Outcome()
    try:
        peers, clusters = [], []
        spares = [make_peer(f"fleet-spare-{s:03d}", demo=True) for s in range(n_clusters * SPARE_PER_CLUSTER)]
        for c in range(n_clusters):
            members = [
                make_peer(f"fleet-{c:03d}-{m}", devices=2, can=m < 3, demo=True) for m in range(PEERS_PER_CLUSTER)
            ]
            peers += members
            clusters.append(make_cluster(f"fleet-cluster-{c:03d}", members[0], *members[1:]))
        stored = []
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {editor}"}, timeout=120) as http:
            for resource, path in [*((p, "peer") for p in [*spares, *peers]), *((c, "cluster") for c in clusters)]:
                r = http.put(
                    f"/api/v1/{path}/{resource.id}", content=resource.model_dump_json(),
                    headers={"If-None-Match": "*", "Content-Type": "application/json"},
                )
                r.raise_for_status()
                if resource in spares:
                    stored.append(resource.model_copy(update={"version": r.json()["version"]}).model_dump_json())
        context = multiprocessing.get_context("spawn")
        results: Any = context.Queue()
        stop = context.Event()
        writers = context.Process(target=writers_process, args=(url, editor, stored, rate, stop, results))

        def get(timeout: float) -> Any:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    return results.get(timeout=1)
                except queue.Empty:
                    if not writers.is_alive() or time.monotonic() > deadline:
                        raise SystemExit(f"the writers' process failed (exit status {writers.exitcode})") from None

        def start_writers() -> None:
            writers.start()
            assert get(120) == "started"

        def stop_writers() -> Any:
            stop.set()
            outcome = get(120)
            writers.join(60)
            return outcome

        asyncio.run(run_watchers(
            url, viewer, editor, n_watchers, clusters, {p.id for p in [*spares, *peers]}, start_writers, stop_writers,
            proc.pid, tail, out,
        ))
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except Exception:
            proc.kill()
    return out


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--clusters", type=int, help=f"clusters of {PEERS_PER_CLUSTER} peers (default 100, quick 20)")
    p.add_argument("--watchers", type=int, help="WebSocket watchers (default 50, quick 10)")
    p.add_argument("--rate", type=float, help="peer edits per second, all writers (default 100, quick 50)")
    p.add_argument("--tail", type=float, help="seconds the writers go on after the deploy (default 5, quick 2)")
    args = p.parse_args()
    n_clusters = args.clusters or (20 if args.quick else 100)
    n_watchers = args.watchers or (10 if args.quick else 50)
    rate = args.rate or (50.0 if args.quick else 100.0)
    tail = args.tail if args.tail is not None else (2.0 if args.quick else 5.0)
    with temp_dir(args.tmp_dir) as tmp:
        out = run(Path(tmp) / "data", n_clusters, n_watchers, rate, tail)
        info = machine(Path(tmp))
    lat, edits, rtt = sorted(out.commit_to_watcher), sorted(out.writer_to_watcher), sorted(out.round_trips)
    print(f"machine: {info}")
    print(
        f"{n_clusters * (PEERS_PER_CLUSTER + SPARE_PER_CLUSTER)} demo peers (delay 0), {n_clusters} clusters "
        f"of {PEERS_PER_CLUSTER} deployed at once, "
        f"{n_watchers} watchers, {WRITERS} writers at {rate:g} edits/s in all"
    )
    print(
        f"time to all Deployed:          {out.deploy_server:8.2f} s at the server, {out.deploy_wall:.2f} s in "
        f"watcher 0 ({out.deploy_events:,} events meanwhile)"
    )
    print(
        f"server CPU per event:          {out.server_cpu / max(1, out.events) * 1e6:8,.0f} us "
        f"({out.server_cpu:.2f} s for {out.events:,} events; watchers' process {out.clients_cpu:.2f} s, "
        f"writers {out.writer_cpu:.2f} s)"
    )
    print(
        f"commit-to-watcher (at -> applied, {len(lat):,} pairs): p50 {percentile(lat, 50) * 1000:.1f} ms, "
        f"p99 {percentile(lat, 99) * 1000:.1f} ms"
    )
    print(
        f"writer-to-watcher ({out.edits:,} edits, {len(edits):,} pairs): p50 {percentile(edits, 50) * 1000:.1f} ms, "
        f"p99 {percentile(edits, 99) * 1000:.1f} ms; PUT round trip p50 {percentile(rtt, 50) * 1000:.1f} ms, "
        f"p99 {percentile(rtt, 99) * 1000:.1f} ms"
    )
    print(f"server peak RSS:               {out.rss_mib:8.0f} MiB")
    converged = not out.problems
    print(
        f"every watcher converged, no revision applied twice: {verdict(converged)}"
        + ("" if converged else f" ({'; '.join(out.problems[:5])})")
    )


if __name__ == "__main__":
    main()
