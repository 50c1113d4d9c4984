"""Failover time: kill -9 of the active server to the first write the standby accepts.

A temporary PostgreSQL 15 of its own (tests/helpers/postgres.py, fsync on); an active
``lea-backend serve --store postgresql://...`` and a ``--standby`` on the same database, each with a
data directory of its own, holding ``--peers`` peers (restore has real work). Each trial: a writer
keeps writing to the active over HTTP; the active gets SIGKILL; the clock runs from the kill to the
first 200 answer of a write sent to the standby (it polls every 5 ms); then a new standby starts
for the next trial.

Baseline in the same run: the same kill -9 with no standby, and the server started again at once
(what systemd's Restart= would give): kill to the first accepted write of the restarted server.

    .venv/bin/python bench/failover.py [--quick] [--trials N] [--peers N]
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from _common import parser

from tests.helpers.factories import make_peer
from tests.helpers.failover import PgServer, start_pg_server
from tests.helpers.postgres import LocalPostgres, free_port


def put(client: httpx.Client, url: str) -> bool:
    peer = make_peer(f"bench-{uuid.uuid4().hex[:10]}")
    try:
        response = client.put(
            f"{url}/api/v1/peer/{peer.id}", content=peer.model_dump_json(),
            headers={"content-type": "application/json"}, timeout=5,
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def first_write(client: httpx.Client, url: str, killed: float, limit: float = 60.0) -> float:
    while time.monotonic() - killed < limit:
        if put(client, url):
            return time.monotonic() - killed
        time.sleep(0.005)
    raise RuntimeError(f"no write accepted by {url} within {limit:g} s of the kill")


class Background:
    """A writer on the active, so that the kill lands while writes are in flight."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client() as client:
            while not self.stop.is_set():
                put(client, self.url)

    def end(self) -> None:
        self.stop.set()
        self.thread.join(10)


def main() -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=None, help="failovers per mode (default 10, --quick 3)")
    p.add_argument("--peers", type=int, default=None, help="peers in the database (default 2000, --quick 200)")
    args = p.parse_args()
    trials = args.trials or (3 if args.quick else 10)
    peers = args.peers or (200 if args.quick else 2000)
    base = Path(tempfile.mkdtemp(prefix="lea-bench-failover-", dir=args.tmp_dir))
    servers: list[PgServer] = []
    with LocalPostgres() as postgres:
        database = postgres.create_database()
        ports = [free_port(), free_port()]
        active = start_pg_server(base, "s0", postgres, database, port=ports[0])
        servers.append(active)
        with httpx.Client() as client:
            for _ in range(peers):
                put(client, active.url)
        takeover: list[float] = []
        restart: list[float] = []
        try:
            standby = start_pg_server(base, "s1", postgres, database, standby=True, port=ports[1])
            servers.append(standby)
            with httpx.Client() as client:
                for trial in range(trials):
                    writer = Background(active.url)
                    time.sleep(0.2)
                    killed = time.monotonic()
                    active.kill()
                    takeover.append(first_write(client, standby.url, killed))
                    writer.end()
                    standby.wait_active()
                    active, standby = standby, start_pg_server(
                        base, f"s{trial + 2}", postgres, database, standby=True, port=ports[trial % 2]
                    )
                    servers.append(standby)
                standby.stop()
                for trial in range(trials):  # the baseline: no standby, restart at once
                    writer = Background(active.url)
                    time.sleep(0.2)
                    killed = time.monotonic()
                    active.kill()
                    writer.end()
                    port = int(active.url.rsplit(":", 1)[1])
                    active = start_pg_server(base, f"r{trial}", postgres, database, port=port)
                    servers.append(active)
                    restart.append(first_write(client, active.url, killed))
        finally:
            for server in servers:
                server.kill()
    p50, worst = statistics.median(takeover), max(takeover)
    r50, rworst = statistics.median(restart), max(restart)
    print(f"failover: {trials} trials per mode, {peers} peers, PostgreSQL 15 (fsync on), loopback")
    print(f"standby takeover (kill -9 -> first accepted write): p50 {p50 * 1000:.0f} ms, max {worst * 1000:.0f} ms")
    print(f"restart, no standby (baseline):                      p50 {r50 * 1000:.0f} ms, max {rworst * 1000:.0f} ms")
    print(f"ratio p50 takeover / restart: {p50 / r50:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
