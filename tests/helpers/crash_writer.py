"""Child process of tests/integration/test_crash.py: writes peers through the actions until killed.

    python -m tests.helpers.crash_writer DATA_DIR THREADS CHECKPOINT_INTERVAL

Opens the Backend on DATA_DIR with durability "full", prints ``ready``, then THREADS threads loop
forever: create a new peer (create-only, up to PEERS_PER_THREAD each) or update one of their own
peers (expected version).
Right after an action returns, the thread prints ``ack <peer id> <version> <revision>`` and
flushes, so every line the parent reads is a write the backend acknowledged. Any error is printed
to stderr and ends the process with exit code 2 (the parent expects to kill it with SIGKILL).
"""

from __future__ import annotations

import os
import random
import sys
import threading
import traceback
import uuid

from backend import actions
from backend.backend import Backend
from resources.peer import PeerDescriptor
from tests.helpers.factories import make_peer

PEERS_PER_THREAD = 25
_out = threading.Lock()


def _emit(line: str) -> None:
    # One write + flush per line under a lock: lines from several threads never interleave.
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _writer(backend: Backend, index: int) -> None:
    try:
        rng = random.Random(os.getpid() * 100 + index)
        actor = f"crash-writer-{index}"
        mine: dict[uuid.UUID, tuple[PeerDescriptor, int]] = {}
        step = 0
        while True:
            step += 1
            # Mostly updates of a bounded set of own peers: the state (and so every checkpoint)
            # stays small while the event log grows over the parent's many runs.
            if len(mine) >= PEERS_PER_THREAD or (mine and rng.random() < 0.35):
                peer, version = mine[rng.choice(list(mine))]
                changed = peer.model_copy(update={"location": f"rack-{step}"})
                result = actions.store_peer_descriptor(
                    backend.manager, changed, actor, expected_version=version
                )
                peer = changed
            else:
                peer = make_peer(f"crash-{uuid.uuid4().hex[:16]}", devices=rng.randint(0, 3))
                result = actions.store_peer_descriptor(backend.manager, peer, actor, create_only=True)
            mine[peer.id] = (peer, result.version)
            _emit(f"ack {result.id} {result.version} {result.revision}")
    except BaseException:
        with _out:
            traceback.print_exc()
            sys.stderr.flush()
        os._exit(2)


def main() -> None:
    data_dir, threads, checkpoint_interval = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    backend = Backend(data_dir, durability="full", checkpoint_interval=checkpoint_interval).start()
    _emit("ready")
    workers = [
        threading.Thread(target=_writer, args=(backend, i), name=f"crash-writer-{i}", daemon=True)
        for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()
