"""Start-up (checkpoint + tail) and full replay (verify) of a large event store.

The database: EVENTS events over RESOURCES small peers (make_peer, 2 devices, ~0.5 kB of JSON
each): the first RESOURCES events create them, every later event updates peer ``i % RESOURCES``
(one transaction per event, versions counting up), and one checkpoint at revision EVENTS - TAIL,
so start-up replays a TAIL-event tail. It is written through ``SqliteEventStore.append`` (real
``Event`` objects, the store's own serialisation) in batches of 10,000 events per transaction and
``SqliteEventStore.write_checkpoint``, and cached under bench/out/ (keyed by the parameters and a
hash of the peer's JSON schema) so that re-runs are fast; ``--rebuild`` forces a new one. Runs open
the cached database in place and write nothing to it (the backend is opened, not started, and
closed without its final checkpoint).

Measured, in alternating rounds:

* start-up: ``Backend(data_dir)`` (lock, settings, open the store, ``ResourcesManager.restore``:
  newest valid checkpoint + the tail; durability full), wall time in ms, 5 per round. Warm OS page
  cache. The verdict uses the median; the maximum is printed too.
* full replay: ``backend.admin.verify`` on the store opened read-only (as ``lea-backend verify``
  does): replay from zero up to the checkpoint's revision with validation, then compare. Events/s =
  the checkpoint's revision / wall time.
* raw loop (the baseline): ``SELECT payload FROM events WHERE revision <= R ORDER BY revision`` on
  a plain sqlite3 connection + ``PeerDescriptor.model_validate_json(payload)`` per row, same rows.
  The ratio is the median over rounds of verify's rate / the same round's raw rate.

    .venv/bin/python bench/restore.py [--quick] [--rebuild] [--rounds N]
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import OUT, machine, median, parser, verdict

from backend import admin
from backend.backend import Backend
from backend.datadir import DB_FILE
from backend.storage.sqlite import SqliteEventStore
from resources.events import SCHEMA_VERSION, Checkpoint, Event, EventType
from resources.peer import PeerDescriptor
from tests.helpers.factories import make_peer

BATCH = 10_000
GENERATOR_VERSION = 1  # bump when the generated data changes


def cache_dir(events: int, resources: int, tail: int) -> Path:
    schema = json.dumps(PeerDescriptor.model_json_schema(), sort_keys=True)
    digest = hashlib.sha256(f"{schema}|{SCHEMA_VERSION}|{GENERATOR_VERSION}".encode()).hexdigest()[:10]
    return OUT / f"restore-e{events}-r{resources}-t{tail}-{digest}"


def build(target: Path, events: int, resources: int, tail: int) -> None:
    """Write the database into ``target`` (atomically: a temporary folder renamed at the end)."""
    building = target.with_name(target.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    started = time.perf_counter()
    peers = [make_peer(f"bench-{i:05d}") for i in range(resources)]
    versions = [0] * resources
    epoch = uuid.uuid4().hex
    at = datetime(2024, 1, 1, tzinfo=UTC)
    checkpoint_at = events - tail
    store = SqliteEventStore(building / DB_FILE, durability="off")
    try:
        batch: list[Event] = []
        for revision in range(1, events + 1):
            i = (revision - 1) % resources
            versions[i] += 1
            peer = peers[i] = peers[i].model_copy(update={"version": versions[i]})
            batch.append(
                Event(
                    epoch=epoch, revision=revision,
                    type=EventType.CREATED if versions[i] == 1 else EventType.UPDATED,
                    kind=peer.kind, id=peer.id, resource=peer, actor="bench",
                    at=at + timedelta(milliseconds=revision), tx=uuid.uuid4(),
                )
            )
            if len(batch) == BATCH or revision == events:
                store.append(batch, reserve_up_to=revision)
                batch = []
            if revision == checkpoint_at:
                store.write_checkpoint(Checkpoint(revision=revision, resources=tuple(peers)))
            if revision % 100_000 == 0:
                print(f"  built {revision:,} events ({time.perf_counter() - started:.0f} s)", flush=True)
    finally:
        store.close()
    shutil.rmtree(target, ignore_errors=True)
    building.rename(target)
    print(f"built {events:,} events in {time.perf_counter() - started:.1f} s: {target}", flush=True)


def startup_ms(data_dir: Path) -> tuple[float, int]:
    """Wall ms of ``Backend(data_dir)`` (restore included) and the restored revision."""
    start = time.perf_counter()
    backend = Backend(data_dir)
    elapsed = time.perf_counter() - start
    revision = backend.manager.revision
    backend.manager.close(checkpoint=False)  # leave the cached database's checkpoints as they are
    backend.close()
    return elapsed * 1000, revision


def verify_rate(db: Path) -> tuple[float, int]:
    store = SqliteEventStore(db, read_only=True)
    try:
        start = time.perf_counter()
        report = admin.verify(store)
        elapsed = time.perf_counter() - start
    finally:
        store.close()
    if not report.ok or report.checkpoint_revision is None:
        raise RuntimeError(f"verify failed on the benchmark database: {report.mismatches[:3]}")
    return report.checkpoint_revision / elapsed, report.checkpoint_revision


def raw_rate(db: Path, up_to: int) -> float:
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    validate = PeerDescriptor.model_validate_json
    try:
        start = time.perf_counter()
        n = 0
        for (payload,) in conn.execute(
            "SELECT payload FROM events WHERE revision <= ? ORDER BY revision", (up_to,)
        ):
            validate(payload)
            n += 1
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    assert n == up_to, (n, up_to)
    return n / elapsed


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=None, help="default 1,000,000 (quick 100,000)")
    p.add_argument("--resources", type=int, default=1000)
    p.add_argument("--tail", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=None, help="default 3 (quick 1)")
    p.add_argument("--rebuild", action="store_true", help="rebuild the cached database")
    args = p.parse_args()
    events = args.events or (100_000 if args.quick else 1_000_000)
    rounds = args.rounds or (1 if args.quick else 3)
    if not 0 < args.tail < events or args.resources > events - args.tail:
        p.error("need 0 < tail < events and resources <= events - tail")

    data_dir = cache_dir(events, args.resources, args.tail)
    db = data_dir / DB_FILE
    if args.rebuild or not db.exists():
        build(data_dir, events, args.resources, args.tail)
    else:
        print(f"using cached {data_dir} (--rebuild to regenerate)")
    checkpoint_at = events - args.tail

    startups, verifies, raws = [], [], []
    for r in range(rounds):
        for _ in range(5):
            ms, revision = startup_ms(data_dir)
            if revision < events:
                raise RuntimeError(f"restored revision {revision}, expected >= {events}")
            startups.append(ms)
        raws.append(raw_rate(db, checkpoint_at))
        rate, replayed = verify_rate(db)
        assert replayed == checkpoint_at, (replayed, checkpoint_at)
        verifies.append(rate)
        print(
            f"round {r + 1}/{rounds}: start-up {', '.join(f'{x:.1f}' for x in startups[-5:])} ms; "
            f"verify {verifies[-1]:,.0f} events/s; raw loop {raws[-1]:,.0f} rows/s",
            flush=True,
        )

    # Split the start-up (one more time, outside the measurements above).
    store = SqliteEventStore(db, read_only=True)
    try:
        t0 = time.perf_counter()
        checkpoint = store.load_checkpoint()
        t1 = time.perf_counter()
        tail = sum(1 for _ in store.replay(checkpoint.revision if checkpoint else 0))
        t2 = time.perf_counter()
    finally:
        store.close()

    s_med, s_max = median(startups), max(startups)
    v_med, raw_med = median(verifies), median(raws)
    ratio = median([v / r for v, r in zip(verifies, raws, strict=True)])  # each round against its own raw
    print()
    print(f"machine: {machine(db)}; database {db.stat().st_size / 1e6:,.0f} MB")
    print(f"data: {events:,} events over {args.resources:,} peers, checkpoint at {checkpoint_at:,}, "
          f"tail {args.tail:,}; {rounds} round(s), {len(startups)} start-ups")
    print(f"start-up split: load_checkpoint {(t1 - t0) * 1000:.1f} ms + tail replay of {tail:,} events "
          f"{(t2 - t1) * 1000:.1f} ms (store only)")
    print(f"start-up (Backend open: checkpoint + {args.tail:,}-event tail): median {s_med:.1f} ms, "
          f"max {s_max:.1f} ms (target < 100 ms: {verdict(s_med < 100)})")
    print(f"raw loop SELECT payload + PeerDescriptor.model_validate_json: {raw_med:,.0f} rows/s")
    print(f"full replay (admin.verify from zero, {checkpoint_at:,} events): {v_med:,.0f} events/s "
          f"(target >= 100,000: {verdict(v_med >= 100_000)}); ratio {ratio:.2f}x raw loop "
          f"(target >= 0.7: {verdict(ratio >= 0.7)})")


if __name__ == "__main__":
    main()
