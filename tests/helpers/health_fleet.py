"""A fleet in every state a cluster can be in, degraded included, as resources to feed a store or a
FakeBackend with (the health tests and the window probe use it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from resources.cluster import ClusterDeployment, ClusterDescriptor
from resources.peer import PeerDescriptor
from resources.resource import AnyResource
from resources.state import (
    ClusterState,
    Deployed,
    Deploying,
    Failed,
    Offline,
    Online,
    PeerConnectionState,
    Progress,
    Waiting,
)
from tests.helpers.factories import make_cluster, make_peer

SINCE = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass
class HealthFleet:
    peers: dict[str, PeerDescriptor] = field(default_factory=dict)
    clusters: dict[str, ClusterDescriptor] = field(default_factory=dict)
    resources: list[AnyResource] = field(default_factory=list)


def health_fleet() -> HealthFleet:
    """Twelve benches; clusters deployed, degraded (bench-04 offline), deploying (11 of 19), waiting for
    bench-06, failed, and one never deployed. bench-10 is offline and no deployment needs it."""
    fleet = HealthFleet()
    for i in range(1, 13):
        peer = make_peer(f"bench-{i:02d}", devices=2, can=i % 3 == 0)
        fleet.peers[peer.name] = peer
    p = fleet.peers
    layout = {
        "hil-loop": ("bench-01", "bench-02"),
        "adas-loop": ("bench-03", "bench-04"),
        "body-control": ("bench-05", "bench-07"),
        "telematics": ("bench-06", "bench-08"),
        "gateway-loop": ("bench-09", "bench-11"),
        "spare-loop": ("bench-10", "bench-12"),
    }
    for name, (leader, member) in layout.items():
        fleet.clusters[name] = make_cluster(name, p[leader], p[member])
    c = fleet.clusters
    offline = {"bench-04", "bench-06", "bench-10"}
    states = {
        "hil-loop": Deployed(),
        "adas-loop": Deployed(health="degraded", reason="peer 'bench-04' offline", peers=(p["bench-04"].id,)),
        "body-control": Deploying(
            done=11, total=19,
            peers={p["bench-05"].id: Progress(done=7, total=10), p["bench-07"].id: Progress(done=4, total=9)},
        ),
        "telematics": Waiting(reason="peer 'bench-06' offline", peers=(p["bench-06"].id,)),
        "gateway-loop": Failed(peer=p["bench-09"].id, reason="GreInterface gre-lea-1: no route to 10.0.0.1"),
    }
    fleet.resources = [*p.values(), *c.values()]
    for peer in p.values():
        host = f"10.0.0.{int(peer.name[-2:])}"
        state = Offline() if peer.name in offline else Online(remote_host=host, since=SINCE)
        fleet.resources.append(PeerConnectionState(id=peer.id, state=state))
    for name, status in states.items():
        fleet.resources.append(ClusterDeployment(id=c[name].id))
        fleet.resources.append(ClusterState(id=c[name].id, state=status))
    return fleet
