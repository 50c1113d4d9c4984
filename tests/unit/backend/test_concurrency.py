"""8 writer threads racing on the same names and peers, 3 subscribers, real group commits.

The writers create peers with names from a small shared pool (in varying case), update the same
few peers, build clusters that share peers, deploy, undeploy and delete them, and fire bursts of
conflicting writes through ``submit`` so that commit groups hold several writes that would break a
rule together. The subscribers' streams are replayed into an independent model (plain dicts, not
the backend's State) and the rules are checked at every published revision; the streams must be
complete, in order, without gaps, identical for every subscriber, and contain every acknowledged
write.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from backend import actions, admin
from backend.backend import Backend
from backend.manager import Change, Delete, Put, ResourcesManager, TxResult
from resources import ClusterDeployment, ClusterDescriptor, EventType, PeerDescriptor, ResourceKind
from resources.errors import (
    AlreadyExists,
    ClusterDeployed,
    Conflict,
    DeviceIdTaken,
    MissingReference,
    NameTaken,
    NotFound,
    PeerBlocked,
    PeerInDeployedCluster,
    ReferencedByCluster,
)
from resources.events import Event, WriteResult
from resources.kinds import PERSISTED_KINDS
from resources.resource import AnyResource
from resources.state import Offline, Online, PeerConnectionState
from resources.wire import EventBatch, Hello
from tests.helpers.factories import make_cluster, make_peer

WRITERS = 8
SUBSCRIBERS = 3
PEER = ResourceKind.PEER
CLUSTER = ResourceKind.CLUSTER
DEPLOYMENT = ResourceKind.CLUSTER_DEPLOYMENT
PEER_NAMES = ["bench-alpha", "bench-beta", "bench-gamma", "bench-delta", "bench-eps", "bench-zeta"]
CLUSTER_NAMES = ["cluster-red", "cluster-green", "cluster-blue", "cluster-black"]
#: The few peers every writer updates (created by whichever writer gets there first).
SHARED_PEERS = [UUID(int=i + 1) for i in range(4)]
#: Rule and concurrency errors a racing writer may legitimately get; anything else fails the test.
EXPECTED_ERRORS = (
    AlreadyExists, ClusterDeployed, Conflict, DeviceIdTaken, MissingReference, NameTaken, NotFound,
    PeerBlocked, PeerInDeployedCluster, ReferencedByCluster,
)
VOLATILE_PEER_KINDS = (
    ResourceKind.PEER_CONNECTION_STATE, ResourceKind.PEER_CONFIGURATION, ResourceKind.PEER_CONFIGURATION_STATE,
)
RESULT_TIMEOUT = 30.0
Key = tuple[ResourceKind, UUID]
Model = dict[Key, AnyResource]


# -- the writers ---------------------------------------------------------------------------------
@dataclass
class WriterLog:
    results: list[WriteResult] = field(default_factory=list)
    tx_results: list[TxResult] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    ops: Counter[str] = field(default_factory=Counter)
    unexpected: list[BaseException] = field(default_factory=list)

    def call(self, fn: Callable[..., WriteResult], *args: Any, **kwargs: Any) -> None:
        try:
            self.results.append(fn(*args, **kwargs))
        except EXPECTED_ERRORS as exc:
            self.errors[type(exc).__name__] += 1
        except BaseException as exc:
            self.unexpected.append(exc)

    def wait(self, futures: Sequence[Future[TxResult]]) -> None:
        for future in futures:
            try:
                self.tx_results.append(future.result(RESULT_TIMEOUT))
            except EXPECTED_ERRORS as exc:
                self.errors[type(exc).__name__] += 1
            except BaseException as exc:
                self.unexpected.append(exc)


def _name(rng: random.Random, pool: Sequence[str]) -> str:
    """A pool name in a random case: names are unique case-insensitively."""
    name = rng.choice(pool)
    return rng.choice([name, name.upper(), name.capitalize(), name.swapcase(), name.title()])


def _peers(m: ResourcesManager) -> list[PeerDescriptor]:
    return [p for p in m.resources_of(PEER) if isinstance(p, PeerDescriptor)]


def _clusters(m: ResourcesManager) -> list[ClusterDescriptor]:
    return [c for c in m.resources_of(CLUSTER) if isinstance(c, ClusterDescriptor)]


def op_create_peer(m: ResourcesManager, rng: random.Random, actor: str, log: WriterLog) -> None:
    peer = make_peer(_name(rng, PEER_NAMES), devices=rng.randint(2, 3))
    log.call(actions.store_peer_descriptor, m, peer, actor, create_only=rng.random() < 0.5)


def op_update_shared_peer(m: ResourcesManager, rng: random.Random, actor: str, log: WriterLog) -> None:
    peer_id = rng.choice(SHARED_PEERS)
    current = m.get(PEER, peer_id)
    expected: int | None = None
    if not isinstance(current, PeerDescriptor) or rng.random() < 0.15:
        # (Re)create with fresh devices: drops the old ones, which clusters may still use.
        peer = make_peer(_name(rng, PEER_NAMES), devices=2, id=peer_id)
    else:
        devices = current.devices
        others = [p for p in _peers(m) if p.id != peer_id and p.devices]
        if others and rng.random() < 0.15:
            # Try to take over another peer's device id.
            stolen = rng.choice(others).devices[0]
            devices = (*devices, stolen.model_copy(update={"name": "stolen", "interface": devices[0].interface}))
        peer = current.model_copy(
            update={"name": _name(rng, PEER_NAMES), "location": f"lab-{rng.randint(1, 9)}", "devices": devices}
        )
        expected = current.version if rng.random() < 0.7 else None
    log.call(actions.store_peer_descriptor, m, peer, actor, expected_version=expected)


def op_store_cluster(m: ResourcesManager, rng: random.Random, actor: str, log: WriterLog) -> None:
    peers = _peers(m)
    if not peers:
        return
    members = rng.sample(peers, k=min(len(peers), rng.randint(1, 3)))
    existing = _clusters(m)
    cluster_id = rng.choice(existing).id if existing and rng.random() < 0.3 else uuid.uuid4()
    cluster = make_cluster(_name(rng, CLUSTER_NAMES), *members, id=cluster_id)
    log.call(actions.store_cluster_descriptor, m, cluster, actor)


def op_deploy(m: ResourcesManager, rng: random.Random, actor: str, log: WriterLog) -> None:
    clusters = _clusters(m)
    if clusters:
        log.call(actions.store_cluster_deployment, m, rng.choice(clusters).id, actor)


def op_undeploy(m: ResourcesManager, rng: random.Random, actor: str, log: WriterLog) -> None:
    ids = [d.id for d in m.resources_of(DEPLOYMENT)] or [c.id for c in _clusters(m)]
    if ids:
        log.call(actions.delete_cluster_deployment, m, rng.choice(ids), actor)


def op_delete_cluster(m: ResourcesManager, rng: random.Random, actor: str, log: WriterLog) -> None:
    clusters = _clusters(m)
    if clusters:
        log.call(actions.delete_cluster_descriptor, m, rng.choice(clusters).id, actor)


def op_delete_peer(m: ResourcesManager, rng: random.Random, actor: str, log: WriterLog) -> None:
    peers = _peers(m)
    if peers:
        peer = rng.choice(peers)
        expected = peer.version if rng.random() < 0.5 else None
        log.call(actions.delete_peer_descriptor, m, peer.id, actor, expected_version=expected)


def op_connection_state(m: ResourcesManager, rng: random.Random, actor: str, log: WriterLog) -> None:
    peers = _peers(m)
    if peers:
        state = Online(remote_host="10.0.0.1", since=datetime.now(UTC)) if rng.random() < 0.5 else Offline()
        log.call(actions.set_peer_connection_state, m, rng.choice(peers).id, state, actor)


def op_burst(m: ResourcesManager, rng: random.Random, actor: str, log: WriterLog) -> None:
    """Several conflicting writes submitted at once, so they tend to land in one commit group."""
    kind = rng.randrange(4)
    batch: list[list[Change]] = []
    if kind == 0:  # the same name, in different case, four times
        name = rng.choice(PEER_NAMES)
        for variant in (name, name.upper(), name.title(), name.swapcase()):
            batch.append([Put(make_peer(variant), create_only=True)])
    elif kind == 1:  # deploy clusters that (likely) share peers
        clusters = _clusters(m)
        for cluster in rng.sample(clusters, k=min(3, len(clusters))):
            batch.append([Put(ClusterDeployment(id=cluster.id))])
    elif kind == 2:  # a peer, a cluster on it and its deployment, then try to delete the peer
        peer = make_peer(_name(rng, PEER_NAMES))
        others = rng.sample(_peers(m), k=min(1, len(_peers(m))))
        cluster = make_cluster(_name(rng, CLUSTER_NAMES), peer, *others)
        batch += [
            [Put(peer, create_only=True)],
            [Put(cluster)],
            [Put(ClusterDeployment(id=cluster.id))],
            [Delete(PEER, peer.id)],
        ]
    else:  # all-or-nothing multi-resource transactions racing on a shared peer
        for _ in range(3):
            peer = make_peer(_name(rng, PEER_NAMES))
            leader = m.get(PEER, rng.choice(SHARED_PEERS))
            members = [leader] if isinstance(leader, PeerDescriptor) else []
            cluster = make_cluster(_name(rng, CLUSTER_NAMES), peer, *members)
            batch.append(
                [
                    Put(peer, create_only=True),
                    Put(cluster),
                    Put(ClusterDeployment(id=cluster.id)),
                    Put(PeerConnectionState(id=peer.id, state=Offline())),
                ]
            )
    log.wait([m.submit(changes, actor) for changes in batch])


OPS: list[tuple[Callable[[ResourcesManager, random.Random, str, WriterLog], None], int]] = [
    (op_create_peer, 3),
    (op_update_shared_peer, 3),
    (op_store_cluster, 3),
    (op_deploy, 3),
    (op_undeploy, 2),
    (op_delete_cluster, 1),
    (op_delete_peer, 1),
    (op_connection_state, 1),
    (op_burst, 2),
]


def writer(
    m: ResourcesManager, seed: int, ops: int, deadline: float, start: threading.Barrier, log: WriterLog
) -> None:
    rng = random.Random(seed)
    actor = f"writer-{seed}"
    functions = [f for f, _ in OPS]
    weights = [w for _, w in OPS]
    start.wait()
    for _ in range(ops):
        if time.monotonic() > deadline:
            break
        op = rng.choices(functions, weights)[0]
        log.ops[op.__name__] += 1
        try:
            op(m, rng, actor, log)
        except BaseException as exc:
            log.unexpected.append(exc)


# -- the independent model ---------------------------------------------------------------------
def _content(resource: AnyResource) -> AnyResource:
    return resource.model_copy(update={"version": 0})


def _members(model: Model, cluster: ClusterDescriptor, owners: dict[UUID, UUID]) -> set[UUID]:
    return {cluster.leader} | {owners[d] for d in cluster.devices if d in owners}


def _owners(model: Model) -> dict[UUID, UUID]:
    return {d.id: p.id for p in _of(model, PeerDescriptor) for d in p.devices}


def _of(model: Model, cls: type[Any]) -> list[Any]:
    return [r for r in model.values() if isinstance(r, cls)]


def _deployed_members(model: Model) -> dict[UUID, set[UUID]]:
    owners = _owners(model)
    out = {}
    for (kind, id) in model:
        if kind == DEPLOYMENT:
            cluster = model.get((CLUSTER, id))
            if isinstance(cluster, ClusterDescriptor):
                out[id] = _members(model, cluster, owners)
    return out


def check_rules(model: Model, where: str) -> None:
    """Every rule of DESIGN section 3 that concurrent writes could break together."""
    peers: list[PeerDescriptor] = _of(model, PeerDescriptor)
    clusters: list[ClusterDescriptor] = _of(model, ClusterDescriptor)
    peer_names = Counter(p.name.casefold() for p in peers)
    assert all(n == 1 for n in peer_names.values()), f"{where}: two peers share a name: {peer_names}"
    cluster_names = Counter(c.name.casefold() for c in clusters)
    assert all(n == 1 for n in cluster_names.values()), f"{where}: two clusters share a name"
    owners: dict[UUID, UUID] = {}
    for peer in peers:
        for device in peer.devices:
            assert device.id not in owners, f"{where}: device {device.id} belongs to two peers"
            owners[device.id] = peer.id
    for cluster in clusters:
        assert (PEER, cluster.leader) in model, f"{where}: cluster {cluster.name} has a missing leader"
        for device_id in cluster.devices:
            assert device_id in owners, f"{where}: cluster {cluster.name} uses a missing device"
    seen: dict[UUID, UUID] = {}
    for (kind, id), _ in model.items():
        if kind == DEPLOYMENT:
            assert (CLUSTER, id) in model, f"{where}: deployment of a missing cluster {id}"
        elif kind in VOLATILE_PEER_KINDS:
            assert (PEER, id) in model, f"{where}: {kind} of a missing peer"
        elif kind == ResourceKind.CLUSTER_STATE:
            assert (CLUSTER, id) in model, f"{where}: state of a missing cluster"
    for cluster_id, members in _deployed_members(model).items():
        for member in members:
            assert member not in seen, (
                f"{where}: peer {member} is in two deployed clusters ({seen.get(member)} and {cluster_id})"
            )
            seen[member] = cluster_id


def apply_event(model: Model, event: Event, where: str) -> None:
    """Apply one event, checking the transition rules (what may change while deployed)."""
    key = (event.kind, event.id)
    old = model.get(key)
    if event.type == EventType.CREATED:
        assert old is None and event.resource is not None, f"{where}: created twice"
        assert event.resource.version == 1, f"{where}: a new resource starts at version 1"
    elif event.type == EventType.UPDATED:
        assert old is not None and event.resource is not None, f"{where}: update of a missing resource"
        assert event.resource.version == old.version + 1, f"{where}: versions go up by one"
    else:
        assert old is not None and event.resource is None, f"{where}: delete of a missing resource"
    if event.type == EventType.UPDATED and event.kind in (PEER, CLUSTER):
        assert event.resource is not None
        deployed = _deployed_members(model)
        frozen = (
            any(event.id in members for members in deployed.values())
            if event.kind == PEER
            else event.id in deployed
        )
        if frozen:
            assert old is not None
            assert _content(old) == _content(event.resource), f"{where}: {event.kind} changed while deployed"
    if event.type == EventType.DELETED and event.kind == CLUSTER:
        assert (DEPLOYMENT, event.id) not in model, f"{where}: a deployed cluster was deleted"
    if event.resource is None:
        model.pop(key)
    else:
        model[key] = event.resource


def replay_stream(deliveries: Sequence[object], start: int, epoch: str) -> tuple[Model, list[Event]]:
    """Check one subscriber's deliveries and replay them into a model, checking rules per batch."""
    assert deliveries, "no deliveries at all"
    hello = deliveries[0]
    assert isinstance(hello, Hello) and hello.revision == start and hello.epoch == epoch
    model: Model = {}
    events: list[Event] = []
    for item in deliveries[1:]:
        assert isinstance(item, EventBatch), f"unexpected delivery {item!r} (no resync may happen here)"
        batch = item.events
        assert batch, "an empty batch"
        assert len({e.tx for e in batch}) == 1, "a batch mixes transactions"
        first = batch[0].revision
        assert [e.revision for e in batch] == list(range(first, first + len(batch))), "non-contiguous tx"
        assert first == (events[-1].revision if events else start) + 1, (
            f"gap or repeat before revision {first}"
        )
        for event in batch:
            assert event.epoch == epoch
            apply_event(model, event, f"revision {event.revision}")
            events.append(event)
        check_rules(model, f"published revision {batch[-1].revision}")
    return model, events


# -- the test ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("store_kind", "durability", "ops_per_writer", "budget"),
    [("sqlite", "off", 1000, 10.0), ("sqlite", "full", 120, 6.0), ("postgresql", "full", 150, 10.0)],
    ids=["durability-off", "durability-full", "postgresql"],
)
def test_racing_writers_never_break_a_rule_and_subscribers_see_everything(
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    store_kind: str,
    durability: str,
    ops_per_writer: int,
    budget: float,
) -> None:
    store = request.getfixturevalue("pg_target") if store_kind == "postgresql" else None
    backend = Backend(data_dir, store=store, durability=durability, checkpoint_interval=200).start()
    manager = backend.manager
    group_sizes: list[int] = []
    real_append = backend.store.append

    def recording_append(events: Sequence[Event], reserve_up_to: int | None = None) -> None:
        group_sizes.append(len({e.tx for e in events}))
        real_append(events, reserve_up_to)

    monkeypatch.setattr(backend.store, "append", recording_append)

    start_revision = manager.revision
    epoch = manager.epoch
    subs = [manager.subscribe() for _ in range(SUBSCRIBERS)]
    streams: list[list[object]] = [[] for _ in subs]
    consumers = [
        threading.Thread(target=lambda s=sub, out=out: out.extend(s), name=f"subscriber-{i}", daemon=True)
        for i, (sub, out) in enumerate(zip(subs, streams, strict=True))
    ]
    for consumer in consumers:
        consumer.start()

    base_seed = random.randrange(1_000_000)
    logs = [WriterLog() for _ in range(WRITERS)]
    barrier = threading.Barrier(WRITERS)
    deadline = time.monotonic() + budget
    threads = [
        threading.Thread(
            target=writer, args=(manager, base_seed + i, ops_per_writer, deadline, barrier, logs[i]),
            name=f"writer-{i}", daemon=True,
        )
        for i in range(WRITERS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(budget + 60)
        assert not t.is_alive(), f"{t.name} hung (seed {base_seed})"

    context = f"(seed {base_seed})"
    unexpected = [exc for log in logs for exc in log.unexpected]
    if unexpected:
        raise AssertionError(f"unexpected errors {context}: {unexpected[:5]!r}") from unexpected[0]

    snapshot = manager.fetch_snapshot()
    # The deployment operator (started by Backend) may still write volatile state until it stops.
    backend.close()  # stops the operator, then finishes every subscription
    for consumer in consumers:
        consumer.join(30)
        assert not consumer.is_alive()

    # -- every subscriber saw every revision exactly once, in order, the same stream -------------
    model, events = replay_stream(streams[0], start_revision, epoch)
    for other in streams[1:]:  # the same deliveries: the same checked replay
        assert other == streams[0], context
    assert events, f"nothing was written {context}"
    assert events[-1].revision == manager.revision >= snapshot.revision, context

    # -- every acknowledged write is in the stream --------------------------------------------
    by_revision = {e.revision: e for e in events}
    acked = 0
    for log in logs:
        for result in log.results:
            event = by_revision.get(result.revision)
            assert event is not None and event.id == result.id, f"acknowledged {result} missing {context}"
            if result.version:
                assert event.resource is not None and event.resource.version == result.version
            else:
                assert event.type == EventType.DELETED
            acked += 1
        for tx in log.tx_results:
            for event in tx.events:
                assert by_revision.get(event.revision) == event, f"acknowledged {event} missing {context}"
            acked += 1
    assert acked > 0

    # -- the end state: snapshot == replayed stream, rules hold, storage agrees -----------------
    snap_model = {(r.kind, r.id): r for r in snapshot.resources}
    at_snapshot: Model = {}
    for event in events:
        if event.revision > snapshot.revision:
            break
        apply_event(at_snapshot, event, f"revision {event.revision}")
    assert snap_model == at_snapshot, context
    check_rules(snap_model, "final snapshot")
    assert max(group_sizes) > 1, f"no commit group ever held more than one write {context}: {group_sizes}"

    reopened = Backend(data_dir, store=store)
    try:
        restored = {(r.kind, r.id): r for r in reopened.manager.fetch_snapshot().resources}
        assert restored == {k: v for k, v in model.items() if k[0] in PERSISTED_KINDS}, context
        assert {k: v for k, v in snap_model.items() if k[0] in PERSISTED_KINDS} == restored, context
        assert admin.verify(reopened.store).ok
    finally:
        reopened.close()

    errors: Counter[str] = sum((log.errors for log in logs), Counter())
    ops: Counter[str] = sum((log.ops for log in logs), Counter())
    multi = sum(1 for size in group_sizes if size > 1)
    print(
        f"\n{durability}: {len(events)} events, {acked} acknowledged writes, {len(group_sizes)} commit groups "
        f"({multi} with >1 write, largest {max(group_sizes)}); ops {dict(ops)}; rejected {dict(errors)}"
    )
    # The races really happened: same-name creates and overlapping deployments were refused.
    assert errors["NameTaken"] > 0 and errors["PeerBlocked"] > 0, f"{context}: {dict(errors)}"
