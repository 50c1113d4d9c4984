"""Durable single-event writes through the ResourcesManager vs raw sqlite3 INSERT+COMMIT.

Both sides run in the same process, on the same disk (one temporary directory), with the same
PRAGMAs (WAL, synchronous=FULL) and the same table (the store's own ``events`` table and index),
writing rows with the same payload (one small PeerDescriptor's JSON, ~0.5 kB). Connections stay
open for the whole run and each database first gets 1,500 commits (WAL steady state).

* raw: one thread, ``BEGIN IMMEDIATE; INSERT one row; COMMIT`` per event (the payload string is
  built once, outside the loop: this is the floor of what SQLite itself costs).
* manager x1: one thread calling ``store_peer_descriptor`` (an update of one peer) in a loop; each
  call returns after its group was committed (fsync) and published. The manager is the one of a
  started ``Backend`` (so the cluster-deployment operator and the demo peer broker are subscribed
  and drain every event, as in the app); ``--bare`` uses a bare ``ResourcesManager`` with the
  rules and the store instead.
* manager x8: eight threads doing the same, each on its own peer; the sequencer groups the queued
  writes into one transaction (group commit).
* volatile x1 / x8: the same loops with ``set_peer_connection_state`` (a volatile PeerConnectionState
  of each writer's peer, always Offline: no storage, but the same sequencer, revisions, ring and
  subscribers), measured once after the rounds (no disk in it, so no raw baseline).
* floor x1 / x8 (reference, not a target): the least a Python group-committing sequencer can cost
  on this machine: writer threads put a Future on a SimpleQueue and wait for it; one sequencer
  thread takes every queued Future, INSERTs the same pre-built rows with one executemany in one
  transaction, and resolves the Futures. No validation, no state, no events: the gap between it
  and the manager is the manager's own cost; the gap between it and raw is threads + GIL.

Rounds alternate raw / x1 / x8 / floor / raw, so that machine noise (the disk and the 2 cores are
shared) hits all of them alike; each round's baseline is the mean of its two raw runs, the ratios
printed are the medians over rounds of rate / that round's raw rate, the rates are medians too.
The average group size is the number of events divided by the number of ``store.append`` calls
that carried events (counted by wrapping the method).

    .venv/bin/python bench/append.py [--quick] [--bare] [--rounds N] [--writes N] [--tmp-dir DIR]

With ``--store postgresql://USER@HOST:PORT/DATABASE`` (an empty database; the password from
PGPASSWORD, ~/.pgpass or ``--store-password-file``) or ``--store pg`` (a temporary PostgreSQL 15 of
its own, tests/helpers/postgres.py, fsync on), the same rounds run against PostgreSQL: the
manager's PostgresEventStore against raw psycopg ``INSERT; COMMIT`` per event on one connection,
and the floor's group commits, all at the same ``synchronous_commit`` (on: durability full). The
raw and floor rows go to tables made ``LIKE events INCLUDING ALL`` next to the store's own, dropped
at the end.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import machine, median, parser, temp_dir, verdict, write_path

from backend.actions import set_peer_connection_state, store_peer_descriptor
from backend.manager import ResourcesManager
from backend.storage.sqlite import SqliteEventStore
from resources.events import SCHEMA_VERSION
from resources.state import Offline
from tests.helpers.factories import make_peer

THREADS = 8
WARMUP = 1500


@dataclass
class GroupStats:
    appends: int = 0
    events: int = 0


def raw_writes(conn: sqlite3.Connection, n: int, first_revision: int, payload: str) -> float:
    """Commits/s of ``n`` single-row INSERT+COMMIT transactions (WAL, synchronous=FULL)."""
    epoch = uuid.uuid4().hex
    tx = str(uuid.uuid4())
    rid = str(uuid.uuid4())
    at = datetime.now(UTC).isoformat()
    sql = "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)"
    start = time.perf_counter()
    for revision in range(first_revision, first_revision + n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(sql, (revision, epoch, tx, "peer", rid, "updated", payload, SCHEMA_VERSION, "bench", at))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    return n / elapsed


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL").fetchone()
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def timed(threads: list[threading.Thread], barrier: threading.Barrier) -> float:
    """Seconds from the moment every thread passed ``barrier`` (with this one) until all have ended."""
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def floor_writes(
    conn: sqlite3.Connection, threads: int, per_thread: int, first_revision: int, payload: str
) -> float:
    """Writes/s of a minimal group-committing sequencer (SimpleQueue + Future + executemany)."""
    row = (uuid.uuid4().hex, str(uuid.uuid4()), "peer", str(uuid.uuid4()), "updated", payload,
           SCHEMA_VERSION, "bench", datetime.now(UTC).isoformat())
    requests: queue.SimpleQueue[Future[int] | None] = queue.SimpleQueue()
    sql = "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)"

    def sequencer() -> None:
        revision = first_revision
        while True:
            first = requests.get()
            if first is None:
                return
            group = [first]
            while True:
                try:
                    item = requests.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    requests.put(None)
                    break
                group.append(item)
            rows = [(revision + i, *row) for i in range(len(group))]
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
            for i, future in enumerate(group):
                future.set_result(revision + i)
            revision += len(group)

    def writer() -> None:
        barrier.wait()
        for _ in range(per_thread):
            future: Future[int] = Future()
            requests.put(future)
            future.result()

    barrier = threading.Barrier(threads + 1)
    seq = threading.Thread(target=sequencer)
    seq.start()
    elapsed = timed([threading.Thread(target=writer) for _ in range(threads)], barrier)
    requests.put(None)
    seq.join()
    return threads * per_thread / elapsed


def manager_writes(manager: ResourcesManager, peers: list[Any], per_thread: int, volatile: bool = False) -> float:
    """Writes/s of ``len(peers)`` threads each storing its own peer ``per_thread`` times (volatile:
    each setting its peer's PeerConnectionState instead)."""
    barrier = threading.Barrier(len(peers) + 1)
    errors: list[BaseException] = []
    offline = Offline()

    def writer(peer: Any) -> None:
        barrier.wait()
        try:
            for _ in range(per_thread):
                if volatile:
                    set_peer_connection_state(manager, peer.id, offline, "bench")
                else:
                    store_peer_descriptor(manager, peer, "bench")
        except BaseException as exc:  # reported below: a benchmark with failed writes is void
            errors.append(exc)

    elapsed = timed([threading.Thread(target=writer, args=(p,)) for p in peers], barrier)
    if errors:
        raise RuntimeError(f"{len(errors)} writer(s) failed: {errors[0]!r}")
    return len(peers) * per_thread / elapsed


# -- PostgreSQL ----------------------------------------------------------------------------------
def pg_raw_writes(conn: Any, table: str, n: int, first_revision: int, payload: str) -> float:
    """Commits/s of ``n`` single-row INSERT+COMMIT transactions on one psycopg connection."""
    epoch, tx, rid, at = uuid.uuid4().hex, str(uuid.uuid4()), str(uuid.uuid4()), datetime.now(UTC).isoformat()
    sql = f"INSERT INTO {table} VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
    start = time.perf_counter()
    for revision in range(first_revision, first_revision + n):
        conn.execute(sql, (revision, epoch, tx, "peer", rid, "updated", payload, SCHEMA_VERSION, "bench", at))
        conn.commit()
    return n / (time.perf_counter() - start)


def pg_floor_writes(conn: Any, table: str, threads: int, per_thread: int, first_revision: int, payload: str) -> float:
    """The group-committing floor of ``floor_writes`` on PostgreSQL (one executemany per group)."""
    row = (uuid.uuid4().hex, str(uuid.uuid4()), "peer", str(uuid.uuid4()), "updated", payload,
           SCHEMA_VERSION, "bench", datetime.now(UTC).isoformat())
    requests: queue.SimpleQueue[Future[int] | None] = queue.SimpleQueue()
    sql = f"INSERT INTO {table} VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"

    def sequencer() -> None:
        revision = first_revision
        while True:
            first = requests.get()
            if first is None:
                return
            group = [first]
            while True:
                try:
                    item = requests.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    requests.put(None)
                    break
                group.append(item)
            with conn.cursor() as cursor:
                cursor.executemany(sql, [(revision + i, *row) for i in range(len(group))])
            conn.commit()
            for i, future in enumerate(group):
                future.set_result(revision + i)
            revision += len(group)

    def writer() -> None:
        barrier.wait()
        for _ in range(per_thread):
            future: Future[int] = Future()
            requests.put(future)
            future.result()

    barrier = threading.Barrier(threads + 1)
    seq = threading.Thread(target=sequencer)
    seq.start()
    elapsed = timed([threading.Thread(target=writer) for _ in range(threads)], barrier)
    requests.put(None)
    seq.join()
    return threads * per_thread / elapsed


def main_postgres(args: Any, rounds: int, n: int, per_thread: int) -> None:
    import contextlib

    import psycopg

    from backend.storage.pg_target import PostgresTarget
    from tests.helpers.postgres import LocalPostgres

    with contextlib.ExitStack() as stack:
        tmp_path = Path(stack.enter_context(temp_dir(args.tmp_dir)))
        if args.store == "pg":
            base = Path(args.tmp_dir) if args.tmp_dir else None  # the temp dir is 0700: not reachable by the server
            server = stack.enter_context(LocalPostgres(synchronous_commit="on", fsync=True, base=base))
            database = server.create_database("lea_bench")
            target = PostgresTarget.parse(server.url(database), server.password_file)
            where = f"a temporary PostgreSQL 15 in {server.base}"
        else:
            target = PostgresTarget.parse(args.store, args.store_password_file)
            where = target.url
        with write_path(tmp_path / "data", args.bare, store=target) as (store, manager):
            stats = GroupStats()
            original_append = store.append

            def counting_append(events: Any, reserve_up_to: int | None = None) -> None:
                if events:
                    stats.appends += 1
                    stats.events += len(events)
                original_append(events, reserve_up_to=reserve_up_to)

            store.append = counting_append  # type: ignore[method-assign]
            conn = psycopg.connect(target.conninfo())
            conn.execute("SET synchronous_commit = on")
            settings = {
                name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                for name in ("server_version", "synchronous_commit", "fsync", "wal_sync_method", "full_page_writes")
            }
            for table in ("lea_bench_raw", "lea_bench_floor"):
                conn.execute(f"DROP TABLE IF EXISTS {table}")
                conn.execute(f"CREATE TABLE {table} (LIKE events INCLUDING ALL)")
            conn.commit()
            floor_conn = psycopg.connect(target.conninfo())
            floor_conn.execute("SET synchronous_commit = on")
            floor_conn.commit()
            try:
                peers = [make_peer(f"bench-{i:02d}") for i in range(THREADS)]
                for peer in peers:
                    store_peer_descriptor(manager, peer, "bench")
                payload = manager.get(peers[0].kind, peers[0].id).model_dump_json()  # type: ignore[union-attr]
                warm = WARMUP // 3
                pg_raw_writes(conn, "lea_bench_raw", warm, 1, payload)
                pg_raw_writes(floor_conn, "lea_bench_floor", warm, 1, payload)
                manager_writes(manager, peers[:1], warm)
                raw, one, eight, group, floor1, floor8 = [], [], [], [], [], []
                next_raw = next_floor = warm + 1
                for r in range(rounds):
                    before = pg_raw_writes(conn, "lea_bench_raw", n, next_raw, payload)
                    one.append(manager_writes(manager, peers[:1], n))
                    counted = GroupStats(stats.appends, stats.events)
                    eight.append(manager_writes(manager, peers, per_thread))
                    group.append((stats.events - counted.events) / max(1, stats.appends - counted.appends))
                    floor1.append(pg_floor_writes(floor_conn, "lea_bench_floor", 1, n, next_floor, payload))
                    floor8.append(
                        pg_floor_writes(floor_conn, "lea_bench_floor", THREADS, per_thread, next_floor + n, payload)
                    )
                    next_floor += n + THREADS * per_thread
                    after = pg_raw_writes(conn, "lea_bench_raw", n, next_raw + n, payload)
                    next_raw += 2 * n
                    raw.append(2 / (1 / before + 1 / after))
                    print(
                        f"round {r + 1}/{rounds}: raw {raw[-1]:,.0f} commits/s; manager x1 {one[-1]:,.0f} "
                        f"({one[-1] / raw[-1]:.2f}x), x{THREADS} {eight[-1]:,.0f} ({eight[-1] / raw[-1]:.2f}x, "
                        f"avg group {group[-1]:.2f}); floor x1 {floor1[-1]:,.0f}, x{THREADS} {floor8[-1]:,.0f}",
                        flush=True,
                    )
            finally:
                for table in ("lea_bench_raw", "lea_bench_floor"):
                    conn.execute(f"DROP TABLE IF EXISTS {table}")
                conn.commit()
                conn.close()
                floor_conn.close()
        info = machine(tmp_path)
    r1 = median([a / b for a, b in zip(one, raw, strict=True)])
    r8 = median([a / b for a, b in zip(eight, raw, strict=True)])
    raw_m, one_m, eight_m = median(raw), median(one), median(eight)
    print()
    print(f"machine: {info}")
    print(f"store: PostgreSQL at {where}: {settings}")
    print(f"manager = {'bare ResourcesManager + PostgresEventStore' if args.bare else 'Backend'}; durability full "
          f"(synchronous_commit on); payload {len(payload)} bytes; {rounds} rounds")
    print(f"raw psycopg single-writer INSERT+COMMIT/s: {raw_m:10,.0f}   ({1e6 / raw_m:,.0f} us per commit)")
    print(f"manager single-writer writes/s:            {one_m:10,.0f}   ratio {r1:.2f}x raw "
          f"(target >= 0.5: {verdict(r1 >= 0.5)})")
    print(f"manager {THREADS} writer threads writes/s:          {eight_m:10,.0f}   ratio {r8:.2f}x raw "
          f"(target >= 3: {verdict(r8 >= 3)})")
    print(f"manager {THREADS} writer threads avg group size: {median(group):.2f} events/commit")
    print(f"reference: python floor x1 {median(floor1):,.0f} writes/s, x{THREADS} {median(floor8):,.0f} writes/s")


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 10, quick 3)")
    p.add_argument(
        "--bare", action="store_true",
        help="a bare ResourcesManager(store, rules) instead of Backend (no operator, no demo peer broker)",
    )
    p.add_argument("--writes", type=int, default=None, help="writes per measurement (default 500, quick 200)")
    p.add_argument("--store", metavar="URL",
                   help="postgresql://USER@HOST:PORT/DATABASE (empty), or 'pg' for a temporary PostgreSQL of its own")
    p.add_argument("--store-password-file", metavar="FILE", help="the PostgreSQL password (else PGPASSWORD)")
    args = p.parse_args()
    rounds = args.rounds or (3 if args.quick else 10)
    n = args.writes or (200 if args.quick else 500)
    per_thread = max(1, n // THREADS) * 2  # the x8 run does 2n writes: it should be >= 3x faster
    if args.store is not None:
        main_postgres(args, rounds, n, per_thread)
        return

    with temp_dir(args.tmp_dir) as tmp:
        tmp_path = Path(tmp)
        raw_db = tmp_path / "raw.db"
        floor_db = tmp_path / "floor.db"
        for path in (raw_db, floor_db):
            SqliteEventStore(path).close()  # the store's own schema (events table + index), empty
        with write_path(tmp_path / "data", args.bare) as (store, manager):
            stats = GroupStats()
            original_append = store.append

            def counting_append(events: Any, reserve_up_to: int | None = None) -> None:
                if events:
                    stats.appends += 1
                    stats.events += len(events)
                original_append(events, reserve_up_to=reserve_up_to)

            store.append = counting_append  # type: ignore[method-assign]
            peers = [make_peer(f"bench-{i:02d}") for i in range(THREADS)]
            for peer in peers:  # create them (and warm up every code path) before timing
                store_peer_descriptor(manager, peer, "bench")
            payload = manager.get(peers[0].kind, peers[0].id).model_dump_json()  # type: ignore[union-attr]
            # Warm-up: every connection stays open for the whole run, and each database gets WARMUP
            # commits first, so that all three reach the WAL's steady state (the WAL is checkpointed
            # and then rewritten in place; a growing WAL file makes each fsync dearer).
            raw_conn, floor_conn = _connect(raw_db), _connect(floor_db)
            raw_writes(raw_conn, WARMUP, 1, payload)
            raw_writes(floor_conn, WARMUP, 1, payload)
            manager_writes(manager, peers[:1], WARMUP)

            raw, one, eight, group, floor1, floor8 = [], [], [], [], [], []
            next_raw = next_floor = WARMUP + 1
            for r in range(rounds):
                # raw before and after the rest of the round; the round's baseline is their mean time
                before = raw_writes(raw_conn, n, next_raw, payload)
                one.append(manager_writes(manager, peers[:1], n))
                counted = GroupStats(stats.appends, stats.events)
                eight.append(manager_writes(manager, peers, per_thread))
                group.append((stats.events - counted.events) / max(1, stats.appends - counted.appends))
                floor1.append(floor_writes(floor_conn, 1, n, next_floor, payload))
                floor8.append(floor_writes(floor_conn, THREADS, per_thread, next_floor + n, payload))
                next_floor += n + THREADS * per_thread
                after = raw_writes(raw_conn, n, next_raw + n, payload)
                next_raw += 2 * n
                raw.append(2 / (1 / before + 1 / after))
                print(
                    f"round {r + 1}/{rounds}: raw {raw[-1]:,.0f} commits/s (before {before:,.0f}, after "
                    f"{after:,.0f}); manager x1 {one[-1]:,.0f} ({one[-1] / raw[-1]:.2f}x), x{THREADS} "
                    f"{eight[-1]:,.0f} ({eight[-1] / raw[-1]:.2f}x, avg group {group[-1]:.2f}); floor x1 "
                    f"{floor1[-1]:,.0f}, x{THREADS} {floor8[-1]:,.0f} writes/s",
                    flush=True,
                )
            raw_conn.close()
            floor_conn.close()
            manager_writes(manager, peers[:1], WARMUP, volatile=True)
            vol1 = median([manager_writes(manager, peers[:1], 10 * n, volatile=True) for _ in range(rounds)])
            vol8 = median(
                [manager_writes(manager, peers, 10 * n // THREADS, volatile=True) for _ in range(rounds)]
            )
        info = machine(tmp_path)

    raw_m, one_m, eight_m, group_m = median(raw), median(one), median(eight), median(group)
    f1, f8 = median(floor1), median(floor8)
    # ratios: the median over rounds of (rate / that round's raw rate), robust to a disk shared with others
    r1 = median([a / b for a, b in zip(one, raw, strict=True)])
    r8 = median([a / b for a, b in zip(eight, raw, strict=True)])
    rf1 = median([a / b for a, b in zip(floor1, raw, strict=True)])
    rf8 = median([a / b for a, b in zip(floor8, raw, strict=True)])
    what = "bare ResourcesManager + SqliteEventStore + rules" if args.bare else "Backend (with its subscribers)"
    print()
    print(f"machine: {info}")
    print(f"manager = {what}; durability full; payload {len(payload)} bytes; {rounds} rounds, each: {n} raw, "
          f"{n} x1, {THREADS}x{per_thread} x{THREADS}, the same for the floor, {n} raw")
    print("rates are medians over rounds; ratios are medians over rounds of rate / the same round's raw rate")
    print(f"raw sqlite3 single-writer commits/s:  {raw_m:10,.0f}   ({1e6 / raw_m:,.0f} us per commit)")
    print(f"manager single-writer writes/s:       {one_m:10,.0f}   ratio {r1:.2f}x raw "
          f"(target >= 0.7: {verdict(r1 >= 0.7)})")
    print(f"manager {THREADS} writer threads writes/s:     {eight_m:10,.0f}   ratio {r8:.2f}x raw "
          f"(target >= 2: {verdict(r8 >= 2)})")
    print(f"manager {THREADS} writer threads avg group size: {group_m:.2f} events/commit")
    print(f"manager time per single write beyond the raw commit: {(1 / one_m - 1 / raw_m) * 1e6:,.0f} us")
    print(f"volatile writes/s, 1 thread:  {vol1:10,.0f}   (target >= 30,000: {verdict(vol1 >= 30_000)}); "
          f"{THREADS} threads: {vol8:,.0f}")
    print(f"reference: python floor x1 {f1:,.0f} writes/s ({rf1:.2f}x raw), x{THREADS} {f8:,.0f} writes/s "
          f"({rf8:.2f}x raw)")

if __name__ == "__main__":
    main()
