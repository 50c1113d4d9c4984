"""The burst of bench/gui_burst.py, shared by the benchmark and its backend child (_burst_child.py).

Plain data only (ids, small numbers; JSON between the two processes): the fleet preloaded into a
data directory, the planned transactions, and ``build`` turning one planned change into a write.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import _common  # noqa: F401 - puts the repository on sys.path (tests.helpers.factories)

ACTOR = "bench"
STEPS = 8  # Deploying 0/8 .. 8/8, then Deployed: 10 states per cluster

#: One change of the burst, as plain numbers (built into a resource by the writer, as a producer does):
#: ("state", cluster index, step 0..STEPS+1), ("online", peer index, host number or 0 for offline),
#: ("location", peer index, location number).
Op = tuple[str, int, int]


@dataclass(frozen=True)
class Fleet:
    """Ids only: the benchmark keeps no resources of its own alive (they would weigh on the GC)."""

    peers: list[UUID]
    clusters: list[tuple[UUID, tuple[UUID, ...]]]  # cluster id, its member peers


def preload(data_dir: Path, peers: int, clusters: int) -> Fleet:
    """Peers and clusters written in transactions of 1,000; each cluster spans two peers."""
    from backend.backend import Backend
    from backend.manager import Put
    from tests.helpers.factories import make_cluster, make_peer

    peer_list = [make_peer(f"bench-{i:05d}", devices=2) for i in range(peers)]
    step = max(1, peers // clusters)
    pairs = [(peer_list[(i * step) % peers], peer_list[(i * step + 1) % peers]) for i in range(clusters)]
    cluster_list = [make_cluster(f"cluster-{i:04d}", a, b) for i, (a, b) in enumerate(pairs)]
    backend = Backend(data_dir, durability="off").start()
    try:
        resources: list[Any] = [*peer_list, *cluster_list]
        for i in range(0, len(resources), 1000):
            backend.manager.write([Put(r) for r in resources[i : i + 1000]], ACTOR)
    finally:
        backend.close()
    return Fleet(
        [p.id for p in peer_list],
        [(c.id, tuple(dict.fromkeys((a.id, b.id)))) for c, (a, b) in zip(cluster_list, pairs, strict=True)],
    )


def make_burst(fleet: Fleet, events: int, tx_max: int, seed: int = 7) -> list[list[Op]]:
    """EVENTS changes in transactions of 1..tx_max; per-cluster progress stays in order."""
    rng = random.Random(seed)
    n_cluster = events // 2
    n_peer_update = events // 10
    n_connection = events - n_cluster - n_peer_update
    # Cluster progress: round-robin over clusters, each one's states in order.
    clusters = len(fleet.clusters)
    per_cluster = max(1, n_cluster // max(1, clusters))
    cluster_ops: list[Op] = []
    for k in range(per_cluster):
        for c in range(clusters):
            if len(cluster_ops) < n_cluster:
                cluster_ops.append(("state", c, min(k, STEPS) if k < min(per_cluster - 1, STEPS + 1) else STEPS + 1))
    cluster_ops += [cluster_ops[-1]] * (n_cluster - len(cluster_ops))
    online: dict[int, bool] = {}
    others: list[Op] = []
    for _ in range(n_connection):
        peer = rng.randrange(len(fleet.peers))
        online[peer] = not online.get(peer, False)
        others.append(("online", peer, rng.randrange(1, 65_536) if online[peer] else 0))
    others += [("location", rng.randrange(len(fleet.peers)), i % 97) for i in range(n_peer_update)]
    rng.shuffle(others)
    # Merge the two streams at random, keeping each stream's order.
    merged: list[Op] = []
    a, b = 0, 0
    while a < len(cluster_ops) or b < len(others):
        if b >= len(others) or (a < len(cluster_ops) and rng.random() < 0.5):
            merged.append(cluster_ops[a])
            a += 1
        else:
            merged.append(others[b])
            b += 1
    txs: list[list[Op]] = []
    i = 0
    while i < len(merged):
        size = rng.randint(1, tx_max)
        txs.append(merged[i : i + size])
        i += size
    return txs


def build(op: Op, fleet: Fleet, manager: Any, since: datetime) -> Any:
    """The write (a ``backend.manager.Put``) of one planned change."""
    from backend.manager import Put
    from resources.kinds import ResourceKind
    from resources.state import ClusterState, Deployed, Deploying, Offline, Online, PeerConnectionState, Progress

    kind, index, value = op
    if kind == "state":
        cluster_id, members = fleet.clusters[index]
        status: Any = (
            Deploying(done=value, total=STEPS, peers={m: Progress(done=value, total=STEPS) for m in members})
            if value <= STEPS
            else Deployed()
        )
        return Put(ClusterState(id=cluster_id, state=status))
    peer_id = fleet.peers[index]
    if kind == "online":
        host = Online(remote_host=f"10.0.{value // 256}.{value % 256}", since=since)
        return Put(PeerConnectionState(id=peer_id, state=host if value else Offline()))
    return Put(manager.get(ResourceKind.PEER, peer_id).model_copy(update={"location": f"lab-{value}"}))


def save_plan(path: Path, fleet: Fleet, txs: list[list[Op]]) -> None:
    plan = {
        "peers": [str(p) for p in fleet.peers],
        "clusters": [[str(c), [str(m) for m in members]] for c, members in fleet.clusters],
        "txs": txs,
    }
    path.write_text(json.dumps(plan), encoding="utf-8")


def load_plan(path: Path) -> tuple[Fleet, list[list[Op]]]:
    plan = json.loads(path.read_text(encoding="utf-8"))
    fleet = Fleet(
        [UUID(p) for p in plan["peers"]],
        [(UUID(c), tuple(UUID(m) for m in members)) for c, members in plan["clusters"]],
    )
    return fleet, [[(str(k), int(i), int(v)) for k, i, v in tx] for tx in plan["txs"]]
