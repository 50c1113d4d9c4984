"""Active and standby servers on one PostgreSQL database, for real (docs/server.md, "Active and standby").

Servers are ``lea-backend serve --store postgresql://...`` subprocesses on the session's PostgreSQL
(tests/helpers/postgres.py), each with a data directory of its own; writers go through HTTP and
count a write as acknowledged only when the server answered 200.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from backend.storage.pg_target import PostgresTarget
from resources.kinds import ResourceKind
from tests.helpers.factories import make_peer
from tests.helpers.failover import REPO, PgServer, healthz, start_pg_server
from tests.helpers.postgres import LocalPostgres, free_port

TRIALS = 10


def put_peer(client: httpx.Client, url: str) -> tuple[str, int] | None:
    """One new peer through ``url``; (id, revision) when acknowledged, None when refused or unreachable."""
    peer = make_peer(f"bench-{uuid.uuid4().hex[:10]}")
    try:
        response = client.put(
            f"{url}/api/v1/peer/{peer.id}", content=peer.model_dump_json(),
            headers={"content-type": "application/json"},
        )
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        assert response.status_code == 503, response.text  # standby, storage failing, shutting down
        return None
    return str(peer.id), int(response.json()["revision"])


def peer_ids(url: str) -> set[str]:
    response = httpx.get(f"{url}/api/v1/peer", timeout=10)
    assert response.status_code == 200, response.text
    return {str(item["id"]) for item in response.json()}


def lea_backend(base: Path, postgres: LocalPostgres, database: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend", "--data-dir", str(base / "admin"), "--store", postgres.url(database),
         "--store-password-file", str(postgres.password_file), *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
    )


class Follower:
    """LEA's own sync path (RemoteConnection over the server list + Store + SyncEngine) in a thread."""

    def __init__(self, urls: list[str]) -> None:
        from lea_app.connection.remote import RemoteConnection
        from lea_app.sync.engine import SyncEngine
        from lea_app.sync.store import Store
        from resources.backoff import Backoff

        self.loop = asyncio.new_event_loop()
        self.connection = RemoteConnection(",".join(urls), None, keepalive=2.0)
        self.store = Store()
        self.engine = SyncEngine(
            self.connection, self.store, resync_backoff=Backoff(first=0.05, maximum=0.5),
            reconnect_backoff=Backoff(first=0.05, maximum=0.5), healthy_after=0.5,
        )
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._task = asyncio.run_coroutine_threadsafe(self.engine.run(), self.loop)

    def peers(self) -> set[str]:
        async def ids() -> set[str]:
            return {str(i) for i in self.store.of_kind(ResourceKind.PEER)}

        return asyncio.run_coroutine_threadsafe(ids(), self.loop).result(10)

    def stop(self) -> None:
        async def end() -> None:
            await self.engine.stop()
            await self.connection.close()

        asyncio.run_coroutine_threadsafe(end(), self.loop).result(20)
        self._task.result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class Writers:
    """Threads writing new peers to whichever server of ``urls`` accepts, recording what was acknowledged."""

    def __init__(self, count: int) -> None:
        self.urls: list[str] = []
        self.acknowledged: dict[str, int] = {}
        self.per_writer: list[list[int]] = [[] for _ in range(count)]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(count)]
        self.errors: list[BaseException] = []

    def start(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def _run(self, index: int) -> None:
        try:
            with httpx.Client(timeout=10) as client:
                turn = 0
                while not self._stop.is_set():
                    urls = list(self.urls)
                    got = put_peer(client, urls[turn % len(urls)])
                    if got is None:
                        turn += 1  # the next server of the list
                        time.sleep(0.01)
                        continue
                    with self._lock:
                        self.acknowledged[got[0]] = got[1]
                        self.per_writer[index].append(got[1])
        except BaseException as exc:  # surfaced by stop()
            self.errors.append(exc)

    def count(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.acknowledged)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        assert not self.errors, self.errors


def test_a_second_server_is_refused_and_a_standby_answers_503_until_it_takes_over(
    tmp_path: Path, postgres_server: LocalPostgres, pg_target: PostgresTarget
) -> None:
    database = pg_target.database
    active = start_pg_server(tmp_path, "a", postgres_server, database)
    standby: PgServer | None = None
    try:
        with httpx.Client(timeout=10) as client:
            first = put_peer(client, active.url)
        assert first is not None
        refused = subprocess.run(
            [sys.executable, "-m", "backend", "serve", "--data-dir", str(tmp_path / "c"), "--port", "0",
             "--insecure-no-auth", "--store", postgres_server.url(database),
             "--store-password-file", str(postgres_server.password_file)],
            capture_output=True, text=True, timeout=60, check=False, cwd=REPO,
        )
        assert refused.returncode == 2, refused
        assert "is already served by another LEA server" in refused.stderr
        assert f"pid {active.process.pid} " in refused.stderr  # the holder, by application_name
        assert "--standby" in refused.stderr
        assert not (tmp_path / "c" / "lea.db").exists()

        standby = start_pg_server(tmp_path, "b", postgres_server, database, standby=True)
        assert healthz(standby.url) == (503, {"status": "standby", "store": postgres_server.url(database)})
        for method, path in (("GET", "/api/v1/snapshot"), ("PUT", f"/api/v1/peer/{uuid.uuid4()}")):
            response = httpx.request(method, standby.url + path, content=b"{}", timeout=10)
            assert response.status_code == 503
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] == "standby"
            assert response.headers["retry-after"] == "1"
        with httpx.Client(timeout=10) as client:
            second = put_peer(client, active.url)
        assert second is not None
        waiting = start_pg_server(tmp_path, "w", postgres_server, database, standby=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # uvicorn runs (its SIGTERM handler is in place)
            try:
                if healthz(waiting.url)[0] == 503:
                    break
            except httpx.HTTPError:
                time.sleep(0.02)
        started = time.monotonic()
        assert waiting.stop() == 0 and time.monotonic() - started < 10  # SIGTERM while waiting: a clean exit
        assert "serving" not in waiting.out()

        assert active.stop() == 0  # a clean stop releases the lock too
        standby.wait_active()
        status, body = healthz(standby.url)
        assert status == 200 and body["status"] == "ok"
        assert peer_ids(standby.url) == {first[0], second[0]}
        with httpx.Client(timeout=10) as client:
            third = put_peer(client, standby.url)
        assert third is not None and third[1] > second[1]
        assert standby.stop() == 0
    finally:
        active.kill()
        if standby is not None:
            standby.kill()


def test_kill_9_of_the_active_at_random_moments_loses_no_acknowledged_write(
    tmp_path: Path, postgres_server: LocalPostgres, pg_target: PostgresTarget
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    database = pg_target.database
    ports = [free_port(), free_port()]  # the two addresses clients know; each new standby reuses the dead one's
    active = start_pg_server(tmp_path, "s0", postgres_server, database, port=ports[0])
    standby = start_pg_server(tmp_path, "s1", postgres_server, database, standby=True, port=ports[1])
    servers = [active, standby]
    writers = Writers(2)
    writers.urls = [active.url, standby.url]
    epochs = {healthz(active.url)[1]["epoch"]}
    follower = Follower([active.url, standby.url])
    try:
        writers.start()
        for trial in range(TRIALS):
            floor = writers.count()
            deadline = time.monotonic() + 20
            while writers.count() < floor + 5 and time.monotonic() < deadline:
                time.sleep(0.01)  # the new active accepts writes before it is killed in turn
            assert writers.count() >= floor + 5, f"trial {trial} (seed {seed}): no writes accepted"
            time.sleep(rng.uniform(0.0, 0.3))
            active.kill()
            acknowledged = writers.snapshot()  # every write answered 200 before (or while) it died
            standby.wait_active()
            present = peer_ids(standby.url)
            missing = set(acknowledged) - present
            assert not missing, f"trial {trial} (seed {seed}): {len(missing)} acknowledged writes lost"
            status, body = healthz(standby.url)
            assert status == 200 and body["epoch"] not in epochs  # a new epoch: clients resync
            epochs.add(str(body["epoch"]))
            active = standby
            standby = start_pg_server(
                tmp_path, f"s{trial + 2}", postgres_server, database, standby=True, port=ports[trial % 2]
            )
            servers.append(standby)
        writers.stop()
        # LEA following the servers converges on the last active: its epoch, its revision, every peer.
        final = healthz(active.url)[1]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (
            follower.engine.epoch != final["epoch"] or follower.engine.revision != final["revision"]
        ):
            time.sleep(0.05)
        assert (follower.engine.epoch, follower.engine.revision) == (final["epoch"], final["revision"])
        assert follower.peers() == peer_ids(active.url) >= set(writers.snapshot())
        # A resync per new epoch it meets, not a storm. It may meet fewer than TRIALS epochs: while it
        # reconnects after one takeover the next one can happen, and it resyncs once into the newer.
        assert 1 <= follower.engine.resyncs <= 3 * TRIALS, follower.engine.resyncs
    finally:
        writers.stop()
        follower.stop()
        for server in servers:
            server.kill()
    revisions = list(writers.snapshot().values())
    assert len(revisions) == len(set(revisions)), f"revisions repeated (seed {seed})"
    for own in writers.per_writer:  # each writer's acknowledged revisions only ever go up
        assert own == sorted(own) and len(own) == len(set(own)), f"seed {seed}"
    verify = lea_backend(tmp_path, postgres_server, database, "verify")
    assert verify.returncode == 0, verify.stderr
    assert "verify: ok" in verify.stdout


def test_postgresql_lost_under_the_active_answers_503_without_a_resync_storm_and_recovers(tmp_path: Path) -> None:
    from websockets.sync.client import connect

    postgres = LocalPostgres().start()  # a cluster of its own (this test stops it), outside the 0700 basetemp
    server: PgServer | None = None
    try:
        database = postgres.create_database()
        server = start_pg_server(tmp_path, "a", postgres, database)
        epoch = healthz(server.url)[1]["epoch"]
        with httpx.Client(timeout=30) as client, connect(
            server.url.replace("http", "ws", 1) + f"/api/v1/watch?epoch={epoch}&after=0", open_timeout=10,
        ) as ws:
            assert '"hello"' in str(ws.recv(timeout=10))
            before = put_peer(client, server.url)
            assert before is not None
            postgres.stop()
            refused = []
            started = time.monotonic()
            for _ in range(20):  # every write refused with 503 storage_failed, none hangs
                peer = make_peer(f"bench-{uuid.uuid4().hex[:10]}")
                response = client.put(
                    f"{server.url}/api/v1/peer/{peer.id}", content=peer.model_dump_json(),
                    headers={"content-type": "application/json"},
                )
                refused.append((response.status_code, response.json().get("code")))
            assert set(refused) == {(503, "storage_failed")}, refused
            assert time.monotonic() - started < 10
            status, body = healthz(server.url)
            assert status == 200 and body["storage"] == "failing" and body["epoch"] == epoch
            # reads go on from memory
            assert str(before[0]) in peer_ids(server.url)
            time.sleep(1.0)
            postgres.start()  # the same cluster, on the same port
            deadline = time.monotonic() + 20
            after = None
            while after is None and time.monotonic() < deadline:
                after = put_peer(client, server.url)
                if after is None:
                    time.sleep(0.1)
            assert after is not None, server.describe()
            assert after[1] == before[1] + 1  # the refused writes used no revision: no gap
            status, body = healthz(server.url)
            assert status == 200 and body["storage"] == "ok" and body["epoch"] == epoch  # no resync
            messages = []
            while True:
                try:
                    messages.append(str(ws.recv(timeout=1)))
                except TimeoutError:
                    break
            assert not any('"resync"' in m for m in messages), messages
            assert any(after[0] in m for m in messages)  # the stream goes on in the same epoch
        assert server.stop() == 0
        assert "got the write lock of" in server.err()
    finally:
        if server is not None:
            server.kill()
        postgres.cleanup()


def _terminate_lock_session(postgres: LocalPostgres, server: PgServer) -> None:
    """What a DBA (or a network cut) does to the active server: its lock session ends."""
    import psycopg

    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s",
            (f"lea-backend % pid {server.process.pid}",),
        ).fetchall()
    assert rows == [(True,)], rows


def test_an_active_whose_lock_session_ends_is_fenced_and_stops_when_a_standby_took_over(
    tmp_path: Path, postgres_server: LocalPostgres, pg_target: PostgresTarget
) -> None:
    database = pg_target.database
    active = start_pg_server(tmp_path, "a", postgres_server, database)
    standby: PgServer | None = None
    try:
        with httpx.Client(timeout=10) as client:
            # Alone: the session ends (a DBA, PostgreSQL restarted), the server gets the lock back.
            first = put_peer(client, active.url)
            assert first is not None
            _terminate_lock_session(postgres_server, active)
            deadline = time.monotonic() + 15
            second = None
            while second is None and time.monotonic() < deadline:
                second = put_peer(client, active.url)
            assert second is not None and "got the write lock of" in active.err(), active.describe()
            assert second[1] == first[1] + 1  # refused writes used no revision, the epoch stayed

            # With a standby waiting: it takes the lock first; the old active refuses writes, then exits.
            # The active is frozen meanwhile (as a stalled machine would be): left running, its watchdog
            # may win the lock back before the standby's next poll, and then it rightly stays active.
            standby = start_pg_server(tmp_path, "b", postgres_server, database, standby=True)
            active.process.send_signal(signal.SIGSTOP)
            try:
                _terminate_lock_session(postgres_server, active)
                standby.wait_active()
            finally:
                active.process.send_signal(signal.SIGCONT)
            assert active.process.wait(15) == 1
            assert "another server took the write role" in active.err() or (
                "another server wrote to" in active.err()
            ), active.describe()
            assert peer_ids(standby.url) >= {first[0], second[0]}
            third = put_peer(client, standby.url)
            assert third is not None and third[1] > second[1]
        assert standby.stop() == 0
    finally:
        active.kill()
        if standby is not None:
            standby.kill()


@pytest.mark.parametrize(("durability", "expected"), [("full", "on"), ("off", "off")])
def test_the_lock_session_writes_at_the_store_durability(
    tmp_path: Path, pg_target: PostgresTarget, durability: str, expected: str
) -> None:
    from backend.backend import Backend

    backend = Backend(tmp_path / "d", store=pg_target, durability=durability)
    try:
        assert backend.writer is not None
        with backend.writer.connection() as conn:
            assert conn.execute("SHOW synchronous_commit").fetchone() == (expected,)
            assert conn.execute("SHOW idle_session_timeout").fetchone() == ("5s",)
    finally:
        backend.manager.close(checkpoint=False)
        backend.close()


def test_agents_with_the_server_list_follow_the_failover_and_the_deployment_is_reconciled(
    tmp_path: Path, postgres_server: LocalPostgres, pg_target: PostgresTarget
) -> None:
    from tests.helpers.agent_process import agent_process, wait_for
    from tests.helpers.bench_api import BenchApi

    database = pg_target.database
    created = lea_backend(tmp_path, postgres_server, database, "token", "create", "--role", "admin", "--name", "root")
    assert created.returncode == 0, created.stderr
    admin = created.stdout.strip()
    heartbeat = ("--agent-heartbeat", "0.5", "--agent-timeout", "3")
    active = start_pg_server(tmp_path, "a", postgres_server, database, extra=heartbeat, auth=True)
    standby = start_pg_server(tmp_path, "b", postgres_server, database, standby=True, extra=heartbeat, auth=True)
    urls = f"{active.url},{standby.url}"
    try:
        with httpx.Client(base_url=active.url, headers={"Authorization": f"Bearer {admin}"}, timeout=10) as http:
            api = BenchApi(http)
            lead, member = api.new_peer("lead"), api.new_peer("member")
            lead_token, member_token = api.token(lead), api.token(member)
            with (
                agent_process(tmp_path, urls, lead.id, lead_token, underlay="192.0.2.1") as a,
                agent_process(tmp_path, urls, member.id, member_token, underlay="192.0.2.2") as b,
            ):
                wait_for("both online", lambda: api.online(lead) and api.online(member),
                         describe=lambda: a.log() + b.log())
                cluster = api.add_cluster(lead, member)
                api.deploy(cluster.id)
                wait_for("deployed", lambda: api.status(cluster.id) == "deployed", describe=lambda: a.log() + b.log())
                active.kill()
                standby.wait_active()
                http.base_url = httpx.URL(standby.url)
                wait_for(
                    "online on the new active and reconciled",
                    lambda: api.online(lead) and api.online(member) and api.status(cluster.id) == "deployed"
                    and api.consistent(lead) and api.consistent(member),
                    describe=lambda: f"{api.cluster_state(cluster.id)}\n{a.log()[-3000:]}\n{b.log()[-3000:]}",
                )
                assert a.alive() and b.alive()
                assert f"connecting to {standby.url.replace('http', 'ws', 1)}" in a.log(), a.log()[-2000:]
        assert standby.stop() == 0
    finally:
        active.kill()
        standby.kill()
