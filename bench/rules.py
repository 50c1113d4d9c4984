"""The sequencer's in-memory write path: ``backend.rules.check`` + ``State.put``, on a fleet with clusters.

``bench/append.py`` measures durable writes of one peer that no cluster uses; its cost is mostly
fsync. This one measures what the rules and the state's indexes cost per change, CPU only, on a
fleet of PEERS peers (4 devices each) in clusters of 4 peers, every other cluster deployed:

* peer update: a location change of a peer in no cluster / in an undeployed cluster;
* peer with a new device: the device set changes (the owners index, and the members of the peer's
  clusters, are brought up to date);
* cluster update: the same devices (a rename) / one device swapped for another peer's;
* deployment: a disjoint cluster (accepted) / one sharing a peer with a deployed one (refused);
* delete checks: a peer clusters use (refused), a deployed cluster (refused);
* State.copy (the manager copies the published state after a failed commit).

Each figure is the best of ROUNDS runs of N operations, in microseconds per operation. The script
only uses ``backend.rules.check`` and ``backend.state.State``, so it runs unchanged against an older
tree for a before/after comparison (that tree first on the path, this one after it):

    .venv/bin/python bench/rules.py [--quick]
    PYTHONPATH=OLD_TREE:bench:. .venv/bin/python bench/rules.py
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

from _common import machine, parser

from backend import rules
from backend.manager import Delete, Put
from backend.state import State
from resources.cluster import ClusterDeployment, ClusterDescriptor
from resources.errors import LeaError
from resources.kinds import ResourceKind
from resources.peer import Device, PeerDescriptor
from tests.helpers.factories import make_cluster, make_peer

PER_CLUSTER = 4


def fleet(peers: int) -> tuple[State, list[PeerDescriptor], list[ClusterDescriptor]]:
    state = State()
    all_peers = [make_peer(f"bench-{i:04d}", devices=4) for i in range(peers)]
    for peer in all_peers:
        state.put(peer)
    clusters = []
    for c in range(peers // PER_CLUSTER):
        cluster = make_cluster(f"cluster-{c:04d}", *all_peers[c * PER_CLUSTER : (c + 1) * PER_CLUSTER])
        state.put(cluster)
        clusters.append(cluster)
    for cluster in clusters[::2]:
        state.put(ClusterDeployment(id=cluster.id))
    return state, all_peers, clusters


def best(fn: Callable[[int], None], n: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        times.append((time.perf_counter() - start) / n * 1e6)
    return min(times)


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    peers, n, rounds = (100, 300, 3) if args.quick else (400, 2000, 7)
    state, all_peers, clusters = fleet(peers)
    undeployed = clusters[1::2]
    free_peers = [p for k in range(1, len(clusters), 2) for p in all_peers[k * PER_CLUSTER : (k + 1) * PER_CLUSTER]]
    lone = make_peer("lone", devices=4)
    state.put(lone)
    spare = make_peer("spare", devices=len(undeployed))
    state.put(spare)

    def write(resource: PeerDescriptor | ClusterDescriptor) -> None:
        rules.check(state, Put(resource))
        state.put(resource)

    def refused(change: Put | Delete) -> None:
        try:
            rules.check(state, change)
        except LeaError:
            return
        raise AssertionError(f"{change} was not refused")

    def current(id: uuid.UUID) -> PeerDescriptor:
        peer = state.peer(id)
        assert peer is not None
        return peer

    def peer_update(peer_id: Callable[[int], uuid.UUID]) -> Callable[[int], None]:
        def run(i: int) -> None:
            peer = current(peer_id(i))
            write(peer.model_copy(update={"version": peer.version + 1, "location": f"l{i}"}))
        return run

    def new_device(i: int) -> None:
        peer = current(free_peers[i % len(free_peers)].id)
        device = Device(id=uuid.uuid4(), name=f"ecu-new-{i}", interface=peer.interfaces[0].id)
        write(peer.model_copy(update={"devices": (*peer.devices[:4], device)}))

    def cluster_rename(i: int) -> None:
        cluster = state.cluster(undeployed[i % len(undeployed)].id)
        assert cluster is not None
        write(cluster.model_copy(update={"name": f"renamed-{i % len(undeployed):04d}-{i}"}))

    def cluster_swap(i: int) -> None:
        """Every other time, the cluster's first device is replaced by one of the spare peer's."""
        k = i % len(undeployed)
        original, cluster = undeployed[k], state.cluster(undeployed[k].id)
        assert cluster is not None
        swapped = (i // len(undeployed)) % 2 == 0
        devices = (*original.devices[1:], spare.devices[k].id) if swapped else original.devices
        write(cluster.model_copy(update={"devices": tuple(sorted(devices, key=str))}))

    def copy_state() -> None:
        state.copy()

    blocked = make_cluster("cluster-blocked", all_peers[0], all_peers[PER_CLUSTER])  # shares deployed peers
    state.put(blocked)
    results = {
        "peer update, in no cluster": best(peer_update(lambda i: lone.id), n, rounds),
        "peer update, in an undeployed cluster": best(
            peer_update(lambda i: free_peers[i % len(free_peers)].id), n, rounds
        ),
        "peer with a new device (members updated)": best(new_device, n, rounds),
        "cluster update, same devices": best(cluster_rename, n, rounds),
        "cluster update, a device swapped": best(cluster_swap, n, rounds),
        "deployment check, accepted": best(
            lambda i: rules.check(state, Put(ClusterDeployment(id=undeployed[i % len(undeployed)].id))), n, rounds
        ),
        "deployment check, refused (peer blocked)": best(
            lambda i: refused(Put(ClusterDeployment(id=blocked.id))), n, rounds
        ),
        "delete check, peer in clusters (refused)": best(
            lambda i: refused(Delete(ResourceKind.PEER, all_peers[i % len(all_peers)].id)), n, rounds
        ),
        "delete check, deployed cluster (refused)": best(
            lambda i: refused(Delete(ResourceKind.CLUSTER, clusters[0].id)), n, rounds
        ),
        f"State.copy ({peers} peers, {len(clusters)} clusters)": best(lambda i: copy_state(), 10, rounds),
    }
    print(f"machine: {machine(Path.cwd())}")
    for name, us in results.items():
        print(f"{name:50s} {us:9.1f} us")


if __name__ == "__main__":
    main()
