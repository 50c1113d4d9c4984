"""Remote fan-out: CLIENTS LEA clients watch a real ``lea-backend serve`` while a writer changes RATE peers/s.

Three processes on one machine:

- the server: ``python -m backend serve --data-dir D --port 0`` (default settings: durability
  full, every commit group fsync'd), with an editor and a viewer token;
- the writer (its own process; keep-alive ``http.client`` connections from a thread pool, light on
  CPU): open loop, paced at RATE updates/s for SECONDS s, each an HTTP ``PUT /api/v1/peer/{id}``
  with ``If-Match`` (a durable descriptor update, not a volatile one) of one of PEERS peers in turn
  (each peer every PEERS/RATE s), whose ``location`` carries ``bench@<time.monotonic()>@<time.time()>``
  read just before the request is sent;
- this process: CLIENTS watching clients, each the code LEA runs (RemoteConnection, its WebSocket
  event stream, SyncEngine, Store) on one asyncio loop.

Latency, as measured here: **send-to-client** = ``time.monotonic()`` when a client's Store applies
the event, minus the time embedded in the resource (CLOCK_MONOTONIC is one clock for every process
of the machine). It contains the whole path: HTTP request, validation, the durable commit, the
server's fan-out, the WebSocket frame, JSON parsing and the engine's checks in the client; so it
is an upper bound of commit-to-client. Percentiles are over every (client, event) pair. Also
printed: the writer's PUT round trip (send to response); a breakdown at the event's ``at`` (wall
clock, taken when the manager stages the write, before the durable commit); the CPU seconds each
process used per update during the timed phase.

Reference, same run, same rate, same number of subscribers: a Backend in this process (same
settings, durability full), the same ``actions.store_peer_descriptor`` from a thread pool, paced
the same way, and CLIENTS threads draining ``manager.subscribe()``: send-to-subscriber.
Ratio = remote / in-process percentile. Target: remote p99 < 50 ms.

    .venv/bin/python bench/remote_fanout.py [--quick] [--clients N] [--rate R] [--seconds S]
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import ROOT, machine, paced, parser, percentile, temp_dir, verdict

PREFIX = "bench@"


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)  # seconds, every (client, event) pair
    round_trips: list[float] = field(default_factory=list)  # writer: send -> response
    staging: list[float] = field(default_factory=list)  # send -> write staged by the manager (wall clock)
    sent: int = 0
    elapsed: float = 0.0
    max_behind: float = 0.0
    resyncs: int = 0
    problems: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process during the timed phase

    def breakdown(self) -> str:
        """Send -> staged (the event's ``at``) and the rest (commit, fan-out, delivery), p50/p99."""
        staged = sorted(self.staging)
        rest = sorted(lat - st for lat, st in zip(self.latencies, self.staging, strict=True))
        return (
            f"send->staged p50 {percentile(staged, 50) * 1000:.2f} / p99 {percentile(staged, 99) * 1000:.2f} ms, "
            f"staged->client p50 {percentile(rest, 50) * 1000:.2f} / p99 {percentile(rest, 99) * 1000:.2f} ms"
        )

    def summary(self) -> tuple[float, float, float]:
        lat = sorted(self.latencies)
        p50, p99, worst = percentile(lat, 50), percentile(lat, 99), (lat[-1] if lat else float("nan"))
        rate = self.sent / self.elapsed if self.elapsed else 0.0
        print(
            f"{self.name:>10}: {self.sent:,} updates in {self.elapsed:.2f} s ({rate:,.0f}/s, "
            f"max {self.max_behind * 1000:.1f} ms behind schedule), {len(lat):,} deliveries: "
            f"p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, max {worst * 1000:.2f} ms; "
            f"{'all delivered' if not self.problems else self.problems[:3]}",
            flush=True,
        )
        return p50, p99, worst


def embedded_time(resource: Any) -> float | None:
    """The writer's time.monotonic() just before it sent the update (None: not a bench update)."""
    location = getattr(resource, "location", None)
    if isinstance(location, str) and location.startswith(PREFIX):
        return float(location[len(PREFIX):].split("@")[0])
    return None


def staging_delay(event: Any) -> float:
    """Wall-clock seconds from the writer's send to the manager staging the write (the event's ``at``)."""
    wall_sent = float(event.resource.location.split("@")[2])
    return float(event.at.timestamp()) - wall_sent


def stamped(peer: Any) -> Any:
    return peer.model_copy(update={"location": f"{PREFIX}{time.monotonic():.6f}@{time.time():.6f}"})


# -- the server ----------------------------------------------------------------------------------
def cli(data_dir: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "backend", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=120, check=True, cwd=ROOT,
    )
    return result.stdout.strip()


def start_server(data_dir: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend", "serve", "--data-dir", str(data_dir), "--port", "0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    out = proc.stdout

    def pump() -> None:
        for line in out:
            lines.put(line)
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    while True:
        line = lines.get(timeout=120)
        if not line:
            raise SystemExit(f"the server exited with status {proc.wait()}")
        if line.startswith("lea-backend: serving ") and " on " in line:
            return proc, line.split(" on ", 1)[1].split()[0]


# -- the writer process --------------------------------------------------------------------------
def writer_process(
    url: str, token: str, peers_json: list[str], rate: float, seconds: float, results: Any
) -> None:
    """Paced HTTP PUTs with If-Match, open loop: a thread pool of keep-alive ``http.client``
    connections (light on CPU, so the writer disturbs the measurement little). Sends back
    ([(revision, t_sent, t_ack)], errors, max behind schedule, elapsed, the writer's CPU seconds)."""
    import http.client
    import json
    from urllib.parse import urlsplit

    from resources.peer import PeerDescriptor

    parts = urlsplit(url)
    peers = [PeerDescriptor.model_validate_json(p) for p in peers_json]
    versions = [p.version for p in peers]
    busy = [threading.Lock() for _ in peers]
    local = threading.local()
    done: list[tuple[int, float, float]] = []
    errors: list[str] = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def put(k: int) -> None:
        with busy[k]:  # the same peer again before its previous update returned: wait for it
            if getattr(local, "http", None) is None:
                local.http = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
            body = stamped(peers[k])
            t_sent = embedded_time(body)
            assert t_sent is not None
            local.http.request(
                "PUT", f"/api/v1/peer/{body.id}", body=body.model_dump_json().encode(),
                headers={**headers, "If-Match": f'"{versions[k]}"'},
            )
            response = local.http.getresponse()
            payload = response.read()
            t_ack = time.monotonic()
            if response.status != 200:
                errors.append(f"HTTP {response.status}: {payload[:120]!r}")
                return
            data = json.loads(payload)
            versions[k] = data["version"]
            done.append((data["revision"], t_sent, t_ack))

    cpu = time.process_time()
    futures: list[Future[None]] = []
    with ThreadPoolExecutor(max_workers=16) as pool:
        pacing = paced(rate, seconds, lambda i, _now: futures.append(pool.submit(put, i % len(peers))), time.monotonic)
        for f in futures:
            f.result()
        elapsed = time.monotonic() - pacing.start
    results.put((done, errors, pacing.max_behind, elapsed, time.process_time() - cpu))


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


# -- remote clients (this process) ---------------------------------------------------------------
async def remote_clients(
    url: str, viewer: str, clients: int, start_writer: Any, server_pid: int, result: Result
) -> None:
    from lea_app.connection.remote import RemoteConnection
    from lea_app.sync.engine import SyncEngine, SyncState
    from lea_app.sync.store import Store
    from resources.events import Event

    class LatencyStore(Store):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[tuple[int, float]] = []
            self.staging: list[float] = []

        def apply_events(self, events: Iterable[Event]) -> None:
            now = time.monotonic()
            batch = list(events)
            for event in batch:
                sent = embedded_time(event.resource)
                if sent is not None:
                    self.seen.append((event.revision, now - sent))
                    self.staging.append(staging_delay(event))
            super().apply_events(batch)

    connections = [RemoteConnection(url, viewer) for _ in range(clients)]
    stores = [LatencyStore() for _ in range(clients)]
    engines = [SyncEngine(c, s) for c, s in zip(connections, stores, strict=True)]
    tasks = [asyncio.ensure_future(e.run()) for e in engines]
    try:
        deadline = time.monotonic() + 120
        while not all(e.state == SyncState.LIVE for e in engines):
            if time.monotonic() > deadline:
                raise SystemExit("the clients did not get live within 120 s")
            await asyncio.sleep(0.05)
        server_cpu, clients_cpu = process_cpu(server_pid), time.process_time()
        outcome = await asyncio.get_running_loop().run_in_executor(None, start_writer)
        done, errors, max_behind, elapsed, writer_cpu = outcome
        result.sent, result.max_behind, result.elapsed = len(done), max_behind, elapsed
        result.cpu = {
            "server": process_cpu(server_pid) - server_cpu,
            "clients": time.process_time() - clients_cpu,
            "writer": writer_cpu,
        }
        result.problems += errors[:3]
        result.round_trips = [t_ack - t_sent for _, t_sent, t_ack in done]
        last = max((rev for rev, _, _ in done), default=0)
        deadline = time.monotonic() + 120
        while not all((e.revision or 0) >= last for e in engines):
            if time.monotonic() > deadline:
                result.problems.append("not every client caught up within 120 s")
                break
            await asyncio.sleep(0.05)
        wanted = sorted(rev for rev, _, _ in done)
        for k, store in enumerate(stores):
            got = [rev for rev, _ in store.seen]
            if got != wanted:
                result.problems.append(f"client {k} applied {len(got)} of the {len(wanted)} updates")
            result.latencies += [lat for _, lat in store.seen]
            result.staging += store.staging
        result.resyncs = sum(e.resyncs for e in engines)
        if result.resyncs:
            result.problems.append(f"{result.resyncs} resyncs")
    finally:
        for engine in engines:
            await engine.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for connection in connections:
            await connection.close()


def remote_run(data_dir: Path, peers: int, clients: int, rate: float, seconds: float) -> Result:
    import httpx

    from tests.helpers.factories import make_peer

    result = Result("remote")
    data_dir.mkdir(parents=True)
    editor = cli(data_dir, "token", "create", "--role", "editor", "--name", "bench-writer")
    viewer = cli(data_dir, "token", "create", "--role", "viewer", "--name", "bench-watcher")
    proc, url = start_server(data_dir)
    try:
        created = []
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {editor}"}, timeout=60) as http:
            for i in range(peers):
                peer = make_peer(f"remote-{i:04d}", devices=2)
                response = http.put(
                    f"/api/v1/peer/{peer.id}", content=peer.model_dump_json(),
                    headers={"If-None-Match": "*", "Content-Type": "application/json"},
                )
                response.raise_for_status()
                created.append(peer.model_copy(update={"version": response.json()["version"]}).model_dump_json())
        context = multiprocessing.get_context("spawn")
        results: Any = context.Queue()
        writer = context.Process(target=writer_process, args=(url, editor, created, rate, seconds, results))

        def start_writer() -> Any:
            writer.start()
            deadline = time.monotonic() + seconds + 300
            while True:
                try:
                    outcome = results.get(timeout=1)
                    break
                except queue.Empty:
                    if not writer.is_alive() or time.monotonic() > deadline:
                        raise SystemExit(f"the writer process failed (exit status {writer.exitcode})") from None
            writer.join(60)
            return outcome

        asyncio.run(remote_clients(url, viewer, clients, start_writer, proc.pid, result))
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return result


# -- in-process reference --------------------------------------------------------------------------
def in_process_run(data_dir: Path, peers: int, clients: int, rate: float, seconds: float) -> Result:
    from backend.actions import store_peer_descriptor
    from backend.backend import Backend
    from resources.wire import EventBatch, Resync
    from tests.helpers.factories import make_peer

    result = Result("in-process")
    backend = Backend(data_dir).start()  # the server's defaults: durability full
    manager = backend.manager
    threads: list[threading.Thread] = []
    seen: list[list[tuple[int, float]]] = [[] for _ in range(clients)]
    staging: list[list[float]] = [[] for _ in range(clients)]
    try:
        current = []
        for i in range(peers):
            peer = make_peer(f"local-{i:04d}", devices=2)
            written = store_peer_descriptor(manager, peer, "bench", create_only=True)
            current.append(peer.model_copy(update={"version": written.version}))
        subs = [manager.subscribe() for _ in range(clients)]

        def subscriber(k: int) -> None:
            for item in subs[k]:
                now = time.monotonic()
                if isinstance(item, EventBatch):
                    for event in item.events:
                        sent = embedded_time(event.resource)
                        if sent is not None:
                            seen[k].append((event.revision, now - sent))
                            staging[k].append(staging_delay(event))
                elif isinstance(item, Resync):
                    result.problems.append(f"subscriber {k} got a Resync: {item.reason}")

        threads = [threading.Thread(target=subscriber, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        locks = [threading.Lock() for _ in current]
        done: list[tuple[int, float, float]] = []

        def put(k: int) -> None:
            with locks[k]:
                body = stamped(current[k])
                t_sent = embedded_time(body)
                assert t_sent is not None
                written = store_peer_descriptor(manager, body, "bench", current[k].version)
                done.append((written.revision, t_sent, time.monotonic()))
                current[k] = body.model_copy(update={"version": written.version})

        futures: list[Future[None]] = []
        cpu = time.process_time()
        with ThreadPoolExecutor(max_workers=16) as pool:
            pacing = paced(rate, seconds, lambda i, _now: futures.append(pool.submit(put, i % peers)), time.monotonic)
            for f in futures:
                f.result()
            result.elapsed = time.monotonic() - pacing.start
            result.max_behind = pacing.max_behind
        result.cpu = {"process": time.process_time() - cpu}
        result.sent = len(done)
        result.round_trips = [t_ack - t_sent for _, t_sent, t_ack in done]
        last = max(rev for rev, _, _ in done)
        deadline = time.monotonic() + 60
        while any((s[-1][0] if s else 0) < last for s in seen) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        backend.close()  # finishes every subscription: the subscriber threads end
        for t in threads:
            t.join(60)
    wanted = sorted(rev for rev, _, _ in done)
    for k, got in enumerate(seen):
        if [rev for rev, _ in got] != wanted:
            result.problems.append(f"subscriber {k} got {len(got)} of the {len(wanted)} updates")
        result.latencies += [lat for _, lat in got]
        result.staging += staging[k]
    return result


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--rate", type=float, default=200.0, help="peer updates per second (default 200)")
    p.add_argument("--seconds", type=float, default=None, help="default 20 (quick 4)")
    p.add_argument("--peers", type=int, default=200, help="peers updated in turn (default 200)")
    args = p.parse_args()
    seconds = args.seconds or (4.0 if args.quick else 20.0)

    with temp_dir(args.tmp_dir) as tmp:
        remote = remote_run(Path(tmp) / "server", args.peers, args.clients, args.rate, seconds)
        r50, r99, _ = remote.summary()
        local = in_process_run(Path(tmp) / "local", args.peers, args.clients, args.rate, seconds)
        l50, l99, _ = local.summary()
        info = machine(Path(tmp))

    ok = not remote.problems and not local.problems
    rt = sorted(remote.round_trips)
    lrt = sorted(local.round_trips)
    print()
    print(f"machine: {info}")
    print(f"{args.clients} clients, {args.rate:,.0f} peer updates/s (HTTP PUT with If-Match, durable) "
          f"for {seconds:g} s over {args.peers} peers; latency = time embedded in the peer's location just "
          "before the PUT -> time the client's Store applied the event (time.monotonic, one clock for every process)")
    print(f"writer PUT round trip: p50 {percentile(rt, 50) * 1000:.2f} ms, p99 {percentile(rt, 99) * 1000:.2f} ms; "
          f"in-process store_peer_descriptor: p50 {percentile(lrt, 50) * 1000:.2f} ms, "
          f"p99 {percentile(lrt, 99) * 1000:.2f} ms")
    print(f"breakdown, remote: {remote.breakdown()} (wall clock; the event's `at` is taken when the manager "
          "stages the write, before its durable commit)")
    print(f"breakdown, in-process: {local.breakdown()}")
    per_update = {k: v / max(1, remote.sent) * 1000 for k, v in remote.cpu.items()}
    print("CPU per update (ms): remote " + ", ".join(f"{k} {v:.2f}" for k, v in per_update.items())
          + f"; in-process {local.cpu['process'] / max(1, local.sent) * 1000:.2f} (writer, commit and subscribers)")
    problems = "; ".join((remote.problems + local.problems)[:5])
    print(f"delivery: {'every client got every update, no resync' if ok else 'PROBLEMS: ' + problems}")
    print(f"in-process subscribers: p50 {l50 * 1000:.2f} ms, p99 {l99 * 1000:.2f} ms")
    print(f"remote clients:         p50 {r50 * 1000:.2f} ms, p99 {r99 * 1000:.2f} ms "
          f"(target p99 < 50 ms: {verdict(ok and r99 < 0.050)})")
    print(f"ratio remote/in-process: p50 {r50 / l50:.2f}x, p99 {r99 / l99:.2f}x")


if __name__ == "__main__":
    main()
