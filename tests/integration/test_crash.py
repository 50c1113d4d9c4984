"""kill -9 at random moments never loses an acknowledged write nor damages the database.

A child process (tests/helpers/crash_writer.py) writes peers through the actions from several
threads with durability "full" and prints every acknowledged write; the parent SIGKILLs it
0.05-0.6 s after it starts writing, again and again on the same data directory. After each kill:
the database passes ``PRAGMA integrity_check``, every acknowledged write is stored (by id and
revision, with at least that version), ``verify`` passes, the lock is free, and a Backend restores
every acknowledged write and keeps handing out new, higher revisions.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest

from backend import actions, admin
from backend.backend import Backend
from backend.storage.sqlite import SqliteEventStore
from resources import ResourceKind
from tests.helpers.factories import make_peer

REPO = Path(__file__).resolve().parents[2]
KILLS = 22
THREADS = 4


@dataclass(frozen=True)
class Ack:
    id: UUID
    version: int
    revision: int


def _run_and_kill(data_dir: Path, rng: random.Random, log: Path, checkpoint_interval: int) -> list[Ack]:
    """Start the writer, SIGKILL it at a random moment, return the writes it acknowledged."""
    with open(log, "ab") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.crash_writer", str(data_dir), str(THREADS),
             str(checkpoint_interval)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, bufsize=0,
        )
    lines: list[bytes] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line == b"ready\n":
                ready.set()
            lines.append(line)
        ready.set()  # EOF: the child died before (or after) saying ready

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(60) and b"ready\n" in lines, f"writer never got ready: {log.read_text()[-2000:]}"
        threading.Event().wait(rng.uniform(0.05, 0.6))
        os.kill(proc.pid, signal.SIGKILL)
        returncode = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        reader.join(30)
        if proc.stdout is not None:
            proc.stdout.close()
    assert returncode == -signal.SIGKILL, f"writer exited by itself ({returncode}): {log.read_text()[-3000:]}"
    acks = []
    for line in lines:
        if not line.endswith(b"\n"):
            continue  # cut off by the kill before it was complete: the parent never "saw" it
        parts = line.decode().split()
        if parts and parts[0] == "ack":
            acks.append(Ack(UUID(parts[1]), int(parts[2]), int(parts[3])))
    return acks


def _check_storage(data_dir: Path, acks: list[Ack], after: int) -> None:
    """The acknowledged writes of the last run (all above ``after``) are stored; the file is sound."""
    db = data_dir / "lea.db"
    raw = sqlite3.connect(db)
    try:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        raw.close()

    store = SqliteEventStore(db)
    try:
        stored = {e.revision: e for e in store.read_events(after=after, kind=ResourceKind.PEER)}
        for ack in acks:
            event = stored.get(ack.revision)
            assert event is not None, f"acknowledged revision {ack.revision} ({ack.id}) is not stored"
            assert event.id == ack.id and event.resource is not None
            assert event.resource.version == ack.version
        assert store.integrity_check() == "ok"
        report = admin.verify(store)
        assert report.ok, report.mismatches
    finally:
        store.close()


def _check_restore(data_dir: Path, acked: dict[UUID, Ack], highest: int) -> int:
    """A new Backend opens (the lock is free), restores every acknowledged write, writes above it all."""
    backend = Backend(data_dir)
    try:
        manager = backend.manager
        for ack in acked.values():
            peer = manager.get(ResourceKind.PEER, ack.id)
            assert peer is not None, f"acknowledged peer {ack.id} was not restored"
            assert peer.version >= ack.version
        assert manager.revision >= highest
        backend.start()
        result = actions.store_peer_descriptor(manager, make_peer(f"probe-{highest}"), "test")
        assert result.revision > highest
        return result.revision
    finally:
        backend.close()


@pytest.mark.slow
def test_kill_9_never_loses_an_acknowledged_write(data_dir: Path, tmp_path: Path) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    log = tmp_path / "writer-stderr.log"
    acked: dict[UUID, Ack] = {}  # the latest acknowledged write per peer
    highest = 0
    per_run = []
    for run in range(KILLS):
        interval = rng.choice([50, 1000])  # checkpoints during the writes, and long tails
        acks = _run_and_kill(data_dir, rng, log, interval)
        per_run.append(len(acks))
        previous = highest
        for ack in acks:
            if ack.id not in acked or ack.version > acked[ack.id].version:
                acked[ack.id] = ack
            highest = max(highest, ack.revision)
        try:
            _check_storage(data_dir, acks, previous)
            highest = _check_restore(data_dir, acked, highest)
        except AssertionError as exc:
            raise AssertionError(f"after kill {run + 1} (seed {seed}): {exc}") from exc
    # The kills really landed in the middle of writing.
    assert sum(per_run) >= KILLS, per_run
    assert sum(1 for n in per_run if n > 0) >= KILLS // 2, per_run
