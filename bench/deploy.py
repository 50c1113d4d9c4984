"""100 clusters of 4 demo peers, deployed at once with zero delay: the operators' own cost.

Every peer is a demo peer with ``demo_delay_scale=0``, so the peers themselves take no time: what
is measured is the machinery of the seed's sequence (the ClusterDeploymentOperator and the
deploy_cluster steps its runner drives on its one thread, the parameters, the demo broker's
reports, every ClusterState progress event through the manager).

* deploy: store the 100 ClusterDeployments at once (submitted back to back, then awaited), then
  wait until every cluster's ClusterState is Deployed. Wall time from the first submit to the
  last Deployed event; events = revisions the manager assigned meanwhile (persisted + volatile).
* plain updates (the reference, same run, same backend): as many manager writes as the deploy
  produced events, each a volatile ``set_cluster_state`` from one thread, one after the other;
  measured before and after the deploy, the mean rate is used (the machine may be shared).

Figures: wall time, events per second, operator overhead per parameter (wall time / parameters
deployed), and the ratio of the deploy's time per event to a plain update's.

    .venv/bin/python bench/deploy.py [--quick] [--clusters N] [--tmp-dir DIR]
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

from _common import machine, parser, temp_dir

from backend import actions
from backend.backend import Backend
from backend.manager import Put
from resources.cluster import ClusterDeployment, ClusterDescriptor
from resources.configuration import PeerConfiguration
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.state import ClusterState, Deployed, Deploying, Failed, PeerConnectionState
from resources.wire import EventBatch
from tests.helpers.factories import make_cluster, make_peer

PEERS_PER_CLUSTER = 4
DEADLINE = 600.0


def build(n_clusters: int) -> tuple[list[PeerDescriptor], list[ClusterDescriptor]]:
    """Each cluster: a leader with Ethernet + CAN, two CAN members and an Ethernet-only member."""
    peers: list[PeerDescriptor] = []
    clusters: list[ClusterDescriptor] = []
    for c in range(n_clusters):
        members = [
            make_peer(f"bench-{c:03d}-{m}", devices=2, can=m < 3, demo=True) for m in range(PEERS_PER_CLUSTER)
        ]
        peers += members
        clusters.append(make_cluster(f"cluster-{c:03d}", members[0], *members[1:]))
    return peers, clusters


def wait_online(backend: Backend, peers: list[PeerDescriptor]) -> None:
    deadline = time.monotonic() + DEADLINE
    ids = {p.id for p in peers}
    while True:
        online = {
            r.id for r in backend.manager.resources_of(ResourceKind.PEER_CONNECTION_STATE)
            if isinstance(r, PeerConnectionState) and r.online
        }
        if ids <= online:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(ids - online)} demo peers never came online")
        time.sleep(0.05)


def deploy_all(backend: Backend, clusters: list[ClusterDescriptor]) -> tuple[float, int, int, int]:
    """(wall seconds, events, Deploying events, parameters) of deploying every cluster at once."""
    manager = backend.manager
    pending = {c.id for c in clusters}
    done = threading.Event()
    failed: list[str] = []
    deploying = 0
    subscription = manager.subscribe(kinds=[ResourceKind.CLUSTER_STATE])

    def watch() -> None:
        nonlocal deploying
        for item in subscription:
            if not isinstance(item, EventBatch):
                continue
            for event in item.events:
                if not isinstance(event.resource, ClusterState):
                    continue
                state = event.resource.state
                if isinstance(state, Deploying):
                    deploying += 1
                elif isinstance(state, Deployed):
                    pending.discard(event.id)
                elif isinstance(state, Failed):
                    failed.append(state.reason)
                    pending.discard(event.id)
            if not pending:
                done.set()
                return

    watcher = threading.Thread(target=watch, name="bench-watcher", daemon=True)
    watcher.start()
    first_revision = manager.revision
    start = time.perf_counter()
    futures = [
        manager.submit([Put(ClusterDeployment(id=c.id))], "bench") for c in clusters
    ]
    for future in futures:
        future.result(timeout=DEADLINE)
    if not done.wait(DEADLINE):
        raise RuntimeError(f"{len(pending)} clusters did not reach Deployed within {DEADLINE:g} s")
    wall = time.perf_counter() - start
    events = manager.revision - first_revision
    subscription.close()
    watcher.join()
    if failed:
        raise RuntimeError(f"{len(failed)} clusters failed, e.g. {failed[0]}")
    backend.wait_idle(DEADLINE)
    parameters = sum(
        len(r.parameters) for r in manager.resources_of(ResourceKind.PEER_CONFIGURATION)
        if isinstance(r, PeerConfiguration)
    )
    return wall, events, deploying, parameters


def plain_updates(backend: Backend, cluster_ids: list[uuid.UUID], n: int) -> float:
    """Seconds for ``n`` volatile set_cluster_state writes from one thread, one after the other."""
    states = [Deploying(done=i % 50, total=50) for i in range(50)]
    start = time.perf_counter()
    for i in range(n):
        actions.set_cluster_state(backend.manager, cluster_ids[i % len(cluster_ids)], states[i % 50], "bench")
    return time.perf_counter() - start


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--clusters", type=int, default=None, help="clusters to deploy (default 100, quick 20)")
    p.add_argument(
        "--durability", default="full", choices=["full", "normal", "off"],
        help="SQLite synchronous mode (only the ClusterDeployments themselves are persisted)",
    )
    args = p.parse_args()
    n_clusters = args.clusters or (20 if args.quick else 100)

    with temp_dir(args.tmp_dir) as tmp:
        tmp_path = Path(tmp)
        backend = Backend(tmp_path / "data", demo_delay_scale=0.0, durability=args.durability).start()
        try:
            peers, clusters = build(n_clusters)
            actions.store_resources(backend.manager, [*peers, *clusters], "bench")
            wait_online(backend, peers)
            ids = [c.id for c in clusters]
            expected_events = 22 * n_clusters  # about what a deploy produces; the same count is used after
            before = plain_updates(backend, ids, expected_events)  # also warms every code path up
            cpu0 = time.process_time()
            wall, events, deploying, parameters = deploy_all(backend, clusters)
            cpu = time.process_time() - cpu0
            after = plain_updates(backend, ids, events)
            plain = (before / expected_events + after / events) / 2 * events  # noise on a shared machine
            info = machine(tmp_path)
        finally:
            backend.close()

    per_event = wall / events
    per_plain = plain / events
    print(f"machine: {info}")
    print(
        f"{n_clusters} clusters x {PEERS_PER_CLUSTER} demo peers, delay 0, durability {args.durability}: "
        f"{parameters} parameters, {events} events ({deploying} Deploying progress events)"
    )
    print(f"deploy all at once: wall {wall:.2f} s (cpu {cpu:.2f} s), all {n_clusters} Deployed")
    print(f"events per second (deploy):            {events / wall:10,.0f}")
    print(f"operator overhead per parameter:       {wall / parameters * 1e6:10,.0f} us")
    print(
        f"plain updates (same count, 1 thread):  {events / plain:10,.0f} per second ({plain:.2f} s; "
        f"{expected_events / before:,.0f}/s before the deploy, {events / after:,.0f}/s after)"
    )
    print(
        f"ratio deploy / plain per event:        {per_event / per_plain:10.2f}x "
        f"({per_event * 1e6:,.0f} us vs {per_plain * 1e6:,.0f} us)"
    )


if __name__ == "__main__":
    main()
