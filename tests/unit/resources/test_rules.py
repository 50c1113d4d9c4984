"""Every rule of DESIGN section 3 through both a backend State and a LEA sync Store.

The rules are written once (``resources.rules``) over a ``ResourceView``. The same resources are
put into a State (as the sequencer's working state is built, checked by ``backend.rules.check``,
the manager's RuleCheck) and into a Store (from a snapshot and from event batches, checked with
``resources.rules`` as LEA pre-checks): each write is refused with the same error (class, code,
message, details) or accepted by all of them. The editors' and dialogs' pre-checks then show the
very code and message the backend's refusal carries.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from backend import rules as backend_rules
from backend.manager import Change, Delete, Put
from backend.state import State
from lea_app.sync.store import Store
from lea_app.views import dialogs
from lea_app.views.editors import problems
from resources import derived, rules
from resources.cluster import ClusterDeployment, ClusterDescriptor
from resources.configuration import PeerConfigurationState
from resources.errors import (
    ClusterDeployed,
    DeviceIdTaken,
    LeaError,
    MissingReference,
    NameTaken,
    PeerBlocked,
    PeerInDeployedCluster,
    ReferencedByCluster,
)
from resources.events import Event, EventType, StateSnapshot
from resources.kinds import ResourceKind
from resources.peer import Device, PeerDescriptor
from resources.resource import AnyResource
from resources.state import ClusterState, Deployed, Online, PeerConnectionState
from resources.view import ResourceView
from tests.helpers.factories import make_cluster, make_peer
from tests.helpers.fake_connection import make_event

RULE_ERRORS = {
    NameTaken, DeviceIdTaken, MissingReference, ReferencedByCluster, ClusterDeployed, PeerInDeployedCluster,
    PeerBlocked,
}


@dataclass(frozen=True)
class Fleet:
    peers: dict[str, PeerDescriptor]
    clusters: dict[str, ClusterDescriptor]

    def resources(self) -> list[AnyResource]:
        deployed = ClusterDeployment(id=self.clusters["one"].id)
        online = PeerConnectionState(
            id=self.peers["a"].id, state=Online(remote_host="10.0.0.1", since=datetime(2024, 1, 1, tzinfo=UTC))
        )
        return [*self.peers.values(), *self.clusters.values(), deployed, online]


def build_fleet() -> Fleet:
    """one (a, b) is deployed; two (b, c) and led (leader a, devices of d) share a peer with it; free
    (e, f) shares none; guided is led by g, whose devices are in no cluster; lone is in no cluster."""
    peers = {name: make_peer(f"bench-{name}", can=name in "ac") for name in ("a", "b", "c", "d", "e", "f", "g", "lone")}
    p = peers
    clusters = {
        "one": make_cluster("cluster-one", p["a"], p["b"]),
        "two": make_cluster("cluster-two", p["b"], p["c"]),
        "led": ClusterDescriptor(
            id=uuid.uuid4(), name="cluster-led", leader=p["a"].id, devices=tuple(d.id for d in p["d"].devices)
        ),
        "free": make_cluster("cluster-free", p["e"], p["f"]),
        "guided": ClusterDescriptor(
            id=uuid.uuid4(), name="cluster-guided", leader=p["g"].id, devices=tuple(d.id for d in p["e"].devices)
        ),
    }
    return Fleet(peers, clusters)


# -- the views ---------------------------------------------------------------------------------
def state_of(fleet: Fleet) -> State:
    state = State()
    for resource in fleet.resources():
        state.put(resource)
    return state


def state_restored_clusters_first(fleet: Fleet) -> State:
    """As a restore may build it (``backend.admin.restore_state`` puts resources in first-seen order):
    a cluster before the peers whose devices it holds, so the peers' puts must update its members."""
    state = State()
    for resource in reversed(fleet.resources()):
        state.put(resource)
    return state


def store_from_snapshot(fleet: Fleet) -> Store:
    store = Store()
    store.apply_snapshot(StateSnapshot(epoch="e", revision=len(fleet.resources()), resources=fleet.resources()))
    return store


def store_from_events(fleet: Fleet) -> Store:
    """Built the way a live LEA builds it: batches, including a detour that the index must forget."""
    store = Store()
    resources = fleet.resources()
    detour = make_cluster("cluster-detour", fleet.peers["lone"], fleet.peers["g"])
    events = [
        _event(n + 1, EventType.CREATED, r.kind, r.id, r) for n, r in enumerate([*resources, detour])
    ]
    events.append(_event(len(events) + 1, EventType.DELETED, ResourceKind.CLUSTER, detour.id, None))
    store.apply_events(events[:5])
    store.apply_events(events[5:])
    return store


def _event(revision: int, type: EventType, kind: ResourceKind, id: uuid.UUID, resource: AnyResource | None) -> Event:
    return make_event("e", revision, type, resource, kind=kind, id=id)


def backend_check(state: State) -> Callable[[Change], None]:
    return lambda change: backend_rules.check(state, change)


def lea_check(store: Store) -> Callable[[Change], None]:
    def check(change: Change) -> None:
        if isinstance(change, Put):
            rules.check_put(store, change.resource)
        else:
            rules.check_delete(store, change.kind, change.id)
    return check


VIEWS: dict[str, Callable[[Fleet], tuple[ResourceView, Callable[[Change], None]]]] = {
    "backend State": lambda f: (s := state_of(f), backend_check(s)),
    "backend State (restored, clusters first)": lambda f: (s := state_restored_clusters_first(f), backend_check(s)),
    "LEA Store (snapshot)": lambda f: (s := store_from_snapshot(f), lea_check(s)),
    "LEA Store (events)": lambda f: (s := store_from_events(f), lea_check(s)),
}


# -- the writes --------------------------------------------------------------------------------
def changed(resource: Any, **update: Any) -> Any:
    return type(resource).model_validate({**resource.model_dump(), **update})


def without_can(peer: PeerDescriptor) -> PeerDescriptor:
    """The peer without its CAN interface and the device behind it."""
    can = next(i for i in peer.interfaces if i.is_can)
    result: PeerDescriptor = changed(
        peer,
        interfaces=[i.model_dump() for i in peer.interfaces if i.id != can.id],
        devices=[d.model_dump() for d in peer.devices if d.interface != can.id],
    )
    return result


def stealing(f: Fleet) -> PeerDescriptor:
    thief = make_peer("bench-thief", devices=0)
    stolen = f.peers["lone"].devices[0]
    result: PeerDescriptor = changed(
        thief, devices=[Device(id=stolen.id, name="mine", interface=thief.interfaces[0].id).model_dump()]
    )
    return result


def bumped(resource: Any) -> Any:
    return resource.model_copy(update={"version": resource.version + 1})


P, C = ResourceKind.PEER, ResourceKind.CLUSTER
CASES: dict[str, tuple[Callable[[Fleet], Change], type[LeaError] | None]] = {
    # names
    "a peer name taken, ignoring case": (lambda f: Put(make_peer("BENCH-LONE")), NameTaken),
    "a peer recasing its own name": (lambda f: Put(changed(f.peers["lone"], name="BENCH-LONE")), None),
    "a cluster name taken, ignoring case": (lambda f: Put(make_cluster("Cluster-Two", f.peers["e"])), NameTaken),
    "names are unique per kind only": (lambda f: Put(make_cluster("bench-lone", f.peers["lone"])), None),
    # devices
    "a device id another peer has": (lambda f: Put(stealing(f)), DeviceIdTaken),
    # cluster references
    "a cluster whose leader does not exist": (
        lambda f: Put(ClusterDescriptor(
            id=uuid.uuid4(), name="cluster-x", leader=uuid.uuid4(), devices=[d.id for d in f.peers["lone"].devices]
        )), MissingReference,
    ),
    "a cluster whose devices do not exist": (
        lambda f: Put(ClusterDescriptor(
            id=uuid.uuid4(), name="cluster-x", leader=f.peers["lone"].id,
            devices=[f.peers["lone"].devices[0].id, uuid.uuid4(), uuid.uuid4()],
        )), MissingReference,
    ),
    "a new cluster of existing peers and devices": (lambda f: Put(make_cluster("cluster-new", f.peers["lone"])), None),
    # deployments
    "deploying a cluster that does not exist": (lambda f: Put(ClusterDeployment(id=uuid.uuid4())), MissingReference),
    "deploying a cluster sharing a peer with a deployed one": (
        lambda f: Put(ClusterDeployment(id=f.clusters["two"].id)), PeerBlocked,
    ),
    "deploying a cluster whose leader is in a deployed one": (
        lambda f: Put(ClusterDeployment(id=f.clusters["led"].id)), PeerBlocked,
    ),
    "deploying a cluster sharing no peer": (lambda f: Put(ClusterDeployment(id=f.clusters["free"].id)), None),
    "deploying a deployed cluster again (a retry)": (
        lambda f: Put(ClusterDeployment(id=f.clusters["one"].id, version=2)), None,
    ),
    # deployed clusters
    "changing a deployed cluster": (lambda f: Put(changed(f.clusters["one"], name="cluster-new")), ClusterDeployed),
    "storing a deployed cluster unchanged (a retry)": (lambda f: Put(bumped(f.clusters["one"])), None),
    "changing an undeployed cluster": (lambda f: Put(changed(f.clusters["two"], name="cluster-2")), None),
    "deleting a deployed cluster": (lambda f: Delete(C, f.clusters["one"].id), ClusterDeployed),
    "deleting an undeployed cluster": (lambda f: Delete(C, f.clusters["two"].id), None),
    # references block deletion
    "deleting a peer clusters use": (lambda f: Delete(P, f.peers["b"].id), ReferencedByCluster),
    "deleting a peer a cluster uses only as its leader": (lambda f: Delete(P, f.peers["g"].id), ReferencedByCluster),
    "deleting a peer no cluster uses": (lambda f: Delete(P, f.peers["lone"].id), None),
    "removing a device a cluster uses": (
        lambda f: Put(changed(f.peers["d"], devices=[f.peers["d"].devices[1].model_dump()])), ReferencedByCluster,
    ),
    "removing an interface a cluster uses": (lambda f: Put(without_can(f.peers["c"])), ReferencedByCluster),
    "removing a device no cluster uses": (
        lambda f: Put(changed(f.peers["lone"], devices=[f.peers["lone"].devices[1].model_dump()])), None,
    ),
    # peers of deployed clusters
    "changing a peer a deployed cluster uses": (
        lambda f: Put(changed(f.peers["a"], location="elsewhere")), PeerInDeployedCluster,
    ),
    "changing a deployed cluster's leader's interfaces": (
        lambda f: Put(without_can(f.peers["a"])), PeerInDeployedCluster,
    ),
    "storing a deployed cluster's peer unchanged (a retry)": (lambda f: Put(bumped(f.peers["a"])), None),
    "changing a peer only undeployed clusters use": (lambda f: Put(changed(f.peers["c"], location="lab 2")), None),
    # volatile state
    "the connection state of a peer that does not exist": (
        lambda f: Put(PeerConnectionState(id=uuid.uuid4(), state=Online(remote_host="h", since=datetime.now(UTC)))),
        MissingReference,
    ),
    "the state of a cluster that does not exist": (
        lambda f: Put(ClusterState(id=uuid.uuid4(), state=Deployed())), MissingReference,
    ),
    "the configuration state of an existing peer": (
        lambda f: Put(PeerConfigurationState(id=f.peers["lone"].id)), None,
    ),
    "deleting a peer that does not exist": (lambda f: Delete(P, uuid.uuid4()), None),  # (NotFound is the manager's)
}


def outcome(check: Callable[[Change], None], change: Change) -> tuple[Any, ...] | None:
    try:
        check(change)
    except LeaError as error:
        problem = error.to_problem()
        return (type(error), problem.code, problem.detail, problem.details)
    return None


@pytest.mark.parametrize("case", list(CASES))
def test_every_rule_refuses_or_accepts_alike_through_a_state_and_a_store(case: str) -> None:
    make_change, expected = CASES[case]
    fleet = build_fleet()
    change = make_change(fleet)
    outcomes = {name: outcome(view(fleet)[1], change) for name, view in VIEWS.items()}
    backend = outcomes["backend State"]
    if expected is None:
        assert backend is None, backend
    else:
        assert backend is not None and backend[0] is expected, backend
        assert backend[1] == expected.code and backend[2]
    for name, got in outcomes.items():
        assert got == backend, f"{name} differs from the backend: {got} != {backend}"


def test_the_cases_cover_every_rule_error() -> None:
    assert {expected for _, expected in CASES.values()} - {None} == RULE_ERRORS


def test_the_messages_name_the_rule_and_the_resources() -> None:
    fleet = build_fleet()
    _, check = VIEWS["LEA Store (events)"](fleet)
    with pytest.raises(PeerBlocked) as blocked:
        check(Put(ClusterDeployment(id=fleet.clusters["two"].id)))
    assert blocked.value.message == (
        "cluster 'cluster-two' cannot be deployed: peer 'bench-b' (in 'cluster-one') already belongs to a deployed "
        "cluster"
    )
    assert blocked.value.details["blocked_by"] == {"cluster-one": ["bench-b"]}
    with pytest.raises(ReferencedByCluster) as referenced:
        check(Delete(P, fleet.peers["b"].id))
    assert referenced.value.message == (
        "peer 'bench-b' cannot be deleted: it is used by cluster 'cluster-one', 'cluster-two'"
    )
    with pytest.raises(PeerInDeployedCluster) as in_use:
        check(Put(changed(fleet.peers["a"], location="x")))
    assert in_use.value.details["clusters"] == ["cluster-one"]


# -- LEA's pre-checks show the backend's code and message ---------------------------------------
def refusal(fleet: Fleet, change: Change) -> LeaError:
    state = state_of(fleet)
    with pytest.raises(LeaError) as info:
        backend_rules.check(state, change)
    return info.value


def test_the_editors_pre_checks_show_the_backends_code_and_message() -> None:
    """The pre-check and the backend's refusal, both in the editor's words (problems.plain_rule:
    names, never raw ids), are the same problem; where the backend's words name no id, they are its."""
    fleet = build_fleet()
    store = store_from_events(fleet)
    p, c = fleet.peers, fleet.clusters

    clash = make_peer("BENCH-LONE")
    [problem] = problems.name_taken(store, P, clash.id, clash.name)
    error = refusal(fleet, Put(clash))
    assert (problem.field, problem.code, problem.rule) == ("name", error.code, error.message)
    assert problems.refusal_problems(error) == [problem]

    d = p["d"]
    kept = [d.devices[1]]
    [problem] = problems.removed_devices_in_use(store, d, [str(x.id) for x in kept])
    error = refusal(fleet, Put(changed(d, devices=[x.model_dump() for x in kept])))
    assert (problem.field, problem.code, problem.rule) == ("devices", error.code, error.message)
    assert problems.refusal_problems(error) == [problem]

    ghost = ClusterDescriptor(
        id=uuid.uuid4(), name="cluster-x", leader=uuid.uuid4(), devices=[uuid.uuid4(), uuid.uuid4()]
    )
    leader, devices = problems.missing_references(store, ghost.name, str(ghost.leader), {str(x) for x in ghost.devices})
    error = refusal(fleet, Put(ghost))
    assert (leader.field, leader.code, leader.rule) == ("leader", error.code, problems.plain_rule(error))
    assert problems.refusal_problems(error) == [leader] and str(ghost.leader) not in leader.rule
    fixed = ghost.model_copy(update={"leader": p["lone"].id})
    error = refusal(fleet, Put(fixed))
    assert (devices.field, devices.code, devices.rule) == ("devices", error.code, problems.plain_rule(error))
    assert problems.refusal_problems(error) == [devices] and "2 chosen devices no longer exist" in devices.rule

    error = refusal(fleet, Put(changed(p["b"], location="x")))
    assert problems.peer_blocked_reason(store, p["b"].id) == f"Read-only: {error.message}."
    error = refusal(fleet, Put(changed(c["one"], name="cluster-new")))
    assert problems.cluster_blocked_reason(store, c["one"].id) == f"Read-only: {error.message}."


def sentence(text: str) -> str:
    """A dialog says the backend's words in sentence case."""
    return text[:1].upper() + text[1:]


def test_the_delete_dialogs_name_the_backends_refusal() -> None:
    fleet = build_fleet()
    store = store_from_snapshot(fleet)
    peer, cluster = fleet.peers["b"], fleet.clusters["one"]
    blocker = dialogs.peer_delete_blockers(store, peer)
    assert blocker is not None and blocker.startswith(sentence(refusal(fleet, Delete(P, peer.id)).message) + ". ")
    refused = refusal(fleet, Delete(C, cluster.id))
    assert dialogs.cluster_delete_blockers(store, cluster) == sentence(refused.message) + "."
    assert dialogs.peer_delete_blockers(store, fleet.peers["lone"]) is None
    assert dialogs.cluster_delete_blockers(store, fleet.clusters["two"]) is None
    assert dialogs.cluster_summary(store, cluster).startswith(f"{len(cluster.devices)} devices on 2 peers.")


# -- the derived facts, alike too ----------------------------------------------------------------
def facts(view: ResourceView, fleet: Fleet) -> dict[str, Any]:
    peers, clusters = fleet.peers.values(), fleet.clusters.values()
    return {
        "members": {c.name: sorted(derived.peer_names(view, view.members(c.id))) for c in clusters},
        "clusters of peer": {p.name: derived.cluster_names(view, view.clusters_of_peer(p.id)) for p in peers},
        "deployed clusters of peer": {
            p.name: [c.name for c in derived.deployed_clusters_of_peer(view, p.id)] for p in peers
        },
        "blocking cluster": {p.name: getattr(derived.blocking_cluster(view, p.id), "name", None) for p in peers},
        "blocked peers": {view.get(P, p).name: c.name for p, c in derived.blocked_peers(view).items()},  # type: ignore[union-attr]
        "deployed": [c.name for c in derived.deployed_clusters(view)],
    }


def test_the_derived_facts_are_the_same_through_a_state_and_a_store() -> None:
    fleet = build_fleet()
    answers = {name: facts(view(fleet)[0], fleet) for name, view in VIEWS.items()}
    expected = answers["backend State"]
    assert all(a == expected for a in answers.values()), answers
    assert expected["members"]["cluster-led"] == ["bench-a", "bench-d"]  # the leader holds no device
    assert expected["blocking cluster"] == {
        name: ("cluster-one" if name in ("bench-a", "bench-b") else None) for name in expected["blocking cluster"]
    }
    assert expected["blocked peers"] == {"bench-a": "cluster-one", "bench-b": "cluster-one"}


def test_a_peer_in_two_deployed_clusters_is_blocked_by_the_first_by_name_everywhere() -> None:
    """Impossible while the rules hold (a view is filled without them here): every fact still agrees."""
    fleet = build_fleet()
    state, store = state_of(fleet), store_from_snapshot(fleet)
    for view in (state, store):
        for name in ("two", "led"):
            deployment = ClusterDeployment(id=fleet.clusters[name].id)
            if isinstance(view, State):
                view.put(deployment)
            else:
                view.apply_events([make_event("e", 100, EventType.CREATED, deployment)])
    assert facts(state, fleet) == facts(store, fleet)
    got = facts(state, fleet)
    assert got["deployed clusters of peer"]["bench-a"] == ["cluster-led", "cluster-one"]
    assert got["blocking cluster"]["bench-a"] == "cluster-led" == got["blocked peers"]["bench-a"]
    assert got["blocking cluster"]["bench-b"] == "cluster-one" == got["blocked peers"]["bench-b"]
    assert got["blocked peers"]["bench-c"] == "cluster-two"
