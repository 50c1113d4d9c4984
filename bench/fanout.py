"""Fan-out: SUBSCRIBERS in-process subscribers while one writer commits RATE events/s through the manager.

One writer thread, paced at RATE events/s for SECONDS s (open loop: it does not wait for a commit
before the next submit, so a slow commit cannot lower the offered rate), calls
``manager.submit([Put(peer)], actor)`` - the change ``store_peer_descriptor`` makes, an update of
one small peer - with durability full (every commit group is fsync'd). SUBSCRIBERS threads each
drain their own ``manager.subscribe()`` Subscription with ``get()``.

Latency, as measured here: **submit-to-delivery** = the ``time.perf_counter()`` a subscriber
thread reads right after ``get()`` returned the batch holding revision R, minus the one the writer
read just before it called ``store_peer_descriptor`` for R. It therefore includes the durable
commit (fsync) and the wake-up of the subscriber thread. Percentiles are over every (subscriber,
event) pair. The submit-to-acknowledge time (the write's Future resolved) is printed too.

Checked: every subscriber got a Hello and then exactly the writer's revisions, in order, with no
Resync.

The manager is the one of a started ``Backend`` (its cluster-deployment operator and demo peer
broker are subscribed too and drain every event, as in the app); ``--bare`` uses a bare
``ResourcesManager`` with the rules and the store instead.

Baseline, same run, same rate, same number of threads: the writer puts ``(i, t_submit)`` into
SUBSCRIBERS plain ``queue.Queue``s (no storage, no validation); subscriber threads ``get()``.
Ratio = manager / queue percentile (the target is the manager's absolute p99 < 20 ms). Rounds
alternate the order (queue first, then manager first, ...); the figures printed are medians over
rounds, the ratios medians of the per-round ratios.

Reference ("floor", same run): the same queue.Queue fan-out behind the least a durable sequencer
does - the writer puts (i, t_submit) on a SimpleQueue, one sequencer thread takes every queued item,
INSERTs as many rows of the same payload into the store's events table in one fsync'd transaction
(same PRAGMAs), then puts each item into the queues. The gap between the floor and the queue
baseline is the price of a durable commit under GIL contention; the gap between the manager and
the floor is the manager's own.

    .venv/bin/python bench/fanout.py [--quick] [--bare] [--no-gc] [--rounds N] [--subscribers N]
                                     [--rate R] [--seconds S]
"""

from __future__ import annotations

import gc
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from _common import machine, median, paced, parser, percentile, temp_dir, verdict, write_path

from backend.actions import store_peer_descriptor
from backend.manager import Put, TxResult
from backend.storage.sqlite import SqliteEventStore
from resources.gc_policy import GC_THRESHOLD, freeze_loaded, raise_gc_threshold
from resources.wire import EventBatch, Hello, Resync
from tests.helpers.factories import make_peer


class Run:
    def __init__(self, name: str) -> None:
        self.name = name
        self.submitted: dict[int, float] = {}  # revision (or index) -> perf_counter before submit
        self.acked: list[float] = []  # submit-to-ack (or -commit, floor) seconds
        self.received: list[list[tuple[int, float]]] = []
        self.problems: list[str] = []
        self.elapsed = 0.0
        self.max_behind = 0.0

    def latencies(self) -> list[float]:
        out = [t - self.submitted[rev] for per_sub in self.received for rev, t in per_sub]
        out.sort()
        return out


def paced_run(rate: float, seconds: float, run: Run, one: Callable[[int, float], None]) -> None:
    """Call ``one(i, t_submit)`` ``rate * seconds`` times, at ``rate`` per second, recording into ``run``."""
    pacing = paced(rate, seconds, one)
    run.elapsed, run.max_behind = pacing.elapsed, pacing.max_behind


def queue_fanout(subscribers: int, rate: float, seconds: float, durable_db: Path | None = None) -> Run:
    """Fan-out through plain queue.Queues; with ``durable_db``, behind a minimal durable sequencer."""
    run = Run("queue.Queue" if durable_db is None else "floor")
    queues: list[queue.Queue[tuple[int, float] | None]] = [queue.Queue() for _ in range(subscribers)]
    run.received = [[] for _ in range(subscribers)]

    def subscriber(q: queue.Queue[tuple[int, float] | None], got: list[tuple[int, float]]) -> None:
        while True:
            item = q.get()
            now = time.perf_counter()
            if item is None:
                return
            got.append((item[0], now))

    threads = [
        threading.Thread(target=subscriber, args=(q, got)) for q, got in zip(queues, run.received, strict=True)
    ]
    for t in threads:
        t.start()

    def publish(i: int, t_submit: float) -> None:
        for q in queues:
            q.put((i, t_submit))

    sequencer: threading.Thread | None = None
    requests: queue.SimpleQueue[tuple[int, float] | None] = queue.SimpleQueue()
    if durable_db is None:
        def one(i: int, t_submit: float) -> None:
            run.submitted[i] = t_submit
            publish(i, t_submit)
    else:
        SqliteEventStore(durable_db).close()  # the store's schema
        conn = sqlite3.connect(durable_db, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL").fetchone()
        conn.execute("PRAGMA synchronous=FULL")
        payload = make_peer("fanout-01").model_dump_json()
        row = ("e", "t", "peer", "r", "updated", payload, 2, "bench", "2024-01-01T00:00:00+00:00")

        def sequence() -> None:
            stopping = False
            while not stopping:
                group = [requests.get()]
                while True:
                    try:
                        group.append(requests.get_nowait())
                    except queue.Empty:
                        break
                if None in group:
                    stopping = True
                items = [g for g in group if g is not None]
                if not items:
                    continue
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)", [(i + 1, *row) for i, _ in items])
                conn.execute("COMMIT")
                now = time.perf_counter()
                for i, t_submit in items:
                    run.acked.append(now - t_submit)
                    publish(i, t_submit)

        sequencer = threading.Thread(target=sequence)
        sequencer.start()

        def one(i: int, t_submit: float) -> None:
            run.submitted[i] = t_submit
            requests.put((i, t_submit))

    paced_run(rate, seconds, run, one)
    if sequencer is not None:
        requests.put(None)
        sequencer.join()
        conn.close()
    for q in queues:
        q.put(None)
    for t in threads:
        t.join()
    expected = list(range(round(rate * seconds)))
    for k, got in enumerate(run.received):
        if [rev for rev, _ in got] != expected:
            run.problems.append(f"{run.name} subscriber {k} got {len(got)} items out of order or missing")
    return run


def manager_fanout(data_dir: Path, subscribers: int, rate: float, seconds: float, bare: bool = False) -> Run:
    run = Run("manager")
    with write_path(data_dir, bare) as (_, manager):  # closing it finishes every subscription
        peer = make_peer("fanout-01")
        store_peer_descriptor(manager, peer, "bench")  # created before anyone subscribes
        subs = [manager.subscribe() for _ in range(subscribers)]
        if gc.get_threshold()[0] == GC_THRESHOLD[0]:
            freeze_loaded()  # the start-up state, as LEA and the server freeze theirs
        run.received = [[] for _ in range(subscribers)]
        firsts: list[object] = [None] * subscribers

        def subscriber(k: int) -> None:
            sub, got = subs[k], run.received[k]
            while True:
                item = sub.get(timeout=60)
                now = time.perf_counter()
                if item is None:
                    return
                if isinstance(item, EventBatch):
                    for event in item.events:
                        got.append((event.revision, now))
                elif isinstance(item, Hello):
                    firsts[k] = item
                elif isinstance(item, Resync):
                    run.problems.append(f"subscriber {k} got a Resync: {item.reason}")

        threads = [threading.Thread(target=subscriber, args=(k,)) for k in range(subscribers)]
        for t in threads:
            t.start()

        changes = [Put(peer)]
        resolved = threading.Semaphore(0)

        def done(future: Future[TxResult], t_submit: float) -> None:
            # runs on the sequencer thread when the write is acknowledged; keeps nothing of the Future
            # (holding 10,000 Futures would make every full GC collection of this process slower)
            now = time.perf_counter()
            try:
                run.submitted[future.result().revision] = t_submit
                run.acked.append(now - t_submit)
            except BaseException as exc:
                run.problems.append(f"a write failed: {exc!r}")
            resolved.release()

        def one(i: int, t_submit: float) -> None:
            manager.submit(changes, "bench").add_done_callback(lambda f: done(f, t_submit))

        paced_run(rate, seconds, run, one)
        for _ in range(round(rate * seconds)):
            if not resolved.acquire(timeout=60):
                raise RuntimeError("a write was not acknowledged within 60 s")
    for t in threads:  # the subscriber threads saw None
        t.join()
    expected = sorted(run.submitted)
    if expected != list(range(expected[0], expected[0] + len(expected))):
        run.problems.append("the writer's revisions are not contiguous")
    for k, got in enumerate(run.received):
        if not isinstance(firsts[k], Hello):
            run.problems.append(f"subscriber {k} got no Hello")
        if [rev for rev, _ in got] != expected:
            run.problems.append(f"subscriber {k} got {len(got)} events, not the {len(expected)} revisions in order")
    return run


def summary(run: Run) -> tuple[float, float, float]:
    lat = run.latencies()
    p50, p99, worst = percentile(lat, 50), percentile(lat, 99), lat[-1]
    n = len(run.submitted)
    print(
        f"{run.name:>12}: {n:,} events in {run.elapsed:.2f} s ({n / run.elapsed:,.0f}/s, "
        f"max {run.max_behind * 1000:.1f} ms behind schedule), {len(lat):,} deliveries: "
        f"p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, "
        f"max {worst * 1000:.2f} ms; {'all delivered in order' if not run.problems else run.problems[:3]}",
        flush=True,
    )
    return p50, p99, worst


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--subscribers", type=int, default=100)
    p.add_argument("--rate", type=float, default=1000.0, help="events per second (default 1000)")
    p.add_argument("--seconds", type=float, default=None, help="per run (default 10, quick 2)")
    p.add_argument("--rounds", type=int, default=None, help="queue + manager runs, alternated (default 3, quick 1)")
    p.add_argument(
        "--bare", action="store_true",
        help="a bare ResourcesManager(store, rules) instead of Backend (no operator, no demo peer broker)",
    )
    p.add_argument(
        "--no-gc", action="store_true",
        help="diagnostic: disable Python's cyclic garbage collector during the runs (shows the share of "
             "full-collection pauses in the tail; not how LEA runs)",
    )
    p.add_argument(
        "--no-app-gc", action="store_true",
        help="leave the collector at Python's defaults instead of the policy LEA and the server apply "
             "(resources/gc_policy.py)",
    )
    args = p.parse_args()
    if args.no_gc:
        gc.disable()
    elif not args.no_app_gc:
        raise_gc_threshold()  # what LEA and `lea-backend serve` run with; each run freezes its start-up
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    rounds = args.rounds or (1 if args.quick else 3)

    qs: list[tuple[float, float]] = []
    ms: list[tuple[float, float]] = []
    fs: list[tuple[float, float]] = []
    acked: list[float] = []
    floor_acked: list[float] = []
    problems: list[str] = []
    with temp_dir(args.tmp_dir) as tmp:
        for r in range(rounds):
            print(f"round {r + 1}/{rounds}:", flush=True)
            order = ["queue", "floor", "manager"] if r % 2 == 0 else ["manager", "floor", "queue"]
            for which in order:
                if which == "queue":
                    q = queue_fanout(args.subscribers, args.rate, seconds)
                    qs.append(summary(q)[:2])
                    problems += q.problems
                elif which == "floor":
                    f = queue_fanout(args.subscribers, args.rate, seconds, Path(tmp) / f"floor-{r}.db")
                    fs.append(summary(f)[:2])
                    problems += f.problems
                    floor_acked += f.acked
                else:
                    m = manager_fanout(Path(tmp) / f"data-{r}", args.subscribers, args.rate, seconds, args.bare)
                    ms.append(summary(m)[:2])
                    problems += m.problems
                    acked += m.acked
        info = machine(Path(tmp))

    acked.sort()
    floor_acked.sort()
    f50, f99 = median([x[0] for x in fs]), median([x[1] for x in fs])
    q50, q99 = median([x[0] for x in qs]), median([x[1] for x in qs])
    m50, m99 = median([x[0] for x in ms]), median([x[1] for x in ms])
    r50 = median([m[0] / q[0] for m, q in zip(ms, qs, strict=True)])
    r99 = median([m[1] / q[1] for m, q in zip(ms, qs, strict=True)])
    worst99 = max(x[1] for x in ms)
    ok = not problems
    what = "bare ResourcesManager + SqliteEventStore + rules" if args.bare else "Backend (with its own subscribers)"
    print()
    print(f"machine: {info}")
    gc_note = ", cyclic GC DISABLED (diagnostic)" if args.no_gc else ""
    print(f"manager = {what}, durability full{gc_note}; {args.subscribers} subscriber threads, "
          f"{args.rate:,.0f} events/s for {seconds:g} s, {rounds} round(s); figures are medians over rounds")
    print("latency = subscriber's perf_counter right after get() returned - writer's perf_counter just before submit")
    print(f"manager submit-to-ack (durable commit): p50 {percentile(acked, 50) * 1000:.2f} ms, "
          f"p99 {percentile(acked, 99) * 1000:.2f} ms")
    verdict_delivery = "every subscriber got every revision, in order" if ok else "PROBLEMS: " + "; ".join(problems[:5])
    print(f"delivery: {verdict_delivery}")
    print(f"queue.Queue fan-out: p50 {q50 * 1000:.2f} ms, p99 {q99 * 1000:.2f} ms")
    print(f"manager fan-out:     p50 {m50 * 1000:.2f} ms, p99 {m99 * 1000:.2f} ms "
          f"(worst round's p99 {worst99 * 1000:.2f} ms) (target p99 < 20 ms: {verdict(ok and m99 < 0.020)})")
    print(f"ratio manager/queue: p50 {r50:.2f}x, p99 {r99:.2f}x")
    print(f"reference: floor (queue.Queue fan-out behind a minimal fsync'd sequencer): p50 {f50 * 1000:.2f} ms, "
          f"p99 {f99 * 1000:.2f} ms; its submit-to-commit p50 {percentile(floor_acked, 50) * 1000:.2f} ms, "
          f"p99 {percentile(floor_acked, 99) * 1000:.2f} ms; manager/floor p99 {m99 / f99:.2f}x")


if __name__ == "__main__":
    main()
